"""Line searches and Polyak steps (SLS, SPS, PoNoS, SLS_prec, PoNoS_prec) against update
rules written out independently here, in float64 on small least-squares problems."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from test_optimizers import LSQ, run  # noqa: E402

from optimizers import build, stats  # noqa: E402



@pytest.fixture(autouse=True)
def _float64_default():
    """These tests run in float64; restore the session's default dtype afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------- references
def armijo(f, w, g, d, f0, eta, ref, decrease, c, beta_b, max_bt=100):
    """Backtracking on w - eta d; returns (eta or None, rejected trials)."""
    for t in range(max_bt):
        if f(w - eta * d) <= ref - c * eta * decrease:
            return eta, t
        eta *= beta_b
    return None, max_bt


def ref_sls(prob, batches, c=0.1, beta_b=0.9, gamma=2.0, reset=1, init=1.0, nb=3, eta_max=10.0):
    w, eta_prev, log = prob.w0.clone(), init, []
    for idx in batches:
        f = lambda v: prob.f(v, idx)
        f0, g = f(w), prob.grad(w, idx)
        g2 = float(g @ g)
        eta = {0: eta_prev, 1: eta_prev * gamma ** (1 / nb), 2: init,
               11: min(eta_prev * gamma ** (1 / nb), eta_max)}[reset]
        eta, bt = armijo(f, w, g, g, f0, eta, f0, g2, c, beta_b)
        if eta is None:
            eta = 1e-6
        w = w - eta * g
        eta_prev = eta
        log.append((eta, bt))
    return w, log


def ref_ponos(prob, batches, c=0.5, c_p=0.1, delta=0.5, xi=1.0, max_eta=10.0, min_eta=1e-6,
              memory=True):
    w, q, cc, l, log = prob.w0.clone(), 0.0, 0.0, 0, []
    for idx in batches:
        f = lambda v: prob.f(v, idx)
        f0, g = f(w), prob.grad(w, idx)
        g2 = float(g @ g)
        q_new = xi * q + 1
        cc = (xi * q * cc + f0) / q_new
        q = q_new
        ref = max(cc, f0)
        polyak = f0 / (c_p * g2)
        eta = polyak * delta ** l if memory else polyak
        eta = min(max(eta, min_eta), max_eta)
        eta, bt = armijo(f, w, g, g, f0, eta, ref, g2, c, delta)
        if eta is None:
            eta = 1e-6
        w = w - eta * g
        if memory:
            l = max(l + bt - 1, 0)
        log.append((eta, bt, polyak, cc))
    return w, log


