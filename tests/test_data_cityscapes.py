"""Cityscapes (``paddle_fcn.data.cityscapes``): every official label id -> its trainId
after loading, checked against the official table written out independently; the data check
applies the same mapping."""
import os

import cv2
import numpy as np

from fixtures import make_cityscapes, random_image
from paddle_fcn.data import Cityscapes, check_dataset, write_image
from paddle_fcn.data.cityscapes import LABEL_ID_TO_TRAIN_ID


# the official trainId of each label id 0..33 (cityscapesScripts helpers/labels.py), written
# out here independently of the module's table
OFFICIAL_TRAIN_IDS = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10,
                                  11, 12, 13, 14, 15, 255, 255, 16, 17, 18]


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    make_cityscapes(str(tmp_path))
    ds = Cityscapes(str(tmp_path), "train")
    assert len(ds) == 2 and ds.num_classes == 19 and ds.class_names[18] == "bicycle"
    assert ds.files[1][1] == os.path.join(str(tmp_path), "gtFine", "train", "bochum",
                                          "bochum_000001_000020_gtFine_labelIds.png")
    assert LABEL_ID_TO_TRAIN_ID == {i: t for i, t in enumerate(OFFICIAL_TRAIN_IDS) if t != 255}
    expected = np.array(OFFICIAL_TRAIN_IDS + [255, 40]).reshape(4, 9)
    np.testing.assert_array_equal(ds[0][1], expected)
    report = check_dataset(ds)  # 40 stays out of range: the check names the files
    assert not report.ok and "values [40]" in str(report) and "aachen_000000" in str(report)


def test_cityscapes_official_ids_pass_the_check(tmp_path):
    ids = np.array([[0, 7, 8, 33], [9, 26, 255, 1]], np.uint8)
    root = str(tmp_path)
    write_image(os.path.join(root, "leftImg8bit", "val", "lindau",
                             "lindau_000000_000019_leftImg8bit.png"), random_image(2, 4, 2))
    path = os.path.join(root, "gtFine", "val", "lindau", "lindau_000000_000019_gtFine_labelIds.png")
    os.makedirs(os.path.dirname(path))
    cv2.imwrite(path, ids)
    ds = Cityscapes(root, "val")
    np.testing.assert_array_equal(ds[0][1], [[255, 0, 1, 18], [255, 13, 255, 255]])
    assert check_dataset(ds).ok
