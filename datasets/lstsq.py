"""Synthetic least squares in float64, with the constants the theory needs computed exactly.

f(w) = 1/(2n) ||X w - y||^2,   y = X w_true + sigma * eps,   w_true ~ N(0, I/d)

Knobs: n, d (or ``d_over_n`` when d is null), sigma, kappa, normalize_rows, n_test.
- kappa null: X_ij ~ N(0, 1/d) (rows of norm about 1).
- kappa set:  X = sqrt(n) U diag(s) V^T with s log-spaced in [kappa^-1/2, 1], so the nonzero
  spectrum of the Hessian H = X^T X / n is exactly [1/kappa, 1] (L = 1, mu = 1/kappa).
- mix_rows false (with kappa): U = I, so the rows are orthogonal and d >= n gives a strong-
  growth constant rho = n for every kappa (with a random U, rho grows with kappa, and SGD with
  step 1/(rho L) then needs ~kappa^2 iterations).
- normalize_rows: every row scaled to unit norm (then L_max = 1: SGD with step 1 is
  randomized Kaczmarz); applied after the spectrum, so kappa becomes approximate.

Reported in ``info`` (all from the data, none assumed):
  f_star   minimum of f: (1/2n)||X w_ls - y||^2 with w_ls = X^+ y (0 when d >= n)
  L        largest eigenvalue of H;  L_max = max_i ||x_i||^2 (smoothness of the f_i)
  mu       smallest nonzero eigenvalue of H (the PL constant; strong convexity when d <= n)
  kappa    L / mu;  interpolates: whether f_star is 0 to round-off
  rho      strong-growth constant for batch size 1 of the noiseless problem:
           sup_e  E_i ||x_i x_i^T e||^2 / ||H e||^2 over e in the row space of X.
           Exact SGC constant when the problem interpolates; for a noisy under-parameterized
           problem SGC fails (rho is infinite) and this is the constant of its noiseless part.
"""
from __future__ import annotations

import math

import torch

from datasets.base import Data


def _design(n: int, d: int, kappa, mix_rows: bool, gen) -> torch.Tensor:
    if kappa is None:
        return torch.randn(n, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    r = min(n, d)
    if mix_rows:
        u, _ = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=torch.float64))
    else:
        u = torch.eye(n, r, dtype=torch.float64)
    v, _ = torch.linalg.qr(torch.randn(d, r, generator=gen, dtype=torch.float64))
    s = torch.logspace(0, -0.5 * math.log10(kappa), r, dtype=torch.float64)
    return math.sqrt(n) * (u * s) @ v.T


def constants(x: torch.Tensor, y: torch.Tensor) -> dict:
    n, d = x.shape
    w_ls = torch.linalg.lstsq(x, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    f_star = float(0.5 * (x @ w_ls - y).pow(2).mean())
    # Eigen-decomposition of H = X^T X / n through the thin SVD of X (stable in both regimes).
    _, sv, vt = torch.linalg.svd(x, full_matrices=False)
    eig = sv.pow(2) / n
    tol = eig.max() * max(n, d) * torch.finfo(x.dtype).eps
    keep = eig > tol
    eig, v = eig[keep], vt[keep].T                        # row-space basis, d x r
    L, mu = float(eig.max()), float(eig.min())
    row_sq = x.pow(2).sum(1)
    xv = x @ v                                            # coordinates of the rows in that basis
    m = (xv * row_sq.unsqueeze(1)).T @ xv / n             # V^T (1/n sum ||x_i||^2 x_i x_i^T) V
    inv = eig.pow(-1.0)                                   # (V^T H^2 V)^{-1/2} = diag(1/eig)
    rho = float(torch.linalg.eigvalsh(inv.unsqueeze(1) * m * inv.unsqueeze(0)).max())
    scale = max(1.0, float(y.pow(2).mean()))
    return {"f_star": f_star, "L": L, "L_max": float(row_sq.max()), "mu": mu, "kappa": L / mu,
            "rho": rho, "n": n, "d": d, "rank": int(keep.sum()),
            "interpolates": bool(f_star <= 1e-20 * scale)}


def load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    n = int(cfg["n"])
    d = int(cfg["d"]) if cfg.get("d") is not None else max(1, round(float(cfg["d_over_n"]) * n))
    n_test = int(cfg.get("n_test") or 0)
    x = _design(n + n_test, d, cfg.get("kappa"), bool(cfg.get("mix_rows", True)), gen)
    if cfg.get("normalize_rows"):
        x = x / x.norm(dim=1, keepdim=True)
    w_true = torch.randn(d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    y = x @ w_true + float(cfg["sigma"]) * torch.randn(n + n_test, generator=gen, dtype=torch.float64)
    xtr, ytr = x[:n], y[:n]
    info = constants(xtr, ytr)
    info["sigma"] = float(cfg["sigma"])
    return Data(x_train=xtr, y_train=ytr,
                x_test=x[n:] if n_test else None, y_test=y[n:] if n_test else None,
                task="regression", input_dim=d, input_shape=(d,), info=info)
