"""ADE20K scene parsing (Zhou et al., CVPR 2017), the 150-class benchmark ADEChallengeData2016.

Layout (the one PaddleSeg's ``ADE20K`` reads; ``dataset_root`` is ``ADEChallengeData2016``)::

    ADEChallengeData2016/
      images/{training,validation}/ADE_{train,val}_<n>.jpg
      annotations/{training,validation}/ADE_{train,val}_<n>.png   0 = other/unlabelled, 1..150

``reduce_zero_label`` semantics: 0 (pixels of no benchmark class) is ignored and 1..150 become
the classes 0..149 (``ade20k_classes-150.txt``). Mode ``train`` reads ``training``, ``val``
reads ``validation``.
"""
import glob
import os

from paddle_fcn.data.lists import read_class_names
from paddle_fcn.data.reference import reference_path
from paddle_fcn.data.voc import IGNORE_INDEX, SegDataset, _resolve_class_names, zero_ignored_lut
from paddle_fcn.errors import DataError

__all__ = ["ADE20K_CLASSES", "ADE20K"]

ADE20K_CLASSES = tuple(read_class_names(reference_path("ade20k_classes-150.txt")))


class ADE20K(SegDataset):
    """ADEChallengeData2016, 150 classes, stored 0 ignored (module docstring)."""

    MODES = {"train": "training", "val": "validation"}
    CLASSES = ADE20K_CLASSES

    def __init__(self, dataset_root, mode="train", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX):
        self._open(dataset_root, mode)
        image_dir = os.path.join(self.root, "images", self.MODES[mode])
        if not os.path.isdir(image_dir):
            raise DataError(f"no ADE20K images: {image_dir} is not a folder; point "
                            f"dataset_root at ADEChallengeData2016")
        label_dir = os.path.join(self.root, "annotations", self.MODES[mode])
        files = [(image, os.path.join(label_dir, os.path.splitext(os.path.basename(image))[0]
                                      + ".png"))
                 for image in sorted(glob.glob(os.path.join(image_dir, "*.jpg")))]
        self.label_map = zero_ignored_lut(ignore_index)
        num_classes, class_names = _resolve_class_names(num_classes, class_names, None,
                                                        self.CLASSES)
        super().__init__(files, transforms, num_classes, class_names, ignore_index,
                         source=f"{image_dir} (*.jpg)")
