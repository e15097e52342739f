"""Reading images and label maps, writing VOC palette label PNGs.

Images are decoded with OpenCV and returned as RGB uint8 ``HW3``. Labels are decoded with
Pillow, because OpenCV expands a palette PNG to its colours and the class indices are lost.
Every failure is a ``DataError`` (a ``ValueError``) that names the file and says what to do.
EXIF orientation is ignored by default on purpose: VOC labels are stored unrotated, and
rotating only the image would misalign the pair. Predict reads with ``exif=True`` so that a
photo is segmented the way viewers show it.
"""
import io
import os

import cv2
import numpy as np
from PIL import Image

from paddle_fcn.errors import DataError
from paddle_fcn.data.palette import color_map, match_voc_colors

__all__ = ["DataError", "read_image", "read_image_with_notes", "read_label", "load_mat",
           "load_mat_label",
           "read_label_with_notes", "write_label", "write_image", "load_label_array",
           "colour_mask_message"]

_VOC_PALETTE = color_map(256).flatten().tolist()
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # IEND chunk type + its CRC




# EXIF orientation (tag 0x0112) -> how to turn the stored pixels into the displayed ones;
# the same result as Pillow's ImageOps.exif_transpose, on an HWC array.
_EXIF_ORIENTATION = 0x0112
_ORIENT = {
    2: lambda a: a[:, ::-1],                      # mirrored left-right
    3: lambda a: a[::-1, ::-1],                   # rotated 180
    4: lambda a: a[::-1],                         # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),            # transposed
    6: lambda a: np.rot90(a, -1),                 # stored 90 counter-clockwise: turn clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # transversed
    8: lambda a: np.rot90(a, 1),                  # stored 90 clockwise: turn counter-clockwise
}


