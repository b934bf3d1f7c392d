"""SLS_prec: monotone Armijo line search along the Adam direction (PoNoS repository,
``sls_ada`` with ``reset_option=11``, ``suff_decr="pp_norm"``)."""
from __future__ import annotations

from optimizers import register
from optimizers._prec import PREC_DOC_COMMON, PrecLineSearch

RESET_OPTIONS = (0, 1, 2, 11)


@register("sls_prec")
class SLSPrec(PrecLineSearch):
    __doc__ = r"""Monotone stochastic Armijo search on the bias-corrected Adam direction.

    First trial (``reset_option``, as SLS; default 11): min(eta_prev * gamma^(1/n), eta_max)
    with n = ``n_batches_per_epoch``, gamma = 2, eta_max = 10, eta_prev = ``init_step_size``
    (1) before the first step. Reference value: the current minibatch loss (``xi = 0``;
    xi > 0 turns on the Zhang-Hager reference of PoNoS). Backtracking eta <- beta_b eta with
    c = 0.1, beta_b = 0.9, at most 100 trials, fallback step 1e-6; reading "ada_sls"
    (below; "released" is the repaired reference code, fatal here: on MNIST its search fails
    from step 9 on and the step stays near 1e-6, final loss 0.49, where "ada_sls" reaches
    0.014 on the same run).
""" + PREC_DOC_COMMON

    init_rule = "reset"

    def __init__(self, params, n_batches_per_epoch: float | None = 500, init_step_size: float = 1.0,
                 c: float = 0.1, beta_b: float = 0.9, gamma: float = 2.0, reset_option: int = 11,
                 eta_max: float = 10.0, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 xi: float = 0.0, reading: str | None = None, suff_decr: str = "pp_norm",
                 max_backtracks: int = 100,
                 fallback_step: float = 1e-6, foreach: bool | None = None):
        if n_batches_per_epoch is None:
            n_batches_per_epoch = 500
        if reset_option not in RESET_OPTIONS:
            raise ValueError(f"reset_option must be one of {RESET_OPTIONS}, got {reset_option!r}")
        if init_step_size <= 0 or n_batches_per_epoch <= 0:
            raise ValueError("need init_step_size > 0 and n_batches_per_epoch > 0")
        defaults = dict(n_batches_per_epoch=float(n_batches_per_epoch), init_step_size=init_step_size,
                        c=c, beta_b=beta_b, gamma=gamma, reset_option=reset_option, eta_max=eta_max,
                        betas=tuple(betas), eps=eps, xi=xi, reading=reading, suff_decr=suff_decr,
                        max_backtracks=max_backtracks, fallback_step=fallback_step, foreach=foreach)
        super().__init__(params, defaults)
