"""Least-squares data: constants against numpy, and GD reaching the minimum-norm solution."""
import numpy as np
import pytest
import torch

from datasets.lstsq import load
from experiments import runid
from experiments.store import RunDir
from experiments.train import execute

BASE = {"name": "lstsq", "n": 60, "d": None, "d_over_n": 0.5, "sigma": 0.3, "kappa": None, "mix_rows": True,
        "normalize_rows": False, "n_test": 0}


def _data(**kw):
    return load({**BASE, **kw}, None, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_constants_match_numpy(ratio):
    d = _data(d_over_n=ratio)
    x, y = d.x_train.numpy(), d.y_train.numpy()
    n = x.shape[0]
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    assert d.info["f_star"] == pytest.approx(0.5 * np.mean((x @ w - y) ** 2), abs=1e-12)
    eig = np.linalg.eigvalsh(x.T @ x / n)
    nz = eig[eig > 1e-10 * eig.max()]
    assert d.info["L"] == pytest.approx(nz.max(), rel=1e-10)
    assert d.info["mu"] == pytest.approx(nz.min(), rel=1e-8)
    assert d.info["L_max"] == pytest.approx((x ** 2).sum(1).max(), rel=1e-12)
    assert d.info["interpolates"] == (ratio >= 1)
    # rho is the worst ratio E_i||grad f_i||^2 / ||grad f||^2 around an interpolating point:
    # random directions in the row space never exceed it, and it is attained.
    if ratio >= 1:
        rng = np.random.default_rng(0)
        basis = np.linalg.svd(x, full_matrices=False)[2]
        ratios = []
        for _ in range(2000):
            e = basis.T @ rng.standard_normal(basis.shape[0])
            gi = x * (x @ e)[:, None]
            ratios.append(np.mean((gi ** 2).sum(1)) / np.sum((x.T @ (x @ e) / n) ** 2))
        assert max(ratios) <= d.info["rho"] * (1 + 1e-9)
        # attained: generalized eigenproblem M v = rho H^2 v in the row space, via Cholesky
        m = basis @ (x.T * (x ** 2).sum(1)) @ x @ basis.T / n
        h = basis @ (x.T @ x / n) @ basis.T
        c = np.linalg.cholesky(h @ h)
        ci = np.linalg.inv(c)
        assert np.linalg.eigvalsh(ci @ m @ ci.T).max() == pytest.approx(d.info["rho"], rel=1e-6)


def test_kappa_sets_the_spectrum_exactly():
    d = _data(kappa=1000.0, d_over_n=2.0)
    assert d.info["L"] == pytest.approx(1.0, rel=1e-10) and d.info["kappa"] == pytest.approx(1000.0, rel=1e-8)
    d2 = _data(kappa=1000.0, d_over_n=2.0, mix_rows=False)
    assert d2.info["rho"] == pytest.approx(60.0, rel=1e-8)      # orthogonal rows: rho = n


def test_gd_with_step_one_over_L_reaches_the_minimum_norm_solution(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=lstsq", "dataset.n=30", "dataset.d_over_n=2", "dataset.kappa=10",
                      "model.bias=false", "model.init=zeros", "optimizer=gd", "train.epochs=400",
                      "train.eval_every=100", "train.save_model=true")
    s = execute(cfg)
    assert s["final"]["train/subopt"] < 1e-20
    w = torch.load(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "model_final.pt")["linear.weight"].squeeze(0)
    data = load(cfg["dataset"], None, __import__("experiments.seeding", fromlist=["x"]).generator(0, "data"))
    w_min = torch.linalg.pinv(data.x_train) @ data.y_train
    assert torch.allclose(w, w_min, atol=1e-10)        # from w0 = 0, GD never leaves the row space


def test_gd_is_full_batch_whatever_the_batch_size(compose_cfg):
    """A preset with batch 1 (convergence_rates) must still run GD, one step per epoch: with
    per-sample steps of 1/L it diverges (measured: 2e174 after 60 epochs)."""
    cfg = compose_cfg("dataset=lstsq", "dataset.n=30", "model.bias=false", "optimizer=gd",
                      "train.batch_size=1", "train.epochs=20", "train.eval_every=5")
    s = execute(cfg)
    assert s["steps"] == 20 and s["status"] == "completed"
