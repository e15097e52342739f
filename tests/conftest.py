"""Shared pytest setup: paddle_fcn is imported first so its CPU thread settings apply."""

import paddle_fcn  # noqa: F401  (sets OMP/MKL env before paddle loads)
import numpy as np
import paddle
import pytest


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
