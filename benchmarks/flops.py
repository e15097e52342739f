"""Arithmetic of a network and the FP32 peak of this CPU, for ``bench_infer.py`` (this folder).

``count_flops`` counts what dominates a segmentation net: the multiply-accumulates of every
``Conv2D``, ``Conv2DTranspose`` and ``Linear`` layer and of every frozen ``BilinearUpsample``
(as the depthwise transposed conv it is), times 2 (one multiply + one add = 2
FLOP). Biases, activations, pooling, batch norm, padding, cropping and the element-wise sums
of FCN's skip fusion are not counted (for FCN-8s VGG16 they are < 0.1 % of the total).

``cpu_peak`` derives the peak from what the system reports: physical cores x clock x FP32
FLOP per cycle, the latter from the ISA flags and CPU family (``fma_flop_per_cycle``). Under a
hypervisor ``/proc/cpuinfo`` often shows the nominal (TSC) clock while the cores run at their
boost clock; ``measure_fma_peak`` then measures the real ceiling with an FMA loop compiled by
the system C compiler (one process per core), and the larger of the two figures is the peak.
"""
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

__all__ = ["FlopCount", "count_flops", "CpuPeak", "cpu_peak", "fma_flop_per_cycle",
           "measure_fma_peak", "COUNTED"]

COUNTED = ("multiply-accumulates of Conv2D, Conv2DTranspose (incl. frozen bilinear upsamplers) "
           "and Linear layers x 2; bias, activations, pooling, BN, padding, crops and skip sums "
           "not counted")


@dataclass
class FlopCount:
    """``total`` FLOP of one forward pass; ``layers`` is ``[(name, type, flop)]`` in run order."""
    total: int
    layers: list = field(default_factory=list)
    counted: str = COUNTED


