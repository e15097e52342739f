"""Iteration-based training: the paper's recipe (docs/design.md) with the usual toolkit
conveniences.

``train(cfg)`` builds everything from one ``Config`` and runs ``cfg.iters`` optimizer steps;
each step is ``cfg.accumulate_steps`` forward/backward passes of ``cfg.batch_size`` images
(so a small device can train with the paper's minibatch of 20). Evaluation every
``eval_interval`` steps keeps the best model by mIoU; checkpoints every ``save_interval``
steps can be resumed with the same iteration, learning rate, data order and RNG state.
"""
import json
import math
import os
import sys
import time
from contextlib import nullcontext

import paddle
import paddle.distributed as dist
from tqdm import tqdm

from paddle_fcn.config import config_to_dict, resolve_num_classes, save_config
from paddle_fcn.device import setup_device
from paddle_fcn.engine.amp import MixedPrecision, check_amp_device
from paddle_fcn.engine.batches import next_batches, training_datasets, training_loader
from paddle_fcn.engine.checkpoint import (load_checkpoint, read_best_metrics,
                                          recover_interrupted_saves, save_best_model,
                                          save_checkpoint)
from paddle_fcn.engine.distributed import (all_reduce_sum, convert_sync_batchnorm,
                                           gather_rng_states, in_rank_order, micro_batch_weights,
                                           restore_rank_rng, sync_model_state, world_size)
from paddle_fcn.engine.env import seed_everything, world_info
from paddle_fcn.engine.evaluate import evaluate, metrics_dict
from paddle_fcn.engine.interrupt import TrainingInterrupted, critical, requested, stop_on_signals
from paddle_fcn.engine.loss import build_loss
from paddle_fcn.engine.optim import build_optimizer
from paddle_fcn.engine.state import TrainingDiverged, TrainState, TrainSummary, quiet
from paddle_fcn.engine.vdl import TrainLog, VDLLogger
from paddle_fcn.errors import ConfigError
from paddle_fcn.fileio import atomic_write_text
from paddle_fcn.inference.segmenter import can_export, exported_scorer
from paddle_fcn.models.loading import build_configured_model
from paddle_fcn.models.origin import model_state_dict

__all__ = ["TrainSummary", "TrainState", "TrainingDiverged", "TrainingInterrupted", "train",
           "train_one_iter"]


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


def train_one_iter(state, loss_fn, batches, cfg):
    """Optimizer step ``state.iteration + 1`` over ``accumulate_steps`` micro-batches (on
    every rank).

    Returns ``(loss, lr)``: the loss of the whole global batch (the same number on every
    rank) and the learning rate this step used (read before the scheduler steps). The
    micro-batch losses are weighted so that the step equals one over a single batch of
    ``batch_size x accumulate_steps x ranks`` images (``distributed.micro_batch_weights``).
    A non-finite loss on any rank stops every rank before the optimizer step.
    """
    model, optimizer = state.model, state.optimizer
    weights = micro_batch_weights(loss_fn, [labels for _, labels in batches])
    total = 0.0
    for i, ((images, labels), weight) in enumerate(zip(batches, weights)):
        last = i == len(batches) - 1
        sync = model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext()
        with sync:
            # a multi-head loss needs every head's scores (models.multihead)
            with state.amp.autocast():
                logits = model(images, all_heads=True) if getattr(loss_fn, "all_heads", False) \
                    else model(images)
                loss = loss_fn.weighted(logits, labels, weight)
            state.amp.backward(loss)
        total += float(loss)
    total = float(all_reduce_sum(total)) / world_size()
    _check_finite(total, state.iteration + 1, cfg)
    lr = optimizer.get_lr()
    state.amp.step(optimizer)
    optimizer.clear_grad()
    state.scheduler.step()
    return total, lr


