"""Normalized gradient descent with optional heavy-ball momentum (Kunstner et al. 2023)."""
from __future__ import annotations

from optimizers import register
import torch

from optimizers._base import sq_norm
from optimizers._direction import HeavyBallOnDirection


@register("normalized_gd")
class NormalizedGD(HeavyBallOnDirection):
    r"""d = g / ||g||_2 with the Euclidean norm of *all gradients of the param group*
    concatenated (with one group, the usual case, this is the global norm over all
    parameters, as in Kunstner's ``NormalizedGD``); buf <- momentum * buf + d; w <- w - lr buf.
    ||g|| = 0 gives d = 0 (no NaN). The norm is accumulated in float64 and stays on the
    device (the step makes no host read).

    Param groups: each group is normalised by its own norm, so groups behave exactly like
    separate optimizers; a global norm across groups would need a single group.
    Defaults: lr = 1 (Kunstner et al. 2024 select 10^0 on MNIST), momentum 0 (``normalized_gd``)
    or 0.9 (``normalized_gd_m``).
    """

    def __init__(self, params, lr: float = 1.0, momentum: float = 0.0, foreach: bool | None = None):
        super().__init__(params, lr, momentum, foreach)

    def _direction(self, grads, foreach):
        # 1/||g|| (float64, on the device: no host read); ||g|| = 0 or NaN gives 0
        n = sq_norm(grads, foreach).sqrt()
        return grads, torch.where(n > 0, n.reciprocal(), torch.zeros_like(n)), False
