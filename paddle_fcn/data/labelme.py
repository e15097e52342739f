"""labelme annotations -> the VOC layout that ``PascalVOC`` and list datasets read.

Written from the description of labelme's JSON format (one ``<name>.json`` per image): the
keys ``shapes`` (list of ``{"label", "points": [[x, y], ...], "shape_type"}``), ``imagePath``
(the image, relative to the JSON file), ``imageData`` (the image itself, base64, or null),
``imageHeight`` and ``imageWidth``. Shape types converted: ``polygon`` (the vertices; also a
missing / null type, as older files write), ``rectangle`` (two opposite corners) and
``circle`` (the centre, then a point on the circle). Shapes are painted in file order, so a
later shape covers an earlier one, as labelme draws them. Other shape types (line, point,
mask ...) are refused, naming the file: they have no area, or need labelme's own decoder.

``labels.txt`` (one class per line) fixes the class indices: line order, skipping a line
``__ignore__``, whose label is painted 255 (ignore), as labelme's own examples do. Unlabelled
pixels are class 0, so the first class is the background (``_background_`` in those
examples). Output::

    out/JPEGImages/<name>.<ext>            the image, copied (EXIF-rotated photos re-encoded
                                           upright as PNG, since labelme shows them upright)
    out/SegmentationClass/<name>.png       palette PNG of class indices
    out/ImageSets/Segmentation/{train,val,trainval}.txt   "JPEGImages/x SegmentationClass/x.png"
    out/labels.txt                         the class names, index order
"""
import base64
import glob
import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from paddle_fcn.errors import DataError
from paddle_fcn.data.io import write_label

__all__ = ["IGNORE_LABEL", "read_labels_txt", "shapes_to_mask", "convert_labelme"]

IGNORE_LABEL = "__ignore__"
_EXIF_ORIENTATION = 0x0112


def read_labels_txt(path):
    """``{name: index}`` from a labelme ``labels.txt`` (``__ignore__`` -> 255) and the class
    names in index order."""
    if not os.path.isfile(path):
        raise DataError(f"labels file not found: {path}; write one class name per line")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    classes = [n for n in names if n != IGNORE_LABEL]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path} lists class(es) {twice} more than once")
    if not classes or len(classes) > 255:
        raise DataError(f"{path} must list 1..255 classes, got {len(classes)}")
    index = {n: i for i, n in enumerate(classes)}
    if IGNORE_LABEL in names:
        index[IGNORE_LABEL] = 255
    return index, classes


def _points(shape, where):
    pts = shape.get("points")
    try:
        pts = [(float(x), float(y)) for x, y in pts]
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'points' must be a list of [x, y] pairs, got {pts!r}") \
            from None
    return pts


def _region(kind, pts, height, width, at):
    """Boolean ``height x width`` map of the pixels a shape covers (pixel (x, y) is the unit
    square centred on integer x, y, as labelme's points are pixel coordinates)."""
    if kind == "circle" and len(pts) == 2:
        # the pixels whose centre lies within the radius (centre -> second point)
        (cx, cy), (px, py) = pts
        yy, xx = np.mgrid[:height, :width]
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= (px - cx) ** 2 + (py - cy) ** 2
    image = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(image)
    if kind == "polygon" and len(pts) >= 3:
        draw.polygon(pts, fill=1, outline=1)  # interior and the pixels on its edges
    elif kind == "rectangle" and len(pts) == 2:
        (x0, y0), (x1, y1) = pts
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=1)
    elif kind in ("polygon", "rectangle", "circle"):
        raise DataError(f"{at}: a {kind} needs {'>= 3' if kind == 'polygon' else '2'} points, "
                        f"got {len(pts)}")
    else:
        raise DataError(f"{at}: shape_type {kind!r} is not converted (polygon, rectangle and "
                        f"circle are); redraw it as a polygon")
    return np.asarray(image, dtype=bool)


def shapes_to_mask(shapes, height, width, class_index, where="labelme JSON"):
    """Paint ``shapes`` (labelme shape dicts), in order, into a uint8 ``height x width`` map.

    ``class_index``: label -> index (``read_labels_txt``). Pixels under no shape are 0. A
    polygon covers its interior and edge pixels, a rectangle every pixel between its corners
    (both included), a circle the pixels whose centre is within its radius. Raises DataError
    naming ``where``, the shape and the problem (unknown label or type, too few points).
    """
    mask = np.zeros((height, width), np.uint8)
    for i, shape in enumerate(shapes):
        at = f"{where}: shape {i}"
        label = shape.get("label") if isinstance(shape, dict) else None
        if label not in class_index:
            raise DataError(f"{at}: label {label!r} is not in labels.txt "
                            f"({', '.join(class_index)}); add it there")
        kind = shape.get("shape_type") or "polygon"
        mask[_region(kind, _points(shape, at), height, width, at)] = class_index[label]
    return mask


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise DataError(f"{path} is not a labelme file: it has no 'shapes' list")
    return data


