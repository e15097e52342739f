"""Mixed-precision training (``engine.amp``): fp32 is the plain path, fp16/bf16 need a GPU.

On this CPU-only machine the GPU paths are skipped with the reason; what runs here: the
config keys and flags, the clear error on a CPU, fp32 steps identical to the plain ones, and
the scaler state travelling with a checkpoint."""
import paddle
import pytest

from paddle_fcn.cli import load_experiment
from paddle_fcn.engine.amp import MixedPrecision, check_amp_device
from paddle_fcn.errors import ConfigError

HAS_GPU = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
MINIMAL = """
model: {type: fcn8s_resnet18, width: 8}
train_dataset: {type: SyntheticVOC, dataset_root: data/syn, num_classes: 6}
"""


def _tiny_step(amp=None, seed=0):
    """Loss after three SGD steps of a tiny FCN through ``amp`` (None: plain Paddle)."""
    from paddle_fcn.models import build_model

    paddle.seed(seed)
    model = build_model("fcn8s_resnet18", 3, width=8)
    opt = paddle.optimizer.Momentum(0.01, momentum=0.9, parameters=model.parameters())
    if amp is not None:
        model, opt = amp.decorate(model, opt)
    x = paddle.randn([2, 3, 37, 53])
    y = paddle.randint(0, 3, [2, 37, 53])
    for _ in range(3):
        if amp is None:
            loss = paddle.nn.functional.cross_entropy(model(x), y, axis=1)
            loss.backward()
            opt.step()
        else:
            with amp.autocast():
                loss = paddle.nn.functional.cross_entropy(model(x), y, axis=1)
            amp.backward(loss)
            amp.step(opt)
        opt.clear_grad()
    return float(loss)


def test_config_keys_and_choices(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(MINIMAL + "precision: fp16\namp_level: O2\n")
    cfg = load_experiment(str(path))
    assert (cfg.precision, cfg.amp_level) == ("fp16", "O2")
    path.write_text(MINIMAL + "precision: fp8\n")
    with pytest.raises(ConfigError, match="precision: expected one of fp32, fp16, bf16"):
        load_experiment(str(path))


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU's refusal")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_the_cpu_is_a_clear_error(precision):
    paddle.set_device("cpu")
    with pytest.raises(ConfigError, match=f"precision: {precision} training needs a GPU"):
        check_amp_device(precision)
    check_amp_device("fp32")  # always fine


def test_fp32_steps_equal_the_plain_steps():
    paddle.set_device("cpu")
    amp = MixedPrecision("fp32")
    assert amp.scaler is None and amp.state_dict() is None
    assert _tiny_step(amp, seed=3) == _tiny_step(None, seed=3)


def test_a_checkpoint_with_another_loss_scaling_is_refused():
    amp = MixedPrecision("fp32")
    amp.set_state_dict(None, "iter_000002")  # fp32 -> fp32
    with pytest.raises(ConfigError, match="iter_000002.*loss scaling.*precision is fp32"):
        amp.set_state_dict({"scale": 1024.0}, "iter_000002")


@pytest.mark.skipif(not HAS_GPU, reason="fp16 / bf16 training runs on a CUDA GPU only "
                                        "(Paddle's AMP is a no-op on the CPU)")
@pytest.mark.parametrize("precision, level", [("fp16", "O1"), ("fp16", "O2"), ("bf16", "O1")])
def test_gpu_mixed_precision_trains_and_the_scaler_resumes_exactly(precision, level):
    paddle.set_device("gpu")
    amp = MixedPrecision(precision, level)
    loss = _tiny_step(amp)
    assert loss == loss and loss < 10  # finite
    state = amp.state_dict()
    again = MixedPrecision(precision, level)
    again.set_state_dict(state, "ckpt")
    assert again.state_dict() == state
