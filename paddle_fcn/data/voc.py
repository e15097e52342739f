"""Segmentation datasets: PASCAL VOC 2012 (+ SBD "trainaug") and PaddleSeg-style list files.

Expected VOC layout (``dataset_root`` is the ``VOC2012`` folder or any folder holding
``VOCdevkit/VOC2012``)::

    VOC2012/
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png          palette PNG, index per pixel, 255 = void
      SegmentationClassAug/<id>.png       SBD-augmented labels, 8-bit grayscale indices
      ImageSets/Segmentation/{train,val,trainval}.txt   one <id> per line
      ImageSets/Segmentation/trainaug.txt               the 10,582 SBD+VOC training ids
      labels.txt                          optional: one class name per line

Mode ``trainaug`` reads ``SegmentationClassAug``; the other modes read ``SegmentationClass``.
Mode ``seg11valid`` is the FCN papers' 736-image validation split, shipped with this package
(``data/splits/pascal_seg11valid.txt``, BSD-2, from fcn.berkeleyvision.org); its images and
labels come from the VOC2012 folder like any split's.
A split line may also hold two paths ``JPEGImages/x.jpg SegmentationClassAug/x.png`` relative
to the VOC2012 folder (the form some published ``trainaug.txt`` files use).

Datasets keep only paths and the transform objects, so they pickle into DataLoader workers.
"""
import os

import numpy as np
import paddle

from paddle_fcn.data.io import read_image, read_label
from paddle_fcn.data.lists import read_class_names, read_list_file
from paddle_fcn.errors import DataError, check_num_classes
from paddle_fcn.data.palette import VOC_CLASSES
from paddle_fcn.data.transforms import Normalize

__all__ = ["SegDataset", "PascalVOC", "ListDataset", "collate_fn", "zero_ignored_lut"]

IGNORE_INDEX = 255
# Splits shipped with the package (mode -> file): the FCN reference split, see splits/README.md.
PACKAGE_SPLITS = {"seg11valid": os.path.join(os.path.dirname(__file__), "splits",
                                             "pascal_seg11valid.txt")}


def _resolve_class_names(num_classes, class_names, labels_txt, default=None):
    """Pick class names (given > labels.txt > default > class_i) and check num_classes."""
    if class_names is None and labels_txt and os.path.isfile(labels_txt):
        class_names, source = read_class_names(labels_txt), labels_txt
    else:
        source = "class_names"
    if class_names is None and default is not None and num_classes in (None, len(default)):
        class_names = list(default)
    if num_classes is None:
        if class_names is None:
            raise DataError("num_classes is not set and no class names are available "
                            f"(no {labels_txt or 'labels.txt'}); set num_classes")
        num_classes = len(class_names)
    check_num_classes(num_classes, DataError)
    if class_names is None:
        class_names = [f"class_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise DataError(f"num_classes={num_classes} but {source} lists {len(class_names)} "
                        f"names ({', '.join(map(str, class_names))}); make them agree")
    return int(num_classes), [str(n) for n in class_names]


def zero_ignored_lut(ignore_index=IGNORE_INDEX):
    """``reduce_zero_label`` as a 256-entry lookup table: 0 -> ignore, v -> v - 1 (255 stays
    ignored). Stored values above the classes stay out of range, so the data check reports
    them."""
    lut = np.arange(256, dtype=np.int64) - 1
    lut[0] = lut[255] = ignore_index
    return lut.astype(np.uint8)


