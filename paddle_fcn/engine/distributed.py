"""Data-parallel training under ``python -m paddle.distributed.launch``.

The launcher starts one process per device and gives each its place in the job through the
environment (``PADDLE_TRAINER_ID`` = global rank, ``PADDLE_TRAINERS_NUM`` = world size,
``PADDLE_LOCAL_RANK`` / ``PADDLE_LOCAL_SIZE`` = rank and process count on this machine). On a
CPU-only Paddle build it also sets ``PADDLE_DISTRI_BACKEND=gloo``, so the very same command
trains on CPUs (slowly): that is how the tests exercise it. ``trainer.train`` then:

* **Data.** ``StreamBatchSampler`` rather than ``paddle.io.DistributedBatchSampler``: rank r
  takes the r-th slice of each global batch of the one deterministic sample stream, so the
  samples of an optimizer step depend only on the seed, the step and the effective batch -
  not on how it is split into ranks, micro-batches or loader workers. Augmentation is seeded
  per sample position, not by a rank's or worker's RNG. DistributedBatchSampler is epoch
  based (pads the last batch with repeated samples, needs ``set_epoch``, cannot start in the
  middle of an epoch on resume) and leaves augmentation to each worker's RNG.
* **Gradients.** ``paddle.DataParallel`` averages gradients over ranks (``no_sync`` defers
  the all-reduce to the last accumulation micro-batch). ``micro_batch_weights`` scales each
  micro-batch loss so that this average is the gradient of one batch of
  ``batch_size x accumulate_steps x ranks`` images.
* **BatchNorm.** Statistics are per rank and per micro-batch unless ``sync_bn`` (GPU only:
  Paddle has no CPU kernel for ``sync_batch_norm``). Running statistics are not all-reduced
  during training; ``sync_model_state`` copies rank 0's before every evaluation, so all ranks
  evaluate exactly the model that rank 0 saves.
* **RNG.** Rank r is seeded with ``seed + r`` (different dropout masks per rank); checkpoints
  keep every rank's RNG state (``gather_rng_states``) so a resumed run continues each stream.
"""
import os
import random
import warnings

import numpy as np
import paddle
import paddle.distributed as dist

from paddle_fcn.engine.env import seed_everything

__all__ = ["world_size", "local_rank", "all_reduce_sum", "micro_batch_weights",
           "sync_model_state", "convert_sync_batchnorm", "in_rank_order", "gather_rng_states",
           "restore_rank_rng"]


