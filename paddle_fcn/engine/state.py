"""What a training run holds and returns: ``TrainState``, ``TrainSummary``, ``TrainingDiverged``."""
from dataclasses import dataclass, field
from typing import Callable, Optional

import paddle

from paddle_fcn.engine.amp import MixedPrecision

__all__ = ["TrainState", "TrainSummary", "TrainingDiverged", "quiet"]


def quiet(message):
    """The default ``log``: a library call prints nothing."""



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


@dataclass
class TrainState:
    """Everything ``train`` holds between steps. ``model`` may be the DataParallel wrapper
    (``bare`` is the model itself); ``scheduler`` is the ``IterLR`` the optimizer reads, stepped
    once per optimizer step; ``iteration`` is the last step done; ``best_*`` the best
    validation mIoU so far and its step; ``log`` receives the run's messages (a callable
    taking a string; the command line passes ``tqdm.write``); ``amp`` the mixed-precision
    casts and loss scaling (``engine.amp``; fp32: none)."""
    model: paddle.nn.Layer
    optimizer: paddle.optimizer.Optimizer
    scheduler: paddle.optimizer.lr.LRScheduler
    train_ds: paddle.io.Dataset
    val_ds: Optional[paddle.io.Dataset]
    num_classes: int
    rank: int = 0
    world: int = 1
    log: Callable[[str], None] = quiet
    amp: MixedPrecision = field(default_factory=MixedPrecision)
    iteration: int = 0
    best_mIoU: Optional[float] = None
    best_iter: Optional[int] = None

    @property
    def bare(self):
        return self.model._layers if isinstance(self.model, paddle.DataParallel) else self.model
