"""CPU runtime settings that must be in place before ``paddle`` is imported.

Paddle's CPU kernels use OpenMP and its bundled MKL. Two settings decide their speed and are
read only once, when the shared libraries load:

* ``OMP_NUM_THREADS``: Paddle defaults to one thread.
* ``MKL_DEBUG_CPU_TYPE=5``: the bundled MKL takes a slow generic path on AMD CPUs unless told
  to use its AVX2 kernels.

What each is worth, measured: docs/performance.md#cpu-threads-and-mkl.

``configure()`` sets both with ``os.environ.setdefault`` (a user's explicit value wins) and is
called by ``paddle_fcn/__init__.py`` before anything imports paddle. If paddle was imported
first, the settings can no longer take effect and a warning says so.

Under ``python -m paddle.distributed.launch`` the processes of one machine share its cores:
each gets ``cores // PADDLE_LOCAL_SIZE`` threads (at least one) so that N training processes
do not oversubscribe the CPU N-fold. The launcher's own ``import paddle`` writes
``OMP_NUM_THREADS=1`` into the environment its workers inherit whenever it was unset, so
under the launcher a value of exactly 1 is taken as unset; any other value is the user's.
"""
import contextlib
import ctypes
import io
import os
import sys
import warnings

__all__ = ["configure", "default_threads", "import_paddle", "physical_cores",
           "retain_freed_memory"]


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


def default_threads(environ=None, cores=None):
    """Threads for this process: physical cores / processes the launcher started on this machine.

    ``environ`` (default ``os.environ``): ``PADDLE_LOCAL_SIZE`` is set by
    ``paddle.distributed.launch``. ``cores`` defaults to ``physical_cores()``.
    """
    environ = os.environ if environ is None else environ
    cores = physical_cores() if cores is None else cores
    try:
        local = max(1, int(environ.get("PADDLE_LOCAL_SIZE", 1)))
    except ValueError:
        local = 1
    return max(1, cores // local)


def configure():
    """Set the thread and MKL environment for fast CPU execution; returns the thread count."""
    if "PADDLE_LOCAL_SIZE" in os.environ and os.environ.get("OMP_NUM_THREADS") == "1":
        del os.environ["OMP_NUM_THREADS"]  # the launcher's default, not a user's choice
    threads = os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    # Paddle's C++ INFO lines (pir_interpreter, predictor set-up) drown the progress output;
    # warnings and errors still show.
    os.environ.setdefault("GLOG_minloglevel", "1")
    if "paddle" in sys.modules and not getattr(configure, "_warned", False):
        configure._warned = True
        warnings.warn(
            "paddle was imported before paddle_fcn; OMP_NUM_THREADS/MKL_DEBUG_CPU_TYPE could not "
            "take effect and CPU runs may be several times slower. Import paddle_fcn first.",
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
    # Printed on every training-mode BatchNorm call; it describes Paddle's normal behaviour.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
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


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
RETAIN_ENV = "PADDLE_FCN_RETAIN_MEMORY"


def retain_freed_memory(environ=None):
    """Make glibc keep the memory this process frees, for reuse, instead of handing it back to
    the OS; returns True when applied. Process-wide and not undone; called by the CPU
    ``Predictor`` unless ``retain_memory=False``.

    Paddle's CPU allocator takes each tensor from ``malloc`` and frees it after use. glibc
    serves large blocks (a 64-channel 512 x 512 feature map is 67 MB) with ``mmap`` and returns
    them with ``munmap``, so every inference pass writes into freshly mapped, zero-filled
    pages (the faults and time measured: docs/performance.md#glibc-malloc-setting). Set here:
    ``M_MMAP_MAX = 0`` (no mmap'd blocks: everything comes from the heap) and
    ``M_TRIM_THRESHOLD`` = 2 GB (freed memory at the heap top is kept). The cost is that the
    process's resident memory stays at its high-water mark rather than falling between passes.

    Skipped (False) when ``PADDLE_FCN_RETAIN_MEMORY=0`` is set (``environ``, default
    ``os.environ``), and on platforms without glibc (musl, macOS, Windows).
    """
    environ = os.environ if environ is None else environ
    if environ.get(RETAIN_ENV, "1").strip() == "0" or not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # trimming off first: mmap off with trimming on would return the heap top after all
    return bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)) and bool(mallopt(_M_MMAP_MAX, 0))


def _glibc():
    """Whether this process runs on glibc (asked of the C library, not the interpreter file)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or a libc without the name
        return False
