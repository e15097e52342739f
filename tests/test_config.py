"""Tests for paddle_fcn.config: typed YAML, --opts, validation messages, save/load round trip.

Configs load as the commands load them (``cli.load_experiment``: with the models' and data
sets' own checks), so the model-option tests use ``paddle_fcn.models.model_options`` for real
(the VGG builders' documented options: pretrained, learnable_upsample, geometry, dropout;
U-Net: no pretrained).
"""
import os
import textwrap

import pytest

from paddle_fcn.config import (
    Config, ConfigError, DatasetConfig, LRSchedulerConfig, ModelConfig, OptimizerConfig,
    TestConfig, apply_opts, config_to_dict, resolve_num_classes, save_config,
)
from paddle_fcn.cli import load_experiment

FULL = """
model:
  type: fcn8s_vgg16
  pretrained: weights/vgg16_imagenet.pdparams
  geometry: caffe
  learnable_upsample: true
  dropout: 0
train_dataset:
  type: SyntheticVOC
  dataset_root: data/synthetic
  mode: train
  num_classes: 5
  class_names: [background, disc, square, triangle, ring]
  transforms:
    - {type: RandomHorizontalFlip, prob: 0.5}
    - {type: RandomCrop, crop_size: [48, 48]}
  synthetic: {seed: 3, num_train: 12, num_val: 4, min_size: 40, max_size: 64}
val_dataset:
  type: SyntheticVOC
  dataset_root: data/synthetic
  mode: val
optimizer: {momentum: 0.99, weight_decay: 1e-4, bias_lr_mult: 2, bias_decay: false}
lr_scheduler: {type: step, learning_rate: 1, milestones: [100, 150], gamma: 0.5, warmup_iters: 10}
loss: {reduction: sum, class_weights: [1, 1, 2, 2, 2]}
test_config: {is_slide: true, crop_size: [64, 48], stride: [32, 24], scales: [0.75, 1]}
export: {output_op: argmax}
batch_size: 2
iters: 200
accumulate_steps: 4
save_interval: 50
seed: 7
device: cpu
"""

MINIMAL = """
model: {type: fcn32s_vgg16}
train_dataset: {type: PascalVOC, dataset_root: /data/VOC2012, num_classes: 21}
"""


