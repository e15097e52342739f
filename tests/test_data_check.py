"""Data checks: every problem kind is found, named by file and value, with advice."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from paddle_fcn.data import DataError, ListDataset, check_dataset, write_image, write_label
from paddle_fcn.data.palette import colorize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def good_pair(i, h=12, w=14):
    label = np.zeros((h, w), np.uint8)
    label[3:9, 4:10] = 1 + i % 2
    label[2, 3:11] = 255  # thin void border
    return np.full((h, w, 3), 40 * (i + 1), np.uint8), label


def dataset(tmp_path, entries, num_classes=3):
    """ListDataset over ``entries``: list of (name, image array or None, label writer)."""
    lines = []
    for name, image, write in entries:
        img_path, lab_path = f"img/{name}.png", f"ann/{name}.png"
        if image is not None:
            write_image(str(tmp_path / img_path), image)
        if write is not None:
            os.makedirs(tmp_path / "ann", exist_ok=True)
            write(str(tmp_path / lab_path))
        lines.append(f"{img_path} {lab_path}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    return ListDataset(str(tmp_path), "list.txt", num_classes=num_classes)


def palette(label):
    return lambda path: write_label(path, label)


def clean_entries(n=3):
    return [(f"ok{i}", good_pair(i)[0], palette(good_pair(i)[1])) for i in range(n)]


def test_clean_dataset_is_ok(tmp_path):
    report = check_dataset(dataset(tmp_path, clean_entries()), 3)
    assert report.ok, str(report)
    report.raise_if_failed()
    assert "3 pairs, 0 error(s)" in str(report)
    assert report.class_files == {0: 3, 1: 2, 2: 1}


def test_missing_files_are_named(tmp_path):
    img, lab = good_pair(0)
    entries = clean_entries(1) + [("noimg", None, palette(lab)), ("nolab", img, None)]
    report = check_dataset(dataset(tmp_path, entries), 3)
    assert not report.ok and report.counts["missing"] == 2
    text = str(report)
    assert "image file not found: " + str(tmp_path / "img" / "noimg.png") in text
    assert "label file not found: " + str(tmp_path / "ann" / "nolab.png") in text
    assert "entry 2 of file list" in text
    with pytest.raises(DataError, match="missing files"):
        report.raise_if_failed()


def test_truncated_image_is_named(tmp_path):
    report = check_dataset(dataset(tmp_path, clean_entries(2)), 3)
    assert report.ok
    path = tmp_path / "img" / "ok1.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = check_dataset(dataset(tmp_path, clean_entries(2)[:1] + [("ok1", None, None)]), 3)
    assert report.counts == {"unreadable": 1}
    assert str(path) in str(report) and "truncated" in str(report)


def test_rgb_colour_mask_detected(tmp_path):
    img, lab = good_pair(0)
    write = lambda p: Image.fromarray(colorize(lab)).save(p)  # noqa: E731
    report = check_dataset(dataset(tmp_path, clean_entries(1) + [("rgb", img, write)]), 3)
    assert set(report.errors) == {"colour_mask"} and report.counts["colour_mask"] == 1
    text = str(report)
    assert str(tmp_path / "ann" / "rgb.png") in text
    assert "RGB colour mask" in text and "VOC colour map" in text


def test_binary_0_255_masks_detected(tmp_path):
    entries = []
    for i in range(3):
        mask = np.zeros((16, 16), np.uint8)
        mask[4:12, 3 + i:11 + i] = 255  # solid foreground blob stored as 255
        entries.append((f"bin{i}", np.zeros((16, 16, 3), np.uint8),
                        lambda p, m=mask: cv2.imwrite(p, m)))
    report = check_dataset(dataset(tmp_path, entries, num_classes=2), 2)
    assert not report.ok and report.counts["binary_mask"] == 3
    text = str(report)
    assert str(tmp_path / "ann" / "bin0.png") in text
    assert "0/255 binary mask" in text and "divide the labels by 255" in text


def test_void_blobs_among_real_classes_are_only_a_note(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255  # e.g. a VOC 'difficult' object
    entries = clean_entries(2) + [("difficult", np.zeros((16, 16, 3), np.uint8), palette(mask))]
    report = check_dataset(dataset(tmp_path, entries), 3)
    assert report.ok and report.counts == {"void_regions": 1}


def test_out_of_range_values_listed_and_num_classes_disagreement(tmp_path):
    img, lab = good_pair(0)
    bad = lab.copy()
    bad[0, 0], bad[0, 1] = 7, 40
    report = check_dataset(dataset(tmp_path, clean_entries(1) + [("bad", img, palette(bad))]), 3)
    assert report.counts["label_values"] == 1 and report.counts["num_classes"] == 1
    text = str(report)
    assert str(tmp_path / "ann" / "bad.png") + ": values [7, 40]" in text
    assert "not class indices 0..2 or 255" in text
    assert "up to 40 but num_classes is 3; set num_classes >= 41" in text


def test_declared_num_classes_disagreement_and_unseen_classes(tmp_path):
    ds = dataset(tmp_path, clean_entries(2), num_classes=3)
    report = check_dataset(ds, 5)
    assert report.counts["num_classes"] == 1 and report.counts["unseen_classes"] == 1
    text = str(report)
    assert "declares 3 classes" in text and "num_classes is 5" in text
    assert "class(es) [3, 4]" in text


def test_size_mismatch_names_both_files(tmp_path):
    img, lab = good_pair(0)
    entries = clean_entries(1) + [("size", img[:, :10], palette(lab))]
    report = check_dataset(dataset(tmp_path, entries), 3)
    assert set(report.errors) == {"size_mismatch"} and report.counts["size_mismatch"] == 1
    text = str(report)
    assert str(tmp_path / "img" / "size.png") + " is 10x12 (WxH)" in text
    assert str(tmp_path / "ann" / "size.png") + " is 14x12" in text


def test_converted_images_are_notes_not_errors(tmp_path):
    img, lab = good_pair(0)
    gray = lambda: cv2.imwrite(str(tmp_path / "img" / "gray.png"), img[..., 0])  # noqa: E731
    entries = [("gray", img, palette(lab)), ("rgba", img, palette(lab)),
               ("deep", img, palette(lab))]
    ds = dataset(tmp_path, entries)
    gray()
    Image.fromarray(np.dstack([img, np.full(img.shape[:2], 9, np.uint8)]), "RGBA").save(
        tmp_path / "img" / "rgba.png")
    cv2.imwrite(str(tmp_path / "img" / "deep.png"), img.astype(np.uint16) * 257)
    report = check_dataset(ds, 3)
    assert report.ok and report.counts["converted"] == 3
    text = str(report)
    for name, note in (("gray", "grayscale converted to RGB"),
                       ("rgba", "RGBA converted to RGB (alpha dropped)"),
                       ("deep", "16-bit scaled to 8-bit")):
        assert f"{tmp_path / 'img' / name}.png: {note}" in text
    image, label = ds[2]
    assert image.shape == (3, 12, 14)


def test_empty_dataset_and_max_report(tmp_path):
    class Empty:
        files, num_classes, source = [], 3, "split file x/val.txt"

    report = check_dataset(Empty(), 3)
    assert not report.ok and "split file x/val.txt lists no samples" in str(report)
    entries = [(f"m{i}", None, None) for i in range(5)]
    report = check_dataset(dataset(tmp_path, entries), 3, max_report=2)
    assert report.counts["missing"] == 10 and "... and 8 more" in str(report)


def _config(tmp_path, train, val, num_classes):
    text = f"""