def _evaluate_and_keep_best(state, cfg, logger):
    """Evaluate (split over the ranks), update ``state``; rank 0 logs and writes the files.

    Every rank gets the same (all-reduced) metrics and keeps the same best-model state; rank
    0's BatchNorm statistics are copied to all ranks first, so the split evaluation scores
    exactly the weights rank 0 saves.
    """
    model, val_ds, it = state.bare, state.val_ds, state.iteration
    sync_model_state(model)
    with _scorer(model, cfg, len(val_ds)) as scorer:
        result = evaluate(scorer, val_ds, state.num_classes, cfg.test_config,
                          ignore_index=val_ds.ignore_index, keep_samples=cfg.num_vis_samples,
                          rank=state.rank, world_size=state.world, progress=False)
    state.model.train()
    metrics = dict(metrics_dict(result, val_ds), iteration=it)
    miou = result.metrics.mIoU
    better = _is_better(miou, state.best_mIoU)
    if better:
        state.best_mIoU, state.best_iter = miou, it
    if state.rank != 0:
        return metrics
    logger.eval_result(result, val_ds.class_names, model.normalization, it)
    with critical():  # a stop signal waits until the files are on disk
        atomic_write_text(json.dumps(metrics, indent=2), os.path.join(cfg.save_dir,
                                                                      "metrics.json"))
        if better:
            save_best_model(cfg.save_dir, model_state_dict(model), metrics)
    best = "none" if state.best_mIoU is None else f"{state.best_mIoU:.4f}"
    heads = "".join(f" | {name}: mIoU {m.mIoU:.4f} pixel_acc {m.pixel_acc:.4f}"
                    for name, m in result.heads.items())
    state.log(f"[eval] iter {it}: mIoU {miou:.4f} pixel_acc {result.metrics.pixel_acc:.4f} "
              f"(best {best} at iter {state.best_iter}, {result.seconds:.1f} s){heads}")
    return metrics


# eval_backend auto: the Predictor from this many validation images on (below, its export,
# a few seconds, costs more than it saves; docs/performance.md#evaluation-during-training)
AUTO_PREDICTOR_IMAGES = 200


def _scorer(model, cfg, num_images):
    """What evaluation runs (``eval_backend``): the eager model, or its export run by the
    Predictor, as deployed (several times faster on a CPU). ``auto``: the Predictor on a CPU
    for a split of ``AUTO_PREDICTOR_IMAGES`` or more, when the model can be exported."""
    backend = cfg.eval_backend
    if backend == "auto":
        on_cpu = paddle.get_device() == "cpu"
        backend = "predictor" if on_cpu and can_export(model) and \
            num_images >= AUTO_PREDICTOR_IMAGES else "eager"
    if backend == "eager":
        return nullcontext(model)
    return exported_scorer(model, cfg.device, cfg.cpu_threads)


def _check_eval_backend(model, cfg):
    """Before the first step: ``eval_backend: predictor`` needs a model that exports."""
    if cfg.eval_backend == "predictor" and not can_export(model):
        raise ConfigError(f"eval_backend: predictor cannot run {cfg.model.type} (several heads "
                          f"or a 6-channel input do not export); use eager or auto")


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
    if state.best_mIoU is not None and math.isnan(state.best_mIoU):
        state.best_mIoU = state.best_iter = None
    on_disk = read_best_metrics(save_dir)
    if on_disk is not None and _is_better(on_disk[0], state.best_mIoU):
        state.best_mIoU, state.best_iter = on_disk


def _recover(save_dir, rank):
    """Rank 0 repairs a save killed midway (before any rank looks for checkpoints)."""
    if rank == 0:
        recover_interrupted_saves(save_dir)


def _prepare(cfg, resume_model, check_data, log):
    """Device, process group, seeds, model, data, optimizer and resume state: the
    ``TrainState`` of ``train``.

    Under ``paddle.distributed.launch`` every rank builds the same model from its own seed
    (``seed + rank``); DataParallel then copies rank 0's weights to all ranks. Datasets are
    built on rank 0 first (a synthetic set is generated once, not raced by every rank).
    """
    rank, world = world_info()
    every_rank, log = log, log if rank == 0 else quiet  # each rank says where it resumed
    setup_device(cfg.device, cfg.cpu_threads)
    if world > 1:
        dist.init_parallel_env()
    seed_everything(cfg.seed + rank)
    num_classes = resolve_num_classes(cfg, None)  # load_config filled it from the datasets
    model, reports = build_configured_model(cfg.model, num_classes)
    for report in reports:
        log(str(report))
    _check_eval_backend(model, cfg)
    model = convert_sync_batchnorm(model, cfg, world)
    train_ds, val_ds = in_rank_order(
        lambda: training_datasets(cfg, model.normalization, num_classes, check_data,
                          getattr(model, "heads", None)), rank, world)
    optimizer, scheduler = build_optimizer(model, cfg)
    check_amp_device(cfg.precision)
    amp = MixedPrecision(cfg.precision, cfg.amp_level)
    model, optimizer = amp.decorate(model, optimizer)
    if scheduler.warmup_iters < cfg.lr_scheduler.warmup_iters:
        log(f"note: lr_scheduler.warmup_iters = {cfg.lr_scheduler.warmup_iters} is longer "
            f"than the run (iters = {cfg.iters}): the warm-up is clipped to {cfg.iters} "
            f"iterations")
    in_rank_order(lambda: _recover(cfg.save_dir, rank), rank, world)
    state = TrainState(model, optimizer, scheduler, train_ds, val_ds, num_classes, rank, world,
                       log, amp)
    if resume_model:
        loaded = load_checkpoint(resume_model, model, optimizer)
        restore_rank_rng(loaded, rank, world, cfg.seed)
        amp.set_state_dict(loaded.get("amp"), loaded["path"])
        state.iteration = loaded.get("iteration") or 0
        state.best_mIoU, state.best_iter = loaded.get("best_mIoU"), loaded.get("best_iter")
        _restore_best(state, cfg.save_dir)
        every_rank(f"resumed from {loaded['path']} at iteration {state.iteration}, "
                   f"lr {optimizer.get_lr():.6g}")
    if world > 1:
        state.model = paddle.DataParallel(model)
    return state


