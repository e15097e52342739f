"""inference/int8_cpu.py: the graph it quantizes computes the model's function (upsamplers as
transposed convs, BatchNorms folded, padding left to the predictor), for each geometry."""
import numpy as np
import paddle
import pytest

from paddle_fcn.inference.export import OutputOp
from paddle_fcn.inference.int8_cpu import int8_source, pad_batch
from paddle_fcn.models import build_model
from paddle_fcn.upsample import BilinearUpsample


def _with_statistics(model, seed=0):
    """Non-trivial BatchNorm statistics and score layers, so folding and scoring matter."""
    rng = np.random.default_rng(seed)
    for key, value in model.state_dict().items():
        if key.endswith(("_mean", "_variance", "bn1.weight")) or "score" in key:
            value.set_value((0.5 * np.abs(rng.standard_normal(value.shape)) + 0.1)
                            .astype("float32"))
    model.eval()
    return model


@pytest.mark.parametrize("name, options, multiple", [
    ("fcn8s_resnet18", {"width": 8}, 32),
    ("fcn8s_vgg16", {"width": 4, "geometry": "caffe"}, 1),
    ("fcn16s_resnet18", {"width": 8, "heads": {"semantic": 5, "geometric": 3}}, 32),
])
def test_int8_source_computes_the_model_on_the_padded_input(name, options, multiple):
    wrapper = OutputOp(_with_statistics(build_model(name, 5, **options)))
    wrapper.eval()
    source, pad = int8_source(wrapper)
    assert pad == multiple
    kinds = [type(layer).__name__ for layer in source.sublayers()]
    assert "BatchNorm2D" not in kinds
    assert all(u.learnable for u in source.sublayers() if isinstance(u, BilinearUpsample))
    x = np.random.default_rng(1).standard_normal((1, 3, 37, 53)).astype("float32")
    with paddle.no_grad():
        want = wrapper(paddle.to_tensor(x)).numpy()
        got = source(paddle.to_tensor(pad_batch(x, pad))).numpy()[..., :37, :53]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    assert wrapper(paddle.to_tensor(x)).shape == want.shape  # the original is untouched


def test_pad_batch_pads_bottom_right_with_zeros():
    x = np.ones((2, 3, 37, 64), np.float32)
    padded = pad_batch(x, 32)
    assert padded.shape == (2, 3, 64, 64) and padded[:, :, 37:].sum() == 0
    np.testing.assert_array_equal(padded[:, :, :37], x)
    assert pad_batch(x[:, :, :32], 32).shape == (2, 3, 32, 64) and pad_batch(x, 1) is x