def world_size():
    """Number of processes in the initialised process group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def local_rank():
    """Rank of this process on its machine (``PADDLE_LOCAL_RANK``; 0 outside the launcher)."""
    return int(os.environ.get("PADDLE_LOCAL_RANK", os.environ.get("PADDLE_RANK_IN_NODE", 0)))


def all_reduce_sum(value, dtype="float64"):
    """Sum of a Python number or numpy array over all ranks, as numpy (a copy).

    Called every training step: a single process returns at once, with no tensor round trip.
    """
    array = np.array(value, dtype=dtype)
    if world_size() == 1:
        return array
    tensor = paddle.to_tensor(array)
    dist.all_reduce(tensor)
    return tensor.numpy()


def micro_batch_weights(loss_fn, labels):
    """Multipliers for the micro-batch losses of one optimizer step on this rank.

    ``labels``: this rank's micro-batch label tensors or arrays (N x H x W). DataParallel
    averages the gradient over the R ranks, so with ``w_m = R * n_m / n`` a micro-batch loss
    normalised by ``n_m`` becomes the global batch's loss normalised by ``n``, exactly what
    one process with the global batch computes. For reduction ``mean`` ``n_m`` is the valid
    pixels (or their summed class weight) of micro-batch m, ``n`` the same over every
    micro-batch of every rank (a plain mean of per-rank means would weight pixels by how much
    void their images have). For ``sum`` (pixel sum / images, Caffe's ``normalize: false``)
    ``n_m`` is its number of images, so equal micro-batches get ``1 / micro-batches``:
    Caffe's averaging over ``iter_size`` and GPUs. Collective when distributed: every rank
    must call it.

    Returns a float per micro-batch; for a multi-head loss (``loss.MultiHeadLoss``, whose
    normalizer counts each head) with ``mean``, a numpy array of one weight per head, so each
    head's term is weighted by its own valid pixels.
    """
    if loss_fn.reduction == "sum":
        counts = [np.float64(y.shape[0]) for y in labels]
    else:
        tensors = [y if isinstance(y, paddle.Tensor) else paddle.to_tensor(y) for y in labels]
        counts = [np.asarray(loss_fn.normalizer(y).numpy(), np.float64) for y in tensors]
    total = all_reduce_sum(np.sum(counts, axis=0))
    # where the global batch has no valid pixel (of a head) its losses are 0 anyway: weight 0
    weights = [np.divide(world_size() * c, total, out=np.zeros_like(total), where=total > 0)
               for c in counts]
    return [float(w) if w.ndim == 0 else w for w in weights]


@paddle.no_grad()
def sync_model_state(model, src=0):
    """Broadcast the non-trainable tensors (BatchNorm running mean/variance) from ``src``.

    Trainable parameters are kept equal by DataParallel; running statistics are not, since
    each rank normalises its own batches. A no-op outside distributed runs.
    """
    if world_size() < 2:
        return
    for tensor in model.state_dict().values():
        if tensor.stop_gradient:
            dist.broadcast(tensor, src=src)


# the layers SyncBatchNorm.convert_sync_batchnorm replaces
_BATCH_NORMS = (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D,
                paddle.nn.SyncBatchNorm)


def convert_sync_batchnorm(model, cfg, world):
    """``model`` with its BatchNorm layers replaced by SyncBatchNorm when ``cfg.sync_bn``.

    The parameters and running statistics are carried over, and the state_dict keys are
    unchanged (checkpoints load into a plain model). Raises ValueError when the model has no
    BatchNorm layer, or when several processes would need it on CPU, where Paddle has no
    ``sync_batch_norm`` kernel. With one process, BatchNorm already sees the whole batch and
    the model is returned unchanged.
    """
    if not cfg.sync_bn:
        return model
    if not any(isinstance(m, _BATCH_NORMS) for m in model.sublayers()):
        raise ValueError(f"sync_bn: true, but model '{cfg.model.type}' has no BatchNorm layer; "
                         f"set sync_bn: false")
    if world < 2:
        return model
    if not paddle.device.get_device().startswith("gpu"):
        raise ValueError(f"sync_bn: true needs GPUs: Paddle has no CPU kernel for SyncBatchNorm "
                         f"(device is {paddle.device.get_device()!r}); set sync_bn: false")
    return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def in_rank_order(fn, rank, world):
    """``fn()`` on global rank 0 first, then on each machine's local rank 0, then the rest.

    For steps that may write shared files, e.g. generating the synthetic data set: the first
    process creates it (on shared storage: once for all), the others then find it complete.
    Collective: every rank calls it. Returns ``fn()``.
    """
    if world < 2:
        return fn()
    stage = 0 if rank == 0 else 1 if local_rank() == 0 else 2
    result = None
    for turn in range(3):
        if turn == stage:
            result = fn()
        dist.barrier()
    return result


def gather_rng_states():
    """Every rank's (python, numpy, paddle) RNG state, indexed by rank. Collective."""
    mine = (random.getstate(), np.random.get_state(), paddle.get_rng_state())
    if world_size() < 2:
        return [mine]
    states = []
    dist.all_gather_object(states, mine)
    return states


def restore_rank_rng(state, rank, world, seed):
    """After ``load_checkpoint`` (which restored rank 0's RNG): this rank's own RNG state.

    ``state``: the loaded checkpoint dict. ``world_size`` is the number of processes of the
    run that wrote it (1 if absent) and ``rank_rng`` one ``gather_rng_states`` entry per rank
    (None for a single process). If that run had another number of processes, a warning
    says that the data order and dropout no longer match an uninterrupted run, and ranks
    without a saved state are reseeded from ``seed``, their rank and the iteration.
    """
    before = state.get("world_size", 1)
    saved = state.get("rank_rng") or []
    if before != world:
        warnings.warn(f"checkpoint {state.get('path')} was written by {before} process(es), "
                      f"resumed with {world}: the effective batch changes and the data order "
                      f"and dropout masks differ from an uninterrupted run", RuntimeWarning)
    if rank < len(saved):
        py, np_state, pd_state = saved[rank]
        random.setstate(py)
        np.random.set_state(np_state)
        paddle.set_rng_state(pd_state)
    elif rank > 0:
        seed_everything((seed + rank) * 1_000_003 + state["iteration"])
