"""The package's text lists: split and file lists (one entry per line), class-name files.

Split files (``ImageSets/Segmentation/train.txt``: an image id per line), PaddleSeg file
lists (``image_path label_path``), predict's image lists and ``labels.txt`` (a class name per
line) all go through here, so each is read, and each mistake in one reported, the same way.
"""
import os

from paddle_fcn.errors import DataError

__all__ = ["read_list_file", "read_class_names"]


def read_class_names(path):
    """Class names from a ``labels.txt`` (one per line, blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise DataError(f"class name file {path} is empty; write one class name per line")
    return names


def read_list_file(path, columns, form, error=DataError, what="list file"):
    """The entries of a whitespace-separated list file (a split, a PaddleSeg file list, a
    predict image list) as ``[(line number, fields)]``; ``columns``: the allowed numbers of
    fields per line, ``form``: how a line looks, for the error message. Blank lines and lines starting with ``#`` are skipped. A missing file, a
    line with another number of fields or no entry at all raises ``error`` naming the file
    (and the line)."""
    if not os.path.isfile(path):
        raise error(f"{what} not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) not in columns:
                raise error(f"{path} line {lineno}: expected {form}, got {line.strip()!r}")
            rows.append((lineno, parts))
    if not rows:
        raise error(f"{what} {path} is empty; it must list one entry per line")
    return rows
