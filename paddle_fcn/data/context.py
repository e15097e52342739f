"""PASCAL-Context (Mottaghi et al., CVPR 2014): the 59 most frequent classes plus background,
the task of the FCN papers' PASCAL-Context nets (the authors' model notes: "trained for the
PASCAL-context 59-class (60 including background) task", background = index 0).

Layout (the converted PNGs that PaddleSeg's ``PascalContext`` and MMSegmentation read;
``dataset_root`` is the ``VOC2010`` folder or any folder holding ``VOCdevkit/VOC2010``)::

    VOC2010/
      JPEGImages/<id>.jpg
      SegmentationClassContext/<id>.png        index per pixel: 0 background, 1..59 classes
      ImageSets/SegmentationContext/{train,val}.txt   one <id> per line (4998 / 5105 ids)

Class 0 (background, every pixel of the 400 rarer classes and the unlabelled ones) is a class
by default: 60 outputs, as the FCN reference nets (``pascalcontext-fcn*s``: 60 score channels,
class list ``0: background`` .. ``59: wood``) and PaddleSeg (``num_classes: 60``).
``reduce_zero_label=True`` instead ignores it and shifts 1..59 to 0..58 (59 outputs;
MMSegmentation's ``PascalContextDataset59``). 255, if present, is ignored in both.

``convert_context_mat`` makes that layout from the original release (``trainval/<id>.mat``
holding the 459-class ``LabelMap``, and its ``labels.txt``), mapping by class name the way
the FCN reference's data layer does; it needs ``scipy`` (optional; a clear error without it).
"""
import dataclasses
import glob
import os

import numpy as np

from paddle_fcn.errors import DataError
from paddle_fcn.data.io import load_mat, write_label
from paddle_fcn.data.reference import read_reference_classes
from paddle_fcn.data.voc import IGNORE_INDEX, PascalVOC, zero_ignored_lut

__all__ = ["CONTEXT_CLASSES", "PascalContext", "ContextConversion", "convert_context_mat",
           "context_lut"]

CONTEXT_CLASSES = tuple(read_reference_classes("pascal-context_classes-59.txt"))  # 60 names


class PascalContext(PascalVOC):
    """PASCAL-Context 59 (+ background) in the converted-PNG layout (module docstring).

    ``mode``: ``train`` | ``val`` | ``trainval``. 60 classes (``CONTEXT_CLASSES``, 0 =
    background), or 59 with ``reduce_zero_label=True`` (background ignored).
    """

    MODES = {mode: "SegmentationClassContext" for mode in ("train", "val", "trainval")}
    FOLDER, SPLIT_DIR = "VOC2010", "SegmentationContext"
    CLASSES, WHAT = CONTEXT_CLASSES, "PASCAL-Context"

    def __init__(self, dataset_root, mode="train", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX, reduce_zero_label=False):
        if reduce_zero_label:
            self.CLASSES = CONTEXT_CLASSES[1:]
            self.label_map = zero_ignored_lut(ignore_index)
        super().__init__(dataset_root, mode, transforms, num_classes, class_names,
                         ignore_index)


def _name_key(name):
    return name.replace(" ", "").lower()


