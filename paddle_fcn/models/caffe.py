"""Reading Caffe ``.caffemodel`` weight files (BVLC Caffe, BSD-2), with ``protobuf``.

The schema is the few messages of Caffe's ``src/caffe/proto/caffe.proto`` that hold weights,
written below as descriptor protos (same field numbers; every other field of a real file is
kept by protobuf as an unknown field and ignored):

* ``NetParameter``: ``name`` 1, ``layer`` 100 (``LayerParameter``, current "V2" files),
  ``layers`` 2 (``V1LayerParameter``, older files such as Caffe's ImageNet VGG16).
* ``LayerParameter``: ``name`` 1, ``type`` 2 (a string: "Convolution", ...), ``blobs`` 7.
* ``V1LayerParameter``: ``name`` 4, ``type`` 5 (an enum, read as its number:
  CONVOLUTION = 4, INNER_PRODUCT = 14, DECONVOLUTION = 39), ``blobs`` 6.
* ``BlobProto``: ``shape`` 7 (``BlobShape``: repeated int64 ``dim`` 1) or the legacy
  ``num`` 1 / ``channels`` 2 / ``height`` 3 / ``width`` 4; values in ``data`` 5 (packed
  float) or ``double_data`` 8 (packed double).

Memory: the file is mapped (``mmap``: the page cache, no copy of its bytes on the heap) and
parsed by protobuf, which holds every value once (its own copy, which it needs); each blob is
copied once more, into its numpy array, with ``np.fromiter`` (no Python list in between).
The peak is therefore about twice the file size, until the parsed message is dropped when
``read_caffemodel`` returns (``benchmarks/bench_caffe_read.py`` measures it;
docs/performance.md#reading-a-caffemodel).
"""
import mmap
import os

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from paddle_fcn.errors import WeightsError

__all__ = ["CaffeLayer", "read_caffemodel", "caffe_messages", "V1_TYPES"]

# V1LayerParameter.LayerType values of the layers that have weights.
V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}

_FD = descriptor_pb2.FieldDescriptorProto
_MESSAGES = {  # message -> [(field, number, type, label, message type)]
    "BlobShape": [("dim", 1, _FD.TYPE_INT64, _FD.LABEL_REPEATED, None)],
    "BlobProto": [
        ("num", 1, _FD.TYPE_INT32, _FD.LABEL_OPTIONAL, None),
        ("channels", 2, _FD.TYPE_INT32, _FD.LABEL_OPTIONAL, None),
        ("height", 3, _FD.TYPE_INT32, _FD.LABEL_OPTIONAL, None),
        ("width", 4, _FD.TYPE_INT32, _FD.LABEL_OPTIONAL, None),
        ("data", 5, _FD.TYPE_FLOAT, _FD.LABEL_REPEATED, None),
        ("shape", 7, _FD.TYPE_MESSAGE, _FD.LABEL_OPTIONAL, "BlobShape"),
        ("double_data", 8, _FD.TYPE_DOUBLE, _FD.LABEL_REPEATED, None),
    ],
    "LayerParameter": [
        ("name", 1, _FD.TYPE_STRING, _FD.LABEL_OPTIONAL, None),
        ("type", 2, _FD.TYPE_STRING, _FD.LABEL_OPTIONAL, None),
        ("blobs", 7, _FD.TYPE_MESSAGE, _FD.LABEL_REPEATED, "BlobProto"),
    ],
    "V1LayerParameter": [
        ("name", 4, _FD.TYPE_STRING, _FD.LABEL_OPTIONAL, None),
        ("type", 5, _FD.TYPE_INT32, _FD.LABEL_OPTIONAL, None),  # enum LayerType on the wire
        ("blobs", 6, _FD.TYPE_MESSAGE, _FD.LABEL_REPEATED, "BlobProto"),
    ],
    "NetParameter": [
        ("name", 1, _FD.TYPE_STRING, _FD.LABEL_OPTIONAL, None),
        ("layers", 2, _FD.TYPE_MESSAGE, _FD.LABEL_REPEATED, "V1LayerParameter"),
        ("layer", 100, _FD.TYPE_MESSAGE, _FD.LABEL_REPEATED, "LayerParameter"),
    ],
}
_PACKAGE = "paddle_fcn_caffe"  # own package name: never clashes with a real caffe_pb2
_CLASSES = {}


