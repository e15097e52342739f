"""Joint image/label transforms (OpenCV).

Every transform is a callable ``(image, label) -> (image, label)``: the image is RGB uint8
``HW3`` and the label uint8 ``HW`` class indices (255 = ignore) until the final ``Normalize``,
which returns float32 ``CHW`` and int64 ``HW``. Geometric transforms move image and label
together; labels are only ever resampled with nearest neighbour, so no in-between class
values appear. Label resizing uses ``INTER_NEAREST_EXACT`` (half-pixel centres like the
image's ``INTER_LINEAR``): plain ``INTER_NEAREST`` samples ``floor(dst * scale)`` and shifts
the label by up to half a source pixel against the image.

Randomness comes from numpy's global RNG (``np.random``). Paddle's DataLoader reseeds it in
each worker from a base seed drawn from the main process's numpy RNG, so seeding numpy in
the main process makes the augmentation reproducible.
"""
import inspect

import cv2
import numpy as np

from paddle_fcn.errors import Problem
from paddle_fcn.normalization import IMAGENET, as_normalization, mean_pixel, normalize_image

__all__ = ["Compose", "RandomScale", "RandomCrop", "RandomHorizontalFlip",
           "PhotometricDistortion", "Resize", "Normalize", "TRANSFORMS", "build_transforms",
           "spec_problem"]

def _size_wh(size, name):
    """int or [w, h] -> (w, h) of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size)):
        raise ValueError(f"{name}: size must be a positive int or [width, height], got {size!r}")
    return int(size[0]), int(size[1])


def _resize_pair(image, label, w, h):
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return image, label


class Compose:
    """Apply transforms in order; each is ``(image, label) -> (image, label)``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, image, label):
        for t in self.transforms:
            image, label = t(image, label)
        return image, label

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class RandomScale:
    """Scale image and label by one factor drawn uniformly from ``[min_scale, max_scale]``.

    New size is ``round(w * s), round(h * s)`` (at least 1 px); image bilinear, label nearest.
    """

    def __init__(self, min_scale=0.5, max_scale=2.0):
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale: need 0 < min_scale <= max_scale, got "
                             f"{min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def __call__(self, image, label):
        s = np.random.uniform(self.min_scale, self.max_scale)
        h, w = label.shape[:2]
        return _resize_pair(image, label, max(1, int(round(w * s))), max(1, int(round(h * s))))

    def __repr__(self):
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """Crop a random ``crop_size`` (int or ``[w, h]``) window.

    A side smaller than the crop is first padded at the bottom/right: the image with
    ``im_pad_value`` (a number or one value per channel in 0..255, e.g. an RGB triple;
    ``build_transforms`` uses the normalisation mean so padding becomes 0 after
    ``Normalize``) and the label with ``ignore_index`` so the padding never counts in the loss.
    """

    def __init__(self, crop_size, ignore_index=255, im_pad_value=0):
        self.crop_w, self.crop_h = _size_wh(crop_size, "RandomCrop crop_size")
        self.ignore_index = int(ignore_index)
        pad = np.asarray(im_pad_value, dtype=np.float64).reshape(-1)
        self.im_pad_value = tuple(float(v) for v in np.broadcast_to(pad, (max(len(pad), 3),)))

    def __call__(self, image, label):
        h, w = label.shape[:2]
        pad_h, pad_w = max(self.crop_h - h, 0), max(self.crop_w - w, 0)
        if pad_h or pad_w:
            # numpy, not cv2.copyMakeBorder: its fill value has at most 4 channels (RGB-HHA: 6)
            value = np.round(np.broadcast_to(self.im_pad_value[:image.shape[2]],
                                             (image.shape[2],)))
            padded = np.empty((h + pad_h, w + pad_w, image.shape[2]), image.dtype)
            padded[:] = value.astype(image.dtype)
            padded[:h, :w] = image
            image = padded
            label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                       value=self.ignore_index)
            h, w = label.shape[:2]
        y = np.random.randint(0, h - self.crop_h + 1)
        x = np.random.randint(0, w - self.crop_w + 1)
        window = (slice(y, y + self.crop_h), slice(x, x + self.crop_w))
        return np.ascontiguousarray(image[window]), np.ascontiguousarray(label[window])

    def __repr__(self):
        return f"RandomCrop([{self.crop_w}, {self.crop_h}], ignore_index={self.ignore_index})"


