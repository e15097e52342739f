"""What a config may contain: the typed dataclasses (PaddleSeg key names) and the plain dicts of
allowed values (``CHOICES``) and single-value rules (``RULES``).

Pure data: nothing here reads files or raises. ``CHOICES`` is the one list of each enumerated
value: the command-line flags and the inference modules take theirs from it. ``load`` builds
these dataclasses from YAML and ``validate`` applies the dicts to them.
"""
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from paddle_fcn.device import DEVICES

__all__ = [
    "Config", "ModelConfig", "DatasetConfig", "SyntheticConfig", "OptimizerConfig",
    "LRSchedulerConfig", "LossConfig", "TestConfig", "ExportConfig", "CHOICES",
    "DATASET_OPTION_KEYS", "MODEL_FIELDS", "RULES",
]


@dataclass
class SyntheticConfig:
    """Procedural VOC-like data (type SyntheticVOC): image counts and side range in pixels.
    ``preset: voc`` makes VOC-size photos with the 21 VOC classes and the trainaug layout
    (the side range does not apply)."""
    preset: str = "shapes"              # shapes | voc
    seed: int = 0
    num_train: int = 300
    num_val: int = 60
    min_size: int = 80
    max_size: int = 120


@dataclass
class DatasetConfig:
    type: str                           # a key of paddle_fcn.data.DATASETS
    dataset_root: str
    mode: str = "train"                 # per type: its MODES (PascalVOC: ... seg11valid)
    file_list: Optional[str] = None     # type ListDataset: lines "image label"
    num_classes: Optional[int] = None
    class_names: Optional[List[str]] = None
    ignore_index: int = 255             # VOC void/boundary label
    transforms: List[Dict[str, Any]] = field(default_factory=list)  # [{type: RandomCrop, ...}]
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    reduce_zero_label: bool = False     # PascalContext: ignore background (59 classes, MMSeg)
    head: Optional[str] = None          # SIFTFlow: semantic (default) | geometric | both
    modality: Optional[str] = None      # NYUDv2: rgb (default) | hha | rgb_hha
    hha_dir: Optional[str] = None       # NYUDv2: HHA folder (relative to dataset_root)


@dataclass
class ModelConfig:
    """``type`` names a builder in ``paddle_fcn.models.MODELS``; every other YAML key under
    ``model:`` is a builder option and lands in ``options`` (e.g. ``geometry: caffe``)."""
    type: str
    num_classes: Optional[int] = None   # None -> train_dataset.num_classes (or the dataset)
    pretrained: Optional[str] = None    # ImageNet backbone weights file
    init_from: Optional[str] = None     # staged training: trained FCN-32s/16s model.pdparams
    # None: the weights' own (imagenet, caffe); a name or {mean, std, scale, channel_order}
    normalization: Optional[Any] = None
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    type: str = "sgd"                   # SGD with momentum (paper section 4.3)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    bias_lr_mult: float = 1.0           # reference FCN: 2.0
    bias_decay: bool = True             # reference FCN: false
    backbone_lr_mult: float = 1.0
    grad_clip_norm: Optional[float] = None


@dataclass
class LRSchedulerConfig:
    type: str = "poly"                  # constant | poly | step (per iteration)
    learning_rate: float = 0.01
    power: float = 0.9                  # poly
    end_lr: float = 0.0                 # poly
    milestones: List[int] = field(default_factory=list)  # step: iterations
    gamma: float = 0.1                  # step
    warmup_iters: int = 0               # linear warmup from warmup_start_lr
    warmup_start_lr: float = 0.0


@dataclass
class LossConfig:
    type: str = "cross_entropy"         # per-pixel softmax cross-entropy
    ignore_index: int = 255
    reduction: str = "mean"             # mean | sum (over non-ignored pixels)
    class_weights: Optional[List[float]] = None


@dataclass
class TestConfig:
    __test__ = False  # not a pytest test class despite the name
    is_slide: bool = False              # sliding-window inference
    crop_size: Optional[List[int]] = None   # [w, h] window
    stride: Optional[List[int]] = None      # [w, h] step
    flip_horizontal: bool = False
    scales: List[float] = field(default_factory=lambda: [1.0])


@dataclass
class ExportConfig:
    output_op: str = "none"             # none | argmax | softmax appended to the exported net
    precision: str = "fp32"             # fp32 | bf16 | int8 (inference/precision.py)
    calib_images: int = 200             # int8: training images to calibrate on


