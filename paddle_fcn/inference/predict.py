"""Predicting label maps for images (``tools/predict.py``).

Input: one image, a folder (searched recursively for image files) or a list file (``.txt``,
one image per line, an optional label path after it is ignored; relative paths are relative
to the list file). Output under ``save_dir``, mirroring the input's relative paths:

    pseudo_color_prediction/NAME.png   VOC palette PNG: the pixel values are class indices
                                       (``read_label`` returns them), the palette colours them
    added_prediction/NAME.EXT          the colour mask blended 50/50 over the image (the input's
                                       format for JPEG/PNG/BMP, else PNG)
    legend/NAME.png                    (``with_legend``) image | mask | class-name legend

Images are read with their EXIF orientation applied, so a phone photo's mask and overlay
come out the way viewers show the photo (training reads pixels as stored, see
``data.io.read_image``).

Models come as a ``Segmenter``: ``segmenter.labels(batch) -> N x H x W`` int class indices of
a normalised ``N x 3 x H x W`` batch, plus ``normalization`` and ``class_names``.
``load_segmenter`` builds one from a training checkpoint or an export directory; on CPU a
checkpoint is exported to a temporary directory and run with the Paddle Inference predictor
(oneDNN, all cores: several times faster than the eager model) unless ``eager=True``.
"""
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from paddle_fcn.errors import DataError, PredictError
from paddle_fcn.data.lists import read_list_file
from paddle_fcn.data.io import read_image, write_image, write_label
from paddle_fcn.data.palette import colorize
from paddle_fcn.inference.visualize import legend_image, overlay
from paddle_fcn.normalization import normalize_image

__all__ = ["IMAGE_EXTENSIONS", "PredictError", "PredictSummary", "collect_images",
           "predict_images", "aggregates"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_DIR, OVERLAY_DIR, LEGEND_DIR = "pseudo_color_prediction", "added_prediction", "legend"




@dataclass
class PredictSummary:
    """``written``: (image, mask path) per image done; ``failed``: (image, reason)."""
    save_dir: str
    written: list = field(default_factory=list)
    failed: list = field(default_factory=list)


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _folder_images(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if _is_image(f)]
    if not found:
        raise PredictError(f"--image_path {folder}: no image files "
                           f"({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    return [(p, os.path.relpath(p, folder)) for p in found]


def _list_images(list_file):
    """The images of a list file: the first field of each line (a PaddleSeg file list's label
    column is ignored), relative to the list's folder."""
    base, items = os.path.dirname(os.path.abspath(list_file)), []
    for number, parts in read_list_file(list_file, (1, 2), "'image_path [label_path]'",
                                        PredictError, what="--image_path list file"):
        path = parts[0] if os.path.isabs(parts[0]) else os.path.join(base, parts[0])
        if not _is_image(path):
            raise PredictError(f"{list_file} line {number}: {parts[0]!r} is not an image "
                               f"file ({', '.join(IMAGE_EXTENSIONS)})")
        rel = os.path.relpath(path, base)
        items.append((path, os.path.basename(path) if rel.startswith(os.pardir) else rel))
    return items


def _unique(items, source):
    """``items`` unless two images would write the same outputs (PredictError names both)."""
    seen = {}
    for path, rel in items:
        key = os.path.splitext(os.path.normcase(rel))[0]
        if key in seen:
            raise PredictError(f"{source}: {seen[key]} and {path} would both be written as "
                               f"{os.path.splitext(rel)[0]}.*; rename one of them")
        seen[key] = path
    return items


def collect_images(image_path):
    """``[(image path, relative name)]`` for an image file, a folder or a ``.txt`` list.

    The relative name (path under the folder / list directory; the file name for list entries
    outside it) names the outputs, so images with the same file name in different sub-folders
    do not overwrite each other.
    """
    if os.path.isdir(image_path):
        return _unique(_folder_images(image_path), image_path)
    if not os.path.exists(image_path):
        raise PredictError(f"--image_path {image_path}: no such file or directory")
    if image_path.lower().endswith((".txt", ".lst")):
        return _unique(_list_images(image_path), image_path)
    if not _is_image(image_path):
        raise PredictError(f"--image_path {image_path}: not an image "
                           f"({', '.join(IMAGE_EXTENSIONS)}), a folder or a .txt list file")
    return [(image_path, os.path.basename(image_path))]


def aggregates(test_cfg):
    """Whether ``test_cfg`` asks for more than one whole-image pass (slide, flip, scales)."""
    if test_cfg is None:
        return False
    scales = list(getattr(test_cfg, "scales", None) or [1.0])
    return bool(test_cfg.is_slide or test_cfg.flip_horizontal or scales != [1.0])


def _outputs(save_dir, rel):
    stem, ext = os.path.splitext(rel)
    ext = ext if ext.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
    return (os.path.join(save_dir, MASK_DIR, stem + ".png"),
            os.path.join(save_dir, OVERLAY_DIR, stem + ext),
            os.path.join(save_dir, LEGEND_DIR, stem + ".png"))


def predict_one(segmenter, path, rel, save_dir, with_legend=False):
    """Predict one image and write its outputs; returns the mask path."""
    image = read_image(path, exif=True)  # a photo as viewers show it (EXIF orientation)
    label = segmenter.labels(normalize_image(image, segmenter.normalization)[None])[0]
    mask_path, overlay_path, legend_path = _outputs(save_dir, rel)
    write_label(mask_path, label.astype(np.uint8))
    colours = colorize(label)
    write_image(overlay_path, overlay(image, colours))
    if with_legend:
        write_image(legend_path, legend_image(image, colours, label, segmenter.class_names))
    return mask_path


def predict_images(segmenter, image_path, save_dir, with_legend=False, progress=True,
                   log=None):
    """Predict every image of ``image_path`` (see ``collect_images``) into ``save_dir``.

    An unreadable image is skipped (``summary.failed``: path and reason; ``log``, a callable
    taking a string, hears of it as it happens); the others are still written. Returns a
    ``PredictSummary``.
    """
    items = collect_images(image_path)
    if segmenter.num_classes > 256:
        raise PredictError(f"{segmenter.num_classes} classes do not fit a palette PNG (max 256)")
    summary = PredictSummary(save_dir)
    bar = tqdm(items, desc="predict", unit="img", disable=not progress or len(items) < 2,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    for path, rel in bar:
        try:
            mask = predict_one(segmenter, path, rel, save_dir, with_legend)
        except DataError as e:
            summary.failed.append((path, str(e)))
            if log is not None:
                log(f"skipped: {e}")
            continue
        summary.written.append((path, mask))
    return summary

