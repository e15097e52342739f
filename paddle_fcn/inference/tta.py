"""Turning a model into per-pixel class scores for whole images (evaluation and prediction).

Whole-image inference at the original resolution is the paper's protocol (the network accepts
any H x W, docs/design.md#any-input-size). Sliding-window, horizontal-flip and multi-scale
inference are the usual toolkit options; they average softmax probabilities.
"""
import math

import paddle
import paddle.nn.functional as F

__all__ = ["predict_probs", "slide_probs"]


def _probs(model, image, flip):
    probs = F.softmax(model(image), axis=1)
    if flip:
        flipped = F.softmax(model(paddle.flip(image, axis=[3])), axis=1)
        probs = (probs + paddle.flip(flipped, axis=[3])) / 2
    return probs


def slide_probs(model, image, crop_size, stride, flip=False):
    """Average of window predictions over ``image`` (``N x 3 x H x W``).

    ``crop_size`` and ``stride`` are ``[w, h]``. Windows cover the image with the last one
    flush with the right/bottom edge; an image smaller than a window is run whole.
    """
    _, _, h, w = image.shape
    cw, ch = crop_size
    sw, sh = stride
    if sw < 1 or sh < 1:
        raise ValueError(f"test_config.stride must be positive, got {stride}")
    rows = max(1, math.ceil((h - ch) / sh) + 1) if h > ch else 1
    cols = max(1, math.ceil((w - cw) / sw) + 1) if w > cw else 1
    total, count = None, paddle.zeros([1, 1, h, w])
    for r in range(rows):
        for c in range(cols):
            y0 = max(0, min(r * sh, h - ch))
            x0 = max(0, min(c * sw, w - cw))
            y1, x1 = min(h, y0 + ch), min(w, x0 + cw)
            p = _probs(model, image[:, :, y0:y1, x0:x1], flip)
            if total is None:
                total = paddle.zeros([image.shape[0], p.shape[1], h, w])
            total[:, :, y0:y1, x0:x1] += p
            count[:, :, y0:y1, x0:x1] += 1
    return total / count


def predict_probs(model, image, test_cfg=None):
    """Class probabilities ``N x C x H x W`` for a normalised ``N x 3 x H x W`` batch.

    ``test_cfg`` (a ``TestConfig``): ``is_slide`` with ``crop_size``/``stride``,
    ``flip_horizontal``, ``scales`` (each scale resizes the input, the scores are resized back
    bilinearly and averaged). ``None`` means one whole-image pass.
    """
    scales = list(getattr(test_cfg, "scales", None) or [1.0])
    flip = bool(getattr(test_cfg, "flip_horizontal", False))
    slide = bool(getattr(test_cfg, "is_slide", False))
    _, _, h, w = image.shape
    total = None
    for s in scales:
        x = image if s == 1.0 else F.interpolate(
            image, size=[max(1, round(h * s)), max(1, round(w * s))], mode="bilinear",
            align_corners=False)
        if slide:
            p = slide_probs(model, x, test_cfg.crop_size, test_cfg.stride or test_cfg.crop_size,
                            flip)
        else:
            p = _probs(model, x, flip)
        if s != 1.0:
            p = F.interpolate(p, size=[h, w], mode="bilinear", align_corners=False)
        total = p if total is None else total + p
    return total / len(scales)
