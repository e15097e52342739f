"""ADE20K (``paddle_fcn.data.ade20k``): the 150 classes with the zero label reduced to
void, both splits' folder names, and an out-of-range value reported by the data check."""
import os

import cv2
import numpy as np

from fixtures import make_ade20k
from paddle_fcn.data import ADE20K, build_dataset, check_dataset


def test_ade20k_reduces_zero_label(tmp_path):
    make_ade20k(str(tmp_path))
    ds = ADE20K(str(tmp_path), "train")
    assert len(ds) == 2 and ds.num_classes == 150
    assert ds.class_names[0] == "wall" and ds.class_names[149] == "flag"
    np.testing.assert_array_equal(ds[1][1], [[255, 0, 1, 149], [148, 255, 74, 0]])
    assert check_dataset(ds).ok
    make_ade20k(str(tmp_path), "validation", "ADE_val")
    assert len(build_dataset({"type": "ADE20K", "dataset_root": str(tmp_path),
                              "mode": "val"})) == 2


def test_ade20k_value_above_150_is_reported(tmp_path):
    make_ade20k(str(tmp_path))
    bad = np.array([[151, 1, 1, 1], [1, 1, 1, 1]], np.uint8)
    cv2.imwrite(os.path.join(str(tmp_path), "annotations", "training",
                             "ADE_train_00000002.png"), bad)
    report = check_dataset(ADE20K(str(tmp_path), "train"))
    assert not report.ok and "ADE_train_00000002.png" in str(report)
