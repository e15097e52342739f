"""Iteration-based training: the paper's recipe (SPEC §8) with the usual toolkit conveniences.

``train(cfg)`` builds everything from one ``Config`` and runs ``cfg.iters`` optimizer steps;
each step is ``cfg.accumulate_steps`` forward/backward passes of ``cfg.batch_size`` images
(so a small device can train with the paper's minibatch of 20). Evaluation every
``eval_interval`` steps keeps the best model by mIoU; checkpoints every ``save_interval``
steps can be resumed with the same iteration, learning rate, data order and RNG state.
"""
import functools
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import paddle
import paddle.distributed as dist
from tqdm import tqdm

from paddle_fcn.config import config_to_dict, resolve_num_classes, save_config
from paddle_fcn.data import build_dataset, collate_fn
from paddle_fcn.data.check import check_dataset
from paddle_fcn.data.io import DataError
from paddle_fcn.data.loader import WorkerLoader
from paddle_fcn.engine.checkpoint import (atomic_write_text, load_checkpoint, read_best_metrics,
                                          recover_interrupted_saves, save_best_model,
                                          save_checkpoint)
from paddle_fcn.engine.distributed import (all_reduce_sum, convert_sync_batchnorm,
                                           gather_rng_states, in_rank_order, micro_batch_weights,
                                           restore_rank_rng, sync_model_state, world_size)
from paddle_fcn.engine.env import seed_everything, setup_device, world_info
from paddle_fcn.engine.evaluate import apply_configured_normalization, evaluate, metrics_dict
from paddle_fcn.engine.interrupt import TrainingInterrupted, critical, requested, stop_on_signals
from paddle_fcn.engine.loss import build_loss
from paddle_fcn.engine.optim import build_optimizer
from paddle_fcn.engine.sampler import SeededDataset, StreamBatchSampler
from paddle_fcn.engine.vdl import TrainLog, VDLLogger
from paddle_fcn.models import build_model
from paddle_fcn.models.origin import model_state_dict
from paddle_fcn.models.staged import transfer_weights

__all__ = ["TrainSummary", "TrainingDiverged", "TrainingInterrupted", "train",
           "build_model_from_config"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and likely causes."""


@dataclass
class TrainSummary:
    """What ``train`` returns: iterations done, best validation mIoU and where it was saved."""
    iterations: int
    best_mIoU: Optional[float]
    best_iter: Optional[int]
    last_metrics: Optional[dict]
    seconds: float
    save_dir: str
    losses: list  # (iteration, loss) at every log point
    lrs: list = field(default_factory=list)  # (iteration, lr of that iteration's step), ditto


def build_model_from_config(cfg, num_classes):
    """``build_model`` from ``cfg.model``, then ImageNet or staged (``init_from``) weights,
    which set the model's normalisation (``model.normalization`` checked against the config's)."""
    options = dict(cfg.model.options)
    if cfg.model.pretrained:
        options["pretrained"] = cfg.model.pretrained
    model = build_model(cfg.model.type, num_classes, **options)
    if cfg.model.init_from:
        print(transfer_weights(cfg.model.init_from, model))
    apply_configured_normalization(model, cfg, cfg.model.init_from or cfg.model.pretrained)
    return model


def _loader(cfg, dataset, start_micro, rank, world):
    """Training batches ``(images N3HW, labels NHW)`` as numpy arrays, read by
    ``cfg.num_workers`` processes under a ``cfg.data_timeout`` watchdog (``data.loader``).
    Images of different sizes are padded, labels with the dataset's ``ignore_index`` (the
    loss's, checked by the config), so the padding costs nothing."""
    sampler = StreamBatchSampler(len(dataset), cfg.batch_size, cfg.iters * cfg.accumulate_steps,
                                 start=start_micro, seed=cfg.seed, rank=rank, world_size=world)
    collate = functools.partial(collate_fn, ignore_index=dataset.ignore_index)
    return WorkerLoader(SeededDataset(dataset), sampler, collate, cfg.num_workers,
                        cfg.data_timeout)


def _next_batches(loader, count):
    """The next ``count`` micro-batches as tensors on the current device."""
    return [tuple(paddle.to_tensor(np.ascontiguousarray(a)) for a in next(loader))
            for _ in range(count)]


def _check_finite(loss_value, iteration, cfg):
    if math.isfinite(loss_value):
        return
    raise TrainingDiverged(
        f"loss is {loss_value} at iteration {iteration}. Training stopped; the last good "
        f"checkpoint and the best model in {cfg.save_dir!r} are untouched. Likely causes: the "
        f"learning rate ({cfg.lr_scheduler.learning_rate}) is too high for "
        f"loss.reduction={cfg.loss.reduction!r} (a summed loss, as in the Caffe reference, needs "
        f"a learning rate around 1e-10; a mean loss around 1e-3..1e-2), no warm-up "
        f"(lr_scheduler.warmup_iters), or exploding gradients (optimizer.grad_clip_norm).")


