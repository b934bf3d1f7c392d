"""Matrix-factorisation data (datasets/matfac.py) and the linear network (models/linear_net.py)."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from pathlib import Path

import datasets
import models
import optimizers

ROOT = Path(__file__).resolve().parents[1]


def cfg(**over):
    c = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "dataset" / "matfac.yaml"))
    c.update(over)
    return c


def load(seed=0, **over):
    return datasets.load(cfg(**over), ROOT / "data", torch.Generator().manual_seed(seed))


def test_shapes_split_and_exact_generator():
    d = load()
    assert d.task == "regression" and d.input_dim == 6
    assert d.x_train.shape == (800, 6) and d.y_train.shape == (800, 10)
    assert d.x_test.shape == (200, 6) and d.y_test.shape == (200, 10)
    assert d.x_train.dtype == torch.float32
    d64 = load(float64=True)
    assert d64.x_train.dtype == torch.float64
    x = torch.cat([d64.x_train, d64.x_test])
    y = torch.cat([d64.y_train, d64.y_test])
    # Y = A X exactly, with row i of A scaled by linspace(1, 1e-10, 10)[i] times U(0, 1) entries
    a = torch.linalg.lstsq(x, y).solution.T                      # [10, 6]
    assert float((x @ a.T - y).abs().max()) < 1e-12
    scales = torch.linspace(1, 1e-10, 10, dtype=torch.float64)
    ratio = a / scales[:, None]
    assert float(ratio.min()) >= -1e-6 and float(ratio.max()) <= 1 + 1e-6
    assert float(a[-1].abs().max()) < 1e-9 < float(a[0].abs().max())
    # X ~ N(0, 1)
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1
    info = d64.info
    assert info["rank_A"] == 6 and 1 < info["cond_A"] < 1e4
    assert info["f_star"] < 1e-20 and info["label_noise"] == 0.0


def test_deterministic_in_the_data_stream():
    a, b, c = load(seed=1), load(seed=1), load(seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)


def test_label_noise_and_log_spacing():
    d = load(float64=True, label_noise=0.1)
    f_star = d.info["f_star"]
    # residual of least squares with 6 regressors per output: sigma^2/2 * 10 * (800 - 6)/800
    assert f_star == pytest.approx(0.5 * 0.01 * 10 * 794 / 800, rel=0.15)
    fs = d.info["f_star_by_rank"]
    assert len(fs) == 6 and all(x >= y for x, y in zip(fs, fs[1:]))
    d_log = load(float64=True, spacing="log")
    assert d_log.info["cond_A"] > 1e3
    with pytest.raises(ValueError, match="spacing"):
        load(spacing="cubic")


@pytest.mark.parametrize("rank,shapes", [(4, [(4, 6), (10, 4)]), (1, [(1, 6), (10, 1)]),
                                         (None, [(10, 6)]), ("full", [(10, 6)])])
def test_linear_net_structure(rank, shapes):
    d = load(float64=True)
    m = models.build({"name": "linear_net", "rank": rank}, d)
    ws = [p for p in m.parameters()]
    assert [tuple(p.shape) for p in ws] == shapes
    assert all(p.dtype == torch.float64 for p in ws)
    out = m(d.x_train[:5])
    assert out.shape == (5, 10)
    expected = d.x_train[:5]
    for w in ws:
        expected = expected @ w.T
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError):
        models.build({"name": "linear_net", "rank": "half"}, d)


def _loss(m, x, y):
    return 0.5 * ((m(x) - y) ** 2).sum(1).mean()


def test_rank_controls_interpolation():
    """f_star_by_rank is the attainable minimum: rank 1 plateaus there (L-BFGS, full batch);
    the rank-10 factorisation fits the data to ~0 with SLS (minibatch 100, no tuning)."""
    d = load(float64=True)
    torch.manual_seed(0)
    m1 = models.build({"name": "linear_net", "rank": 1}, d)
    opt = optimizers.build({"name": "lbfgs", "line_search_fn": "strong_wolfe", "max_iter": 200,
                            "tolerance_grad": 1e-12, "tolerance_change": 1e-15}, m1.parameters())
    for _ in range(5):
        opt.step(lambda: _loss(m1, d.x_train, d.y_train))
    with torch.no_grad():
        f1 = float(_loss(m1, d.x_train, d.y_train))
    assert f1 >= d.info["f_star_by_rank"][0] * (1 - 1e-9)
    assert f1 == pytest.approx(d.info["f_star_by_rank"][0], rel=1e-4)

    torch.manual_seed(0)
    m10 = models.build({"name": "linear_net", "rank": 10}, d)
    opt = optimizers.build({"name": "sls"}, m10.parameters(), n_batches_per_epoch=8)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        for idx in torch.randperm(800, generator=gen).split(100):
            opt.step(lambda: _loss(m10, d.x_train[idx], d.y_train[idx]))
    with torch.no_grad():
        assert float(_loss(m10, d.x_train, d.y_train)) < 1e-6 < f1
