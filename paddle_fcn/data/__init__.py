"""Data: datasets (PASCAL VOC, SBD trainaug, PASCAL-Context, SIFT Flow, Cityscapes, ADE20K,
NYUDv2, list files, synthetic), transforms, checks.

Contract (docs/architecture.md): images are read as RGB uint8 HWC, labels as uint8 HW class
indices with 255 = ignore; ``dataset[i]`` is ``(image float32 CHW, label int64 HW)`` after
the transforms, which end in ``Normalize``.
"""
import inspect

from paddle_fcn.data.ade20k import ADE20K
from paddle_fcn.data.check import CheckReport, check_dataset
from paddle_fcn.data.cityscapes import Cityscapes
from paddle_fcn.data.context import PascalContext
from paddle_fcn.data.io import (DataError, read_image, read_label, read_label_with_notes,
                                write_image, write_label)
from paddle_fcn.data.nyud import NYUDv2
from paddle_fcn.data.palette import VOC_CLASSES, color_map, colorize, rgb_to_label
from paddle_fcn.data.siftflow import SIFTFlow
from paddle_fcn.data.synthetic import CLASS_NAMES as SYNTHETIC_CLASSES
from paddle_fcn.data.synthetic import ensure_synthetic_voc, generate_synthetic_voc
from paddle_fcn.data.transforms import TRANSFORMS, Compose, Normalize, build_transforms
from paddle_fcn.data.voc import ListDataset, PascalVOC, SegDataset, collate, collate_fn

__all__ = [
    "DataError", "read_image", "read_label", "read_label_with_notes", "write_image", "write_label",
    "VOC_CLASSES", "color_map", "colorize", "rgb_to_label",
    "SYNTHETIC_CLASSES", "generate_synthetic_voc", "ensure_synthetic_voc",
    "TRANSFORMS", "Compose", "Normalize", "build_transforms",
    "SegDataset", "PascalVOC", "ListDataset", "PascalContext", "Cityscapes", "ADE20K",
    "SIFTFlow", "NYUDv2", "collate_fn", "collate",
    "CheckReport", "check_dataset", "DATASET_TYPES", "build_dataset",
]

# type -> class taking (dataset_root, mode, transforms, num_classes, class_names, ignore_index);
# SyntheticVOC is PascalVOC on generated data, Dataset (a list file) is built apart.
SPLIT_DATASETS = {
    "SyntheticVOC": PascalVOC,
    "PascalVOC": PascalVOC,
    "PascalContext": PascalContext,
    "Cityscapes": Cityscapes,
    "ADE20K": ADE20K,
    "SIFTFlow": SIFTFlow,
    "NYUDv2": NYUDv2,
}
DATASET_TYPES = (*SPLIT_DATASETS, "Dataset")
# dataset options beyond the common ones, and the types that take them
DATASET_OPTIONS = {"reduce_zero_label": ("PascalContext",), "head": ("SIFTFlow",),
                   "modality": ("NYUDv2",), "hha_dir": ("NYUDv2",)}


def _get(cfg, key, default=None):
    """Read ``key`` from a dataclass/namespace or a dict."""
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _as_dict(obj):
    if obj is None or isinstance(obj, dict):
        return dict(obj or {})
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    return dict(vars(obj))


def _synthetic_root(root, synthetic):
    options = {k: v for k, v in _as_dict(synthetic).items() if v is not None}
    valid = [p for p in inspect.signature(ensure_synthetic_voc).parameters if p != "root"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(f"dataset 'synthetic' options: unknown key(s) {unknown}; valid keys: "
                        f"{valid}")
    return ensure_synthetic_voc(root, **options)


def build_dataset(ds_cfg, normalization=None, num_classes=None):
    """Build the dataset described by a dataset config (duck-typed object or dict).

    Reads ``type`` (one of ``DATASET_TYPES``), ``dataset_root``, ``mode``,
    ``file_list``, ``num_classes``, ``class_names``, ``ignore_index``, ``transforms`` (list of
    transform specs, see ``build_transforms``) and ``synthetic`` (keyword arguments of
    ``ensure_synthetic_voc``). ``normalization`` is the model's mean/std dict (None ->
    ImageNet). ``num_classes`` (e.g. the model's) must agree with ``ds_cfg.num_classes`` when
    both are set. SyntheticVOC generates the synthetic set under ``dataset_root`` on first
    use and reads it with ``PascalVOC``.
    """
    kind = _get(ds_cfg, "type")
    if kind not in DATASET_TYPES:
        raise DataError(f"unknown dataset type {kind!r}; valid types: {', '.join(DATASET_TYPES)}")
    cfg_classes = _get(ds_cfg, "num_classes")
    if cfg_classes is not None and num_classes is not None and cfg_classes != num_classes:
        raise DataError(f"dataset num_classes={cfg_classes} but the model has num_classes="
                        f"{num_classes}; make them agree")
    n = cfg_classes if cfg_classes is not None else num_classes
    root = _get(ds_cfg, "dataset_root")
    if not root:
        raise DataError(f"dataset of type {kind} needs dataset_root")
    ignore = _get(ds_cfg, "ignore_index", 255)
    ignore = 255 if ignore is None else ignore
    transforms = build_transforms(_get(ds_cfg, "transforms"), normalization, ignore)
    common = dict(transforms=transforms, num_classes=n,
                  class_names=_get(ds_cfg, "class_names"), ignore_index=ignore)
    if kind == "Dataset":
        file_list = _get(ds_cfg, "file_list")
        if not file_list:
            raise DataError("dataset of type Dataset needs file_list ('image label' per line)")
        return ListDataset(root, file_list, **common)
    for option, kinds in DATASET_OPTIONS.items():
        value = _get(ds_cfg, option)
        if value not in (None, False) and kind not in kinds:
            raise DataError(f"dataset option {option} applies to type(s) {', '.join(kinds)}, "
                            f"not {kind}")
        if kind in kinds and value is not None:
            common[option] = value
    if kind == "SyntheticVOC":
        root = _synthetic_root(root, _get(ds_cfg, "synthetic"))
    return SPLIT_DATASETS[kind](root, _get(ds_cfg, "mode") or "train", **common)
