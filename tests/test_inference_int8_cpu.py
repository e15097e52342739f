"""inference/int8_cpu.py: the graph it quantizes computes the model's function (upsamplers as
transposed convs, BatchNorms folded, padding left to the predictor), for each geometry; its
conv biases are in the form oneDNN fuses."""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from fixtures import run_legacy_ir

from paddle_fcn.errors import ExportError, PrecisionError
from paddle_fcn.inference.bundle import read_deploy_info
from paddle_fcn.inference.export import OutputOp, export_model
from paddle_fcn.inference.int8_cpu import int8_files, int8_source, pad_batch
from paddle_fcn.inference.int8_upsample import FULL_MAX_CLASSES, InterpolatedUpsample
from paddle_fcn.inference.predictor import Predictor
from paddle_fcn.models import build_model
from paddle_fcn.normalization import IMAGENET
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
    ("fcn32s_resnet18", 61, {"width": 8}, 32),  # > FULL_MAX_CLASSES: interpolated
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
    ups = [u for u in source.sublayers() if isinstance(u, (BilinearUpsample,
                                                           InterpolatedUpsample))]
    assert len(ups) == len([u for u in wrapper.sublayers() if isinstance(u, BilinearUpsample)])
    assert all(isinstance(u, InterpolatedUpsample) == (u.channels > FULL_MAX_CLASSES)
               for u in ups if not u.learnable)
    assert all(u.up.weight.shape[:2] == [u.channels] * 2 for u in ups if u.learnable)
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


def test_two_headed_model_exports_at_int8_with_an_argmax_output(tmp_path, capfd):
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
    # ResNet's residual additions stay outside the int8 convs (precision.INT8_CPU_SKIPPED_PASSES)
    log = _int8_pass_log(out, capfd)
    assert "quantized 0 fused_conv2d ops with residual connection" in log
    assert "quantized 0 conv2d ops with residual connection" in log


@pytest.mark.parametrize("name, options", [
    ("fcn8s_vgg16", {"width": 4, "geometry": "caffe"}),  # unpadded x8, cropped: align_mode 0
    ("fcn32s_resnet18", {"width": 8}),  # sample-aligned x32: align_mode 1
])
def test_many_class_upsamplers_are_interpolated_in_the_int8_graph(name, options, tmp_path):
    """Above ``int8_upsample.FULL_MAX_CLASSES`` classes the frozen upsamplers are
    interpolations in the legacy graph (no C x C transposed conv), and the int8 logits follow
    the fp32 export's on an odd-sized input."""
    classes = FULL_MAX_CLASSES + 1
    model = _with_statistics(build_model(name, classes, **options))
    rng = np.random.default_rng(4)
    images = [rng.standard_normal((1, 3, 40, 48)).astype("float32") for _ in range(2)]
    out = str(tmp_path / "int8")
    export_model(model, out, "none", precision="int8", device="cpu", calibration=images)
    ops, shapes = _legacy_ops(int8_files(out)[0])
    kinds = [kind for kind, _, _ in ops]
    assert kinds.count("bilinear_interp_v2") == 1  # the final upsampler; the x2 ones learn
    transposed = [shapes[ins["Filter"][0]] for kind, ins, _ in ops if kind == "conv2d_transpose"]
    assert all(shape[:2] == [classes, classes] for shape in transposed)  # only learnable ones
    x = rng.standard_normal((1, 3, 37, 53)).astype("float32")
    got = Predictor(out, "cpu").predict(x)
    want = Predictor(out, "cpu", precision="fp32").predict(x)
    assert got.shape == want.shape == (1, classes, 37, 53)
    assert np.abs(got - want).max() <= 0.25 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.8


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


def _int8_pass_log(model_dir, capfd):
    """What Paddle's oneDNN passes print while building the int8 predictor of an export
    (the Predictor itself holds that log back)."""
    from paddle.inference import Config, create_predictor

    from paddle_fcn.inference.precision import configure_precision

    config = Config(*int8_files(model_dir))
    config.disable_gpu()
    config.enable_onednn()
    configure_precision(config, "int8", False, model_dir)
    capfd.readouterr()
    create_predictor(config)
    return capfd.readouterr().err


