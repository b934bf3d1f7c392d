""""Direction, then heavy-ball momentum" engine of Kunstner et al.'s sign-type methods
(``sign_descent``, ``normalized_gd``, ``rescaled_sign``)."""
from __future__ import annotations

import torch

from optimizers._base import ProjectOptimizer, lr_value, resolve_foreach


class HeavyBallOnDirection(ProjectOptimizer):
    """d = direction(g) per param group; buf <- momentum * buf + d (buf = d on the first
    step: PyTorch convention, no dampening); w <- w - lr * buf. momentum = 0: w <- w - lr d.

    Used like torch.optim.SGD (trainer calls backward, then ``step()``; an optional
    closure follows the torch convention and calls backward itself)."""

    def __init__(self, params, lr: float, momentum: float, foreach: bool | None):
        if lr < 0 or not (0 <= momentum < 1):
            raise ValueError("need lr >= 0 and 0 <= momentum < 1")
        super().__init__(params, dict(lr=lr, momentum=momentum, foreach=foreach))

    def _direction(self, grads: list, foreach: bool):
        """Return (d, scale, owned): the direction is scale * d; ``owned`` says d holds
        fresh tensors the optimizer may overwrite (False when d are the gradients). ``scale``
        is a Python float or a 0-dim tensor on the device (a norm: never read on the host)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """No host read: norms stay on the device as 0-dim tensors and enter the update as
        tensor operands (``addcmul_`` with a 0-dim factor computes exactly what ``add_``
        with the same ``alpha`` computes; the foreach path multiplies in one fused pass)."""
        loss = self._torch_style_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            foreach = resolve_foreach(group["foreach"], params)
            d, scale, owned = self._direction(grads, foreach)
            dev_scale = isinstance(scale, torch.Tensor)
            lr, mom = group["lr"], group["momentum"]
            if mom != 0:
                states = [self.state[p] for p in params]
                bufs = []
                for p, st in zip(params, states):
                    if "momentum_buffer" not in st:
                        st["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    bufs.append(st["momentum_buffer"])
                if owned and not dev_scale and scale == 1.0:
                    # new buffer = d + mom * buf, written into d (one pass), d becomes the buffer
                    if foreach:
                        torch._foreach_add_(d, bufs, alpha=mom)
                    else:
                        for di, b in zip(d, bufs):
                            di.add_(b, alpha=mom)
                    for st, di in zip(states, d):
                        st["momentum_buffer"] = di
                elif foreach:
                    torch._foreach_mul_(bufs, mom)
                    if dev_scale:
                        torch._foreach_add_(bufs, torch._foreach_mul(d, scale.to(d[0].dtype)))
                    else:
                        torch._foreach_add_(bufs, d, alpha=scale)
                    d = bufs
                else:
                    for b, di in zip(bufs, d):
                        b.mul_(mom)
                        if dev_scale:
                            b.addcmul_(di, scale)
                        else:
                            b.add_(di, alpha=scale)
                    d = bufs
                scale = 1.0
                dev_scale = False
            if dev_scale:
                coef = scale * -lr  # 0-dim: -lr * scale, as the Python float alpha would be
                if foreach:
                    torch._foreach_add_(params, torch._foreach_mul(d, coef.to(d[0].dtype)))
                else:
                    for p, di in zip(params, d):
                        p.addcmul_(di, coef)
            elif foreach:
                torch._foreach_add_(params, d, alpha=-lr * scale)
            else:
                for p, di in zip(params, d):
                    p.add_(di, alpha=-lr * scale)
        self.state["step_size"] = lr_value(self.param_groups[0]["lr"])
        return loss
