"""SVRG: stochastic variance-reduced gradient (Johnson & Zhang 2013)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._base import CLOSURE_CONTRACT, ProjectOptimizer, RNGSnapshot, lr_value


@register("svrg")
class SVRG(ProjectOptimizer):
    r"""w <- w - lr * (g_B(w) - g_B(w_snap) + mu),  mu = grad f(w_snap) (full gradient).

    ``set_snapshot(full_closure)`` (the trainer calls it at the start of every epoch)
    stores w_snap = w and mu from ``full_closure()``, which returns the full training loss
    without calling backward. ``step(closure)`` evaluates the minibatch closure (no
    backward inside) twice, at w and at w_snap, with the same RNG state (identical dropout
    masks), so each step counts 2 forwards and 2 backwards. The snapshot's full pass is
    counted separately in ``n_snapshots`` (its cost is one full-batch gradient; the trainer
    knows n). After the step p.grad holds g_B(w_k). Per-group lr (separable).

    Default lr = 1/L_max in the yaml (practical choice; Johnson & Zhang's theory uses a
    smaller constant with an inner loop of length m = 2n; here the inner loop is one epoch).
    State: per parameter ``snapshot``, ``full_grad``; ``n_snapshots``, ``step_size``,
    ``n_forwards``, ``n_backwards``, ``backtracks`` (0).
    """

    needs_closure = True
    needs_snapshot = True

    def __init__(self, params, lr: float = 1e-3):
        if lr < 0:
            raise ValueError("need lr >= 0")
        super().__init__(params, dict(lr=lr))
        self._tmp: list | None = None

    def _extra_global(self) -> dict:
        return {"n_snapshots": 0}

    def set_snapshot(self, full_closure) -> torch.Tensor:
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = full_closure()
        loss.backward()
        with torch.no_grad():
            for p in self._all_params():
                ps = self.state[p]
                ps["snapshot"] = p.detach().clone()
                ps["full_grad"] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
        self.zero_grad(set_to_none=True)
        self.state["n_snapshots"] += 1
        return loss.detach()

    def step(self, closure=None):
        if closure is None:
            raise RuntimeError(CLOSURE_CONTRACT.format(name="SVRG"))
        params = self._all_params()
        if any("snapshot" not in self.state[p] for p in params):
            raise RuntimeError("SVRG: call opt.set_snapshot(full_closure) before the first step "
                               "(full_closure returns the full training loss, no backward)")
        rng = RNGSnapshot()
        loss = self._forward_backward(closure)
        g_w = [p.grad for p in params]
        if self._tmp is None or len(self._tmp) != len(params):
            self._tmp = [torch.empty_like(p) for p in params]
        with torch.no_grad():
            for t, p in zip(self._tmp, params):
                t.copy_(p)
                p.copy_(self.state[p]["snapshot"])
        for p in params:
            p.grad = None
        rng.restore()
        self._forward_backward_keep(closure)
        with torch.no_grad():
            idx = {id(p): i for i, p in enumerate(params)}
            for group in self.param_groups:
                lr = group["lr"]
                for p in group["params"]:
                    i = idx[id(p)]
                    gs = p.grad if p.grad is not None else torch.zeros_like(p)
                    gw = g_w[i] if g_w[i] is not None else torch.zeros_like(p)
                    torch.add(self._tmp[i], gw, alpha=-lr, out=p)
                    p.add_(gs, alpha=lr).add_(self.state[p]["full_grad"], alpha=-lr)
                    p.grad = g_w[i]
        self.state["step_size"] = lr_value(self.param_groups[0]["lr"])
        return loss

    def _forward_backward_keep(self, closure):
        """Second evaluation: like ``_forward_backward`` but without zero_grad (the grads of
        the first evaluation are held elsewhere and p.grad was set to None)."""
        with torch.enable_grad():
            loss = closure()
        loss.backward()
        self.state["n_forwards"] += 1
        self.state["n_backwards"] += 1
        return loss.detach()