def _layer_macs(layer, inputs, output):
    import paddle.nn as nn

    from paddle_fcn.upsample import BilinearUpsample

    if isinstance(layer, BilinearUpsample) and not layer.learnable:
        # counted as the depthwise transposed conv it equals (k*k taps per input value),
        # whatever the separable products it runs as; a learnable one's Conv2DTranspose
        # sublayer is counted on its own
        return inputs[0].size * layer.kernel_size ** 2
    if isinstance(layer, nn.Conv2DTranspose):  # every input value meets k*k*Cout/groups taps
        kh, kw = layer._kernel_size
        return inputs[0].size * (layer._out_channels // layer._groups) * kh * kw
    if isinstance(layer, nn.Conv2D):  # every output value is a k*k*Cin/groups dot product
        kh, kw = layer._kernel_size
        return output.size * (layer._in_channels // layer._groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return output.size * layer.weight.shape[0]
    return None


def count_flops(model, input_shape):
    """FLOP of ``model`` on a zero input of ``input_shape`` (``[N, 3, H, W]``), via forward
    hooks on its conv, transposed-conv and linear layers (see the module docstring)."""
    import paddle

    layers, handles = [], []
    for name, layer in model.named_sublayers():
        def hook(layer, inputs, output, name=name):
            macs = _layer_macs(layer, inputs, output)
            if macs is not None:
                layers.append((name, type(layer).__name__, 2 * int(macs)))
        handles.append(layer.register_forward_post_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            model(paddle.zeros(list(input_shape), dtype="float32"))
    finally:
        for h in handles:
            h.remove()
        model.train() if was_training else None
    return FlopCount(sum(f for _, _, f in layers), layers)


# ----------------------------------------------------------------------------- CPU peak
@dataclass
class CpuPeak:
    """FP32 peak in GFLOP/s and the lines that explain how it was obtained."""
    gflops: float
    cores: int
    ghz: float
    flop_per_cycle: int
    derivation: list
    measured_gflops: float = None


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in info:  # the first processor describes them all
                    info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def _clock_ghz(info):
    """(GHz, source): cpufreq's maximum if the kernel exposes it, else /proc/cpuinfo MHz."""
    path = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        with open(path) as f:
            return int(f.read()) / 1e6, f"{path} (max)"
    except (OSError, ValueError):
        pass
    if "cpu MHz" in info:
        return float(info["cpu MHz"]) / 1e3, ("/proc/cpuinfo 'cpu MHz' (current/nominal: no "
                                              "cpufreq in /sys, the boost clock is not shown)")
    return None, "no clock reported"


def fma_flop_per_cycle(flags, vendor="", family=0, model=0):
    """(FP32 FLOP per cycle per core, reason) from ISA flags and the CPU family.

    2 FMA pipes x lanes x 2 FLOP: AVX-512 with 512-bit pipes (Intel Xeon Scalable, AMD Zen 5 =
    family 0x1A) 2 x 16 x 2 = 64; AVX-512 on 256-bit pipes (AMD Zen 4 = family 0x19) and
    AVX2+FMA (Intel Haswell+, AMD Zen 2/3) 2 x 8 x 2 = 32; Zen 1 (family 0x17, model < 0x30,
    128-bit pipes) 2 x 4 x 2 = 16. A part with one 512-bit FMA unit is over-estimated 2x:
    ``measure_fma_peak`` catches that.
    """
    flags = set(flags)
    amd = vendor == "AuthenticAMD"
    if "avx512f" in flags and not (amd and family < 0x1A):
        why = "AMD Zen 5 (family 0x1A)" if amd else "Intel AVX-512"
        return 64, f"{why}, avx512f: 2 FMA pipes x 16 fp32 lanes (512 bit) x 2 FLOP = 64"
    if "avx512f" in flags:
        return 32, ("AMD Zen 4 (family 0x19), avx512f on 256-bit pipes: 2 FMA pipes x 8 fp32 "
                    "x 2 FLOP = 32")
    if "avx2" in flags and "fma" in flags:
        if amd and family == 0x17 and model < 0x30:
            return 16, "AMD Zen 1 (family 0x17), avx2+fma on 128-bit pipes: 2 x 4 x 2 FLOP = 16"
        return 32, "avx2+fma: 2 FMA pipes x 8 fp32 lanes (256 bit) x 2 FLOP = 32"
    if "avx" in flags:
        return 16, "avx without fma: 8-lane add + 8-lane multiply per cycle = 16"
    if "sse2" in flags:
        return 8, "sse2: 4-lane add + 4-lane multiply per cycle = 8"
    return 0, "no x86 SIMD flags found: peak unknown"


_FMA_LOOP = r"""
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#ifdef __AVX512F__
typedef __m512 V; enum { LANES = 16 };
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 V; enum { LANES = 8 };
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
static float SUM(V v) { float o[8]; _mm256_storeu_ps(o, v); return o[0] + o[7]; }
#endif
int main(void) {  /* 12 independent FMA chains: enough to hide a 4-cycle latency on 2 pipes */
    const long n = 100000000L;
    V b = SET1(1.0000001f), c = SET1(1e-7f);
    V a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5);
    V a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);  /* CPU time: immune to preemption */
    for (long i = 0; i < n; i++) {
        a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);
        a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);
        a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    float keep = SUM(a0) + SUM(a1) + SUM(a2) + SUM(a3) + SUM(a4) + SUM(a5) + SUM(a6)
               + SUM(a7) + SUM(a8) + SUM(a9) + SUM(a10) + SUM(a11);
    printf("%f %d %g\n", n * 12.0 * LANES * 2 / s / 1e9, LANES, keep);
    return 0;
}
"""


def measure_fma_peak(cores):
    """Measured FP32 FMA throughput of this machine in GFLOP/s: ``cores`` copies of a
    12-chain FMA loop run at once (~1 s), each timed in its own CPU time, so other processes
    competing for the cores lower the result only through a lower clock.

    Returns ``(gflops, description)``, or ``(None, reason)`` without a C compiler. The loop
    uses the widest vector ISA the compiler targets for this CPU (``-march=native``): the
    ceiling no kernel can beat.
    """
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None, "no C compiler (cc/gcc/clang) to measure the FMA ceiling"
    with tempfile.TemporaryDirectory(prefix="fma-") as tmp:
        src, exe = os.path.join(tmp, "fma.c"), os.path.join(tmp, "fma")
        with open(src, "w") as f:
            f.write(_FMA_LOOP)
        build = subprocess.run([cc, "-O3", "-march=native", "-o", exe, src],
                               capture_output=True, text=True)
        if build.returncode != 0:
            return None, f"FMA loop did not compile: {build.stderr.strip()[:200]}"
        runs = [subprocess.Popen([exe], stdout=subprocess.PIPE, text=True) for _ in range(cores)]
        results = [r.communicate()[0].split() for r in runs]
    per_core = [float(r[0]) for r in results]
    lanes = int(results[0][1])
    each = " + ".join(f"{g:.0f}" for g in per_core)
    return sum(per_core), (f"measured: {cores} x FMA loop ({lanes} fp32 lanes, 12 chains) at "
                           f"once, per CPU-second: {each} GFLOP/s")


def cpu_peak(measure=True):
    """This CPU's FP32 peak (``CpuPeak``): cores x clock x FLOP/cycle from /proc/cpuinfo and
    /sys, raised to the measured FMA throughput when that is higher (a hidden boost clock).
    """
    from paddle_fcn.runtime import physical_cores

    info = _cpuinfo()
    cores = physical_cores()
    ghz, clock_src = _clock_ghz(info)
    family, model = (int(info.get(k, "0")) for k in ("cpu family", "model"))
    flop, why = fma_flop_per_cycle(info.get("flags", "").split(), info.get("vendor_id", ""),
                                   family, model)
    nominal = cores * (ghz or 0) * flop
    lines = [f"CPU: {info.get('model name', 'unknown')} ({info.get('vendor_id', '?')}, "
             f"family {family:#x}, model {model:#x})",
             f"cores: {cores} physical (sched affinity + /sys topology)",
             f"clock: {ghz or 0:.3f} GHz from {clock_src}",
             f"FLOP/cycle: {why}",
             f"derived peak: {cores} x {ghz or 0:.3f} GHz x {flop} = {nominal:.1f} GFLOP/s"]
    peak = CpuPeak(nominal, cores, ghz or 0.0, flop, lines)
    if measure:
        measured, how = measure_fma_peak(cores)
        lines.append(how)
        if measured is not None:
            peak.measured_gflops = measured
            if flop:
                lines.append(f"  = {measured / cores / flop:.2f} GHz effective per core at "
                             f"{flop} FLOP/cycle")
            if measured > nominal:
                peak.gflops = measured
                lines.append(f"peak used: measured {measured:.1f} GFLOP/s (> derived: the cores "
                             f"run above the reported clock)")
                return peak
    lines.append(f"peak used: derived {nominal:.1f} GFLOP/s")
    return peak
