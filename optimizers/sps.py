"""SPS: stochastic Polyak step size, Loizou, Vaswani, Laradji & Lacoste-Julien, AISTATS 2021."""
from __future__ import annotations

import math

import torch

from optimizers import register
from optimizers._base import ProjectOptimizer, host_floats, resolve_foreach, sq_norm

ADAPT_FLAGS = ("smooth_iter", "constant")


@register("sps")
class SPS(ProjectOptimizer):
    r"""SPS_max with smoothing (``adapt_flag="smooth_iter"``) or with a constant bound.

    One step with minibatch loss f = f_B(w), gradient g (global over all parameters),
    n = ``n_batches_per_epoch``:

    * polyak = (f - f_star) / (c ||g||^2 + eps); 0 when f < f_star
    * ``smooth_iter`` (the SPS paper's deep-learning setting, c = 0.2):
      eta = min(polyak, gamma^(1/n) * eta_prev), eta_prev = ``init_step_size`` initially
    * ``constant`` (non-interpolation runs): eta = polyak
    * both: eta = min(eta, eta_max) when ``eta_max`` is not None
    * w <- w - eta * g; no step when ||g|| < 1e-8.

    Defaults: c=0.2 (all interpolation experiments of the paper), init_step_size=1,
    gamma=2, eta_max=None, f_star=0, eps=0 (the training script's value; the class default
    there is 1e-8).

    Cost: 1 forward + 1 backward. Use ``opt.step(closure)`` (closure returns the loss
    without backward, like the line searches) or, with gradients already computed,
    ``opt.step(loss=loss)``. State: ``step_size`` (applied step), ``polyak_step``,
    ``eta_prev``, ``n_forwards``, ``n_backwards``, ``backtracks`` (always 0).
    One global step for all param groups.

    Deliberate differences from the released reference code (IssamLaradji/sps):

    * the closure does not call backward (one contract for all closure optimizers);
      ``step(loss=...)`` covers the reference's closure-free call;
    * ``f_star`` is a number (the reference's ``fstar_flag`` reads a batch field no dataset
      provides);
    * ``eta_max`` also caps ``smooth_iter`` when given (the reference ignores it there;
      with the default None both agree);
    * ``eta_prev`` only changes when a step is taken (a skipped or zero step would otherwise
      zero the smoothing cap for ever);
    * ||g||^2 is accumulated in float64 (the reference sums float32 squares) and read on the
      host together with the loss: one host read per step.
    """

    needs_closure = True
    _global_hparams = ("n_batches_per_epoch", "init_step_size", "c", "gamma", "eta_max",
                       "adapt_flag", "f_star", "eps", "foreach")

    def __init__(self, params, n_batches_per_epoch: float | None = 500, init_step_size: float = 1.0,
                 c: float = 0.2, gamma: float = 2.0, eta_max: float | None = None,
                 adapt_flag: str = "smooth_iter", f_star: float = 0.0, eps: float = 0.0,
                 foreach: bool | None = None):
        if n_batches_per_epoch is None:
            n_batches_per_epoch = 500
        if adapt_flag not in ADAPT_FLAGS:
            raise ValueError(f"adapt_flag must be one of {ADAPT_FLAGS}, got {adapt_flag!r}")
        if c <= 0 or init_step_size <= 0 or n_batches_per_epoch <= 0:
            raise ValueError("need c > 0, init_step_size > 0, n_batches_per_epoch > 0")
        defaults = dict(n_batches_per_epoch=float(n_batches_per_epoch), init_step_size=init_step_size,
                        c=c, gamma=gamma, eta_max=eta_max, adapt_flag=adapt_flag,
                        f_star=f_star, eps=eps, foreach=foreach)
        super().__init__(params, defaults)

    def _extra_global(self) -> dict:
        return {"eta_prev": float(self.defaults["init_step_size"]), "polyak_step": 0.0}

    def step(self, closure=None, loss=None):
        if loss is None:
            self._require_closure(closure)
            loss = self._forward_backward(closure)
        else:
            loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
            self.state["n_forwards"] += 1
            self.state["n_backwards"] += 1
        h = self.param_groups[0]
        st = self.state
        params = [p for p in self._all_params() if p.grad is not None]
        grads = [p.grad for p in params]
        foreach = resolve_foreach(h["foreach"], params)
        f0, g2 = host_floats(loss, sq_norm(grads, foreach))  # the step's one host read
        st["backtracks"] = 0
        if not math.sqrt(g2) >= 1e-8:
            st["step_size"] = 0.0
            return loss
        polyak = max(f0 - h["f_star"], 0.0) / (h["c"] * g2 + h["eps"])
        st["polyak_step"] = polyak
        eta = polyak
        if h["adapt_flag"] == "smooth_iter":
            eta = min(eta, h["gamma"] ** (1.0 / h["n_batches_per_epoch"]) * st["eta_prev"])
        if h["eta_max"] is not None:
            eta = min(eta, h["eta_max"])
        if eta > 0:
            with torch.no_grad():
                if foreach:
                    torch._foreach_add_(params, grads, alpha=-eta)
                else:
                    for p, g in zip(params, grads):
                        p.add_(g, alpha=-eta)
            st["eta_prev"] = eta
        st["step_size"] = eta
        return loss
