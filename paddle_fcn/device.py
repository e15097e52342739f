"""Which device runs a model: one policy for training, evaluation, export and prediction.

``device`` is ``auto`` (the GPU when this Paddle build has a usable one, else the CPU),
``cpu`` or ``gpu``. Asking for ``gpu`` without one is a ``ConfigError`` (bad input, not a
bug: the tools print it and exit with 2). CPU threads are set by ``paddle_fcn.runtime``
before Paddle is imported; a config's ``cpu_threads`` changes them for its run.
"""
import paddle

from paddle_fcn.errors import ConfigError

__all__ = ["DEVICES", "use_gpu", "setup_device"]

DEVICES = ("auto", "cpu", "gpu")


def use_gpu(device="auto"):
    """Whether ``device`` means the GPU on this machine; checks the value."""
    if device not in DEVICES:
        raise ConfigError(f"device: must be one of {', '.join(DEVICES)}, got {device!r}")
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise ConfigError("device gpu: this Paddle build has no usable GPU (install "
                          "paddlepaddle-gpu, see README) ")
    return device == "gpu" or (device == "auto" and has_gpu)


def setup_device(device="auto", cpu_threads=None):
    """``paddle.set_device`` for eager work (training, evaluation, export); returns the name
    (``cpu`` or ``gpu:<this rank's card>``).

    ``cpu_threads`` (on the CPU only; None keeps ``runtime``'s, the physical cores): the
    OpenMP / MKL threads of Paddle's CPU kernels from now on, for the whole process (a
    ``Predictor`` of the same run is given them too: ``inference.segmenter``). A small
    net's ops are too short to split: the quickstart's steps are faster on one thread
    (docs/performance.md#the-quickstart).
    """
    name = "cpu"
    if use_gpu(device):
        import paddle.distributed as dist  # the card of this rank under distributed.launch

        name = f"gpu:{dist.ParallelEnv().dev_id}"
    paddle.set_device(name)
    if name == "cpu" and cpu_threads is not None:
        paddle.base.core.set_num_threads(int(cpu_threads))  # omp_set_num_threads + MKL's
    return name
