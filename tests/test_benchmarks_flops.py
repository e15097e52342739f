"""FLOP counting and the CPU's FP32 peak (``benchmarks/flops.py``)."""
import paddle.nn as nn
import pytest
from fixtures import load_benchmark

from paddle_fcn.upsample import BilinearUpsample

flops = load_benchmark("flops")
count_flops, fma_flop_per_cycle = flops.count_flops, flops.fma_flop_per_cycle


def test_count_flops_known_layers():
    net = nn.Sequential(nn.Conv2D(3, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2DTranspose(4, 2, 4, stride=2, padding=1))
    count = count_flops(net, [1, 3, 8, 8])
    conv = 2 * (8 * 8 * 4) * 3 * 3 * 3  # 2 x output values x (Cin x k x k)
    deconv = 2 * (8 * 8 * 4) * 2 * 4 * 4  # 2 x input values x (Cout x k x k)
    assert [f for _, _, f in count.layers] == [conv, deconv]
    assert count.total == conv + deconv == 30208
    # A frozen bilinear x2 (kernel 4) counts as the depthwise transposed conv it equals; a
    # learnable one once, as its Conv2DTranspose (C x C x k x k), not again as the wrapper.
    net = nn.Sequential(BilinearUpsample(2, 2), BilinearUpsample(2, 2, learnable=True))
    count = count_flops(net, [1, 2, 8, 8])
    frozen = 2 * (2 * 8 * 8) * 4 * 4  # 2 x input values x k x k
    learned = 2 * (2 * 16 * 16) * 2 * 4 * 4
    assert sorted(f for _, _, f in count.layers) == [frozen, learned]


@pytest.mark.parametrize("flags,vendor,family,model,want", [
    ("fma avx2 avx512f", "AuthenticAMD", 0x1A, 2, 64),   # Zen 5: 512-bit FMA pipes
    ("fma avx2 avx512f", "AuthenticAMD", 0x19, 0x11, 32),  # Zen 4: AVX-512 on 256-bit pipes
    ("fma avx2", "AuthenticAMD", 0x17, 0x31, 32),        # Zen 2
    ("fma avx2", "AuthenticAMD", 0x17, 0x01, 16),        # Zen 1: 128-bit pipes
    ("fma avx2 avx512f", "GenuineIntel", 6, 0x55, 64),  # Skylake-SP
    ("fma avx2", "GenuineIntel", 6, 0x3C, 32),          # Haswell
])
def test_flop_per_cycle_from_isa(flags, vendor, family, model, want):
    assert fma_flop_per_cycle(flags.split(), vendor, family, model)[0] == want