class RandomHorizontalFlip:
    """Mirror image and label left-right with probability ``prob``."""

    def __init__(self, prob=0.5):
        if not 0 <= prob <= 1:
            raise ValueError(f"RandomHorizontalFlip: prob must be in [0, 1], got {prob}")
        self.prob = float(prob)

    def __call__(self, image, label):
        if np.random.rand() < self.prob:
            image = np.ascontiguousarray(image[:, ::-1])
            label = np.ascontiguousarray(label[:, ::-1])
        return image, label

    def __repr__(self):
        return f"RandomHorizontalFlip({self.prob})"


class PhotometricDistortion:
    """Random colour changes of the image only; the label passes through untouched.

    Each step runs with probability ``prob``: brightness shift in ``[-brightness, brightness]``
    (0..255 units), contrast factor in ``[1 - contrast, 1 + contrast]``, saturation factor in
    ``[1 - saturation, 1 + saturation]``, hue shift in ``[-hue, hue]`` degrees.
    """

    def __init__(self, brightness=32, contrast=0.5, saturation=0.5, hue=18, prob=0.5):
        for key, v in (("brightness", brightness), ("contrast", contrast),
                       ("saturation", saturation), ("hue", hue)):
            if v < 0:
                raise ValueError(f"PhotometricDistortion: {key} must be >= 0, got {v}")
        if contrast > 1 or saturation > 1:
            raise ValueError("PhotometricDistortion: contrast and saturation must be <= 1")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue, self.prob = float(saturation), float(hue), float(prob)

    def __call__(self, image, label):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"PhotometricDistortion changes RGB colours; this data set gives "
                             f"{image.shape[2] if image.ndim == 3 else 1}-channel images "
                             f"(e.g. RGB-HHA): remove it from the transforms")
        img = image.astype(np.float32)
        if np.random.rand() < self.prob:
            img += np.random.uniform(-self.brightness, self.brightness)
        if np.random.rand() < self.prob:
            img = (img - img.mean()) * np.random.uniform(1 - self.contrast,
                                                         1 + self.contrast) + img.mean()
        img = np.clip(img, 0, 255) / 255.0
        do_sat, do_hue = np.random.rand() < self.prob, np.random.rand() < self.prob
        if do_sat or do_hue:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # float: H in [0, 360), S, V in [0, 1]
            if do_sat:
                hsv[..., 1] = np.clip(hsv[..., 1] * np.random.uniform(
                    1 - self.saturation, 1 + self.saturation), 0, 1)
            if do_hue:
                hsv[..., 0] = (hsv[..., 0] + np.random.uniform(-self.hue, self.hue)) % 360
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return np.clip(np.round(img * 255), 0, 255).astype(np.uint8), label

    def __repr__(self):
        return (f"PhotometricDistortion(brightness={self.brightness}, contrast={self.contrast},"
                f" saturation={self.saturation}, hue={self.hue}, prob={self.prob})")


class Resize:
    """Resize to ``target_size`` (int or ``[w, h]``); image bilinear, label nearest."""

    def __init__(self, target_size):
        self.w, self.h = _size_wh(target_size, "Resize target_size")

    def __call__(self, image, label):
        return _resize_pair(image, label, self.w, self.h)

    def __repr__(self):
        return f"Resize([{self.w}, {self.h}])"


