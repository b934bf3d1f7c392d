"""Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms")."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._base import ProjectOptimizer, lr_value, resolve_foreach


@register("lion")
class Lion(ProjectOptimizer):
    r"""Per parameter tensor, in this order:

        w <- w * (1 - lr * weight_decay)            (decoupled weight decay)
        u  = sign(beta1 * m + (1 - beta1) * g)      (interpolate, then sign)
        w <- w - lr * u
        m <- beta2 * m + (1 - beta2) * g            (m_0 = 0)

    Defaults (paper / lucidrains port): lr 1e-4, betas (0.9, 0.99), weight_decay 0.
    With beta1 = beta2 and weight_decay 0 this is exactly ``signum``. Per-element: param
    groups behave like separate optimizers. State: per parameter ``exp_avg`` (m);
    ``step_size`` = first group's lr. The port's option that rescales wd by 1/initial lr is
    not offered (set weight_decay accordingly).
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple = (0.9, 0.99), weight_decay: float = 0.0,
                 foreach: bool | None = None):
        b1, b2 = betas
        if lr < 0 or not (0 <= b1 <= 1 and 0 <= b2 <= 1) or weight_decay < 0:
            raise ValueError("need lr >= 0, betas in [0, 1], weight_decay >= 0")
        super().__init__(params, dict(lr=lr, betas=(float(b1), float(b2)), weight_decay=weight_decay,
                                      foreach=foreach))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._torch_style_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            ms = []
            for p in params:
                st = self.state[p]
                if "exp_avg" not in st:
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ms.append(st["exp_avg"])
            lr, wd = group["lr"], group["weight_decay"]
            b1, b2 = group["betas"]
            # b m + (1 - b) g is computed as lerp(m, g, 1 - b) (one pass)
            if resolve_foreach(group["foreach"], params):
                if wd != 0:
                    torch._foreach_mul_(params, 1 - lr * wd)
                u = torch._foreach_lerp(ms, grads, 1 - b1)
                torch._foreach_sign_(u)
                torch._foreach_add_(params, u, alpha=-lr)
                torch._foreach_lerp_(ms, grads, 1 - b2)
            else:
                for p, g, m in zip(params, grads, ms):
                    if wd != 0:
                        p.mul_(1 - lr * wd)
                    p.add_(torch.lerp(m, g, 1 - b1).sign_(), alpha=-lr)
                    m.lerp_(g, 1 - b2)
        self.state["step_size"] = lr_value(self.param_groups[0]["lr"])
        return loss
