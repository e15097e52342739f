"""Export, the Paddle Inference predictor, tools/predict.py and tools/export.py, FLOP counting.

Tiny models (ResNet18 FCN-8s and U-Net at width 8), images <= 64 px. The head's parameters
(zero-initialised score layers, bilinear x2 upsamplers) get random values so that predictions
hold several classes (an all-zero model would predict class 0 everywhere and make every
comparison trivially true; random scores alone, upsampled bilinearly, give only 2 classes).
"""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
import yaml

from paddle_fcn.data.io import read_image, read_label, write_image
from paddle_fcn.data.palette import colorize
from paddle_fcn.engine.infer import predict_probs
from paddle_fcn.inference.cli import export_main, predict_main
from paddle_fcn.inference.export import ONNX_HINT, ExportError, export_model, read_deploy_info
from paddle_fcn.inference.predict import PredictError, collect_images
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.models import build_model
from paddle_fcn.upsample import BilinearUpsample

NUM_CLASSES = 6
SIZES = [(37, 53), (23, 41), (64, 48)]  # H x W, odd sizes exercise pad-to-32 and crop


def _tiny(name="fcn8s_resnet18"):
    model = build_model(name, NUM_CLASSES, width=8)
    rng = np.random.default_rng(0)
    for key, param in model.named_parameters():
        if "score" in key:  # score_*, and the learnable upscore2 / upscore_pool4
            param.set_value(0.1 * rng.standard_normal(param.shape).astype("float32"))
    model.eval()
    return model


def _eager(model, x):
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


@pytest.fixture
def run(tmp_path):
    """A tiny trained-model stand-in: config, checkpoint and a folder of odd-sized images."""
    model = _tiny()
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
    return _eager(model, _normalized(image_path))[0].argmax(0)


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
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tools", "predict.py")
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


@pytest.mark.parametrize("output_op", ["none", "softmax"])
def test_exported_scores_average_like_the_eager_model(tmp_path, output_op):
    """Slide + flip over the predictor's outputs gives the eager model's probabilities (a
    softmax export is fed back as log-probabilities, whose softmax is the same)."""
    from paddle_fcn.inference.segmenter import _ScoresOf

    model = _tiny()
    export_model(model, str(tmp_path), output_op)
    predictor = Predictor(str(tmp_path), device="cpu")
    test_cfg = type("T", (), dict(is_slide=True, crop_size=[32, 24], stride=[16, 12],
                                  flip_horizontal=True, scales=[1.0]))
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((1, 3, 37, 53)), "float32")
    with paddle.no_grad():
        want = predict_probs(model, x, test_cfg).numpy()
        got = predict_probs(_ScoresOf(predictor), x, test_cfg).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


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


