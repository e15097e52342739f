"""The reference nets' own weights: Caffe .caffemodel (V1 and V2 layouts) and pytorch-fcn .pth
files written here from a small model's random weights load back to the same logits."""
import importlib.util

import numpy as np
import paddle
import pytest

from paddle_fcn.models import build_model
from paddle_fcn.models.caffe import caffe_messages, read_caffemodel
from paddle_fcn.models.reference import trunk_layer_names
from paddle_fcn.models.weights import WeightsError, load_model_weights
from paddle_fcn.normalization import CAFFE, IMAGENET, normalize_image
from paddle_fcn.upsample import BilinearUpsample, bilinear_kernel

HAS_TORCH = importlib.util.find_spec("torch") is not None
WIDTH, CLASSES, SIZE = 4, 3, (37, 53)  # VGG16 with 4 conv1 channels: 0.5 M parameters
V1_CONV, V1_DECONV = 4, 39  # V1LayerParameter.LayerType


def _model(name="fcn8s_vgg16", seed=0, **options):
    paddle.seed(seed)
    options = {"geometry": "caffe", "learnable_skip_upsample": False, "width": WIDTH, **options}
    model = build_model(name, CLASSES, **options)
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():  # score layers start at 0: make them random,
        if key.startswith("score"):  # zero-mean over the (ReLU, positive) inputs of each class
            random = rng.normal(0, 1.0, value.shape)
            if random.ndim == 4:
                random -= random.mean(axis=1, keepdims=True)
            value.set_value(random.astype("float32"))
    return model.eval()


