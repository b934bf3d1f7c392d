"""PoNoS_prec: preconditioned Polyak initial step + Zhang-Hager non-monotone Armijo search
along the Adam direction (PoNoS repository, ``sls_ada_zhangNM`` with ``reset_option=200``)."""
from __future__ import annotations

from optimizers import register
from optimizers._prec import PREC_DOC_COMMON, PrecLineSearch


@register("ponos_prec")
class PoNoSPrec(PrecLineSearch):
    __doc__ = r"""Non-monotone line search on the Adam direction with a Polyak first trial.

    First trial: p_k = (f - f_star) / (c_p g^T D^{-1} g) (``polyak_step``; g^T d for the
    "dir_der" reading; a negative
    numerator is replaced by 1e-6 as in the reference), eta = min(p_k, eta_max)
    (reference ``reset_option=200``); ``memory=True`` multiplies p_k by beta_b^{l_k} with
    l_{k+1} = max(l_k + backtracks - 1, 0) (reference option 213). Reference value: Zhang-Hager
    Q_{k+1} = xi Q_k + 1, C_{k+1} = (xi Q_k C_k + f) / Q_{k+1}, ref = max(C_{k+1}, f), xi = 1.
    Defaults (PoNoS ``exp_configs.trans``): c_p = 0.1, eta_max = 10, c = 0.1, beta_b = 0.9,
    xi = 1, f_star = 0, memory off; at most 100 trials, fallback step 1e-6; reading
    "ada_sls" (below; "released" is the repaired reference code).
""" + PREC_DOC_COMMON

    init_rule = "polyak"

    def __init__(self, params, c: float = 0.1, beta_b: float = 0.9, c_p: float = 0.1,
                 eta_max: float = 10.0, xi: float = 1.0, f_star: float = 0.0, memory: bool = False,
                 betas: tuple = (0.9, 0.999), eps: float = 1e-8, reading: str | None = None,
                 suff_decr: str = "pp_norm", max_backtracks: int = 100, fallback_step: float = 1e-6,
                 foreach: bool | None = None):
        if c_p <= 0 or eta_max <= 0:
            raise ValueError("need c_p > 0 and eta_max > 0")
        defaults = dict(c=c, beta_b=beta_b, c_p=c_p, eta_max=eta_max, xi=xi, f_star=f_star,
                        memory=memory, betas=tuple(betas), eps=eps, reading=reading, suff_decr=suff_decr,
                        max_backtracks=max_backtracks, fallback_step=fallback_step, foreach=foreach)
        super().__init__(params, defaults)
