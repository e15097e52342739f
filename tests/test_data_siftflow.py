"""SIFT Flow: the reference layout (.mat or PNG labels) -> exact labels per head; its config
trains with metrics per head (the two-headed FCN itself: test_models_multihead.py)."""
import math
import os

import numpy as np
import pytest
from fixtures import (CONFIGS, GEOMETRIC_LOADED, SEMANTIC_LOADED, SUB, make_siftflow,
                      quick_train_opts)

from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, SIFTFlow, build_dataset, check_dataset
from paddle_fcn.engine.trainer import train


@pytest.mark.parametrize("fmt", ["png", "mat"])
def test_siftflow_labels_per_head_exactly(tmp_path, fmt):
    if fmt == "mat":
        pytest.importorskip("scipy.io", reason=".mat labels need scipy (optional)")
    root = make_siftflow(str(tmp_path), fmt)
    sem = SIFTFlow(root, "trainval")
    assert sem.num_classes == 33 and sem.class_names[0] == "awning" and len(sem) == 2
    np.testing.assert_array_equal(sem[0][1], SEMANTIC_LOADED)
    geo = build_dataset({"type": "SIFTFlow", "dataset_root": root, "mode": "test",
                         "head": "geometric"})
    assert geo.num_classes == 3 and geo.class_names == ["sky", "horizontal", "vertical"]
    np.testing.assert_array_equal(geo[0][1], GEOMETRIC_LOADED)
    both = SIFTFlow(root, "trainval", head="both")
    assert both.heads == {"semantic": 33, "geometric": 3}
    packed = both[1][1]
    np.testing.assert_array_equal(both.codec.decode(packed, "semantic"), SEMANTIC_LOADED)
    np.testing.assert_array_equal(both.codec.decode(packed, "geometric"), GEOMETRIC_LOADED)
    for ds in (sem, geo, both):
        assert check_dataset(ds).ok


def test_siftflow_bad_mat_names_the_file(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason=".mat labels need scipy (optional)")
    root = make_siftflow(str(tmp_path), "mat")
    bad = os.path.join(root, "GeoLabels", SUB, "street_urb506.mat")
    scipy_io.savemat(bad, {"S": np.full((2, 4), 7, np.int16)})
    with pytest.raises(DataError, match=r"street_urb506\.mat: S must be a 2-D map of -1\.\.3"):
        SIFTFlow(root, "trainval", head="both")[1]


def test_siftflow_config_trains_two_iterations_with_metrics_per_head(tmp_path):
    root = make_siftflow(str(tmp_path / "data"))
    cfg = load_config(os.path.join(CONFIGS, "siftflow_fcn16s_vgg16.yml"),
                      quick_train_opts(root, tmp_path / "run"))
    summary = train(cfg, progress=False)
    assert len(summary.losses) == 2 and all(math.isfinite(v) for _, v in summary.losses)
    heads = summary.last_metrics["heads"]
    assert len(heads["semantic"]["class_IoU"]) == 33 and len(heads["geometric"]["class_IoU"]) == 3
    assert summary.last_metrics["mIoU"] == heads["semantic"]["mIoU"]
    assert os.path.isfile(tmp_path / "run" / "best_model" / "model.pdparams")
