"""inference/export.py and inference/predictor.py: the exported graph and the Paddle Inference
predictor give the eager model's outputs; failed exports leave nothing behind.

Tiny models (ResNet18 FCN-8s and U-Net at width 8), images <= 64 px. The head's parameters
(zero-initialised score layers, bilinear x2 upsamplers) get random values so that predictions
hold several classes (an all-zero model would predict class 0 everywhere and make every
comparison trivially true; random scores alone, upsampled bilinearly, give only 2 classes).
"""
import os

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest
from fixtures import SCORED_CLASSES as NUM_CLASSES
from fixtures import eager_output, scored_model

from paddle_fcn.inference.tta import predict_probs
from paddle_fcn.inference.export import ONNX_HINT, ExportError, export_model, read_deploy_info
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.models import build_model
from paddle_fcn.upsample import BilinearUpsample


@pytest.mark.parametrize("output_op", ["none", "softmax"])
def test_exported_scores_average_like_the_eager_model(tmp_path, output_op):
    """Slide + flip over the predictor's outputs gives the eager model's probabilities (a
    softmax export is fed back as log-probabilities, whose softmax is the same)."""
    from paddle_fcn.inference.segmenter import _ScoresOf

    model = scored_model()
    export_model(model, str(tmp_path), output_op)
    predictor = Predictor(str(tmp_path), device="cpu")
    test_cfg = type("T", (), dict(is_slide=True, crop_size=[32, 24], stride=[16, 12],
                                  flip_horizontal=True, scales=[1.0]))
    x = paddle.to_tensor(np.random.default_rng(4).standard_normal((1, 3, 37, 53)), "float32")
    with paddle.no_grad():
        want = predict_probs(model, x, test_cfg).numpy()
        got = predict_probs(_ScoresOf(predictor), x, test_cfg).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["fcn8s_resnet18", "unet"])
@pytest.mark.parametrize("output_op", ["none", "softmax", "argmax"])
def test_export_parity_on_odd_sizes(tmp_path, name, output_op):
    model = scored_model(name)
    prefix = export_model(model, str(tmp_path), output_op)
    predictor = Predictor(str(tmp_path), device="cpu", cache_capacity=1)
    loaded = paddle.jit.load(prefix)
    rng = np.random.default_rng(2)
    for shape in [(1, 3, 37, 53), (2, 3, 23, 41), (1, 3, 37, 53)]:  # evicts the shape cache
        x = rng.standard_normal(shape).astype("float32")
        logits = eager_output(model, x)
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
        want = eager_output(model, x)
        assert len(np.unique(want.argmax(1))) >= 2
        np.testing.assert_allclose(predictor.predict(x), want, rtol=0,
                                   atol=1e-5 * np.abs(want).max())


def test_eval_dropouts_are_left_out_of_the_graph(tmp_path):
    """A dropout is the identity in eval mode but stays an op of the saved graph, where Paddle
    Inference's bf16 placement leaves the conv between two of them (VGG's fc7) in fp32: the
    graph is saved without them, and the model keeps its own. One that scales in eval mode
    (``downscale_in_infer``) is not the identity and stays."""
    model = build_model("fcn8s_vgg16", 3, width=4)
    drops = [layer for layer in model.sublayers() if isinstance(layer, nn.Dropout)]
    assert len(drops) == 2
    export_model(model, str(tmp_path / "vgg"))
    graph = (tmp_path / "vgg" / "model.json").read_text()
    assert "conv2d" in graph and "dropout" not in graph
    assert [layer for layer in model.sublayers() if isinstance(layer, nn.Dropout)] == drops

    class Scaling(nn.Layer):
        num_classes, normalization = 2, {"mean": (0, 0, 0), "std": (1, 1, 1)}

        def __init__(self):
            super().__init__()
            self.conv, self.drop = nn.Conv2D(3, 2, 1), nn.Dropout(0.5, mode="downscale_in_infer")

        def forward(self, x):
            return self.drop(self.conv(x))

    export_model(Scaling(), str(tmp_path / "scaling"))  # checked: the graph equals eager
    assert "dropout" in (tmp_path / "scaling" / "model.json").read_text()

    class Twice(Scaling):  # one Dropout in two slots
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)
            self.body = nn.Sequential(self.conv, self.drop, nn.ReLU(), self.drop)

        def forward(self, x):
            return self.body(x)

    class Failing(Twice):  # traced once, wrong for other inputs: the export fails
        def forward(self, x):
            return self.body(x) * float(x.shape[2] if isinstance(x.shape[2], int) else 1)

    model = Twice()
    export_model(model, str(tmp_path / "twice"))
    assert "dropout" not in (tmp_path / "twice" / "model.json").read_text()
    model = Failing()
    with pytest.raises(ExportError, match="differs from the eager model"):
        export_model(model, str(tmp_path / "failing"))
    assert model.body[1] is model.body[3] is model.drop  # put back after the failure


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

    model = scored_model()
    export_model(model, str(tmp_path), "none")
    session = ort.InferenceSession(export_onnx(str(tmp_path)))
    x = np.random.default_rng(3).standard_normal((1, 3, 37, 53)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, eager_output(model, x), rtol=1e-4, atol=1e-4)


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
    model = scored_model()
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
                               F.softmax(paddle.to_tensor(eager_output(model, x)), axis=1).numpy(),
                               rtol=0, atol=1e-5)
