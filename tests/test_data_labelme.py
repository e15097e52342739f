"""labelme -> VOC: a hand-written JSON (polygon + rectangle + circle + an ignored region) gives
the exact mask; the output reads back with PascalVOC; bad files are named, nothing written."""
import base64
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from paddle_fcn.data import DataError, PascalVOC, read_label
from paddle_fcn.data.labelme import convert_labelme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = "__ignore__\n_background_\ncat\ndog\nsun\n"
SHAPES = [
    # right triangle: rows 4..7 hold 4, 3, 2, 1 pixels (interior and edge pixels)
    {"label": "cat", "points": [[0, 4], [3, 4], [0, 7]], "shape_type": "polygon"},
    # corners given bottom-right first: x 1..3, y 1..2, both corners included
    {"label": "dog", "points": [[3, 2], [1, 1]], "shape_type": "rectangle"},
    # centre (10, 5), radius 2: the pixels whose centre is within 2
    {"label": "sun", "points": [[10, 5], [10, 7]], "shape_type": "circle"},
    # no shape_type (older files): a polygon; painted last, it covers the dog's corner (3, 1)
    {"label": "__ignore__", "points": [[3, 0], [5, 0], [5, 1], [3, 1]]},
]
EXPECTED = np.array([
    [0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 2, 2, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
    [1, 1, 1, 1, 0, 0, 0, 0, 0, 3, 3, 3, 0, 0],
    [1, 1, 1, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 0],
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 0, 0],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
], np.uint8)


def _write_set(folder, names=("a", "b", "c"), embed=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.txt").write_text(LABELS)
    for i, name in enumerate(names):
        image = np.full((9, 14, 3), 40 * i, np.uint8)
        ok, png = cv2.imencode(".png", image)
        record = {"version": "5.4.1", "flags": {}, "shapes": SHAPES, "imagePath": f"{name}.png",
                  "imageData": None, "imageHeight": 9, "imageWidth": 14}
        if name in embed:
            record["imageData"] = base64.b64encode(png.tobytes()).decode()
            record["imagePath"] = f"elsewhere/{name}.png"
        else:
            (folder / f"{name}.png").write_bytes(png.tobytes())
        (folder / f"{name}.json").write_text(json.dumps(record))
    return folder


def test_labelme_shapes_become_the_exact_mask_in_the_voc_layout(tmp_path):
    src = _write_set(tmp_path / "src", embed=("c",))
    out = tmp_path / "voc"
    split = convert_labelme(str(src), str(out), str(src / "labels.txt"), val_ratio=0.34)
    assert len(split["val"]) == 1 and len(split["train"]) == 2
    for name in "abc":
        np.testing.assert_array_equal(read_label(str(out / "SegmentationClass" / f"{name}.png")),
                                      EXPECTED)
    assert (out / "JPEGImages" / "a.png").read_bytes() == (src / "a.png").read_bytes()
    assert (out / "JPEGImages" / "c.png").is_file()  # from imageData
    assert (out / "labels.txt").read_text() == "_background_\ncat\ndog\nsun\n"
    ds = PascalVOC(str(out), "train")
    assert ds.num_classes == 4 and ds.class_names == ["_background_", "cat", "dog", "sun"]
    np.testing.assert_array_equal(ds[0][1], EXPECTED)
    assert len(PascalVOC(str(out), "trainval")) == 3


def test_labelme_bad_input_names_the_file_and_writes_nothing(tmp_path):
    src = _write_set(tmp_path / "src")
    (src / "b.json").write_text('{"shapes": [')
    with pytest.raises(DataError, match=r"b\.json is not valid JSON"):
        convert_labelme(str(src), str(tmp_path / "out"), str(src / "labels.txt"))
    assert not (tmp_path / "out").exists()
    record = json.loads((src / "a.json").read_text())
    record["shapes"] = [{"label": "horse", "points": [[0, 0], [1, 1]],
                         "shape_type": "rectangle"}]
    (src / "b.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"b\.json: shape 0: label 'horse' is not in labels"):
        convert_labelme(str(src), str(tmp_path / "out"), str(src / "labels.txt"))
    record["shapes"] = [{"label": "cat", "points": [[0, 0], [1, 1]], "shape_type": "line"}]
    (src / "b.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"b\.json: shape 0: shape_type 'line' is not"):
        convert_labelme(str(src), str(tmp_path / "out"), str(src / "labels.txt"))
    record["shapes"], record["imageHeight"] = [], 10
    (src / "b.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"b\.json: imageHeight x imageWidth 10 x 14"):
        convert_labelme(str(src), str(tmp_path / "out"), str(src / "labels.txt"))
    assert not (tmp_path / "out").exists()


def test_labelme2voc_tool(tmp_path):
    src = _write_set(tmp_path / "src", names=("a", "b"))
    run = [sys.executable, os.path.join(ROOT, "tools", "labelme2voc.py"), str(src),
           str(tmp_path / "voc"), "--labels", str(src / "labels.txt"), "--val_ratio", "0.5"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 train + 1 val" in proc.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "is not empty" in again.stderr
