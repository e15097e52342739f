"""Class names of a deployed model (``segmenter.class_names_of`` -> ``data.dataset_class_names``):
the names training used, whatever data set type said them, even where the data is not."""
import os

import paddle
import pytest
import yaml

from paddle_fcn.cli.deploy import export_main
from paddle_fcn.config import DatasetConfig
from paddle_fcn.data import SYNTHETIC_CLASSES, VOC_CLASSES, dataset_class_names
from paddle_fcn.models import build_model


def _checkpoint(tmp_path, num_classes):
    model = build_model("fcn8s_resnet18", num_classes, width=8)
    folder = tmp_path / "best_model"
    folder.mkdir()
    paddle.save(model.state_dict(), str(folder / "model.pdparams"))
    return str(folder)


def test_list_dataset_labels_txt_names_reach_deploy_yml(tmp_path):
    """The bug this guards: a ListDataset with a labels.txt trained with its names, but the
    export wrote class_0, class_1, class_2 into deploy.yml."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.txt").write_text("sky\nroad\n\ncar\n")
    config = {"model": {"type": "fcn8s_resnet18", "num_classes": 3, "width": 8},
              "train_dataset": {"type": "ListDataset", "dataset_root": str(tmp_path / "data"),
                                "file_list": "train.txt"}}
    (tmp_path / "cfg.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "export"
    assert export_main(["--config", str(tmp_path / "cfg.yml"), "--model_path",
                        _checkpoint(tmp_path, 3), "--save_dir", str(out)]) == 0
    deploy = yaml.safe_load((out / "deploy.yml").read_text())
    assert deploy["class_names"] == ["sky", "road", "car"]


@pytest.mark.parametrize("given, num_classes, expected", [
    ({"type": "PascalVOC"}, 21, list(VOC_CLASSES)),  # the type's own, data or not
    ({"type": "SyntheticVOC"}, 6, list(SYNTHETIC_CLASSES)),
    ({"type": "SyntheticVOC", "synthetic": {"preset": "voc"}}, 21, list(VOC_CLASSES)),
    ({"type": "PascalVOC", "class_names": ["a", "b"]}, 2, ["a", "b"]),  # the config's first
    ({"type": "PascalVOC"}, 3, ["class_0", "class_1", "class_2"]),  # no names of that count
    ({"type": "ListDataset"}, 2, ["class_0", "class_1"]),  # no labels.txt: no names
])
def test_dataset_class_names_without_the_data(tmp_path, given, num_classes, expected):
    cfg = dict(given, dataset_root=str(tmp_path / "absent"))
    assert dataset_class_names(cfg, num_classes) == expected


def test_voc_labels_txt_wins_over_the_voc_names(tmp_path):
    root = tmp_path / "VOC2012"
    os.makedirs(root / "JPEGImages")
    (root / "labels.txt").write_text("background\nperson\n")
    ds = DatasetConfig(type="PascalVOC", dataset_root=str(tmp_path))
    assert dataset_class_names(ds, 2) == ["background", "person"]


def test_load_scorer_runs_the_predictor_on_the_configs_cpu_threads(tmp_path):
    from paddle_fcn.config import load_config
    from paddle_fcn.inference.segmenter import load_scorer
    from paddle_fcn.runtime import physical_cores

    checkpoint = _checkpoint(tmp_path, 6)
    (tmp_path / "c.yml").write_text(
        "model: {type: fcn8s_resnet18, width: 8}\n"
        "train_dataset: {type: SyntheticVOC, dataset_root: unused, num_classes: 6}\n"
        "device: cpu\ncpu_threads: 1\n")
    cfg = load_config(str(tmp_path / "c.yml"))
    assert load_scorer(checkpoint, cfg, "cpu").predictor.threads == 1
    cfg.cpu_threads = None
    assert load_scorer(checkpoint, cfg, "cpu").predictor.threads == physical_cores()
