"""Datasets: VOC layout (palette and SBD grayscale labels), list files, collate, DataLoader."""
import os
from types import SimpleNamespace

import cv2
import numpy as np
import paddle
import pytest

from paddle_fcn.data import (
    DataError, ListDataset, PascalVOC, build_dataset, collate_fn, write_image, write_label,
)
from paddle_fcn.data.palette import VOC_CLASSES


def sample(i, h, w):
    """Gray image of value 10 * label (label = i % 3 + row parity) with a void (255) top row
    (gray so JPEG's chroma subsampling does not blur the encoding)."""
    label = np.full((h, w), i % 3, np.uint8)
    label[1::2] += 1
    label[0] = 255
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = np.where(label == 255, 250, label * 10)[..., None]
    return image, label


def make_voc(root, ids_by_split, sizes, aug=False):
    """A tiny VOC2012 tree; labels as palette PNGs (or grayscale in SegmentationClassAug)."""
    for i, name in enumerate(sorted({n for ids in ids_by_split.values() for n in ids})):
        image, label = sample(i, *sizes[i % len(sizes)])
        write_image(os.path.join(root, "JPEGImages", name + ".jpg"), image, quality=100)
        if aug:
            os.makedirs(os.path.join(root, "SegmentationClassAug"), exist_ok=True)
            cv2.imwrite(os.path.join(root, "SegmentationClassAug", name + ".png"), label)
        else:
            write_label(os.path.join(root, "SegmentationClass", name + ".png"), label)
    split_dir = os.path.join(root, "ImageSets", "Segmentation")
    os.makedirs(split_dir, exist_ok=True)
    for split, ids in ids_by_split.items():
        with open(os.path.join(split_dir, split + ".txt"), "w") as f:
            f.write("".join(n + "\n" for n in ids))
    return root


def test_pascal_voc_reads_palette_labels_exactly(tmp_path):
    root = make_voc(str(tmp_path / "VOCdevkit" / "VOC2012"),
                    {"train": ["a", "b", "c"], "val": ["d"]}, [(9, 11), (13, 10)])
    for where in (root, str(tmp_path)):  # VOC2012 itself or the folder holding VOCdevkit
        ds = PascalVOC(where, "train")
        assert len(ds) == 3 and ds.num_classes == 21 and ds.ignore_index == 255
        assert ds.class_names == list(VOC_CLASSES)
        assert ds.files[1] == (os.path.join(root, "JPEGImages", "b.jpg"),
                               os.path.join(root, "SegmentationClass", "b.png"))
    image, label = ds[1]
    _, expected = sample(1, 13, 10)
    assert image.dtype == np.float32 and image.shape == (3, 13, 10)
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, expected)
    raw_image, raw_label = ds.raw(1)
    assert raw_image.dtype == np.uint8 and raw_image.shape == (13, 10, 3)
    assert np.abs(raw_image[..., 0].astype(int) - np.where(expected == 255, 250,
                                                           expected * 10)).max() <= 3
    assert len(PascalVOC(root, "val")) == 1


def test_trainaug_reads_grayscale_sbd_labels(tmp_path):
    root = make_voc(str(tmp_path), {"trainaug": ["x", "y"]}, [(8, 12)], aug=True)
    ds = PascalVOC(root, "trainaug")
    assert ds.files[0][1].endswith(os.path.join("SegmentationClassAug", "x.png"))
    np.testing.assert_array_equal(ds[1][1], sample(1, 8, 12)[1])
    with pytest.raises(DataError, match="split file not found: .*train.txt"):
        PascalVOC(root, "train")
    with pytest.raises(DataError, match="mode 'test'"):
        PascalVOC(root, "test")


def test_split_with_path_pairs_and_labels_txt(tmp_path):
    root = make_voc(str(tmp_path), {"train": ["p", "q"]}, [(8, 9)])
    with open(os.path.join(root, "ImageSets", "Segmentation", "trainval.txt"), "w") as f:
        f.write("/JPEGImages/q.jpg /SegmentationClass/q.png\n")
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("bg\none\ntwo\nthree\n")
    ds = PascalVOC(root, "trainval")
    assert ds.files == [(os.path.join(root, "JPEGImages", "q.jpg"),
                         os.path.join(root, "SegmentationClass", "q.png"))]
    assert ds.num_classes == 4 and ds.class_names == ["bg", "one", "two", "three"]
    with pytest.raises(DataError, match="num_classes=5 but .*labels.txt lists 4"):
        PascalVOC(root, "train", num_classes=5)


def test_empty_split_names_the_file(tmp_path):
    root = make_voc(str(tmp_path), {"train": ["a"], "val": []}, [(8, 8)])
    with pytest.raises(DataError, match=r"split file .*val\.txt is empty"):
        PascalVOC(root, "val")
    with pytest.raises(DataError, match="no VOC data set under"):
        PascalVOC(str(tmp_path / "elsewhere"), "train")


