"""NYUDv2 (Silberman et al., ECCV 2012) with the 40-class labels of Gupta et al. (CVPR 2013),
as the FCN papers use it: RGB, HHA (depth encoded as horizontal disparity, height above
ground, angle with gravity), or both for the late-fusion net.

Layout (the FCN reference repository's ``data/nyud``; ``dataset_root`` is that folder)::

    nyud/
      data/images/img_<id>.png       RGB
      data/hha/img_<id>.png          HHA, 3 channels (computed by the user, e.g. with Gupta
                                     et al.'s code; another folder via ``hha_dir``)
      segmentation/img_<id>.mat      variable ``segmentation``: 0 = void, 1..40  (or .png)
      trainval.txt, test.txt         one <id> per line

On reading, as the reference data layer does, void becomes 255 and the classes 0..39
(``nyud_classes.txt``). ``.mat`` labels need ``scipy`` (optional).

``modality``: ``rgb`` (default) or ``hha`` give a 3-channel image; ``rgb_hha`` gives the 6
channels RGB then HHA, for the late-fusion models ``*_rgbhha`` (``models.fusion``), whose
normalisation has six values.
"""
import os

import numpy as np

from paddle_fcn.errors import DataError
from paddle_fcn.data.lists import read_list_file
from paddle_fcn.data.io import load_label_array, load_mat_label, read_image
from paddle_fcn.data.reference import read_reference_classes
from paddle_fcn.data.voc import IGNORE_INDEX, SegDataset, _resolve_class_names, zero_ignored_lut

__all__ = ["NYUD_CLASSES", "NYUDv2"]

NYUD_CLASSES = tuple(read_reference_classes("nyud_classes.txt"))


class NYUDv2(SegDataset):
    """NYUDv2 40 classes, ``trainval`` / ``test`` split (module docstring)."""

    MODES, CLASSES = ("trainval", "test"), NYUD_CLASSES
    MODALITIES = ("rgb", "hha", "rgb_hha")
    CHOICES = {"modality": MODALITIES}

    def __init__(self, dataset_root, mode="trainval", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX, modality="rgb", hha_dir=None):
        self._open(dataset_root, mode)
        self.check_choice("modality", modality)
        self.modality = modality
        self.hha_dir = os.path.join(self.root, hha_dir or os.path.join("data", "hha"))
        split = os.path.join(self.root, f"{mode}.txt")
        if not os.path.isfile(split):
            raise DataError(f"split file not found: {split}; dataset_root must be the nyud "
                            f"folder holding data/images/, segmentation/ and the split files")
        ids = [parts[0] for _, parts in read_list_file(split, (1,), "an image id",
                                                       what="split file")]
        rgb = [os.path.join(self.root, "data", "images", f"img_{i}.png") for i in ids]
        self.hha_files = [os.path.join(self.hha_dir, f"img_{i}.png") for i in ids]
        images = self.hha_files if modality == "hha" else rgb
        files = list(zip(images, [self._label_path(i) for i in ids]))
        self.label_map = zero_ignored_lut(ignore_index)
        self.channels = 6 if modality == "rgb_hha" else 3
        num_classes, class_names = _resolve_class_names(num_classes, class_names, None,
                                                        self.CLASSES)
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"split file {split}")

    def _label_path(self, image_id):
        stem = os.path.join(self.root, "segmentation", f"img_{image_id}")
        return stem + ".png" if os.path.isfile(stem + ".png") else stem + ".mat"

    def load_label_array(self, path):
        """Stored values of a label (``.mat`` variable ``segmentation`` or PNG) as
        ``(array, mode)`` (``check_dataset`` reads labels through this)."""
        if not path.endswith(".mat"):
            return load_label_array(path)
        return load_mat_label(path, "segmentation", 0, 40).astype(np.uint8), "mat"

    def raw(self, idx):
        image_path, label_path = self.files[idx]
        image = read_image(image_path)
        label, _ = self.load_label_array(label_path)
        if label.ndim != 2:
            raise DataError(f"label {label_path} is not a single-channel map of class indices")
        label = self.label_map[label]
        if self.modality == "rgb_hha":
            hha = read_image(self.hha_files[idx])
            if hha.shape != image.shape:
                raise DataError(f"HHA image {self.hha_files[idx]} is {hha.shape[1]}x"
                                f"{hha.shape[0]} but RGB image {image_path} is "
                                f"{image.shape[1]}x{image.shape[0]}")
            image = np.concatenate([image, hha], axis=2)
        if image.shape[:2] != label.shape:
            raise DataError(f"image {image_path} is {image.shape[1]}x{image.shape[0]} but label "
                            f"{label_path} is {label.shape[1]}x{label.shape[0]}")
        return image, label