def train_one_iter(model, loss_fn, optimizer, batches, iteration, cfg):
    """One optimizer step over ``accumulate_steps`` micro-batches (on every rank).

    Returns ``(loss, lr)``: the loss of the whole global batch (the same number on every
    rank) and the learning rate this step used (read before the scheduler steps). The
    micro-batch losses are weighted so that the step equals one over a single batch of
    ``batch_size x accumulate_steps x ranks`` images (``distributed.micro_batch_weights``).
    A non-finite loss on any rank stops every rank before the optimizer step.
    """
    weights = micro_batch_weights(loss_fn, [labels for _, labels in batches])
    total = 0.0
    for i, ((images, labels), weight) in enumerate(zip(batches, weights)):
        last = i == len(batches) - 1
        sync = model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext()
        with sync:
            # a multi-head loss needs every head's scores (models.multihead)
            logits = model(images, all_heads=True) if getattr(loss_fn, "all_heads", False) \
                else model(images)
            loss = loss_fn(logits, labels) * weight
            loss.backward()
        total += float(loss)
    total = float(all_reduce_sum(total)) / world_size()
    _check_finite(total, iteration, cfg)
    lr = optimizer.get_lr()
    optimizer.step()
    optimizer.clear_grad()
    optimizer._learning_rate.step()
    return total, lr


def _evaluate_and_keep_best(model, val_ds, num_classes, cfg, state, logger, it, rank, world):
    """Evaluate (split over the ranks), update ``state``; rank 0 logs and writes the files.

    Every rank gets the same (all-reduced) metrics and keeps the same best-model state; rank
    0's BatchNorm statistics are copied to all ranks first, so the split evaluation scores
    exactly the weights rank 0 saves.
    """
    sync_model_state(_bare(model))
    result = evaluate(_bare(model), val_ds, num_classes, cfg.test_config,
                      ignore_index=val_ds.ignore_index, keep_samples=cfg.num_vis_samples,
                      rank=rank, world_size=world, progress=False)
    metrics = dict(metrics_dict(result, val_ds), iteration=it)
    miou = result.metrics.mIoU
    better = _is_better(miou, state["best_mIoU"])
    if better:
        state.update(best_mIoU=miou, best_iter=it)
    if rank != 0:
        return metrics
    logger.eval_result(result, val_ds.class_names, _bare(model).normalization, it)
    with critical():  # a stop signal waits until the files are on disk
        atomic_write_text(json.dumps(metrics, indent=2), os.path.join(cfg.save_dir,
                                                                      "metrics.json"))
        if better:
            save_best_model(cfg.save_dir, model_state_dict(_bare(model)), metrics)
    best = "none" if state["best_mIoU"] is None else f"{state['best_mIoU']:.4f}"
    heads = "".join(f" | {name}: mIoU {m.mIoU:.4f} pixel_acc {m.pixel_acc:.4f}"
                    for name, m in result.heads.items())
    tqdm.write(f"[eval] iter {it}: mIoU {miou:.4f} pixel_acc {result.metrics.pixel_acc:.4f} "
               f"(best {best} at iter {state['best_iter']}, {result.seconds:.1f} s){heads}")
    return metrics


def _is_better(miou, best):
    """Whether ``miou`` beats ``best`` (None: no best yet). A NaN mIoU (no valid pixel in the
    split) is never a best model; a NaN ``best`` (older runs) counts as none, since nothing
    compares greater than NaN."""
    if miou is None or math.isnan(miou):
        return False
    return best is None or math.isnan(best) or miou > best


def _restore_best(state, save_dir):
    """After a resume: the better of the checkpoint's best and ``best_model/metrics.json``,
    which may have been written after the checkpoint (eval_interval below save_interval, or a
    kill between evaluation and save) and must not be replaced by a worse model."""
    if state["best_mIoU"] is not None and math.isnan(state["best_mIoU"]):
        state.update(best_mIoU=None, best_iter=None)
    on_disk = read_best_metrics(save_dir)
    if on_disk is not None and _is_better(on_disk[0], state["best_mIoU"]):
        state.update(best_mIoU=on_disk[0], best_iter=on_disk[1])


