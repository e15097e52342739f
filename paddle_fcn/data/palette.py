"""PASCAL VOC colour map and class names.

VOC label PNGs are palette ("P" mode) images: each pixel stores a class index and the file's
palette maps the index to a display colour. The palette is the devkit's ``labelcolormap``: the
bits of the index are spread over the high bits of R, G and B (index 1 -> (128, 0, 0),
index 15 -> (192, 128, 128), index 255 "void" -> (224, 224, 192)).
"""
import numpy as np

__all__ = ["VOC_CLASSES", "color_map", "colorize", "match_voc_colors", "rgb_to_label"]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def color_map(n=256):
    """The VOC devkit colour map: uint8 ``[n, 3]`` RGB, row i is the colour of index i."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):  # bit 3j, 3j+1, 3j+2 of the index -> bit 7-j of R, G, B
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


_CMAP = color_map(256)


def colorize(label):
    """Class-index map ``HW`` (any integer dtype, values 0..255) -> uint8 ``HW3`` RGB image."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"colorize expects an HW class-index map, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(
            f"colorize: label values must lie in 0..255, got {label.min()}..{label.max()}"
        )
    return _CMAP[label.astype(np.int64)]


def _color_keys(rgb):
    rgb = np.asarray(rgb, dtype=np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def match_voc_colors(rgb, num_classes=21):
    """Fraction of pixels of an ``HW3`` RGB mask whose colour is a VOC colour.

    The VOC colours counted are those of indices ``0..num_classes-1`` and 255 (void). A colour
    mask saved from a VOC palette PNG (or drawn with the VOC colours) gives 1.0. Raises
    ValueError for fewer than 3 channels (e.g. a gray+alpha ``HW2`` image).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"match_voc_colors expects an HW3 (or HW4) RGB mask, got shape "
                         f"{rgb.shape}")
    keys = _color_keys(rgb[..., :3])
    voc = _color_keys(_CMAP[list(range(min(num_classes, 255))) + [255]])
    return float(np.isin(keys, voc).mean()) if keys.size else 0.0


def rgb_to_label(rgb, num_classes=21):
    """Convert an ``HW3`` VOC colour mask back to class indices (uint8 ``HW``).

    Every pixel must carry the VOC colour of an index in ``0..num_classes-1`` or of 255 (void);
    any other colour raises ValueError listing up to five of the unknown colours.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"rgb_to_label expects an HW3 RGB mask, got shape {rgb.shape}")
    indices = list(range(min(num_classes, 255))) + [255]
    lookup = {int(k): i for k, i in zip(_color_keys(_CMAP[indices]), indices)}
    keys = _color_keys(rgb[..., :3])
    uniq, inverse = np.unique(keys, return_inverse=True)
    unknown = [int(k) for k in uniq if int(k) not in lookup]
    if unknown:
        shown = [((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in unknown[:5]]
        raise ValueError(
            f"rgb_to_label: {len(unknown)} colour(s) are not VOC colours of classes "
            f"0..{num_classes - 1} or void, e.g. {shown}"
        )
    values = np.array([lookup[int(k)] for k in uniq], dtype=np.uint8)
    return values[inverse.reshape(keys.shape)]
