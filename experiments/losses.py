"""Per-sample losses for the three task types (see docs/architecture.md).

``per_sample(task, out, y)`` returns one loss per sample (regression, classification) or per
token (lm, shape [B, T]); the training objective is its mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TASKS = ("regression", "classification", "lm")


def per_sample(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "regression":
        diff = out - y.reshape(out.shape)
        return 0.5 * diff.pow(2).reshape(diff.shape[0], -1).sum(1)
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none")
    if task == "lm":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                               reduction="none").reshape(y.shape)
    raise ValueError(f"unknown task '{task}'; valid: {', '.join(TASKS)}")


def mean_loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return per_sample(task, out, y).mean()


def correct(task: str, out: torch.Tensor, y: torch.Tensor):
    """Per-sample (per-token) 0/1 correctness, or None for regression."""
    if task == "regression":
        return None
    return (out.argmax(-1) == y).to(torch.float32)
