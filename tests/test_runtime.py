"""Files of earlier versions (frozen upsamplers' kernels, ``models/legacy.py``) and the
Predictor's malloc setting (``runtime.retain_freed_memory``)."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddle_fcn.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from paddle_fcn.models import build_model
from paddle_fcn.models.weights import WeightsError, load_model_weights
from paddle_fcn.runtime import _glibc
from paddle_fcn.upsample import BilinearUpsample, bilinear_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(num_classes=3, name="fcn8s_resnet18"):
    model = build_model(name, num_classes, width=8)
    for param in model.parameters():  # stand-in for training: every value differs from init
        param.set_value(paddle.randn(param.shape) * 0.1)
    model.eval()
    return model


def _legacy(model, scale=1.0):
    """``model``'s state dict as a61b99e and earlier wrote it: plus ``<name>.up.weight``
    [C, 1, k, k] holding ``bilinear_kernel(k)`` (times ``scale``) for each frozen upsampler."""
    state = dict(model.state_dict())
    for name, layer in model.named_sublayers():
        if isinstance(layer, BilinearUpsample) and not layer.learnable:
            k = layer.kernel_size
            kernel = np.broadcast_to(bilinear_kernel(k), (layer.channels, 1, k, k))
            state[f"{name}.up.weight"] = paddle.to_tensor(scale * kernel.astype("float32"))
    return state


def _values(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_legacy_weights_load_and_compute_the_same(tmp_path):
    trained = _tiny()
    state = _legacy(trained)
    assert "upscore8.up.weight" in state  # the frozen final x8 of FCN-8s
    paddle.save(state, str(tmp_path / "model.pdparams"))
    model = _tiny()
    report = load_model_weights(model, tmp_path / "model.pdparams")
    assert not report.missing and not report.unexpected
    x = paddle.randn([1, 3, 37, 53])
    np.testing.assert_array_equal(model(x).numpy(), trained(x).numpy())


def test_legacy_trained_kernel_is_refused_and_nothing_changes(tmp_path):
    """Dropping a kernel that is not the fixed bilinear one would change the network."""
    paddle.save(_legacy(_tiny(), scale=0.5), str(tmp_path / "model.pdparams"))
    model = _tiny()
    before = _values(model)
    with pytest.raises(WeightsError, match=r"model.pdparams: upscore8.up.weight \[3, 1, 15, "
                                           r"15\] is not a stack of fixed bilinear kernels.*"
                                           r"learnable_upsample"):
        load_model_weights(model, tmp_path / "model.pdparams")
    for key, value in _values(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_legacy_file_for_other_classes_says_so(tmp_path):
    paddle.save(_legacy(_tiny(num_classes=5)), str(tmp_path / "model.pdparams"))
    with pytest.raises(WeightsError, match="was trained for 5 classes"):
        load_model_weights(_tiny(num_classes=3), tmp_path / "model.pdparams")


def _opt(model):
    return paddle.optimizer.Momentum(learning_rate=0.1, momentum=0.9,
                                     parameters=model.parameters())


def test_legacy_checkpoint_resumes_and_a_trained_kernel_is_refused(tmp_path):
    model = _tiny(name="fcn32s_resnet18")
    save_checkpoint(str(tmp_path), 1, model, _opt(model), {}, keep_max=2)
    weights_file = str(tmp_path / "iter_000001" / "model.pdparams")
    paddle.save(_legacy(model), weights_file)
    other = _tiny(name="fcn32s_resnet18")
    assert load_checkpoint(str(tmp_path), other, _opt(other))["iteration"] == 1
    np.testing.assert_array_equal(other.score_fr.weight.numpy(), model.score_fr.weight.numpy())
    paddle.save(_legacy(model, scale=2.0), weights_file)
    with pytest.raises(CheckpointError, match=r"iter_000001.*upscore.up.weight \[3, 1, 63, 63"):
        load_checkpoint(str(tmp_path), other, _opt(other))
    paddle.save(_legacy(_tiny(num_classes=4, name="fcn32s_resnet18")), weights_file)
    with pytest.raises(CheckpointError, match="another model.type or num_classes"):
        load_checkpoint(str(tmp_path), other, _opt(other))


_FAULTS = """
import importlib.util, resource
import numpy as np
spec = importlib.util.spec_from_file_location("runtime", {path!r})  # runtime.py alone: fast
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
applied = runtime.retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = np.ones(2 ** 24, dtype=np.float32); del block  # 64 MB: above glibc's mmap threshold
before = faults()
for _ in range(5):
    block = np.ones(2 ** 24, dtype=np.float32); del block
print(applied, faults() - before)
"""


@pytest.mark.skipif(not _glibc(), reason="glibc malloc settings")
def test_retain_freed_memory_stops_page_faults_of_reallocated_blocks():
    """A freed 64 MB block is reused without page faults; by default (and with
    PADDLE_FCN_RETAIN_MEMORY=0) glibc unmaps it and each reallocation faults its pages in
    again: at least one fault per 2 MB (huge) page, 5 x 32."""
    path = os.path.join(ROOT, "paddle_fcn", "runtime.py")
    results = {}
    for setting in ("1", "0"):
        env = dict(os.environ, PADDLE_FCN_RETAIN_MEMORY=setting)
        out = subprocess.run([sys.executable, "-c", _FAULTS.format(path=path)], env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        applied, faults = out.split()
        results[setting] = (applied, int(faults))
    assert results["1"][0] == "True" and results["1"][1] <= 4
    assert results["0"][0] == "False" and results["0"][1] >= 5 * 32
