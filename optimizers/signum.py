"""Signum: sign of the gradient EMA (Bernstein et al. 2018; the ``Signum`` class of
Kunstner et al.'s 2023 code)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._base import ProjectOptimizer, lr_value, resolve_foreach


@register("signum")
class Signum(ProjectOptimizer):
    r"""buf <- momentum * buf + (1 - momentum) * g (buf_0 = 0); w <- w - lr * sign(buf).

    The sign is taken *after* the average, so every coordinate moves by exactly lr (unlike
    ``sign_descent`` with momentum). ``momentum=0`` is sign descent. Lion with
    beta1 = beta2 = momentum and no weight decay is exactly Signum. Per-element: param
    groups behave like separate optimizers. Defaults: lr 1e-3, momentum 0.9.
    State: per parameter ``momentum_buffer``; ``step_size`` = first group's lr.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.9, foreach: bool | None = None):
        if lr < 0 or not (0 <= momentum < 1):
            raise ValueError("need lr >= 0 and 0 <= momentum < 1")
        super().__init__(params, dict(lr=lr, momentum=momentum, foreach=foreach))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._torch_style_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(st["momentum_buffer"])
            b, lr = group["momentum"], group["lr"]
            # b m + (1 - b) g computed as lerp(m, g, 1 - b): one pass (same values up to
            # rounding; Lion uses the same kernel, so Lion(b, b) == Signum(b) bit for bit)
            if resolve_foreach(group["foreach"], params):
                torch._foreach_lerp_(bufs, grads, 1 - b)
                torch._foreach_add_(params, torch._foreach_sign(bufs), alpha=-lr)
            else:
                for p, g, m in zip(params, grads, bufs):
                    m.lerp_(g, 1 - b)
                    p.add_(m.sign(), alpha=-lr)
        self.state["step_size"] = lr_value(self.param_groups[0]["lr"])
        return loss
