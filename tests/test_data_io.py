"""Reading images and labels: palette indices, SBD grayscale, colour masks, odd image formats."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from paddle_fcn.data import DataError, read_image, read_label, write_image, write_label
from paddle_fcn.data.check import check_dataset
from paddle_fcn.data.io import read_label_with_notes
from paddle_fcn.data.palette import (VOC_CLASSES, color_map, colorize, match_voc_colors,
                                     rgb_to_label)


def _known_label():
    label = np.zeros((6, 7), np.uint8)
    label[1:3, 1:4] = 15  # person
    label[4, :] = 255     # void
    label[0, 6] = 20
    label[5, 0] = 1
    return label


def test_color_map_known_entries():
    cmap = color_map(256)
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert cmap[0].tolist() == [0, 0, 0]
    assert cmap[1].tolist() == [128, 0, 0]
    assert cmap[7].tolist() == [128, 128, 128]
    assert cmap[15].tolist() == [192, 128, 128]
    assert cmap[20].tolist() == [0, 64, 128]
    assert cmap[255].tolist() == [224, 224, 192]
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[15] == "person"
    assert colorize(np.array([[1, 255]]))[0].tolist() == [[128, 0, 0], [224, 224, 192]]


def test_read_handmade_palette_png_exactly(tmp_path):
    # Written by Pillow directly (not by write_label) with an unrelated palette: the colours
    # must not matter, only the stored indices.
    label = _known_label()
    im = Image.frombytes("P", (7, 6), label.tobytes())
    im.putpalette([(i * 7) % 256 for i in range(768)])
    path = tmp_path / "hand.png"
    im.save(path)
    out = read_label(str(path))
    assert out.dtype == np.uint8 and out.shape == (6, 7)
    np.testing.assert_array_equal(out, label)


def test_write_label_round_trip_and_palette(tmp_path):
    label = _known_label()
    path = str(tmp_path / "sub" / "w.png")
    write_label(path, label)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert im.getpalette()[15 * 3:16 * 3] == [192, 128, 128]
    np.testing.assert_array_equal(read_label(path), label)
    with pytest.raises(ValueError, match="outside 0..255"):
        write_label(str(tmp_path / "bad.png"), np.array([[0, 300]]))


def test_sbd_grayscale_label(tmp_path):
    label = _known_label()
    path = tmp_path / "aug.png"
    cv2.imwrite(str(path), label)  # 8-bit single-channel PNG, as SegmentationClassAug
    with Image.open(path) as im:
        assert im.mode == "L"
    np.testing.assert_array_equal(read_label(str(path)), label)


def test_rgb_voc_colour_mask_is_rejected_with_advice(tmp_path):
    label = _known_label()
    path = tmp_path / "colour.png"
    Image.fromarray(colorize(label)).save(path)
    with pytest.raises(DataError) as e:
        read_label(str(path))
    msg = str(e.value)
    assert str(path) in msg and "RGB colour mask" in msg and "VOC colour map" in msg
    assert "rgb_to_label" in msg
    np.testing.assert_array_equal(rgb_to_label(colorize(label)), label)


def test_rgb_non_voc_colour_mask_is_rejected(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (10, 200, 30)
    path = tmp_path / "other.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(DataError, match="RGB colour mask") as e:
        read_label(str(path))
    assert str(path) in str(e.value) and "VOC colour map" not in str(e.value)


def test_missing_and_truncated_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match="not found: .*nope.jpg"):
        read_image(str(tmp_path / "nope.jpg"))
    with pytest.raises(DataError, match="not found: .*nope.png"):
        read_label(str(tmp_path / "nope.png"))
    img = np.random.RandomState(0).randint(0, 255, (32, 32, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as e:
        read_image(str(path))
    assert str(path) in str(e.value)
    png = cv2.imencode(".png", _known_label())[1].tobytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(png[: len(png) - 20])
    with pytest.raises(DataError, match="truncated PNG") as e:  # Pillow alone decodes it
        read_label(str(cut))
    assert str(cut) in str(e.value)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="cannot decode label .*junk.png"):
        read_label(str(junk))
    with pytest.raises(DataError, match="cannot decode image .*junk.png"):
        read_image(str(junk))


def test_grayscale_rgba_16bit_images_load_as_rgb_uint8(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(str(tmp_path / "g.png"))
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))

    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(str(tmp_path / "a.png"))
    assert out.shape == (3, 3, 3) and out[0, 0].tolist() == [200, 100, 50]

    deep = np.zeros((2, 3, 3), np.uint16)
    deep[..., 0] = 65535  # B in OpenCV order
    deep[..., 2] = 257 * 100  # R
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = read_image(str(tmp_path / "d.png"))
    assert out.dtype == np.uint8 and out[0, 0].tolist() == [100, 0, 255]  # scaled, not clipped

    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    assert read_image(str(tmp_path / "c.png"))[0, 0].tolist() == [255, 0, 0]


def test_gray_alpha_labels(tmp_path):
    index = np.array([[0, 1, 255], [2, 2, 1]], np.uint8)
    constant = tmp_path / "la.png"
    Image.fromarray(np.stack([index, np.full_like(index, 255)], axis=2), "LA").save(constant)
    label, notes = read_label_with_notes(str(constant))
    np.testing.assert_array_equal(label, index)
    assert notes == ["gray+alpha (LA): constant alpha dropped"]
    varying = tmp_path / "la_varying.png"
    Image.fromarray(np.stack([index, index], axis=2), "LA").save(varying)
    with pytest.raises(DataError, match="gray\\+alpha image whose alpha channel varies") as e:
        read_label(str(varying))
    assert str(varying) in str(e.value)
    with pytest.raises(ValueError, match="HW3"):
        match_voc_colors(np.zeros((2, 3, 2), np.uint8))
    # check_dataset reads the same files: no IndexError, the same verdicts
    image = tmp_path / "img.png"
    write_image(str(image), np.zeros((2, 3, 3), np.uint8))
    ds = SimpleNamespace(files=[(str(image), str(constant)), (str(image), str(varying))],
                         num_classes=3, ignore_index=255, source="pairs")
    report = check_dataset(ds)
    assert list(report.errors) == ["colour_mask"] and report.counts["colour_mask"] == 1
    assert str(varying) in report.errors["colour_mask"][0]


def test_float_labels_must_be_whole_numbers(tmp_path):
    whole = tmp_path / "whole.tif"
    Image.fromarray(np.array([[1.0, 255.0], [0.0, 2.0]], np.float32), "F").save(whole)
    label, notes = read_label_with_notes(str(whole))
    assert label.dtype == np.uint8 and label.tolist() == [[1, 255], [0, 2]]
    assert notes == ["32-bit float with whole values converted to integers"]
    frac = tmp_path / "frac.tif"
    Image.fromarray(np.array([[1.7, 2.0], [np.nan, 0.0]], np.float32), "F").save(frac)
    with pytest.raises(DataError, match="non-integer values") as e:
        read_label(str(frac))  # was silently truncated to 1
    assert str(frac) in str(e.value) and "1.7" in str(e.value)
    image = tmp_path / "img.png"
    write_image(str(image), np.zeros((2, 2, 3), np.uint8))
    ds = SimpleNamespace(files=[(str(image), str(frac))], num_classes=3, ignore_index=255)
    report = check_dataset(ds)
    assert "unreadable" in report.errors and str(frac) in report.errors["unreadable"][0]


def test_unreadable_paths_are_data_errors_naming_the_file(tmp_path):
    folder = tmp_path / "x.png"  # a directory named like an image
    folder.mkdir()
    with pytest.raises(DataError, match="is a directory") as e:
        read_image(str(folder))
    assert str(folder) in str(e.value)
    with pytest.raises(DataError, match="is a directory"):
        read_label(str(folder))
    # /proc/self/mem is a regular file whose read at offset 0 fails with EIO (even as root)
    with pytest.raises(DataError, match="cannot read image file /proc/self/mem: Input/output"):
        read_image("/proc/self/mem")


def _with_orientation(image, path, orientation, **save):
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, **save)


def test_exif_orientation_applied_only_on_request(tmp_path):
    from PIL import ImageOps

    rgb = np.zeros((16, 32, 3), np.uint8)
    rgb[:, :16] = (255, 0, 0)  # left half red, right half blue as stored
    rgb[:, 16:] = (0, 0, 255)
    photo = tmp_path / "photo.jpg"
    _with_orientation(Image.fromarray(rgb), photo, 6, quality=100, subsampling=0)
    np.testing.assert_allclose(read_image(str(photo)), rgb, atol=3)  # training: as stored
    shown = read_image(str(photo), exif=True)
    assert shown.shape == (32, 16, 3)  # 6 = turn 90 degrees clockwise: left becomes top
    np.testing.assert_allclose(shown[:16], np.broadcast_to([255, 0, 0], (16, 16, 3)), atol=3)
    np.testing.assert_allclose(shown[16:], np.broadcast_to([0, 0, 255], (16, 16, 3)), atol=3)
    with Image.open(photo) as im:
        viewer = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_allclose(shown, viewer, atol=3)

    gray = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40  # lossless: every orientation exact
    for orientation in range(1, 9):
        path = tmp_path / f"g{orientation}.png"
        _with_orientation(Image.fromarray(gray, "L"), path, orientation)
        with Image.open(path) as im:
            want = np.asarray(ImageOps.exif_transpose(im))
        np.testing.assert_array_equal(read_image(str(path), exif=True),
                                      np.repeat(want[..., None], 3, axis=2))
    deep = tmp_path / "deep.png"
    _with_orientation(Image.fromarray(np.array([[0, 65535, 257 * 10]], np.uint16)), deep, 8)
    assert read_image(str(deep), exif=True)[:, :, 0].tolist() == [[10], [255], [0]]
