"""PoNoS: Polyak initial step + non-monotone (Zhang-Hager) Armijo line search,
Galli, Rauhut & Schmidt, NeurIPS 2023 ("Don't be so monotone")."""
from __future__ import annotations

import math

from optimizers import register
from optimizers._base import RNGSnapshot, host_floats
from optimizers._linesearch import GRAD_TOL, LineSearchOptimizer


@register("ponos")
class PoNoS(LineSearchOptimizer):
    r"""Polyak initial step, Zhang-Hager non-monotone Armijo search, backtrack memory.

    One step with minibatch loss f = f_B(w_k) and gradient g (global over all parameters):

    * Polyak step           p_k = (f - f_star) / (c_p ||g||^2 + eps)       (``polyak_step``)
    * first trial           eta = clip(p_k * delta^{l_k}, min_eta, max_eta)
    * Zhang-Hager reference Q_{k+1} = xi Q_k + 1,  C_{k+1} = (xi Q_k C_k + f) / Q_{k+1}
                            (Q_0 = C_0 = 0), ref = max(C_{k+1}, f).
                            xi = 1: C is the running mean of all past minibatch losses;
                            xi = 0: ref = f, the monotone Armijo search.
    * trials eta, delta*eta, ... until f_B(w - eta g) <= ref - c * eta * ||g||^2, at most
      ``max_backtracks`` (100); if none is accepted, w <- w - ``fallback_step`` g (1e-6)
    * memory                l_{k+1} = max(l_k + e - 1, 0), e = rejected trials this step
      (``memory=False`` keeps l_k = 0: the "PoNoS_reset0" ablation)
    * no step when ||g|| < 1e-8 or f == 0.

    Defaults (reference ``PoNoS.py``): c=0.5, c_p=0.1, delta=0.5, xi=1, max_eta=10,
    min_eta=1e-6, f_star=0.

    Cost: 1 backward, 2 + backtracks forwards. State: ``step_size``, ``polyak_step`` (p_k,
    before memory and clipping), ``backtracks``, ``n_forwards``, ``n_backwards``,
    ``memory_l`` (l_k), ``zh_q``, ``zh_c`` (Q_k, C_k). One global step for all groups.

    Deliberate differences from the released reference code (leonardogalli91/PoNoS):

    * the Polyak denominator is c_p ||g||^2 + eps with eps = 0 by default; the reference
      adds 1e-8, which caps the initial step at f/1e-8 and makes it collapse once
      ||g||^2 falls below ~1e-7 (interpolating problems near the solution). ``eps=1e-8``
      restores the reference behaviour;
    * ``f_star`` is used in the numerator (the reference accepts it and ignores it; with the
      default 0 both agree);
    * current point kept in place instead of ``deepcopy``; RNG state saved and
      restored instead of wall-clock reseeding (see ``optimizers/_linesearch.py``, also for
      the BatchNorm behaviour during trials);
    * ||g||^2 is accumulated in float64 (the reference sums float32 squares) and read on the
      host together with the loss (one host read per closure evaluation).
    """

    _global_hparams = ("c", "c_p", "delta", "xi", "max_eta", "min_eta", "f_star", "eps",
                       "memory", "max_backtracks", "fallback_step", "foreach")

    def __init__(self, params, c: float = 0.5, c_p: float = 0.1, delta: float = 0.5,
                 xi: float = 1.0, max_eta: float = 10.0, min_eta: float = 1e-6,
                 f_star: float = 0.0, eps: float = 0.0, memory: bool = True,
                 max_backtracks: int = 100, fallback_step: float = 1e-6,
                 foreach: bool | None = None):
        if not (0 < delta < 1) or c <= 0 or c_p <= 0 or not (0 <= xi <= 1):
            raise ValueError("need 0 < delta < 1, c > 0, c_p > 0, 0 <= xi <= 1")
        if not (0 < min_eta <= max_eta):
            raise ValueError("need 0 < min_eta <= max_eta")
        defaults = dict(c=c, c_p=c_p, delta=delta, xi=xi, max_eta=max_eta, min_eta=min_eta,
                        f_star=f_star, eps=eps, memory=memory, max_backtracks=max_backtracks,
                        fallback_step=fallback_step, foreach=foreach)
        super().__init__(params, defaults)

    def _extra_global(self) -> dict:
        return {"polyak_step": 0.0, "memory_l": 0, "zh_q": 0.0, "zh_c": 0.0}

    def step(self, closure=None):
        self._require_closure(closure)
        h = self.param_groups[0]
        foreach = self._foreach
        st = self.state
        rng = RNGSnapshot()
        loss = self._forward_backward(closure)
        params, grads = self._active()
        f0, g2 = host_floats(loss, self._grad_sq_norm(grads, foreach))  # one host read

        # Zhang-Hager reference (updated every step, as in the reference code)
        q_new = h["xi"] * st["zh_q"] + 1.0
        st["zh_c"] = (h["xi"] * st["zh_q"] * st["zh_c"] + f0) / q_new
        st["zh_q"] = q_new
        ref = max(st["zh_c"], f0)

        st["backtracks"] = 0
        if not math.sqrt(g2) >= GRAD_TOL or f0 == 0.0:
            st["step_size"] = 0.0
            return loss
        polyak = (f0 - h["f_star"]) / (h["c_p"] * g2 + h["eps"])
        st["polyak_step"] = polyak
        eta = polyak * h["delta"] ** st["memory_l"] if h["memory"] else polyak
        eta = min(max(eta, h["min_eta"]), h["max_eta"])

        x0 = self._save_point(params, foreach)
        ok, eta, bt, _ = self._armijo_search(closure, rng, params, x0, grads, eta, ref, g2,
                                             h["c"], h["delta"], h["max_backtracks"], foreach)
        if not ok:
            eta = h["fallback_step"]
            self._fallback(params, x0, grads, eta, foreach)
        if h["memory"]:
            st["memory_l"] = max(st["memory_l"] + bt - 1, 0)
        st["backtracks"] = bt
        st["step_size"] = eta
        return loss
