"""Data set checks: read every raw (image, label) pair and explain what is wrong with it.

``check_dataset(dataset, num_classes)`` returns a ``CheckReport``; each problem names the
file(s) and says what to do. Errors make ``report.ok`` False; notes (images converted on
reading, classes never seen) are information only. ``tools/check_data.py`` is the CLI.
"""
import os

import cv2
import numpy as np

from paddle_fcn.errors import DataError
from paddle_fcn.data.io import colour_mask_message, load_label_array, read_image_with_notes

__all__ = ["CheckReport", "check_dataset"]

_TITLES = {
    "empty": "empty data set",
    "missing": "missing files",
    "unreadable": "unreadable or truncated files",
    "colour_mask": "colour (RGB) masks instead of class indices",
    "label_values": "label values outside the classes and the ignore index",
    "binary_mask": "0/255 binary masks",
    "size_mismatch": "image and label sizes differ",
    "num_classes": "num_classes disagrees with the data",
    "converted": "images converted on reading",
    "void_regions": "labels with only background and large void regions",
    "unseen_classes": "classes never present",
}


class CheckReport:
    """Problems found by ``check_dataset``, grouped by kind.

    ``errors`` / ``notes``: ``{kind: [message, ...]}`` holding at most ``max_report`` messages
    per kind; ``counts[kind]`` is the full number. ``ok`` is True when there are no errors.
    """

    def __init__(self, source, num_samples, max_report=10):
        self.source, self.num_samples, self.max_report = source, num_samples, max_report
        self.errors, self.notes, self.counts = {}, {}, {}
        self.class_files = {}  # class index -> number of label files containing it

    def add(self, kind, message, error=True):
        group = (self.errors if error else self.notes).setdefault(kind, [])
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if len(group) < self.max_report:
            group.append(message)

    @property
    def ok(self):
        return not self.errors

    def _section(self, header, groups):
        lines = [header]
        order = list(_TITLES)
        for kind, messages in sorted(groups.items(), key=lambda kv: order.index(kv[0])):
            lines.append(f"  {_TITLES.get(kind, kind)} ({self.counts[kind]}):")
            lines += [f"    - {m}" for m in messages]
            if self.counts[kind] > len(messages):
                lines.append(f"    ... and {self.counts[kind] - len(messages)} more")
        return lines

    def __str__(self):
        n_err = sum(self.counts[k] for k in self.errors)
        n_note = sum(self.counts[k] for k in self.notes)
        lines = [f"Data check of {self.source}: {self.num_samples} pairs, {n_err} error(s), "
                 f"{n_note} note(s) -> {'OK' if self.ok else 'FAILED'}"]
        if self.errors:
            lines += self._section("ERRORS", self.errors)
        if self.notes:
            lines += self._section("NOTES", self.notes)
        if self.class_files:
            present = ", ".join(f"{c}: {n}" for c, n in sorted(self.class_files.items()))
            lines.append(f"Label files per class index: {present}")
        return "\n".join(lines)

    def raise_if_failed(self):
        """Raise DataError with the whole report if any error was found."""
        if not self.ok:
            raise DataError(str(self))


def _is_void_blob(label, ignore_index):
    """True if the ignore pixels form solid regions rather than thin (<= 4 px) borders."""
    void = (label == ignore_index).astype(np.uint8)
    total = int(void.sum())
    if total == 0:
        return False
    core = cv2.erode(void, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return core.sum() >= 0.25 * total


def _check_values(report, path, label, num_classes, ignore_index, seen):
    """Report out-of-range values of one label and count its classes in ``seen``.

    Returns ``(blob, max_bad)``: whether it is a 0/255 binary-mask candidate, and its largest
    out-of-range value (None if all values are valid).
    """
    values, counts = np.unique(label, return_counts=True)
    classes = [int(v) for v in values if 0 <= v < num_classes]
    for c in classes:
        seen[c] = seen.get(c, 0) + 1
    bad = [(int(v), int(n)) for v, n in zip(values, counts)
           if v != ignore_index and not 0 <= v < num_classes]
    blob = _is_void_blob(label, ignore_index)
    if bad:
        shown = [v for v, _ in bad[:12]] + (["..."] if len(bad) > 12 else [])
        frac = sum(n for _, n in bad) / label.size
        msg = (f"label {path}: values {shown} ({frac:.1%} of pixels) are not class indices "
               f"0..{num_classes - 1} or {ignore_index} (ignore)")
        if path.lower().endswith((".jpg", ".jpeg")):
            msg += "; JPEG is lossy and changes label values: store labels as PNG"
        elif blob and len(bad) > 2:
            msg += ("; with solid 255 regions and in-between values this looks like a "
                    "grayscale 0/255 mask with soft edges: threshold it, divide by 255 and use "
                    "num_classes=2")
        else:
            msg += (f"; if they are real classes raise num_classes above {max(v for v, _ in bad)}"
                    f", otherwise fix or remap the label")
        report.add("label_values", msg)
    binary = blob and not bad and set(int(v) for v in values) <= {0, ignore_index}
    return binary, (max(v for v, _ in bad) if bad else None)


def _check_pair(report, i, image_path, label_path, num_classes, ignore_index, seen,
                label_map=None, load_label=load_label_array):
    """Check one pair; returns ``(blob, max_bad)`` as ``_check_values`` (or (False, None)).
    ``label_map``: the dataset's lookup table from stored values to class indices, if any;
    ``load_label``: the dataset's reader of stored values (e.g. SIFT Flow's ``.mat``)."""
    missing = [(what, p) for what, p in (("image", image_path), ("label", label_path))
               if not os.path.isfile(p)]
    for what, p in missing:
        report.add("missing", f"entry {i + 1} of {report.source}: {what} file not found: {p}; "
                              f"fix the path or remove the entry")
    if missing:
        return False, None
    try:
        image, notes = read_image_with_notes(image_path)
        if notes:
            report.add("converted", f"{image_path}: {', '.join(notes)}", error=False)
    except DataError as e:
        report.add("unreadable", str(e))
        image = None
    try:
        label, _ = load_label(label_path)
    except DataError as e:
        report.add("unreadable", str(e))
        return False, None
    if label.ndim == 3:
        report.add("colour_mask", colour_mask_message(label_path, label))
        return False, None
    if image is not None and image.shape[:2] != label.shape:
        report.add("size_mismatch", f"image {image_path} is {image.shape[1]}x{image.shape[0]} "
                                    f"(WxH) but label {label_path} is {label.shape[1]}x"
                                    f"{label.shape[0]}; regenerate or resize the label with "
                                    f"nearest-neighbour interpolation")
    if label_map is not None and label.size and label.min() >= 0 and label.max() <= 255:
        label = label_map[label]  # values beyond 0..255 stay as they are and are reported
    return _check_values(report, label_path, label, num_classes, ignore_index, seen)


def _progress(items, enabled, total):
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc="checking data", unit="pair")


