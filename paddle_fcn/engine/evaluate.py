"""Evaluation over a whole split: one confusion matrix, the paper's four metrics
(docs/design.md#metrics)."""
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import paddle
import paddle.distributed as dist
from tqdm import tqdm

from paddle_fcn.errors import DataError
from paddle_fcn.data.loader import sample_name
from paddle_fcn.inference.tta import predict_probs
from paddle_fcn.metrics import ConfusionMatrix, SegMetrics

__all__ = ["EvalResult", "evaluate", "metrics_dict"]


@dataclass
class EvalResult:
    """What ``evaluate`` returns.

    ``metrics``: ``SegMetrics`` over the whole split (all ranks). ``samples``: up to
    ``keep_samples`` tuples ``(image CHW normalised, label HW, prediction HW)`` as numpy arrays,
    for visualisation (this rank's images). ``seconds``: wall time. ``matrix``: the int64
    ``[C, C]`` confusion matrix of the whole split (summed over ranks) behind ``metrics``.
    ``heads``: for a multi-head model on a data set labelling every head, ``{name:
    SegMetrics}`` of each head; ``metrics``, ``matrix`` and ``samples`` are the first head's.
    """
    metrics: SegMetrics
    samples: list = field(default_factory=list)
    seconds: float = 0.0
    matrix: Optional[np.ndarray] = None
    heads: dict = field(default_factory=dict)


def _shard(n, rank, world):
    return list(range(rank, n, world))


def _eval_heads(model, dataset, num_classes):
    """``{name: (classes, scores callable, label of head from the packed label)}``: every
    head of a multi-head model when the data set labels them all, else the model's output."""
    heads = getattr(model, "heads", None)
    if not heads or getattr(dataset, "heads", None) != heads:
        return {None: (num_classes, model, lambda label: label)}
    codec = dataset.codec
    return {name: (n, (lambda x, name=name: model(x, all_heads=True)[name]),
                   (lambda label, name=name: codec.decode(label, name)))
            for name, n in heads.items()}


def _merged(matrix, num_classes, ignore_index, world_size):
    """The confusion matrix summed over the ranks, as a ConfusionMatrix."""
    if world_size > 1:
        t = paddle.to_tensor(matrix)
        dist.all_reduce(t)
        matrix = t.numpy()
    total = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    total.merge(matrix)
    return total


@paddle.no_grad()
def evaluate(model, dataset, num_classes, test_cfg=None, ignore_index=255, keep_samples=0,
             progress=True, rank=0, world_size=1):
    """Evaluate ``model`` on every image of ``dataset`` at its own resolution (batch 1).

    With ``world_size > 1`` (a process group initialised, every rank calling this) each rank
    evaluates every ``world_size``-th image and the int64 confusion matrices are summed
    across ranks, so every rank gets exactly the matrix of a single-process evaluation -
    provided all ranks hold the same weights (the trainer broadcasts rank 0's BatchNorm
    statistics first).
    The model is put in eval mode and restored to its previous mode afterwards. A label value
    that is neither a class nor ``ignore_index`` raises DataError naming the label file and
    the values. A multi-head model on a data set with the same ``heads`` is scored per head
    (``EvalResult.heads``; each head runs the whole pipeline of ``test_cfg``).
    """
    was_training = model.training
    model.eval()
    start = time.time()
    heads = _eval_heads(model, dataset, num_classes)
    cms = {name: ConfusionMatrix(n, ignore_index=ignore_index) for name, (n, _, _) in
           heads.items()}
    samples = []
    indices = _shard(len(dataset), rank, world_size)
    bar = tqdm(indices, desc="eval", disable=not progress or rank != 0, leave=False)
    for i in bar:
        image, packed = dataset[i]
        x = paddle.to_tensor(np.ascontiguousarray(image)[None])
        for k, (name, (_, scores, unpack)) in enumerate(heads.items()):
            pred = predict_probs(scores, x, test_cfg).argmax(axis=1)[0].numpy()
            label = np.asarray(unpack(np.asarray(packed)))
            try:
                cms[name].update(pred, label)
            except ValueError as e:
                raise DataError(f"{sample_name(dataset, i)}: {e}") from None
            if k == 0 and len(samples) < keep_samples:
                samples.append((np.asarray(image), label, pred))
    totals = {name: _merged(cm.matrix, cm.num_classes, ignore_index, world_size)
              for name, cm in cms.items()}
    if was_training:
        model.train()
    first = next(iter(totals.values()))
    per_head = {name: cm.compute() for name, cm in totals.items() if name is not None}
    return EvalResult(metrics=first.compute(), samples=samples, seconds=time.time() - start,
                      matrix=first.matrix, heads=per_head)


def metrics_dict(result, dataset):
    """The ``metrics.json`` content of an ``EvalResult``: the four metrics and per-class IoU,
    plus ``heads: {name: the same}`` for a multi-head evaluation."""
    out = result.metrics.to_dict(dataset.class_names)
    if result.heads:
        out["heads"] = {name: m.to_dict(dataset.head_class_names[name])
                        for name, m in result.heads.items()}
    return out
