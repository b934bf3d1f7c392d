"""Linear network without bias or activation: Y ~ W2 W1 x (matrix factorisation of the SLS
paper, ``LinearNetwork(6, [r], 10, bias=False)``).

``build(cfg, data)``: ``rank`` r gives W1 in R^{r x d_in}, W2 in R^{d_out x r}; ``rank: null``
or ``"full"`` gives one direct linear map W in R^{d_out x d_in}. The over-parameterization
knob: with Y = A X, rank(A) = 6, r < 6 cannot interpolate and r >= 6 (or full) can.
Weights use PyTorch's default ``nn.Linear`` initialisation (drawn from the init stream, as in
the reference) and take the floating dtype of ``data.x_train``. Output [B, d_out] ([B] for a
1-D target).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class LinearNet(nn.Module):
    def __init__(self, d_in: int, d_out: int, rank=None, squeeze: bool = False, dtype=None):
        super().__init__()
        if rank is None or rank == "full":
            self.layers = nn.Sequential(nn.Linear(d_in, d_out, bias=False, dtype=dtype))
        else:
            r = int(rank)
            if r < 1:
                raise ValueError(f"model.rank must be a positive int, null or 'full'; got {rank!r}")
            self.layers = nn.Sequential(nn.Linear(d_in, r, bias=False, dtype=dtype),
                                        nn.Linear(r, d_out, bias=False, dtype=dtype))
        self.rank = rank
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x.reshape(x.shape[0], -1))
        return out.squeeze(1) if self.squeeze else out


def build(cfg: dict, data) -> nn.Module:
    if data.task != "regression":
        raise ValueError(f"model 'linear_net' is a regression model, not for task '{data.task}'")
    d_in = data.input_dim if data.input_dim is not None else math.prod(data.x_train.shape[1:])
    squeeze = data.y_train.dim() == 1
    d_out = 1 if squeeze else math.prod(data.y_train.shape[1:])
    rank = cfg.get("rank", None)
    if isinstance(rank, str) and rank != "full":
        raise ValueError(f"model.rank must be a positive int, null or 'full'; got '{rank}'")
    dtype = data.x_train.dtype if data.x_train.is_floating_point() else None
    return LinearNet(int(d_in), int(d_out), rank=rank, squeeze=squeeze, dtype=dtype)
