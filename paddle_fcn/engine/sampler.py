"""Deterministic data order for iteration-based training.

The training stream is an endless sequence of sample positions k = 0, 1, 2, ...; position k
is dataset index ``perm_e[k % N]`` with ``e = k // N`` and ``perm_e`` a permutation drawn from
``RandomState(seed + e)``, and its augmentation is seeded by ``(seed, k)``. So the data a step
sees depends only on the seed and the step number: a resumed run sees exactly what an
uninterrupted run would have seen, with any number of loader workers, and ``W`` ranks with
batch ``B`` each see exactly the samples one process with batch ``W*B`` sees (rank ``r`` takes
the ``r``-th slice of each global batch).
"""
import random

import numpy as np
import paddle

__all__ = ["StreamBatchSampler", "SeededDataset"]


class StreamBatchSampler(paddle.io.BatchSampler):
    """Yields this rank's micro-batches ``[(index, sample_seed), ...]`` from ``start`` on.

    Args:
        num_samples: dataset length N.
        batch_size: per-rank batch B.
        num_batches: total micro-batches of the run (iters x accumulate_steps).
        start: micro-batches already done (resume point).
        seed: run seed; rank, world_size: data-parallel slice.
    """

    def __init__(self, num_samples, batch_size, num_batches, start=0, seed=0, rank=0,
                 world_size=1, shuffle=True):
        if num_samples < 1:
            raise ValueError("cannot train on an empty dataset")
        self.n, self.b, self.total, self.start = num_samples, batch_size, num_batches, start
        self.seed, self.rank, self.world, self.shuffle = seed, rank, world_size, shuffle
        self._perm_epoch, self._perm = None, None

    def _index(self, k):
        epoch = k // self.n
        if epoch != self._perm_epoch:
            rng = np.random.RandomState((self.seed + epoch) % 2**32)
            self._perm = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            self._perm_epoch = epoch
        return int(self._perm[k % self.n])

    def batch(self, m):
        """Micro-batch ``m`` of this rank as ``[(index, sample_seed)]``."""
        first = (m * self.world + self.rank) * self.b
        return [(self._index(k), (self.seed * 1_000_003 + k) % 2**32)
                for k in range(first, first + self.b)]

    def __iter__(self):
        for m in range(self.start, self.total):
            yield self.batch(m)

    def __len__(self):
        return self.total - self.start


class SeededDataset(paddle.io.Dataset):
    """Wraps a dataset so that ``ds[(index, seed)]`` runs its random transforms from ``seed``.

    The data transforms draw from Python's and NumPy's global RNGs; seeding them per sample
    (in whichever worker process loads it) makes augmentation reproducible.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def __getitem__(self, item):
        index, seed = item
        random.seed(seed)
        np.random.seed(seed)
        return self.dataset[index]

    def __len__(self):
        return len(self.dataset)

    @property
    def files(self):
        """The wrapped dataset's ``(image, label)`` paths (None if it has none): error
        messages name the files of a sample by its index."""
        return getattr(self.dataset, "files", None)
