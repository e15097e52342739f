"""Input normalisation: the one policy that train, eval, export and predict share.

A normalisation is a plain dict ``{"mean": (a, b, c), "std": (a, b, c), "scale": s,
"channel_order": "RGB" | "BGR"}``. An RGB uint8 image becomes the network input

    x[c] = (pixel[channel_order[c]] / scale - mean[c]) / std[c]        (float32, CHW)

with ``mean`` and ``std`` listed in the network's channel order. A k-channel image (k a
multiple of 3: the late-fusion RGB-HHA nets' six, RGB then HHA) has k means and stds, and the
channel order applies to each group of three. Two origins exist:

* ``imagenet``: torchvision / Paddle model-zoo weights; RGB, ``scale`` 255 (pixels in [0, 1]),
  mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
* ``caffe``: the FCN reference nets (fcn.berkeleyvision.org ``voc_layers.py``) and
  wkentaro/pytorch-fcn; BGR, ``scale`` 1 (pixels 0-255), the mean (104.00699, 116.66877,
  122.67892) in B, G, R order subtracted, no division (std 1). Caffe's ImageNet VGG16 is
  fine-tuned with this mean by the reference recipe (its own training mean was
  (103.939, 116.779, 123.68)).

A model's normalisation comes from where its weights came from (``model.normalization``, set
when weights load); checkpoints and ``deploy.yml`` store it. Pure numpy: no Paddle here.
"""
import numpy as np

__all__ = ["IMAGENET", "CAFFE", "NORMALIZATIONS", "CHANNEL_ORDERS", "as_normalization",
           "same_normalization", "describe", "normalize_image", "denormalize", "mean_pixel"]

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 255.0,
            "channel_order": "RGB"}
CAFFE = {"mean": (104.00699, 116.66877, 122.67892), "std": (1.0, 1.0, 1.0), "scale": 1.0,
         "channel_order": "BGR"}
NORMALIZATIONS = {"imagenet": IMAGENET, "caffe": CAFFE}
CHANNEL_ORDERS = ("RGB", "BGR")
_KEYS = ("mean", "std", "scale", "channel_order")


def as_normalization(value, what="normalization"):
    """A canonical normalisation dict (new dict, tuples of floats) from a name in
    ``NORMALIZATIONS`` or a mapping with ``mean`` and ``std`` (``scale`` defaults to 255 and
    ``channel_order`` to RGB, the ImageNet convention). Raises ``ValueError`` naming ``what``
    and the bad value."""
    if isinstance(value, str):
        if value not in NORMALIZATIONS:
            raise ValueError(f"{what}: unknown normalization {value!r}; valid names: "
                             f"{', '.join(NORMALIZATIONS)} (or a mapping with mean, std, "
                             f"scale, channel_order)")
        value = NORMALIZATIONS[value]
    if not isinstance(value, dict) or "mean" not in value or "std" not in value:
        raise ValueError(f"{what}: expected a name ({', '.join(NORMALIZATIONS)}) or a mapping "
                         f"with mean and std, got {value!r}")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {unknown}; valid keys: {', '.join(_KEYS)}")
    try:
        mean = tuple(float(v) for v in value["mean"])
        std = tuple(float(v) for v in value["std"])
        scale = float(value.get("scale", 255.0))
    except (TypeError, ValueError):
        raise ValueError(f"{what}: mean, std and scale must be numbers, got {value!r}") from None
    order = value.get("channel_order", "RGB")
    if len(mean) % 3 or len(mean) != len(std) or not mean or min(std) <= 0 or scale <= 0:
        raise ValueError(f"{what}: needs 3 (or 3k, one per image channel) means, as many "
                         f"stds > 0, and scale > 0; got {value!r}")
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"{what}: channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                         f"got {order!r}")
    return {"mean": mean, "std": std, "scale": scale, "channel_order": order}


def same_normalization(a, b):
    """Whether two normalisations give the same input (values compared to 1e-6 relative)."""
    a, b = as_normalization(a), as_normalization(b)
    return a["channel_order"] == b["channel_order"] and len(a["mean"]) == len(b["mean"]) and \
        all(np.allclose(a[k], b[k], rtol=1e-6, atol=0) for k in ("mean", "std", "scale"))


def describe(norm):
    """``'caffe'`` / ``'imagenet'`` for the named ones (``'imagenet, per 3 of 6 channels'``
    for a stacked RGB-HHA one), else the dict, for messages."""
    norm = as_normalization(norm)
    k = len(norm["mean"])
    for name, known in NORMALIZATIONS.items():
        if all(same_normalization(dict(norm, mean=norm["mean"][i:i + 3],
                                       std=norm["std"][i:i + 3]), known) for i in range(0, k, 3)):
            return name if k == 3 else f"{name}, per 3 of {k} channels"
    return repr(norm)


def _order(norm):
    """Image channel of each network channel: BGR reverses every group of three."""
    k = len(norm["mean"])
    if norm["channel_order"] != "BGR":
        return np.arange(k)
    return np.array([3 * (c // 3) + 2 - c % 3 for c in range(k)])


def normalize_image(image, norm):
    """RGB ``H x W x k`` (uint8 or float 0-255; k = 3 or the normalisation's k) -> float32
    ``k x H x W`` network input."""
    mean = np.asarray(norm["mean"], dtype=np.float32)
    std = np.asarray(norm["std"], dtype=np.float32)
    pixels = image[..., _order(norm)].astype(np.float32)
    x = (pixels / float(norm["scale"]) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def denormalize(image_chw, norm):
    """Network input ``k x H x W`` -> uint8 RGB ``H x W x 3`` of its first three channels (the
    colour image of an RGB-HHA input): the inverse of ``normalize_image``, clipped to 0..255."""
    mean = np.asarray(norm["mean"], np.float32)[:3, None, None]
    std = np.asarray(norm["std"], np.float32)[:3, None, None]
    pixels = (image_chw[:3] * std + mean) * float(norm["scale"])
    pixels = pixels.transpose(1, 2, 0)[..., _order(norm)[:3]]
    return np.clip(pixels, 0, 255).astype(np.uint8)


def mean_pixel(norm):
    """The image pixel (0-255 floats, one per channel, RGB first) that normalises to 0: the
    padding colour of crops."""
    mean = np.asarray(norm["mean"], np.float64) * float(norm["scale"])
    return tuple(float(v) for v in mean[_order(norm)])