@pytest.mark.parametrize("name", ["fcn8s_resnet18", "unet"])
@pytest.mark.parametrize("output_op", ["none", "softmax", "argmax"])
def test_export_parity_on_odd_sizes(tmp_path, name, output_op):
    model = _tiny(name)
    prefix = export_model(model, str(tmp_path), output_op)
    predictor = Predictor(str(tmp_path), device="cpu", cache_capacity=1)
    loaded = paddle.jit.load(prefix)
    rng = np.random.default_rng(2)
    for shape in [(1, 3, 37, 53), (2, 3, 23, 41), (1, 3, 37, 53)]:  # evicts the shape cache
        x = rng.standard_normal(shape).astype("float32")
        logits = _eager(model, x)
        with paddle.no_grad():
            via_jit = loaded(paddle.to_tensor(x)).numpy()
        via_predictor = predictor.predict(x)
        if output_op == "argmax":
            assert via_predictor.dtype == np.int32
            assert via_predictor.shape == (shape[0],) + shape[2:]
            np.testing.assert_array_equal(via_predictor, logits.argmax(1))
            np.testing.assert_array_equal(via_jit, logits.argmax(1))
            continue
        want = F.softmax(paddle.to_tensor(logits), axis=1).numpy() if output_op == "softmax" \
            else logits
        assert via_predictor.shape == want.shape == (shape[0], NUM_CLASSES) + shape[2:]
        scale = np.abs(want).max()  # oneDNN sums in another order: float32 rounding only
        np.testing.assert_allclose(via_predictor, want, rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(via_jit, want, rtol=0, atol=1e-6 * scale)



class _FusedWindow(nn.Layer):
    """Two convs summed (as FCN fuses scores), then fixed bilinear x8 upsamplers, padded and
    unpadded (caffe geometry), each cropped by a window at a non-zero offset."""

    num_classes, normalization = 4, {"mean": (0.5,) * 3, "std": (0.5,) * 3}

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2D(3, 4, 3, padding=1), nn.Conv2D(3, 4, 1)
        self.padded, self.caffe = BilinearUpsample(4, 8), BilinearUpsample(4, 8, padding=False)

    def forward(self, x):
        score = self.a(x) + self.b(x)
        h, w = x.shape[2] * 8 - 5, x.shape[3] * 8 - 5
        return self.padded(score, (3, h, w)) + self.caffe(score, (11, h, w))


@pytest.mark.parametrize("what", ["frozen_skips", "fused_window"])
def test_predictor_runs_frozen_upsamplers_on_conv_outputs(tmp_path, what):
    """oneDNN hands a conv's output on in its blocked layout; the frozen upsampler's matrix
    products must still read it right (they did not on a 4-D view: wrong values, no error)."""
    if what == "frozen_skips":  # the VGG recipes' learnable_skip_upsample: false
        model = build_model("fcn8s_resnet18", NUM_CLASSES, width=8, learnable_skip_upsample=False)
        for key, param in model.named_parameters():
            if "score" in key:
                param.set_value(paddle.randn(param.shape) * 0.1)
    else:
        model = _FusedWindow()
    export_model(model, str(tmp_path))
    predictor = Predictor(str(tmp_path), device="cpu")
    for shape in [(1, 3, 37, 53), (2, 3, 23, 41)]:
        x = np.random.default_rng(3).standard_normal(shape).astype("float32")
        want = _eager(model, x)
        assert len(np.unique(want.argmax(1))) >= 2
        np.testing.assert_allclose(predictor.predict(x), want, rtol=0,
                                   atol=1e-5 * np.abs(want).max())

def test_export_detects_a_forward_that_does_not_survive_to_static(tmp_path):
    class PythonBranch(nn.Layer):  # branches on a value: traced once, wrong for other inputs
        num_classes, normalization = 2, {"mean": (0, 0, 0), "std": (1, 1, 1)}

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2D(3, 2, 1)

        def forward(self, x):
            return self.conv(x) * float(x.shape[2] if isinstance(x.shape[2], int) else 1)

    with pytest.raises(ExportError, match="differs from the eager model"):
        export_model(PythonBranch(), str(tmp_path), "none")
    assert not os.path.exists(tmp_path / "deploy.yml")


def test_onnx_export_parity(tmp_path):
    pytest.importorskip("paddle2onnx", reason=ONNX_HINT)
    ort = pytest.importorskip("onnxruntime", reason="ONNX parity needs pip install onnxruntime")
    from paddle_fcn.inference.export import export_onnx

    model = _tiny()
    export_model(model, str(tmp_path), "none")
    session = ort.InferenceSession(export_onnx(str(tmp_path)))
    x = np.random.default_rng(3).standard_normal((1, 3, 37, 53)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, _eager(model, x), rtol=1e-4, atol=1e-4)


class _EagerOnly(nn.Layer):
    """Adds 1 to the tiny model's logits in dygraph only: the exported graph disagrees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.num_classes = model, model.num_classes
        self.normalization = model.normalization

    def forward(self, x):
        logits = self.model(x)
        return logits + 1.0 if paddle.in_dynamic_mode() else logits


def _files(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder))}


def test_failed_re_export_leaves_the_old_export_intact(tmp_path):
    model = _tiny()
    export_model(model, str(tmp_path), "none")
    (tmp_path / "model.onnx").write_bytes(b"stale onnx of an earlier export")
    export_model(model, str(tmp_path), "softmax")  # a good re-export drops the stale ONNX
    before = _files(tmp_path)
    assert sorted(before) == ["deploy.yml", "model.json", "model.pdiparams"]
    assert read_deploy_info(str(tmp_path))["output_op"] == "softmax"
    with pytest.raises(ExportError, match="differs from the eager model"):
        export_model(_EagerOnly(model), str(tmp_path), "none")
    assert _files(tmp_path) == before  # byte for byte, no .tmp-export-* left behind
    x = np.random.default_rng(5).standard_normal((1, 3, 23, 41)).astype("float32")
    np.testing.assert_allclose(Predictor(str(tmp_path), device="cpu").predict(x),
                               F.softmax(paddle.to_tensor(_eager(model, x)), axis=1).numpy(),
                               rtol=0, atol=1e-5)


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
    want = _eager(run["model"], x.transpose(2, 0, 1)[None].astype(np.float32))[0].argmax(0)
    np.testing.assert_array_equal(mask, want)
    assert read_image(os.path.join(out, "added_prediction", "turned.jpg")).shape == (48, 64, 3)
