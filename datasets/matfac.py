"""Synthetic matrix factorisation data of the SLS / SPS / ada_sls papers ("as suggested by
Ben Recht"), regression task Y = A_true X.

Generator (reference ``generate_synthetic_matrix_factorization_data``, algorithms.md 3.2):

    A_true = linspace(1, a_min, ydim)[:, None] * U(0,1)^{ydim x xdim}   (a_min = 1e-10)
    X      = N(0,1)^{xdim x n_samples},   Y = A_true X  (+ label_noise * N(0,1))
    samples are the columns: x [n, xdim], y [n, ydim]; random split test_size = 0.2

Defaults xdim 6, ydim 10, n_samples 1000 (800 train / 200 test). Despite the reference's
name ``A_condition_number``, the row scales are *linearly* spaced, so A_true is only mildly
ill-conditioned (cond ~ 10-100); ``spacing: log`` gives row scales logspace(0, log10 a_min)
for a genuinely ill-conditioned A. All draws come from the data stream ``gen`` (the
reference uses numpy's unseeded global RNG and caches the first draw in a pickle).

rank(A_true) = min(xdim, ydim) = 6, so a linear network with hidden rank r >= 6 (or the
full linear map) interpolates the noiseless data and r < 6 cannot (f* > 0).

``info``: xdim, ydim, n, rank_A, singular values and condition number of A_true,
label_noise, and ``f_star_by_rank``: the exact minimum of the training loss
1/(2n) sum_i ||W x_i - y_i||^2 over rank-r maps W, for r = 1 .. min(xdim, ydim)
(reduced-rank regression: least-squares fit, then truncated SVD of the fitted values), so
curves can be plotted as f - f*. ``f_star`` is the full-rank value.
"""
from __future__ import annotations

import math

import torch

from datasets.base import Data


def _f_star_by_rank(x: torch.Tensor, y: torch.Tensor) -> list:
    """min over rank-r W of 1/(2n) ||X W^T - Y||_F^2 for r = 1..min(xdim, ydim) (float64)."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    w_t = torch.linalg.lstsq(x, y, driver="gelsd").solution       # [xdim, ydim]
    fit = x @ w_t
    base = float((fit - y).pow(2).sum())
    s = torch.linalg.svdvals(fit)
    out = []
    for r in range(1, min(x.shape[1], y.shape[1]) + 1):
        out.append(0.5 * (base + float(s[r:].pow(2).sum())) / n)
    return out


def load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    xdim, ydim = int(cfg.get("xdim", 6)), int(cfg.get("ydim", 10))
    n = int(cfg.get("n_samples", 1000))
    a_min = float(cfg.get("a_min", 1e-10))
    spacing = cfg.get("spacing", "linear")
    test_size = float(cfg.get("test_size", 0.2))
    noise = float(cfg.get("label_noise", 0.0))
    if spacing == "linear":
        scales = torch.linspace(1.0, a_min, ydim, dtype=torch.float64)
    elif spacing == "log":
        scales = torch.logspace(0.0, math.log10(a_min), ydim, dtype=torch.float64)
    else:
        raise ValueError(f"dataset.spacing must be one of linear, log; got '{spacing}'")
    if not 0 <= test_size < 1:
        raise ValueError("dataset.test_size must lie in [0, 1)")
    a_true = scales[:, None] * torch.rand(ydim, xdim, generator=gen, dtype=torch.float64)
    x = torch.randn(xdim, n, generator=gen, dtype=torch.float64)
    y = a_true @ x
    if noise > 0:
        y = y + noise * torch.randn(ydim, n, generator=gen, dtype=torch.float64)
    x, y = x.T.contiguous(), y.T.contiguous()
    perm = torch.randperm(n, generator=gen)
    n_test = int(round(test_size * n))
    tr, te = perm[n_test:], perm[:n_test]
    dtype = torch.float64 if cfg.get("float64", False) else torch.float32
    sv = torch.linalg.svdvals(a_true)
    info = {
        "xdim": xdim, "ydim": ydim, "n": int(tr.numel()), "label_noise": noise,
        "spacing": spacing, "rank_A": int(torch.linalg.matrix_rank(a_true)),
        "singular_values_A": [float(s) for s in sv],
        "cond_A": float(sv[0] / sv[-1]),
        "f_star_by_rank": _f_star_by_rank(x[tr], y[tr]),
    }
    info["f_star"] = info["f_star_by_rank"][-1]
    return Data(x_train=x[tr].to(dtype), y_train=y[tr].to(dtype),
                x_test=x[te].to(dtype) if n_test else None,
                y_test=y[te].to(dtype) if n_test else None,
                task="regression", input_dim=xdim, input_shape=(xdim,), info=info)
