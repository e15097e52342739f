"""Shared pytest setup: paddle_fcn is imported first so its CPU thread settings apply."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import paddle_fcn  # noqa: E402,F401  (sets OMP/MKL env before paddle loads)
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same RNG state."""
    np.random.seed(0)
    paddle.seed(0)
    yield


@pytest.fixture(scope="module")
def list_root(tmp_path_factory):
    """A `type: ListDataset` root with the splits of ``fixtures.make_list_data``."""
    from fixtures import make_list_data

    return make_list_data(str(tmp_path_factory.mktemp("listdata")))