@dataclass
class Config:
    model: ModelConfig
    train_dataset: DatasetConfig
    val_dataset: Optional[DatasetConfig] = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_scheduler: LRSchedulerConfig = field(default_factory=LRSchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    test_config: TestConfig = field(default_factory=TestConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    batch_size: int = 8                 # images per forward pass per device
    iters: int = 1000
    accumulate_steps: int = 1           # optimizer step every N forwards: batch x N effective
    save_dir: str = "output"
    save_interval: int = 500            # checkpoint every N iterations
    eval_interval: Optional[int] = None  # None -> save_interval
    keep_checkpoint_max: int = 5
    log_iters: int = 10
    do_eval: bool = True
    use_vdl: bool = True
    seed: int = 0
    device: str = "auto"                # auto | cpu | gpu
    cpu_threads: Optional[int] = None   # CPU kernel threads (None: the physical cores)
    precision: str = "fp32"             # training: fp32 | fp16 | bf16 (engine/amp.py; GPU)
    amp_level: str = "O1"               # fp16/bf16: O1 (listed ops) | O2 (whole net)
    # evaluation during training: eager | predictor (the export, as deployed) | auto
    eval_backend: str = "auto"
    sync_bn: bool = False               # multi-GPU: BatchNorm statistics over all devices' images
    num_workers: int = 2
    data_timeout: float = 300.0         # s a loader worker may take for one sample, then error
    num_vis_samples: int = 3            # sample images logged to VisualDL per evaluation


# Enumerated values (plain dicts; extend here when the engine learns a new kind).
CHOICES = {
    "optimizer.type": ("sgd",),
    "lr_scheduler.type": ("constant", "poly", "step"),
    "loss.type": ("cross_entropy",),
    "loss.reduction": ("mean", "sum"),
    "export.output_op": ("none", "argmax", "softmax"),
    "export.precision": ("fp32", "bf16", "int8"),
    "device": DEVICES,
    "precision": ("fp32", "fp16", "bf16"),
    "amp_level": ("O1", "O2"),
    "eval_backend": ("auto", "eager", "predictor"),
}
# DatasetConfig keys that only some types take (each type's constructor says which):
# everything but the keys every type reads.
DATASET_OPTION_KEYS = tuple(f.name for f in fields(DatasetConfig) if f.name not in (
    "type", "dataset_root", "mode", "num_classes", "class_names", "ignore_index", "transforms"))
# ModelConfig's own keys; every other key under ``model:`` is a builder option.
MODEL_FIELDS = ("type", "num_classes", "pretrained", "init_from", "normalization")


# Single-value tests for RULES.
def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _size_wh(v):
    return len(v) == 2 and all(x > 0 for x in v)


# key -> (test, requirement) on the typed value; unset (None) values are skipped.
# "*_dataset." keys apply to train_dataset and val_dataset.
RULES = {
    **{k: (_positive, "a positive int") for k in (
        "iters", "batch_size", "accumulate_steps", "save_interval", "eval_interval",
        "keep_checkpoint_max", "log_iters", "cpu_threads", "model.num_classes",
        "*_dataset.num_classes",
        "*_dataset.synthetic.num_train", "*_dataset.synthetic.num_val",
        "*_dataset.synthetic.min_size", "*_dataset.synthetic.max_size")},
    **{k: (_non_negative, ">= 0") for k in (
        "num_workers", "num_vis_samples", "seed", "optimizer.weight_decay",
        "optimizer.bias_lr_mult", "optimizer.backbone_lr_mult", "lr_scheduler.end_lr",
        "lr_scheduler.warmup_iters", "lr_scheduler.warmup_start_lr")},
    **{k: (_positive, "> 0") for k in (
        "optimizer.grad_clip_norm", "lr_scheduler.learning_rate", "lr_scheduler.power",
        "data_timeout",
        "lr_scheduler.gamma")},
    "optimizer.momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "loss.class_weights": (lambda v: all(w >= 0 for w in v), "a list of weights >= 0"),
    "test_config.crop_size": (_size_wh, "[w, h] with two positive ints"),
    "test_config.stride": (_size_wh, "[w, h] with two positive ints"),
    "test_config.scales": (lambda v: v and all(s > 0 for s in v), "a non-empty list of scales > 0"),
    "*_dataset.dataset_root": (bool, "a non-empty path"),
    "export.calib_images": (_positive, "a positive int (int8 calibrates on that many images)"),
}

