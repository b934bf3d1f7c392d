"""Line search along the Adam direction: the engine of ``sls_prec`` and ``ponos_prec``
(PoNoS repository, ``sls/adas_ls`` family, Galli, Rauhut & Schmidt 2023)."""
from __future__ import annotations

import math

import torch

from optimizers._base import RNGSnapshot, host_floats, sq_norm_and_dots
from optimizers._linesearch import GRAD_TOL, LineSearchOptimizer

SUFF_DECR = ("pp_norm", "grad_norm", "dir_der")
READINGS = ("ada_sls", "dir_der", "released")


class PrecLineSearch(LineSearchOptimizer):
    """Shared step of SLS_prec / PoNoS_prec; see their docstrings.

    ``init_rule``: "reset" (SLS reset options 0/1/2/11 from the previous step) or
    "polyak" (preconditioned Polyak step, optionally with backtrack memory)."""

    init_rule = "reset"
    _global_hparams = ("betas", "eps", "c", "beta_b", "xi", "suff_decr", "reading", "n_batches_per_epoch",
                       "init_step_size", "gamma", "reset_option", "eta_max", "c_p", "f_star",
                       "memory", "max_backtracks", "fallback_step", "foreach")

    def __init__(self, params, defaults):
        b1, b2 = defaults["betas"]
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError("betas must lie in [0, 1)")
        if defaults["suff_decr"] not in SUFF_DECR:
            raise ValueError(f"suff_decr must be one of {SUFF_DECR}, got {defaults['suff_decr']!r}")
        if defaults["reading"] is None:
            # suff_decr's other values are options of the released code: they select its reading
            defaults["reading"] = "ada_sls" if defaults["suff_decr"] == "pp_norm" else "released"
        if defaults["reading"] not in READINGS:
            raise ValueError(f"reading must be one of {READINGS}, got {defaults['reading']!r}")
        if defaults["reading"] != "released" and defaults["suff_decr"] != "pp_norm":
            # the consistent readings fix the test term; a silently ignored key would mislead
            raise ValueError("suff_decr is an option of reading='released' only")
        if not (0 < defaults["beta_b"] < 1) or defaults["c"] <= 0 or not (0 <= defaults["xi"] <= 1):
            raise ValueError("need 0 < beta_b < 1, c > 0, 0 <= xi <= 1")
        defaults["betas"] = (float(b1), float(b2))
        super().__init__(params, defaults)

    def _extra_global(self) -> dict:
        return {"eta_prev": float(self.defaults.get("init_step_size") or 1.0), "polyak_step": 0.0,
                "adam_step": 0, "memory_l": 0, "zh_q": 0.0, "zh_c": 0.0, "descent_restarts": 0}

    # ------------------------------------------------------------ Adam direction
    def _adam_direction(self, params, grads, h, foreach, want_gd: bool):
        """The moment update, the Adam direction and its products, all on the device and not
        yet committed (the step may still be skipped once ||g|| is read).

        Returns (u, gden, scale, g2, pp, gd, pending): gden = D^-1 g; the Adam direction is d = scale * u,
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
        return u, gden, scale, g2, prods[0], prods[1] if want_gd else None, (k, m_new, v_new)

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
    def _initial_step(self, h, f0, decrease):
        """First trial; ``decrease`` is the reading's directional term (the Polyak step of the
        linear model f - eta * decrease along the search direction)."""
        st = self.state
        if self.init_rule == "polyak":
            num = f0 - h["f_star"]
            if num < 0:
                num = 1e-6  # reference: a negative numerator is replaced by 1e-6
            polyak = num / (h["c_p"] * decrease)
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
        reading = h.get("reading", "released")
        want_gd = reading == "dir_der" or h["suff_decr"] == "dir_der"
        if params:
            u, gden, scale, g2_t, pp_t, gd_t, pending = self._adam_direction(params, grads, h,
                                                                             foreach, want_gd)
        else:  # nothing received a gradient: ||g|| = 0 below, no step
            u, gden, scale, g2_t, pp_t, gd_t, pending = [], [], 1.0, 0.0, 0.0, 0.0, None
        # the step's one host read before the trials: loss, ||g||^2 and the products together
        f0, g2, pp, gd = host_floats(loss, g2_t, pp_t, gd_t if want_gd else 0.0)
        gd = scale * gd     # g^T d with d = D^-1 m_hat

        q_new = h["xi"] * st["zh_q"] + 1.0
        st["zh_c"] = (h["xi"] * st["zh_q"] * st["zh_c"] + f0) / q_new
        st["zh_q"] = q_new
        ref = max(st["zh_c"], f0)

        st["backtracks"] = 0
        if not math.sqrt(g2) >= GRAD_TOL:  # no step and no moment update
            st["step_size"] = 0.0
            return loss
        self._commit_moments(params, pending)

        # (search direction, its scale, test term, direction of the step taken)
        if reading == "released":      # trials along d = D^-1 m_hat, test term per suff_decr
            decrease = {"pp_norm": pp, "grad_norm": g2, "dir_der": max(gd, 0.0)}[h["suff_decr"]]
            search, s_scale, final = u, scale, None
            init_term = pp             # the released Polyak step always uses g^T D^-1 g
        elif reading == "ada_sls":     # trials along D^-1 g with g^T D^-1 g, step along D^-1 m_hat
            search, s_scale, decrease, final, init_term = gden, 1.0, pp, (u, scale), pp
        elif gd > 0:                   # dir_der: trials along d with its derivative g^T d
            search, s_scale, decrease, final, init_term = u, scale, gd, None, gd
        else:                          # d is no descent direction: this step uses D^-1 g
            st["descent_restarts"] = st.get("descent_restarts", 0) + 1
            search, s_scale, decrease, final, init_term = gden, 1.0, pp, None, pp
        eta = self._initial_step(h, f0, init_term)

        x0 = self._save_point(params, foreach)
        ok, eta, bt, _ = self._armijo_search(closure, rng, params, x0, search, eta, ref, decrease,
                                             h["c"], h["beta_b"], h["max_backtracks"], foreach,
                                             step_scale=s_scale)
        if not ok:
            eta = h["fallback_step"]
        if final is not None:          # ada_sls: the accepted eta moves along D^-1 m_hat
            self._fallback(params, x0, final[0], eta * final[1], foreach)
        elif not ok:
            self._fallback(params, x0, search, eta * s_scale, foreach)
        if h.get("memory", False):
            st["memory_l"] = max(st["memory_l"] + bt - 1, 0)
        st["backtracks"] = bt
        st["step_size"] = eta
        st["eta_prev"] = eta
        return loss


PREC_DOC_COMMON = r"""
    Moments (both prec methods; beta1 = 0.9, beta2 = 0.999, eps = 1e-8, k = step count):
        m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
        D = sqrt(v / (1 - beta2^k)) + eps,  d = (m / (1 - beta1^k)) / D = D^-1 m_hat
    Every trial is evaluated on the same minibatch as g.

    Readings (``reading``). With momentum d = D^-1 m_hat is not D^-1 g, so a test that moves
    along d but asks for the decrease c eta g^T D^-1 g is not an Armijo test of the trial
    direction (the directional derivative of f_B along -d is -g^T d). Three readings:

    * ``"ada_sls"`` (default; Vaswani, Kunstner, Laradji, Meng, Schmidt & Lacoste-Julien 2020,
      ada_sls ``AdaSLS``): trials w - eta D^-1 g with the test
      f_B(w - eta D^-1 g) <= ref - c eta g^T D^-1 g (the true directional derivative of the
      trial direction), then the step w - eta D^-1 m_hat with the accepted eta (no forward
      at that point; the Polyak first trial (PoNoS_prec) uses g^T D^-1 g, the term of
      the searched direction). With beta1 = 0 it is the released reading.
    * ``"dir_der"``: trials w - eta d along the momentum direction with the test term
      g^T d (its directional derivative; Polyak first trial (f - f*)/(c_p g^T d)). When
      g^T d <= 0, d is not a descent direction and no eta can pass; that step restarts with
      d = D^-1 g and g^T D^-1 g (it is then the ada_sls trial, and the step is taken along
      D^-1 g); ``descent_restarts`` counts these steps.
    * ``"released"``: the repair of the released PoNoS code (below): trials along d with
      the test term of ``suff_decr`` ("pp_norm": g^T D^-1 g, default; "grad_norm": ||g||^2;
      "dir_der": max(g^T d, 0)). Internally inconsistent with "pp_norm": on the quick
      Tiny Shakespeare LM g^T d / g^T D^-1 g has median 0.075 and is below c = 0.1 on 64%
      of steps, where no small step can pass; a monotone search (SLS_prec) then runs to
      ``max_backtracks`` and takes the 1e-6 fallback step. Kept because the existing
      comparisons with the reference code run it. ``reading=None`` (the constructors'
      default) means "ada_sls", or "released" when ``suff_decr`` is not "pp_norm".

    Step sizes are in Adam units: the step is eta times D^-1 m_hat (or D^-1 g), which is how
    Adam's lr multiplies m_hat / (sqrt(v_hat) + eps); ``eta_max`` = 0.01 therefore caps the
    step where Adam with lr 0.01 steps. The released configs use eta_max = 10.

    Which reading did the paper's transformer runs use? As released the code cannot run: (1)
    the shared search calls ``try_sgd_precond_update(..., momentum=self.momentum2)`` and no
    class defines ``momentum2`` (AttributeError on every step); (2) the default
    ``suff_decr="pp_norm"`` reaches ``get_pp_norm``'s ``raise ValueError`` (only
    'pp_armijo', 'adam', 'dir_der', 'pp_lipschitz' exist). The runs must have used a version
    that defined ``momentum2``. Most likely ``momentum2`` = ``momentum`` = 0.9, i.e. the
    "released" reading: the PoNoS search keeps the accepted trial as the iterate (no
    separate final update, unlike ada_sls), so with ``momentum2`` = 0 m would never enter a
    step and the configs' ``momentum=0.9`` would be dead; and "pp_norm" most plausibly meant
    the 'pp_armijo' norm (the same function computes the Polyak denominator with it). The
    repair therefore implies that the published PoNoS_prec is the inconsistent reading;
    that the paper saw no failure is plausible because its Zhang-Hager reference (xi = 1:
    the mean of all past losses) lies above the current loss when the loss falls, so the
    test f <= ref - c eta g^T D^-1 g passes on the slack ref - f even when g^T d is small.
    The other repair (``momentum2`` = 0: trials and step along D^-1 g, plain RMSprop
    directions) is the ada_sls search without its momentum step; it is not offered. This is
    inference from the code, not stated by the authors.

    Backtrack memory (``memory``, PoNoS_prec only; reference ``reset_option=213``): the
    first trial is the Polyak step times beta_b^{l_k}, l_{k+1} = max(l_k + backtracks - 1, 0),
    instead of restarting at the Polyak step every step (reference 200, default). SLS_prec's
    reset rules already start from the last accepted step (options 0, 1, 11).

    Other deliberate differences from the released code: moments are updated once per step
    before the search (trials do not touch them); no step and no moment update when
    ||g|| < 1e-8; the fallback step is taken along the reading's step direction (the
    released code falls back to plain SGD, w - 1e-6 g); the Polyak denominator has no
    + 1e-8; the current point is kept in place (no deepcopy); RNG saved/restored instead of
    wall-clock reseeding (see ``optimizers/_linesearch.py``, also for BatchNorm);
    ||g||^2, g^T D^-1 g and g^T d are accumulated in float64 and read on the host together
    with the loss in one transfer (one host read per closure evaluation).

    State: ``step_size``, ``backtracks``, ``n_forwards``, ``n_backwards``, ``failed_forwards``,
    ``polyak_step``, ``adam_step`` (k), ``eta_prev``, ``memory_l``, ``zh_q``, ``zh_c``,
    ``descent_restarts``; per parameter ``exp_avg`` (m), ``exp_avg_sq`` (v). One global step
    for all param groups.
    Cost: 1 backward, 2 + backtracks forwards (ada_sls: plus one pass over the weights for
    the step), 2 parameter-sized moment buffers plus 2 spares the new moments are written
    into (swapped in when the step is taken).
"""
