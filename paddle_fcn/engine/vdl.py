"""VisualDL logging (``visualdl --logdir <save_dir>/vdl``); only rank 0 writes."""
import os

import numpy as np

from paddle_fcn.data.palette import colorize

__all__ = ["VDLLogger", "sample_panel"]


def denormalize(image_chw, normalization):
    """Normalised float CHW -> uint8 HWC RGB, inverting ``(img/255 - mean) / std``; of a
    multi-channel input (RGB-HHA) the first three channels, RGB."""
    mean = np.asarray(normalization["mean"], np.float32)[:3, None, None]
    std = np.asarray(normalization["std"], np.float32)[:3, None, None]
    rgb = (image_chw[:3] * std + mean) * 255.0
    return np.clip(rgb, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def sample_panel(image_chw, label, pred, normalization):
    """``input | ground truth | prediction`` side by side, masks in the VOC palette (HWC uint8)."""
    return np.concatenate([denormalize(image_chw, normalization),
                           colorize(label), colorize(pred)], axis=1)


class VDLLogger:
    """Scalars and images for VisualDL; a no-op when disabled (``use_vdl: false`` or rank > 0)."""

    def __init__(self, logdir, enabled=True):
        self.writer = None
        if enabled:
            from visualdl import LogWriter  # imported lazily: it is slow to import
            os.makedirs(logdir, exist_ok=True)
            self.writer = LogWriter(logdir=logdir)

    def scalar(self, tag, value, step):
        if self.writer is not None and value is not None and np.isfinite(value):
            self.writer.add_scalar(tag=tag, value=float(value), step=step)

    def image(self, tag, image_hwc, step):
        if self.writer is not None:
            self.writer.add_image(tag=tag, img=image_hwc, step=step, dataformats="HWC")

    def eval_result(self, result, class_names, normalization, step):
        """Eval/mIoU, pixel_acc, mean_acc, fwIoU, per-class IoU and sample panels."""
        m = result.metrics
        for key in ("mIoU", "pixel_acc", "mean_acc", "fwIoU"):
            self.scalar(f"Eval/{key}", getattr(m, key), step)
        for name, iou in zip(class_names, m.class_IoU):
            self.scalar(f"Eval_class_IoU/{name}", iou, step)
        for i, (img, lab, pred) in enumerate(result.samples):
            self.image(f"Eval/sample_{i}", sample_panel(img, lab, pred, normalization), step)

    def close(self):
        if self.writer is not None:
            self.writer.close()
