"""Atomic checkpoints: a kill at any moment never leaves a corrupt latest checkpoint.

Layout of a run directory (``save_dir``)::

    iter_000200/              one complete checkpoint (written as .tmp-*, then renamed)
        model.pdparams        model weights (structured names, as model.state_dict())
        model.pdopt           optimizer state incl. the LR scheduler, keyed by structured names
        state.pkl             iteration, RNG states (python, numpy, paddle), config dict
    best_model/model.pdparams the best weights by validation mIoU (+ metrics.json)
    config.yml                the resolved configuration of the run

A checkpoint directory only ever appears under its final name through ``os.replace`` of a fully
written and fsync'ed temporary directory, so every ``iter_*`` directory is complete.
"""
import os
import pickle
import random
import re
import shutil
import tempfile

import numpy as np
import paddle

__all__ = ["save_checkpoint", "load_checkpoint", "find_latest", "atomic_save",
           "atomic_write_text", "CheckpointError"]

_ITER_DIR = re.compile(r"^iter_(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint path that cannot be resumed from; the message names the path."""


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_save(obj, path):
    """``paddle.save(obj, path)`` through a temporary file and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        paddle.save(obj, tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(folder)


def atomic_write_text(text, path):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    """Write ``save_dir/iter_<iteration>`` atomically and prune to the newest ``keep_max``.

    ``extra``: picklable dict stored with the iteration and RNG states (config, best mIoU).
    """
    os.makedirs(save_dir, exist_ok=True)
    final = os.path.join(save_dir, f"iter_{iteration:06d}")
    tmp = tempfile.mkdtemp(prefix=".tmp-iter-", dir=save_dir)
    try:
        to_struct, _ = _name_maps(model)
        paddle.save(model.state_dict(), os.path.join(tmp, "model.pdparams"))
        paddle.save(_rekey(optimizer.state_dict(), to_struct), os.path.join(tmp, "model.pdopt"))
        state = dict(extra, iteration=iteration, python_rng=random.getstate(),
                     numpy_rng=np.random.get_state(), paddle_rng=paddle.get_rng_state())
        with open(os.path.join(tmp, "state.pkl"), "wb") as f:
            pickle.dump(state, f)
        for name in os.listdir(tmp):
            _fsync_file(os.path.join(tmp, name))
        if os.path.exists(final):  # re-saving the same iteration after a resume
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(save_dir)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
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
    for name in os.listdir(save_dir):  # leftovers of a process killed mid-save
        if name.startswith(".tmp-iter-"):
            shutil.rmtree(os.path.join(save_dir, name), ignore_errors=True)


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
