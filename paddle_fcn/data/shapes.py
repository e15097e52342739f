"""Drawing the synthetic samples: textured backgrounds, shape objects, a VOC-style void band.

Classes of the default set: background + disc, square, triangle, ring, cross. The classes
differ by shape only: every object gets a random colour (chosen to contrast with the
background and the other objects), a size of 35-55% of the shorter image side (at least 28 px)
and a tilt within +-15 degrees; backgrounds are random blotches, gradients or stripes of
lower contrast. Objects may overlap (later ones on top, each keeps at least 70% of its area
visible) and, as in VOC, a 4-pixel void (255) band runs along every object outline.
``render_voc_sample`` draws the same way at PASCAL VOC's photo sizes with VOC's 20 object
classes (class ``c`` as shape ``SHAPES[c % 5]``). ``synthetic.py`` writes the data sets.
"""
import cv2
import numpy as np

__all__ = ["SHAPES", "CLASS_NAMES", "VOC_SIZES", "render_sample", "render_voc_sample"]

SHAPES = ("disc", "square", "triangle", "ring", "cross")
CLASS_NAMES = ("background",) + SHAPES
VOC_SIZES = ((375, 500), (500, 375))  # (h, w): PASCAL VOC's landscape and portrait photos
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
