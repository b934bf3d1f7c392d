"""A single linear layer: least squares (regression) or multinomial logistic regression.

``build(cfg, data)``: ``nn.Linear(input_dim, out, bias=cfg.bias)`` on the flattened input.
``out`` is the number of targets for regression (1 for a 1-D target, and the output is then
squeezed to [B]) and ``num_classes`` for classification (logits [B, C]).
``init: default`` keeps PyTorch's initialization (drawn from the init stream), ``zeros``
starts at w = 0 (the usual choice for the convex problems). The parameters take the floating
dtype of ``data.x_train`` (float64 for the synthetic convex problems).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 squeeze: bool = False, init: str = "default", dtype=None):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias, dtype=dtype)
        self.squeeze = squeeze
        if init == "zeros":
            nn.init.zeros_(self.linear.weight)
            if self.linear.bias is not None:
                nn.init.zeros_(self.linear.bias)
        elif init != "default":
            raise ValueError(f"model.init must be one of default, zeros; got '{init}'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.reshape(x.shape[0], -1))
        return out.squeeze(1) if self.squeeze else out


def build(cfg: dict, data) -> nn.Module:
    in_features = data.input_dim
    if in_features is None:
        in_features = math.prod(data.x_train.shape[1:])
    if data.task == "regression":
        squeeze = data.y_train.dim() == 1
        out = 1 if squeeze else math.prod(data.y_train.shape[1:])
    elif data.task == "classification":
        squeeze = False
        out = data.num_classes if data.num_classes is not None else int(data.y_train.max()) + 1
    else:
        raise ValueError(f"model 'linear' supports regression and classification, not '{data.task}'")
    dtype = data.x_train.dtype if data.x_train.is_floating_point() else None
    return Linear(int(in_features), int(out), bias=bool(cfg.get("bias", True)), squeeze=squeeze,
                  init=cfg.get("init", "default"), dtype=dtype)
