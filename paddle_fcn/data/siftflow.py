"""SIFT Flow (Liu, Yuen, Torralba, CVPR 2009 / PAMI 2011): 2,688 outdoor images of 256 x 256,
33 semantic classes and 3 geometric classes, as the FCN papers use it.

Layout (the FCN reference repository's ``data/sift-flow``; ``dataset_root`` is that folder)::

    sift-flow/
      Images/spatial_envelope_256x256_static_8outdoorcategories/<id>.jpg
      SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat  (or <id>.png)
      GeoLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat       (or <id>.png)
      trainval.txt, test.txt                      one <id> per line

Stored values (``S`` in each ``.mat``; a PNG holds the same numbers, geometric void as 0):
semantic 0 = void, 1..33 the classes; geometric -1 = void, 1..3 = sky, horizontal, vertical.
On reading, as the reference data layer does, void becomes 255 and the classes shift to
0..32 and 0..2 (``sift-flow_classes.txt``). ``.mat`` labels need ``scipy`` (optional).

``head``: ``semantic`` (33 classes) or ``geometric`` (3) read one label; ``both`` packs the two
into one map (``data.heads.HeadCodec``) for the two-headed net (model option ``heads:
{semantic: 33, geometric: 3}``), and the dataset then has ``heads`` and ``head_class_names``;
its ``num_classes`` / ``class_names`` are the semantic head's.
"""
import os

import numpy as np

from paddle_fcn.data.heads import HeadCodec
from paddle_fcn.errors import DataError
from paddle_fcn.data.lists import read_list_file
from paddle_fcn.data.io import load_label_array, load_mat_label, read_image
from paddle_fcn.data.reference import read_reference_classes
from paddle_fcn.data.voc import IGNORE_INDEX, SegDataset, _resolve_class_names, zero_ignored_lut

__all__ = ["SIFTFLOW_CLASSES", "SIFTFlow"]

SIFTFLOW_CLASSES = read_reference_classes("sift-flow_classes.txt")  # {semantic, geometric}
_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"
_LABEL_DIRS = {"semantic": "SemanticLabels", "geometric": "GeoLabels"}
_STORED = {"semantic": (0, 33), "geometric": (-1, 3)}  # void value, last class


class SIFTFlow(SegDataset):
    """SIFT Flow ``trainval`` / ``test`` split (module docstring)."""

    MODES = ("trainval", "test")
    HEADS = ("semantic", "geometric", "both")
    CHOICES = {"head": HEADS}
    CLASSES = tuple(SIFTFLOW_CLASSES["semantic"])  # head semantic, the default

    def __init__(self, dataset_root, mode="trainval", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX, head="semantic"):
        self._open(dataset_root, mode)
        self.check_choice("head", head)
        self.head = head
        split = os.path.join(self.root, f"{mode}.txt")
        if not os.path.isfile(split):
            raise DataError(f"split file not found: {split}; dataset_root must be the "
                            f"sift-flow folder holding Images/, SemanticLabels/, GeoLabels/")
        self.ids = [parts[0] for _, parts in read_list_file(split, (1,), "an image id",
                                                             what="split file")]
        kinds = ("semantic", "geometric") if head == "both" else (head,)
        self.label_files = {k: [self._label_path(k, i) for i in self.ids] for k in kinds}
        files = [(os.path.join(self.root, "Images", _SUBDIR, i + ".jpg"), label)
                 for i, label in zip(self.ids, self.label_files[kinds[0]])]
        self.label_map = zero_ignored_lut(ignore_index)  # void 0 -> 255, classes -> 0..n-1
        if head == "both":
            self.heads = {k: len(SIFTFLOW_CLASSES[k]) for k in kinds}
            self.head_class_names = {k: list(SIFTFLOW_CLASSES[k]) for k in kinds}
            self.codec = HeadCodec(self.heads, ignore_index)
        names = SIFTFLOW_CLASSES[kinds[0]]
        if num_classes not in (None, len(names)):
            raise DataError(f"SIFTFlow {kinds[0]} labels have {len(names)} classes, not "
                            f"num_classes={num_classes}")
        num_classes, class_names = _resolve_class_names(len(names), class_names, None, names)
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"split file {split}")

    def _label_path(self, kind, image_id):
        stem = os.path.join(self.root, _LABEL_DIRS[kind], _SUBDIR, image_id)
        return stem + ".png" if os.path.isfile(stem + ".png") else stem + ".mat"

    def load_label_array(self, path):
        """Stored values of a label file (``.mat`` or PNG) as ``(array, mode)``, geometric
        void -1 as 0 (``check_dataset`` reads labels through this)."""
        if not path.endswith(".mat"):
            return load_label_array(path)
        kind = "geometric" if os.sep + _LABEL_DIRS["geometric"] + os.sep in path else "semantic"
        arr = load_mat_label(path, "S", *_STORED[kind])
        return np.where(arr < 0, 0, arr).astype(np.uint8), "mat"

    def _read(self, kind, idx):
        path = self.label_files[kind][idx]
        arr, _ = self.load_label_array(path)
        last = _STORED[kind][1]
        if arr.ndim != 2 or arr.size and arr.max() > last:
            raise DataError(f"{kind} label {path}: values must be 0 (void)..{last}, got "
                            f"{np.unique(arr)[-5:].tolist()} (shape {arr.shape})")
        return self.label_map[arr]

    def raw(self, idx):
        image_path = self.files[idx][0]
        image = read_image(image_path)
        labels = {kind: self._read(kind, idx) for kind in self.label_files}
        for kind, label in labels.items():
            if label.shape != image.shape[:2]:
                raise DataError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} "
                                f"but {kind} label {self.label_files[kind][idx]} is "
                                f"{label.shape[1]}x{label.shape[0]}")
        if self.head != "both":
            return image, labels[self.head]
        return image, self.codec.encode(labels)
