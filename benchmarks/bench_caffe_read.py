"""Reading a full-size Caffe file: time and peak memory of ``read_caffemodel`` (figures only).

Writes a VGG16 FCN-8s-sized ``.caffemodel`` (134 M random float32 values, ~540 MB, the size
of ``fcn8s-heavy-pascal.caffemodel``) into a temporary folder, then reads it in a fresh
process and prints the seconds and the peak resident memory against the file size. Nothing is
downloaded. Writing the file takes about a minute (protobuf copies value by value).

    python benchmarks/bench_caffe_read.py [--width 64]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import paddle_fcn  # noqa: F401  (CPU runtime settings before paddle loads)

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec from the forked parent.
_READ = """
import sys, time
from paddle_fcn.models.caffe import read_caffemodel
def vm(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))
base = vm("VmRSS")
start = time.time()
layers = read_caffemodel(sys.argv[1])
seconds = time.time() - start
values = sum(b.size for layer in layers.values() for b in layer.blobs)
print(seconds, base, vm("VmHWM"), values)
"""


def _write(path, width):
    import numpy as np

    from paddle_fcn.models import build_model
    from paddle_fcn.models.caffe import caffe_messages

    model = build_model("fcn8s_vgg16", 21, geometry="caffe", width=width,
                        learnable_skip_upsample=False)
    net = caffe_messages()["NetParameter"](name="bench")
    groups = {}
    for key, value in model.state_dict().items():
        name = key.replace("backbone.", "").rsplit(".", 1)[0]
        groups.setdefault(name, []).append(value.numpy())
    for name, blobs in groups.items():
        layer = net.layer.add(name=name, type="Convolution")
        for blob in blobs:
            proto = layer.blobs.add()
            proto.shape.dim.extend(blob.shape)
            proto.data.extend(np.ascontiguousarray(blob, np.float32).ravel())
    with open(path, "wb") as f:
        f.write(net.SerializeToString())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--width", type=int, default=64, help="VGG16 width (64: the real size)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.caffemodel")
        start = time.time()
        _write(path, args.width)
        size = os.path.getsize(path)
        print(f"wrote {size / 1e6:.0f} MB in {time.time() - start:.0f} s")
        done = subprocess.run([sys.executable, "-c", _READ, path], capture_output=True,
                              text=True, check=True)
        seconds, base, peak, values = (float(v) for v in done.stdout.split()[-4:])
        grown = peak - base
        print(f"read_caffemodel: {seconds:.1f} s, {values / 1e6:.0f} M values; peak resident "
              f"memory {base / 1e6:.0f} MB after the imports + {grown / 1e6:.0f} MB for the read "
              f"= {grown / size:.2f} x the file")


if __name__ == "__main__":
    main()
