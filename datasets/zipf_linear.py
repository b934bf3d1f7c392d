"""Synthetic heavy-tailed classification for a linear softmax model (Kunstner et al. 2024, 4.3).

For a size ``m``: group ``i = 0..m-1`` holds ``2^i`` classes with ``2^(m-i)`` samples each, so
every group holds ``2^m`` samples and the class frequency of rank ``k`` is about ``1/k``
(a step approximation of Zipf's law). Hence ``n = m 2^m`` samples, ``2^m - 1`` classes and,
by default, ``d = (m+1) 2^m`` features (over-parameterized: d > n). Class ids are ordered by
frequency: group ``i`` owns the ids ``2^i - 1 .. 2^(i+1) - 2``; samples are ordered by class.

Inputs: ``x_dist: uniform`` draws X ~ U[0, 1] (what the reference code does, "balanced X");
``gaussian`` draws X ~ x_mean + x_scale * N(0, 1). The labels carry no signal beyond the
sample identity: the task is to fit (memorize) the labels, and the training set is also
the test set (the same tensors, as in the reference). ``d`` overrides the feature count
(e.g. d = 400 for the under-parameterized "small d" variant); ``bias: true`` appends a
column of ones.

``info``: ``class_counts``, ``class_groups`` (group id of every class), ``n``, ``d``, ``m``,
``n_groups``.
"""
from __future__ import annotations

import torch

from datasets.base import Data

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def class_structure(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sample counts and group ids for size ``m`` (both int64, length 2^m - 1)."""
    if m < 1:
        raise ValueError(f"dataset.m must be >= 1; got {m}")
    groups = torch.cat([torch.full((2 ** i,), i, dtype=torch.int64) for i in range(m)])
    counts = 2 ** (m - groups)
    return counts, groups


def load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    m = int(cfg.get("m", 7))
    dist = cfg.get("x_dist", "uniform")
    dtype_name = cfg.get("dtype", "float32")
    if dtype_name not in _DTYPES:
        raise ValueError(f"dataset.dtype must be one of {', '.join(_DTYPES)}; got '{dtype_name}'")
    dtype = _DTYPES[dtype_name]
    counts, groups = class_structure(m)
    c = counts.numel()
    n = int(counts.sum())  # = m 2^m
    d = cfg.get("d")
    d = (m + 1) * 2 ** m if d is None else int(d)
    if d < 1:
        raise ValueError(f"dataset.d must be >= 1 or null; got {d}")
    y = torch.repeat_interleave(torch.arange(c, dtype=torch.int64), counts)
    if dist == "uniform":
        x = torch.rand(n, d, generator=gen, dtype=dtype)
    elif dist == "gaussian":
        x = torch.randn(n, d, generator=gen, dtype=dtype)
        x = x * float(cfg.get("x_scale", 1.0)) + float(cfg.get("x_mean", 0.0))
    else:
        raise ValueError(f"dataset.x_dist must be one of uniform, gaussian; got '{dist}'")
    if cfg.get("bias", False):
        x = torch.cat([x, torch.ones(n, 1, dtype=dtype)], dim=1)
    info = {
        "class_counts": [int(v) for v in counts.tolist()],
        "class_groups": [int(v) for v in groups.tolist()],
        "n_groups": m,
        "n": n,
        "d": int(x.shape[1]),
        "m": m,
    }
    return Data(x_train=x, y_train=y, x_test=x, y_test=y, task="classification", num_classes=c,
                input_dim=int(x.shape[1]), input_shape=(int(x.shape[1]),), info=info)
