"""Device policy (``paddle_fcn/device.py``): a config's ``cpu_threads`` reaches Paddle's CPU
kernels."""
import ctypes
import glob
import os

import paddle
import pytest

from paddle_fcn.device import setup_device


def _openmp():
    """The Intel OpenMP runtime the Paddle wheel bundles (its kernels' thread pool)."""
    libs = glob.glob(os.path.join(os.path.dirname(paddle.__file__), "libs", "libiomp5.so"))
    if not libs:
        pytest.skip("this Paddle build bundles no libiomp5.so to ask for its thread count")
    return ctypes.CDLL(libs[0])


def test_cpu_threads_sets_the_kernel_threads_and_none_keeps_them():
    omp = _openmp()
    before = omp.omp_get_max_threads()
    try:
        assert setup_device("cpu", cpu_threads=1) == "cpu"
        assert omp.omp_get_max_threads() == 1
        setup_device("cpu", cpu_threads=3)
        assert omp.omp_get_max_threads() == 3
        setup_device("cpu")  # None: whatever is set stays
        assert omp.omp_get_max_threads() == 3
    finally:
        setup_device("cpu", cpu_threads=before)
    assert omp.omp_get_max_threads() == before
