"""PASCAL-Context, Cityscapes and ADE20K: tiny fixtures in each set's real on-disk layout,
every kind of stored value -> the exact label array after loading; the data check applies
the same mapping; the .mat converter of PASCAL-Context (skipped without scipy)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from paddle_fcn.data import (ADE20K, Cityscapes, DataError, PascalContext, build_dataset,
                             check_dataset, write_image, write_label)
from paddle_fcn.data.cityscapes import LABEL_ID_TO_TRAIN_ID
from paddle_fcn.data.context import CONTEXT_CLASSES, context_lut, convert_context_mat


def _image(h, w, seed):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


# --- PASCAL-Context -------------------------------------------------------------------------
CONTEXT_LABEL = np.array([[0, 1, 59, 255],
                          [20, 21, 0, 58]], np.uint8)  # background, classes, void


def make_context(root, ids=("2008_000002", "2008_000003"), split="train"):
    for i, name in enumerate(ids):
        write_image(os.path.join(root, "JPEGImages", name + ".jpg"), _image(2, 4, i))
        write_label(os.path.join(root, "SegmentationClassContext", name + ".png"),
                    np.roll(CONTEXT_LABEL, i, axis=1))
    split_dir = os.path.join(root, "ImageSets", "SegmentationContext")
    os.makedirs(split_dir, exist_ok=True)
    with open(os.path.join(split_dir, split + ".txt"), "w") as f:
        f.write("".join(n + "\n" for n in ids))
    return root


def test_pascal_context_background_is_class_zero_by_default(tmp_path):
    root = make_context(str(tmp_path / "VOCdevkit" / "VOC2010"))
    ds = PascalContext(str(tmp_path), "train")  # the folder holding VOCdevkit works too
    assert ds.num_classes == 60 and ds.class_names[0] == "background"
    assert ds.class_names[59] == "wood" and len(ds) == 2
    np.testing.assert_array_equal(ds[0][1], CONTEXT_LABEL)
    np.testing.assert_array_equal(ds[1][1], np.roll(CONTEXT_LABEL, 1, axis=1))
    assert check_dataset(ds).ok


def test_pascal_context_reduce_zero_label_ignores_background(tmp_path):
    root = make_context(str(tmp_path / "VOC2010"))
    ds = build_dataset({"type": "PascalContext", "dataset_root": root, "mode": "train",
                        "reduce_zero_label": True})
    assert ds.num_classes == 59 and ds.class_names[0] == "aeroplane"
    np.testing.assert_array_equal(ds[0][1], [[255, 0, 58, 255], [19, 20, 255, 57]])
    assert check_dataset(ds).ok
    with pytest.raises(DataError, match="reduce_zero_label applies to type"):
        build_dataset({"type": "Cityscapes", "dataset_root": root, "reduce_zero_label": True})


def test_pascal_context_missing_split_names_the_file(tmp_path):
    root = make_context(str(tmp_path / "VOC2010"))
    with pytest.raises(DataError, match=r"SegmentationContext[/\\]val.txt"):
        PascalContext(root, "val")


def _labels_txt(path):
    """A 459-class style labels.txt: the 59 names (with spaces, as the release writes some)
    between other classes, in another order."""
    names = ["accordion", "air conditioner"] + [n.replace("table", " table") if n ==
                                                "diningtable" else n
                                                for n in reversed(CONTEXT_CLASSES[1:])]
    with open(path, "w") as f:
        f.write("".join(f"{i}: {n}\n" for i, n in enumerate(names, 1)))
    return {n.replace(" ", ""): i for i, n in enumerate(names, 1)}


def test_context_lut_maps_the_459_classes_by_name(tmp_path):
    index = _labels_txt(tmp_path / "labels.txt")
    lut = context_lut(str(tmp_path / "labels.txt"))
    assert lut[index["accordion"]] == 0 and lut[index["air conditioner".replace(" ", "")]] == 0
    assert lut[index["aeroplane"]] == 1 and lut[index["diningtable"]] == 11
    assert lut[index["wood"]] == 59 and lut[0] == 0
    (tmp_path / "bad.txt").write_text("1: accordion\n")
    with pytest.raises(DataError, match="does not list the PASCAL-Context class"):
        context_lut(str(tmp_path / "bad.txt"))


def test_convert_context_mat_writes_the_png_layout(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason="the .mat converter needs scipy")
    context, voc = tmp_path / "context", str(tmp_path / "VOC2010")
    (context / "trainval").mkdir(parents=True)
    index = _labels_txt(context / "labels.txt")
    full = np.array([[index["accordion"], index["aeroplane"]],
                     [index["wood"], index["tvmonitor"]]], np.uint16)
    for name in ("2008_000002", "2008_000003"):
        scipy_io.savemat(str(context / "trainval" / f"{name}.mat"), {"LabelMap": full})
        write_image(os.path.join(voc, "JPEGImages", name + ".jpg"), _image(2, 2, 0))
    os.makedirs(os.path.join(voc, "ImageSets", "Main"))
    with open(os.path.join(voc, "ImageSets", "Main", "train.txt"), "w") as f:
        f.write("2008_000002\n2008_000004\n")  # 2008_000004 has no Context label: left out
    with open(os.path.join(voc, "ImageSets", "Main", "val.txt"), "w") as f:
        f.write("2008_000003\n")
    assert convert_context_mat(str(context), voc) == 2
    ds = PascalContext(voc, "train")
    assert len(ds) == 1
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [59, 20]])
    assert len(PascalContext(voc, "val")) == 1
    scipy_io.savemat(str(context / "trainval" / "2008_000009.mat"), {"Other": full})
    with pytest.raises(DataError, match="2008_000009.mat has no variable 'LabelMap'"):
        convert_context_mat(str(context), voc)
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                        "convert_context.py")
    proc = subprocess.run([sys.executable, tool, str(context), voc], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "2008_000009.mat has no variable" in proc.stderr


# --- Cityscapes -----------------------------------------------------------------------------
# the official trainId of each label id 0..33 (cityscapesScripts helpers/labels.py), written
# out here independently of the module's table
OFFICIAL_TRAIN_IDS = [255] * 7 + [0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9, 10,
                                  11, 12, 13, 14, 15, 255, 255, 16, 17, 18]


def make_cityscapes(root, mode="train", unofficial=40):
    """Two cities; the label holds each of the 34 ids, 255, and ``unofficial`` (40: not an
    official id)."""
    ids = np.array(list(range(34)) + [255, unofficial], np.uint8).reshape(4, 9)
    for city, frame in (("aachen", "000000_000019"), ("bochum", "000001_000020")):
        stem = f"{city}_{frame}"
        write_image(os.path.join(root, "leftImg8bit", mode, city, stem + "_leftImg8bit.png"),
                    _image(4, 9, 1))
        label = os.path.join(root, "gtFine", mode, city, stem + "_gtFine_labelIds.png")
        os.makedirs(os.path.dirname(label), exist_ok=True)
        cv2.imwrite(label, ids)  # 8-bit grayscale, as the official files
        cv2.imwrite(label.replace("labelIds", "instanceIds"), ids)  # not picked up
    return ids


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
                             "lindau_000000_000019_leftImg8bit.png"), _image(2, 4, 2))
    path = os.path.join(root, "gtFine", "val", "lindau", "lindau_000000_000019_gtFine_labelIds.png")
    os.makedirs(os.path.dirname(path))
    cv2.imwrite(path, ids)
    ds = Cityscapes(root, "val")
    np.testing.assert_array_equal(ds[0][1], [[255, 0, 1, 18], [255, 13, 255, 255]])
    assert check_dataset(ds).ok


# --- ADE20K ---------------------------------------------------------------------------------
def make_ade20k(root, mode="training", prefix="ADE_train"):
    label = np.array([[0, 1, 2, 150], [149, 0, 75, 1]], np.uint8)
    for i in range(2):
        name = f"{prefix}_{i + 1:08d}"
        write_image(os.path.join(root, "images", mode, name + ".jpg"), _image(2, 4, i))
        os.makedirs(os.path.join(root, "annotations", mode), exist_ok=True)
        cv2.imwrite(os.path.join(root, "annotations", mode, name + ".png"), label)
    return label


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
