"""Realistic-size tier: every VOC-layout config in ``configs/`` on VOC-size photos, with workers.

Small synthetic images once hid a hang that every real photo triggered. So each config runs
``tools/train.py`` with its own transforms, batch and schedule and 2 data workers, on VOC-size
data in the real layouts (``preset: voc`` of the synthetic generator, plus the FCN authors'
real VOC photo and label from ``tests/data``): 1 iteration, then a second one resumed from
the first's checkpoint; then ``tools/eval.py`` and ``tools/predict.py`` on its best model;
then a fresh 20-iteration run (a 20-step schedule with its warm-up, logging and evaluation
points) with one image per step. The other data sets' configs train on their own fixtures
(``tests/test_train_more_datasets.py``).

Overridden, because it cannot exist here: the ImageNet weights (``model.pretrained=null``), the
previous stage of staged training (``model.init_from=null``), the data set's location, and
the paper's ``seg11valid`` split (736 named VOC 2011 photos) by ``val``. The 20-step run also
sets ``--batch_size 1 --accumulate_steps 1`` and, for the VGG16 recipes, ``model.width=8``
(1/8 of the channels): one full-width step is a whole 500 x 375 photo through VGG16 with
Caffe's 100-pixel padding, ~10-20 s on 2 CPU cores, and the 1- and 2-step runs already train
the full-width net. Every command is a subprocess with a hard time limit, so a hang fails the
test instead of stalling the suite.
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from paddle_fcn.data import generate_synthetic_voc, read_label

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def _voc_format(path):
    """Whether a config reads the VOC layout (the other data sets' configs train on their own
    fixtures in tests/test_train_more_datasets.py)."""
    with open(path) as f:
        return yaml.safe_load(f)["train_dataset"]["type"] in ("PascalVOC", "SyntheticVOC")


CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "configs", "*.yml"))
                 if _voc_format(p))
LIMIT = 400  # seconds per command: several times a normal run here, far below "hung"


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    """VOC2012 layout: 5 train + 1 val VOC-size synthetic photos, plus the real demo photo
    (334 x 500, classes 0, 2, 15 and void) in train, trainaug and val."""
    root = generate_synthetic_voc(str(tmp_path_factory.mktemp("voc") / "VOC2012"),
                                  num_train=5, num_val=1, preset="voc")
    shutil.copy(os.path.join(DATA, "demo_image.jpg"), os.path.join(root, "JPEGImages", "demo.jpg"))
    for labels in ("SegmentationClass", "SegmentationClassAug"):
        shutil.copy(os.path.join(DATA, "demo_label.png"), os.path.join(root, labels, "demo.png"))
    for split in ("train", "trainaug", "val"):
        with open(os.path.join(root, "ImageSets", "Segmentation", split + ".txt"), "a") as f:
            f.write("demo\n")
    return root


def _data_opts(config, voc_root, tmp):
    """--opts pointing the config's data sets at the realistic tier."""
    with open(os.path.join(ROOT, "configs", config)) as f:
        raw = yaml.safe_load(f)
    opts = []
    for key in ("train_dataset", "val_dataset"):
        if raw[key]["type"] == "SyntheticVOC":  # its own generator, at VOC photo sizes
            opts += [f"{key}.dataset_root={tmp / 'synthetic'}",
                     f"{key}.synthetic.min_size=333", f"{key}.synthetic.max_size=500",
                     f"{key}.synthetic.num_train=6", f"{key}.synthetic.num_val=2"]
        else:
            opts.append(f"{key}.dataset_root={voc_root}")
        if raw[key].get("mode") == "seg11valid":  # 736 named VOC 2011 photos: not in the tier
            opts.append(f"{key}.mode=val")
    for key in ("pretrained", "init_from"):
        if key in raw["model"]:
            opts.append(f"model.{key}=null")
    return opts


def _run(tool, args, cwd):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=LIMIT)
    assert proc.returncode == 0, f"{tool} {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_config_trains_evaluates_and_predicts_on_voc_size_photos(config, voc_root,
                                                                         tmp_path):
    opts = _data_opts(config, voc_root, tmp_path)
    path = os.path.join(ROOT, "configs", config)
    run = tmp_path / "run"

    def train(iters, *extra, more_opts=()):
        args = ["--config", path, "--iters", str(iters), "--num_workers", "2", "--no_progress",
                "--save_dir", str(run), *extra, "--opts", *opts, *more_opts]
        return _run("train.py", args, tmp_path)

    train(1)
    out = train(2, "--resume_model", str(run))  # one more step from iteration 1's checkpoint
    assert "resumed from" in out.stdout and os.path.isdir(run / "iter_000002")
    best = str(run / "best_model")
    _run("eval.py", ["--config", path, "--model_path", best, "--save_dir", str(tmp_path / "ev"),
                     "--opts", *opts], tmp_path)
    assert os.path.isfile(tmp_path / "ev" / "metrics.json")
    photo = os.path.join(voc_root, "JPEGImages", "demo.jpg")
    _run("predict.py", ["--config", path, "--model_path", best, "--image_path", photo,
                        "--save_dir", str(tmp_path / "pred"), "--no_progress", "--opts", *opts],
         tmp_path)
    mask = read_label(str(tmp_path / "pred" / "pseudo_color_prediction" / "demo.png"))
    assert mask.shape == (500, 334) and mask.max() < 21
    run = tmp_path / "run20"
    narrow = ["model.width=8"] if "vgg16" in config else []
    out = train(20, "--batch_size", "1", "--accumulate_steps", "1", more_opts=narrow)
    assert "done: 20 iterations" in out.stdout and os.path.isdir(run / "iter_000020")


def test_realistic_tier_holds_real_size_photos_and_the_real_label(voc_root):
    label = read_label(os.path.join(voc_root, "SegmentationClassAug", "demo.png"))
    assert label.shape == (500, 334) and set(np.unique(label)) == {0, 2, 15, 255}
    aug = read_label(os.path.join(voc_root, "SegmentationClassAug", "syn_00000.png"))
    voc = read_label(os.path.join(voc_root, "SegmentationClass", "syn_00000.png"))
    assert aug.shape == (375, 500) and np.array_equal(aug, voc) and 255 in aug