def caffe_messages():
    """``{name: message class}`` for the messages above (built once, proto2 semantics)."""
    if not _CLASSES:
        proto = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE,
                                                   syntax="proto2")
        for message, fields in _MESSAGES.items():
            desc = proto.message_type.add(name=message)
            for name, number, kind, label, type_name in fields:
                field = desc.field.add(name=name, number=number, type=kind, label=label)
                if type_name:
                    field.type_name = f".{_PACKAGE}.{type_name}"
                if kind in (_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE, _FD.TYPE_INT64) \
                        and label == _FD.LABEL_REPEATED:
                    field.options.packed = True  # as caffe.proto; both encodings parse
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        for message in _MESSAGES:
            _CLASSES[message] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"{_PACKAGE}.{message}"))
    return _CLASSES


class CaffeLayer:
    """One layer of a caffemodel that has weights: ``name``, ``type`` (V2 spelling, e.g.
    "Convolution"; V1 enum values without weights-bearing meaning as ``"V1 type N"``) and
    ``blobs`` (float32 numpy arrays in Caffe's layout and shape)."""

    def __init__(self, name, type, blobs):
        self.name, self.type, self.blobs = name, type, blobs

    def __repr__(self):
        shapes = ", ".join(str(list(b.shape)) for b in self.blobs)
        return f"CaffeLayer({self.name!r}, {self.type!r}, [{shapes}])"


def _blob_shape(blob, where):
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    legacy = (blob.num, blob.channels, blob.height, blob.width)
    if any(legacy):  # V1: a bias is 1 x 1 x 1 x N; leading 1s are not dimensions
        dims = list(legacy)
        while len(dims) > 1 and dims[0] == 1:
            dims.pop(0)
        return tuple(dims)
    raise WeightsError(f"{where}: blob has neither a shape nor num/channels/height/width")


def _blob_array(blob, where):
    shape = _blob_shape(blob, where)
    count = int(np.prod(shape))
    if len(blob.data):
        values = np.fromiter(blob.data, np.float32, count=len(blob.data))
    else:
        values = np.fromiter(blob.double_data, np.float64,
                             count=len(blob.double_data)).astype(np.float32)
    if values.size != count:
        raise WeightsError(f"{where}: blob of shape {list(shape)} holds {values.size} values "
                           f"instead of {count}")
    return values.reshape(shape)


def _parse(path):
    net = caffe_messages()["NetParameter"]()
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise WeightsError(f"{path} is empty, not a Caffe .caffemodel")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data, \
                memoryview(data) as view:  # upb parses a buffer, not an mmap object
            try:
                net.ParseFromString(view)
            except (DecodeError, RuntimeError, ValueError) as e:
                raise WeightsError(
                    f"{path} is not a Caffe .caffemodel (binary NetParameter): {e}; a "
                    f".prototxt is the net definition, not its weights") from None
    return net


def read_caffemodel(path):
    """``{layer name: CaffeLayer}`` of the layers of ``path`` that hold blobs, in file order.

    Both layouts are read (``layer``, else the V1 ``layers``). Raises ``WeightsError`` naming
    the file for a missing file, one that does not parse as a NetParameter, one without
    layers, a blob whose values do not fill its shape, and a layer name given twice.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    net = _parse(path)
    if len(net.layer):
        entries = [(layer, layer.type) for layer in net.layer]
    else:
        entries = [(layer, V1_TYPES.get(layer.type, f"V1 type {layer.type}"))
                   for layer in net.layers]
    if not entries or not any(layer.name for layer, _ in entries):
        raise WeightsError(f"{path} is not a Caffe .caffemodel: it parses, but holds no named "
                           f"layers (layer / layers of a NetParameter)")
    layers = {}
    for layer, kind in entries:
        if not len(layer.blobs):
            continue  # ReLU, Pooling, Crop, Data, losses...
        if layer.name in layers:
            raise WeightsError(f"{path}: layer {layer.name!r} appears twice")
        blobs = [_blob_array(b, f"{path}: layer {layer.name!r} blob {i}")
                 for i, b in enumerate(layer.blobs)]
        layers[layer.name] = CaffeLayer(layer.name, kind, blobs)
    return layers
