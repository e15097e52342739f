"""Weight files: reading, torchvision translation, strict loading, ImageNet import, model reload."""
import importlib.util

import numpy as np
import paddle
import pytest

from paddle_fcn.models import build_model
from paddle_fcn.errors import WeightsError
from paddle_fcn.models.files import from_torchvision
from paddle_fcn.models.state_dict import LoadReport, load_weights
from paddle_fcn.models.origin import model_state_dict, read_state_dict
from paddle_fcn.models.resnet import ResNetBackbone
from paddle_fcn.models.weights import load_model_weights
from paddle_fcn.normalization import CAFFE, IMAGENET

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _small_net():
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
        paddle.nn.Linear(4, 2),
    )


def _params(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _assert_unchanged(layer, before):
    after = _params(layer)
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


# ----------------------------------------------------------------------------- translation
def test_from_torchvision_renames_transposes_and_drops_counter():
    conv = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    state = {
        "conv1.weight": conv,
        "bn1.weight": np.array([1.0, 2.0], np.float32),
        "bn1.running_mean": np.array([0.5, -0.5], np.float32),
        "bn1.running_var": np.array([4.0, 9.0], np.float32),
        "bn1.num_batches_tracked": np.array(17, np.int64),
        "fc.weight": np.array([[1, 2, 3], [4, 5, 6]], np.float32),  # torch Linear [out=2, in=3]
        "fc.bias": np.array([7.0, 8.0], np.float32),
    }
    out = from_torchvision(state)
    assert sorted(out) == ["bn1._mean", "bn1._variance", "bn1.weight", "conv1.weight",
                           "fc.bias", "fc.weight"]
    np.testing.assert_array_equal(out["fc.weight"], [[1, 4], [2, 5], [3, 6]])  # Paddle [in, out]
    np.testing.assert_array_equal(out["conv1.weight"], conv)  # conv layout is shared
    np.testing.assert_array_equal(out["bn1._mean"], [0.5, -0.5])
    np.testing.assert_array_equal(out["bn1._variance"], [4.0, 9.0])
    np.testing.assert_array_equal(out["fc.bias"], [7.0, 8.0])
    assert "bn1.running_mean" in state  # input untouched


def test_torchvision_layout_loads_into_paddle_layers_and_computes_the_same():
    src, dst = _small_net(), _small_net()
    paddle_state = _params(src)
    torch_state = {  # what torchvision would have saved for the same network
        "0.weight": paddle_state["0.weight"], "0.bias": paddle_state["0.bias"],
        "1.weight": paddle_state["1.weight"], "1.bias": paddle_state["1.bias"],
        "1.running_mean": paddle_state["1._mean"] + 0.25,
        "1.running_var": paddle_state["1._variance"] * 2.0,
        "1.num_batches_tracked": np.array(3, np.int64),
        "3.weight": paddle_state["3.weight"].T.copy(), "3.bias": paddle_state["3.bias"],
    }
    src[1]._mean.set_value(paddle_state["1._mean"] + 0.25)
    src[1]._variance.set_value(paddle_state["1._variance"] * 2.0)
    report = load_weights(dst, from_torchvision(torch_state), "net.pth")
    assert len(report.loaded) == 8 and not report.missing and not report.unexpected
    src.eval(), dst.eval()
    x = paddle.randn([2, 3, 3, 3])
    np.testing.assert_allclose(dst(x).numpy(), src(x).numpy(), rtol=0, atol=0)


@pytest.mark.skipif(HAS_TORCH, reason="torch is installed; the reading test below runs instead")
def test_torch_file_without_torch_says_how_to_read_it(tmp_path):
    path = tmp_path / "resnet34-b627a593.pth"
    path.write_bytes(b"PK\x03\x04 not read without torch")
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert str(path) in message and "PyTorch" in message
    assert "pip install torch" in message and ".pdparams" in message


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_torch_file_is_read_and_translated(tmp_path):
    import torch

    path = tmp_path / "net.pth"
    torch.save({"fc.weight": torch.arange(6.0).reshape(2, 3),
                "bn.running_var": torch.ones(2), "bn.num_batches_tracked": torch.tensor(5)}, path)
    state = read_state_dict(path)
    assert sorted(state) == ["bn._variance", "fc.weight"]
    np.testing.assert_array_equal(state["fc.weight"], [[0, 3], [1, 4], [2, 5]])


# ----------------------------------------------------------------------------- reading errors
def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "resnet34.pdparams"
    with pytest.raises(WeightsError, match="not found") as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "broken.pdparams"
    path.write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(WeightsError) as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pdparams"
    paddle.save([1, 2, 3], str(path))
    with pytest.raises(WeightsError, match="not a state dict") as err:
        read_state_dict(path)
    assert str(path) in str(err.value)
    path = tmp_path / "meta.pdparams"
    paddle.save({"epoch": "3"}, str(path))
    with pytest.raises(WeightsError, match="'epoch'"):
        read_state_dict(path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported weights file .*weights.npz"):
        read_state_dict(path)


def test_checkpoint_wrapper_is_unwrapped(tmp_path):
    path = tmp_path / "ckpt.pdparams"
    paddle.save({"state_dict": {"w": np.full([2], 3.0, np.float32)}}, str(path))
    state = read_state_dict(path)
    assert list(state) == ["w"] and state["w"].tolist() == [3.0, 3.0]


# ----------------------------------------------------------------------------- load_weights
def test_load_weights_copies_casts_and_reports():
    net = _small_net()
    state = {k: np.full(v.shape, i, np.float64) for i, (k, v) in enumerate(_params(net).items())}
    state["extra.weight"] = np.zeros(1, np.float32)
    report = load_weights(net, state, "x.pdparams", allow_unexpected=("extra.*",))
    assert report.unexpected == ["extra.weight"] and not report.missing
    for i, (key, value) in enumerate(_params(net).items()):
        assert value.dtype == np.float32 and np.all(value == i), key
    text = str(report)
    assert "loaded 8 tensors from x.pdparams" in text and "1 unexpected" in text


def test_shape_mismatch_names_source_and_key_and_loads_nothing():
    net = _small_net()
    before = _params(net)
    state = {k: v + 1 for k, v in before.items()}  # everything else would load fine
    state["3.weight"] = np.zeros([2, 4], np.float32)  # the torch layout, not transposed
    with pytest.raises(WeightsError) as err:
        load_weights(net, state, "/data/net.pdparams")
    message = str(err.value)
    assert "/data/net.pdparams" in message and "3.weight: file [2, 4] vs model [4, 2]" in message
    _assert_unchanged(net, before)


def test_missing_and_unexpected_keys_need_allowances():
    net = _small_net()
    before = _params(net)
    state = {k: v for k, v in before.items() if k != "1._variance"}
    state["head.bias"] = np.zeros(2, np.float32)
    with pytest.raises(WeightsError, match=r"1 model keys missing.*1\._variance.*head\.bias"):
        load_weights(net, state, "a.pdparams")
    report = load_weights(net, state, "a.pdparams", allow_missing=("1._*",),
                          allow_unexpected=("head.*",))
    assert report.missing == ["1._variance"] and report.unexpected == ["head.bias"]
    assert len(report.loaded) == 7


def test_integer_array_into_float_parameter_is_refused():
    net = _small_net()
    before = _params(net)
    state = dict(before, **{"0.bias": np.arange(4, dtype=np.int64)})
    with pytest.raises(WeightsError, match="0.bias file int64 vs model float32"):
        load_weights(net, state, "ints.pdparams")
    _assert_unchanged(net, before)


def test_load_report_str_lists_first_keys():
    report = LoadReport(loaded=["a"], missing=[f"m{i}" for i in range(7)],
                        mismatched=[("k", (1, 2), (2, 1))], source="f.pdparams")
    text = str(report)
    assert "loaded 1 tensors from f.pdparams" in text and "7 missing" in text
    assert "m4, ... (+2 more)" in text and "k file [1, 2] vs model [2, 1]" in text


# ----------------------------------------------------------------------------- ImageNet import
@pytest.mark.parametrize("depth", [18, 34, 50])
def test_paddle_vision_resnet_weights_round_trip(tmp_path, depth):
    source = getattr(paddle.vision.models, f"resnet{depth}")()
    path = tmp_path / f"resnet{depth}.pdparams"
    paddle.save(source.state_dict(), str(path))
    expected = _params(source)
    model = build_model(f"fcn8s_resnet{depth}", 5, pretrained=str(path))
    loaded = _params(model.backbone)
    assert sorted(loaded) == sorted(k for k in expected if not k.startswith("fc."))
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
    assert model.normalization == IMAGENET
    report = model.backbone.load_imagenet(str(path))
    assert report.unexpected == ["fc.weight", "fc.bias"] and not report.missing


def test_resnet_weights_bring_the_normalization_they_store(tmp_path):
    """A ResNet file that records its input normalisation (as our own files do) sets the
    model's: a Caffe-normalised trunk fed ImageNet-normalised input would be silently wrong."""
    source = paddle.vision.models.resnet18()
    source.normalization = CAFFE
    path = tmp_path / "resnet18_caffe.pdparams"
    paddle.save(model_state_dict(source), str(path))
    model = build_model("fcn8s_resnet18", 5, pretrained=str(path))
    assert model.normalization == CAFFE and model.backbone.normalization == CAFFE
    report = model.backbone.imagenet_report
    assert report.normalization == CAFFE and str(report).endswith(f"{path}: caffe")


def test_resnet18_file_into_resnet34_is_refused_without_change(tmp_path):
    path = tmp_path / "resnet18.pdparams"
    paddle.save(paddle.vision.models.resnet18().state_dict(), str(path))
    backbone = ResNetBackbone(34)
    before = _params(backbone)
    with pytest.raises(WeightsError) as err:
        backbone.load_imagenet(str(path))
    message = str(err.value)
    assert str(path) in message and "layer1.2.conv1.weight" in message  # 1st block r18 lacks
    _assert_unchanged(backbone, before)


def test_resnet50_file_into_resnet34_names_first_shape_mismatch(tmp_path):
    path = tmp_path / "resnet50.pdparams"
    paddle.save(paddle.vision.models.resnet50().state_dict(), str(path))
    with pytest.raises(WeightsError) as err:
        build_model("fcn32s_resnet34", 3, pretrained=str(path))
    assert str(path) in str(err.value)
    assert "layer1.0.conv1.weight: file [64, 64, 1, 1] vs model [64, 64, 3, 3]" in str(err.value)


def test_pretrained_needs_width_64(tmp_path):
    with pytest.raises(WeightsError, match="width=16"):
        build_model("fcn32s_resnet18", 3, pretrained=str(tmp_path / "r18.pdparams"), width=16)
    with pytest.raises(WeightsError, match="width=8"):
        ResNetBackbone(18, width=8).load_imagenet(str(tmp_path / "r18.pdparams"))


# ----------------------------------------------------------------------------- trained models
def _trained_file(tmp_path, num_classes):
    model = build_model("fcn8s_resnet18", num_classes, width=8)
    for param in model.parameters():  # stand-in for training: every value differs from init
        param.set_value(paddle.randn(param.shape) * 0.1)
    path = tmp_path / "best_model" / "model.pdparams"
    path.parent.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(path))
    return model, path


def test_load_model_weights_from_file_and_checkpoint_dir(tmp_path):
    trained, path = _trained_file(tmp_path, 3)
    for where in (path, path.parent):
        model = build_model("fcn8s_resnet18", 3, width=8)
        report = load_model_weights(model, where)
        assert not report.missing and not report.unexpected
        for key, value in _params(model).items():
            np.testing.assert_array_equal(value, _params(trained)[key], err_msg=key)
    with pytest.raises(WeightsError, match="did you mean .*best_model"):
        load_model_weights(build_model("fcn8s_resnet18", 3, width=8), tmp_path)


def test_wrong_num_classes_is_named_and_nothing_changes(tmp_path):
    _, path = _trained_file(tmp_path, 3)
    model = build_model("fcn8s_resnet18", 5, width=8)
    before = _params(model)
    with pytest.raises(WeightsError) as err:
        load_model_weights(model, path)
    message = str(err.value)
    assert f"weights file {path} was trained for 3 classes" in message
    assert "score_fr.weight [3, 64, 1, 1]" in message and "the model has 5" in message
    _assert_unchanged(model, before)


def test_other_architecture_names_first_differing_keys(tmp_path):
    _, path = _trained_file(tmp_path, 3)
    model = build_model("unet", 3, width=4, depth=2)
    before = _params(model)
    with pytest.raises(WeightsError) as err:
        load_model_weights(model, path)
    message = str(err.value)
    assert str(path) in message and "backbone.levels.0.0.weight" in message
    _assert_unchanged(model, before)
