"""Per-pixel softmax cross-entropy, the FCN training loss (SPEC §8).

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
import paddle
import paddle.nn.functional as F

__all__ = ["SegmentationLoss"]


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