def _read_bytes(path, what):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{what} path {path} is a directory, not a file; check dataset_root "
                        f"and the split/list file entry")
    if not os.path.exists(path):
        raise DataError(
            f"{what} file not found: {path}; check dataset_root and the split/list file entry"
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # permission denied, I/O error on a failing disk or network share
        raise DataError(f"cannot read {what} file {path}: {e.strerror or e}; check its "
                        f"permissions and the disk, or remove it from the split/list file") \
            from None
    if not data:
        raise DataError(f"{what} file is empty (0 bytes): {path}; re-copy or re-download it")
    if data.startswith(_PNG_SIGNATURE) and _PNG_END not in data[-64:]:
        # Pillow decodes a PNG cut inside its last chunk without complaint; the IEND chunk
        # that closes every complete PNG is missing then.
        raise DataError(f"{what} file {path} is a truncated PNG (no IEND chunk at the end); "
                        f"re-copy or re-download it")
    return data


def _exif_orientation(data):
    """The EXIF orientation 1..8 stored in the encoded image ``data`` (1 when there is none or
    Pillow cannot parse the header)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - OpenCV decoded it; an unreadable EXIF block is no error
        return 1
    return value if value in _ORIENT else 1


def read_image_with_notes(path, exif=False):
    """Read an image as RGB uint8 ``HW3`` and list the conversions applied.

    Grayscale is repeated to 3 channels, the alpha channel of RGBA is dropped and 16-bit
    images are scaled to 8 bits (``round(v / 257)``, 65535 -> 255, never clipped). With
    ``exif`` the EXIF orientation tag is applied (like ``PIL.ImageOps.exif_transpose``: the
    image as viewers show it); leave it off for training images, whose labels are stored
    unrotated. The notes are short strings such as ``"16-bit scaled to 8-bit"`` (used by
    ``check_dataset``).
    """
    data = _read_bytes(path, "image")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(
            f"cannot decode image {path} ({len(data)} bytes): the file is truncated, corrupt or "
            f"not an image; re-copy or re-download it, or remove it from the split/list file"
        )
    notes = []
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit")
    elif img.dtype != np.uint8:
        raise DataError(
            f"image {path} has pixel type {img.dtype}; only 8- and 16-bit images are supported, "
            f"convert it to an 8-bit JPEG/PNG"
        )
    if img.ndim == 2 or img.shape[2] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
        notes.append("grayscale converted to RGB")
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        notes.append("RGBA converted to RGB (alpha dropped)")
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise DataError(f"image {path} has {img.shape[2]} channels; expected 1, 3 or 4")
    orientation = _exif_orientation(data) if exif else 1
    if orientation != 1:
        img = _ORIENT[orientation](img)
        notes.append(f"EXIF orientation {orientation} applied")
    return np.ascontiguousarray(img), notes


def read_image(path, exif=False):
    """Read an image file as RGB uint8 ``HW3`` (see ``read_image_with_notes``)."""
    return read_image_with_notes(path, exif)[0]


def load_label_array(path):
    """Decode a label file: ``(array, pillow_mode)``, with only lossless normalisations.

    Palette and grayscale PNGs give ``HW`` arrays, colour masks ``HW3``/``HW4``. Two
    normalisations that cannot change a class index: a gray+alpha image (``LA``/``PA``) whose
    alpha is constant gives its gray/index channel ``HW`` (with varying alpha it stays
    ``HW2`` and ``read_label`` rejects it); a 32-bit float image (``F``) whose values are all
    whole numbers gives int64. Raises DataError naming the file for a missing or undecodable
    file and for float values with a fraction (1.7 is no class index; truncating it would
    silently change the class). ``read_label`` and ``check_dataset`` build on this.
    """
    data = _read_bytes(path, "label")
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            arr = np.array(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(
            f"cannot decode label {path}: {e}; the file is truncated or corrupt, re-copy it"
        ) from None
    if mode == "1":
        arr = arr.astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 2 and _constant(arr[..., 1]):
        arr = np.ascontiguousarray(arr[..., 0])  # the alpha of a gray+alpha label is unused
    if np.issubdtype(arr.dtype, np.floating):
        arr = _integral_floats(path, mode, arr)
    return arr, mode


def _constant(channel):
    return channel.size == 0 or bool((channel == channel.flat[0]).all())


def _integral_floats(path, mode, arr):
    """``arr`` (float) as int64 if every value is a finite whole number, else DataError."""
    finite = np.isfinite(arr)
    fractional = ~finite | (np.floor(np.where(finite, arr, 0)) != arr)
    if fractional.any():
        shown = np.unique(arr[fractional])[:5].tolist()
        raise DataError(
            f"label {path} ({mode}, {arr.dtype}) holds non-integer values such as {shown}; "
            f"class indices must be whole numbers 0..255: save the label as an 8-bit "
            f"palette/grayscale PNG of class indices"
        )
    return arr.astype(np.int64)


def colour_mask_message(path, arr):
    """Why a multi-channel label ``arr`` (``HWk``) read from ``path`` is unusable; the fix."""
    if arr.ndim != 3 or arr.shape[2] < 3:
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        what = ("a gray+alpha image whose alpha channel varies" if channels == 2
                else f"a {channels}-channel image")
        return (f"label {path} is {what}, not a map of class indices; save the class indices "
                f"as a single-channel 8-bit or palette PNG without transparency")
    rgb = arr[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return (f"label {path} is a 3-channel image whose channels are equal (a grayscale index "
                f"map saved as RGB); save it as a single-channel 8-bit or palette PNG")
    if match_voc_colors(rgb, num_classes=256) == 1.0:
        hint = ("its colours match the VOC colour map: convert it to class indices with "
                "paddle_fcn.data.palette.rgb_to_label and save with paddle_fcn.data.write_label")
    else:
        hint = ("convert it to class indices (one uint8 value per pixel: 0..num_classes-1, "
                "255 = ignore) and save it as a palette or grayscale PNG")
    return f"label {path} is an RGB colour mask, not class indices; {hint}"


def read_label_with_notes(path):
    """Read a label map as uint8 ``HW`` class indices and list the conversions applied.

    Accepts palette PNGs (VOC ``SegmentationClass``; the index is read, never the colour),
    8-bit grayscale PNGs (SBD ``SegmentationClassAug``), 1-bit masks (0/1), 16-bit grayscale
    and 32-bit integer or float images with whole values <= 255, and gray+alpha (LA/PA) images
    with a constant alpha (the gray channel is used). A colour mask, a gray+alpha image with
    varying alpha or a float with a fraction raises DataError naming the file. Notes are
    short strings such as ``"gray+alpha (LA): constant alpha dropped"``.
    """
    arr, mode = load_label_array(path)
    if arr.ndim == 3:
        raise DataError(colour_mask_message(path, arr))
    notes = []
    if mode in ("LA", "PA"):
        notes.append(f"gray+alpha ({mode}): constant alpha dropped")
    if mode == "F":
        notes.append("32-bit float with whole values converted to integers")
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(
                f"label {path} ({mode}) holds values {arr.min()}..{arr.max()}; class indices "
                f"must fit 0..255 (255 = ignore): save it as an 8-bit palette/grayscale PNG"
            )
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr), notes


def read_label(path):
    """Read a label map as uint8 ``HW`` class indices, 255 = ignore (``read_label_with_notes``)."""
    return read_label_with_notes(path)[0]


def write_label(path, label):
    """Write a class-index map ``HW`` (values 0..255) as a VOC palette PNG.

    The indices are stored as-is (``read_label`` returns them exactly); the VOC colour map is
    attached as the palette so image viewers show the usual colours.
    """
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f"write_label {path}: need an integer HW array, got "
                         f"{label.dtype} {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"write_label {path}: values {label.min()}..{label.max()} outside 0..255")
    label = np.ascontiguousarray(label, dtype=np.uint8)
    im = Image.frombytes("P", (label.shape[1], label.shape[0]), label.tobytes())
    im.putpalette(_VOC_PALETTE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    im.save(path, format="PNG")


def write_image(path, image, quality=95):
    """Write an RGB uint8 ``HW3`` image; JPEG for ``.jpg``/``.jpeg``, otherwise by extension."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode image as {ext} for {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def load_mat(path, key):
    """The array ``key`` of MATLAB file ``path`` (needs scipy; DataError naming the file)."""
    try:
        import scipy.io
    except ImportError:
        raise DataError(f"reading {path} needs scipy, an optional dependency: "
                        f"pip install scipy (or convert the .mat labels to PNG elsewhere)") \
            from None
    try:
        data = scipy.io.loadmat(path)
    except Exception as e:  # noqa: BLE001 - scipy raises many kinds for a bad file
        raise DataError(f"cannot read MATLAB file {path}: {e}") from None
    if key not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DataError(f"MATLAB file {path} has no variable {key!r} (it has {found})")
    return np.asarray(data[key])


def load_mat_label(path, key, low, high):
    """Label map ``key`` of MATLAB file ``path`` as int64 ``HW``; DataError naming the file
    unless it is 2-D with whole values in ``low..high`` (the data set's stored range)."""
    arr = load_mat(path, key)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number) or arr.size and (
            arr.min() < low or arr.max() > high or np.any(arr != np.round(arr))):
        shown = f"values {arr.min()}..{arr.max()}" if arr.size and np.issubdtype(
            arr.dtype, np.number) else f"dtype {arr.dtype}"
        raise DataError(f"{path}: {key} must be a 2-D map of {low}..{high}, got shape "
                        f"{arr.shape}, {shown}")
    return arr.astype(np.int64)

