"""A synthetic data set in the PASCAL VOC 2012 layout: shapes on textured backgrounds.

Classes: background + disc, square, triangle, ring, cross, drawn by ``shapes.py`` (random
colours and textures, overlaps, a VOC-style 4-pixel void band). Image sizes are random in
``[min_size, max_size]`` and never multiples of 32 (when the range allows), so size handling
is exercised. The defaults (300 training images) suit tests and small experiments; a narrow
FCN-8s ResNet18 learns 300 by heart, so the quickstart (configs/quickstart.yml) draws 3000.

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
import inspect
import json
import os
import shutil
import tempfile

import cv2

from paddle_fcn.errors import DataError
from paddle_fcn.data.io import write_image, write_label
from paddle_fcn.data.palette import VOC_CLASSES
from paddle_fcn.data.voc import IGNORE_INDEX, PascalVOC
from paddle_fcn.data.shapes import CLASS_NAMES, SHAPES, render_sample, render_voc_sample

PARAMS_FILE = "synthetic.json"
_VERSION = 3  # bump when the drawing (shapes.py) changes so cached data sets are regenerated

__all__ = ["SyntheticVOC", "SHAPES", "CLASS_NAMES", "PRESETS", "generate_synthetic_voc",
           "ensure_synthetic_voc", "synthetic_is_complete", "render_sample", "render_voc_sample"]

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


class SyntheticVOC(PascalVOC):
    """``PascalVOC`` on the synthetic set under ``dataset_root``, generated on first use.

    ``synthetic``: the generation parameters (``ensure_synthetic_voc``'s keywords: ``preset``,
    ``seed``, ``num_train``, ``num_val``, ``min_size``, ``max_size``) as a dict or a
    dataclass; an unknown key is a DataError listing the valid ones.
    """

    MODES = {mode: "SegmentationClass" for mode in ("train", "val", "trainval")}
    MODES["trainaug"] = "SegmentationClassAug"  # preset voc only
    CLASSES = CLASS_NAMES

    def __init__(self, dataset_root, mode="train", transforms=None, num_classes=None,
                 class_names=None, ignore_index=IGNORE_INDEX, synthetic=None):
        super().__init__(_generated(dataset_root, synthetic), mode, transforms, num_classes,
                         class_names, ignore_index)


def _generated(root, synthetic):
    if synthetic is not None and not isinstance(synthetic, dict):
        synthetic = {k: getattr(synthetic, k) for k in synthetic.__dataclass_fields__}
    options = {k: v for k, v in (synthetic or {}).items() if v is not None}
    valid = [p for p in inspect.signature(ensure_synthetic_voc).parameters if p != "root"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(f"dataset 'synthetic' options: unknown key(s) {unknown}; valid keys: "
                        f"{valid}")
    return ensure_synthetic_voc(root, **options)
