"""Backtracking machinery shared by ``sls``, ``ponos``, ``sls_prec`` and ``ponos_prec``.

One step of every line search here:

1. save the RNG state, evaluate the closure with autograd and backpropagate (1 forward,
   1 backward) at the current point w;
2. keep w where it is and write trial points next to it: on the loop path (CPU default) into
   a second, preallocated buffer per parameter that is swapped in as the parameter's storage
   (double buffering: no ``deepcopy`` and no copy pass; the accepted trial's buffer becomes
   the parameter, the old one the spare for the next step); on the foreach path (default
   when every parameter is on CUDA, or ``foreach=True``) with one fused
   ``torch._foreach_add(w, d, alpha=-eta)`` per trial whose outputs become the parameters'
   storage (the caching allocator recycles the rejected trial's memory);
3. evaluate trial points ``w - eta * d`` (always computed from the untouched w, never
   incrementally) under ``torch.no_grad()`` on the *same* minibatch,
   restoring the RNG state before each evaluation so that dropout masks are identical to the
   gradient evaluation's, until the acceptance test holds or ``max_backtracks`` trials were
   rejected. The last accepted trial is the new iterate (no extra update);
4. when no trial is accepted, apply the fixed fallback step ``w - fallback_step * d``.

Failed searches are counted: ``failed_forwards`` (cumulative) is the number of trial
forwards spent in searches that accepted no trial, i.e. the forwards a step-size collapse
costs (with the defaults, 100 per failed step).

Equal-loss stop (``equal_tol``, used by SLS's ``stop_on_equal``; off by default, a
deviation from the papers): a trial whose loss equals the reference loss to the loss dtype's
resolution, |f_trial - ref| <= eps(dtype) * |ref|, ends the search as failed (fallback step)
after that one trial. Why: once the minibatch loss is at its floating-point floor the shorter
trials of a backtracking search move the weights less and return the same rounded loss, so
the remaining trials are rejected too (the collapse of a monotone search late in training:
100 forwards per step for a 1e-6 fallback step). The rule gives up on those trials; it can
differ from the full search when a shorter trial would still have rounded to a lower loss.

BatchNorm: trial forwards run in the module's current mode. In ``train()`` mode every trial
normalises with the statistics of the minibatch at the trial point (so trial losses are
computed exactly like the gradient evaluation's loss) and every trial forward also updates
``running_mean`` / ``running_var``: a step with b backtracks moves the running statistics
(2 + b) times, partly towards statistics of rejected points. The reference code does the
same. Put BatchNorm layers in ``eval()`` mode inside the closure for trial evaluations if
that matters for your experiment; the optimizer cannot see the model.

Host reads (device -> host synchronisations): one per closure evaluation. The gradient
evaluation's loss is read together with ||g||^2 (and, for the prec searches, the directional
products) in a single transfer (``host_floats``); each trial reads its loss once for the
acceptance test. Norms and products are accumulated in float64 on the device.
"""
from __future__ import annotations

import math

import torch

from optimizers._base import (ProjectOptimizer, RNGSnapshot, resolve_foreach,
                              sq_norm)

GRAD_TOL = 1e-8  # no step when the minibatch gradient norm is below this (reference code)


class LineSearchOptimizer(ProjectOptimizer):
    """Base class of the backtracking searches (global step for all param groups)."""

    needs_closure = True

    def __init__(self, params, defaults):
        super().__init__(params, defaults)
        self._bufs: list | None = None   # per parameter: (storage a, storage b), one holds w
        self._spare: list | None = None  # the buffer of each parameter that trials write into

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
        """The current point w: the parameters' own storage (left untouched by the trials).
        Loop path: also picks, per parameter, the spare buffer that trials are written into."""
        if foreach:
            self._bufs = self._spare = None  # trials get fresh tensors from _foreach_add
            return [p.data for p in params]
        ptrs = [p.data_ptr() for p in params]
        bufs = getattr(self, "_bufs", None)  # (absent after unpickling an optimizer)
        if (bufs is None or len(bufs) != len(params)
                or any(q not in (a.data_ptr(), b.data_ptr()) for q, (a, b) in zip(ptrs, self._bufs))):
            # first step, or the parameters were replaced (e.g. model.to(device)): reallocate
            self._bufs = [(p.data, torch.empty_like(p, memory_format=torch.preserve_format)) for p in params]
        self._spare = [b if q == a.data_ptr() else a for q, (a, b) in zip(ptrs, self._bufs)]
        return [p.data for p in params]

    def _trial(self, params: list, x0: list, direction: list, eta: float, foreach: bool) -> None:
        """params <- x0 - eta * direction in one pass: fused ``_foreach_add`` (foreach) or
        ``torch.add(..., out=spare)`` per tensor (loop)."""
        with torch.no_grad():
            if foreach:
                for p, t in zip(params, torch._foreach_add(x0, direction, alpha=-eta)):
                    p.data = t
                return
            for p, x, d, s in zip(params, x0, direction, self._spare):
                torch.add(x, d, alpha=-eta, out=s)
                if p.data_ptr() != s.data_ptr():
                    p.data = s

    @property
    def _foreach(self) -> bool:
        return resolve_foreach(self.param_groups[0].get("foreach"), self._all_params())

    # -------------------------------------------------------------- search
    def _global_defaults(self) -> dict:
        d = super()._global_defaults()
        d.update({"failed_forwards": 0, "equal_stops": 0})
        return d

    def _armijo_search(self, closure, rng: RNGSnapshot, params, x0, direction, eta: float,
                       ref: float, decrease: float, c: float, beta_b: float,
                       max_backtracks: int, foreach: bool, step_scale: float = 1.0,
                       equal_tol: float | None = None):
        """Backtrack ``eta <- beta_b * eta`` until f(x0 - eta d) <= ref - c * eta * decrease,
        with d = step_scale * direction. ``equal_tol`` (relative, e.g. the float32 eps): a
        rejected trial with |f_new - ref| <= equal_tol * |ref| ends the search as failed
        (module docstring).

        Returns (accepted, eta, rejected_trials, f_new); rejected_trials is max_backtracks for
        a failed search (also one ended early: the fallback step is what is recorded)."""
        f_new = math.nan
        st = self.state
        for t in range(max_backtracks):
            self._trial(params, x0, direction, eta * step_scale, foreach)
            rng.restore()
            f_new = self._forward(closure)  # the trial's one host read
            if f_new <= ref - c * eta * decrease:  # NaN compares False: rejected
                return True, eta, t, f_new
            if equal_tol is not None and abs(f_new - ref) <= equal_tol * abs(ref):
                st["failed_forwards"] = st.get("failed_forwards", 0) + t + 1
                st["equal_stops"] = st.get("equal_stops", 0) + 1
                return False, eta, max_backtracks, f_new
            eta *= beta_b
        st["failed_forwards"] = st.get("failed_forwards", 0) + max_backtracks
        return False, eta, max_backtracks, f_new

    def _fallback(self, params, x0, direction, step: float, foreach: bool) -> None:
        self._trial(params, x0, direction, step, foreach)

    def _grad_sq_norm(self, grads, foreach) -> torch.Tensor:
        """||g||^2 over all parameters: 0-dim float64 tensor on the device (not read here)."""
        return sq_norm(grads, foreach)
