"""Transforms keep image and label aligned, labels keep valid values, builder errors are clear."""
import numpy as np
import pytest

from paddle_fcn.data.transforms import (
    TRANSFORMS, Compose, Normalize, PhotometricDistortion, RandomCrop, RandomHorizontalFlip,
    RandomScale, Resize, build_transforms,
)

BLOCK = 4
LABEL_VALUES = set(range(7)) | {255}


def coordinate_pair(h=37, w=45):
    """Image whose R, G channels encode the pixel's x, y (value 4*coord + 8; 0 = padding) and
    a label that is a blockwise function of (x, y), with some void pixels."""
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([4 * xx + 8, 4 * yy + 8, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    label = ((xx // BLOCK + 2 * (yy // BLOCK)) % 7).astype(np.uint8)
    label[(xx // BLOCK) % 5 == 3] = 255
    return image, label


def expected_label(x, y):
    xi, yi = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    out = ((xi // BLOCK + 2 * (yi // BLOCK)) % 7).astype(np.int64)
    out[(xi // BLOCK) % 5 == 3] = 255
    return out


def assert_aligned(image, label):
    """Recompute the label from the coordinates stored in the (uint8 HWC) image."""
    assert image.shape[:2] == label.shape
    assert set(np.unique(label).tolist()) <= LABEL_VALUES  # no interpolated class values
    pad = (image[..., 0] == 0) & (image[..., 1] == 0)
    assert np.all(label[pad] == 255), "padding must be labelled ignore"
    x = (image[..., 0].astype(np.float64) - 8) / 4
    y = (image[..., 1].astype(np.float64) - 8) / 4

    # Only where the nearest source pixel is unambiguous w.r.t. block edges (at k*4 - 0.5).
    def far(c):
        return np.abs((c + 0.5) / BLOCK - np.round((c + 0.5) / BLOCK)) * BLOCK > 0.3

    sure = far(x) & far(y) & ~pad
    assert sure.sum() > 0.25 * (~pad).sum()  # enough pixels are checked
    np.testing.assert_array_equal(label[sure], expected_label(x, y)[sure])


@pytest.mark.parametrize("seed", range(6))
def test_random_chain_keeps_alignment(seed):
    np.random.seed(seed)
    chain = Compose([RandomScale(0.5, 2.0), RandomCrop([40, 30], im_pad_value=0),
                     RandomHorizontalFlip(0.5)])
    image, label = coordinate_pair()
    for _ in range(5):
        out_img, out_lab = chain(image, label)
        assert out_img.shape == (30, 40, 3) and out_img.dtype == np.uint8
        assert out_lab.dtype == np.uint8
        assert_aligned(out_img, out_lab)


@pytest.mark.parametrize("t", [
    RandomScale(0.3, 0.6), RandomScale(1.5, 2.5), Resize([23, 51]), Resize(64),
    RandomHorizontalFlip(1.0), RandomCrop(20, im_pad_value=0), RandomCrop([60, 50], im_pad_value=0),
])
def test_each_transform_keeps_alignment(t):
    image, label = coordinate_pair()
    assert_aligned(*t(image, label))


def test_misaligned_pair_is_detected():
    """The alignment check can fail: flipping only the image breaks it."""
    image, label = coordinate_pair()
    with pytest.raises(AssertionError):
        assert_aligned(np.ascontiguousarray(image[:, ::-1]), label)


def test_label_resize_is_centre_aligned_nearest():
    # 1x9 -> 1x3: the centres of the output pixels sit on source pixels 1, 4, 7.
    label = np.arange(9, dtype=np.uint8).reshape(1, 9)
    image = np.zeros((1, 9, 3), np.uint8)
    _, out = Resize([3, 1])(image, label)
    assert out.tolist() == [[1, 4, 7]]
    _, up = Resize([18, 1])(image, label)
    assert up.tolist() == [[v for v in range(9) for _ in range(2)]]


def test_random_crop_pads_label_with_ignore_and_image_with_value():
    image = np.full((5, 6, 3), 9, np.uint8)
    label = np.ones((5, 6), np.uint8)
    out_img, out_lab = RandomCrop([8, 7], im_pad_value=(1, 2, 3))(image, label)
    assert out_lab.shape == (7, 8)
    assert out_lab[:5, :6].tolist() == np.ones((5, 6)).tolist()
    assert np.all(out_lab[5:] == 255) and np.all(out_lab[:, 6:] == 255)
    assert out_img[6, 7].tolist() == [1, 2, 3] and out_img[0, 0].tolist() == [9, 9, 9]


def test_horizontal_flip_probability_and_values():
    image, label = coordinate_pair(4, 5)
    same_img, same_lab = RandomHorizontalFlip(0.0)(image, label)
    np.testing.assert_array_equal(same_lab, label)
    flip_img, flip_lab = RandomHorizontalFlip(1.0)(image, label)
    np.testing.assert_array_equal(flip_lab, label[:, ::-1])
    np.testing.assert_array_equal(flip_img, image[:, ::-1])


def test_photometric_changes_image_only():
    np.random.seed(3)
    rng = np.random.RandomState(1)
    image = rng.randint(0, 256, (16, 16, 3)).astype(np.uint8)
    label = rng.randint(0, 5, (16, 16)).astype(np.uint8)
    out_img, out_lab = PhotometricDistortion(prob=1.0)(image, label)
    assert out_lab is label
    assert out_img.dtype == np.uint8 and out_img.shape == image.shape
    assert np.abs(out_img.astype(int) - image).mean() > 3
    same, _ = PhotometricDistortion(prob=0.0)(image, label)
    assert np.abs(same.astype(int) - image).max() <= 1  # HSV round trip only


def test_normalize_values_and_layout():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 51
    label = np.array([[0, 1, 255], [2, 3, 4]], np.uint8)
    out, lab = Normalize(mean=(0.5, 0.5, 0.2), std=(0.5, 0.25, 0.1))(image, label)
    assert out.dtype == np.float32 and out.shape == (3, 2, 3)
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -2.0, 0.0], atol=1e-6)
    assert lab.dtype == np.int64 and lab.tolist() == label.tolist()


def test_caffe_normalization_of_a_2x2_rgb_image_is_bgr_minus_mean():
    from paddle_fcn.normalization import CAFFE, IMAGENET, denormalize, mean_pixel, normalize_image

    rgb = np.array([[[10, 20, 30], [40, 50, 60]], [[255, 128, 0], [1, 2, 3]]], np.uint8)
    # by hand: channel 0 = B - 104.00699, 1 = G - 116.66877, 2 = R - 122.67892; no scaling
    expected = np.array([
        [[30 - 104.00699, 60 - 104.00699], [0 - 104.00699, 3 - 104.00699]],
        [[20 - 116.66877, 50 - 116.66877], [128 - 116.66877, 2 - 116.66877]],
        [[10 - 122.67892, 40 - 122.67892], [255 - 122.67892, 1 - 122.67892]]])
    out, _ = build_transforms([], CAFFE)(rgb, np.zeros((2, 2), np.uint8))
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(normalize_image(rgb, CAFFE), out)  # predict calls this
    np.testing.assert_array_equal(denormalize(out, CAFFE), rgb)
    np.testing.assert_allclose(mean_pixel(CAFFE), (122.67892, 116.66877, 104.00699))  # R, G, B
    # ImageNet: exactly the (RGB / 255 - mean) / std of earlier versions
    imagenet, _ = Normalize()(rgb, np.zeros((2, 2), np.uint8))
    mean, std = np.float32(IMAGENET["mean"]), np.float32(IMAGENET["std"])
    old = ((rgb.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)
    np.testing.assert_array_equal(imagenet, old)


def test_build_transforms_appends_normalize_and_pads_with_mean():
    norm = {"mean": (0.4, 0.5, 0.6), "std": (0.2, 0.2, 0.2)}
    t = build_transforms([{"type": "RandomCrop", "crop_size": [8, 8]}], norm)
    assert [type(x).__name__ for x in t.transforms] == ["RandomCrop", "Normalize"]
    image, label = np.full((4, 4, 3), 200, np.uint8), np.zeros((4, 4), np.uint8)
    out, lab = t(image, label)
    assert out.shape == (3, 8, 8) and lab.shape == (8, 8)
    np.testing.assert_allclose(out[:, lab == 255], 0.0, atol=0.02)  # mean padding -> 0
    assert (lab == 255).sum() == 64 - 16
    only = build_transforms(None, None)
    assert len(only.transforms) == 1 and isinstance(only.transforms[0], Normalize)
    given = build_transforms([{"type": "Normalize", "mean": [0, 0, 0], "std": [1, 1, 1]}], norm)
    assert len(given.transforms) == 1


def test_build_transforms_errors_name_type_and_key():
    with pytest.raises(ValueError, match="unknown transform type 'RandomRotate'.*RandomScale"):
        build_transforms([{"type": "RandomRotate"}])
    with pytest.raises(ValueError,
                       match=r"transforms\[0\].size: unknown argument for RandomCrop.*crop_size"):
        build_transforms([{"type": "RandomCrop", "size": 4}])
    with pytest.raises(ValueError, match="RandomCrop.*crop_size"):
        build_transforms([{"type": "RandomCrop"}])
    with pytest.raises(ValueError, match="Normalize must be the last"):
        build_transforms([{"type": "Normalize"}, {"type": "RandomHorizontalFlip"}])
    with pytest.raises(ValueError, match="RandomScale"):
        build_transforms([{"type": "RandomScale", "min_scale": 2, "max_scale": 1}])
    assert set(TRANSFORMS) == {"RandomScale", "RandomCrop", "RandomHorizontalFlip",
                               "PhotometricDistortion", "Resize", "Normalize"}
