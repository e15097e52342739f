"""The int8 graph's forms of the frozen bilinear upsampler (``inference/int8_upsample.py``):
each computes the frozen ``BilinearUpsample`` exactly, in every geometry, whole and windowed,
on odd sizes: eager, and saved under the legacy IR and run by Paddle Inference with oneDNN
as the int8 graph is (a child process). The full transposed-conv form's equality is tested
in ``test_upsample.py``; whole int8 exports in ``test_inference_int8_cpu.py``."""
import json

import numpy as np
import paddle
import pytest
from fixtures import run_legacy_ir

from paddle_fcn.inference.int8_upsample import FULL_MAX_CLASSES, InterpolatedUpsample, int8_form
from paddle_fcn.upsample import BilinearUpsample

# (factor, sample_aligned, padding): the padded half-pixel layer (even and odd factors), the
# sample-aligned one, and the reference nets' unpadded one that the head crops.
GEOMETRIES = [(f, sample, pad) for f in (1, 2, 3, 8, 16, 32) for sample, pad in
              ((False, True), (True, True), (False, False))]


@pytest.mark.parametrize("factor, sample_aligned, padding", GEOMETRIES)
@pytest.mark.parametrize("size", [(1, 1), (3, 5), (23, 23), (37, 53)])
def test_interpolated_upsampler_computes_the_frozen_one(factor, sample_aligned, padding, size):
    up = BilinearUpsample(4, factor, padding=padding, sample_aligned=sample_aligned)
    interp = InterpolatedUpsample(up)
    h, w = size
    x = paddle.to_tensor(np.random.default_rng(factor * h).standard_normal(
        (2, 4, h, w)).astype(np.float32))
    want = up(x).numpy()
    assert interp.output_length(h) == want.shape[2] == up.output_length(h)
    # the tolerance is float rounding of the interpolation ratio 1/f (f = 3: ~1e-5)
    np.testing.assert_allclose(interp(x).numpy(), want, rtol=0, atol=3e-5)
    height, width = want.shape[2:]
    for o in sorted({0, factor // 2, min(height, width) // 3}):
        window = (o, height - o - (height - o) // 3, width - o)
        np.testing.assert_allclose(interp(x, window).numpy(), up(x, window).numpy(),
                                   rtol=0, atol=3e-5)


def test_interpolated_upsampler_keeps_a_constant_map_constant_inside():
    """Bilinear interpolation of a constant is that constant away from the border ramp, and
    the ramp is the transposed conv's: the padded x8 layer's first output pixel sits 7/16 of
    an input pixel before the first one, so it weighs 1 - 7/16 = 0.5625 (squared at a corner)."""
    up = BilinearUpsample(2, 8)
    out = InterpolatedUpsample(up)(paddle.ones([1, 2, 6, 7])).numpy()
    np.testing.assert_allclose(out[:, :, 4:-4, 4:-4], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 8], 0.5625, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0], 0.5625 ** 2, atol=1e-6)


def test_int8_form_picks_by_the_number_of_classes():
    few, many = BilinearUpsample(FULL_MAX_CLASSES, 8), BilinearUpsample(FULL_MAX_CLASSES + 1, 8)
    full = int8_form(few)
    assert full.learnable and full.up.weight.shape == [FULL_MAX_CLASSES] * 2 + [16, 16]
    assert isinstance(int8_form(many), InterpolatedUpsample)
    learned = BilinearUpsample(FULL_MAX_CLASSES + 1, 2, learnable=True)
    assert int8_form(learned) is learned
    with pytest.raises(ValueError, match="takes a frozen BilinearUpsample"):
        InterpolatedUpsample(learned)


class _Saved(paddle.nn.Layer):
    """An ``InterpolatedUpsample`` and a parameter, so that its saved graph has weights."""

    def __init__(self, up):
        super().__init__()
        self.up, self.bias = InterpolatedUpsample(up), self.create_parameter([1], is_bias=True)

    def forward(self, x):
        return self.up(x) + self.bias


LEGACY = """
import json, sys
import paddle_fcn
import numpy as np, paddle
import paddle.inference as pi
from paddle_fcn.upsample import BilinearUpsample
from test_inference_int8_upsample import _Saved

worst = {}
for factor, sample_aligned, padding in json.loads(sys.argv[2]):
    up = BilinearUpsample(3, factor, padding=padding, sample_aligned=sample_aligned)
    prefix = f"{sys.argv[1]}/x{factor}{sample_aligned}{padding}"
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    paddle.jit.save(_Saved(up), prefix, input_spec=spec)
    config = pi.Config(prefix + ".pdmodel", prefix + ".pdiparams")
    config.disable_gpu(); config.enable_new_ir(False); config.enable_onednn()
    predictor = pi.create_predictor(config)
    errors = []
    for shape in ((1, 3, 5, 7), (2, 3, 23, 23)):
        x = np.random.default_rng(shape[2]).standard_normal(shape).astype("float32")
        predictor.get_input_handle("x").copy_from_cpu(x)
        predictor.run()
        got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        want = up(paddle.to_tensor(x)).numpy()
        errors.append(float(np.abs(got - want).max()) if got.shape == want.shape else 1e9)
    worst[f"x{factor} sample_aligned={sample_aligned} padding={padding}"] = max(errors)
print(json.dumps(worst))
"""


def test_interpolated_upsampler_in_a_legacy_graph_run_by_onednn(tmp_path):
    """Saved under the legacy IR (``FLAGS_enable_pir_api=0``, as the int8 export's child) and
    run by Paddle Inference with oneDNN, each geometry gives the frozen layer's values: Paddle's
    oneDNN interpolation kernel ignores ``align_mode``, so a graph that ran it would put the
    sample-aligned forms half a pixel off."""
    geometries = [(8, False, True), (3, False, True), (2, True, True), (8, True, True),
                  (8, False, False), (3, False, False)]
    worst = run_legacy_ir(LEGACY, tmp_path, json.dumps(geometries))
    assert len(worst) == len(geometries)
    assert all(err <= 3e-5 for err in worst.values()), worst
