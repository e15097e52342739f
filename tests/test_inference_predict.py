"""tools/predict.py and tools/export.py as a user runs them (inference/cli.py, predict.py):
masks read back to the eager model's argmax, slide and legend, bad inputs, EXIF, unusable
output folders. Tiny models (ResNet18 FCN-8s at width 8, ``fixtures.scored_model``), images
<= 64 px.
"""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml
from fixtures import REPO, eager_output, scored_model
from fixtures import SCORED_CLASSES as NUM_CLASSES

from paddle_fcn.data.io import read_image, read_label, write_image
from paddle_fcn.data.palette import colorize
from paddle_fcn.inference.tta import predict_probs
from paddle_fcn.cli.deploy import export_main, predict_main
from paddle_fcn.inference.export import export_model, read_deploy_info
from paddle_fcn.inference.predict import PredictError, collect_images

SIZES = [(37, 53), (23, 41), (64, 48)]  # H x W, odd sizes exercise pad-to-32 and crop


@pytest.fixture
def run(tmp_path):
    """A tiny trained-model stand-in: config, checkpoint and a folder of odd-sized images."""
    model = scored_model()
    ckpt = tmp_path / "best_model"
    ckpt.mkdir()
    paddle.save(model.state_dict(), str(ckpt / "model.pdparams"))
    config = {"model": {"type": "fcn8s_resnet18", "num_classes": NUM_CLASSES, "width": 8},
              "train_dataset": {"type": "SyntheticVOC", "dataset_root": str(tmp_path / "syn"),
                                "num_classes": NUM_CLASSES}}
    (tmp_path / "tiny.yml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(1)
    images = []
    for i, (h, w) in enumerate(SIZES):
        path = tmp_path / "images" / ("sub" if i == 2 else "") / f"im{i}.png"
        write_image(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images.append(path)
    return {"model": model, "ckpt": str(ckpt), "config": str(tmp_path / "tiny.yml"),
            "images": images, "dir": tmp_path}


def _normalized(image_path):
    """ImageNet statistics of the tiny models, written out: (RGB / 255 - mean) / std."""
    image = read_image(str(image_path)).astype(np.float32) / 255
    x = (image - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def _expected_label(model, image_path):
    return eager_output(model, _normalized(image_path))[0].argmax(0)


def _mask_path(out, rel):
    return os.path.join(out, "pseudo_color_prediction", os.path.splitext(rel)[0] + ".png")


@pytest.mark.parametrize("eager", [False, True], ids=["predictor", "eager"])
def test_predict_folder_masks_read_back_to_eager_argmax(run, eager):
    out = str(run["dir"] / "out")
    argv = ["--config", run["config"], "--model_path", run["ckpt"], "--image_path",
            str(run["dir"] / "images"), "--save_dir", out, "--no_progress"]
    assert predict_main(argv + (["--eager"] if eager else [])) == 0
    for path in run["images"]:
        rel = os.path.relpath(path, run["dir"] / "images")
        mask = read_label(_mask_path(out, rel))
        want = _expected_label(run["model"], path)
        assert mask.shape == want.shape
        assert len(np.unique(want)) >= 3  # the comparison is not trivial
        np.testing.assert_array_equal(mask, want)
        over = read_image(os.path.join(out, "added_prediction", rel))  # PNG in, PNG out
        blend = 0.5 * read_image(str(path)).astype(float) + 0.5 * colorize(want)
        np.testing.assert_array_equal(over, np.round(blend))


def test_predict_tool_in_a_subprocess(run):
    tool = os.path.join(REPO, "tools", "predict.py")
    out = str(run["dir"] / "out")
    done = subprocess.run([sys.executable, tool, "--config", run["config"], "--model_path",
                           run["ckpt"], "--image_path", str(run["images"][1]), "--save_dir", out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(read_label(_mask_path(out, "im1.png")),
                                  _expected_label(run["model"], run["images"][1]))


@pytest.mark.parametrize("output_op", ["none", "softmax"])
def test_predict_exported_model_with_legend_and_slide(run, output_op):
    exported = str(run["dir"] / "exported")
    assert export_main(["--config", run["config"], "--model_path", run["ckpt"],
                        "--save_dir", exported, "--output_op", output_op]) == 0
    info = read_deploy_info(exported)
    assert info["class_names"][1] == "disc" and info["num_classes"] == NUM_CLASSES
    assert info["output_op"] == output_op
    out = str(run["dir"] / "out")
    image = run["images"][0]
    argv = ["--model_path", exported, "--image_path", str(image), "--save_dir", out,
            "--with_legend", "--is_slide", "--crop_size", "32", "24", "--stride", "16", "12"]
    assert predict_main(argv) == 0
    x = _normalized(image)
    test_cfg = type("T", (), dict(is_slide=True, crop_size=[32, 24], stride=[16, 12],
                                  flip_horizontal=False, scales=[1.0]))
    with paddle.no_grad():
        want = predict_probs(run["model"], paddle.to_tensor(x), test_cfg).numpy()[0].argmax(0)
    np.testing.assert_array_equal(read_label(_mask_path(out, "im0.png")), want)
    assert not np.array_equal(want, _expected_label(run["model"], image))  # slide differs
    legend = read_image(os.path.join(out, "legend", "im0.png"))
    assert legend.shape[0] >= 37 and legend.shape[1] > 2 * 53


def test_predict_reports_bad_inputs(run, capsys):
    base = ["--config", run["config"], "--model_path", run["ckpt"], "--save_dir",
            str(run["dir"] / "out"), "--no_progress"]
    missing = str(run["dir"] / "nope.jpg")
    assert predict_main(base + ["--image_path", missing]) == 2
    assert missing in capsys.readouterr().err
    broken = run["dir"] / "images" / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert predict_main(base + ["--image_path", str(run["dir"] / "images")]) == 1
    assert str(broken) in capsys.readouterr().err
    assert os.path.isfile(_mask_path(str(run["dir"] / "out"), "im0.png"))  # others written
    no_config = ["--model_path", run["ckpt"], "--image_path", str(run["images"][0])]
    assert predict_main(no_config) == 2
    assert "--config" in capsys.readouterr().err


def test_argmax_export_refuses_score_averaging(run, capsys):
    exported = str(run["dir"] / "exported")
    assert export_main(["--config", run["config"], "--model_path", run["ckpt"],
                        "--save_dir", exported, "--output_op", "argmax"]) == 0
    argv = ["--model_path", exported, "--image_path", str(run["images"][0]), "--save_dir",
            str(run["dir"] / "out"), "--flip_horizontal"]
    assert predict_main(argv) == 2
    assert "output_op argmax" in capsys.readouterr().err
    assert predict_main(argv[:-1]) == 0  # whole-image argmax is fine
    np.testing.assert_array_equal(read_label(_mask_path(str(run["dir"] / "out"), "im0.png")),
                                  _expected_label(run["model"], run["images"][0]))


def test_collect_images_from_list_file(run):
    listing = run["dir"] / "list.txt"
    listing.write_text("images/im1.png labels/im1.png\n\nimages/sub/im2.png\n")
    assert [rel for _, rel in collect_images(str(listing))] == [
        os.path.join("images", "im1.png"), os.path.join("images", "sub", "im2.png")]
    listing.write_text("images/im1.png\nimages/im1.png\n")
    with pytest.raises(PredictError, match="would both be written"):
        collect_images(str(listing))


def test_unusable_save_dir_is_a_clean_error(run, capsys):
    blocker = run["dir"] / "a_file"
    blocker.write_text("not a directory")
    out = str(blocker / "out")
    assert export_main(["--config", run["config"], "--model_path", run["ckpt"],
                        "--save_dir", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to {out}: ") and "Traceback" not in err
    argv = ["--config", run["config"], "--model_path", run["ckpt"], "--image_path",
            str(run["images"][0]), "--no_progress", "--eager"]
    assert predict_main(argv + ["--save_dir", str(blocker)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write to {blocker}: ")


def test_export_without_deploy_yml_is_called_interrupted(run, capsys):
    exported = run["dir"] / "exported"
    export_model(run["model"], str(exported), "none")
    os.remove(exported / "deploy.yml")  # as left by an export killed before its last step
    argv = ["--model_path", str(exported), "--image_path", str(run["images"][0]),
            "--save_dir", str(run["dir"] / "out")]
    for extra in ([], ["--config", run["config"]]):
        assert predict_main(argv + extra) == 2
        err = capsys.readouterr().err
        assert "export looks interrupted or failed its check" in err
        assert f"export the model again into {exported}" in err
        assert "training checkpoint" not in err


def test_predict_skips_unreadable_images_and_applies_exif(run, capsys):
    from PIL import Image

    photo = run["dir"] / "photos" / "turned.jpg"
    photo.parent.mkdir()
    stored = np.asarray(Image.open(run["images"][2]))[:, :, :3]  # 64 x 48
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 48 x 64
    im.save(photo, exif=exif, quality=95)
    (run["dir"] / "photos" / "x.png").mkdir()  # a directory named like an image
    listing = run["dir"] / "photos" / "list.txt"
    listing.write_text("x.png\nturned.jpg\n")
    out = str(run["dir"] / "out")
    assert predict_main(["--config", run["config"], "--model_path", run["ckpt"], "--image_path",
                         str(listing), "--save_dir", out, "--no_progress", "--eager"]) == 1
    assert "x.png is a directory" in capsys.readouterr().err
    mask = read_label(_mask_path(out, "turned.jpg"))
    shown = read_image(str(photo), exif=True)
    assert mask.shape == shown.shape[:2] == (48, 64)
    x = (shown.astype(np.float32) / 255 - np.float32([0.485, 0.456, 0.406])) \
        / np.float32([0.229, 0.224, 0.225])
    want = eager_output(run["model"], x.transpose(2, 0, 1)[None].astype(np.float32))
    want = want[0].argmax(0)
    np.testing.assert_array_equal(mask, want)
    assert read_image(os.path.join(out, "added_prediction", "turned.jpg")).shape == (48, 64, 3)
