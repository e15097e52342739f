"""The synthetic VOC-layout data set: deterministic, VOC-like, complete or regenerated."""
import json
import os

import cv2
import numpy as np
import pytest

from paddle_fcn.data import (
    DataError, PascalVOC, SYNTHETIC_CLASSES, build_dataset, ensure_synthetic_voc,
    generate_synthetic_voc, read_label,
)

SMALL = dict(num_train=6, num_val=3, min_size=40, max_size=64)


def all_files(root):
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    a = all_files(generate_synthetic_voc(str(tmp_path / "a"), seed=3, **SMALL))
    b = all_files(generate_synthetic_voc(str(tmp_path / "b"), seed=3, **SMALL))
    c = all_files(generate_synthetic_voc(str(tmp_path / "c"), seed=4, **SMALL))
    assert len(a) == 9 * 2 + 3 + 2  # jpg + png per image, 3 splits, labels.txt, synthetic.json
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if k.endswith((".jpg", ".png")) and a[k] != c[k]]
    assert len(differing) == 18


def test_voc_layout_sizes_borders_and_classes(tmp_path):
    root = generate_synthetic_voc(str(tmp_path / "syn"), seed=0, **SMALL)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        assert os.path.isdir(os.path.join(root, sub))
    train, val = PascalVOC(root, "train"), PascalVOC(root, "val")
    assert len(train) == 6 and len(val) == 3 and len(PascalVOC(root, "trainval")) == 9
    assert train.num_classes == 6 and train.class_names == list(SYNTHETIC_CLASSES)
    shapes, present = [], set()
    for ds in (train, val):
        for i in range(len(ds)):
            image, label = ds.raw(i)
            shapes.append(label.shape)
            values = set(np.unique(label).tolist())
            assert values <= set(range(6)) | {255}
            assert 255 in values and 0 in values
            present |= values
            # void is a 4 px band along outlines, not blobs: a 3x3 erosion keeps its middle,
            # a 7x7 erosion removes it (but where two outlines run close together)
            void = (label == 255).astype(np.uint8)
            assert 0.05 < void.mean() < 0.5
            assert cv2.erode(void, np.ones((3, 3), np.uint8)).sum() >= 0.3 * void.sum()
            assert cv2.erode(void, np.ones((7, 7), np.uint8)).sum() <= 0.1 * void.sum()
    assert present == set(range(6)) | {255}
    sides = [s for shape in shapes for s in shape]
    assert all(40 <= s <= 64 for s in sides) and not all(s % 32 == 0 for s in sides)
    assert not any(h % 32 == 0 and w % 32 == 0 for h, w in shapes)
    image, label = train[0]
    assert image.dtype == np.float32 and image.shape[0] == 3 and label.dtype == np.int64


def test_object_colours_do_not_identify_the_class(tmp_path):
    """Shape, not colour, tells classes apart: a class's mean colour varies across objects."""
    root = generate_synthetic_voc(str(tmp_path / "syn"), seed=1, num_train=20, num_val=1,
                                  min_size=48, max_size=64)
    ds = PascalVOC(root, "train")
    colours = {c: [] for c in range(1, 6)}
    for i in range(len(ds)):
        image, label = ds.raw(i)
        for c in np.unique(label):
            if 1 <= c <= 5:
                colours[int(c)].append(image[label == c].mean(axis=0))
    for c, cs in colours.items():
        assert len(cs) >= 3, f"class {c} too rare"
        assert np.std(np.array(cs), axis=0).max() > 30


def test_ensure_reuses_complete_and_regenerates_incomplete(tmp_path):
    root = str(tmp_path / "syn")
    ensure_synthetic_voc(root, **SMALL)
    label_path = os.path.join(root, "SegmentationClass", "syn_00002.png")
    stamp = os.stat(label_path).st_mtime_ns
    assert ensure_synthetic_voc(root, **SMALL) == root
    assert os.stat(label_path).st_mtime_ns == stamp  # reused, not rewritten
    with open(os.path.join(root, "synthetic.json")) as f:
        assert json.load(f)["num_train"] == 6

    os.remove(label_path)  # e.g. an interrupted copy
    ensure_synthetic_voc(root, **SMALL)
    assert os.path.isfile(label_path)
    assert read_label(label_path).shape[0] >= 40

    ensure_synthetic_voc(root, **dict(SMALL, num_train=4))  # other parameters -> regenerated
    assert len(PascalVOC(root, "train")) == 4
    leftovers = [n for n in os.listdir(tmp_path) if n not in ("syn", ".syn.lock")]
    assert leftovers == []  # temp folders cleaned up (the lock file stays, by design)


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "precious.txt").write_text("user data")
    with pytest.raises(DataError, match="refusing to overwrite"):
        ensure_synthetic_voc(str(root), **SMALL)
    assert (root / "precious.txt").read_text() == "user data"


def test_build_dataset_synthetic(tmp_path):
    cfg = dict(type="SyntheticVOC", dataset_root=str(tmp_path / "syn"), mode="val",
               num_classes=6, synthetic=dict(seed=0, **SMALL),
               transforms=[{"type": "RandomCrop", "crop_size": 32}])
    ds = build_dataset(cfg, None, 6)
    assert isinstance(ds, PascalVOC) and len(ds) == 3
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and label.shape == (32, 32)
    with pytest.raises(DataError, match="unknown key.*'seeds'"):
        build_dataset(dict(cfg, synthetic={"seeds": 1}), None, 6)


def test_concurrent_first_use_generates_once_and_both_read_it(tmp_path):
    # Two processes asking for a missing set at once (two ranks, two runs) must not swap the
    # folder under each other: one generates under the lock, the other finds it complete.
    import subprocess
    import sys
    root = tmp_path / "syn"
    code = ("import sys; sys.path.insert(0, {repo!r}); import paddle_fcn.runtime; "
            "from paddle_fcn.data.synthetic import ensure_synthetic_voc; "
            "from paddle_fcn.data.voc import PascalVOC; "
            "r = ensure_synthetic_voc({root!r}, num_train=30, num_val=6, min_size=40, max_size=56); "
            "ds = PascalVOC(r, 'train'); [ds.raw(i) for i in range(len(ds))]; "
            "import os; print(len(ds), os.stat(r).st_ino)")
    repo = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", code.format(repo=repo, root=str(root))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    final = os.stat(root).st_ino
    # Generated exactly once: every process got (and read) the folder that is there now.
    assert [out.split() for out, _ in outs] == [["30", str(final)]] * 3
