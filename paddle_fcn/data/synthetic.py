"""A synthetic data set in the PASCAL VOC 2012 layout: shapes on textured backgrounds.

Classes: background + disc, square, triangle, ring, cross. The classes differ by shape only:
every object gets a random colour (chosen to contrast with the background and the other
objects), a size of 35-55% of the shorter image side (at least 28 px) and a tilt within
+-15 degrees; backgrounds are random blotches, gradients or stripes of lower contrast.
Objects may overlap (later ones on top, each keeps at least 70% of its area visible) and, as
in VOC, a 4-pixel void (255) band runs along every object outline. Image sizes are random in
``[min_size, max_size]`` and never multiples of 32 (when the range allows), so size handling
is exercised. With the defaults a narrow FCN-8s ResNet18 (width 16) reached 0.88 val mIoU in
3000 iterations (5 min on 2 CPU cores) without pretrained weights.

Preset ``voc`` makes photo-size data in the full VOC layout instead, for testing the way
users run: images of PASCAL VOC's usual sizes (500 x 375 landscape and 375 x 500 portrait,
alternating), the 21 VOC class names and palette (object class ``c`` drawn as shape
``SHAPES[c % 5]``), the 4-pixel void band, and the SBD ``trainaug`` layout as well (8-bit
grayscale labels in ``SegmentationClassAug/``, ``trainaug.txt`` = the train ids). The size
range does not apply to it.

Written files (``PascalVOC(root, mode)`` reads them)::

    root/JPEGImages/syn_00000.jpg   root/SegmentationClass/syn_00000.png (palette PNG)
    root/ImageSets/Segmentation/{train,val,trainval}.txt
    root/SegmentationClassAug/syn_00000.png, root/ImageSets/Segmentation/trainaug.txt  (voc)
    root/labels.txt                 class names, one per line
    root/synthetic.json             generation parameters; written last (completeness marker)

Everything is a function of the arguments: the same arguments give byte-identical files.
"""
import contextlib
import json
import os
import shutil
import tempfile

import cv2
import numpy as np

from paddle_fcn.data.io import DataError, write_image, write_label
from paddle_fcn.data.palette import VOC_CLASSES

__all__ = ["SHAPES", "CLASS_NAMES", "PRESETS", "generate_synthetic_voc", "ensure_synthetic_voc",
           "synthetic_is_complete", "render_sample", "render_voc_sample"]

SHAPES = ("disc", "square", "triangle", "ring", "cross")
CLASS_NAMES = ("background",) + SHAPES
VOC_SIZES = ((375, 500), (500, 375))  # (h, w): PASCAL VOC's landscape and portrait photos
PARAMS_FILE = "synthetic.json"
_VERSION = 3  # bump when the drawing changes so cached data sets are regenerated
_MIN_OBJECT = 28  # px; smaller rings and triangle tips would vanish in the void band
_MAX_ROTATION = np.deg2rad(15)  # squares, triangles, crosses stay near upright: learnable