def ref_prec(prob, batches, kind, c=0.1, beta_b=0.9, b1=0.9, b2=0.999, eps=1e-8, eta_max=10.0,
             c_p=0.1, gamma=2.0, nb=3, init=1.0, xi=None, suff_decr="pp_norm"):
    xi = (1.0 if kind == "ponos" else 0.0) if xi is None else xi
    w = prob.w0.clone()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    q, cc, eta_prev, log = 0.0, 0.0, init, []
    for k, idx in enumerate(batches, start=1):
        f = lambda u: prob.f(u, idx)
        f0, g = f(w), prob.grad(w, idx)
        q_new = xi * q + 1
        cc = (xi * q * cc + f0) / q_new
        q = q_new
        ref = max(cc, f0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        D = torch.sqrt(v / (1 - b2 ** k)) + eps
        d = (m / (1 - b1 ** k)) / D
        pp = float((g * g / D).sum())
        decrease = {"pp_norm": pp, "grad_norm": float(g @ g), "dir_der": max(float(g @ d), 0.0)}[suff_decr]
        if kind == "ponos":
            eta = min(f0 / (c_p * pp), eta_max)
        else:
            eta = min(eta_prev * gamma ** (1 / nb), eta_max)
        eta, bt = armijo(f, w, g, d, f0, eta, ref, decrease, c, beta_b)
        if eta is None:
            eta = 1e-6
        w = w - eta * d
        eta_prev = eta
        log.append((eta, bt))
    return w, log


def record(opt, prob, params, batches):
    """Run the optimizer; return the per-step (step_size, backtracks, polyak, w_before, w_after)."""
    out = []
    for idx in batches:
        w_before = LSQ.flat(params)
        opt.step(prob.closure(params, idx))
        out.append((opt.state["step_size"], opt.state["backtracks"], opt.state.get("polyak_step"),
                    w_before, LSQ.flat(params)))
    return out


# ----------------------------------------------------------------------------- SLS
@pytest.mark.parametrize("reset", [0, 1, 2, 11])
def test_sls_matches_reference_and_satisfies_armijo(reset):
    prob = LSQ(seed=30)
    batches = prob.batches(10)
    params = prob.params()
    eta_max = 0.06  # small enough that option 11's cap binds
    opt = build({"name": "sls", "reset_option": reset, "eta_max": eta_max}, params,
                n_batches_per_epoch=3)
    rec = record(opt, prob, params, batches)
    w_ref, log = ref_sls(prob, batches, reset=reset, eta_max=eta_max)
    torch.testing.assert_close(LSQ.flat(params), w_ref, rtol=1e-11, atol=1e-12)
    assert [r[0] for r in rec] == pytest.approx([e for e, _ in log], rel=1e-12)
    assert [r[1] for r in rec] == [b for _, b in log]
    if reset != 11:
        assert sum(b for _, b in log) > 0  # the problem does exercise backtracking
    for (eta, bt, _, w0, w1), idx in zip(rec, batches):
        g = prob.grad(w0, idx)
        assert prob.f(w1, idx) <= prob.f(w0, idx) - 0.1 * eta * float(g @ g) + 1e-15
    if reset == 11:
        assert max(r[0] for r in rec) == eta_max  # the cap binds
    assert stats(opt)["n_forwards"] == sum(2 + b for _, b in log)
    assert stats(opt)["n_backwards"] == len(batches)


def test_sls_goldstein_accepted_steps_satisfy_both_conditions():
    prob = LSQ(seed=31)
    batches = prob.batches(12)
    params = prob.params()
    c = 0.1
    opt = build({"name": "sls", "line_search_fn": "goldstein", "reset_option": 0,
                 "init_step_size": 1e-3, "c": c}, params, n_batches_per_epoch=3)
    rec = record(opt, prob, params, batches)
    grew = False
    for (eta, bt, _, w0, w1), idx in zip(rec, batches):
        f0, g = prob.f(w0, idx), prob.grad(w0, idx)
        g2 = float(g @ g)
        f1 = prob.f(w1, idx)
        torch.testing.assert_close(w1, w0 - eta * g, rtol=1e-12, atol=1e-14)
        assert f1 <= f0 - c * eta * g2 + 1e-15
        assert f1 >= f0 - (1 - c) * eta * g2 - 1e-15 or eta >= 10.0
        grew |= eta > 1e-3
    assert grew  # the step-increase branch was used (started far too small)
    with pytest.raises(ValueError, match="1/2"):
        build({"name": "sls", "line_search_fn": "goldstein", "c": 0.6}, prob.params())


def test_sls_fallback_after_100_rejections_and_skip_on_zero_gradient():
    prob = LSQ(seed=32)
    params = prob.params()
    opt = build({"name": "sls"}, params, n_batches_per_epoch=3)
    idx = torch.arange(4)
    inner = prob.closure(params, idx)
    calls = {"n": 0}

    def closure():  # every trial looks worse than the start
        calls["n"] += 1
        loss = inner()
        return loss if calls["n"] == 1 else loss + 1e3
    w0 = LSQ.flat(params)
    opt.step(closure)
    g = prob.grad(w0, idx)
    torch.testing.assert_close(LSQ.flat(params), w0 - 1e-6 * g, rtol=1e-13, atol=1e-15)
    assert opt.state["backtracks"] == 100 and opt.state["step_size"] == 1e-6
    assert stats(opt)["n_forwards"] == 101 and calls["n"] == 101
    assert opt.state["failed_forwards"] == 100 and opt.state["equal_stops"] == 0
    # zero gradient: no step, no trial
    w1 = LSQ.flat(params)
    opt.step(lambda: (params[0] * 0).sum() + (params[1] * 0).sum() + 1.0)
    assert torch.equal(LSQ.flat(params), w1) and opt.state["step_size"] == 0.0
    assert stats(opt)["n_forwards"] == 102


# ----------------------------------------------------------------------------- SPS
@pytest.mark.parametrize("mode", ["smooth_iter", "constant"])
def test_sps_step_is_the_polyak_formula(mode):
    prob = LSQ(seed=33)
    batches = prob.batches(8)
    params = prob.params()
    c, eta_max, f_star = 0.5, 0.08, 0.01
    opt = build({"name": "sps", "c": c, "adapt_flag": mode, "f_star": f_star,
                 "eta_max": eta_max if mode == "constant" else None}, params, n_batches_per_epoch=3)
    run(opt, prob, params, batches)
    w, eta_prev, capped = prob.w0.clone(), 1.0, 0
    for idx in batches:
        f0, g = prob.f(w, idx), prob.grad(w, idx)
        polyak = max(f0 - f_star, 0.0) / (c * float(g @ g))
        eta = min(polyak, 2 ** (1 / 3) * eta_prev) if mode == "smooth_iter" else min(polyak, eta_max)
        capped += eta < polyak
        w = w - eta * g
        eta_prev = eta
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)
    assert stats(opt)["n_forwards"] == 8 == stats(opt)["n_backwards"]
    assert 0 < capped  # the cap / smoothing was active at least once


