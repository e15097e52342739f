"""PASCAL-Context (``paddle_fcn.data.context``): the 60-class layout as loaded, the
reduce_zero_label option, the 459-class lookup by name and the .mat converter (skipped
without scipy)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from fixtures import CONTEXT_LABEL, make_context, random_image
from paddle_fcn.data import DataError, PascalContext, build_dataset, check_dataset, write_image
from paddle_fcn.data.context import CONTEXT_CLASSES, context_lut, convert_context_mat


def test_pascal_context_background_is_class_zero_by_default(tmp_path):
    make_context(str(tmp_path / "VOCdevkit" / "VOC2010"))
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
        write_image(os.path.join(voc, "JPEGImages", name + ".jpg"), random_image(2, 2, 0))
    os.makedirs(os.path.join(voc, "ImageSets", "Main"))
    with open(os.path.join(voc, "ImageSets", "Main", "train.txt"), "w") as f:
        f.write("2008_000002\n2008_000004\n")  # 2008_000004 has no Context label: left out
    with open(os.path.join(voc, "ImageSets", "Main", "val.txt"), "w") as f:
        f.write("2008_000003\n")
    result = convert_context_mat(str(context), voc)
    assert result.written == 2 and not result.missing_splits
    assert result.splits == {"train": (2, ["2008_000004"]), "val": (1, [])}
    assert result.lines() == ["train: 1 of 2 ids; 1 have no .mat label and are left out "
                              "(2008_000004)", "val: 1 of 1 ids"]
    ds = PascalContext(voc, "train")
    assert len(ds) == 1
    np.testing.assert_array_equal(ds[0][1], [[0, 1], [59, 20]])
    assert len(PascalContext(voc, "val")) == 1
    with pytest.raises(DataError, match="Main/train.txt and val.txt not found"):
        convert_context_mat(str(context), str(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()
    scipy_io.savemat(str(context / "trainval" / "2008_000009.mat"), {"Other": full})
    with pytest.raises(DataError, match="2008_000009.mat has no variable 'LabelMap'"):
        convert_context_mat(str(context), voc)
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                        "convert_context.py")
    proc = subprocess.run([sys.executable, tool, str(context), voc], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "2008_000009.mat has no variable" in proc.stderr
