"""Line search along the Adam direction: the engine of ``sls_prec`` and ``ponos_prec``
(PoNoS repository, ``sls/adas_ls`` family, Galli, Rauhut & Schmidt 2023)."""
from __future__ import annotations

import math

import torch

from optimizers._base import RNGSnapshot, host_floats, sq_norm_and_dots
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
        """The moment update, the Adam direction and its products, all on the device and not
        yet committed (the step may still be skipped once ||g|| is read).

        Returns (u, scale, g2, pp, gd, pending): the Adam direction is d = scale * u,
        u = m / D, D = sqrt(v / (1 - beta2^k)) + eps, scale = 1 / (1 - beta1^k) (folded into
        the step to save a pass over the weights); g2 = ||g||^2, pp = g^T D^-1 g and
        gd = g^T u (None unless ``want_gd``) are 0-dim float64 tensors (float64
        accumulation, computed together); ``pending`` = (k, new m, new v) is
        stored by ``_commit_moments``. The new moments are written next to the old ones (same
        kernels as an in-place update, so the same values): into spare buffers that are
        swapped in on commit (loop path: no allocation per step), or into fresh tensors from
        the fused out-of-place foreach kernels (the CUDA caching allocator recycles the old
        moments). This lets one host read serve the gradient norm, the loss and the
        products; the price is one more pair of moment-sized buffers."""
        b1, b2 = h["betas"]
        k = self.state["adam_step"] + 1
        scale = 1.0 / (1.0 - b1 ** k)
        sbc2 = math.sqrt(1.0 - b2 ** k)
        ms, vs = [], []
        for p in params:
            ps = self.state[p]
            if "exp_avg" in ps:
                ms.append(ps["exp_avg"])
                vs.append(ps["exp_avg_sq"])
            else:
                ms.append(torch.zeros_like(p, memory_format=torch.preserve_format))
                vs.append(torch.zeros_like(p, memory_format=torch.preserve_format))
        with torch.no_grad():
            if foreach:
                m_new = torch._foreach_lerp(ms, grads, 1 - b1)      # m = b1 m + (1 - b1) g
                v_new = torch._foreach_mul(vs, b2)
                torch._foreach_addcmul_(v_new, grads, grads, value=1 - b2)
                den = torch._foreach_sqrt(v_new)
                torch._foreach_div_(den, sbc2)
                torch._foreach_add_(den, h["eps"])
                u = torch._foreach_div(m_new, den)
                gden = torch._foreach_div(grads, den)
            else:
                m_new, v_new, u, gden = [], [], [], []
                for p, g, m, v in zip(params, grads, ms, vs):
                    m1, v1 = self._spare_moments(p, m, v)
                    torch.lerp(m, g, 1 - b1, out=m1)
                    torch.mul(v, b2, out=v1).addcmul_(g, g, value=1 - b2)
                    den = v1.sqrt().div_(sbc2).add_(h["eps"])
                    m_new.append(m1)
                    v_new.append(v1)
                    u.append(torch.div(m1, den))
                    gden.append(torch.div(g, den))
            g2, prods = sq_norm_and_dots(grads, [gden, u] if want_gd else [gden], foreach,
                                         nonneg=(True,))
        return u, scale, g2, prods[0], prods[1] if want_gd else None, (k, m_new, v_new)

    def _spare_moments(self, p, m, v):
        """Loop path: the buffers the new moments of ``p`` are written into (the previous
        moments after a commit; kept outside ``self.state``, so not checkpointed)."""
        spare = self.__dict__.setdefault("_moment_spare", {})
        pair = spare.get(p)
        if (pair is None or pair[0] is m or pair[1] is v or pair[0].shape != m.shape
                or pair[0].dtype != m.dtype or pair[0].device != m.device):
            pair = spare[p] = (torch.empty_like(m), torch.empty_like(v))
        return pair

    def _commit_moments(self, params, pending) -> None:
        k, m_new, v_new = pending
        self.state["adam_step"] = k
        spare = self.__dict__.get("_moment_spare", {})
        for p, m, v in zip(params, m_new, v_new):
            ps = self.state[p]
            if p in spare and spare[p][0] is m:   # swap: the old moments become the spares
                spare[p] = (ps["exp_avg"], ps["exp_avg_sq"]) if "exp_avg" in ps else None
            ps["exp_avg"] = m
            ps["exp_avg_sq"] = v

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
        params, grads = self._active()
        want_gd = h["suff_decr"] == "dir_der"
        if params:
            u, scale, g2_t, pp_t, gd_t, pending = self._adam_direction(params, grads, h, foreach,
                                                                      want_gd)
        else:  # nothing received a gradient: ||g|| = 0 below, no step
            u, scale, g2_t, pp_t, gd_t, pending = [], 1.0, 0.0, 0.0, 0.0, None
        # the step's one host read before the trials: loss, ||g||^2 and the products together
        f0, g2, pp, gd = host_floats(loss, g2_t, pp_t, gd_t if want_gd else 0.0)
        gd = scale * gd

        q_new = h["xi"] * st["zh_q"] + 1.0
        st["zh_c"] = (h["xi"] * st["zh_q"] * st["zh_c"] + f0) / q_new
        st["zh_q"] = q_new
        ref = max(st["zh_c"], f0)

        st["backtracks"] = 0
        if not math.sqrt(g2) >= GRAD_TOL:  # no step and no moment update
            st["step_size"] = 0.0
            return loss
        self._commit_moments(params, pending)
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
    current point is kept in place (no deepcopy); RNG saved/restored instead of
    wall-clock reseeding (see ``optimizers/_linesearch.py``, also for BatchNorm);
    ||g||^2, g^T D^-1 g and g^T d are accumulated in float64 and read on the host together
    with the loss in one transfer (one host read per closure evaluation).

    State: ``step_size``, ``backtracks``, ``n_forwards``, ``n_backwards``, ``polyak_step``,
    ``adam_step`` (k), ``eta_prev``, ``memory_l``, ``zh_q``, ``zh_c``; per parameter
    ``exp_avg`` (m), ``exp_avg_sq`` (v). One global step for all param groups.
    Cost: 1 backward, 2 + backtracks forwards, 2 parameter-sized moment buffers plus 2
    spares the new moments are written into (swapped in when the step is taken).
"""
