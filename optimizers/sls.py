"""SLS: stochastic Armijo (or Goldstein) line search, Vaswani et al., NeurIPS 2019."""
from __future__ import annotations

import math

import torch

from optimizers import register
from optimizers._base import RNGSnapshot, host_floats
from optimizers._linesearch import GRAD_TOL, LineSearchOptimizer

RESET_OPTIONS = (0, 1, 2, 11)


@register("sls")
class SLS(LineSearchOptimizer):
    r"""Stochastic line search on the SGD direction (Vaswani, Mishkin, Laradji, Schmidt,
    Gidel, Lacoste-Julien 2019, "Painless stochastic gradient").

    One step on the minibatch loss f_B with gradient g = grad f_B(w) (global over all
    parameters and groups), ``n = n_batches_per_epoch``:

    * first trial step (``reset_option``), from the previous step eta_prev
      (eta_prev = ``init_step_size`` before the first step):

      - 0: eta_prev
      - 1: eta_prev * gamma^(1/n)                  (reference default; no cap)
      - 2: init_step_size                          (classical backtracking)
      - 11: min(eta_prev * gamma^(1/n), eta_max)   (PoNoS's capped variant, eta_max = 10)

    * ``line_search_fn="armijo"``: trials eta, beta_b*eta, beta_b^2*eta, ... at
      w - eta*g until f_B(w - eta g) <= f_B(w) - c * eta * ||g||^2.
    * ``line_search_fn="goldstein"``: a trial is accepted when both
      f_new <= f - c eta ||g||^2 (Armijo) and f_new >= f - (1-c) eta ||g||^2 hold; when only
      Armijo holds the step is too short, eta <- min(beta_f * eta, eta_max) (accepted as is
      once eta == eta_max); when only the second holds eta <- max(beta_b * eta, 1e-8).
      Requires c < 1/2 (otherwise both can fail).
    * at most ``max_backtracks`` = 100 trials; if none is accepted the step
      w - ``fallback_step`` * g (1e-6) is applied; the trial forwards of such failed
      searches are counted in ``failed_forwards`` (cumulative);
    * ``stop_on_equal`` (off by default; a deviation from the SLS and PoNoS papers, whose
      searches always run to the trial limit): an Armijo trial whose loss equals f_B(w) to the
      loss dtype's resolution, |f_trial - f_B(w)| <= eps(dtype) |f_B(w)| (float32: 1.2e-7),
      ends the search as failed after that trial (fallback step; ``equal_stops`` counts
      them). This is the late-training collapse of the monotone search: the minibatch loss is
      at its float32 floor, shorter trials return the same rounded loss and all 100 trials
      are rejected. Off, the step is bit for bit the reference's;
    * no step when ||g|| < 1e-8.

    Defaults (reference code ``sls.Sls``): c=0.1, beta_b=0.9, gamma=2, init_step_size=1,
    reset_option=1, beta_f=2, eta_max=10 (used by option 11 and Goldstein).

    Cost: 1 backward and 2 + backtracks forwards per step (1 + trials). State (string keys
    of ``self.state``): ``step_size`` (step applied: accepted eta, ``fallback_step`` or 0 when
    skipped), ``eta_prev`` (what the reset rule starts from), ``n_forwards``, ``n_backwards``,
    ``backtracks`` (rejected trials of the last step), ``failed_forwards``, ``equal_stops``.

    Param groups: ONE search per step over all parameters of all groups (g and ||g||^2 are
    global, every trial moves every parameter, one step size); the search hyper-parameters
    must agree across groups (``ValueError`` otherwise), and splitting the parameters into
    groups changes nothing (tested). The reference differs here (see below); with a single
    param group, which is what the trainer builds, the two coincide.

    Host reads: one per closure evaluation (the gradient evaluation reads its loss together
    with ||g||^2, each trial its loss); ||g||^2 is accumulated in float64.

    Deliberate differences from the released reference code (IssamLaradji/sls):

    * the current point is kept in place instead of ``copy.deepcopy`` per step; trials are
      computed from that point in one pass (preallocated double buffers on the loop path, a
      fused ``torch._foreach_add`` when ``foreach`` resolves to True: by default when all
      parameters are on CUDA);
    * the closure's randomness is made identical across trials by saving the torch RNG
      state before the gradient evaluation and restoring it before each trial, instead of
      reseeding every evaluation with ``int(time.time())``;
    * after a failed search the reference keeps the last tiny trial value as its step size;
      here ``step_size`` and ``eta_prev`` become ``fallback_step`` (what was applied; PoNoS
      does the same);
    * on a skipped step (||g|| < 1e-8) the reference stores the reset trial value (so
      reset 1 keeps growing it); here ``eta_prev`` is left unchanged and ``step_size`` is 0;
    * ``gamma`` is honoured (the reference experiment configs pass it but it never reaches
      the optimizer, so gamma was always 2);
    * Goldstein accepts a step that satisfies Armijo when it is already at ``eta_max`` (the
      reference would keep trying eta_max until the trial limit);
    * param groups: the released ``sls.Sls.step`` loops over ``self.param_groups`` and runs
      one search *per group*: each group's search starts from the step size stored before
      the step, uses that group's gradient norm in the Armijo test, moves only that group's
      parameters (groups searched earlier have already moved) and evaluates the full loss;
      ``state['step_size']`` ends as the last group's step. We keep one global search (the
      paper's algorithm: one Armijo step on f_B with the full gradient; another version of
      the same reference file takes one flat parameter list, ``self.params = list(params)``,
      as PoNoS's reference does), so results equal the reference's with one param group.
    """

    _global_hparams = ("n_batches_per_epoch", "init_step_size", "c", "beta_b", "gamma",
                       "reset_option", "eta_max", "line_search_fn", "beta_f",
                       "max_backtracks", "fallback_step", "stop_on_equal", "foreach")

    def __init__(self, params, n_batches_per_epoch: float | None = 500, init_step_size: float = 1.0,
                 c: float = 0.1, beta_b: float = 0.9, gamma: float = 2.0, reset_option: int = 1,
                 eta_max: float = 10.0, line_search_fn: str = "armijo", beta_f: float = 2.0,
                 max_backtracks: int = 100, fallback_step: float = 1e-6, stop_on_equal: bool = False,
                 foreach: bool | None = None):
        if n_batches_per_epoch is None:
            n_batches_per_epoch = 500
        if reset_option not in RESET_OPTIONS:
            raise ValueError(f"reset_option must be one of {RESET_OPTIONS}, got {reset_option!r}")
        if line_search_fn not in ("armijo", "goldstein"):
            raise ValueError(f"line_search_fn must be 'armijo' or 'goldstein', got {line_search_fn!r}")
        if line_search_fn == "goldstein" and not c < 0.5:
            raise ValueError("the Goldstein search needs c < 1/2")
        if stop_on_equal and line_search_fn != "armijo":
            raise ValueError("stop_on_equal is implemented for the Armijo search only")
        if not (0 < beta_b < 1) or c <= 0 or init_step_size <= 0 or n_batches_per_epoch <= 0:
            raise ValueError("need 0 < beta_b < 1, c > 0, init_step_size > 0, n_batches_per_epoch > 0")
        defaults = dict(n_batches_per_epoch=float(n_batches_per_epoch), init_step_size=init_step_size,
                        c=c, beta_b=beta_b, gamma=gamma, reset_option=reset_option, eta_max=eta_max,
                        line_search_fn=line_search_fn, beta_f=beta_f, max_backtracks=max_backtracks,
                        fallback_step=fallback_step, stop_on_equal=bool(stop_on_equal), foreach=foreach)
        super().__init__(params, defaults)

    def _extra_global(self) -> dict:
        return {"eta_prev": float(self.defaults["init_step_size"])}

    def _reset(self, h: dict) -> float:
        eta_prev = self.state["eta_prev"]
        opt = h["reset_option"]
        if opt == 0:
            return eta_prev
        if opt == 2:
            return h["init_step_size"]
        eta = eta_prev * h["gamma"] ** (1.0 / h["n_batches_per_epoch"])
        if opt == 11:
            eta = min(eta, h["eta_max"])
        return eta

    def step(self, closure=None):
        self._require_closure(closure)
        h = self.param_groups[0]
        foreach = self._foreach
        rng = RNGSnapshot()
        loss = self._forward_backward(closure)
        params, grads = self._active()
        f0, g2 = host_floats(loss, self._grad_sq_norm(grads, foreach))  # one host read
        eta = self._reset(h)
        st = self.state
        st["backtracks"] = 0
        if not math.sqrt(g2) >= GRAD_TOL:  # also catches NaN gradients: no step
            st["step_size"] = 0.0
            return loss
        x0 = self._save_point(params, foreach)
        if h["line_search_fn"] == "armijo":
            # resolution of the loss as computed (float32 model: 1.2e-7), not of the float64 test
            tol = torch.finfo(loss.dtype).eps if h.get("stop_on_equal") else None
            ok, eta, bt, _ = self._armijo_search(closure, rng, params, x0, grads, eta, f0, g2,
                                                 h["c"], h["beta_b"], h["max_backtracks"], foreach,
                                                 equal_tol=tol)
        else:
            ok, eta, bt = self._goldstein(closure, rng, params, x0, grads, eta, f0, g2, h, foreach)
            if not ok:
                st["failed_forwards"] = st.get("failed_forwards", 0) + bt
        if not ok:
            eta = h["fallback_step"]
            self._fallback(params, x0, grads, eta, foreach)
        st["backtracks"] = bt
        st["step_size"] = eta
        st["eta_prev"] = eta
        return loss

    def _goldstein(self, closure, rng, params, x0, grads, eta, f0, g2, h, foreach):
        c, eta_max = h["c"], h["eta_max"]
        for t in range(h["max_backtracks"]):
            self._trial(params, x0, grads, eta, foreach)
            rng.restore()
            f_new = self._forward(closure)
            armijo = f_new <= f0 - c * eta * g2
            curvature = f_new >= f0 - (1 - c) * eta * g2
            if armijo and (curvature or eta >= eta_max):
                return True, eta, t
            if armijo:  # too short
                eta = min(h["beta_f"] * eta, eta_max)
            else:       # too long (or NaN)
                eta = max(h["beta_b"] * eta, 1e-8)
        return False, eta, h["max_backtracks"]
