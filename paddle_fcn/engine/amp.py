"""Mixed-precision training as PaddleSeg offers it: ``precision: fp32 | fp16 | bf16`` and
``amp_level: O1 | O2`` (config keys; ``--precision`` / ``--amp_level`` on the command line).

- ``fp32``: nothing changes (the default).
- ``fp16``: ``paddle.amp.auto_cast`` (O1: white-listed ops such as conv and matmul in fp16;
  O2: the whole net in fp16 with fp32 master weights, ``paddle.amp.decorate``) and a dynamic
  loss scaler (``paddle.amp.GradScaler``) whose state (scale, good/bad step counters) is saved
  in every checkpoint and restored on resume, so a resumed run scales as the uninterrupted
  one would.
- ``bf16``: the same casts in bfloat16; bf16 has fp32's exponent range, so no loss scaling.

Paddle 3.3.1 runs automatic mixed precision on CUDA (and XPU / custom devices) only: on the
CPU ``auto_cast`` leaves every op in fp32 and ``GradScaler`` disables itself (both with a
warning; measured). So fp16 / bf16 on a CPU, or bf16 on a GPU without bf16 support (compute
capability < 8.0), is a ``ConfigError`` when training starts, naming the device and the way
out, rather than an "fp16" run that is fp32.
"""
from contextlib import nullcontext

import paddle

from paddle_fcn.errors import ConfigError

__all__ = ["MixedPrecision", "check_amp_device"]

_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def check_amp_device(precision):
    """``ConfigError`` unless the current device can train at ``precision``."""
    if precision == "fp32":
        return
    place = paddle.get_device()
    if not place.startswith(("gpu", "xpu")):
        raise ConfigError(
            f"precision: {precision} training needs a GPU: Paddle's automatic mixed precision "
            f"runs on CUDA / XPU only (on {place} auto_cast leaves every op in fp32); train "
            f"with precision fp32 here")
    supported = paddle.amp.is_float16_supported() if precision == "fp16" else \
        paddle.amp.is_bfloat16_supported()
    if not supported:
        raise ConfigError(f"precision: {precision} is not supported on {place} (bf16 needs "
                          f"compute capability 8.0 or newer); use fp16 or fp32")


class MixedPrecision:
    """The casts and the loss scaling of one training run (fp32: both do nothing).

    ``decorate(model, optimizer)`` once (O2 casts the parameters), then per step:
    ``with amp.autocast(): loss = ...``, ``amp.backward(loss)`` for each micro-batch and
    ``amp.step(optimizer)``. ``state_dict()`` / ``set_state_dict()``: the loss scaler's state
    for checkpoints (None without a scaler).
    """

    def __init__(self, precision="fp32", level="O1"):
        self.precision, self.level = precision, level
        self.dtype = _DTYPES.get(precision)
        self.scaler = None
        if precision == "fp16":  # dynamic loss scaling, Paddle's defaults
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)

    def decorate(self, model, optimizer):
        """``(model, optimizer)``, cast for O2 (fp32 master weights kept by the optimizer)."""
        if self.dtype is None or self.level != "O2":
            return model, optimizer
        return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2",
                                   dtype=self.dtype, master_weight=True)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return paddle.amp.auto_cast(level=self.level, dtype=self.dtype)

    def backward(self, loss):
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer):
        """The optimizer step; with a scaler: unscale, skip the step when a gradient is
        not finite, and adapt the scale."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self):
        return None if self.scaler is None else self.scaler.state_dict()

    def set_state_dict(self, state, where):
        """Restore a checkpoint's scaler ``state`` (None: saved without one)."""
        if (state is None) != (self.scaler is None):
            raise ConfigError(
                f"checkpoint {where!r} was written by a run with "
                f"{'no ' if state is None else ''}loss scaling (precision fp16 has it, fp32 and "
                f"bf16 do not), but this run's precision is {self.precision}; resume with "
                f"the precision it was trained with")
        if state is not None:
            self.scaler.load_state_dict(state)