model: {{type: unet, num_classes: {num_classes}, width: 8}}
train_dataset: {train}
val_dataset: {val}
"""
    path = tmp_path / "cfg.yml"
    path.write_text(text)
    return str(path)


def test_check_data_tool_exit_codes(tmp_path, capsys):
    from paddle_fcn.cli.data import check_data_main

    syn = (f"{{type: SyntheticVOC, dataset_root: {tmp_path / 'syn'}, num_classes: 6, "
           f"synthetic: {{num_train: 5, num_val: 2, min_size: 40, max_size: 48}}}}")
    clean = _config(tmp_path, syn, syn.replace("num_classes: 6", "mode: val, num_classes: 6"), 6)
    assert check_data_main(["--config", clean]) == 0
    assert "[val] Data check of split file" in capsys.readouterr().out

    img, lab = good_pair(0)
    bad = lab.copy()
    bad[0, 0] = 9
    dataset(tmp_path, clean_entries(1) + [("bad", img, palette(bad))])
    (tmp_path / "empty.txt").write_text("")
    listed = f"{{type: ListDataset, dataset_root: {tmp_path}, file_list: list.txt, num_classes: 3}}"
    empty = listed.replace("list.txt", "empty.txt")
    cfg = _config(tmp_path, listed, empty, 3)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "check_data.py"),
                           "--config", cfg], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert str(tmp_path / "ann" / "bad.png") + ": values [9]" in proc.stdout
    assert "[val] FAILED: file list " + str(tmp_path / "empty.txt") + " is empty" in proc.stdout
