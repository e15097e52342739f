"""VisualDL logging (``visualdl --logdir <save_dir>/vdl``); only rank 0 writes."""
import os
import time

import numpy as np

from paddle_fcn.data.palette import colorize
from paddle_fcn.normalization import denormalize

__all__ = ["VDLLogger", "TrainLog", "sample_panel"]


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


class TrainLog:
    """Progress bar and Train/loss, Train/lr, Train/ips every ``log_iters`` iterations."""

    def __init__(self, cfg, world, logger, bar):
        self.every, self.logger, self.bar = cfg.log_iters, logger, bar
        self.images_per_iter = cfg.batch_size * cfg.accumulate_steps * world
        self.last, self.since, self.losses, self.lrs = time.time(), 0, [], []

    def step(self, it, loss, lr):
        self.bar.update(1)
        self.since += 1
        if it % self.every and it != self.bar.total:
            return
        ips = self.since * self.images_per_iter / max(time.time() - self.last, 1e-9)
        self.last, self.since = time.time(), 0
        self.losses.append((it, loss))
        self.lrs.append((it, lr))
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", ips=f"{ips:.1f}")
        for tag, value in (("Train/loss", loss), ("Train/lr", lr), ("Train/ips", ips)):
            self.logger.scalar(tag, value, it)
