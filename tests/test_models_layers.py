"""models.layers.BiasConv2D (the bias-gradient lever, docs/performance.md#training-speed):
training through it is numerically the plain ``nn.Conv2D``'s, and it stays out of the way."""
import numpy as np
import paddle
import paddle.nn as nn

from paddle_fcn.models import layers
from paddle_fcn.models.fcn_vgg import fcn8s_vgg16


def _losses(monkeypatch, conv):
    """Losses of 3 Momentum steps of a width-8 FCN-8s VGG16 on one 2 x 3 x 64 x 64 batch."""
    monkeypatch.setattr("paddle_fcn.models.vgg.BiasConv2D", conv)
    paddle.seed(0)
    model = fcn8s_vgg16(6, width=8, dropout=0.0)
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((2, 3, 64, 64)).astype("float32"))
    y = paddle.to_tensor(rng.integers(0, 6, (2, 64, 64)))
    losses = []
    for _ in range(3):
        loss = paddle.nn.functional.cross_entropy(model(x), y, axis=1)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    return losses, {k: v.numpy() for k, v in model.state_dict().items()}


def test_three_steps_equal_the_plain_conv(monkeypatch):
    fast, fast_state = _losses(monkeypatch, layers.BiasConv2D)
    plain, plain_state = _losses(monkeypatch, nn.Conv2D)
    np.testing.assert_allclose(fast, plain, rtol=1e-6)
    assert fast_state.keys() == plain_state.keys()
    for key in plain_state:
        np.testing.assert_allclose(fast_state[key], plain_state[key], rtol=1e-5, atol=1e-7)


def test_bias_gradient_on_an_odd_size_and_a_frozen_input():
    paddle.seed(1)
    conv = layers.BiasConv2D(3, 4, 3, padding=1)
    plain = nn.Conv2D(3, 4, 3, padding=1)
    plain.set_state_dict(conv.state_dict())
    x = paddle.randn([2, 3, 23, 37])  # stop_gradient: no gradient asked for the input
    (conv(x) ** 2).sum().backward()
    (plain(x) ** 2).sum().backward()
    np.testing.assert_allclose(conv.bias.grad.numpy(), plain.bias.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(conv.weight.grad.numpy(), plain.weight.grad.numpy(), rtol=1e-5)
    conv.bias.stop_gradient = True  # a frozen bias takes the plain path
    np.testing.assert_allclose(conv(x).numpy(), plain(x).numpy(), rtol=1e-6)