def _dataset_level(report, num_classes, ignore_index, seen, blobs, max_label, class_names):
    if blobs and set(seen) <= {0}:
        for p in blobs:
            report.add("binary_mask", f"label {p} holds only 0 and {ignore_index}, and the "
                                      f"{ignore_index} pixels form solid regions, not thin void "
                                      f"borders: it looks like a 0/255 binary mask whose "
                                      f"foreground would be ignored; divide the labels by 255 "
                                      f"(foreground = 1) and use num_classes=2")
    else:
        for p in blobs:
            report.add("void_regions", f"label {p}: only background and large {ignore_index} "
                                       f"(ignored) regions; fine for VOC 'difficult' objects",
                       error=False)
    if max_label is not None and max_label >= num_classes:
        report.add("num_classes", f"labels use class indices up to {max_label} but "
                                  f"num_classes is {num_classes}; set num_classes >= "
                                  f"{max_label + 1} if those are real classes (files listed "
                                  f"under 'label values')")
    unseen = [c for c in range(num_classes) if c not in seen]
    if seen and unseen:
        names = [class_names[c] if class_names and c < len(class_names) else str(c)
                 for c in unseen]
        report.add("unseen_classes", f"num_classes={num_classes} but class(es) {unseen} "
                                     f"({', '.join(names)}) occur in no label file",
                   error=False)


def check_dataset(dataset, num_classes=None, max_report=10, progress=False):
    """Check every raw ``(image, label)`` file pair of ``dataset`` (no transforms).

    ``dataset`` needs ``files`` (list of ``(image_path, label_path)``); ``num_classes``
    defaults to ``dataset.num_classes``, and a different explicit value is itself reported.
    ``max_report`` caps the messages kept per kind. Returns a ``CheckReport``.
    """
    files = list(getattr(dataset, "files", []))
    source = getattr(dataset, "source", type(dataset).__name__)
    report = CheckReport(source, len(files), max_report)
    ds_classes = getattr(dataset, "num_classes", None)
    num_classes = ds_classes if num_classes is None else num_classes
    if num_classes is None:
        raise ValueError("check_dataset: num_classes is not given and the dataset has none")
    if ds_classes is not None and ds_classes != num_classes:
        report.add("num_classes", f"the dataset declares {ds_classes} classes "
                                  f"({source}) but num_classes is {num_classes}; make them agree")
    if not files:
        report.add("empty", f"{source} lists no samples; add entries or pick another split")
        return report
    ignore_index = getattr(dataset, "ignore_index", 255)
    seen, blobs, max_label = {}, [], None
    for i, (image_path, label_path) in enumerate(_progress(files, progress, len(files))):
        blob, max_bad = _check_pair(report, i, image_path, label_path, num_classes,
                                    ignore_index, seen, getattr(dataset, "label_map", None),
                                    getattr(dataset, "load_label_array", load_label_array))
        if blob:
            blobs.append(label_path)
        if max_bad is not None:
            max_label = max_bad if max_label is None else max(max_label, max_bad)
    report.class_files = dict(sorted(seen.items()))
    _dataset_level(report, num_classes, ignore_index, seen, blobs, max_label,
                   getattr(dataset, "class_names", None))
    return report