def _background(rng, h, w):
    """Textured background (float32 HW3) and its two base colours."""
    c1 = rng.uniform(0, 255, size=3)
    c2 = np.clip(c1 + rng.uniform(-80, 80, size=3), 0, 255)  # texture weaker than object edges
    kind = rng.integers(3)
    if kind == 0:  # smooth blotches: coarse random grid, bilinear upsampled
        grid = rng.uniform(0, 1, size=(h // 16 + 2, w // 16 + 2)).astype(np.float32)
        t = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        proj = xx * np.cos(angle) + yy * np.sin(angle)
        if kind == 1:  # linear gradient
            t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
        else:  # stripes
            t = 0.5 + 0.5 * np.sin(2 * np.pi * proj / rng.uniform(6, 16))
    image = c1 + t[..., None] * (c2 - c1)
    image += rng.normal(0, 6, size=image.shape)
    return image.astype(np.float32), (c1, c2)


def _object_colour(rng, bg_colours, obj_colours):
    """A random colour at least 90 (RGB distance) from the background colours and 60 from
    the other objects' colours (if 100 draws find one; else the best draw)."""
    best, best_d = None, -1.0
    for _ in range(100):
        c = rng.uniform(0, 255, size=3)
        d = min([np.linalg.norm(c - b) for b in bg_colours] +
                [np.linalg.norm(c - o) * 1.5 for o in obj_colours])
        if d >= 90:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _polygon(points, cx, cy, angle):
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = np.asarray(points, dtype=np.float64) @ rot.T + (cx, cy)
    return np.round(pts).astype(np.int32)


def _shape_mask(kind, h, w, cx, cy, size, angle):
    """Boolean HW mask of one object; ``size`` is its outer diameter in pixels."""
    mask = np.zeros((h, w), dtype=np.uint8)
    r = size / 2.0
    centre = (int(round(cx)), int(round(cy)))
    if kind in ("disc", "ring"):
        cv2.circle(mask, centre, int(round(r)), 1, thickness=-1, lineType=cv2.LINE_8)
        if kind == "ring":  # hole of 0.45 the diameter: background shows through
            cv2.circle(mask, centre, int(round(r * 0.45)), 0, thickness=-1, lineType=cv2.LINE_8)
    elif kind == "square":
        s = r * 0.85
        pts = [(-s, -s), (s, -s), (s, s), (-s, s)]
        cv2.fillPoly(mask, [_polygon(pts, cx, cy, angle)], 1, lineType=cv2.LINE_8)
    elif kind == "triangle":
        big = r * 2 / np.sqrt(3)  # circumradius of an equilateral triangle of side ``size``
        pts = [(big * np.cos(a), big * np.sin(a) - big / 4)  # bounding box centred
               for a in np.pi / 2 + np.arange(3) * 2 * np.pi / 3]
        cv2.fillPoly(mask, [_polygon(pts, cx, cy, angle)], 1, lineType=cv2.LINE_8)
    else:  # cross: two bars of thickness 0.4 * size
        t = r * 0.4
        for pts in ([(-r, -t), (r, -t), (r, t), (-r, t)], [(-t, -r), (t, -r), (t, r), (-t, r)]):
            cv2.fillPoly(mask, [_polygon(pts, cx, cy, angle)], 1, lineType=cv2.LINE_8)
    return mask.astype(bool)


def _place(rng, kind, h, w, owner, areas):
    """Try random placements; return a mask leaving every earlier object >= 70% visible."""
    for _ in range(20):
        size = max(rng.uniform(0.35, 0.55) * min(h, w), _MIN_OBJECT)
        cx = rng.uniform(size / 2 + 1, w - size / 2 - 1)
        cy = rng.uniform(size / 2 + 1, h - size / 2 - 1)
        mask = _shape_mask(kind, h, w, cx, cy, size, rng.uniform(-1, 1) * _MAX_ROTATION)
        if not mask.any():
            continue
        remaining = np.bincount(owner[~mask].ravel(), minlength=len(areas) + 1)[1:]
        if all(remaining[i] >= 0.7 * a for i, a in enumerate(areas)):
            return mask
    return None


def render_sample(seed, index, min_size=80, max_size=120):
    """Render sample ``index`` of the set with ``seed``: ``(image uint8 HW3, label uint8 HW)``.

    The first object's class cycles with ``index`` (so every class occurs once there are five
    samples); up to two more objects of random classes follow.
    """
    rng = np.random.default_rng([seed, index])
    sides = [s for s in range(min_size, max_size + 1) if s % 32] or [min_size]
    h, w = (int(v) for v in rng.choice(sides, size=2))
    return _draw(rng, h, w, lambda: [1 + index % len(SHAPES)] + [
        1 + int(k) for k in rng.integers(0, len(SHAPES), size=rng.integers(0, 3))])


def render_voc_sample(seed, index):
    """Sample ``index`` of preset ``voc``: ``(image uint8 HW3, label uint8 HW)`` at a VOC photo
    size; VOC classes 1..20 (the first cycles with ``index``) drawn as ``SHAPES[c % 5]``."""
    rng = np.random.default_rng([seed, index, 21])
    h, w = VOC_SIZES[index % len(VOC_SIZES)]
    return _draw(rng, h, w, lambda: [1 + index % 20] + [
        1 + int(k) for k in rng.integers(0, 20, size=rng.integers(0, 3))],
        kind_of=lambda c: SHAPES[c % len(SHAPES)])


def _draw(rng, h, w, draw_classes, kind_of=lambda c: CLASS_NAMES[c]):
    """Objects of the classes ``draw_classes()`` returns (drawn from ``rng`` after the
    background, the order the generated files depend on) in shapes ``kind_of(c)``, on a
    textured background, with the void band."""
    image, bg_colours = _background(rng, h, w)
    classes = draw_classes()
    label = np.zeros((h, w), dtype=np.uint8)
    owner = np.zeros((h, w), dtype=np.int64)  # 1-based object id per pixel, 0 = background
    areas, colours = [], []
    for cls in classes:
        mask = _place(rng, kind_of(cls), h, w, owner, areas)
        if mask is None:
            continue
        colour = _object_colour(rng, bg_colours, colours)
        colours.append(colour)
        image[mask] = colour + rng.normal(0, 4, size=(int(mask.sum()), 3))
        label[mask] = cls
        owner[mask] = len(areas) + 1
        areas.append(int(mask.sum()))
    # VOC-style void band, 4 px wide (VOC's is about 5): pixels within 2 px of a class change.
    kernel = np.ones((5, 5), np.uint8)
    label[cv2.dilate(label, kernel) != cv2.erode(label, kernel)] = 255
    return np.clip(np.round(image), 0, 255).astype(np.uint8), label


# preset -> (class names, renderer(seed, index, min_size, max_size), writes trainaug)
PRESETS = {
    "shapes": (CLASS_NAMES, render_sample, False),
    "voc": (tuple(VOC_CLASSES), lambda seed, i, *_: render_voc_sample(seed, i), True),
}


def _params(seed, num_train, num_val, min_size, max_size, preset):
    params = {"generator": "paddle_fcn.data.synthetic", "version": _VERSION, "seed": int(seed),
              "num_train": int(num_train), "num_val": int(num_val), "min_size": int(min_size),
              "max_size": int(max_size), "class_names": list(PRESETS[preset][0])}
    if preset != "shapes":  # the default's parameters stay as before: its cached sets stay valid
        params["preset"] = preset
    return params


def _check_args(num_train, num_val, min_size, max_size, preset="shapes"):
    if preset not in PRESETS:
        raise ValueError(f"synthetic VOC: unknown preset {preset!r}; valid: "
                         f"{', '.join(PRESETS)}")
    if num_train < 1 or num_val < 1:
        raise ValueError(f"synthetic VOC: num_train and num_val must be >= 1, got "
                         f"{num_train}, {num_val}")
    if not 32 <= min_size <= max_size:
        raise ValueError(f"synthetic VOC: need 32 <= min_size <= max_size, got "
                         f"{min_size}, {max_size}")


def _write_all(folder, params):
    class_names, render, trainaug = PRESETS[params.get("preset", "shapes")]
    ids = [f"syn_{i:05d}" for i in range(params["num_train"] + params["num_val"])]
    if trainaug:
        os.makedirs(os.path.join(folder, "SegmentationClassAug"))
    for i, name in enumerate(ids):
        image, label = render(params["seed"], i, params["min_size"], params["max_size"])
        write_image(os.path.join(folder, "JPEGImages", name + ".jpg"), image, quality=95)
        write_label(os.path.join(folder, "SegmentationClass", name + ".png"), label)
        if trainaug:  # SBD's labels are 8-bit grayscale PNGs, not palette ones
            cv2.imwrite(os.path.join(folder, "SegmentationClassAug", name + ".png"), label)
    splits = os.path.join(folder, "ImageSets", "Segmentation")
    os.makedirs(splits, exist_ok=True)
    train, val = ids[:params["num_train"]], ids[params["num_train"]:]
    lists = [("train", train), ("val", val), ("trainval", ids)] + [("trainaug", train)] * trainaug
    for split, names in lists:
        with open(os.path.join(splits, split + ".txt"), "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in names))
    with open(os.path.join(folder, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in class_names))
    with open(os.path.join(folder, PARAMS_FILE), "w", encoding="utf-8") as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write("\n")


def _read_params(root):
    try:
        with open(os.path.join(root, PARAMS_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def synthetic_is_complete(root, params=None):
    """True if ``root`` holds a complete synthetic set (with exactly ``params`` if given)."""
    found = _read_params(root)
    if found is None or (params is not None and found != params):
        return False
    split_dir = os.path.join(root, "ImageSets", "Segmentation")
    for split, count in (("train", found.get("num_train")), ("val", found.get("num_val"))):
        try:
            with open(os.path.join(split_dir, split + ".txt"), encoding="utf-8") as f:
                ids = f.read().split()
        except OSError:
            return False
        if len(ids) != count:
            return False
        for name in ids:
            if not (os.path.isfile(os.path.join(root, "JPEGImages", name + ".jpg")) and
                    os.path.isfile(os.path.join(root, "SegmentationClass", name + ".png"))):
                return False
    return os.path.isfile(os.path.join(root, "labels.txt"))


def _swap_in(tmp, root):
    """Move the finished ``tmp`` folder to ``root``, replacing an old synthetic set there."""
    old = None
    if os.path.exists(root):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.old-",
                               dir=os.path.dirname(root))
        os.rename(root, os.path.join(old, "set"))
    os.rename(tmp, root)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def generate_synthetic_voc(root, seed=0, num_train=300, num_val=60, min_size=80, max_size=120,
                           preset="shapes"):
    """Write the synthetic set to ``root`` (atomically: temp folder, then rename); -> root.

    ``preset``: ``shapes`` (small images, 6 classes) or ``voc`` (VOC photo sizes, 21 classes,
    trainaug layout too). An existing synthetic set at ``root`` is replaced; any other
    non-empty folder there raises DataError instead of being overwritten.
    """
    _check_args(num_train, num_val, min_size, max_size, preset)
    root = os.path.abspath(os.fspath(root))
    if os.path.isdir(root) and os.listdir(root) and _read_params(root) is None:
        raise DataError(f"{root} exists and is not a synthetic data set (no {PARAMS_FILE}); "
                        f"refusing to overwrite it: pick another dataset_root or empty it")
    params = _params(seed, num_train, num_val, min_size, max_size, preset)
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
    try:
        _write_all(tmp, params)
        os.chmod(tmp, 0o755)
        try:
            _swap_in(tmp, root)
        except OSError:
            if not synthetic_is_complete(root, params):  # else a concurrent run finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_synthetic_voc(root, seed=0, num_train=300, num_val=60, min_size=80, max_size=120,
                         preset="shapes"):
    """Return ``root`` holding the synthetic set with these parameters, generating if needed.

    A complete set with the same parameters (``synthetic.json``) is reused as it is; a
    missing, incomplete or differently parameterised one is (re)generated atomically. Processes
    that ask at the same time (data-loader workers, ranks, two runs) take turns through a lock
    file beside ``root`` (``.<name>.lock``), so one generates and the others then find the set
    complete.
    """
    _check_args(num_train, num_val, min_size, max_size, preset)
    root = os.path.abspath(os.fspath(root))
    params = _params(seed, num_train, num_val, min_size, max_size, preset)
    if synthetic_is_complete(root, params):
        return root
    parent, name = os.path.split(root)
    with _locked(os.path.join(parent, f".{name}.lock")):  # kept: removing a lock file is racy
        if synthetic_is_complete(root, params):  # another process generated it meanwhile
            return root
        return generate_synthetic_voc(root, seed, num_train, num_val, min_size, max_size,
                                      preset)


@contextlib.contextmanager
def _locked(path):
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; no lock where unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: generation is still atomic, only not serialised
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
