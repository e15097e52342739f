"""engine/loss.py: cross-entropy with void, sum/mean reductions, class weights, and the
micro-batch weights that make accumulated batches equal the big batch, against known answers."""
import math

import numpy as np
import paddle
import pytest

from paddle_fcn.engine.distributed import micro_batch_weights
from paddle_fcn.engine.loss import MultiHeadLoss, SegmentationLoss


def test_loss_mean_ignores_void_and_sum_is_reference():
    # Two classes, logits 0 everywhere -> per-pixel CE = ln 2; 3 valid pixels, 1 void.
    logits = paddle.zeros([1, 2, 2, 2])
    label = paddle.to_tensor([[[0, 1], [255, 1]]], dtype="int64")
    mean = SegmentationLoss(2)(logits, label)
    total = SegmentationLoss(2, reduction="sum")(logits, label)
    assert float(mean) == pytest.approx(math.log(2), rel=1e-6)
    assert float(total) == pytest.approx(3 * math.log(2), rel=1e-6)


def test_sum_loss_divides_by_the_number_of_images():
    # Caffe's normalize: false (BATCH_SIZE): 3 + 3 valid pixels of ln 2 each, over 2 images.
    logits = paddle.zeros([2, 2, 2, 2])
    label = paddle.to_tensor([[[0, 1], [255, 1]], [[1, 1], [0, 255]]], dtype="int64")
    total = SegmentationLoss(2, reduction="sum")(logits, label)
    assert float(total) == pytest.approx(6 * math.log(2) / 2, rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_accumulated_micro_batches_equal_the_big_batch(reduction):
    # Micro-batches of 2, 1 and 3 images with different amounts of void (world size 1).
    rng = np.random.RandomState(0)
    labels = [rng.randint(0, 3, size=(n, 4, 5)).astype("int64") for n in (2, 1, 3)]
    labels[0][0, :2] = 255
    logits = [paddle.to_tensor(rng.randn(n, 3, 4, 5).astype("float32")) for n in (2, 1, 3)]
    loss_fn = SegmentationLoss(3, reduction=reduction)
    weights = micro_batch_weights(loss_fn, [paddle.to_tensor(y) for y in labels])
    split = sum(w * float(loss_fn(x, paddle.to_tensor(y)))
                for w, x, y in zip(weights, logits, labels))
    whole = float(loss_fn(paddle.concat(logits), paddle.to_tensor(np.concatenate(labels))))
    assert split == pytest.approx(whole, rel=1e-6)


def test_loss_class_weights_normalise_by_weight_sum():
    logits = paddle.zeros([1, 2, 1, 3])
    label = paddle.to_tensor([[[0, 1, 1]]], dtype="int64")
    loss = SegmentationLoss(2, class_weights=[1.0, 3.0])(logits, label)
    # (1 + 3 + 3) ln2 / (1 + 3 + 3) = ln 2
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="class_weights has 3 entries"):
        SegmentationLoss(2, class_weights=[1.0, 1.0, 1.0])


def test_loss_normalizer_counts_valid_pixels_or_their_weights():
    label = paddle.to_tensor([[[0, 255], [1, 1]]], dtype="int64")
    assert float(SegmentationLoss(2).normalizer(label)) == 3.0
    assert float(SegmentationLoss(2, class_weights=[1.0, 3.0]).normalizer(label)) == 7.0


def test_loss_all_void_is_zero_not_nan():
    label = paddle.full([1, 2, 2], 255, dtype="int64")
    assert float(SegmentationLoss(3)(paddle.randn([1, 3, 2, 2]), label)) == 0.0



@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_two_headed_micro_batches_equal_the_big_batch(reduction):
    """Each head's term is weighted by its own valid pixels: micro-batches whose heads have
    different amounts of void (one with a head entirely void) still sum to the big batch."""
    heads = {"semantic": 4, "geometric": 3}
    loss_fn = MultiHeadLoss(heads, reduction=reduction)
    rng = np.random.RandomState(1)
    labels, logits = [], []
    for m, n in enumerate((2, 1, 3)):
        semantic = rng.randint(0, 4, size=(n, 4, 5))
        geometric = rng.randint(0, 3, size=(n, 4, 5))
        semantic[0, : 3 - m] = 255
        if m == 1:
            geometric[:] = 255
        labels.append(np.stack([loss_fn.codec.encode({"semantic": s, "geometric": g})
                                for s, g in zip(semantic.astype(np.uint8),
                                                geometric.astype(np.uint8))]).astype("int64"))
        logits.append({h: paddle.to_tensor(rng.randn(n, c, 4, 5).astype("float32"))
                       for h, c in heads.items()})
    weights = micro_batch_weights(loss_fn, [paddle.to_tensor(y) for y in labels])
    split = sum(float(loss_fn.weighted(x, paddle.to_tensor(y), w))
                for w, x, y in zip(weights, logits, labels))
    whole = float(loss_fn({h: paddle.concat([x[h] for x in logits]) for h in heads},
                          paddle.to_tensor(np.concatenate(labels))))
    assert split == pytest.approx(whole, rel=1e-6)
    if reduction == "mean":
        assert weights[1][1] == 0.0 and weights[1][0] > 0  # geometric void, semantic not
