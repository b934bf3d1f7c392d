"""CIFAR-style ResNets (He et al. 2016 BasicBlock networks as used for CIFAR in the SLS paper):
3x3 stem conv (stride 1, no max-pool), four stages of BasicBlocks with 64, 128, 256, 512 channels
times ``width`` (strides 1, 2, 2, 2), global average pooling, linear classifier with
``data.num_classes`` outputs. ResNet-18: [2, 2, 2, 2] blocks; ResNet-34: [3, 4, 6, 3].

``norm``: ``batch`` (BatchNorm2d), ``group`` (GroupNorm with ``gn_groups`` groups, reduced to the
largest divisor of the channel count; ``gn_groups: 1`` is the LayerNorm-like GroupNorm(1) of
Kunstner et al. 2024) or ``none`` (identity; the convolutions then get biases).
``zero_init_residual`` zeroes the last norm weight of every block (only with a norm layer).
Other weights keep PyTorch's default initialisation (drawn from the init stream).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.mlp import check_keys, output_size, scaled

NORMS = ("batch", "group", "none")
KEYS = ("width", "norm", "gn_groups", "zero_init_residual")


def make_norm(kind: str, channels: int, gn_groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        g = max(d for d in range(1, min(gn_groups, channels) + 1) if channels % d == 0)
        return nn.GroupNorm(g, channels)
    return nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, gn_groups: int):
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=bias)
        self.n1 = make_norm(norm, c_out, gn_groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias)
        self.n2 = make_norm(norm, c_out, gn_groups)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=bias), make_norm(norm, c_out, gn_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.n1(self.conv1(x)))
        out = self.n2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks, in_channels: int, num_classes: int, width: float = 1.0, norm: str = "batch",
                 gn_groups: int = 32, zero_init_residual: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"resnet: norm '{norm}' unknown; valid: {', '.join(NORMS)}")
        chans = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=norm == "none"),
            make_norm(norm, chans[0], gn_groups), nn.ReLU(inplace=True),
        )
        layers, c_in = [], chans[0]
        for i, (n, c) in enumerate(zip(blocks, chans)):
            for j in range(n):
                layers.append(BasicBlock(c_in, c, 2 if (i > 0 and j == 0) else 1, norm, gn_groups))
                c_in = c
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        if zero_init_residual and norm != "none":
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.n2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


def _build(cfg: dict, data, blocks, name: str) -> nn.Module:
    check_keys(cfg, KEYS, name)
    if data.input_shape is None or len(data.input_shape) != 3:
        raise ValueError(f"{name}: needs data.input_shape = (C, H, W), got {data.input_shape}")
    return CifarResNet(blocks, int(data.input_shape[0]), output_size(data)[0], cfg.get("width", 1.0),
                       cfg.get("norm", "batch"), int(cfg.get("gn_groups", 32)), bool(cfg.get("zero_init_residual", False)))


def build_resnet18(cfg: dict, data) -> nn.Module:
    return _build(cfg, data, (2, 2, 2, 2), "resnet18")


def build_resnet34(cfg: dict, data) -> nn.Module:
    return _build(cfg, data, (3, 4, 6, 3), "resnet34")
