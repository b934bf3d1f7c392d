"""Rescaled sign descent sign(g) * ||g||_1 with optional heavy-ball momentum
(Kunstner et al. 2023, ``RescaledSignDescent`` with ``norm=1``)."""
from __future__ import annotations

import torch

from optimizers import register
from optimizers._direction import HeavyBallOnDirection


@register("rescaled_sign")
class RescaledSignDescent(HeavyBallOnDirection):
    r"""d = sign(g) * ||g||_1, the l1 norm of all gradients of the param group concatenated
    (global over all parameters with one group): steepest descent w.r.t. the l-infinity norm;
    buf <- momentum * buf + d; w <- w - lr buf.

    ||g||_1 grows with the number of parameters, so lr is much smaller than for
    ``sign_descent`` (default 1e-4; the papers grid-search it). Each group uses its own norm
    (groups behave like separate optimizers). momentum 0 (``rescaled_sign``) or 0.9.
    """

    def __init__(self, params, lr: float = 1e-4, momentum: float = 0.0, foreach: bool | None = None):
        super().__init__(params, lr, momentum, foreach)

    def _direction(self, grads, foreach):
        if foreach:
            l1 = torch.stack([n.double() for n in torch._foreach_norm(grads, 1)]).sum()
            return torch._foreach_sign(grads), float(l1), True
        l1 = torch.stack([torch.linalg.vector_norm(g, 1).double() for g in grads]).sum()
        return [g.sign() for g in grads], float(l1), True
