"""Caffe preprocessing travels with the reference weights: deploy.yml, predict, eval,
checkpoints, staged training and the config's model.normalization."""
import json

import numpy as np
import paddle
import pytest
import yaml
from reference_nets import (CLASSES, SIZE, WIDTH, balance, logits, make_model, reference_layers,
                            write_caffemodel)

from paddle_fcn.cli.evaluate import eval_main
from paddle_fcn.config import ConfigError, load_config
from paddle_fcn.data import build_dataset
from paddle_fcn.data.io import read_label, write_image, write_label
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.models.loading import build_configured_model
from paddle_fcn.cli.deploy import export_main, predict_main
from paddle_fcn.inference.export import read_deploy_info
from paddle_fcn.models.origin import NORMALIZATION_KEY, model_state_dict, origin_normalization
from paddle_fcn.models.staged import transfer_weights
from paddle_fcn.errors import WeightsError
from paddle_fcn.models.weights import load_model_weights
from paddle_fcn.normalization import CAFFE, IMAGENET


def _config(tmp_path, **model):
    config = {"model": {"type": "fcn32s_vgg16", "num_classes": CLASSES, "geometry": "caffe",
                        "width": WIDTH, **model},
              "train_dataset": {"type": "SyntheticVOC", "dataset_root": str(tmp_path / "syn"),
                                "num_classes": CLASSES}}
    path = tmp_path / "ref.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_caffe_preprocessing_travels_to_deploy_yml_and_predict(tmp_path, capsys):
    src = make_model()
    image = np.random.default_rng(2).integers(0, 256, SIZE + (3,), dtype=np.uint8)
    balance(src, [image])
    bgr = image[..., ::-1].astype(np.float32) - np.float32(CAFFE["mean"])  # by hand
    with paddle.no_grad():
        want = src(paddle.to_tensor(bgr.transpose(2, 0, 1)[None].copy())).numpy()[0].argmax(0)
    assert len(np.unique(want)) == CLASSES  # not a trivial comparison
    weights = write_caffemodel(reference_layers(src), tmp_path / "fcn8s-heavy.caffemodel")
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
    src = make_model("fcn32s_vgg16")
    weights = write_caffemodel(reference_layers(src), tmp_path / "fcn32s.caffemodel")
    load_model_weights(src, weights)
    paddle.save(model_state_dict(src), str(tmp_path / "model.pdparams"))
    stored = paddle.load(str(tmp_path / "model.pdparams"))[NORMALIZATION_KEY].numpy()
    np.testing.assert_array_equal(stored, [*CAFFE["mean"], 1, 1, 1, 1, 1])  # 1 = BGR
    again = make_model("fcn32s_vgg16", seed=3)
    load_model_weights(again, tmp_path / "model.pdparams")
    assert again.normalization == CAFFE
    np.testing.assert_array_equal(logits(again), logits(src))
    # staged: FCN-16s from that FCN-32s feeds its data the FCN-32s's way
    cfg = load_config(_config(tmp_path, type="fcn16s_vgg16",
                              init_from=str(tmp_path / "model.pdparams")))
    assert build_configured_model(cfg.model, CLASSES)[0].normalization == CAFFE
    # random weights: the config's value is applied; with weights it must agree
    cfg = load_config(_config(tmp_path, normalization="caffe"))
    assert build_configured_model(cfg.model, CLASSES)[0].normalization == CAFFE
    cfg = load_config(_config(tmp_path, normalization="imagenet",
                              init_from=str(tmp_path / "model.pdparams")))
    with pytest.raises(ConfigError, match="says imagenet but the weights .*model.pdparams"):
        build_configured_model(cfg.model, CLASSES)[0]


def test_eval_tool_scores_a_caffemodel_with_caffe_preprocessing(tmp_path):
    rng = np.random.default_rng(4)
    root, src = tmp_path / "VOC2012", make_model()
    images = [rng.integers(0, 256, SIZE + (3,), dtype=np.uint8) for _ in range(2)]
    for name, image, pred in zip("ab", images, balance(src, images)):
        assert len(np.unique(pred)) == CLASSES
        write_image(str(root / "JPEGImages" / f"{name}.png"), image)  # lossless
        label = np.where(rng.random(SIZE) < 0.7, pred, rng.integers(0, CLASSES, SIZE))
        write_label(str(root / "SegmentationClass" / f"{name}.png"), label.astype(np.uint8))
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text(
        "JPEGImages/a.png SegmentationClass/a.png\nJPEGImages/b.png SegmentationClass/b.png\n")
    weights = write_caffemodel(reference_layers(src), tmp_path / "fcn8s-heavy.caffemodel")
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
    src = make_model("fcn32s_vgg16")
    path = write_caffemodel(reference_layers(src), tmp_path / "fcn32s-heavy-pascal.caffemodel")
    target = make_model("fcn16s_vgg16", seed=8)
    report = transfer_weights(str(path), target)
    assert target.normalization == CAFFE
    assert report.unused == ["upscore.up.weight"]  # FCN-16s has no x32 upsampler
    for key, value in src.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key].numpy(), value.numpy())
