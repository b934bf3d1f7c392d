"""zipf_linear (Kunstner et al. 2024 heavy-tailed labels) and linclass (separable with margin)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import datasets
import models
from datasets.linclass import make_linclass
from datasets.zipf_linear import class_structure

CONF = Path(__file__).resolve().parents[1] / "conf"


def _cfg(group, name, **kw):
    with open(CONF / group / f"{name}.yaml") as f:
        cfg = yaml.safe_load(f)
    assert cfg["name"] == name
    unknown = set(kw) - set(cfg)
    assert not unknown, f"test uses keys missing from {name}.yaml: {unknown}"
    cfg.update(kw)
    return cfg


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- zipf_linear
def test_zipf_linear_sizes_and_class_counts():
    m = 4
    d = datasets.load(_cfg("dataset", "zipf_linear", m=m), "unused", _gen())
    assert d.task == "classification" and d.num_classes == 15
    assert d.x_train.shape == (64, 80) and d.input_dim == 80  # n = m 2^m, d = (m+1) 2^m
    assert d.x_train.dtype == torch.float32 and 0 <= d.x_train.min() and d.x_train.max() <= 1
    groups = torch.tensor(d.info["class_groups"])
    counts = torch.tensor(d.info["class_counts"])
    assert groups.tolist() == [0] + [1] * 2 + [2] * 4 + [3] * 8
    assert torch.equal(counts, 2 ** (m - groups))  # 2^(m-i) samples per class of group i
    assert counts.tolist()[:4] == [16, 8, 8, 4]
    assert torch.equal(torch.bincount(d.y_train, minlength=15), counts)
    for i in range(m):  # every group holds 2^m samples
        assert counts[groups == i].sum() == 2 ** m and (groups == i).sum() == 2 ** i
    assert torch.equal(d.y_train, d.y_train.sort().values)  # ordered by class
    assert d.x_test is d.x_train and d.y_test is d.y_train  # train = test
    assert d.info["n"] == 64 and d.info["d"] == 80 and d.info["m"] == 4


def test_zipf_linear_default_and_options():
    d = datasets.load(_cfg("dataset", "zipf_linear"), "unused", _gen())
    assert d.x_train.shape == (896, 1024) and d.num_classes == 127  # m = 7 (table of 4.3)
    a = datasets.load(_cfg("dataset", "zipf_linear", m=3), "unused", _gen(5))
    b = datasets.load(_cfg("dataset", "zipf_linear", m=3), "unused", _gen(5))
    c = datasets.load(_cfg("dataset", "zipf_linear", m=3), "unused", _gen(6))
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
    g = datasets.load(_cfg("dataset", "zipf_linear", m=5, x_dist="gaussian", x_mean=1.0, x_scale=2.0,
                           dtype="float64", d=40, bias=True), "unused", _gen())
    assert g.x_train.shape == (160, 41) and g.x_train.dtype == torch.float64
    assert torch.all(g.x_train[:, -1] == 1) and abs(g.x_train[:, :-1].mean() - 1.0) < 0.1
    assert abs(g.x_train[:, :-1].std() - 2.0) < 0.1 and g.x_train.min() < 0
    with pytest.raises(ValueError):
        datasets.load(_cfg("dataset", "zipf_linear", x_dist="cauchy"), "unused", _gen())
    counts, groups = class_structure(11)
    assert counts.numel() == 2047 and counts.sum() == 22528


def test_zipf_linear_is_fit_by_the_linear_model():
    """Over-parameterized (d > n): a linear softmax model can interpolate the labels."""
    d = datasets.load(_cfg("dataset", "zipf_linear", m=3), "unused", _gen())
    torch.manual_seed(0)
    model = models.build(_cfg("model", "linear"), d)
    assert model(d.x_train).shape == (24, 7)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = F.cross_entropy(model(d.x_train), d.y_train)
        loss.backward()
        opt.step()
    assert (model(d.x_train).argmax(1) == d.y_train).all() and loss.item() < 0.05


# ----------------------------------------------------------------------------- linclass
@pytest.mark.parametrize("margin", [0.01, 0.1, 0.5])
def test_make_linclass_margin_is_tau(margin):
    X, s, w = make_linclass(1000, 20, margin, _gen(3))
    assert abs(w.norm() - 1) < 1e-12
    dist = s * (X @ w)
    assert dist.min() >= margin - 1e-12
    assert torch.allclose(dist[:2], torch.full((2,), margin, dtype=X.dtype))  # support vectors
    assert 400 < (s > 0).sum() < 600


def test_linclass_loader_split_bias_and_info():
    cfg = _cfg("dataset", "linclass")
    d = datasets.load(cfg, "unused", _gen())
    assert d.task == "classification" and d.num_classes == 2
    assert d.x_train.shape == (800, 21) and d.x_test.shape == (200, 21) and d.input_dim == 21
    assert d.x_train.dtype == torch.float64 and torch.all(d.x_train[:, -1] == 1)
    assert set(d.y_train.unique().tolist()) == {0, 1} and d.y_train.dtype == torch.int64
    assert d.y_train[:2].tolist() == [0, 1]  # support vectors stay in the training split
    assert abs(d.info["margin"] - cfg["margin"]) < 1e-12 and d.info["n_flipped"] == 0
    assert sum(d.info["class_counts"]) == 800
    # smoothness constants of the 2-class cross-entropy: L <= L_max, L = lambda_max(X^T X)/(2n)
    X = d.x_train
    assert d.info["L"] == pytest.approx(torch.linalg.eigvalsh(X.T @ X)[-1].item() / 1600)
    assert 0 < d.info["L"] <= d.info["L_max"]
    # separable: the generating direction classifies every point with margin >= tau
    g = _gen()
    _, _, w = make_linclass(1000, 20, cfg["margin"], g)
    s = 2.0 * torch.cat([d.y_train, d.y_test]) - 1
    Xall = torch.cat([d.x_train, d.x_test])[:, :20]
    assert (s * (Xall @ w)).min() >= cfg["margin"] - 1e-12


def test_linclass_flips_and_options():
    clean = datasets.load(_cfg("dataset", "linclass", bias=False, test_frac=0.0), "unused", _gen(1))
    noisy = datasets.load(_cfg("dataset", "linclass", bias=False, test_frac=0.0, flip_rate=0.05),
                          "unused", _gen(1))
    assert clean.x_test is None and clean.x_train.shape == (1000, 20)
    assert torch.equal(clean.x_train, noisy.x_train)
    assert (clean.y_train != noisy.y_train).sum() == 50 == noisy.info["n_flipped"]
    f32 = datasets.load(_cfg("dataset", "linclass", dtype="float32", n=100, d=5), "unused", _gen())
    assert f32.x_train.dtype == torch.float32 and f32.x_train.shape == (80, 6)


def test_linclass_is_interpolated_by_logistic_regression():
    d = datasets.load(_cfg("dataset", "linclass", margin=0.5), "unused", _gen())
    torch.manual_seed(0)
    model = models.build(_cfg("model", "linear", init="zeros"), d)
    assert model.linear.weight.dtype == torch.float64
    opt = torch.optim.SGD(model.parameters(), lr=1.0 / d.info["L"])
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(d.x_train), d.y_train)
        loss.backward()
        opt.step()
    assert (model(d.x_train).argmax(1) == d.y_train).float().mean() >= 0.99
