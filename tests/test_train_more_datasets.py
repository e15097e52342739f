"""Each new dataset's shipped config trains 2 iterations on its tiny fixture and evaluates.

The configs run as typed except what cannot exist here or would be slow on 2 CPU cores: no
ImageNet weights, ResNet width 8, small crops / windows, one image per step, no workers."""
import math
import os

import pytest

from fixtures import make_ade20k, make_cityscapes, make_context
from paddle_fcn.config import load_config
from paddle_fcn.engine.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fixture_pascalcontext(root):
    make_context(root, ("2008_000002", "2008_000003"), "train")
    make_context(root, ("2008_000004",), "val")
    return []


def _fixture_cityscapes(root):
    make_cityscapes(root, "train", unofficial=0)
    make_cityscapes(root, "val", unofficial=0)
    return ["train_dataset.transforms.1.crop_size=[32, 16]", "test_config.crop_size=[8, 4]",
            "test_config.stride=[4, 2]"]


def _fixture_ade20k(root):
    make_ade20k(root, "training", "ADE_train")
    make_ade20k(root, "validation", "ADE_val")
    return ["train_dataset.transforms.1.crop_size=[32, 32]"]


CASES = {
    "pascalcontext_fcn32s_vgg16.yml": _fixture_pascalcontext,
    "cityscapes_fcn8s_resnet34.yml": _fixture_cityscapes,
    "ade20k_fcn8s_resnet34.yml": _fixture_ade20k,
}


@pytest.mark.parametrize("config", sorted(CASES))
def test_config_trains_two_iterations_on_its_fixture(config, tmp_path):
    data = str(tmp_path / "data")
    opts = CASES[config](data) + [
        f"train_dataset.dataset_root={data}", f"val_dataset.dataset_root={data}",
        "model.pretrained=null", "iters=2", "batch_size=1", "accumulate_steps=1",
        "num_workers=0", "use_vdl=false", "log_iters=1", "save_interval=2",
        f"save_dir={tmp_path / 'run'}", "device=cpu"]
    if "resnet" in config:
        opts.append("model.width=8")
    cfg = load_config(os.path.join(ROOT, "configs", config), opts)
    summary = train(cfg, progress=False)
    assert summary.iterations == 2 and len(summary.losses) == 2
    assert all(math.isfinite(loss) for _, loss in summary.losses)
    assert summary.last_metrics is not None and 0 <= summary.last_metrics["pixel_acc"] <= 1
    assert len(summary.last_metrics["class_IoU"]) == cfg.model.num_classes
    assert os.path.isfile(tmp_path / "run" / "best_model" / "model.pdparams")
