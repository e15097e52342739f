"""One FCN trunk, several score heads: the reference SIFT Flow nets
(fcn.berkeleyvision.org ``siftflow-fcn{32,16,8}s/net.py``) score semantic and geometric classes
with two sets of ``score_fr`` / ``score_pool4`` / ``score_pool3`` / upsamplers on one VGG16,
trained with the two losses summed (Long, Shelhamer, Darrell, CVPR 2015, section 5, SIFT
Flow: "We learn a two-headed version of FCN-16s with semantic and geometric prediction layers
and losses").

``with_heads(fcn, heads)`` turns a built FCN into a ``MultiHeadFCN``: the FCN's own head is the
first head of ``heads`` (its layers keep their names, so ImageNet loading and staged
training read the same keys), every further head is a new FCN head of the same variant,
geometry, upsampler options and skip scales on the same backbone, under
``extra_heads.<name>.``. ``model(x)`` gives the first head's logits (evaluation, export
and predict see an ordinary FCN); ``model(x, all_heads=True)`` gives ``{name: logits}`` for
the training loss and the per-head metrics.
"""
import paddle
import paddle.nn as nn

from paddle_fcn.errors import check_num_classes
from paddle_fcn.models.fcn import FCN

__all__ = ["MultiHeadFCN", "with_heads"]


def _check_heads(heads, num_classes):
    if not isinstance(heads, dict) or len(heads) < 2:
        raise ValueError(f"heads must map two or more head names to class counts, e.g. "
                         f"{{semantic: 33, geometric: 3}}; got {heads!r}")
    for name, n in heads.items():
        if not isinstance(name, str):
            raise ValueError(f"heads: head name {name!r} must be a string")
        try:
            check_num_classes(n)
        except ValueError as e:
            raise ValueError(f"heads: {name!r}: {e}") from None
    first, n = next(iter(heads.items()))
    if n != num_classes:
        raise ValueError(f"heads: the first head {first!r} has {n} classes but num_classes is "
                         f"{num_classes}; num_classes is the first head's")


class MultiHeadFCN(nn.Layer):
    """An FCN whose backbone feeds several heads (module docstring); ``heads`` is the ordered
    ``{name: num_classes}``, ``num_classes`` the first head's."""

    def __init__(self, fcn, heads):
        super().__init__()
        _check_heads(heads, fcn.num_classes)
        self.heads = dict(heads)
        self.primary = next(iter(heads))
        self.num_classes, self.variant, self.geometry = fcn.num_classes, fcn.variant, \
            fcn.geometry
        self.normalization = fcn.normalization
        for name, layer in fcn.named_children():  # the first head's layers, same names
            self.add_sublayer(name, layer)
        self.__dict__["_first"] = fcn  # not a sublayer: its layers are registered above
        extra = {}
        for name, n in list(heads.items())[1:]:
            head = FCN(fcn.backbone, n, fcn.variant, fcn.geometry, fcn.learnable_upsample,
                       fcn.learnable_skip_upsample, fcn.skip_scales)
            head._sub_layers.pop("backbone")  # one trunk: registered once, here
            extra[name] = head
        self.extra_heads = nn.LayerDict(extra)

    def forward(self, x, all_heads=False):
        if paddle.in_dynamic_mode() and (x.ndim != 4 or x.shape[1] != 3):
            raise ValueError(f"FCN expects N x 3 x H x W images, got shape {list(x.shape)}")
        height, width = x.shape[2], x.shape[3]
        features = self.backbone(self._first.align.pad(x))
        first = self._first.decode(features, height, width)
        if not all_heads:
            return first
        scores = {self.primary: first}
        for name, head in self.extra_heads.items():
            scores[name] = head.decode(features, height, width)
        return scores


def with_heads(fcn, heads):
    """``MultiHeadFCN(fcn, heads)``; ``TypeError`` if ``fcn`` is not an FCN."""
    if not isinstance(fcn, FCN):
        raise TypeError(f"heads apply to FCN models, not {type(fcn).__name__}")
    return MultiHeadFCN(fcn, heads)
