"""Backtracking machinery shared by ``sls``, ``ponos``, ``sls_prec`` and ``ponos_prec``.

One step of every line search here:

1. save the RNG state, evaluate the closure with autograd and backpropagate (1 forward,
   1 backward) at the current point w;
2. copy w into preallocated per-parameter buffers (allocated once, reused every step; no
   ``deepcopy``);
3. evaluate trial points ``w - eta * d`` under ``torch.no_grad()`` on the *same* minibatch,
   restoring the RNG state before each evaluation so that dropout masks are identical to the
   gradient evaluation's, until the acceptance test holds or ``max_backtracks`` trials were
   rejected. The last accepted trial is the new iterate (no extra update);
4. when no trial is accepted, apply the fixed fallback step ``w - fallback_step * d``.

BatchNorm: trial forwards run in the module's current mode. In ``train()`` mode every trial
normalises with the statistics of the minibatch at the trial point (so trial losses are
computed exactly like the gradient evaluation's loss) and every trial forward also updates
``running_mean`` / ``running_var``: a step with b backtracks moves the running statistics
(2 + b) times, partly towards statistics of rejected points. The reference code does the
same. Put BatchNorm layers in ``eval()`` mode inside the closure for trial evaluations if
that matters for your experiment; the optimizer cannot see the model.
"""
from __future__ import annotations

import math

import torch

from optimizers._base import (ProjectOptimizer, RNGSnapshot, copy_, resolve_foreach,
                              set_point, sq_norm)

GRAD_TOL = 1e-8  # no step when the minibatch gradient norm is below this (reference code)


class LineSearchOptimizer(ProjectOptimizer):
    """Base class of the backtracking searches (global step for all param groups)."""

    needs_closure = True

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self._x0: list | None = None  # preallocated copy of the current point
        self._x0_key = None

    # -------------------------------------------------------------- buffers
    def _active(self) -> tuple[list, list]:
        """Parameters that received a gradient, and their gradients (references; no backward
        runs during the search, so they stay valid)."""
        ps, gs = [], []
        for p in self._all_params():
            if p.grad is not None:
                ps.append(p)
                gs.append(p.grad)
        return ps, gs

    def _save_point(self, params: list, foreach: bool) -> list:
        key = tuple((id(p), p.shape, p.dtype, p.device) for p in params)
        if self._x0 is None or self._x0_key != key:
            self._x0 = [torch.empty_like(p, memory_format=torch.preserve_format) for p in params]
            self._x0_key = key
        with torch.no_grad():
            copy_(self._x0, [p.detach() for p in params], foreach)
        return self._x0

    @property
    def _foreach(self) -> bool:
        return resolve_foreach(self.param_groups[0].get("foreach"), self._all_params())

    # -------------------------------------------------------------- search
    def _armijo_search(self, closure, rng: RNGSnapshot, params, x0, direction, eta: float,
                       ref: float, decrease: float, c: float, beta_b: float,
                       max_backtracks: int, foreach: bool, step_scale: float = 1.0):
        """Backtrack ``eta <- beta_b * eta`` until f(x0 - eta d) <= ref - c * eta * decrease,
        with d = step_scale * direction.

        Returns (accepted, eta, rejected_trials, f_new)."""
        f_new = math.nan
        for t in range(max_backtracks):
            with torch.no_grad():
                set_point(params, x0, direction, eta * step_scale, foreach, at_x0=(t == 0))
            rng.restore()
            f_new = self._forward(closure)
            if f_new <= ref - c * eta * decrease:  # NaN compares False: rejected
                return True, eta, t, f_new
            eta *= beta_b
        return False, eta, max_backtracks, f_new

    def _fallback(self, params, x0, direction, step: float, foreach: bool) -> None:
        with torch.no_grad():
            set_point(params, x0, direction, step, foreach)

    def _grad_sq_norm(self, grads, foreach) -> float:
        return sq_norm(grads, foreach)
