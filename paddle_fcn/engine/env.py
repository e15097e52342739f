"""Seeds and the process group of a training run (the device: ``paddle_fcn.device``)."""
import random

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ["seed_everything", "world_info"]


def seed_everything(seed):
    """Seed Python, NumPy and Paddle (rank offsets are added by the caller)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def world_info():
    """``(rank, world_size)`` of this process (``(0, 1)`` outside a distributed launch)."""
    env = dist.ParallelEnv()
    return env.rank, env.world_size
