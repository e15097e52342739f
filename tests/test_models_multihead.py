"""models/multihead.py: the two-headed FCN (SIFT Flow's semantic + geometric) - its two
losses and two metric sets against known answers; it refuses one-headed data."""
import math
import os

import numpy as np
import paddle
import pytest
from fixtures import CONFIGS, GEOMETRIC, SEMANTIC, make_siftflow, quick_train_opts

from paddle_fcn.config import load_config
from paddle_fcn.data import DataError, SIFTFlow
from paddle_fcn.engine.evaluate import evaluate
from paddle_fcn.engine.loss import MultiHeadLoss
from paddle_fcn.engine.trainer import train
from paddle_fcn.models import build_model


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
    opts = quick_train_opts(root, tmp_path / "run") + ["train_dataset.head=semantic"]
    cfg = load_config(os.path.join(CONFIGS, "siftflow_fcn16s_vgg16.yml"), opts)
    cfg.model.type = "fcn16s_resnet18"
    cfg.model.options = {"width": 8, "heads": {"semantic": 33, "geometric": 3}}
    with pytest.raises(DataError, match="the model scores .*semantic.* labels one head"):
        train(cfg, progress=False)


def test_every_head_of_the_at_once_net_scales_its_skips():
    """FCN-8s at-once scales pool4 by 0.01 and pool3 by 1e-4 before scoring; an extra head with
    the first head's score weights must then give the first head's logits exactly."""
    paddle.seed(0)
    model = build_model("fcn8s_atonce_vgg16", 3, width=4, heads={"a": 3, "b": 3})
    model.eval()
    state = model.state_dict()
    rng = np.random.default_rng(0)
    for key in [k for k in state if k.startswith("score_")]:
        value = rng.normal(size=state[key].shape).astype("float32")
        state[key] = value
        state["extra_heads.b." + key] = value
    model.set_state_dict(state)
    scores = model(paddle.to_tensor(rng.normal(size=(1, 3, 37, 53)).astype("float32")),
                   all_heads=True)
    assert model.extra_heads["b"].skip_scales == (0.01, 1e-4)
    np.testing.assert_array_equal(scores["b"].numpy(), scores["a"].numpy())
