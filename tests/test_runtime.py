"""runtime.py: the Predictor's malloc setting (``runtime.retain_freed_memory``)."""
import os
import subprocess
import sys

import pytest

from paddle_fcn import runtime
from paddle_fcn.runtime import _glibc


_FAULTS = """
import importlib.util, resource
import numpy as np
spec = importlib.util.spec_from_file_location("runtime", {path!r})  # runtime.py alone: fast
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
applied = runtime.retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = np.ones(2 ** 24, dtype=np.float32); del block  # 64 MB: above glibc's mmap threshold
before = faults()
for _ in range(5):
    block = np.ones(2 ** 24, dtype=np.float32); del block
print(applied, faults() - before)
"""


@pytest.mark.skipif(not _glibc(), reason="glibc malloc settings")
def test_retain_freed_memory_stops_page_faults_of_reallocated_blocks():
    """A freed 64 MB block is reused without page faults; by default (and with
    PADDLE_FCN_RETAIN_MEMORY=0) glibc unmaps it and each reallocation faults its pages in
    again: at least one fault per 2 MB (huge) page, 5 x 32."""
    path = runtime.__file__
    results = {}
    for setting in ("1", "0"):
        env = dict(os.environ, PADDLE_FCN_RETAIN_MEMORY=setting)
        out = subprocess.run([sys.executable, "-c", _FAULTS.format(path=path)], env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        applied, faults = out.split()
        results[setting] = (applied, int(faults))
    assert results["1"][0] == "True" and results["1"][1] <= 4
    assert results["0"][0] == "False" and results["0"][1] >= 5 * 32