def test_list_dataset_relative_absolute_and_bad_lines(tmp_path):
    root = str(tmp_path)
    for i, name in enumerate(["u", "v"]):
        image, label = sample(i, 7, 9)
        write_image(os.path.join(root, "img", name + ".png"), image)
        write_label(os.path.join(root, "ann", name + ".png"), label)
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("# comment\nimg/u.png ann/u.png\n\n")
        f.write(f"{os.path.join(root, 'img', 'v.png')} {os.path.join(root, 'ann', 'v.png')}\n")
    ds = ListDataset(root, "train.txt", num_classes=4)
    assert len(ds) == 2 and ds.class_names == ["class_0", "class_1", "class_2", "class_3"]
    image, label = ds[1]
    assert image.shape == (3, 7, 9)
    np.testing.assert_array_equal(label, sample(1, 7, 9)[1])
    with open(os.path.join(root, "bad.txt"), "w") as f:
        f.write("img/u.png ann/u.png\nimg/v.png\n")
    with pytest.raises(DataError, match=r"bad\.txt line 2: expected 'image_path label_path'"):
        ListDataset(root, "bad.txt", num_classes=4)
    open(os.path.join(root, "empty.txt"), "w").close()
    with pytest.raises(DataError, match=r"file list .*empty\.txt is empty"):
        ListDataset(root, "empty.txt", num_classes=4)
    with pytest.raises(DataError, match="file list not found: missing.txt"):
        ListDataset(root, "missing.txt", num_classes=4)
    with open(os.path.join(root, "labels.txt"), "w") as f:
        f.write("sky\nroad\ncar\nsign\n")
    assert ListDataset(root, "train.txt").class_names == ["sky", "road", "car", "sign"]


def test_size_mismatch_in_getitem_names_both_files(tmp_path):
    write_image(str(tmp_path / "i.png"), np.zeros((5, 6, 3), np.uint8))
    write_label(str(tmp_path / "l.png"), np.zeros((5, 7), np.uint8))
    (tmp_path / "list.txt").write_text("i.png l.png\n")
    ds = ListDataset(str(tmp_path), "list.txt", num_classes=2)
    with pytest.raises(DataError, match=r"i\.png is 6x5 .*l\.png is 7x5"):
        ds[0]


def test_collate_pads_to_largest():
    a = (np.ones((3, 4, 5), np.float32), np.ones((4, 5), np.int64))
    b = (np.full((3, 6, 2), 2, np.float32), np.full((6, 2), 3, np.int64))
    images, labels = collate_fn([a, b])
    assert images.shape == (2, 3, 6, 5) and labels.shape == (2, 6, 5)
    assert images[0, :, 4:].max() == 0 and images[1, :, :, 2:].max() == 0
    assert np.all(labels[0, 4:] == 255) and np.all(labels[1, :, 2:] == 255)
    assert labels[0, :4, :5].min() == 1 and labels[1, :, :2].min() == 3


def test_dataloader_two_workers_with_padding_collate(tmp_path):
    sizes = [(20, 17), (15, 22), (18, 18)]
    root = make_voc(str(tmp_path), {"train": [f"s{i}" for i in range(6)]}, sizes)
    ds = build_dataset(SimpleNamespace(
        type="PascalVOC", dataset_root=root, mode="train", file_list=None, num_classes=None,
        class_names=None, ignore_index=255, transforms=[{"type": "RandomHorizontalFlip"}],
        synthetic=None), {"mean": (0.5,) * 3, "std": (0.5,) * 3}, 21)
    loader = paddle.io.DataLoader(ds, batch_size=3, shuffle=False, num_workers=2,
                                  collate_fn=collate_fn)
    batches = list(loader)
    assert len(batches) == 2
    for images, labels in batches:
        assert tuple(images.shape) == (3, 3, 20, 22) and images.dtype == paddle.float32
        assert tuple(labels.shape) == (3, 20, 22) and labels.dtype == paddle.int64
    labels = batches[0][1].numpy()
    assert np.all(labels[1, 15:] == 255) and np.all(labels[0, :, 17:] == 255)
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3, 255}


def test_build_dataset_types_and_errors(tmp_path):
    root = make_voc(str(tmp_path), {"train": ["a"]}, [(8, 8)])
    cfg = dict(type="PascalVOC", dataset_root=root, mode="train", num_classes=21)
    assert isinstance(build_dataset(cfg, None, 21), PascalVOC)
    with pytest.raises(DataError, match="unknown dataset type 'VOC'.*SyntheticVOC"):
        build_dataset(dict(cfg, type="VOC"))
    with pytest.raises(DataError, match="num_classes=21 but the model has num_classes=5"):
        build_dataset(cfg, None, 5)
    with pytest.raises(DataError, match="needs file_list"):
        build_dataset(dict(cfg, type="ListDataset"))


def test_seg11valid_reads_the_papers_736_ids_and_names_a_missing_image(tmp_path):
    from paddle_fcn.data.check import check_dataset
    from paddle_fcn.data.voc import PACKAGE_SPLITS

    with open(PACKAGE_SPLITS["seg11valid"]) as f:
        ids = f.read().split()
    assert len(ids) == len(set(ids)) == 736 and ids[0] == "2007_000033"
    root = make_voc(str(tmp_path / "VOC2012"), {"train": ids[:3]}, [(6, 5)])  # 3 of 736 exist
    ds = PascalVOC(root, "seg11valid")
    assert len(ds) == 736 and ds.files[0] == (os.path.join(root, "JPEGImages", ids[0] + ".jpg"),
                                              os.path.join(root, "SegmentationClass",
                                                           ids[0] + ".png"))
    np.testing.assert_array_equal(ds[2][1], sample(2, 6, 5)[1])
    with pytest.raises(DataError, match=f"image file not found: .*{ids[3]}.jpg"):
        ds[3]
    with pytest.raises(DataError, match=rf"(?s)missing files \(1466\).*entry 4 .*{ids[3]}.jpg"):
        check_dataset(ds, 21).raise_if_failed()
