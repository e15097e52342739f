"""The paper's four segmentation metrics, from one confusion matrix over a whole split.

Long, Shelhamer, Darrell (CVPR 2015), section 5, with ``n_ij`` the number of pixels of class
``i`` predicted as class ``j``, ``n_cl`` the number of classes and ``t_i = sum_j n_ij`` the
number of ground-truth pixels of class ``i``:

* pixel accuracy       ``sum_i n_ii / sum_i t_i``
* mean accuracy        ``(1/n_cl) sum_i n_ii / t_i``
* mean IU              ``(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)``
* frequency weighted IU ``(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)``

As in the reference ``score.py`` (fcn.berkeleyvision.org), the means are ``nanmean`` over
classes: a class whose ratio is 0/0 is left out of ``n_cl``. For IU that is a class absent
from both ground truth and prediction; for accuracy a class absent from the ground truth
(a class only predicted has IU 0 and counts against mean IU).

The metrics are computed from the matrix summed over every image (never averaged per image),
so ``ConfusionMatrix.update`` image by image equals one matrix over the concatenation.
"""
from dataclasses import dataclass

import numpy as np

from paddle_fcn.errors import check_num_classes

__all__ = ["confusion_matrix", "ConfusionMatrix", "SegMetrics", "compute_metrics"]


def _as_index_array(x, what):
    """numpy view of ``x`` (numpy array, paddle Tensor or sequence) of integer class indices."""
    if not isinstance(x, np.ndarray):
        x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(
            f"{what} must hold integer class indices, got dtype {x.dtype} "
            "(for logits take argmax over the class axis first)"
        )
    return x


def confusion_matrix(pred, label, num_classes, ignore_index=255):
    """Count ``label`` (ground truth, rows) against ``pred`` (prediction, columns).

    Args:
        pred, label: integer arrays of the same shape (any shape, e.g. ``N x H x W``).
        num_classes: C.
        ignore_index: label value whose pixels are skipped (VOC "void", 255).

    Returns:
        int64 ``[C, C]`` array; entry ``[i, j]`` = pixels of class ``i`` predicted as ``j``.

    Raises:
        ValueError: shapes differ, non-integer dtype, or a label value other than
            ``ignore_index`` / a prediction lies outside ``[0, C)`` (the offending values are
            listed; nothing is silently dropped).
    """
    check_num_classes(num_classes)
    pred = _as_index_array(pred, "pred")
    label = _as_index_array(label, "label")
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {pred.shape} differs from label shape {label.shape}")
    pred = pred.reshape(-1).astype(np.int64)
    label = label.reshape(-1).astype(np.int64)
    bad_pred = (pred < 0) | (pred >= num_classes)
    if bad_pred.any():
        raise ValueError(
            f"pred values {_some(pred[bad_pred])} lie outside [0, {num_classes})"
        )
    keep = label != ignore_index
    bad_label = keep & ((label < 0) | (label >= num_classes))
    if bad_label.any():
        raise ValueError(
            f"label values {_some(label[bad_label])} lie outside [0, {num_classes}) and are not "
            f"ignore_index={ignore_index} (wrong num_classes, or colour PNGs read as RGB?)"
        )
    flat = num_classes * label[keep] + pred[keep]
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.astype(np.int64).reshape(num_classes, num_classes)


def _some(values, limit=10):
    """Sorted distinct values as a list, cut to ``limit`` for error messages."""
    distinct = np.unique(values).tolist()
    return distinct if len(distinct) <= limit else distinct[:limit] + ["..."]


