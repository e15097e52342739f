"""Cityscapes (Cordts et al., CVPR 2016) fine annotations, the 19 evaluation classes.

Layout (the one PaddleSeg's ``Cityscapes`` reads; ``dataset_root`` is the ``cityscapes``
folder)::

    cityscapes/
      leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The ``*_gtFine_labelIds.png`` files hold the 34 label ids of the official definition
(cityscapesScripts ``helpers/labels.py``); they are mapped on reading to its trainIds
(``LABEL_ID_TO_TRAIN_ID``: road 7 -> 0, ..., bicycle 33 -> 18) and every id whose trainId is
255 or -1 (unlabeled, ego vehicle, ..., parking, guard rail, caravan, trailer, license plate)
becomes 255 = ignore. No converted ``*_labelTrainIds.png`` files are needed. An id outside
0..33 (other than 255) stays out of range, so the data check names the file.
"""
import glob
import os

import numpy as np

from paddle_fcn.errors import DataError
from paddle_fcn.data.voc import IGNORE_INDEX, SegDataset, _resolve_class_names

__all__ = ["CITYSCAPES_CLASSES", "LABEL_ID_TO_TRAIN_ID", "Cityscapes", "cityscapes_lut"]

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
# label id -> trainId of the official definition; the ids 0..33 not listed map to ignore
LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
NUM_LABEL_IDS = 34


def cityscapes_lut(ignore_index=IGNORE_INDEX):
    """256-entry uint8 table: label id -> trainId, ignore for the other official ids (0..33)
    and for 255; ids 34..254 are kept (out of range: reported by the data check)."""
    lut = np.arange(256, dtype=np.int64)
    lut[:NUM_LABEL_IDS] = ignore_index
    lut[255] = ignore_index
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut.astype(np.uint8)


class Cityscapes(SegDataset):
    """Cityscapes fine annotations (``mode``: ``train`` | ``val``), 19 classes, labelIds
    mapped to trainIds on reading (module docstring)."""

    MODES, CLASSES = ("train", "val"), CITYSCAPES_CLASSES
    IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"

    def __init__(self, dataset_root, mode="train", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX):
        self._open(dataset_root, mode)
        image_dir = os.path.join(self.root, "leftImg8bit", mode)
        if not os.path.isdir(image_dir):
            raise DataError(f"no Cityscapes images: {image_dir} is not a folder; point "
                            f"dataset_root at the folder holding leftImg8bit/ and gtFine/")
        images = sorted(glob.glob(os.path.join(image_dir, "*", "*" + self.IMAGE_SUFFIX)))
        files = []
        for image in images:
            rel = os.path.relpath(image, image_dir)[:-len(self.IMAGE_SUFFIX)]
            files.append((image, os.path.join(self.root, "gtFine", mode,
                                              rel + self.LABEL_SUFFIX)))
        self.label_map = cityscapes_lut(ignore_index)
        num_classes, class_names = _resolve_class_names(num_classes, class_names, None,
                                                        self.CLASSES)
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"{image_dir} (*{self.IMAGE_SUFFIX})")
