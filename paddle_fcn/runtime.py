"""CPU runtime settings that must be in place before ``paddle`` is imported.

Paddle's CPU kernels use OpenMP and its bundled MKL. Two settings decide their speed and are
read only once, when the shared libraries load:

* ``OMP_NUM_THREADS``: Paddle defaults to one thread. Measured here (FCN-8s VGG16, 320x320,
  batch 1, eager, 2-core AMD EPYC): 5.6 s with one thread, 3.0 s with two.
* ``MKL_DEBUG_CPU_TYPE=5``: the bundled MKL takes a slow generic path on AMD CPUs unless told
  to use its AVX2 kernels; with both settings the same forward pass takes 1.3 s.

``configure()`` sets both with ``os.environ.setdefault`` (a user's explicit value wins) and is
called by ``paddle_fcn/__init__.py`` before anything imports paddle. If paddle was imported
first, the settings can no longer take effect and a warning says so.
"""
import contextlib
import io
import os
import sys
import warnings

__all__ = ["configure", "import_paddle", "physical_cores"]


def physical_cores():
    """Number of physical cores this process may run on (hyper-threads counted once)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as f:
                package = f.read().strip()
            with open(f"{base}/core_id") as f:
                core = f.read().strip()
        except OSError:
            return len(allowed)
        cores.add((package, core))
    return max(1, len(cores))


def configure():
    """Set the thread and MKL environment for fast CPU execution; returns the thread count."""
    threads = os.environ.setdefault("OMP_NUM_THREADS", str(physical_cores()))
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    if "paddle" in sys.modules and not getattr(configure, "_warned", False):
        configure._warned = True
        warnings.warn(
            "paddle was imported before paddle_fcn; OMP_NUM_THREADS/MKL_DEBUG_CPU_TYPE could not "
            "take effect and CPU runs may be 2-4x slower. Import paddle_fcn first.",
            RuntimeWarning,
            stacklevel=3,
        )
    return int(threads)


def import_paddle():
    """``import paddle`` without its start-up warning about ``OMP_NUM_THREADS > 1``.

    Paddle prints "PLEASE USE OMP_NUM_THREADS WISELY" whenever more than one thread is set,
    which is exactly what ``configure`` does on purpose; anything else Paddle prints at import
    is passed through. Its "No ccache found" warning (about compiling C++ extensions, which
    this project never does) is silenced too.
    """
    if "paddle" in sys.modules:
        return sys.modules["paddle"]
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    for line in buf.getvalue().splitlines():
        if "OMP_NUM_THREADS" not in line:
            print(line, file=sys.stderr)
    return paddle
