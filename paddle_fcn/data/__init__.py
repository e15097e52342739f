"""Data: datasets (PASCAL VOC, SBD trainaug, PASCAL-Context, SIFT Flow, Cityscapes, ADE20K,
NYUDv2, list files, synthetic), transforms, checks.

Contract (docs/architecture.md): images are read as RGB uint8 HWC, labels as uint8 HW class
indices with 255 = ignore; ``dataset[i]`` is ``(image float32 CHW, label int64 HW)`` after
the transforms, which end in ``Normalize``.
"""
from paddle_fcn.data.ade20k import ADE20K
from paddle_fcn.data.check import CheckReport, check_dataset
from paddle_fcn.data.cityscapes import Cityscapes
from paddle_fcn.data.context import PascalContext
from paddle_fcn.errors import DataError
from paddle_fcn.data.io import read_image, read_label, read_label_with_notes, write_image, write_label
from paddle_fcn.data.nyud import NYUDv2
from paddle_fcn.data.palette import VOC_CLASSES, color_map, colorize, rgb_to_label
from paddle_fcn.data.siftflow import SIFTFlow
from paddle_fcn.data.synthetic import CLASS_NAMES as SYNTHETIC_CLASSES
from paddle_fcn.data.synthetic import SyntheticVOC, ensure_synthetic_voc, generate_synthetic_voc
from paddle_fcn.data.transforms import TRANSFORMS, Compose, Normalize, build_transforms
from paddle_fcn.data.voc import ListDataset, PascalVOC, SegDataset, collate_fn
from paddle_fcn.data.build import DATASETS, build_dataset, config_problems, dataset_class_names

__all__ = [
    "DataError", "read_image", "read_label", "read_label_with_notes", "write_image", "write_label",
    "VOC_CLASSES", "color_map", "colorize", "rgb_to_label",
    "SYNTHETIC_CLASSES", "generate_synthetic_voc", "ensure_synthetic_voc",
    "TRANSFORMS", "Compose", "Normalize", "build_transforms",
    "SegDataset", "PascalVOC", "ListDataset", "PascalContext", "Cityscapes", "ADE20K",
    "SIFTFlow", "NYUDv2", "SyntheticVOC", "collate_fn",
    "CheckReport", "check_dataset", "DATASETS", "build_dataset", "config_problems",
    "dataset_class_names",
]