def _reference_layers(model):
    """{reference layer name: [weight, bias?]} of ``model``, frozen upsamplers as the
    [C, C, k, k] bilinear diagonal the reference files store."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    layers = {}
    for name in trunk_layer_names():
        layers[name] = [state[f"backbone.{name}.weight"], state[f"backbone.{name}.bias"]]
    for name in ("score_fr", "score_pool4", "score_pool3"):
        if f"{name}.weight" in state:
            layers[name] = [state[f"{name}.weight"], state[f"{name}.bias"]]
    for name, layer in model.named_children():
        if isinstance(layer, BilinearUpsample):
            kernel = np.zeros((CLASSES, CLASSES, layer.kernel_size, layer.kernel_size), "float32")
            kernel[np.arange(CLASSES), np.arange(CLASSES)] = bilinear_kernel(layer.kernel_size)
            layers[name] = [state.get(f"{name}.up.weight", kernel)]
    return layers


def _write_caffemodel(layers, path, v1=False, legacy_shape=False, double=()):
    """A .caffemodel of ``layers``: V2 ``layer`` or V1 ``layers``; blob shapes as ``shape`` or
    the legacy num/channels/height/width; the layers named in ``double`` in ``double_data``."""
    net = caffe_messages()["NetParameter"](name="test-net")
    for name, blobs in layers.items():
        if v1:
            layer = net.layers.add(name=name, type=V1_DECONV if "upscore" in name else V1_CONV)
        else:
            layer = net.layer.add(name=name,
                                  type="Deconvolution" if "upscore" in name else "Convolution")
        for blob in blobs:
            proto = layer.blobs.add()
            if legacy_shape:  # num / channels / height / width, a bias as 1 x 1 x 1 x N
                dims = (1,) * (4 - blob.ndim) + blob.shape
                proto.num, proto.channels, proto.height, proto.width = dims
            else:
                proto.shape.dim.extend(blob.shape)
            (proto.double_data if name in double else proto.data).extend(blob.ravel())
        if not v1:
            net.layer.add(name=name + "_relu", type="ReLU")  # no blobs: skipped
    with open(path, "wb") as f:
        f.write(net.SerializeToString())
    return path


def _logits(model, seed=1):
    x = paddle.to_tensor(np.random.default_rng(seed).normal(0, 50, (1, 3) + SIZE)
                         .astype("float32"))
    with paddle.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("v1", [False, True], ids=["V2-layer", "V1-layers"])
def test_caffemodel_round_trip_gives_the_same_logits(tmp_path, v1):
    src = _model(seed=0)
    path = _write_caffemodel(_reference_layers(src), tmp_path / "fcn8s.caffemodel", v1=v1,
                             legacy_shape=v1, double=("conv1_1", "upscore8") if v1 else ())
    dst = _model(seed=5)
    assert dst.normalization == IMAGENET
    report = load_model_weights(dst, path)
    np.testing.assert_allclose(_logits(dst), _logits(src), rtol=1e-5, atol=1e-5)
    assert dst.normalization == CAFFE == report.normalization
    assert len(report.loaded) == len(dst.state_dict())


def test_learnable_upsampler_takes_a_non_diagonal_kernel_as_is(tmp_path):
    src = _model("fcn16s_vgg16", learnable_skip_upsample=True)
    weight = np.random.default_rng(3).normal(0, 1, src.upscore2.up.weight.shape)
    src.upscore2.up.weight.set_value(weight.astype("float32"))  # mixes classes: no transpose
    path = _write_caffemodel(_reference_layers(src), tmp_path / "fcn16s.caffemodel")
    dst = _model("fcn16s_vgg16", seed=9, learnable_skip_upsample=True)
    load_model_weights(dst, path)
    np.testing.assert_array_equal(dst.upscore2.up.weight.numpy(), weight.astype("float32"))
    np.testing.assert_allclose(_logits(dst), _logits(src), rtol=1e-5, atol=1e-5)
    frozen = _model("fcn16s_vgg16", seed=9)  # the same file into a fixed upscore2: refused
    with pytest.raises(WeightsError, match="layer 'upscore2' is not the fixed bilinear kernel"):
        load_model_weights(frozen, path)


def test_missing_or_misshaped_blob_names_the_layer_and_loads_nothing(tmp_path):
    layers = _reference_layers(_model())
    missing = dict(layers)
    del missing["score_pool3"]
    dst = _model(seed=5)
    before = _logits(dst)
    with pytest.raises(WeightsError, match="has no layer 'score_pool3'"):
        load_model_weights(dst, _write_caffemodel(missing, tmp_path / "a.caffemodel"))
    wrong = dict(layers, conv3_2=[layers["conv3_2"][0][:, :-1], layers["conv3_2"][1]])
    with pytest.raises(WeightsError, match=r"layer 'conv3_2' weight has shape \[16, 15, 3, 3\]"):
        load_model_weights(dst, _write_caffemodel(wrong, tmp_path / "b.caffemodel"))
    np.testing.assert_array_equal(_logits(dst), before)
    assert dst.normalization == IMAGENET


def test_variant_classes_geometry_and_non_caffemodel_are_named(tmp_path):
    path = _write_caffemodel(_reference_layers(_model()), tmp_path / "fcn8s.caffemodel")
    with pytest.raises(WeightsError, match="score_pool3, score_pool4, upscore2, upscore8, "
                                           "upscore_pool4 that FCN-32s does not have and lacks "
                                           "upscore"):
        load_model_weights(_model("fcn32s_vgg16"), path)
    with pytest.raises(WeightsError, match="100-pixel input padding.*geometry: caffe"):
        load_model_weights(_model(geometry="aligned"), path)
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
    src = _model("fcn8s_atonce_vgg16")
    assert src.skip_scales == (0.01, 0.0001)
    layers = _reference_layers(src)
    scales = {"scale_pool4": [np.full(4 * WIDTH * 2, 0.01, "float32")],
              "scale_pool3": [np.full(4 * WIDTH, 1e-4, "float32")]}
    path = _write_caffemodel({**layers, **scales}, tmp_path / "fcn8s-atonce.caffemodel")
    dst = _model("fcn8s_atonce_vgg16", seed=4)
    load_model_weights(dst, path)
    np.testing.assert_allclose(_logits(dst), _logits(src), rtol=1e-5, atol=1e-5)
    plain = _model(seed=4)  # the same weights without the scales score differently
    with pytest.raises(WeightsError, match="at-once net.*fcn8s_atonce_vgg16"):
        load_model_weights(plain, path)
    bad = {**layers, **scales, "scale_pool3": [np.full(4 * WIDTH, 1.0, "float32")]}
    with pytest.raises(WeightsError, match="'scale_pool3' is not the fixed scale 0.0001"):
        load_model_weights(dst, _write_caffemodel(bad, tmp_path / "bad.caffemodel"))


def test_caffe_imagenet_vgg16_loads_as_pretrained_with_fc_reshaped(tmp_path):
    src = _model()
    layers = {n: blobs for n, blobs in _reference_layers(src).items()
              if n in trunk_layer_names()}
    for name in ("fc6", "fc7"):  # InnerProduct [out, in], as in VGG_ILSVRC_16_layers
        weight, bias = layers[name]
        layers[name] = [weight.reshape(weight.shape[0], -1), bias]
    layers["fc8"] = [np.ones((10, 64 * WIDTH), "float32"), np.ones(10, "float32")]
    path = _write_caffemodel(layers, tmp_path / "VGG_ILSVRC_16_layers.caffemodel", v1=True,
                             legacy_shape=True)
    model = _model(pretrained=str(path))
    assert model.normalization == CAFFE
    for key, value in src.backbone.state_dict().items():
        np.testing.assert_array_equal(model.backbone.state_dict()[key].numpy(), value.numpy())


@pytest.mark.skipif(not HAS_TORCH, reason="reading pytorch-fcn .pth files needs torch "
                                          "(pip install torch); not a requirement")
def test_pytorch_fcn_state_dict_round_trips(tmp_path):
    import torch

    src = _model("fcn16s_vgg16")
    state = {f"{name}.{kind}": torch.from_numpy(np.ascontiguousarray(blob))
             for name, blobs in _reference_layers(src).items()
             for kind, blob in zip(("weight", "bias"), blobs)}
    assert "conv1_1.weight" in state and "upscore16.weight" in state  # pytorch-fcn's names
    path = tmp_path / "fcn16s_from_caffe.pth"
    torch.save(state, path)
    dst = _model("fcn16s_vgg16", seed=7)
    load_model_weights(dst, path)
    np.testing.assert_allclose(_logits(dst), _logits(src), rtol=1e-5, atol=1e-5)
    assert dst.normalization == CAFFE
    # a checkpoint of pytorch-fcn's trainer wraps the state dict
    torch.save({"epoch": 3, "iteration": 100, "model_state_dict": state}, tmp_path / "ck.pth")
    again = _model("fcn16s_vgg16", seed=8)
    load_model_weights(again, tmp_path / "ck.pth")
    np.testing.assert_array_equal(_logits(again), _logits(dst))


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
        load_model_weights(_model(), tmp_path / "fcn8s_from_caffe.pth")


# ----------------------------------------------------------------------------- preprocessing
def _balance(model, images):
    """Shift FCN-8s's class scores (score_pool3's bias) so that their means over the RGB
    ``images`` (Caffe preprocessing) are equal and every class occurs; returns the argmax maps."""
    xs = [paddle.to_tensor(normalize_image(image, CAFFE)[None]) for image in images]
    with paddle.no_grad():
        mean = np.mean([model(x).numpy()[0].mean(axis=(1, 2)) for x in xs], axis=0)
        model.score_pool3.bias.set_value(model.score_pool3.bias.numpy() - mean)
        return [model(x).numpy()[0].argmax(0) for x in xs]


def _config(tmp_path, **model):
    import yaml

    config = {"model": {"type": "fcn32s_vgg16", "num_classes": CLASSES, "geometry": "caffe",
                        "width": WIDTH, **model},
              "train_dataset": {"type": "SyntheticVOC", "dataset_root": str(tmp_path / "syn"),
                                "num_classes": CLASSES}}
    path = tmp_path / "ref.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_caffe_preprocessing_travels_to_deploy_yml_and_predict(tmp_path, capsys):
    from paddle_fcn.data.io import read_label, write_image
    from paddle_fcn.inference.cli import export_main, predict_main
    from paddle_fcn.inference.export import read_deploy_info

    src = _model()
    image = np.random.default_rng(2).integers(0, 256, SIZE + (3,), dtype=np.uint8)
    bgr = image[..., ::-1].astype(np.float32) - np.float32(CAFFE["mean"])  # by hand
    want = _balance(src, [image])[0]
    assert len(np.unique(want)) == CLASSES  # not a trivial comparison
    weights = _write_caffemodel(_reference_layers(src), tmp_path / "fcn8s-heavy.caffemodel")
    exported = str(tmp_path / "export")
    config = _config(tmp_path, type="fcn8s_vgg16", learnable_skip_upsample=False)
    assert export_main(["--config", config, "--model_path", str(weights),
                        "--save_dir", exported]) == 0
    info = read_deploy_info(exported)
    assert info["normalization"] == CAFFE
    write_image(str(tmp_path / "im.png"), image)
    assert predict_main(["--model_path", exported, "--image_path", str(tmp_path / "im.png"),
                         "--save_dir", str(tmp_path / "out"), "--no_progress"]) == 0
    got = read_label(str(tmp_path / "out" / "pseudo_color_prediction" / "im.png"))
    np.testing.assert_array_equal(got, want)
    # an explicit config value that contradicts the weights' origin is an error
    config = _config(tmp_path, type="fcn8s_vgg16", learnable_skip_upsample=False,
                     normalization="imagenet")
    assert export_main(["--config", config, "--model_path", str(weights),
                        "--save_dir", str(tmp_path / "e2")]) == 2
    err = capsys.readouterr().err
    assert "model.normalization: the config says imagenet but the weights" in err
    assert "trained with caffe input normalization" in err


def test_checkpoints_store_the_normalization_and_training_uses_it(tmp_path):
    from paddle_fcn.config import ConfigError, load_config
    from paddle_fcn.engine.trainer import build_model_from_config
    from paddle_fcn.models.origin import NORMALIZATION_KEY, model_state_dict

    src = _model("fcn32s_vgg16")
    weights = _write_caffemodel(_reference_layers(src), tmp_path / "fcn32s.caffemodel")
    load_model_weights(src, weights)
    paddle.save(model_state_dict(src), str(tmp_path / "model.pdparams"))
    stored = paddle.load(str(tmp_path / "model.pdparams"))[NORMALIZATION_KEY].numpy()
    np.testing.assert_array_equal(stored, [*CAFFE["mean"], 1, 1, 1, 1, 1])  # 1 = BGR
    again = _model("fcn32s_vgg16", seed=3)
    load_model_weights(again, tmp_path / "model.pdparams")
    assert again.normalization == CAFFE
    np.testing.assert_array_equal(_logits(again), _logits(src))
    # staged: FCN-16s from that FCN-32s feeds its data the FCN-32s's way
    cfg = load_config(_config(tmp_path, type="fcn16s_vgg16",
                              init_from=str(tmp_path / "model.pdparams")))
    assert build_model_from_config(cfg, CLASSES).normalization == CAFFE
    # random weights: the config's value is applied; with weights it must agree
    cfg = load_config(_config(tmp_path, normalization="caffe"))
    assert build_model_from_config(cfg, CLASSES).normalization == CAFFE
    cfg = load_config(_config(tmp_path, normalization="imagenet",
                              init_from=str(tmp_path / "model.pdparams")))
    with pytest.raises(ConfigError, match="says imagenet but the weights .*model.pdparams"):
        build_model_from_config(cfg, CLASSES)


def test_eval_tool_scores_a_caffemodel_with_caffe_preprocessing(tmp_path):
    import json

    from paddle_fcn.cli import eval_main
    from paddle_fcn.data import build_dataset
    from paddle_fcn.data.io import write_image, write_label
    from paddle_fcn.engine.evaluate import evaluate

    rng = np.random.default_rng(4)
    root, src = tmp_path / "VOC2012", _model()
    images = [rng.integers(0, 256, SIZE + (3,), dtype=np.uint8) for _ in range(2)]
    for name, image, pred in zip("ab", images, _balance(src, images)):
        assert len(np.unique(pred)) == CLASSES
        write_image(str(root / "JPEGImages" / f"{name}.png"), image)  # lossless
        label = np.where(rng.random(SIZE) < 0.7, pred, rng.integers(0, CLASSES, SIZE))
        write_label(str(root / "SegmentationClass" / f"{name}.png"), label.astype(np.uint8))
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(
        "JPEGImages/a.png SegmentationClass/a.png\nJPEGImages/b.png SegmentationClass/b.png\n")
    weights = _write_caffemodel(_reference_layers(src), tmp_path / "fcn8s-heavy.caffemodel")
    config = _config(tmp_path, type="fcn8s_vgg16", learnable_skip_upsample=False)
    opts = ["val_dataset.type=PascalVOC", f"val_dataset.dataset_root={root}",
            "val_dataset.mode=val", f"val_dataset.num_classes={CLASSES}"]
    assert eval_main(["--config", config, "--model_path", str(weights), "--opts", *opts]) == 0
    got = json.loads((tmp_path / "eval_metrics.json").read_text())
    val = build_dataset({"type": "PascalVOC", "dataset_root": str(root), "mode": "val",
                         "num_classes": CLASSES}, CAFFE, CLASSES)
    want = evaluate(src, val, CLASSES, progress=False).metrics
    assert got["mIoU"] == pytest.approx(want.mIoU, abs=1e-12) and 0.5 < want.mIoU < 1
    imagenet = build_dataset({"type": "PascalVOC", "dataset_root": str(root), "mode": "val",
                              "num_classes": CLASSES}, IMAGENET, CLASSES)
    assert evaluate(src, imagenet, CLASSES, progress=False).metrics.mIoU != want.mIoU


def test_origin_of_a_weights_file_decides_its_normalization(tmp_path):
    from paddle_fcn.models.origin import NORMALIZATION_KEY, origin_normalization

    assert origin_normalization("x/VGG_ILSVRC_16_layers.caffemodel") == CAFFE
    assert origin_normalization("x/vgg16_from_caffe.pth") == CAFFE  # pytorch-fcn's, by name
    assert origin_normalization("x/vgg16-397923af.pth") == IMAGENET  # torchvision's
    assert origin_normalization("x/model.pdparams") == IMAGENET  # earlier versions' files
    stored = np.array([1, 2, 3, 4, 5, 6, 255, 0], np.float64)
    assert origin_normalization("x/model.pdparams", stored) == {
        "mean": (1.0, 2.0, 3.0), "std": (4.0, 5.0, 6.0), "scale": 255.0, "channel_order": "RGB"}
    with pytest.raises(WeightsError, match=f"m.pdparams: {NORMALIZATION_KEY} is not a norm"):
        origin_normalization("m.pdparams", np.array([1, 2, 3], np.float64))


def test_staged_training_starts_from_the_reference_fcn32s_file(tmp_path):
    from paddle_fcn.models.staged import transfer_weights

    src = _model("fcn32s_vgg16")
    path = _write_caffemodel(_reference_layers(src), tmp_path / "fcn32s-heavy-pascal.caffemodel")
    target = _model("fcn16s_vgg16", seed=8)
    report = transfer_weights(str(path), target)
    assert target.normalization == CAFFE
    assert report.unused == ["upscore.up.weight"]  # FCN-16s has no x32 upsampler
    for key, value in src.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key].numpy(), value.numpy())