class SegDataset(paddle.io.Dataset):
    """Base class: a list of ``(image_path, label_path)`` pairs plus a transform.

    ``__getitem__(i)`` -> ``(image float32 CHW, label int64 HW)``; ``raw(i)`` -> the decoded
    ``(image uint8 HW3, label uint8 HW)`` before any transform. ``transforms=None`` applies
    ``Normalize()`` (ImageNet mean/std) only. ``label_map``: optional uint8 lookup table of 256
    entries from the stored label values to class indices (Cityscapes labelIds -> trainIds,
    ADE20K's ``reduce_zero_label``); ``raw`` and ``check_dataset`` apply it.
    """

    label_map = None
    channels = 3  # image channels after the transforms (NYUDv2 RGB-HHA: 6)
    CLASSES = None  # the type's own class names (None: class_i), unless labels.txt says

    MODES = ("train", "val")  # the splits (a dict: split -> label folder)
    CHOICES = {}  # constructor option -> its allowed values (SIFTFlow: head)

    @classmethod
    def labels_file(cls, dataset_root):
        """The ``labels.txt`` a data set of this type under ``dataset_root`` takes its class
        names from (None: none, or the folder is not there)."""
        return None

    @classmethod
    def check_choice(cls, option, value):
        """DataError unless ``value`` is allowed for ``option`` (``mode`` or a CHOICES key)."""
        allowed = cls.MODES if option == "mode" else cls.CHOICES[option]
        if value not in allowed:
            raise DataError(f"{cls.__name__} {option} {value!r} is not one of "
                            f"{', '.join(allowed)}")

    def _open(self, dataset_root, mode):
        """Check ``mode`` and set ``self.root`` (absolute) and ``self.mode``."""
        self.check_choice("mode", mode)
        self.root, self.mode = os.path.abspath(os.fspath(dataset_root)), mode

    def __init__(self, files, transforms, num_classes, class_names, ignore_index=IGNORE_INDEX,
                 source="the file list"):
        super().__init__()
        if not files:
            raise DataError(f"no samples: {source} is empty; add entries or pick another split")
        self.files = [(str(a), str(b)) for a, b in files]
        self.transforms = transforms if transforms is not None else Normalize()
        self.num_classes = num_classes
        self.class_names = class_names
        self.ignore_index = int(ignore_index)
        self.source = source

    def __len__(self):
        return len(self.files)

    def raw(self, idx):
        image_path, label_path = self.files[idx]
        image, label = read_image(image_path), read_label(label_path)
        if self.label_map is not None:
            label = self.label_map[label]
        if image.shape[:2] != label.shape:
            raise DataError(
                f"image {image_path} is {image.shape[1]}x{image.shape[0]} (WxH) but label "
                f"{label_path} is {label.shape[1]}x{label.shape[0]}; they must match "
                f"(run tools/check_data.py to list all such pairs)")
        return image, label

    def __getitem__(self, idx):
        image, label = self.transforms(*self.raw(idx))
        if image.ndim != 3 or image.dtype != np.float32 or image.shape[0] != self.channels:
            raise DataError(f"transforms returned image {image.dtype} {image.shape}; they must "
                            f"end with Normalize (float32 CHW)")
        return image, label.astype(np.int64, copy=False)

    def __repr__(self):
        return (f"{type(self).__name__}({len(self)} samples from {self.source}, "
                f"num_classes={self.num_classes})")


def find_voc_root(dataset_root, folder="VOC2012", what="VOC"):
    """The folder holding ``JPEGImages``: ``dataset_root`` itself or a VOCdevkit below it
    (``folder``: ``VOC2012``; PASCAL-Context's ``VOC2010``)."""
    root = os.path.abspath(os.fspath(dataset_root))
    tried = [root, os.path.join(root, folder), os.path.join(root, "VOCdevkit", folder)]
    for cand in tried:
        if os.path.isdir(os.path.join(cand, "JPEGImages")):
            return cand
    raise DataError(f"no {what} data set under {dataset_root}: none of {tried} has a "
                    f"JPEGImages folder; point dataset_root at VOCdevkit/{folder} or its parent")


