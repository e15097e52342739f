"""SGD with momentum, learning-rate groups and the iteration-based LR schedules.

Parameter groups (FCN reference solver, fcn.berkeleyvision.org ``net.py``): biases may get twice
the learning rate and no weight decay (``bias_lr_mult: 2``, ``bias_decay: false``); the
pretrained backbone may train slower than the new head (``backbone_lr_mult``). Parameters with
``stop_gradient=True`` (e.g. a frozen backbone stage) are never given to the optimizer, so they
get neither updates nor weight decay. Frozen bilinear upsamplers (docs/design.md#initialisation)
have no parameter at all.
"""
import math

import paddle

__all__ = ["IterLR", "build_optimizer", "param_groups"]


class IterLR(paddle.optimizer.lr.LRScheduler):
    """Learning rate as a function of the iteration, stepped once per optimizer update.

    ``kind``: ``constant``, ``poly`` (``(lr - end_lr) * (1 - t)^power + end_lr`` with ``t`` the
    fraction of the post-warm-up iterations done) or ``step`` (multiply by ``gamma`` at each
    milestone). A linear warm-up from ``warmup_start_lr`` over ``warmup_iters`` comes first;
    a warm-up longer than the run is clipped to it (``warmup_iters = total_iters``: a short
    smoke run of a long recipe ramps up over the whole run and stays well defined).
    State (``last_epoch`` = iterations done) is saved with the optimizer.
    """

    def __init__(self, learning_rate, total_iters, kind="poly", power=0.9, end_lr=0.0,
                 milestones=(), gamma=0.1, warmup_iters=0, warmup_start_lr=0.0):
        if kind not in ("constant", "poly", "step"):
            raise ValueError(f"lr_scheduler.type must be constant, poly or step, got {kind!r}")
        self.total_iters, self.kind, self.power, self.end_lr = total_iters, kind, power, end_lr
        self.milestones, self.gamma = sorted(milestones), gamma
        self.warmup_iters = min(warmup_iters, total_iters)
        self.warmup_start_lr = warmup_start_lr
        super().__init__(learning_rate=learning_rate)

    def state_keys(self):
        # the effective (clipped) warm-up is saved: a smoke run resumed with more iterations
        # keeps its ramp instead of starting a new one midway
        self.keys = ["last_epoch", "last_lr", "warmup_iters"]

    def get_lr(self):
        it = self.last_epoch
        if it < self.warmup_iters:
            frac = it / self.warmup_iters
            return self.warmup_start_lr + (self.base_lr - self.warmup_start_lr) * frac
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            return self.base_lr * self.gamma ** sum(it >= m for m in self.milestones)
        span = max(1, self.total_iters - self.warmup_iters)
        t = min(1.0, (it - self.warmup_iters) / span)
        return (self.base_lr - self.end_lr) * math.pow(1.0 - t, self.power) + self.end_lr


def param_groups(model, opt_cfg):
    """Split the trainable parameters of ``model`` into optimizer groups.

    Returns a list of ``{"params", "learning_rate" (a multiplier), "weight_decay"}`` dicts,
    empty groups dropped. Backbone = parameters of ``model.backbone``.
    """
    backbone_ids = {id(p) for p in model.backbone.parameters()}
    groups = {}
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        is_bias = name.endswith("bias") or p.ndim == 1
        lr = opt_cfg.backbone_lr_mult if id(p) in backbone_ids else 1.0
        decay = opt_cfg.weight_decay
        if is_bias:
            lr *= opt_cfg.bias_lr_mult
            decay = decay if opt_cfg.bias_decay else 0.0
        groups.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "learning_rate": lr, "weight_decay": decay}
            for (lr, decay), ps in groups.items()]


def build_optimizer(model, cfg):
    """SGD with momentum for ``model`` from a Config; returns ``(optimizer, IterLR)``."""
    s, o = cfg.lr_scheduler, cfg.optimizer
    if o.type != "sgd":
        raise ValueError(f"optimizer.type: only 'sgd' is supported (the paper's), got {o.type!r}")
    sched = IterLR(s.learning_rate, cfg.iters, kind=s.type, power=s.power, end_lr=s.end_lr,
                   milestones=s.milestones, gamma=s.gamma, warmup_iters=s.warmup_iters,
                   warmup_start_lr=s.warmup_start_lr)
    clip = paddle.nn.ClipGradByGlobalNorm(o.grad_clip_norm) if o.grad_clip_norm else None
    groups = param_groups(model, o)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    opt = paddle.optimizer.Momentum(learning_rate=sched, momentum=o.momentum,
                                    parameters=groups, use_nesterov=o.nesterov,
                                    weight_decay=o.weight_decay, grad_clip=clip)
    return opt, sched
