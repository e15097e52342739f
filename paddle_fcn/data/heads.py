"""One label map for a net with several score heads (SIFT Flow: semantic + geometric).

The transforms, the padding collate and the loader move one uint8 ``HW`` label per image, so
the per-head labels travel packed in one: with head sizes ``n_0, n_1, ...`` (void written as
``n_i``), ``code = l_0 + (n_0 + 1) * (l_1 + (n_1 + 1) * (l_2 ...))``, which must stay below
255; 255 (the padding of crops and batches) means void in every head. Nearest-neighbour
resampling, crops and flips keep codes intact, so each head's label is exact after them.
"""
import numpy as np
import paddle

__all__ = ["HeadCodec"]


class HeadCodec:
    """Pack / unpack per-head labels. ``heads``: ordered ``{name: num_classes}``."""

    def __init__(self, heads, ignore_index=255):
        self.heads = dict(heads)
        self.ignore_index = ignore_index
        self.bases, base = {}, 1
        for name, n in self.heads.items():
            self.bases[name] = base
            base *= n + 1
        if base > 255:
            raise ValueError(f"heads {self.heads} need {base} label codes; at most 255 fit "
                             f"next to the padding value 255")

    def encode(self, labels):
        """``{name: uint8 HW}`` (255 = void) -> the packed uint8 ``HW`` code."""
        code = np.zeros(next(iter(labels.values())).shape, np.int64)
        for name, n in self.heads.items():
            label = np.asarray(labels[name]).astype(np.int64)
            label = np.where(label == self.ignore_index, n, label)
            code += self.bases[name] * label
        return code.astype(np.uint8)

    def decode(self, code, name):
        """Head ``name``'s labels (``ignore_index`` where void) from a packed code: a numpy
        array or an int64 paddle Tensor, returned as the same kind."""
        n = self.heads[name]
        label = (code // self.bases[name]) % (n + 1)
        void = (label == n) | (code == 255)
        if isinstance(code, paddle.Tensor):
            return paddle.where(void, paddle.full_like(label, self.ignore_index), label)
        return np.where(void, self.ignore_index, label).astype(np.int64)
