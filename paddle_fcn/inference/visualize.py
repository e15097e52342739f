"""Pictures of a prediction: the colour mask over the image, and image | mask | legend.

Colours are the VOC colour map (``data.palette.colorize``), so a mask looks the same here, in
the palette PNG and in VOC's own ``SegmentationClass`` files. Drawn with OpenCV on RGB uint8.
"""
import cv2
import numpy as np

__all__ = ["overlay", "legend_image"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SCALE, _THICK = 0.5, 1
_ROW, _SWATCH, _MARGIN = 22, 16, 8  # legend row height, colour square side, margins (px)


def overlay(image, colours, alpha=0.5):
    """``(1 - alpha) * image + alpha * colours``, both RGB uint8 ``H x W x 3``."""
    if image.shape != colours.shape:
        raise ValueError(f"overlay: image {image.shape} and mask colours {colours.shape} differ")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def _legend_panel(label, colours, class_names, height):
    """White panel listing the classes present in ``label``: colour square + ``i name``."""
    present = [int(c) for c in np.unique(label)]
    texts = [f"{c} {class_names[c] if c < len(class_names) else f'class_{c}'}"
             for c in present]
    widths = [cv2.getTextSize(t, _FONT, _SCALE, _THICK)[0][0] for t in texts]
    width = _MARGIN * 3 + _SWATCH + max(widths, default=0)
    panel = np.full((max(height, _MARGIN * 2 + _ROW * len(texts)), width, 3), 255, np.uint8)
    for row, (c, text) in enumerate(zip(present, texts)):
        y = _MARGIN + row * _ROW
        colour = tuple(int(v) for v in colours[label == c][0])
        cv2.rectangle(panel, (_MARGIN, y), (_MARGIN + _SWATCH, y + _SWATCH), colour, -1)
        cv2.rectangle(panel, (_MARGIN, y), (_MARGIN + _SWATCH, y + _SWATCH), (0, 0, 0), 1)
        cv2.putText(panel, text, (_MARGIN * 2 + _SWATCH, y + _SWATCH - 3), _FONT, _SCALE,
                    (0, 0, 0), _THICK, cv2.LINE_AA)
    return panel


def _pad_to(picture, height):
    extra = height - picture.shape[0]
    return picture if extra <= 0 else np.pad(picture, ((0, extra), (0, 0), (0, 0)),
                                              constant_values=255)


def legend_image(image, colours, label, class_names):
    """Side by side: the image, its colour mask, and a legend of the classes present.

    ``image``/``colours`` RGB uint8 ``H x W x 3``, ``label`` ``H x W`` class indices,
    ``class_names`` indexed by class. Returns RGB uint8 ``max(H, legend) x (2W + legend)``.
    """
    panel = _legend_panel(label, colours, class_names, image.shape[0])
    height = panel.shape[0]
    gap = np.full((height, _MARGIN // 2, 3), 255, np.uint8)
    return np.concatenate([_pad_to(image, height), gap, _pad_to(colours, height), gap, panel],
                          axis=1)
