"""Line search along the Adam direction: the engine of ``sls_prec`` and ``ponos_prec``
(PoNoS repository, ``sls/adas_ls`` family, Galli, Rauhut & Schmidt 2023)."""
from __future__ import annotations

import math

import torch

from optimizers._base import RNGSnapshot
from optimizers._linesearch import GRAD_TOL, LineSearchOptimizer

SUFF_DECR = ("pp_norm", "grad_norm", "dir_der")


class PrecLineSearch(LineSearchOptimizer):
    """Shared step of SLS_prec / PoNoS_prec; see their docstrings.

    ``init_rule``: "reset" (SLS reset options 0/1/2/11 from the previous step) or
    "polyak" (preconditioned Polyak step, optionally with backtrack memory)."""

    init_rule = "reset"
    _global_hparams = ("betas", "eps", "c", "beta_b", "xi", "suff_decr", "n_batches_per_epoch",
                       "init_step_size", "gamma", "reset_option", "eta_max", "c_p", "f_star",
                       "memory", "max_backtracks", "fallback_step", "foreach")

    def __init__(self, params, defaults):
        b1, b2 = defaults["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError("betas must lie in [0, 1)")
        if defaults["suff_decr"] not in SUFF_DECR:
            raise ValueError(f"suff_decr must be one of {SUFF_DECR}, got {defaults['suff_decr']!r}")
        if not (0 < defaults["beta_b"] < 1) or defaults["c"] <= 0 or not (0 <= defaults["xi"] <= 1):
            raise ValueError("need 0 < beta_b < 1, c > 0, 0 <= xi <= 1")
        defaults["betas"] = (float(b1), float(b2))
        super().__init__(params, defaults)

    def _extra_global(self) -> dict:
        return {"eta_prev": float(self.defaults.get("init_step_size") or 1.0), "polyak_step": 0.0,
                "adam_step": 0, "memory_l": 0, "zh_q": 0.0, "zh_c": 0.0}

    # ------------------------------------------------------------ Adam direction
    def _adam_direction(self, params, grads, h, foreach, want_gd: bool):
        """Update the moments in place and return (u, scale, g^T D^-1 g, g^T d) where the
        Adam direction is d = scale * u, u = m / D, D = sqrt(v / (1 - beta2^k)) + eps,
        scale = 1 / (1 - beta1^k) (folded into the step to save a pass over the weights)."""
        st = self.state
        b1, b2 = h["betas"]
        k = st["adam_step"] + 1
        st["adam_step"] = k
        scale = 1.0 / (1.0 - b1 ** k)
        sbc2 = math.sqrt(1.0 - b2 ** k)
        ms, vs = [], []
        for p in params:
            ps = self.state[p]
            if "exp_avg" not in ps:
                ps["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ps["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ms.append(ps["exp_avg"])
            vs.append(ps["exp_avg_sq"])
        with torch.no_grad():
            if foreach:
                torch._foreach_lerp_(ms, grads, 1 - b1)          # m = b1 m + (1 - b1) g
                torch._foreach_mul_(vs, b2)
                torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
                den = torch._foreach_sqrt(vs)
                torch._foreach_div_(den, sbc2)
                torch._foreach_add_(den, h["eps"])
                u = torch._foreach_div(ms, den)
                gden = torch._foreach_div(grads, den)
            else:
                u, gden = [], []
                for g, m, v in zip(grads, ms, vs):
                    m.lerp_(g, 1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    den = v.sqrt().div_(sbc2).add_(h["eps"])
                    u.append(torch.div(m, den))
                    gden.append(torch.div(g, den))
            pp_terms = [torch.dot(a.reshape(-1), g.reshape(-1)) for a, g in zip(gden, grads)]
            gd_terms = [torch.dot(a.reshape(-1), g.reshape(-1)) for a, g in zip(u, grads)] if want_gd else []
        pp = float(sum(t.double() for t in pp_terms)) if pp_terms else 0.0
        gd = scale * float(sum(t.double() for t in gd_terms)) if gd_terms else 0.0
        return u, scale, pp, gd

    # ------------------------------------------------------------ step
    def _initial_step(self, h, f0, pp):
        st = self.state
        if self.init_rule == "polyak":
            num = f0 - h["f_star"]
            if num < 0:
                num = 1e-6  # reference: a negative numerator is replaced by 1e-6
            polyak = num / (h["c_p"] * pp)
            st["polyak_step"] = polyak
            eta = polyak * h["beta_b"] ** st["memory_l"] if h.get("memory", False) else polyak
            return min(eta, h["eta_max"])
        opt = h["reset_option"]
        if opt == 0:
            return st["eta_prev"]
        if opt == 2:
            return h["init_step_size"]
        eta = st["eta_prev"] * h["gamma"] ** (1.0 / h["n_batches_per_epoch"])
        return min(eta, h["eta_max"]) if opt == 11 else eta

    def step(self, closure=None):
        self._require_closure(closure)
        h = self.param_groups[0]
        foreach = self._foreach
        st = self.state
        rng = RNGSnapshot()
        loss = self._forward_backward(closure)
        f0 = float(loss)
        params, grads = self._active()
        g2 = self._grad_sq_norm(grads, foreach)

        q_new = h["xi"] * st["zh_q"] + 1.0
        st["zh_c"] = (h["xi"] * st["zh_q"] * st["zh_c"] + f0) / q_new
        st["zh_q"] = q_new
        ref = max(st["zh_c"], f0)

        st["backtracks"] = 0
        if not math.sqrt(g2) >= GRAD_TOL:
            st["step_size"] = 0.0
            return loss
        u, scale, pp, gd = self._adam_direction(params, grads, h, foreach,
                                                want_gd=h["suff_decr"] == "dir_der")
        decrease = {"pp_norm": pp, "grad_norm": g2, "dir_der": max(gd, 0.0)}[h["suff_decr"]]
        eta = self._initial_step(h, f0, pp)

        # trials w - eta * d = w - (eta * scale) * u; the test uses eta (the step along d)
        x0 = self._save_point(params, foreach)
        ok, eta, bt, _ = self._armijo_search(closure, rng, params, x0, u, eta, ref, decrease,
                                             h["c"], h["beta_b"], h["max_backtracks"], foreach,
                                             step_scale=scale)
        if not ok:
            eta = h["fallback_step"]
            self._fallback(params, x0, u, eta * scale, foreach)
        if h.get("memory", False):
            st["memory_l"] = max(st["memory_l"] + bt - 1, 0)
        st["backtracks"] = bt
        st["step_size"] = eta
        st["eta_prev"] = eta
        return loss


PREC_DOC_COMMON = r"""
    Direction (both prec methods; beta1 = 0.9, beta2 = 0.999, eps = 1e-8, k = step count):
        m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
        D = sqrt(v / (1 - beta2^k)) + eps,  d = (m / (1 - beta1^k)) / D
    Trials w - eta d on the same minibatch; sufficient decrease (``suff_decr``):
        f_B(w - eta d) <= ref - c * eta * g^T D^{-1} g        ("pp_norm", default)
    ("grad_norm": ||g||^2; "dir_der": max(g^T d, 0), the true directional derivative).

    Choice of the directional term. With momentum, d = D^{-1} m_hat is not D^{-1} g, so
    -g^T D^{-1} g is *not* the directional derivative of f_B along -d (that is -g^T d). The
    reference code intends the "pp_armijo" norm g^T D^{-1} g (its default
    ``suff_decr="pp_norm"``), and so do we: it is always >= 0 and equals g^T d when
    beta1 = 0. When the momentum direction is poorly aligned with g (g^T d < c g^T D^-1 g),
    no small step satisfies the test; the search then runs to ``max_backtracks`` and the
    fallback step w - 1e-6 d is taken, which shows up as 100 backtracks in the log.

    Two bugs make the released reference (leonardogalli91/PoNoS, ``sls_ada*``) crash; we
    implement the intended algorithm:
    1. the shared search calls ``try_sgd_precond_update(..., momentum=self.momentum2)`` but
       no class defines ``momentum2`` (AttributeError on every step, also without search).
       Fix: the trial point uses the momentum direction with beta1 = ``betas[0]`` = 0.9,
       i.e. m_hat/(sqrt(v_hat)+eps), as the configs (``momentum=0.9``) intend;
    2. with the default ``suff_decr="pp_norm"`` the code calls
       ``get_pp_norm(pp_norm_method="pp_norm")``, which only knows 'pp_armijo', 'adam',
       'dir_der', 'pp_lipschitz' and raises ValueError. Fix: "pp_norm" means the
       'pp_armijo' norm g^T D^{-1} g.

    Other deliberate differences: moments are updated once per step before the search
    (trials do not touch them); no step and no moment update when ||g|| < 1e-8; the
    current point lives in preallocated buffers (no deepcopy); RNG saved/restored instead
    of wall-clock reseeding (see ``optimizers/_linesearch.py``, also for BatchNorm).

    State: ``step_size``, ``backtracks``, ``n_forwards``, ``n_backwards``, ``polyak_step``,
    ``adam_step`` (k), ``eta_prev``, ``memory_l``, ``zh_q``, ``zh_c``; per parameter
    ``exp_avg`` (m), ``exp_avg_sq`` (v). One global step for all param groups.
    Cost: 1 backward, 2 + backtracks forwards, 2 extra parameter-sized moment buffers.
"""
