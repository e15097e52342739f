"""inference/int8_cpu.py: the graph it quantizes computes the model's function (upsamplers as
transposed convs, BatchNorms folded, padding left to the predictor), for each geometry; its
conv biases are in the form oneDNN fuses."""
import os

import numpy as np
import paddle
import pytest

from paddle_fcn.errors import PrecisionError
from paddle_fcn.inference.bundle import read_deploy_info
from paddle_fcn.inference.export import OutputOp, export_model
from paddle_fcn.inference.int8_cpu import int8_source, pad_batch
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.models import build_model
from paddle_fcn.upsample import BilinearUpsample


def _with_statistics(model, seed=0):
    """Non-trivial BatchNorm statistics and score layers, so folding and scoring matter."""
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():
        if key.endswith(("_mean", "_variance", "bn1.weight")) or "score" in key:
            value.set_value((0.5 * np.abs(rng.standard_normal(value.shape)) + 0.1)
                            .astype("float32"))
    model.eval()
    return model


@pytest.mark.parametrize("name, classes, options, multiple", [
    ("fcn8s_resnet18", 5, {"width": 8}, 32),
    ("fcn32s_resnet18", 61, {"width": 8}, 32),  # > 60 classes: depthwise upsampler
    ("fcn8s_vgg16", 5, {"width": 4, "geometry": "caffe"}, 1),
    ("fcn16s_resnet18", 5, {"width": 8, "heads": {"semantic": 5, "geometric": 3}}, 32),
])
def test_int8_source_computes_the_model_on_the_padded_input(name, classes, options, multiple):
    wrapper = OutputOp(_with_statistics(build_model(name, classes, **options)))
    wrapper.eval()
    x = np.random.default_rng(1).standard_normal((1, 3, 37, 53)).astype("float32")
    with paddle.no_grad():
        want = wrapper(paddle.to_tensor(x)).numpy()
    frozen = [u for u in wrapper.sublayers() if isinstance(u, BilinearUpsample)
              and not u.learnable]
    source, pad, graph_op = int8_source(wrapper)
    assert pad == multiple and graph_op == "none"
    kinds = [type(layer).__name__ for layer in source.sublayers()]
    assert "BatchNorm2D" not in kinds
    ups = [u for u in source.sublayers() if isinstance(u, BilinearUpsample)]
    assert ups and all(u.learnable for u in ups)
    assert all(u.up.weight.shape[1] == (1 if u.channels > 60 else u.channels) for u in ups)
    assert any(u.channels == classes for u in ups)
    with paddle.no_grad():
        got = source(paddle.to_tensor(pad_batch(x, pad))).numpy()[..., :37, :53]
        again = wrapper(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    # the original is untouched: same output, its frozen upsamplers still frozen and its own
    np.testing.assert_array_equal(again, want)
    assert frozen and frozen == [u for u in wrapper.sublayers()
                                 if isinstance(u, BilinearUpsample) and not u.learnable]


def test_pad_batch_pads_bottom_right_with_zeros():
    x = np.ones((2, 3, 37, 64), np.float32)
    padded = pad_batch(x, 32)
    assert padded.shape == (2, 3, 64, 64) and padded[:, :, 37:].sum() == 0
    np.testing.assert_array_equal(padded[:, :, :37], x)
    assert pad_batch(x[:, :, :32], 32).shape == (2, 3, 32, 64) and pad_batch(x, 1) is x


def test_two_headed_model_exports_at_int8_with_an_argmax_output(tmp_path):
    """The first head of a MultiHeadFCN is held outside its sublayers, and argmax does not
    save under the legacy IR: the export converts that head too, and the Predictor takes the
    argmax of the int8 graph's logits, cropped to each input's size."""
    model = _with_statistics(build_model("fcn16s_resnet18", 5, width=8,
                                         heads={"semantic": 5, "geometric": 3}))
    rng = np.random.default_rng(2)
    images = [rng.standard_normal((1, 3, 40, 48)).astype("float32") for _ in range(3)]
    out = str(tmp_path / "int8")
    export_model(model, out, "argmax", precision="int8", device="cpu", calibration=images)
    record = read_deploy_info(out)["int8_cpu"]
    assert record["graph_output_op"] == "none" and record["calib_images"] == 3
    x = rng.standard_normal((2, 3, 37, 53)).astype("float32")
    got = Predictor(out, "cpu").predict(x)
    want = Predictor(out, "cpu", precision="fp32").predict(x)
    assert got.shape == want.shape == (2, 37, 53) and got.dtype == np.int32
    assert (got == want).mean() >= 0.9


def _legacy_ops(pdmodel):
    """``[(type, {slot: names}, {attr: int value})]`` of a legacy ``.pdmodel``'s main block,
    and its persistable variables' shapes, read from the protobuf (no legacy IR needed)."""
    from paddle.base.proto import framework_pb2

    desc = framework_pb2.ProgramDesc()
    with open(pdmodel, "rb") as f:
        desc.ParseFromString(f.read())
    block = desc.blocks[0]
    ops = [(op.type, {s.parameter: list(s.arguments) for s in op.inputs},
            {a.name: a.i for a in op.attrs if a.type == 0}) for op in block.ops]
    shapes = {v.name: list(v.type.dense_tensor.tensor.dims) for v in block.vars
              if v.persistable}
    return ops, shapes


def test_int8_graph_adds_conv_biases_as_onednn_fuses_them(tmp_path, capfd):
    """Paddle's legacy conv2d adds its bias as reshape2 + elementwise_add(axis=-1), which
    oneDNN's conv + bias fusion refuses ("Check the Attr(axis) ... failed"), so every int8
    conv wrote fp32 and the bias, ReLU and requantization ran as separate passes. The int8
    graph adds each of VGG16's 18 conv biases as a 1-D parameter on axis 1, and oneDNN then
    fuses all 18 and quantizes them with their ReLUs. An fp32 export into the same folder
    then removes the int8 graph, which its weights no longer match."""
    from paddle.inference import Config, create_predictor

    from paddle_fcn.inference.int8_cpu import int8_files
    from paddle_fcn.inference.precision import configure_precision

    model = _with_statistics(build_model("fcn8s_vgg16", 5, width=4))
    rng = np.random.default_rng(3)
    images = [rng.standard_normal((1, 3, 40, 48)).astype("float32") for _ in range(2)]
    out = str(tmp_path / "int8")
    export_model(model, out, "none", precision="int8", device="cpu", calibration=images)
    ops, shapes = _legacy_ops(int8_files(out)[0])
    adds = [(ins, attrs) for kind, ins, attrs in ops if kind == "elementwise_add"
            and ins["Y"][0] in shapes]
    assert "reshape2" not in [kind for kind, _, _ in ops]
    assert len(adds) == 18 and all(attrs["axis"] == 1 and len(shapes[ins["Y"][0]]) == 1
                                   for ins, attrs in adds)
    config = Config(*int8_files(out))
    config.disable_gpu()
    config.enable_onednn()
    configure_precision(config, "int8", False, out)
    capfd.readouterr()
    create_predictor(config)
    log = capfd.readouterr().err
    assert "fused 18 conv2d with elementwise_add as bias" in log
    assert "quantized 18 fused_conv2d ops" in log
    export_model(model, out, "none")
    assert "int8" not in os.listdir(out) and read_deploy_info(out)["precision"] == "fp32"
    with pytest.raises(PrecisionError, match="not exported for int8 on CPU"):
        Predictor(out, "cpu", precision="int8")