class PascalVOC(SegDataset):
    """PASCAL VOC 2012 segmentation split (``train``, ``val``, ``trainval``, ``trainaug``, or
    ``seg11valid``: the FCN papers' 736 validation images, 63.6 / 65.0 / 65.5 mIoU for FCN-32s /
    16s / 8s, from the split file in the package).

    ``num_classes`` defaults to the length of ``labels.txt`` when the data set has one, else
    21 with the VOC class names.
    """

    MODES = {
        "train": "SegmentationClass",
        "val": "SegmentationClass",
        "trainval": "SegmentationClass",
        "trainaug": "SegmentationClassAug",
        "seg11valid": "SegmentationClass",
    }
    # what subclasses in the same layout change (data.context.PascalContext)
    FOLDER, SPLIT_DIR, CLASSES, WHAT = "VOC2012", "Segmentation", VOC_CLASSES, "VOC"

    def __init__(self, dataset_root, mode="train", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX):
        self._open(dataset_root, mode)
        self.root = find_voc_root(dataset_root, self.FOLDER, self.WHAT)
        split = PACKAGE_SPLITS.get(mode) or os.path.join(self.root, "ImageSets", self.SPLIT_DIR,
                                                         f"{mode}.txt")
        files = self._read_split(split, self.MODES[mode])
        num_classes, class_names = _resolve_class_names(
            num_classes, class_names, os.path.join(self.root, "labels.txt"), self.CLASSES)
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"split file {split}")

    @classmethod
    def labels_file(cls, dataset_root):
        try:
            return os.path.join(find_voc_root(dataset_root, cls.FOLDER, cls.WHAT), "labels.txt")
        except DataError:  # no data here (an export on another machine): no labels.txt
            return None

    def _read_split(self, split, label_dir):
        if self.mode == "trainaug" and not os.path.isfile(split):
            raise DataError(f"split file not found: {split} (SBD: put trainaug.txt there and "
                            f"the labels in SegmentationClassAug/)")
        files = []
        for _, parts in read_list_file(split, (1, 2), "an image id or 'image_path label_path'",
                                       what="split file"):
            if len(parts) == 1:
                files.append((os.path.join(self.root, "JPEGImages", parts[0] + ".jpg"),
                              os.path.join(self.root, label_dir, parts[0] + ".png")))
            else:
                files.append(tuple(os.path.join(self.root, p.lstrip("/")) for p in parts))
        return files


class ListDataset(SegDataset):
    """PaddleSeg list-file data set: each line ``image_path label_path``.

    Paths are relative to ``dataset_root`` (absolute paths are used as they are);
    ``file_list`` itself may be relative to ``dataset_root``. Blank lines and lines starting
    with ``#`` are skipped. ``class_names`` default to ``dataset_root/labels.txt`` if present.
    """

    @classmethod
    def labels_file(cls, dataset_root):
        return os.path.join(os.path.abspath(os.fspath(dataset_root)), "labels.txt")

    def __init__(self, dataset_root, file_list, transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX):
        self.root = os.path.abspath(os.fspath(dataset_root))
        if not os.path.isdir(self.root):
            raise DataError(f"dataset_root {dataset_root} is not a folder")
        path = os.path.join(self.root, os.fspath(file_list))
        if not os.path.isfile(path):
            raise DataError(f"file list not found: {file_list} (looked for {path})")
        rows = read_list_file(path, (2,), "'image_path label_path' separated by whitespace",
                              what="file list")
        files = [tuple(os.path.join(self.root, p) for p in parts) for _, parts in rows]
        num_classes, class_names = _resolve_class_names(
            num_classes, class_names, self.labels_file(self.root))
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"file list {path}")


def collate_fn(batch, ignore_index=IGNORE_INDEX):
    """DataLoader ``collate_fn`` for images of different sizes.

    ``batch``: list of ``(image float32 CHW, label int64 HW)``. Pads every sample at the
    bottom/right to the largest H and W in the batch (image with 0, i.e. the mean colour after
    Normalize; label with ``ignore_index``) and returns ``(images N3HW float32, labels NHW
    int64)``. A prediction is cropped back with ``[:h, :w]``.
    """
    if not batch:
        raise ValueError("collate: empty batch")
    h = max(s[1].shape[0] for s in batch)
    w = max(s[1].shape[1] for s in batch)
    c = batch[0][0].shape[0]
    images = np.zeros((len(batch), c, h, w), dtype=np.float32)
    labels = np.full((len(batch), h, w), ignore_index, dtype=np.int64)
    for i, (image, label) in enumerate(batch):
        if image.shape[1:] != label.shape:
            raise ValueError(f"collate: sample {i} image {image.shape} and label {label.shape} "
                             f"differ in size")
        images[i, :, :image.shape[1], :image.shape[2]] = image
        labels[i, :label.shape[0], :label.shape[1]] = label
    return images, labels