def context_lut(labels_txt):
    """459-class index -> 0..59 (0 = background) from the release's ``labels.txt``
    (``"<i>: <name>"`` lines), matching names without spaces as the FCN reference does."""
    full = {}
    with open(labels_txt, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            index, sep, name = line.partition(":")
            if not sep or not index.strip().isdigit():
                raise DataError(f"{labels_txt} line {lineno}: expected '<index>: <name>', got "
                                f"{line.strip()!r}")
            full[_name_key(name.strip())] = int(index)
    missing = [n for n in CONTEXT_CLASSES[1:] if _name_key(n) not in full]
    if missing:
        raise DataError(f"{labels_txt} does not list the PASCAL-Context class(es) {missing}; "
                        f"use the labels.txt of the 459-class release")
    lut = np.zeros(max(full.values()) + 1, np.uint8)
    for i, name in enumerate(CONTEXT_CLASSES[1:], 1):
        lut[full[_name_key(name)]] = i
    return lut


@dataclasses.dataclass
class ContextConversion:
    """What ``convert_context_mat`` did. ``written``: labels written; ``splits``: per split
    written, ``(number of ids listed, [ids without a Context label])``, the latter left out;
    ``missing_splits``: the ``ImageSets/Main/<split>.txt`` that do not exist (not written)."""
    written: int
    splits: dict
    missing_splits: list

    def lines(self, limit=5):
        """One line per split for the command's output, naming up to ``limit`` left-out ids."""
        out = []
        for split, (listed, unlabelled) in self.splits.items():
            line = f"{split}: {listed - len(unlabelled)} of {listed} ids"
            if unlabelled:
                shown = ", ".join(unlabelled[:limit]) + (", ..." if len(unlabelled) > limit
                                                         else "")
                line += f"; {len(unlabelled)} have no .mat label and are left out ({shown})"
            out.append(line)
        out += [f"{split}: no ImageSets/Main/{split}.txt, not written"
                for split in self.missing_splits]
        return out


def convert_context_mat(context_dir, voc_root):
    """Write ``voc_root/SegmentationClassContext/<id>.png`` (0 background, 1..59) from
    ``context_dir/trainval/<id>.mat`` and ``context_dir/labels.txt``, and the split files
    ``ImageSets/SegmentationContext/{train,val}.txt`` from VOC2010's ``ImageSets/Main``
    (PASCAL-Context's train / val are VOC 2010's), keeping the ids that have a label.
    Returns a ``ContextConversion`` that counts what was written and left out.
    A bad ``.mat`` stops it with a DataError naming the file; the PNGs written before it are
    complete, and a re-run rewrites them identically. No ``labels.txt``, no ``.mat`` or neither
    split list is a DataError before anything is written."""
    labels_txt = os.path.join(context_dir, "labels.txt")
    if not os.path.isfile(labels_txt):
        raise DataError(f"{labels_txt} not found: the 459-class release ships it next to "
                        f"trainval/")
    lut = context_lut(labels_txt)
    main = os.path.join(voc_root, "ImageSets", "Main")
    if not any(os.path.isfile(os.path.join(main, f"{s}.txt")) for s in ("train", "val")):
        raise DataError(f"{main}/train.txt and val.txt not found: voc_root must be the VOC2010 "
                        f"folder (PASCAL-Context's splits are VOC 2010's)")
    mats = sorted(glob.glob(os.path.join(context_dir, "trainval", "*.mat")))
    if not mats:
        raise DataError(f"no .mat labels in {os.path.join(context_dir, 'trainval')}")
    ids = []
    for path in mats:
        full = load_mat(path, "LabelMap").astype(np.int64)
        if full.ndim != 2 or full.min() < 0 or full.max() >= len(lut):
            raise DataError(f"{path}: LabelMap must be a 2-D map of 0..{len(lut) - 1}, got "
                            f"shape {full.shape}, values {full.min()}..{full.max()}")
        ids.append(os.path.splitext(os.path.basename(path))[0])
        write_label(os.path.join(voc_root, "SegmentationClassContext", ids[-1] + ".png"),
                    lut[full])
    splits, missing = _write_splits(voc_root, set(ids))
    return ContextConversion(len(ids), splits, missing)


def _write_splits(voc_root, have):
    split_dir = os.path.join(voc_root, "ImageSets", "SegmentationContext")
    os.makedirs(split_dir, exist_ok=True)
    splits, missing = {}, []
    for split in ("train", "val"):
        main = os.path.join(voc_root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(main):
            missing.append(split)
            continue
        with open(main, encoding="utf-8") as f:
            listed = [line.split()[0] for line in f if line.strip()]
        keep = [i for i in listed if i in have]
        with open(os.path.join(split_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(i + "\n" for i in keep))
        splits[split] = (len(listed), [i for i in listed if i not in have])
    return splits, missing
