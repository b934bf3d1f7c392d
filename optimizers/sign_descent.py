"""Sign descent, optionally with heavy-ball momentum on the signs (Kunstner, Chen,
Lavington & Schmidt, ICLR 2023; Kunstner et al. 2024)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._direction import HeavyBallOnDirection


@register("sign_descent")
class SignDescent(HeavyBallOnDirection):
    r"""d = sign(g) elementwise; buf <- momentum * buf + d (buf = d on the first step);
    w <- w - lr * buf. ``momentum=0`` is plain sign descent w <- w - lr sign(g).

    This is Kunstner's "sign descent + momentum": the sign is taken *before* the momentum,
    so a coordinate can move by up to lr / (1 - momentum) per step. Signum and Lion take the
    sign *after* averaging, so every coordinate moves by exactly lr (see ``signum``).
    sign(0) = 0: zero gradients give no update. Per-element, hence separable: param groups
    behave exactly like separate optimizers.

    Defaults: lr = 1e-3 (the papers grid-search it), momentum = 0 (``sign_descent``) or 0.9
    (``sign_descent_m``), no weight decay (as in the papers' code).
    State: per parameter ``momentum_buffer``; ``step_size`` = lr of the first group,
    ``n_forwards`` / ``n_backwards`` (+1 each per step), ``backtracks`` = 0.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, foreach: bool | None = None):
        super().__init__(params, lr, momentum, foreach)

    def _direction(self, grads, foreach):
        return (torch._foreach_sign(grads) if foreach else [g.sign() for g in grads]), 1.0, True
