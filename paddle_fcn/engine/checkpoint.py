"""Atomic checkpoints: a kill at any moment never leaves a corrupt latest checkpoint.

Layout of a run directory (``save_dir``)::

    iter_000200/              one complete checkpoint (written as .tmp-iter-*, then renamed)
        model.pdparams        model weights (structured names, as model.state_dict()) and the
                              model's input normalisation (origin.NORMALIZATION_KEY)
        model.pdopt           optimizer state incl. the LR scheduler, keyed by structured names
        state.pkl             iteration, RNG states (python, numpy, paddle), config dict
    best_model/               the best weights by validation mIoU (written as .tmp-best-*)
        model.pdparams        and metrics.json (with "iteration"): always a matching pair
    config.yml                the resolved configuration of the run

Each ``iter_*`` and ``best_model`` directory is written by ``paddle_fcn.fileio.atomic_dir``,
so it only ever appears complete. An existing one (``best_model``, or ``iter_N`` saved again
after a resume) is swapped out through ``.old-<best|iter_N>-*``; a kill between the two
renames leaves only the ``.old-`` copy, which ``recover_interrupted_saves`` (run at start-up
and after every checkpoint) renames back.
"""
import json
import math
import os
import pickle
import random
import re
import shutil

import numpy as np
import paddle

from paddle_fcn.errors import CheckpointError
from paddle_fcn.fileio import atomic_dir, restore_old_dirs
from paddle_fcn.models.origin import (NORMALIZATION_KEY, check_stored_normalization,
                                      model_state_dict)

__all__ = ["save_checkpoint", "load_checkpoint", "find_latest", "save_best_model",
           "read_best_metrics", "recover_interrupted_saves", "CheckpointError"]

_ITER_DIR = re.compile(r"^iter_(\d+)$")


def save_best_model(save_dir, state_dict, metrics):
    """Write ``save_dir/best_model/{model.pdparams, metrics.json}`` as one unit.

    ``metrics``: JSON-serialisable dict (``SegMetrics.to_dict`` plus ``iteration``). Readers
    never see new weights with old metrics or the reverse; a failure (e.g. a value that is not
    JSON) leaves the previous pair untouched. Returns the directory.
    """
    text = json.dumps(metrics, indent=2)

    def write(tmp):
        paddle.save(state_dict, os.path.join(tmp, "model.pdparams"))
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            f.write(text)

    return atomic_dir(save_dir, "best_model", write, tmp_tag="best", old_tag="best")


def read_best_metrics(save_dir):
    """``(mIoU, iteration)`` from ``save_dir/best_model/metrics.json``, or None.

    None when the file is missing or unreadable, or its mIoU is not a number (NaN is saved as
    null): such a file records no best model that a later one must beat.
    """
    path = os.path.join(save_dir, "best_model", "metrics.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        miou, iteration = saved.get("mIoU"), saved.get("iteration")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(miou, bool) or not isinstance(miou, (int, float)) or math.isnan(miou):
        return None
    return float(miou), iteration


def recover_interrupted_saves(save_dir):
    """Repair what a process killed in the middle of a save left in ``save_dir``.

    A ``.old-best-*`` / ``.old-iter_N-*`` directory whose final name is missing (killed
    between the two renames of a swap) is renamed back; otherwise it is a leftover and
    removed, as are ``.tmp-iter-*`` / ``.tmp-best-*`` directories (killed while writing).
    Run by rank 0 only, with no save in progress. A missing ``save_dir`` is fine.
    """
    restore_old_dirs(save_dir, r"best|iter_\d+",
                     lambda tag: "best_model" if tag == "best" else tag,
                     tmp_prefixes=(".tmp-iter-", ".tmp-best-"))


def _name_maps(model):
    """param.name (Paddle's global auto-name) <-> structured name, for optimizer state."""
    to_struct = {p.name: k for k, p in model.named_parameters()}
    return to_struct, {v: k for k, v in to_struct.items()}


def _rekey(state, mapping):
    """Rename ``<param.name>_<accumulator>`` keys; the longest matching prefix wins."""
    names = sorted(mapping, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        new = key
        for name in names:
            if key.startswith(name + "_"):
                new = mapping[name] + key[len(name):]
                break
        out[new] = value
    return out


def save_checkpoint(save_dir, iteration, model, optimizer, extra, keep_max):
    """Write ``save_dir/iter_<iteration>`` atomically (an existing one is swapped out) and
    prune to the newest ``keep_max``. ``extra``: picklable dict stored with the iteration and
    RNG states (config, best mIoU)."""
    to_struct, _ = _name_maps(model)
    state = dict(extra, iteration=iteration, python_rng=random.getstate(),
                 numpy_rng=np.random.get_state(), paddle_rng=paddle.get_rng_state())

    def write(tmp):
        paddle.save(model_state_dict(model), os.path.join(tmp, "model.pdparams"))
        paddle.save(_rekey(optimizer.state_dict(), to_struct), os.path.join(tmp, "model.pdopt"))
        with open(os.path.join(tmp, "state.pkl"), "wb") as f:
            pickle.dump(state, f)

    name = f"iter_{iteration:06d}"
    final = atomic_dir(save_dir, name, write, tmp_tag="iter", old_tag=name)
    _prune(save_dir, keep_max)
    return final


def _checkpoints(save_dir):
    found = []
    for name in os.listdir(save_dir):
        m = _ITER_DIR.match(name)
        if m and os.path.isfile(os.path.join(save_dir, name, "state.pkl")):
            found.append((int(m.group(1)), os.path.join(save_dir, name)))
    return sorted(found)


def _prune(save_dir, keep_max):
    for _, path in _checkpoints(save_dir)[:-keep_max]:
        shutil.rmtree(path, ignore_errors=True)
    recover_interrupted_saves(save_dir)


def find_latest(path):
    """The checkpoint directory to resume from: ``path`` itself or the newest ``iter_*`` in it."""
    if not os.path.isdir(path):
        raise CheckpointError(f"--resume_model {path!r}: no such directory")
    if os.path.isfile(os.path.join(path, "state.pkl")):
        return path
    found = _checkpoints(path)
    if not found:
        raise CheckpointError(
            f"--resume_model {path!r}: neither a checkpoint (iter_N directory with state.pkl) "
            f"nor a run directory containing one")
    return found[-1][1]


def load_checkpoint(path, model, optimizer):
    """Restore model, optimizer (with LR scheduler) and RNG states; returns the state dict.

    ``path`` is a checkpoint directory or a run directory (its newest checkpoint is used).
    """
    ckpt = find_latest(path)
    try:
        with open(os.path.join(ckpt, "state.pkl"), "rb") as f:
            state = pickle.load(f)
        weights = paddle.load(os.path.join(ckpt, "model.pdparams"))
        opt_state = paddle.load(os.path.join(ckpt, "model.pdopt"))
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise CheckpointError(f"checkpoint {ckpt!r} cannot be read: {e}") from e
    check_stored_normalization(weights.pop(NORMALIZATION_KEY, None), model, ckpt,
                               CheckpointError)
    own = model.state_dict()
    bad = [k for k in own if k not in weights or tuple(weights[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(
            f"checkpoint {ckpt!r} does not fit the model (first mismatches: {bad[:3]}); "
            f"was it trained with another model.type or num_classes?")
    model.set_state_dict(weights)
    _, to_name = _name_maps(model)
    optimizer.set_state_dict(_rekey(opt_state, to_name))
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    paddle.set_rng_state(state["paddle_rng"])
    state["path"] = ckpt
    return state
