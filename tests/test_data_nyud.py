"""NYUDv2: the reference layout (.mat or PNG labels, HHA as a second image folder) -> exact
labels and the 6-channel RGB-HHA input; its config trains (the late-fusion net itself:
test_models_fusion.py)."""
import math
import os

import cv2
import numpy as np
import pytest
from fixtures import CONFIGS, quick_train_opts, write_id_splits

from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, NYUDv2, build_dataset, check_dataset, write_image
from paddle_fcn.engine.trainer import train
from paddle_fcn.models import build_model

STORED = np.array([[0, 1, 40, 7], [21, 0, 1, 2]])           # 0 void, 1..40
LOADED = np.array([[255, 0, 39, 6], [20, 255, 0, 1]])


def make_nyud(root, fmt="png", ids=("5001", "5002", "5003"), hha="data/hha"):
    for i, name in enumerate(ids):
        write_image(os.path.join(root, "data", "images", f"img_{name}.png"),
                    np.full((2, 4, 3), 10 + i, np.uint8))
        write_image(os.path.join(root, hha, f"img_{name}.png"), np.full((2, 4, 3), 200, np.uint8))
        path = os.path.join(root, "segmentation", f"img_{name}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if fmt == "mat":
            import scipy.io
            scipy.io.savemat(path + ".mat", {"segmentation": STORED.astype(np.uint8)})
        else:
            cv2.imwrite(path + ".png", STORED.astype(np.uint8))
    write_id_splits(root, ids)
    return root


@pytest.mark.parametrize("fmt", ["png", "mat"])
def test_nyud_labels_and_modalities(tmp_path, fmt):
    if fmt == "mat":
        pytest.importorskip("scipy.io", reason=".mat labels need scipy (optional)")
    root = make_nyud(str(tmp_path), fmt, hha="my_hha")
    rgb = NYUDv2(root, "trainval")
    assert rgb.num_classes == 40 and rgb.class_names[0] == "wall" and len(rgb) == 2
    assert rgb.class_names[39] == "otherprop"
    image, label = rgb[1]
    np.testing.assert_array_equal(label, LOADED)
    assert image.shape == (3, 2, 4)
    both = build_dataset({"type": "NYUDv2", "dataset_root": root, "mode": "test",
                          "modality": "rgb_hha", "hha_dir": "my_hha"},
                         {"mean": (0.5,) * 6, "std": (0.5,) * 6})
    image, label = both[0]
    assert image.shape == (6, 2, 4)
    np.testing.assert_allclose(image[:3], (12 / 255 - 0.5) / 0.5, rtol=1e-5)  # RGB first
    np.testing.assert_allclose(image[3:], (200 / 255 - 0.5) / 0.5, rtol=1e-5)  # then HHA
    np.testing.assert_array_equal(label, LOADED)
    hha = NYUDv2(root, "test", modality="hha", hha_dir="my_hha")
    assert hha.files[0][0] == os.path.join(root, "my_hha", "img_5003.png")
    for ds in (rgb, both, hha):
        assert check_dataset(ds).ok


def test_nyud_missing_hha_names_the_file(tmp_path):
    root = make_nyud(str(tmp_path))
    os.remove(os.path.join(root, "data", "hha", "img_5002.png"))
    ds = NYUDv2(root, "trainval", modality="rgb_hha")
    with pytest.raises(DataError, match=r"img_5002\.png"):
        ds.raw(1)


def test_nyud_config_trains_two_iterations(tmp_path):
    root = make_nyud(str(tmp_path / "data"))
    opts = quick_train_opts(root, tmp_path / "run")
    cfg = load_config(os.path.join(CONFIGS, "nyud_fcn32s_vgg16_rgbhha.yml"), opts)
    summary = train(cfg, progress=False)
    assert len(summary.losses) == 2 and all(math.isfinite(v) for _, v in summary.losses)
    assert len(summary.last_metrics["class_IoU"]) == 40
    assert os.path.isfile(tmp_path / "run" / "best_model" / "model.pdparams")
    # the saved weights carry the 6-channel normalisation; predict refuses the model up front
    from paddle_fcn.inference.predict import PredictError
    from paddle_fcn.inference.segmenter import load_segmenter
    from paddle_fcn.normalization import describe
    best = str(tmp_path / "run" / "best_model")
    for eager in (True, False):
        with pytest.raises(PredictError, match="takes 6-channel input .*RGB images only"):
            load_segmenter(best, cfg, device="cpu", eager=eager)
    assert describe(build_model("fcn8s_resnet18_rgbhha", 5, width=8).normalization) == \
        "imagenet, per 3 of 6 channels"


def test_six_channel_crop_pads_with_each_channels_mean():
    from paddle_fcn.data.transforms import build_transforms

    mean = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    t = build_transforms([{"type": "RandomCrop", "crop_size": [6, 4]}],
                         {"mean": mean, "std": (1.0,) * 6})
    image, label = t(np.full((2, 3, 6), 100, np.uint8), np.zeros((2, 3), np.uint8))
    assert image.shape == (6, 4, 6) and (label == 255).sum() == 4 * 6 - 2 * 3
    padded = image[:, label == 255]
    np.testing.assert_allclose(padded, 0, atol=1 / 255)  # the mean: 0 after Normalize
    kept = image[:, label == 0]
    np.testing.assert_allclose(kept, np.broadcast_to(100 / 255 - np.array(mean)[:, None],
                                                     kept.shape), rtol=1e-5)
