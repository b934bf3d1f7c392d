"""Linearly separable binary classification with margin tau (the SLS/SPS synthetic problem).

Own construction in the spirit of ``make_binary_linear`` (reference/algorithms.md 3.3):

- ``w*`` is a random unit vector; the separating hyperplane ``w*.x = 0`` goes through the origin.
- Two support vectors ``p -/+ tau w*`` (``p`` a random point of the hyperplane) come first
  and stay in the training split, so the margin of ``w*`` is exactly ``tau``.
- Every other point has a random label ``s = +/-1`` (probability 1/2), a component in the
  hyperplane drawn from N(0, I) (projected) and a signed distance ``s (tau + |g|)``,
  ``g ~ N(0, spread^2)``, along ``w*``. Hence ``s w*.x >= tau`` for every point: separable with
  margin tau, about ``sqrt(d)`` away from the origin; the smaller tau, the worse conditioned.
- ``flip_rate`` flips the labels of ``round(flip_rate n)`` distinct random points (after the
  construction, before the split): a non-separable, non-interpolating version.
- Labels are mapped to {0, 1} (2-class softmax); ``bias: true`` appends a column of ones.
- Split: the first ``(1 - test_frac) n`` points are the training set (no shuffle, as the
  reference); the points after the support vectors are i.i.d. anyway.

``info``: ``n``, ``d`` (features incl. bias column), ``margin`` (measured min_i s_i w*.x_i over
the points before label flips, equal to tau), ``n_flipped``, ``class_counts`` (train), and
for the step-size expressions ``L = lambda_max(X^T X)/(2 n)`` and ``L_max = max_i ||x_i||^2/2``
(smoothness of the mean 2-class cross-entropy of a linear model on these features, without
an extra model bias: the Hessian of softmax CE in the logits is at most 1/2).
"""
from __future__ import annotations

import torch

from datasets.base import Data

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_linclass(n: int, d: int, margin: float, gen: torch.Generator, spread: float = 1.0,
                  dtype=torch.float64):
    """Return ``(X [n, d], s [n] in {-1, +1}, w_star [d])`` with ``s_i w_star.x_i >= margin``
    for all i and equality at the two first points (the support vectors)."""
    if n < 2 or d < 1:
        raise ValueError(f"linclass needs n >= 2 and d >= 1; got n={n}, d={d}")
    if margin <= 0:
        raise ValueError(f"dataset.margin must be > 0; got {margin}")
    w = torch.randn(d, generator=gen, dtype=dtype)
    w = w / w.norm()

    def project(z):  # onto the hyperplane w.x = 0
        return z - (z @ w)[..., None] * w

    p = project(torch.randn(d, generator=gen, dtype=dtype))
    s = torch.where(torch.rand(n - 2, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    dist = margin + spread * torch.randn(n - 2, generator=gen, dtype=dtype).abs()
    x_rest = project(torch.randn(n - 2, d, generator=gen, dtype=dtype)) + (s * dist)[:, None] * w
    X = torch.cat([(p - margin * w)[None], (p + margin * w)[None], x_rest])
    S = torch.cat([torch.tensor([-1.0, 1.0], dtype=dtype), s])
    return X, S, w


def load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    n, d = int(cfg.get("n", 1000)), int(cfg.get("d", 20))
    margin = float(cfg.get("margin", 0.1))
    flip_rate = float(cfg.get("flip_rate", 0.0))
    test_frac = float(cfg.get("test_frac", 0.2))
    dtype_name = cfg.get("dtype", "float64")
    if dtype_name not in _DTYPES:
        raise ValueError(f"dataset.dtype must be one of {', '.join(_DTYPES)}; got '{dtype_name}'")
    if not 0.0 <= flip_rate <= 1.0:
        raise ValueError(f"dataset.flip_rate must be in [0, 1]; got {flip_rate}")
    if not 0.0 <= test_frac < 1.0:
        raise ValueError(f"dataset.test_frac must be in [0, 1); got {test_frac}")
    X, S, w = make_linclass(n, d, margin, gen, float(cfg.get("spread", 1.0)), _DTYPES[dtype_name])
    measured_margin = float((S * (X @ w)).min())
    n_flip = int(round(flip_rate * n))
    if n_flip > 0:
        idx = torch.randperm(n, generator=gen)[:n_flip]
        S[idx] = -S[idx]
    y = (S > 0).to(torch.int64)
    if cfg.get("bias", True):
        X = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], dim=1)
    n_tr = n - int(round(test_frac * n))
    x_tr, y_tr, x_te, y_te = X[:n_tr], y[:n_tr], X[n_tr:], y[n_tr:]
    info = {
        "n": n_tr,
        "d": int(X.shape[1]),
        "margin": measured_margin,
        "n_flipped": n_flip,
        "class_counts": [int(v) for v in torch.bincount(y_tr, minlength=2).tolist()],
        "L": float(torch.linalg.eigvalsh(x_tr.T @ x_tr)[-1]) / (2 * n_tr),
        "L_max": float((x_tr * x_tr).sum(1).max()) / 2,
    }
    return Data(x_train=x_tr, y_train=y_tr, x_test=x_te if n_tr < n else None,
                y_test=y_te if n_tr < n else None, task="classification", num_classes=2,
                input_dim=int(X.shape[1]), input_shape=(int(X.shape[1]),), info=info)
