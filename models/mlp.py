"""Multi-layer perceptron: flatten -> [Linear -> activation] * len(hidden_sizes) -> Linear.

Default 784-512-256-10 with ReLU (the SLS paper's MNIST network). ``width`` multiplies every
hidden size (rounded, at least 1): the over-parameterization knob.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
KEYS = ("hidden_sizes", "width", "activation", "bias")


def input_features(data) -> int:
    if data.input_dim is not None:
        return int(data.input_dim)
    if data.input_shape is not None:
        return int(math.prod(data.input_shape))
    return int(math.prod(data.x_train.shape[1:]))


def output_size(data) -> tuple[int, bool]:
    """(outputs, squeeze): classification -> num_classes; regression -> target width (a single
    target is returned as [B])."""
    if data.task == "regression":
        y = data.y_train
        return (1, True) if y.dim() == 1 else (int(math.prod(y.shape[1:])), False)
    if data.num_classes is None:
        raise ValueError("model needs data.num_classes for classification")
    return int(data.num_classes), False


def check_keys(cfg: dict, keys, model: str) -> None:
    unknown = sorted(set(cfg) - set(keys) - {"name"})
    if unknown:
        raise ValueError(f"{model}: unknown model key(s) {', '.join(unknown)}; valid: {', '.join(keys)}")


def scaled(n: int, width: float) -> int:
    return max(1, int(round(n * float(width))))


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list, out_features: int, activation: str = "relu",
                 bias: bool = True, squeeze: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"mlp: activation '{activation}' unknown; valid: {', '.join(ACTIVATIONS)}")
        layers, d = [], in_features
        for h in hidden:
            layers += [nn.Linear(d, h, bias=bias), ACTIVATIONS[activation]()]
            d = h
        layers.append(nn.Linear(d, out_features, bias=bias))
        self.net = nn.Sequential(*layers)
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.flatten(1))
        return out.squeeze(1) if self.squeeze else out


def build(cfg: dict, data) -> nn.Module:
    check_keys(cfg, KEYS, "mlp")
    width = cfg.get("width", 1.0)
    hidden = [scaled(h, width) for h in cfg.get("hidden_sizes", [512, 256])]
    out, squeeze = output_size(data)
    return MLP(input_features(data), hidden, out, cfg.get("activation", "relu"), bool(cfg.get("bias", True)), squeeze)
