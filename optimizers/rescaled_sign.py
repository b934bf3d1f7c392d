"""Rescaled sign descent sign(g) * ||g||_1 with optional heavy-ball momentum
(Kunstner et al. 2023, ``RescaledSignDescent`` with ``norm=1``)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._base import l1_norm
from optimizers._direction import HeavyBallOnDirection


@register("rescaled_sign")
class RescaledSignDescent(HeavyBallOnDirection):
    r"""d = sign(g) * ||g||_1, the l1 norm of all gradients of the param group concatenated
    (global over all parameters with one group): steepest descent w.r.t. the l-infinity norm;
    buf <- momentum * buf + d; w <- w - lr buf.

    ||g||_1 grows with the number of parameters, so lr is much smaller than for
    ``sign_descent`` (default 1e-4; the papers grid-search it). Each group uses its own norm
    (groups behave like separate optimizers). momentum 0 (``rescaled_sign``) or 0.9.
    ||g||_1 is accumulated in float64 and stays on the device (the step makes no host read).
    """

    def __init__(self, params, lr: float = 1e-4, momentum: float = 0.0, foreach: bool | None = None):
        super().__init__(params, lr, momentum, foreach)

    def _direction(self, grads, foreach):
        # ||g||_1 accumulated in float64, kept on the device (no host read)
        signs = torch._foreach_sign(grads) if foreach else [g.sign() for g in grads]
        return signs, l1_norm(grads, foreach), True