def test_int8_graph_adds_conv_biases_as_onednn_fuses_them(tmp_path, capfd):
    """Paddle's legacy conv2d adds its bias as reshape2 + elementwise_add(axis=-1), which
    oneDNN's conv + bias fusion refuses ("Check the Attr(axis) ... failed"), so every int8
    conv wrote fp32 and the bias, ReLU and requantization ran as separate passes. The int8
    graph adds each of VGG16's 18 conv biases as a 1-D parameter on axis 1, and oneDNN then
    fuses all 18 and quantizes them with their ReLUs."""
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
    log = _int8_pass_log(out, capfd)
    assert "fused 18 conv2d with elementwise_add as bias" in log
    assert "quantized 18 fused_conv2d ops" in log


class _Convs(paddle.nn.Layer):
    """Convs whose biases Paddle adds through ``reshape2``: plain, grouped and depthwise (NCHW,
    ``1 x C x 1 x 1``: rewritten) and channels-last (``1 x 1 x 1 x C``: left as it is)."""

    def __init__(self):
        super().__init__()
        self.num_classes, self.normalization = 4, dict(IMAGENET)
        self.plain = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.grouped = paddle.nn.Conv2D(8, 8, 3, padding=1, groups=2)
        self.depthwise = paddle.nn.Conv2D(8, 8, 3, padding=1, groups=8)
        self.last = paddle.nn.Conv2D(8, 4, 1, data_format="NHWC")

    def forward(self, x):
        y = self.depthwise(self.grouped(self.plain(x)))
        return self.last(y.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


REWRITE = """
import json, sys
import numpy as np, paddle
from paddle_fcn.inference.int8_program import bias_adds_on_channels
from test_inference_int8_cpu import _Convs
paddle.seed(0)
model, folder = _Convs(), sys.argv[1]
model.eval()
for p in model.parameters():  # biases that matter
    p.set_value(np.random.default_rng(0).standard_normal(p.shape).astype("float32"))
spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
paddle.jit.save(model, folder + "/model", input_spec=spec)
paddle.enable_static()
exe = paddle.static.Executor(paddle.CPUPlace())
x = np.random.default_rng(1).standard_normal((1, 3, 9, 11)).astype("float32")
def run():
    program, feeds, fetches = paddle.static.load_inference_model(folder + "/model", exe)
    out = exe.run(program, feed={feeds[0]: x}, fetch_list=fetches)[0]
    ops = program.global_block().ops
    return out, [op.attr("axis") for op in ops if op.type == "elementwise_add"], \\
        [op.type for op in ops].count("reshape2")
before = run()
bias_adds_on_channels(folder, exe)
after = run()
print(json.dumps({"diff": float(np.abs(after[0] - before[0]).max()), "before": before[1:],
                  "after": after[1:]}))
"""


def test_bias_rewrite_keeps_the_function_for_each_conv_layout(tmp_path):
    """``int8_program.bias_adds_on_channels`` under the legacy IR (a child, as at export): the
    NCHW convs' adds take the 1-D bias on axis 1, the channels-last one keeps its own, same
    output."""
    result = run_legacy_ir(REWRITE, tmp_path)
    assert result["before"] == [[-1, -1, -1, -1], 4]
    assert result["after"] == [[1, 1, 1, -1], 1]
    assert result["diff"] <= 1e-5


class _Shared(paddle.nn.Layer):
    """A conv applied twice (one weight, two quantized convs) and a 1 x 1 identity conv, whose
    dequantized weights are whole numbers (0 and 1)."""

    def __init__(self):
        super().__init__()
        self.num_classes, self.normalization = 4, dict(IMAGENET)
        self.stem = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.shared = paddle.nn.Conv2D(4, 4, 3, padding=1)
        self.identity = paddle.nn.Conv2D(4, 4, 1, bias_attr=False)
        self.identity.weight.set_value(np.eye(4, dtype="float32").reshape(4, 4, 1, 1))

    def forward(self, x):
        y = F.relu(self.identity(F.relu(self.stem(x))))
        return self.shared(F.relu(self.shared(y)))


INTEGERS = """
import json, shutil, sys
import numpy as np, paddle
paddle.enable_static()
exe = paddle.static.Executor(paddle.CPUPlace())
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
program, feeds, fetches = paddle.static.load_inference_model(dst + "/int8/model", exe)
scope, block = paddle.static.global_scope(), program.global_block()
producer = {name: op for op in block.ops for name in op.output_arg_names}
kinds, done = [], set()
for op in block.ops:
    if op.type == "fake_channel_wise_dequantize_max_abs":
        name = producer[op.input("X")[0]].input("Filter")[0]
        tensor = scope.find_var(name).get_tensor()
        w = np.array(tensor)
        s = np.array(scope.find_var(op.input("Scales")[0]).get_tensor()).reshape(-1, 1, 1, 1)
        integral = bool(np.array_equal(w, np.round(w)))
        kinds.append("shared" if name in done else "integers" if integral else "fp32")
        if not integral:  # back to what PTQ saved: q = round(w * 127 / s)
            tensor.set(np.round(w * 127 / s).astype("float32"), paddle.CPUPlace())
        done.add(name)
paddle.static.save_inference_model(dst + "/int8/model", [block.var(n) for n in feeds],
                                   fetches, exe, program=program)
print(json.dumps(kinds))
"""


@pytest.mark.parametrize("name", ["vgg", "shared"])
def test_int8_weights_are_stored_as_the_predictor_dequantizes_them(name, tmp_path):
    """PTQ saves integer weights that Paddle Inference dequantizes at every Predictor start,
    15 s for VGG16; the export stores them dequantized (``int8_program.weights_in_fp32``) in
    Paddle's own arithmetic: its int8 Predictor gives bit for bit the output of the same
    graph with PTQ's integers put back. A shared weight is converted once, and one whose
    dequantized values are whole numbers (an identity conv) is left to Paddle."""
    model = _with_statistics(build_model("fcn8s_vgg16", 5, width=4)) if name == "vgg" \
        else _Shared()
    model.eval()
    rng = np.random.default_rng(5)
    images = [rng.standard_normal((1, 3, 40, 48)).astype("float32") for _ in range(2)]
    out, raw = str(tmp_path / "int8"), str(tmp_path / "raw")
    export_model(model, out, "none", precision="int8", device="cpu", calibration=images)
    kinds = run_legacy_ir(INTEGERS, out, raw)
    assert kinds == (["fp32"] * 18 if name == "vgg" else ["fp32", "integers", "fp32", "shared"])
    x = rng.standard_normal((1, 3, 37, 53)).astype("float32")
    got, want = Predictor(out, "cpu").predict(x), Predictor(raw, "cpu").predict(x)
    assert np.abs(want).max() > 0 and np.array_equal(got, want)


def test_channels_last_model_int8_is_a_clear_error(tmp_path):
    """Paddle 3.3's oneDNN int8 passes mislay a channels-last conv's layout: the export fails
    with an ExportError naming the model and quoting Paddle, and leaves nothing behind."""
    model = _Convs()
    model.eval()
    images = [np.random.default_rng(4).standard_normal((1, 3, 24, 40)).astype("float32")]
    with pytest.raises(ExportError, match="the int8 export of _Convs does not run on cpu.*NHWC"):
        export_model(model, str(tmp_path / "int8"), "none", precision="int8", device="cpu",
                     calibration=images)
    assert os.listdir(tmp_path / "int8") == []


def test_fp32_re_export_removes_the_int8_graph(tmp_path):
    model = _with_statistics(build_model("fcn8s_resnet18", 5, width=8))
    images = [np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype("float32")]
    out = str(tmp_path / "int8")
    export_model(model, out, "none", precision="int8", device="cpu", calibration=images)
    assert "int8" in os.listdir(out)
    export_model(model, out, "none")  # its weights would not match the old int8 graph
    assert "int8" not in os.listdir(out) and read_deploy_info(out)["precision"] == "fp32"
    with pytest.raises(PrecisionError, match="not exported for int8 on CPU"):
        Predictor(out, "cpu", precision="int8")
