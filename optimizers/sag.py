"""SAG: stochastic average gradient (Le Roux, Schmidt & Bach 2012; Schmidt, Le Roux &
Bach 2017) over a fixed partition of the data into slots (minibatches)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._base import ProjectOptimizer


@register("sag")
class SAG(ProjectOptimizer):
    r"""Table of one stored gradient y_j per slot j = 0 .. n_slots-1 (a slot is one fixed
    minibatch of the epoch partition; the trainer passes its index).

    ``step(slot=i)`` with p.grad = g_i(w) (computed by the trainer, as for SGD):

        S <- S - y_i + g_i ;  y_i <- g_i ;  m = number of distinct slots seen so far
        w <- w - lr * S / m

    Normalisation: S is divided by the number of slots *seen so far* (the practical
    variant of Schmidt, Le Roux & Bach 2017 for the first pass; it avoids the tiny steps
    of dividing by n_slots while the table is still mostly zero). Once every slot has been
    visited m = n_slots and this is the textbook SAG step along the average of the table.
    The trainer's slots partition all n examples (none is dropped; sizes differ by at most
    one, so S / n_slots is the full gradient of the stored points up to that size imbalance,
    exactly when n_slots divides n). The partition is drawn once from the run's order stream
    before a checkpoint is restored, so a resumed run uses the same slots.

    ``n_batches_per_epoch`` gives n_slots (the registry passes it). Memory: n_slots copies
    of every parameter. Default lr = 1/L_max in the yaml (the paper's practical step;
    its theory uses 1/(16 L_max)). Separable per group (each group uses its own lr).
    State: per parameter ``table`` [n_slots, *shape] and ``grad_sum``; global ``seen``
    (bool tensor), ``n_seen``, ``step_size`` (lr), ``n_forwards``, ``n_backwards``.
    """

    needs_slot = True

    def __init__(self, params, lr: float = 1e-3, n_batches_per_epoch: int | None = None):
        if n_batches_per_epoch is None or int(n_batches_per_epoch) < 1:
            raise ValueError("SAG needs n_batches_per_epoch (number of slots of its gradient table)")
        if lr < 0:
            raise ValueError("need lr >= 0")
        super().__init__(params, dict(lr=lr, n_batches_per_epoch=int(n_batches_per_epoch)))

    def _extra_global(self) -> dict:
        n = int(self.defaults["n_batches_per_epoch"])
        return {"seen": torch.zeros(n, dtype=torch.bool), "n_seen": 0}

    @torch.no_grad()
    def step(self, closure=None, slot: int | None = None):
        if slot is None:
            raise RuntimeError("SAG.step() needs the index of the fixed minibatch: call "
                               "opt.step(slot=i) after loss.backward() (needs_slot = True)")
        n = self.defaults["n_batches_per_epoch"]
        slot = int(slot)
        if not 0 <= slot < n:
            raise IndexError(f"slot {slot} out of range [0, {n})")
        loss = self._torch_style_closure(closure)
        st = self.state
        if not bool(st["seen"][slot]):
            st["seen"][slot] = True
            st["n_seen"] += 1
        m = st["n_seen"]
        for group in self.param_groups:
            for p in group["params"]:
                ps = self.state[p]
                if "table" not in ps:
                    ps["table"] = torch.zeros((n, *p.shape), dtype=p.dtype, device=p.device)
                    ps["grad_sum"] = torch.zeros_like(p)
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                row = ps["table"][slot]
                ps["grad_sum"].sub_(row).add_(g)
                row.copy_(g)
                p.add_(ps["grad_sum"], alpha=-group["lr"] / m)
        st["step_size"] = float(self.param_groups[0]["lr"])
        return loss