def test_sps_accepts_precomputed_loss():
    prob = LSQ(seed=34)
    params = prob.params()
    idx = torch.arange(5)
    opt = build({"name": "sps", "c": 0.5}, params, n_batches_per_epoch=3)
    loss = prob.closure(params, idx)()
    loss.backward()
    opt.step(loss=loss)
    g = prob.grad(prob.w0, idx)
    eta = min(prob.f(prob.w0, idx) / (0.5 * float(g @ g)), 2 ** (1 / 3))
    torch.testing.assert_close(LSQ.flat(params), prob.w0 - eta * g, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- PoNoS
@pytest.mark.parametrize("xi,memory", [(1.0, True), (1.0, False), (0.0, True)])
def test_ponos_matches_reference(xi, memory):
    prob = LSQ(seed=35)
    batches = prob.batches(12)
    params = prob.params()
    opt = build({"name": "ponos", "xi": xi, "memory": memory}, params)
    rec = record(opt, prob, params, batches)
    w_ref, log = ref_ponos(prob, batches, xi=xi, memory=memory)
    torch.testing.assert_close(LSQ.flat(params), w_ref, rtol=1e-11, atol=1e-12)
    assert [r[0] for r in rec] == pytest.approx([e[0] for e in log], rel=1e-12)
    assert [r[1] for r in rec] == [e[1] for e in log]
    assert [r[2] for r in rec] == pytest.approx([e[2] for e in log], rel=1e-12)


def test_ponos_reference_is_the_running_mean_and_steps_are_non_monotone_armijo():
    prob = LSQ(seed=36, scale=0.5)
    batches = prob.batches(15)
    params = prob.params()
    c = 0.5
    opt = build({"name": "ponos", "c": c}, params)
    losses, nonmono = [], 0
    for idx in batches:
        w0 = LSQ.flat(params)
        f0 = prob.f(w0, idx)
        g = prob.grad(w0, idx)
        losses.append(f0)
        opt.step(prob.closure(params, idx))
        # xi = 1: C_k is the running mean of all minibatch losses so far
        assert opt.state["zh_c"] == pytest.approx(sum(losses) / len(losses), rel=1e-12)
        ref = max(sum(losses) / len(losses), f0)
        eta = opt.state["step_size"]
        f1 = prob.f(LSQ.flat(params), idx)
        assert f1 <= ref - c * eta * float(g @ g) + 1e-15
        nonmono += f1 > f0 - c * eta * float(g @ g)
        assert 1e-6 <= eta <= 10.0
    assert opt.state["zh_q"] == len(batches)


# ----------------------------------------------------------------------------- prec variants
@pytest.mark.parametrize("suff_decr", ["pp_norm", "grad_norm", "dir_der"])
@pytest.mark.parametrize("kind", ["sls", "ponos"])
def test_prec_line_searches_match_reference(kind, suff_decr):
    prob = LSQ(seed=37)
    batches = prob.batches(10)
    params = prob.params()
    opt = build({"name": f"{kind}_prec", "reading": "released", "suff_decr": suff_decr}, params,
                n_batches_per_epoch=3)
    rec = record(opt, prob, params, batches)
    w_ref, log = ref_prec(prob, batches, kind, suff_decr=suff_decr)
    torch.testing.assert_close(LSQ.flat(params), w_ref, rtol=1e-10, atol=1e-12)
    assert [r[0] for r in rec] == pytest.approx([e for e, _ in log], rel=1e-10)
    assert [r[1] for r in rec] == [b for _, b in log]
    assert opt.state["adam_step"] == len(batches)


def test_prec_sufficient_decrease_uses_preconditioned_norm():
    """Accepted steps satisfy f(w - eta d) <= ref - c eta g^T D^-1 g with D from the
    optimizer's own moments (SLS_prec: ref = current loss). Steps where the momentum
    direction is not a descent direction for this test run to 100 rejections and take the
    documented fallback step instead."""
    prob = LSQ(seed=38)
    batches = prob.batches(10)
    params = prob.params()
    opt = build({"name": "sls_prec", "reading": "released", "c": 0.1}, params, n_batches_per_epoch=3)
    b2, fallbacks = 0.999, 0
    for k, idx in enumerate(batches, start=1):
        w0 = LSQ.flat(params)
        opt.step(prob.closure(params, idx))
        v = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in params])
        D = torch.sqrt(v / (1 - b2 ** k)) + 1e-8
        g = prob.grad(w0, idx)
        pp = float((g * g / D).sum())
        eta = opt.state["step_size"]
        if opt.state["backtracks"] == 100:
            fallbacks += 1
            assert eta == 1e-6
            continue
        assert prob.f(LSQ.flat(params), idx) <= prob.f(w0, idx) - 0.1 * eta * pp + 1e-15
    assert fallbacks <= len(batches) // 2


