"""Device, seed and process-group setup shared by training, evaluation and tools."""
import random

import numpy as np
import paddle
import paddle.distributed as dist

__all__ = ["setup_device", "seed_everything", "world_info"]


def setup_device(device="auto"):
    """Select ``gpu`` when requested or available, else ``cpu``; returns the device string.

    CPU threads are set by ``paddle_fcn.runtime`` before paddle is imported (Paddle's own
    default is one thread, 2-5x slower here).
    """
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be auto, cpu or gpu, got {device!r}")
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise RuntimeError("--device gpu: this Paddle build has no usable GPU "
                           "(install paddlepaddle-gpu, see README) ")
    name = "gpu" if (device == "gpu" or (device == "auto" and has_gpu)) else "cpu"
    if name == "gpu":
        name = f"gpu:{dist.ParallelEnv().dev_id}"
    paddle.set_device(name)
    return name


def seed_everything(seed):
    """Seed Python, NumPy and Paddle (rank offsets are added by the caller)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def world_info():
    """``(rank, world_size)`` of this process (``(0, 1)`` outside a distributed launch)."""
    env = dist.ParallelEnv()
    return env.rank, env.world_size