def train(cfg, resume_model=None, progress=True, check_data=True, log=None):
    """Train as configured; returns a ``TrainSummary``. See the module docstring.

    ``resume_model``: a checkpoint or run directory; ``check_data=False`` skips the data check.
    ``progress``: show a progress bar. ``log``: a callable that receives the run's messages
    (load reports, notes, resume, evaluation lines; rank 0 only); None: silent. Ctrl-C or
    SIGTERM stops the run with ``TrainingInterrupted`` (its ``iteration`` is the last step
    done); the data workers are gone by then and every file written is complete.
    """
    _, world = world_info()
    with stop_on_signals(deferred=world > 1):  # ranks stop together: interrupt.requested
        start_time = time.time()
        state = _prepare(cfg, resume_model, check_data, log or quiet)
        if state.rank == 0:
            os.makedirs(cfg.save_dir, exist_ok=True)
            save_config(cfg, os.path.join(cfg.save_dir, "config.yml"))
        logger = VDLLogger(os.path.join(cfg.save_dir, "vdl"),
                           enabled=cfg.use_vdl and state.rank == 0)
        bar = tqdm(total=cfg.iters, initial=state.iteration,
                   disable=not progress or state.rank != 0,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, desc="train")
        loader = iter(training_loader(cfg, state.train_ds, state.iteration * cfg.accumulate_steps,
                              state.rank, world))
        try:
            metrics, points = _train_loop(cfg, state, loader, logger, bar)
        except TrainingInterrupted as stop:
            stop.iteration, stop.rank = state.iteration, state.rank
            raise
        finally:
            loader.close()
            bar.close()
            logger.close()
    return TrainSummary(cfg.iters, state.best_mIoU, state.best_iter, metrics,
                        time.time() - start_time, cfg.save_dir, points.losses, points.lrs)


def _train_loop(cfg, state, loader, logger, bar):
    """Steps ``state.iteration + 1 .. cfg.iters`` with evaluation and checkpoints; returns
    ``(last metrics or None, TrainLog)``."""
    loss_fn = build_loss(cfg.loss, state.num_classes, getattr(state.bare, "heads", None))
    state.model.train()
    metrics, points = None, TrainLog(cfg, state.world, logger, bar)
    for it in range(state.iteration + 1, cfg.iters + 1):
        batches = next_batches(loader, cfg.accumulate_steps)
        loss, lr = train_one_iter(state, loss_fn, batches, cfg)
        state.iteration = it
        points.step(it, loss, lr)
        if state.val_ds is not None and (it % cfg.eval_interval == 0 or it == cfg.iters):
            metrics = _evaluate_and_keep_best(state, cfg, logger)
        if it % cfg.save_interval == 0 or it == cfg.iters:
            with critical():  # a stop signal waits until the checkpoint is complete
                _save(cfg, state)
        requested(all_reduce_sum if state.world > 1 else None)  # several ranks: all stop here
    return metrics, points


def _save(cfg, state):
    """Checkpoint ``iter_<it>``, written by rank 0 only; collective (RNG states of all ranks)."""
    rank_rng = gather_rng_states() if state.world > 1 else None
    if state.rank != 0:
        return
    extra = {"config": config_to_dict(cfg), "best_mIoU": state.best_mIoU,
             "best_iter": state.best_iter, "world_size": state.world, "rank_rng": rank_rng,
             "amp": state.amp.state_dict()}
    save_checkpoint(cfg.save_dir, state.iteration, state.bare, state.optimizer, extra,
                    cfg.keep_checkpoint_max)