def _bare(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def _datasets(cfg, normalization, num_classes, check_data, heads=None):
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


def _recover(save_dir, rank):
    """Rank 0 repairs a save killed midway (before any rank looks for checkpoints)."""
    if rank == 0:
        recover_interrupted_saves(save_dir)


def _prepare(cfg, resume_model, check_data):
    """Device, process group, seeds, model, data, optimizer and resume state for ``train``.

    Under ``paddle.distributed.launch`` every rank builds the same model from its own seed
    (``seed + rank``); DataParallel then copies rank 0's weights to all ranks. Datasets are
    built on rank 0 first (a synthetic set is generated once, not raced by every rank).
    """
    rank, world = world_info()
    setup_device(cfg.device)
    if world > 1:
        dist.init_parallel_env()
    seed_everything(cfg.seed + rank)
    num_classes = resolve_num_classes(cfg, None)  # load_config filled it from the datasets
    model = convert_sync_batchnorm(build_model_from_config(cfg, num_classes), cfg, world)
    train_ds, val_ds = in_rank_order(
        lambda: _datasets(cfg, model.normalization, num_classes, check_data,
                          getattr(model, "heads", None)), rank, world)
    optimizer, sched = build_optimizer(model, cfg)
    if sched.warmup_iters < cfg.lr_scheduler.warmup_iters and rank == 0:
        print(f"note: lr_scheduler.warmup_iters = {cfg.lr_scheduler.warmup_iters} is longer "
              f"than the run (iters = {cfg.iters}): the warm-up is clipped to {cfg.iters} "
              f"iterations")
    in_rank_order(lambda: _recover(cfg.save_dir, rank), rank, world)
    state = {"iteration": 0, "best_mIoU": None, "best_iter": None}
    if resume_model:
        loaded = load_checkpoint(resume_model, model, optimizer)
        restore_rank_rng(loaded, rank, world, cfg.seed)
        state.update({k: loaded.get(k) for k in state})
        _restore_best(state, cfg.save_dir)
        print(f"resumed from {loaded['path']} at iteration {state['iteration']}, "
              f"lr {optimizer.get_lr():.6g}")
    if world > 1:
        model = paddle.DataParallel(model)
    return model, train_ds, val_ds, optimizer, state, num_classes, rank, world


def train(cfg, resume_model=None, progress=True, check_data=True):
    """Train as configured; returns a ``TrainSummary``. See the module docstring.

    ``resume_model``: a checkpoint or run directory; ``check_data=False`` skips the data check.
    Ctrl-C or SIGTERM stops the run with ``TrainingInterrupted`` (its ``iteration`` is the last
    step done); the data workers are gone by then and every file written is complete.
    """
    _, world = world_info()
    with stop_on_signals(deferred=world > 1):  # ranks stop together: interrupt.requested
        start_time = time.time()
        model, train_ds, val_ds, optimizer, state, num_classes, rank, world = _prepare(
            cfg, resume_model, check_data)
        if rank == 0:
            os.makedirs(cfg.save_dir, exist_ok=True)
            save_config(cfg, os.path.join(cfg.save_dir, "config.yml"))
        logger = VDLLogger(os.path.join(cfg.save_dir, "vdl"), enabled=cfg.use_vdl and rank == 0)
        bar = tqdm(total=cfg.iters, initial=state["iteration"],
                   disable=not progress or rank != 0,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, desc="train")
        loader = iter(_loader(cfg, train_ds, state["iteration"] * cfg.accumulate_steps, rank,
                              world))
        try:
            metrics, log = _train_loop(cfg, model, optimizer, loader, val_ds, state, num_classes,
                                       logger, bar, rank, world)
        except TrainingInterrupted as stop:
            stop.iteration, stop.rank = state["iteration"], rank
            raise
        finally:
            loader.close()
            bar.close()
            logger.close()
    return TrainSummary(cfg.iters, state["best_mIoU"], state["best_iter"], metrics,
                        time.time() - start_time, cfg.save_dir, log.losses, log.lrs)


def _train_loop(cfg, model, optimizer, loader, val_ds, state, num_classes, logger, bar, rank,
                world):
    """Steps ``state["iteration"] + 1 .. cfg.iters`` with evaluation and checkpoints;
    returns ``(last metrics or None, _Log)``. ``state["iteration"]`` is the last step done."""
    loss_fn = build_loss(cfg.loss, num_classes, getattr(_bare(model), "heads", None))
    model.train()
    metrics, log = None, TrainLog(cfg, world, logger, bar)
    for it in range(state["iteration"] + 1, cfg.iters + 1):
        batches = _next_batches(loader, cfg.accumulate_steps)
        loss, lr = train_one_iter(model, loss_fn, optimizer, batches, it, cfg)
        state["iteration"] = it
        log.step(it, loss, lr)
        if val_ds is not None and (it % cfg.eval_interval == 0 or it == cfg.iters):
            metrics = _evaluate_and_keep_best(model, val_ds, num_classes, cfg, state, logger,
                                              it, rank, world)
        if it % cfg.save_interval == 0 or it == cfg.iters:
            with critical():  # a stop signal waits until the checkpoint is complete
                _save(cfg, it, model, optimizer, state, rank, world)
        requested(all_reduce_sum if world > 1 else None)  # several ranks: all stop here
    return metrics, log


def _save(cfg, it, model, optimizer, state, rank, world):
    """Checkpoint ``iter_<it>``, written by rank 0 only; collective (RNG states of all ranks)."""
    rank_rng = gather_rng_states() if world > 1 else None
    if rank != 0:
        return
    extra = {"config": config_to_dict(cfg), "best_mIoU": state["best_mIoU"],
             "best_iter": state["best_iter"], "world_size": world, "rank_rng": rank_rng}
    save_checkpoint(cfg.save_dir, it, _bare(model), optimizer, extra, cfg.keep_checkpoint_max)