def _image_bytes(path, data):
    """``(bytes, extension)`` of the annotated image: the file at ``imagePath`` if present,
    else the embedded ``imageData``."""
    rel = data.get("imagePath")
    if rel:
        image_path = os.path.join(os.path.dirname(path), rel.replace("\\", "/"))
        if os.path.isfile(image_path):
            with open(image_path, "rb") as f:
                return f.read(), os.path.splitext(image_path)[1].lower()
    if data.get("imageData"):
        try:
            raw = base64.b64decode(data["imageData"], validate=True)
        except ValueError:
            raise DataError(f"{path}: imageData is not base64") from None
        return raw, None
    raise DataError(f"{path}: image {rel!r} not found next to it and no imageData embedded")


def _decode(raw, path):
    try:
        with Image.open(io.BytesIO(raw)) as im:
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
            fmt = (im.format or "PNG").lower()
            upright = _upright(im, orientation)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode the image: {e}") from None
    return upright, orientation, fmt


def _upright(im, orientation):
    from PIL import ImageOps
    return ImageOps.exif_transpose(im.convert("RGB")) if orientation != 1 else im.convert("RGB")


def _prepare(path, class_index):
    """Everything of one JSON file, checked: ``(image bytes, extension, mask)``."""
    data = _read_json(path)
    raw, ext = _image_bytes(path, data)
    upright, orientation, fmt = _decode(raw, path)
    width, height = upright.size
    declared = (data.get("imageHeight"), data.get("imageWidth"))
    if None not in declared and tuple(declared) != (height, width):
        raise DataError(f"{path}: imageHeight x imageWidth {declared[0]} x {declared[1]} but "
                        f"the image is {height} x {width}")
    mask = shapes_to_mask(data["shapes"], height, width, class_index, path)
    if orientation != 1:  # store the pixels the polygons were drawn on
        buf = io.BytesIO()
        upright.save(buf, format="PNG")
        raw, ext = buf.getvalue(), ".png"
    elif ext is None:
        ext = ".jpg" if fmt == "jpeg" else f".{fmt}"
    return raw, ext, mask


def _split(names, val_ratio, seed):
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = int(round(len(names) * val_ratio))
    n_val = min(n_val, len(names) - 1)
    val = sorted(names[i] for i in order[:n_val])
    return sorted(set(names) - set(val)), val


def convert_labelme(input_dir, output_dir, labels_txt, val_ratio=0.2, seed=0):
    """Convert every ``input_dir/*.json`` (module docstring) into ``output_dir``.

    Every file is read and checked before anything is written; ``output_dir`` must be new or
    empty (nothing is overwritten). ``val_ratio`` of the images (seeded shuffle, at least one
    image left for training) go to ``val.txt``. Returns ``{"train": [...], "val": [...]}``.
    """
    if not 0 <= val_ratio < 1:
        raise DataError(f"val_ratio must be in [0, 1), got {val_ratio}")
    class_index, classes = read_labels_txt(labels_txt)
    paths = sorted(glob.glob(os.path.join(input_dir, "*.json")))
    if not paths:
        raise DataError(f"no labelme .json files in {input_dir}")
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise DataError(f"output folder {output_dir} is not empty; pick a new one")
    prepared = {os.path.splitext(os.path.basename(p))[0]: _prepare(p, class_index)
                for p in paths}
    lines = {}
    for name, (raw, ext, mask) in prepared.items():
        os.makedirs(os.path.join(output_dir, "JPEGImages"), exist_ok=True)
        with open(os.path.join(output_dir, "JPEGImages", name + ext), "wb") as f:
            f.write(raw)
        write_label(os.path.join(output_dir, "SegmentationClass", name + ".png"), mask)
        lines[name] = f"JPEGImages/{name}{ext} SegmentationClass/{name}.png\n"
    train, val = _split(sorted(prepared), val_ratio, seed)
    split_dir = os.path.join(output_dir, "ImageSets", "Segmentation")
    os.makedirs(split_dir, exist_ok=True)
    for split, names in (("train", train), ("val", val), ("trainval", sorted(prepared))):
        with open(os.path.join(split_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(lines[n] for n in names))
    with open(os.path.join(output_dir, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(c + "\n" for c in classes))
    return {"train": train, "val": val}
