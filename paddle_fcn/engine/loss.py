"""Per-pixel softmax cross-entropy, the FCN training loss (docs/design.md#training-recipe).

The reference FCN nets (fcn.berkeleyvision.org ``net.py``) use Caffe's ``SoftmaxWithLoss`` with
``loss_param { ignore_label: 255 normalize: false }`` and compensate with a tiny learning rate
(1e-10 for FCN-32s with momentum 0.99). In Caffe, ``normalize: false`` selects the
normalization mode ``BATCH_SIZE``: the loss summed over the valid pixels is divided by the
number of images N, not left as a sum over the batch (``caffe/src/caffe/layers/
softmax_loss_layer.cpp``: ``LayerSetUp`` maps ``normalize`` false to ``BATCH_SIZE``, and
``get_normalizer`` returns ``outer_num_`` = N for it). That is ``reduction="sum"`` here; the
blog and most toolkits average over the valid pixels instead (``reduction="mean"``, Caffe's
``VALID``).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

__all__ = ["SegmentationLoss", "MultiHeadLoss", "build_loss"]


class SegmentationLoss:
    """Cross-entropy over ``N x C x H x W`` logits and ``N x H x W`` int64 labels.

    Args:
        num_classes: C; ``class_weights`` (if given) must have C entries.
        ignore_index: label value that contributes nothing (VOC's void label 255).
        reduction: ``"mean"`` divides by ``normalizer(label)``, the number of valid pixels (their
            summed class weight when weighted, as PyTorch does); ``"sum"`` is the Caffe
            reference: the sum over the valid pixels divided by the number of images N (so a
            batch of N images gives the mean of the per-image sums, whatever N is).
        class_weights: optional per-class weights.

    Returns a scalar tensor. A batch with no valid pixel gives 0 (not NaN) so that a crop of
    pure void does not poison training.
    """

    def __init__(self, num_classes, ignore_index=255, reduction="mean", class_weights=None):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"loss.reduction must be 'mean' or 'sum', got {reduction!r}")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ValueError(
                f"loss.class_weights has {len(class_weights)} entries but num_classes is "
                f"{num_classes}"
            )
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.weight = None if class_weights is None else paddle.to_tensor(
            class_weights, dtype="float32")

    def __call__(self, logits, label):
        per_pixel = F.cross_entropy(logits, label, weight=self.weight, axis=1,
                                    ignore_index=self.ignore_index, reduction="none")
        total = per_pixel.sum()
        if self.reduction == "sum":
            return total / label.shape[0]
        return total / paddle.clip(self.normalizer(label), min=1e-12)

    def weighted(self, logits, label, weight):
        """The loss times ``weight``, the float ``distributed.micro_batch_weights`` gives a
        micro-batch."""
        return self(logits, label) * weight

    def normalizer(self, label):
        """The ``"mean"`` denominator of ``label`` (``N x H x W`` int64), a float32 scalar Tensor.

        The number of pixels whose label is not ``ignore_index``; with ``class_weights``, the sum
        of their classes' weights instead. 0 when every pixel is void (``__call__`` then returns
        0). Data-parallel training sums it over micro-batches and ranks to weight each
        micro-batch's mean loss (``distributed.micro_batch_weights``).
        """
        valid = (label != self.ignore_index).astype("float32")
        if self.weight is not None:
            safe = paddle.where(label == self.ignore_index, paddle.zeros_like(label), label)
            valid = valid * paddle.gather(self.weight, safe.flatten()).reshape(label.shape)
        return valid.sum()


class MultiHeadLoss:
    """The sum of one ``SegmentationLoss`` per score head of a multi-head FCN
    (``models.multihead``): the reference SIFT Flow nets sum a semantic and a geometric
    ``SoftmaxWithLoss``. ``logits``: ``{name: N x C_name x H x W}``; ``label``: the packed
    ``N x H x W`` map of ``data.heads.HeadCodec``, unpacked per head here.

    ``normalizer`` counts the valid pixels of each head, so ``distributed.micro_batch_weights``
    weights each head's term of a micro-batch by its own share: an accumulated or
    data-parallel step with ``reduction="mean"`` equals one big batch, head by head, as with
    ``"sum"`` (the reference recipe). ``class_weights`` are refused: they are per class of one
    head.
    """

    all_heads = True  # the trainer asks the model for every head's logits

    def __init__(self, heads, ignore_index=255, reduction="mean", class_weights=None):
        if class_weights is not None:
            raise ValueError("loss.class_weights cannot be used with a multi-head model: the "
                             "heads have different classes")
        from paddle_fcn.data.heads import HeadCodec  # engine -> data, as the trainer

        self.codec = HeadCodec(heads, ignore_index)
        self.losses = {name: SegmentationLoss(n, ignore_index, reduction)
                       for name, n in heads.items()}
        self.ignore_index, self.reduction = ignore_index, reduction

    def __call__(self, logits, label):
        return self.weighted(logits, label, 1.0)

    def weighted(self, logits, label, weight):
        """Sum over the heads of each head's loss times its weight: ``weight`` is one float
        for all, or one per head in ``heads`` order (``distributed.micro_batch_weights``)."""
        weight = np.broadcast_to(np.asarray(weight, np.float64), (len(self.losses),))
        total = 0.0
        for w, (name, loss) in zip(weight, self.losses.items()):
            total = total + loss(logits[name], self.codec.decode(label, name)) * float(w)
        return total

    def normalizer(self, label):
        """Each head's ``SegmentationLoss.normalizer``: a float32 Tensor ``[heads]``."""
        return paddle.stack([loss.normalizer(self.codec.decode(label, name))
                             for name, loss in self.losses.items()])


def build_loss(loss_cfg, num_classes, heads=None):
    """``SegmentationLoss`` from the ``loss`` config, or ``MultiHeadLoss`` when the model has
    ``heads`` (``{name: num_classes}``)."""
    if heads:
        return MultiHeadLoss(heads, loss_cfg.ignore_index, loss_cfg.reduction,
                             loss_cfg.class_weights)
    return SegmentationLoss(num_classes, loss_cfg.ignore_index, loss_cfg.reduction,
                            loss_cfg.class_weights)