@dataclass
class SegMetrics:
    """The four metrics (floats in [0, 1]; NaN when no pixel was counted) and per-class values.

    ``class_IoU`` / ``class_acc`` are float64 ``[C]`` arrays with NaN where the ratio is 0/0
    (see the module docstring); ``confusion`` is the int64 ``[C, C]`` matrix they came from.
    """

    pixel_acc: float
    mean_acc: float
    mIoU: float
    fwIoU: float
    class_IoU: np.ndarray
    class_acc: np.ndarray
    confusion: np.ndarray

    def to_dict(self, class_names=None):
        """JSON-safe dict (``metrics.json``): NaN becomes None, per-class values keyed by name."""
        names = _class_names(class_names, len(self.class_IoU))
        return {
            "mIoU": _json_float(self.mIoU),
            "pixel_acc": _json_float(self.pixel_acc),
            "mean_acc": _json_float(self.mean_acc),
            "fwIoU": _json_float(self.fwIoU),
            "class_IoU": {n: _json_float(v) for n, v in zip(names, self.class_IoU)},
            "class_acc": {n: _json_float(v) for n, v in zip(names, self.class_acc)},
        }

    def format_table(self, class_names=None):
        """Printable text: the four metrics (in %) and one line per class with IoU and accuracy."""
        names = _class_names(class_names, len(self.class_IoU))
        width = max(12, *(len(n) for n in names))
        lines = [
            f"mIoU {_pct(self.mIoU)}  pixel_acc {_pct(self.pixel_acc)}  "
            f"mean_acc {_pct(self.mean_acc)}  fwIoU {_pct(self.fwIoU)}  "
            f"({int(self.confusion.sum())} pixels)",
            f"{'class':<{width}}  {'IoU %':>7}  {'acc %':>7}  {'pixels':>10}",
        ]
        support = self.confusion.sum(axis=1)
        for name, iou, acc, n in zip(names, self.class_IoU, self.class_acc, support):
            lines.append(f"{name:<{width}}  {_pct(iou):>7}  {_pct(acc):>7}  {int(n):>10}")
        return "\n".join(lines)


def _class_names(class_names, num_classes):
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class names for {num_classes} classes")
    return names


def _json_float(x):
    x = float(x)
    return None if np.isnan(x) else x


def _pct(x):
    return "n/a" if np.isnan(x) else f"{100.0 * float(x):.2f}"


def _nanmean(values):
    """Mean over the non-NaN entries; NaN (without numpy's warning) when there are none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def compute_metrics(matrix):
    """``SegMetrics`` from a ``[C, C]`` confusion matrix (rows ground truth, columns pred)."""
    hist = np.asarray(matrix)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"confusion matrix must be square [C, C], got shape {hist.shape}")
    hist = hist.astype(np.float64)
    correct = np.diag(hist)                        # n_ii
    gt_total = hist.sum(axis=1)                    # t_i
    union = gt_total + hist.sum(axis=0) - correct  # t_i + sum_j n_ji - n_ii
    total = gt_total.sum()
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> NaN is the intended result
        class_acc = correct / gt_total
        class_iou = correct / union
    if total > 0:
        pixel_acc = float(correct.sum() / total)
        present = gt_total > 0  # t_i > 0 implies union > 0, so no NaN enters the sum
        fw_iou = float((gt_total[present] * class_iou[present]).sum() / total)
    else:
        pixel_acc = fw_iou = float("nan")
    return SegMetrics(
        pixel_acc=pixel_acc,
        mean_acc=_nanmean(class_acc),
        mIoU=_nanmean(class_iou),
        fwIoU=fw_iou,
        class_IoU=class_iou,
        class_acc=class_acc,
        confusion=np.asarray(matrix, dtype=np.int64).copy(),
    )


class ConfusionMatrix:
    """Accumulates one int64 ``[C, C]`` confusion matrix over a split (rows ground truth)."""

    def __init__(self, num_classes, ignore_index=255):
        self.num_classes = check_num_classes(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred, label):
        """Add integer predictions and labels of one shape (numpy or paddle, batched or not)."""
        self.matrix += confusion_matrix(pred, label, self.num_classes, self.ignore_index)
        return self

    def merge(self, other):
        """Add another ``[C, C]`` matrix (numpy, paddle or ConfusionMatrix), e.g. another rank's."""
        if isinstance(other, ConfusionMatrix):
            other = other.matrix
        elif not isinstance(other, np.ndarray):
            other = other.numpy() if hasattr(other, "numpy") else np.asarray(other)
        if other.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {other.shape} matrix into {self.matrix.shape}")
        if not np.issubdtype(other.dtype, np.integer):
            raise ValueError(f"confusion matrix must hold integer counts, got dtype {other.dtype}")
        self.matrix += other.astype(np.int64)
        return self

    def reset(self):
        self.matrix[...] = 0

    def compute(self):
        return compute_metrics(self.matrix)
