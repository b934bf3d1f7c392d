"""Small convolutional networks.

- ``lenet5`` (Kunstner et al. 2023, MNIST): conv5x5 6 -> tanh -> avgpool2 -> conv5x5 16 -> tanh
  -> avgpool2 -> conv5x5 120 -> tanh -> FC 84 -> tanh -> FC classes. It expects 32x32 inputs;
  smaller images (MNIST 28x28) are zero-padded symmetrically inside the model instead of
  resizing the data (``pad_to: 32``). Channel counts (6, 16, 120, 84) are scaled by ``width``.
- ``simple_cnn`` (SimpleMNISTCNN of Kunstner et al. 2024): conv5x5 32 pad 2 -> ReLU -> maxpool2
  -> conv5x5 100 pad 2 -> ReLU -> maxpool2 -> flatten -> linear classes (4900 inputs on 28x28).
  Channels (32, 100) scaled by ``width``; the flatten size follows the input (CIFAR 32x32: 6400).

Input channels come from ``data.input_shape``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.mlp import check_keys, output_size, scaled


def _shape(data) -> tuple:
    if data.input_shape is None or len(data.input_shape) != 3:
        raise ValueError(f"CNN models need data.input_shape = (C, H, W), got {data.input_shape}")
    return tuple(int(s) for s in data.input_shape)


class LeNet5(nn.Module):
    def __init__(self, in_shape, num_classes: int, width: float = 1.0, pad_to: int = 32):
        super().__init__()
        C, H, W = in_shape
        self.pad = (max(0, (pad_to - W) // 2), max(0, pad_to - W - (pad_to - W) // 2),
                    max(0, (pad_to - H) // 2), max(0, pad_to - H - (pad_to - H) // 2))
        H, W = H + self.pad[2] + self.pad[3], W + self.pad[0] + self.pad[1]
        c1, c2, c3, f = scaled(6, width), scaled(16, width), scaled(120, width), scaled(84, width)
        h, w = ((H - 4) // 2 - 4) // 2 - 4, ((W - 4) // 2 - 4) // 2 - 4
        if h < 1 or w < 1:
            raise ValueError(f"lenet5: input {in_shape} too small (needs at least 32x32 after padding)")
        self.features = nn.Sequential(
            nn.Conv2d(C, c1, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(c2, c3, 5), nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c3 * h * w, f), nn.Tanh(), nn.Linear(f, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return self.classifier(self.features(x))


class SimpleCNN(nn.Module):
    def __init__(self, in_shape, num_classes: int, width: float = 1.0):
        super().__init__()
        C, H, W = in_shape
        c1, c2 = scaled(32, width), scaled(100, width)
        self.features = nn.Sequential(
            nn.Conv2d(C, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        h, w = H // 2 // 2, W // 2 // 2
        if h < 1 or w < 1:
            raise ValueError(f"simple_cnn: input {in_shape} too small (needs at least 4x4)")
        self.fc = nn.Linear(c2 * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def build_lenet5(cfg: dict, data) -> nn.Module:
    check_keys(cfg, ("width", "pad_to"), "lenet5")
    return LeNet5(_shape(data), output_size(data)[0], cfg.get("width", 1.0), int(cfg.get("pad_to", 32)))


def build_simple_cnn(cfg: dict, data) -> nn.Module:
    check_keys(cfg, ("width",), "simple_cnn")
    return SimpleCNN(_shape(data), output_size(data)[0], cfg.get("width", 1.0))
