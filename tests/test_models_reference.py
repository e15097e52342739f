"""The reference nets' own weights: Caffe .caffemodel (V1 and V2 layouts) and pytorch-fcn .pth
files written here from a small model's random weights load back to the same logits."""
import numpy as np
import paddle
import pytest
from reference_nets import HAS_TORCH, WIDTH, logits, make_model, reference_layers, write_caffemodel

from paddle_fcn.models import build_model
from paddle_fcn.models.caffe import caffe_messages, read_caffemodel
from paddle_fcn.models.vgg import trunk_layer_names
from paddle_fcn.errors import WeightsError
from paddle_fcn.models.weights import load_model_weights
from paddle_fcn.normalization import CAFFE, IMAGENET


@pytest.mark.parametrize("v1", [False, True], ids=["V2-layer", "V1-layers"])
def test_caffemodel_round_trip_gives_the_same_logits(tmp_path, v1):
    src = make_model(seed=0)
    path = write_caffemodel(reference_layers(src), tmp_path / "fcn8s.caffemodel", v1=v1,
                             legacy_shape=v1, double=("conv1_1", "upscore8") if v1 else ())
    dst = make_model(seed=5)
    assert dst.normalization == IMAGENET
    report = load_model_weights(dst, path)
    np.testing.assert_allclose(logits(dst), logits(src), rtol=1e-5, atol=1e-5)
    assert dst.normalization == CAFFE == report.normalization
    assert len(report.loaded) == len(dst.state_dict())


def test_learnable_upsampler_takes_a_non_diagonal_kernel_as_is(tmp_path):
    src = make_model("fcn16s_vgg16", learnable_skip_upsample=True)
    weight = np.random.default_rng(3).normal(0, 1, src.upscore2.up.weight.shape)
    src.upscore2.up.weight.set_value(weight.astype("float32"))  # mixes classes: no transpose
    path = write_caffemodel(reference_layers(src), tmp_path / "fcn16s.caffemodel")
    dst = make_model("fcn16s_vgg16", seed=9, learnable_skip_upsample=True)
    load_model_weights(dst, path)
    np.testing.assert_array_equal(dst.upscore2.up.weight.numpy(), weight.astype("float32"))
    np.testing.assert_allclose(logits(dst), logits(src), rtol=1e-5, atol=1e-5)
    frozen = make_model("fcn16s_vgg16", seed=9)  # the same file into a fixed upscore2: refused
    with pytest.raises(WeightsError, match="layer 'upscore2' is not the fixed bilinear kernel"):
        load_model_weights(frozen, path)


def test_missing_or_misshaped_blob_names_the_layer_and_loads_nothing(tmp_path):
    layers = reference_layers(make_model())
    missing = dict(layers)
    del missing["score_pool3"]
    dst = make_model(seed=5)
    before = logits(dst)
    with pytest.raises(WeightsError, match="has no layer 'score_pool3'"):
        load_model_weights(dst, write_caffemodel(missing, tmp_path / "a.caffemodel"))
    wrong = dict(layers, conv3_2=[layers["conv3_2"][0][:, :-1], layers["conv3_2"][1]])
    with pytest.raises(WeightsError, match=r"layer 'conv3_2' weight has shape \[16, 15, 3, 3\]"):
        load_model_weights(dst, write_caffemodel(wrong, tmp_path / "b.caffemodel"))
    np.testing.assert_array_equal(logits(dst), before)
    assert dst.normalization == IMAGENET


def test_variant_classes_geometry_and_non_caffemodel_are_named(tmp_path):
    path = write_caffemodel(reference_layers(make_model()), tmp_path / "fcn8s.caffemodel")
    with pytest.raises(WeightsError, match="score_pool3, score_pool4, upscore2, upscore8, "
                                           "upscore_pool4 that FCN-32s does not have and lacks "
                                           "upscore"):
        load_model_weights(make_model("fcn32s_vgg16"), path)
    with pytest.raises(WeightsError, match="100-pixel input padding.*geometry: caffe"):
        load_model_weights(make_model(geometry="aligned"), path)
    paddle.seed(0)
    with pytest.raises(WeightsError, match="trained for 3 classes"):
        load_model_weights(build_model("fcn8s_vgg16", 4, geometry="caffe", width=WIDTH,
                                       learnable_skip_upsample=False), path)
    text = tmp_path / "deploy.caffemodel"
    text.write_text('name: "FCN"\nlayer { name: "data" type: "Input" }\n')
    with pytest.raises(WeightsError, match="is not a Caffe .caffemodel"):
        read_caffemodel(text)
    empty = caffe_messages()["NetParameter"](name="no layers")
    (tmp_path / "empty.caffemodel").write_bytes(empty.SerializeToString())
    with pytest.raises(WeightsError, match="holds no named layers"):
        read_caffemodel(tmp_path / "empty.caffemodel")


