"""SIFT Flow: the reference layout (.mat or PNG labels) -> exact labels per head; the
two-headed FCN's two losses and two metric sets against known answers; its config trains."""
import math
import os

import cv2
import numpy as np
import paddle
import pytest

from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, SIFTFlow, build_dataset, check_dataset, write_image
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.loss import MultiHeadLoss
from paddle_fcn.engine.trainer import train
from paddle_fcn.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUB = "spatial_envelope_256x256_static_8outdoorcategories"
# stored values: semantic 0 = void, 1..33; geometric -1 = void, 1..3
SEMANTIC = np.array([[0, 1, 33, 17], [2, 0, 1, 1]])
GEOMETRIC = np.array([[-1, 1, 2, 3], [3, 1, -1, 1]])
SEMANTIC_LOADED = np.array([[255, 0, 32, 16], [1, 255, 0, 0]])
GEOMETRIC_LOADED = np.array([[255, 0, 1, 2], [2, 0, 255, 0]])


def make_siftflow(root, fmt="png", ids=("coast_arnat59", "street_urb506", "tallbuilding_a4")):
    """The reference tree; labels as .mat (variable S, needs scipy) or PNG (void geometric 0)."""
    for i, name in enumerate(ids):
        write_image(os.path.join(root, "Images", SUB, name + ".jpg"),
                    np.full((2, 4, 3), 30 * i, np.uint8))
        for folder, stored in (("SemanticLabels", SEMANTIC), ("GeoLabels", GEOMETRIC)):
            path = os.path.join(root, folder, SUB, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if fmt == "mat":
                import scipy.io
                scipy.io.savemat(path + ".mat", {"S": stored.astype(np.int16)})
            else:
                cv2.imwrite(path + ".png", np.maximum(stored, 0).astype(np.uint8))
    for split, names in (("trainval", ids[:2]), ("test", ids[2:])):
        with open(os.path.join(root, f"{split}.txt"), "w") as f:
            f.write("".join(n + "\n" for n in names))
    return root


@pytest.mark.parametrize("fmt", ["png", "mat"])
def test_siftflow_labels_per_head_exactly(tmp_path, fmt):
    if fmt == "mat":
        pytest.importorskip("scipy.io", reason=".mat labels need scipy (optional)")
    root = make_siftflow(str(tmp_path), fmt)
    sem = SIFTFlow(root, "trainval")
    assert sem.num_classes == 33 and sem.class_names[0] == "awning" and len(sem) == 2
    np.testing.assert_array_equal(sem[0][1], SEMANTIC_LOADED)
    geo = build_dataset({"type": "SIFTFlow", "dataset_root": root, "mode": "test",
                         "head": "geometric"})
    assert geo.num_classes == 3 and geo.class_names == ["sky", "horizontal", "vertical"]
    np.testing.assert_array_equal(geo[0][1], GEOMETRIC_LOADED)
    both = SIFTFlow(root, "trainval", head="both")
    assert both.heads == {"semantic": 33, "geometric": 3}
    packed = both[1][1]
    np.testing.assert_array_equal(both.codec.decode(packed, "semantic"), SEMANTIC_LOADED)
    np.testing.assert_array_equal(both.codec.decode(packed, "geometric"), GEOMETRIC_LOADED)
    for ds in (sem, geo, both):
        assert check_dataset(ds).ok


def test_siftflow_bad_mat_names_the_file(tmp_path):
    scipy_io = pytest.importorskip("scipy.io", reason=".mat labels need scipy (optional)")
    root = make_siftflow(str(tmp_path), "mat")
    bad = os.path.join(root, "GeoLabels", SUB, "street_urb506.mat")
    scipy_io.savemat(bad, {"S": np.full((2, 4), 7, np.int16)})
    with pytest.raises(DataError, match=r"street_urb506\.mat: S must be a 2-D map of -1\.\.3"):
        SIFTFlow(root, "trainval", head="both")[1]


def test_two_headed_fcn_losses_and_metrics_have_the_known_values(tmp_path):
    """A fresh FCN scores 0 everywhere (zero-initialised score layers): every valid pixel's
    cross-entropy is log(C) and every prediction is class 0 - in each head."""
    root = make_siftflow(str(tmp_path))
    ds = SIFTFlow(root, "trainval", head="both")
    paddle.seed(0)
    model = build_model("fcn16s_resnet18", 33, width=8, heads={"semantic": 33, "geometric": 3})
    image, packed = ds[0]
    logits = model(paddle.to_tensor(image[None]), all_heads=True)
    assert list(logits["semantic"].shape) == [1, 33, 2, 4]
    assert list(logits["geometric"].shape) == [1, 3, 2, 4]
    assert list(model(paddle.to_tensor(image[None])).shape) == [1, 33, 2, 4]
    label = paddle.to_tensor(packed[None])
    n_sem, n_geo = int((SEMANTIC > 0).sum()), int((GEOMETRIC > 0).sum())  # 6, 6
    summed = MultiHeadLoss(ds.heads, reduction="sum")(logits, label)
    assert float(summed) == pytest.approx(n_sem * math.log(33) + n_geo * math.log(3), rel=1e-5)
    mean = MultiHeadLoss(ds.heads, reduction="mean")(logits, label)
    assert float(mean) == pytest.approx(math.log(33) + math.log(3), rel=1e-5)
    result = evaluate(model, ds, 33, progress=False)
    sem, geo = result.heads["semantic"], result.heads["geometric"]
    # predictions all 0: semantic class 0 is 3 of the 6 valid pixels, geometric class 0 is 3
    assert sem.pixel_acc == pytest.approx(3 / 6) and geo.pixel_acc == pytest.approx(3 / 6)
    assert geo.mIoU == pytest.approx(np.mean([3 / 6, 0, 0]))  # classes 0, 1, 2 all present
    assert result.metrics.pixel_acc == sem.pixel_acc
    assert result.matrix.shape == (33, 33) and result.matrix.sum() == 2 * n_sem


def test_two_headed_model_refuses_one_headed_data(tmp_path):
    root = make_siftflow(str(tmp_path))
    opts = _opts(root, tmp_path) + ["train_dataset.head=semantic"]
    cfg = load_config(os.path.join(ROOT, "configs", "siftflow_fcn16s_vgg16.yml"), opts)
    cfg.model.type = "fcn16s_resnet18"
    cfg.model.options = {"width": 8, "heads": {"semantic": 33, "geometric": 3}}
    with pytest.raises(DataError, match="the model scores .*semantic.* labels one head"):
        train(cfg, progress=False)


def _opts(root, tmp_path):
    return [f"train_dataset.dataset_root={root}", f"val_dataset.dataset_root={root}",
            "model.pretrained=null", "iters=2", "num_workers=0", "use_vdl=false",
            "log_iters=1", "save_interval=2", f"save_dir={tmp_path / 'run'}", "device=cpu"]


def test_siftflow_config_trains_two_iterations_with_metrics_per_head(tmp_path):
    root = make_siftflow(str(tmp_path / "data"))
    cfg = load_config(os.path.join(ROOT, "configs", "siftflow_fcn16s_vgg16.yml"),
                      _opts(root, tmp_path))
    summary = train(cfg, progress=False)
    assert len(summary.losses) == 2 and all(math.isfinite(v) for _, v in summary.losses)
    heads = summary.last_metrics["heads"]
    assert len(heads["semantic"]["class_IoU"]) == 33 and len(heads["geometric"]["class_IoU"]) == 3
    assert summary.last_metrics["mIoU"] == heads["semantic"]["mIoU"]
    assert os.path.isfile(tmp_path / "run" / "best_model" / "model.pdparams")