# ----------------------------------------------------------------------------- randomness, groups
@pytest.mark.parametrize("name", ["sls", "ponos", "sls_prec", "ponos_prec", "svrg"])
def test_every_evaluation_in_a_step_sees_the_same_randomness(name):
    prob = LSQ(seed=39)
    params = prob.params()
    cfg = {"name": name, "init_step_size": 100.0} if name == "sls" else {"name": name}
    if name == "svrg":
        cfg["lr"] = 0.01
    opt = build(cfg, params, n_batches_per_epoch=3)
    if opt.needs_snapshot:
        opt.set_snapshot(prob.closure(params, torch.arange(prob.n)))
    idx = torch.arange(6)
    inner = prob.closure(params, idx)
    seen = []

    def closure():  # "dropout": a random mask drawn from the global RNG
        mask = (torch.rand(6) > 0.3).double()
        seen.append(mask)
        w = torch.cat([params[0], params[1].reshape(-1)])
        r = (prob.X[idx] @ w - prob.y[idx]) * mask
        return 0.5 * (r * r).mean()
    torch.manual_seed(0)
    opt.step(closure)
    first = list(seen)
    assert len(first) >= 2
    assert all(torch.equal(m, first[0]) for m in first)
    seen.clear()
    opt.step(closure)
    assert all(torch.equal(m, seen[0]) for m in seen)
    assert not all(torch.equal(a, b) for a, b in zip(seen, first))  # fresh mask next step


def test_line_search_params_groups_are_global():
    prob = LSQ(seed=40)
    batches = prob.batches(6)
    p1, p2 = prob.params(), prob.params()
    o1 = build({"name": "sls"}, p1, n_batches_per_epoch=3)
    o2 = build({"name": "sls"}, [{"params": [p2[0]]}, {"params": [p2[1]]}], n_batches_per_epoch=3)
    run(o1, prob, p1, batches)
    run(o2, prob, p2, batches)
    assert torch.equal(LSQ.flat(p1), LSQ.flat(p2))
    with pytest.raises(ValueError, match="every param group"):
        build({"name": "sls"}, [{"params": [p2[0]]}, {"params": [p2[1]], "c": 0.5}])


# ----------------------------------------------------------------------------- convergence
def _interpolating(n=40, d=80, seed=41):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g) / math.sqrt(d)
    y = X @ torch.randn(d, generator=g)
    return X, y


@pytest.mark.parametrize("cfg", [{"name": "sls"}, {"name": "sps", "c": 0.5}, {"name": "ponos"},
                                 {"name": "sls", "reset_option": 11}],
                         ids=["sls", "sps_c0.5", "ponos", "sls_reset11"])
def test_reaches_1e_minus_10_on_interpolating_least_squares(cfg):
    """d > n: f* = 0. Minibatches of 8, default hyper-parameters, no step-size tuning.
    (SPS uses its theoretical c = 1/2: with the deep-learning c = 0.2 the Polyak step is
    2.5x the exact per-sample projection and diverges on least squares.)"""
    X, y = _interpolating()
    n = X.shape[0]
    w = torch.zeros(X.shape[1], requires_grad=True)
    opt = build(cfg, [w], n_batches_per_epoch=n // 8)
    gen = torch.Generator().manual_seed(0)
    f = lambda: 0.5 * ((X @ w - y) ** 2).mean()
    reached = None
    for epoch in range(300):
        for idx in torch.randperm(n, generator=gen).split(8):
            opt.step(lambda: 0.5 * ((X[idx] @ w - y[idx]) ** 2).mean())
        with torch.no_grad():
            if float(f()) < 1e-10:
                reached = epoch
                break
    assert reached is not None, float(f())


def test_trainer_logs_the_forwards_of_failed_searches(compose_cfg, monkeypatch):
    """opt/failed_forwards in the metrics is the line search's own cumulative counter, read at
    each evaluation (issue 11: the collapse figure reports it exactly, not a lower bound)."""
    import pandas as pd
    import optimizers as optimizers_pkg
    from experiments import trainer
    from experiments.store import RunDir
    from experiments.train import execute
    from tests.conftest import LSTSQ_FAST
    built = []
    real_build = optimizers_pkg.build
    monkeypatch.setattr(trainer.optimizers, "build", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    # c = 0.999 with 2 trials: most searches fail on this noisy problem
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer=sls", "optimizer.c=0.999", "optimizer.max_backtracks=2",
                      "optimizer.reset_option=0")
    s = execute(cfg)
    m = pd.read_parquet(RunDir(cfg["paths"]["results_dir"], s["run_id"]).path / "metrics.parquet")
    ff = m["opt/failed_forwards"].dropna().to_numpy()
    assert ff[-1] == built[0].state["failed_forwards"] > 0
    assert (ff[1:] >= ff[:-1]).all()
