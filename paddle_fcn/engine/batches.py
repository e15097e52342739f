"""The training data: the data sets of a run and the stream of batches the trainer steps on.

Batches come from ``data.loader.WorkerLoader`` (worker processes, watchdog) in the order of
``sampler.StreamBatchSampler``, which makes a resumed run see exactly the batches the
uninterrupted one would have.
"""
import functools

import numpy as np
import paddle

from paddle_fcn.data import build_dataset, check_dataset, collate_fn
from paddle_fcn.data.loader import WorkerLoader
from paddle_fcn.engine.sampler import SeededDataset, StreamBatchSampler
from paddle_fcn.errors import DataError

__all__ = ["training_datasets", "training_loader", "next_batches"]


def training_loader(cfg, dataset, start_micro, rank, world):
    """Training batches ``(images N3HW, labels NHW)`` as numpy arrays, read by
    ``cfg.num_workers`` processes under a ``cfg.data_timeout`` watchdog (``data.loader``).
    Images of different sizes are padded, labels with the dataset's ``ignore_index`` (the
    loss's, checked by the config), so the padding costs nothing."""
    sampler = StreamBatchSampler(len(dataset), cfg.batch_size, cfg.iters * cfg.accumulate_steps,
                                 start=start_micro, seed=cfg.seed, rank=rank, world_size=world)
    collate = functools.partial(collate_fn, ignore_index=dataset.ignore_index)
    return WorkerLoader(SeededDataset(dataset), sampler, collate, cfg.num_workers,
                        cfg.data_timeout)


def next_batches(loader, count):
    """The next ``count`` micro-batches as tensors on the current device."""
    return [tuple(paddle.to_tensor(np.ascontiguousarray(a)) for a in next(loader))
            for _ in range(count)]


def training_datasets(cfg, normalization, num_classes, check_data, heads=None):
    """Training and (when evaluating) validation datasets; ``(train, val or None)``.

    With ``check_data`` every file is read once first (``tools/check_data.py``): bad labels,
    missing files and size mismatches stop the run before it starts, naming the files.
    """
    train_ds = build_dataset(cfg.train_dataset, normalization, num_classes)
    val_ds = None
    if cfg.do_eval and cfg.val_dataset is not None:
        val_ds = build_dataset(cfg.val_dataset, normalization, num_classes)
    for ds in filter(None, (train_ds, val_ds)) if check_data else ():
        check_dataset(ds, num_classes).raise_if_failed()
    _check_heads(heads, train_ds)
    return train_ds, val_ds


def _check_heads(heads, train_ds):
    """A multi-head model trains on labels of exactly its heads (e.g. SIFTFlow head: both)."""
    if getattr(train_ds, "heads", None) != heads:
        theirs = getattr(train_ds, "heads", None)
        raise DataError(f"the model scores {heads or 'one head'} but the training data set "
                        f"({train_ds.source}) labels {theirs or 'one head'}; give the model "
                        f"option heads and the data set the same heads (SIFTFlow: head: both)")
