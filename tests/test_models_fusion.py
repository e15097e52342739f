"""models/fusion.py: the RGB-HHA late-fusion net sums two whole FCNs, one a modality."""
import numpy as np
import paddle
import pytest

from paddle_fcn.models import build_model


def test_late_fusion_sums_the_two_fcns():
    paddle.seed(0)
    model = build_model("fcn8s_resnet18_rgbhha", 5, width=8)
    for p in model.parameters():  # non-zero score layers, so both trunks contribute
        p.set_value(paddle.uniform(p.shape, min=-0.1, max=0.1))
    model.eval()
    assert len(model.normalization["mean"]) == 6 and len(model.normalization["std"]) == 6
    x = paddle.randn([2, 6, 36, 40])
    fused = model(x).numpy()
    expected = model.rgb(x[:, :3]).numpy() + model.hha(x[:, 3:]).numpy()
    np.testing.assert_allclose(fused, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(model.hha(x[:, 3:]).numpy()).max() > 0
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    assert backbone_ids == {id(p) for p in model.rgb.backbone.parameters()} | {
        id(p) for p in model.hha.backbone.parameters()}
    with pytest.raises(ValueError, match="expects N x 6 x H x W"):
        model(paddle.randn([1, 3, 32, 32]))