def test_atonce_net_scales_pool4_and_pool3_and_checks_the_file(tmp_path):
    src = make_model("fcn8s_atonce_vgg16")
    assert src.skip_scales == (0.01, 0.0001)
    layers = reference_layers(src)
    scales = {"scale_pool4": [np.full(4 * WIDTH * 2, 0.01, "float32")],
              "scale_pool3": [np.full(4 * WIDTH, 1e-4, "float32")]}
    path = write_caffemodel({**layers, **scales}, tmp_path / "fcn8s-atonce.caffemodel")
    dst = make_model("fcn8s_atonce_vgg16", seed=4)
    load_model_weights(dst, path)
    np.testing.assert_allclose(logits(dst), logits(src), rtol=1e-5, atol=1e-5)
    plain = make_model(seed=4)  # the same weights without the scales score differently
    with pytest.raises(WeightsError, match="at-once net.*fcn8s_atonce_vgg16"):
        load_model_weights(plain, path)
    bad = {**layers, **scales, "scale_pool3": [np.full(4 * WIDTH, 1.0, "float32")]}
    with pytest.raises(WeightsError, match="'scale_pool3' is not the fixed scale 0.0001"):
        load_model_weights(dst, write_caffemodel(bad, tmp_path / "bad.caffemodel"))


def test_caffe_imagenet_vgg16_loads_as_pretrained_with_fc_reshaped(tmp_path):
    src = make_model()
    layers = {n: blobs for n, blobs in reference_layers(src).items()
              if n in trunk_layer_names()}
    for name in ("fc6", "fc7"):  # InnerProduct [out, in], as in VGG_ILSVRC_16_layers
        weight, bias = layers[name]
        layers[name] = [weight.reshape(weight.shape[0], -1), bias]
    layers["fc8"] = [np.ones((10, 64 * WIDTH), "float32"), np.ones(10, "float32")]
    path = write_caffemodel(layers, tmp_path / "VGG_ILSVRC_16_layers.caffemodel", v1=True,
                             legacy_shape=True)
    model = make_model(pretrained=str(path))
    assert model.normalization == CAFFE
    for key, value in src.backbone.state_dict().items():
        np.testing.assert_array_equal(model.backbone.state_dict()[key].numpy(), value.numpy())


@pytest.mark.skipif(not HAS_TORCH, reason="reading pytorch-fcn .pth files needs torch "
                                          "(pip install torch); not a requirement")
def test_pytorch_fcn_state_dict_round_trips(tmp_path):
    import torch

    src = make_model("fcn16s_vgg16")
    state = {f"{name}.{kind}": torch.from_numpy(np.ascontiguousarray(blob))
             for name, blobs in reference_layers(src).items()
             for kind, blob in zip(("weight", "bias"), blobs)}
    assert "conv1_1.weight" in state and "upscore16.weight" in state  # pytorch-fcn's names
    path = tmp_path / "fcn16s_from_caffe.pth"
    torch.save(state, path)
    dst = make_model("fcn16s_vgg16", seed=7)
    load_model_weights(dst, path)
    np.testing.assert_allclose(logits(dst), logits(src), rtol=1e-5, atol=1e-5)
    assert dst.normalization == CAFFE
    # a checkpoint of pytorch-fcn's trainer wraps the state dict
    torch.save({"epoch": 3, "iteration": 100, "model_state_dict": state}, tmp_path / "ck.pth")
    again = make_model("fcn16s_vgg16", seed=8)
    load_model_weights(again, tmp_path / "ck.pth")
    np.testing.assert_array_equal(logits(again), logits(dst))


def test_pth_without_torch_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    (tmp_path / "fcn8s_from_caffe.pth").write_bytes(b"x")
    with pytest.raises(WeightsError, match="pip install torch"):
        load_model_weights(make_model(), tmp_path / "fcn8s_from_caffe.pth")