class Normalize:
    """uint8 RGB ``HW3`` -> float32 ``CHW`` network input; label -> int64 ``HW``.

    ``(pixel[channel_order] / scale - mean) / std`` (``paddle_fcn.normalization``): by default
    the ImageNet convention, RGB ``(image / 255 - mean) / std``; the Caffe reference nets use
    BGR, scale 1 and their mean, std 1. Appended from the model's ``normalization``. A
    k-channel image (a late-fusion RGB-HHA model's six) needs k means and stds; the channel
    order applies to each group of three.
    """

    def __init__(self, mean=IMAGENET["mean"], std=IMAGENET["std"], scale=IMAGENET["scale"],
                 channel_order=IMAGENET["channel_order"]):
        self.norm = as_normalization({"mean": np.asarray(mean, np.float64).reshape(-1),
                                      "std": np.asarray(std, np.float64).reshape(-1),
                                      "scale": scale, "channel_order": channel_order},
                                     "Normalize")
        self.mean = np.asarray(self.norm["mean"], dtype=np.float32)
        self.std = np.asarray(self.norm["std"], dtype=np.float32)

    def __call__(self, image, label):
        if image.ndim != 3 or image.shape[2] != len(self.mean):
            raise ValueError(f"Normalize expects an HW{len(self.mean)} image, got shape "
                             f"{image.shape}; Normalize must be the last transform, and the "
                             f"model's normalisation must have a value per image channel")
        return normalize_image(image, self.norm), label.astype(np.int64)

    def __repr__(self):
        return (f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()}, "
                f"scale={self.norm['scale']}, channel_order={self.norm['channel_order']!r})")


TRANSFORMS = {
    "RandomScale": RandomScale,
    "RandomCrop": RandomCrop,
    "RandomHorizontalFlip": RandomHorizontalFlip,
    "PhotometricDistortion": PhotometricDistortion,
    "Resize": Resize,
    "Normalize": Normalize,
}


def spec_problem(spec):
    """What is wrong with one transform spec (``{"type": name, argument: value...}``) as a
    ``Problem`` (key ``""``, ``"type"`` or the argument's name), or None when
    ``TRANSFORMS[name](**arguments)`` can be called."""
    if not isinstance(spec, dict) or "type" not in spec:
        return Problem("", f"each transform must be a mapping with a 'type' key, got {spec!r}")
    name = spec["type"]
    if name not in TRANSFORMS:
        return Problem("type", f"unknown transform type {name!r}; valid types: "
                               f"{', '.join(TRANSFORMS)}", name, tuple(TRANSFORMS))
    params = inspect.signature(TRANSFORMS[name]).parameters
    for arg in spec:
        if arg != "type" and arg not in params:
            return Problem(arg, f"unknown argument for {name}; valid: "
                                f"{', '.join(params) or '(none)'}", arg, tuple(params))
    missing = [p.name for p in params.values() if p.default is p.empty and p.name not in spec]
    if missing:
        return Problem("", f"{name} needs {', '.join(missing)}")
    return None


def _build_one(spec, index):
    problem = spec_problem(spec)
    if problem is not None:
        raise ValueError(f"transforms[{index}]{'.' + problem.key if problem.key else ''}: "
                         f"{problem.message}")
    kwargs = dict(spec)
    return TRANSFORMS[kwargs.pop("type")](**kwargs)


def build_transforms(specs, normalization=None, ignore_index=255):
    """Build a ``Compose`` from YAML-style specs, ending in ``Normalize``.

    ``specs``: list of dicts such as ``{"type": "RandomCrop", "crop_size": [64, 64]}`` with
    types from ``TRANSFORMS`` (None or [] gives only Normalize). ``normalization``: the model's
    ``{"mean": (r, g, b), "std": (r, g, b)}``, used for the appended ``Normalize`` and as the
    default image padding of ``RandomCrop`` (None -> ImageNet values). A ``Normalize`` given in
    the specs is kept and must come last. ``ignore_index`` is RandomCrop's default label pad.
    """
    norm = as_normalization(normalization or IMAGENET)
    specs = list(specs or [])
    transforms = []
    for i, spec in enumerate(specs):
        if isinstance(spec, dict) and spec.get("type") == "RandomCrop":
            spec = {"ignore_index": ignore_index,
                    "im_pad_value": list(mean_pixel(norm)), **spec}
        transforms.append(_build_one(spec, i))
    for i, t in enumerate(transforms[:-1]):
        if isinstance(t, Normalize):
            raise ValueError(f"transforms[{i}] Normalize must be the last transform")
    if not transforms or not isinstance(transforms[-1], Normalize):
        transforms.append(Normalize(**norm))
    return Compose(transforms)
