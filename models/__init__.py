"""Model registry: ``model.name`` -> builder ``build(cfg: dict, data: datasets.base.Data) -> nn.Module``.

Models read input/output sizes from ``data`` (input_dim, input_shape, num_classes) and the
over-parameterization knob from ``cfg`` (``width`` multiplier, hidden rank, layers ...).
Outputs: regression -> [B] (single target) or [B, k]; classification -> logits [B, C];
lm -> logits [B, T, V].
"""
from __future__ import annotations

import importlib

import torch.nn as nn

BUILDERS = {
    "linear": "models.linear:build",
    "linear_net": "models.linear_net:build",
    "mlp": "models.mlp:build",
    "lenet5": "models.cnn:build_lenet5",
    "simple_cnn": "models.cnn:build_simple_cnn",
    "resnet18": "models.resnet:build_resnet18",
    "resnet34": "models.resnet:build_resnet34",
    "transformer": "models.transformer:build",
    "transformer_last_layer": "models.transformer:build_last_layer",
}


def build(cfg: dict, data) -> nn.Module:
    name = cfg["name"]
    if name not in BUILDERS:
        raise KeyError(f"unknown model '{name}'; valid: {', '.join(sorted(BUILDERS))}")
    module, func = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), func)(cfg, data)