def _write(tmp_path, text, name="exp.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _error(tmp_path, text, opts=()):
    with pytest.raises(ConfigError) as info:
        load_experiment(_write(tmp_path, text), opts)
    return str(info.value)


def test_full_yaml_loads_typed_values(tmp_path):
    cfg = load_experiment(_write(tmp_path, FULL))
    assert cfg.model == ModelConfig(
        type="fcn8s_vgg16", num_classes=5, pretrained="weights/vgg16_imagenet.pdparams",
        options={"geometry": "caffe", "learnable_upsample": True, "dropout": 0.0})
    assert isinstance(cfg.model.options["dropout"], float)  # int accepted for a float default
    assert cfg.train_dataset.transforms[1] == {"type": "RandomCrop", "crop_size": [48, 48]}
    assert cfg.train_dataset.synthetic.num_train == 12 and cfg.val_dataset.mode == "val"
    assert cfg.optimizer.weight_decay == 1e-4 and isinstance(cfg.optimizer.weight_decay, float)
    assert cfg.optimizer.bias_lr_mult == 2.0 and cfg.optimizer.bias_decay is False
    assert cfg.lr_scheduler.learning_rate == 1.0
    assert isinstance(cfg.lr_scheduler.learning_rate, float)
    assert cfg.lr_scheduler.milestones == [100, 150]
    assert cfg.loss.class_weights == [1.0, 1.0, 2.0, 2.0, 2.0]
    assert cfg.test_config.scales == [0.75, 1.0]
    assert (cfg.batch_size, cfg.iters, cfg.accumulate_steps, cfg.seed) == (2, 200, 4, 7)
    assert cfg.eval_interval == 50  # None -> save_interval
    assert cfg.export.output_op == "argmax" and cfg.device == "cpu"


def test_defaults(tmp_path):
    cfg = load_experiment(_write(tmp_path, MINIMAL))
    assert cfg.model.num_classes == 21  # from train_dataset.num_classes
    assert cfg.optimizer == OptimizerConfig() and cfg.lr_scheduler == LRSchedulerConfig()
    assert cfg.test_config == TestConfig() and cfg.val_dataset is None
    assert (cfg.batch_size, cfg.iters, cfg.save_interval, cfg.eval_interval) == (8, 1000, 500, 500)
    assert (cfg.optimizer.momentum, cfg.optimizer.weight_decay, cfg.lr_scheduler.type) == \
        (0.9, 5e-4, "poly")
    assert cfg.train_dataset.ignore_index == 255 and cfg.train_dataset.mode == "train"
    assert cfg.device == "auto" and cfg.export.output_op == "none"


def test_unknown_keys_suggest_the_closest(tmp_path):
    path = _write(tmp_path, MINIMAL + "optimzer: {momentum: 0.8}\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == \
        f"{path}: unknown key 'optimzer' at top level; did you mean 'optimizer'?"
    msg = _error(tmp_path, MINIMAL + "optimizer: {momentun: 0.8}\n")
    assert msg.endswith("unknown key 'optimizer.momentun'; did you mean 'optimizer.momentum'?")
    msg = _error(tmp_path, MINIMAL, ["optimzer.momentum=0.8"])
    assert msg == "--opts: unknown key 'optimzer' at top level; did you mean 'optimizer'?"
    msg = _error(tmp_path, MINIMAL, ["train_dataset.dataset_rot=/x"])
    assert msg.startswith("--opts") and "did you mean 'train_dataset.dataset_root'?" in msg


def test_wrong_types_name_file_key_and_value(tmp_path):
    path = _write(tmp_path, MINIMAL + "lr_scheduler: {learning_rate: abc}\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert str(info.value) == f"{path}: lr_scheduler.learning_rate: expected float, got str 'abc'"
    assert "batch_size: expected int, got bool True" in \
        _error(tmp_path, MINIMAL + "batch_size: true")
    assert "iters: expected int, got float 1000.5" in _error(tmp_path, MINIMAL + "iters: 1000.5")
    assert "test_config.scales[1]: expected float, got str 'x'" in \
        _error(tmp_path, MINIMAL + "test_config: {scales: [1.0, x]}")
    assert "test_config.crop_size: expected list of int or null, got int 64" in \
        _error(tmp_path, MINIMAL + "test_config: {crop_size: 64}")
    assert "optimizer: expected mapping, got null" in _error(tmp_path, MINIMAL + "optimizer:")
    msg = _error(tmp_path, MINIMAL, ["lr_scheduler.learning_rate=abc"])
    assert msg == "--opts: lr_scheduler.learning_rate: expected float, got str 'abc'"
    assert "not key=value" in _error(tmp_path, MINIMAL, ["iters"])


def test_enumerations_and_ranges(tmp_path):
    msg = _error(tmp_path, MINIMAL + "lr_scheduler: {type: cosine}")
    assert "lr_scheduler.type: expected one of constant, poly, step; got 'cosine'" in msg
    assert "device: expected one of auto, cpu, gpu; got 'cuda'" in \
        _error(tmp_path, MINIMAL + "device: cuda")
    assert "loss.reduction" in _error(tmp_path, MINIMAL + "loss: {reduction: avg}")
    assert "export.output_op" in _error(tmp_path, MINIMAL + "export: {output_op: argmx}")
    msg = _error(tmp_path, MINIMAL.replace("PascalVOC", "PascalVoc"))
    assert "train_dataset.type: expected one of SyntheticVOC, PascalVOC, ListDataset" in msg
    msg = _error(tmp_path, MINIMAL, ["train_dataset.type=SyntheticVOC", "train_dataset.mode=aug"])
    assert msg.startswith("--opts: train_dataset.mode: expected one of train, val")
    msg = _error(tmp_path, MINIMAL,
                 ["train_dataset.type=SyntheticVOC", "train_dataset.mode=trainaug"])
    assert msg.startswith("--opts: train_dataset.mode: trainaug needs synthetic.preset: voc")
    msg = _error(tmp_path, MINIMAL, ["train_dataset.type=SyntheticVOC",
                                     "train_dataset.synthetic.preset=photo"])
    assert "train_dataset.synthetic.preset: expected one of shapes, voc" in msg
    assert "train_dataset.file_list" in _error(tmp_path, MINIMAL, ["train_dataset.type=ListDataset"])
    assert "test_config.is_slide" in _error(tmp_path, MINIMAL + "test_config: {is_slide: true}")
    msg = _error(tmp_path, MINIMAL + "test_config: {is_slide: true, crop_size: [32, 32], "
                 "stride: [48, 16]}")
    assert "test_config.stride" in msg and "unscored" in msg
    assert "test_config.crop_size" in _error(tmp_path, MINIMAL + "test_config: {crop_size: [32]}")
    assert "iters: must be a positive int, got 0" in _error(tmp_path, MINIMAL + "iters: 0")
    assert "cpu_threads: must be a positive int, got 0" in \
        _error(tmp_path, MINIMAL + "cpu_threads: 0")
    assert "cpu_threads" in _error(tmp_path, MINIMAL, ["cpu_threads=two"])
    assert "accumulate_steps" in _error(tmp_path, MINIMAL + "accumulate_steps: -1")
    assert "lr_scheduler.milestones" in _error(tmp_path, MINIMAL + "lr_scheduler: {type: step}")
    assert "loss.ignore_index" in _error(tmp_path, MINIMAL + "loss: {ignore_index: 0}")


def test_base_inheritance_rejected(tmp_path):
    msg = _error(tmp_path, "_base_: ../base.yml\n" + MINIMAL)
    assert "_base_" in msg and "one YAML = one complete experiment" in msg
    assert "one complete experiment" in _error(tmp_path, MINIMAL, ["_base_=x.yml"])


def test_file_level_errors(tmp_path):
    assert "train_dataset.dataset_root: missing required key" in \
        _error(tmp_path, "model: {type: unet}\ntrain_dataset: {type: PascalVOC}\n")
    assert "duplicate key 'iters'" in _error(tmp_path, MINIMAL + "iters: 5\niters: 6\n")
    assert "expected a mapping" in _error(tmp_path, "")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_experiment(str(tmp_path / "missing.yml"))


def test_opts_override_and_derive_after(tmp_path):
    cfg = load_experiment(_write(tmp_path, MINIMAL), [
        "train_dataset.dataset_root=/data/VOCdevkit/VOC2012", "lr_scheduler.learning_rate=3e-2",
        "model.geometry=caffe", "save_interval=100", "val_dataset={type: PascalVOC, "
        "dataset_root: /v, mode: val}", "test_config.crop_size=[64, 32]"])
    assert cfg.train_dataset.dataset_root == "/data/VOCdevkit/VOC2012"
    assert cfg.lr_scheduler.learning_rate == 0.03
    assert cfg.model.options == {"geometry": "caffe"}
    assert cfg.eval_interval == 100  # derived after the override, not from the file's 500
    assert cfg.val_dataset == DatasetConfig(type="PascalVOC", dataset_root="/v", mode="val")
    assert cfg.test_config.crop_size == [64, 32]
    cfg2 = apply_opts(cfg, ["optimizer.momentum=0.5",
                            "train_dataset.transforms=[{type: RandomHorizontalFlip}]"])
    assert cfg2.optimizer.momentum == 0.5 and cfg.optimizer.momentum == 0.9  # cfg untouched
    assert cfg2.train_dataset.transforms == [{"type": "RandomHorizontalFlip"}]


def test_save_load_round_trip(tmp_path):
    cfg = load_experiment(_write(tmp_path, FULL), ["model.geometry=aligned", "iters=300"])
    out = tmp_path / "run" / "config.yml"
    save_config(cfg, str(out))
    assert os.listdir(out.parent) == ["config.yml"]  # temp file replaced, none left behind
    again = load_experiment(str(out))
    assert again == cfg and isinstance(again, Config)
    assert config_to_dict(again)["model"]["geometry"] == "aligned"  # options back under model:
    assert "options" not in config_to_dict(again)["model"]


def test_model_option_validation(tmp_path):
    msg = _error(tmp_path, MINIMAL + "", ["model.geometri=caffe"])
    assert msg.startswith("--opts: model.geometri: unknown option for model 'fcn32s_vgg16'")
    assert "did you mean 'geometry'?" in msg and "learnable_upsample" in msg
    msg = _error(tmp_path, MINIMAL.replace("{type: fcn32s_vgg16}",
                                           "{type: fcn32s_vgg16, learnable_upsample: 'yes'}"))
    assert "model.learnable_upsample: expected bool like the default False, got str 'yes'" in msg
    msg = _error(tmp_path, MINIMAL.replace("fcn32s_vgg16", "fcn64s_vgg16"))
    assert "model.type: unknown model 'fcn64s_vgg16'" in msg and "fcn32s_vgg16" in msg
    msg = _error(tmp_path, MINIMAL, ["model.type=unet", "model.pretrained=w.pdparams"])
    assert "model.pretrained: model 'unet' takes no pretrained backbone weights" in msg
    assert "model.options" in _error(tmp_path, MINIMAL, ["model.options={width: 8}"])


def test_transform_validation(tmp_path):
    bad = FULL.replace("crop_size: [48, 48]", "crop_sise: [48, 48]")
    msg = _error(tmp_path, bad)
    assert "train_dataset.transforms[1].crop_sise: unknown argument for RandomCrop" in msg
    assert "did you mean 'crop_size'?" in msg
    msg = _error(tmp_path, FULL.replace("RandomHorizontalFlip", "RandomFlip"))
    assert "train_dataset.transforms[0].type: unknown transform type 'RandomFlip'" in msg
    msg = _error(tmp_path, FULL.replace("{type: RandomCrop, crop_size: [48, 48]}",
                                        "{type: RandomCrop}"))
    assert "train_dataset.transforms[1]: RandomCrop needs crop_size" in msg
    msg = _error(tmp_path, FULL, ["train_dataset.transforms.1.crop_size=[48, 48]",
                                  "train_dataset.transforms.1.sdt=1"])
    assert msg.startswith("--opts: train_dataset.transforms[1].sdt")


def test_explicit_normalize_is_refused_anywhere(tmp_path):
    """The model's normalization is the one source for training, eval, export and predict:
    a Normalize in the YAML (first or last) is an error naming its key."""
    for index in (0, 1):
        msg = _error(tmp_path, FULL, [f"train_dataset.transforms.{index}={{type: Normalize, "
                                      f"mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}}"])
        assert f"train_dataset.transforms[{index}]: remove this Normalize" in msg
        assert "appended automatically from the model's normalization" in msg
        assert "it comes with the weights" in msg
    msg = _error(tmp_path, FULL, ["val_dataset.transforms=[{type: Normalize}]"])
    assert "val_dataset.transforms[0]: remove this Normalize" in msg


def test_num_classes_resolution(tmp_path):
    msg = _error(tmp_path, MINIMAL, ["model.num_classes=20"])
    assert "train_dataset.num_classes: 21 disagrees with model.num_classes = 20" in msg
    msg = _error(tmp_path, MINIMAL,
                 ["val_dataset={type: PascalVOC, dataset_root: /v, num_classes: 2}"])
    assert "val_dataset.num_classes: 2 disagrees with train_dataset.num_classes = 21" in msg
    assert "loss.class_weights: has 2 weights for num_classes = 21" in \
        _error(tmp_path, MINIMAL + "loss: {class_weights: [1, 2]}")

    cfg = load_experiment(_write(tmp_path, MINIMAL), ["train_dataset.num_classes=null"])
    assert cfg.model.num_classes is None  # the engine fills it from the dataset
    with pytest.raises(ConfigError, match="set model.num_classes"):
        resolve_num_classes(cfg, None)
    assert resolve_num_classes(cfg, 21) == 21 and cfg.model.num_classes == 21
    with pytest.raises(ConfigError) as info:
        resolve_num_classes(cfg, 5)
    assert "config says 21" in str(info.value) and "has 5 classes" in str(info.value)
    assert "PascalVOC at /data/VOC2012" in str(info.value)
