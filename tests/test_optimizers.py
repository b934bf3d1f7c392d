"""Optimizers without a line search: sign family, Lion, SGD, SAG, SVRG, accelerated SGD;
plus the properties every project optimizer must have (state_dict round trip, counters,
zero gradients, foreach == for-loop, closure error).

Everything runs in float64 on a small least-squares problem with *two* raw parameter
tensors (so "global over all parameters" is exercised) and compares with update formulas
written out independently here. The helpers at the top are reused by the other
``test_optimizers_*.py`` files.
"""
from __future__ import annotations

import io
import math

import pytest
import torch

from optimizers import build, stats



@pytest.fixture(autouse=True)
def _float64_default():
    """These tests run in float64; restore the session's default dtype afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
F64 = torch.float64


# ----------------------------------------------------------------------------- helpers
class LSQ:
    """f_B(w) = 1/(2|B|) ||X_B w - y_B||^2 with w split into two tensors a = w[:k], b = w[k:].view(2, -1)."""

    def __init__(self, n=12, d=8, seed=0, split=2, scale=1.0, interpolate=False):
        g = torch.Generator().manual_seed(seed)
        self.X = scale * torch.randn(n, d, generator=g, dtype=F64)
        if interpolate:
            self.y = self.X @ torch.randn(d, generator=g, dtype=F64)
        else:
            self.y = torch.randn(n, generator=g, dtype=F64)
        self.n, self.d, self.split = n, d, split
        self.w0 = torch.randn(d, generator=g, dtype=F64)

    def params(self, w=None):
        w = self.w0 if w is None else w
        a = w[: self.split].clone().requires_grad_(True)
        b = w[self.split:].clone().view(2, -1).requires_grad_(True)
        return [a, b]

    @staticmethod
    def flat(params):
        return torch.cat([p.detach().reshape(-1) for p in params])

    def closure(self, params, idx):
        def closure():
            w = torch.cat([params[0], params[1].reshape(-1)])
            r = self.X[idx] @ w - self.y[idx]
            return 0.5 * (r * r).mean()
        return closure

    def backward_closure(self, params, idx):
        """torch convention (used for optimizers without needs_closure)."""
        inner = self.closure(params, idx)

        def closure():
            for p in params:
                p.grad = None
            loss = inner()
            loss.backward()
            return loss
        return closure

    # independent reference quantities on a flat vector
    def f(self, w, idx) -> float:
        r = self.X[idx] @ w - self.y[idx]
        return float(0.5 * (r * r).mean())

    def grad(self, w, idx):
        r = self.X[idx] @ w - self.y[idx]
        return self.X[idx].T @ r / len(idx)

    def batches(self, steps, bs=4, seed=1):
        g = torch.Generator().manual_seed(seed)
        return [torch.randperm(self.n, generator=g)[:bs] for _ in range(steps)]


def run(opt, prob, params, batches, slots=None):
    """Drive an optimizer through ``batches`` following the trainer's protocol."""
    losses = []
    for k, idx in enumerate(batches):
        if getattr(opt, "needs_closure", False):
            loss = opt.step(prob.closure(params, idx))
        else:
            opt.zero_grad()
            loss = prob.closure(params, idx)()
            loss.backward()
            if getattr(opt, "needs_slot", False):
                opt.step(slot=slots[k])
            else:
                opt.step()
        losses.append(float(loss.detach()))
    return losses


def roundtrip(opt_state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(opt_state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


# Every project optimizer with a configuration that exercises its state.
PROJECT_CFGS = {
    "sls": dict(n_batches_per_epoch=3),
    "sls_goldstein": dict(name="sls", line_search_fn="goldstein", reset_option=0, n_batches_per_epoch=3),
    "sps": dict(n_batches_per_epoch=3, c=0.5),
    "ponos": dict(),
    "sls_prec": dict(n_batches_per_epoch=3),
    "ponos_prec": dict(memory=True),
    "sign_descent": dict(lr=0.01, momentum=0.9),
    "signum": dict(lr=0.01, momentum=0.9),
    "normalized_gd": dict(lr=0.1, momentum=0.9),
    "rescaled_sign": dict(lr=0.001, momentum=0.9),
    "lion": dict(lr=0.01, weight_decay=0.1),
    "sag": dict(lr=0.01, n_batches_per_epoch=3),
    "svrg": dict(lr=0.01),
    "accel_sgd": dict(mu=0.05, L=20.0, rho=2.0),
}


def make(key, params, **over):
    cfg = dict(PROJECT_CFGS[key])
    cfg.setdefault("name", key)
    cfg.update(over)
    return build(cfg, params, n_batches_per_epoch=3)


def drive(opt, prob, params, steps, start=0):
    batches = prob.batches(start + steps, bs=4, seed=7)[start:]
    slots = [(start + k) % 3 for k in range(steps)]
    if getattr(opt, "needs_snapshot", False) and start == 0:
        opt.set_snapshot(prob.closure(params, torch.arange(prob.n)))
    return run(opt, prob, params, batches, slots)


# ----------------------------------------------------------------------------- generic properties
@pytest.mark.parametrize("key", sorted(PROJECT_CFGS))
def test_state_dict_round_trip_continues_identically(key):
    prob = LSQ(seed=3)
    p1 = prob.params()
    o1 = make(key, p1)
    drive(o1, prob, p1, 4)
    sd = roundtrip(o1.state_dict())
    p2 = [p.detach().clone().requires_grad_(True) for p in p1]
    o2 = make(key, p2)
    o2.load_state_dict(sd)
    for k in ("step_size", "n_forwards", "n_backwards", "backtracks"):
        assert k in o2.state and o2.state[k] == o1.state[k]
    l1 = drive(o1, prob, p1, 4, start=4)
    l2 = drive(o2, prob, p2, 4, start=4)
    assert l1 == l2
    assert torch.equal(LSQ.flat(p1), LSQ.flat(p2))
    assert stats(o1) == stats(o2)


@pytest.mark.parametrize("key", sorted(PROJECT_CFGS))
def test_foreach_equals_for_loop(key):
    prob = LSQ(seed=4)
    res = []
    for fe in (True, False):
        params = prob.params()
        over = {} if key in ("sag", "svrg", "accel_sgd") else {"foreach": fe}
        opt = make(key, params, **over)
        losses = drive(opt, prob, params, 6)
        res.append((losses, LSQ.flat(params), stats(opt)))
    (l1, w1, s1), (l2, w2, s2) = res
    torch.testing.assert_close(w1, w2, rtol=1e-12, atol=1e-14)
    assert s1["n_forwards"] == s2["n_forwards"] and s1["backtracks"] == s2["backtracks"]


@pytest.mark.parametrize("key", sorted(PROJECT_CFGS))
def test_zero_gradient_gives_no_nan(key):
    prob = LSQ(seed=5, interpolate=True)
    w_star = torch.linalg.lstsq(prob.X, prob.y.unsqueeze(1)).solution.squeeze(1)
    params = prob.params(w_star)
    opt = make(key, params)
    if opt.needs_snapshot:
        opt.set_snapshot(prob.closure(params, torch.arange(prob.n)))
    # exact zero gradient: a closure whose loss does not depend on anything but is differentiable
    for _ in range(3):
        if opt.needs_closure:
            opt.step(lambda: (params[0] * 0).sum() + (params[1] * 0).sum())
        else:
            opt.zero_grad()
            ((params[0] * 0).sum() + (params[1] * 0).sum()).backward()
            opt.step(slot=0) if opt.needs_slot else opt.step()
    for p in params:
        assert torch.isfinite(p).all()
    assert all(math.isfinite(v) for v in stats(opt).values())


@pytest.mark.parametrize("key", sorted(k for k in PROJECT_CFGS))
def test_counters_and_closure_contract(key):
    prob = LSQ(seed=6)
    params = prob.params()
    opt = make(key, params)
    drive(opt, prob, params, 3)
    st = stats(opt)
    assert {"step_size", "n_forwards", "n_backwards", "backtracks"} <= set(st)
    per_step_b = 2 if key == "svrg" else 1
    assert st["n_backwards"] == 3 * per_step_b
    assert st["n_forwards"] >= st["n_backwards"]
    if opt.needs_closure:
        with pytest.raises(RuntimeError, match="closure"):
            opt.step()


# ----------------------------------------------------------------------------- sign family
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("name", ["sign_descent", "normalized_gd", "rescaled_sign"])
def test_direction_then_heavy_ball_matches_formula(name, momentum):
    prob = LSQ(seed=10)
    batches = prob.batches(5)
    lr = 0.01
    params = prob.params()
    opt = build({"name": name, "lr": lr, "momentum": momentum}, params)
    run(opt, prob, params, batches)
    w, buf = prob.w0.clone(), torch.zeros(prob.d)
    for idx in batches:
        g = prob.grad(w, idx)
        if name == "sign_descent":
            d = torch.sign(g)
        elif name == "normalized_gd":
            d = g / torch.sqrt((g * g).sum())
        else:
            d = torch.sign(g) * g.abs().sum()
        buf = momentum * buf + d
        w = w - lr * buf
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)


def test_signum_and_lion_match_formulas():
    prob = LSQ(seed=11)
    batches = prob.batches(5)
    lr, b, b1, b2, wd = 0.01, 0.8, 0.9, 0.99, 0.1
    ps, pl = prob.params(), prob.params()
    run(build({"name": "signum", "lr": lr, "momentum": b}, ps), prob, ps, batches)
    run(build({"name": "lion", "lr": lr, "betas": [b1, b2], "weight_decay": wd}, pl), prob, pl, batches)
    w, m = prob.w0.clone(), torch.zeros(prob.d)
    wl, ml = prob.w0.clone(), torch.zeros(prob.d)
    for idx in batches:
        g = prob.grad(w, idx)
        m = b * m + (1 - b) * g
        w = w - lr * torch.sign(m)
        gl = prob.grad(wl, idx)
        wl = wl * (1 - lr * wd)
        wl = wl - lr * torch.sign(b1 * ml + (1 - b1) * gl)
        ml = b2 * ml + (1 - b2) * gl
    torch.testing.assert_close(LSQ.flat(ps), w, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(LSQ.flat(pl), wl, rtol=1e-12, atol=1e-13)


def test_lion_with_equal_betas_is_signum():
    prob = LSQ(seed=12)
    batches = prob.batches(8)
    ps, pl = prob.params(), prob.params()
    run(build({"name": "signum", "lr": 0.01, "momentum": 0.7}, ps), prob, ps, batches)
    run(build({"name": "lion", "lr": 0.01, "betas": [0.7, 0.7]}, pl), prob, pl, batches)
    assert torch.equal(LSQ.flat(ps), LSQ.flat(pl))


def test_sign_descent_momentum_differs_from_signum_as_specified():
    # constant gradient sign: sign descent + heavy ball moves lr (1 + b + b^2) at step 3,
    # Signum moves exactly lr per step.
    lr, b = 0.1, 0.9
    w1 = torch.zeros(3, requires_grad=True)
    w2 = torch.zeros(3, requires_grad=True)
    o1 = build({"name": "sign_descent", "lr": lr, "momentum": b}, [w1])
    o2 = build({"name": "signum", "lr": lr, "momentum": b}, [w2])
    c = torch.tensor([1.0, -2.0, 0.5])
    moves1, moves2 = [], []
    for _ in range(3):
        for w, o, mv in ((w1, o1, moves1), (w2, o2, moves2)):
            before = w.detach().clone()
            o.zero_grad()
            (c * w).sum().backward()
            o.step()
            mv.append((w.detach() - before).abs())
    expected = [lr, lr * (1 + b), lr * (1 + b + b * b)]
    for mv, e in zip(moves1, expected):
        torch.testing.assert_close(mv, torch.full((3,), e))
    for mv in moves2:
        torch.testing.assert_close(mv, torch.full((3,), lr))


SEPARABLE = {
    "sign_descent": dict(lr=0.01, momentum=0.9),
    "signum": dict(lr=0.01, momentum=0.9),
    "normalized_gd": dict(lr=0.1, momentum=0.5),
    "rescaled_sign": dict(lr=0.001, momentum=0.5),
    "lion": dict(lr=0.01, weight_decay=0.1),
    "sag": dict(lr=0.01, n_batches_per_epoch=3),
    "svrg": dict(lr=0.01),
    "accel_sgd": dict(mu=0.05, L=20.0, rho=2.0),
}


@pytest.mark.parametrize("name", sorted(SEPARABLE))
def test_param_groups_equal_separate_optimizers(name):
    """Per-group methods: two groups with different lr == two optimizers, one per group.
    The loss is separable, f(a, b) = f1(a) + f2(b), so that closure-based methods (which
    evaluate at their own points) see the same gradients either way. Line searches and SPS
    take one global step over all groups and are not separable by design."""
    g = torch.Generator().manual_seed(13)
    Xa, ya = torch.randn(12, 3, generator=g), torch.randn(12, generator=g)
    Xb, yb = torch.randn(12, 6, generator=g), torch.randn(12, generator=g)
    a0, b0 = torch.randn(3, generator=g), torch.randn(2, 3, generator=g)

    def fa(a, idx):
        return 0.5 * ((Xa[idx] @ a - ya[idx]) ** 2).mean()

    def fb(b, idx):
        return 0.5 * ((Xb[idx] @ b.reshape(-1) - yb[idx]) ** 2).mean()

    kw = dict(SEPARABLE[name])
    lr2 = kw["lr"] * 0.5 if "lr" in kw else 1.0 / (2.0 * 40.0)
    a1, b1 = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    a2, b2 = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    og = build({"name": name, **kw}, [{"params": [a1]}, {"params": [b1], "lr": lr2}],
               n_batches_per_epoch=3)
    oa = build({"name": name, **kw}, [a2], n_batches_per_epoch=3)
    ob = build({"name": name, **kw, "lr": lr2}, [b2], n_batches_per_epoch=3)
    full = torch.arange(12)
    if og.needs_snapshot:
        og.set_snapshot(lambda: fa(a1, full) + fb(b1, full))
        oa.set_snapshot(lambda: fa(a2, full))
        ob.set_snapshot(lambda: fb(b2, full))
    gen = torch.Generator().manual_seed(14)
    for k in range(5):
        idx = torch.randperm(12, generator=gen)[:4]
        cg = lambda: fa(a1, idx) + fb(b1, idx)
        ca, cb = (lambda: fa(a2, idx)), (lambda: fb(b2, idx))
        if og.needs_closure:
            og.step(cg)
            oa.step(ca)
            ob.step(cb)
        else:
            for o, c in ((og, cg), (oa, ca), (ob, cb)):
                o.zero_grad()
                c().backward()
                o.step(slot=k % 3) if o.needs_slot else o.step()
    torch.testing.assert_close(a1.detach(), a2.detach(), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(b1.detach(), b2.detach(), rtol=1e-12, atol=1e-13)
    assert not torch.equal(a1.detach(), a0)


# ----------------------------------------------------------------------------- SGD, SAG, SVRG
def test_sgd_three_steps_by_hand():
    prob = LSQ(seed=20)
    batches = prob.batches(3)
    params = prob.params()
    opt = build({"name": "sgd", "lr": 0.05, "momentum": 0.0, "dampening": 0.0,
                 "weight_decay": 0.0, "nesterov": False}, params)
    run(opt, prob, params, batches)
    w = prob.w0.clone()
    for idx in batches:
        w = w - 0.05 * prob.grad(w, idx)
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-13, atol=1e-14)


def test_sag_three_steps_by_hand():
    prob = LSQ(seed=21)
    slots_idx = [torch.arange(0, 4), torch.arange(4, 8), torch.arange(8, 12)]
    order = [1, 2, 1, 0]  # revisits slot 1 before slot 0 is seen
    lr = 0.05
    params = prob.params()
    opt = build({"name": "sag", "lr": lr}, params, n_batches_per_epoch=3)
    run(opt, prob, params, [slots_idx[s] for s in order], order)
    w = prob.w0.clone()
    table = {}
    for s in order:
        table[s] = prob.grad(w, slots_idx[s])
        avg = sum(table.values()) / len(table)     # average over the slots seen so far
        w = w - lr * avg
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)
    assert opt.state["n_seen"] == 3


def test_sag_needs_slot():
    prob = LSQ()
    params = prob.params()
    opt = build({"name": "sag", "lr": 0.1}, params, n_batches_per_epoch=3)
    prob.closure(params, torch.arange(4))().backward()
    with pytest.raises(RuntimeError, match="slot"):
        opt.step()


def test_svrg_three_steps_by_hand():
    prob = LSQ(seed=22)
    batches = prob.batches(3)
    lr = 0.05
    params = prob.params()
    opt = build({"name": "svrg", "lr": lr}, params)
    full = torch.arange(prob.n)
    with pytest.raises(RuntimeError, match="set_snapshot"):
        opt.step(prob.closure(params, batches[0]))
    opt.set_snapshot(prob.closure(params, full))
    run(opt, prob, params, batches)
    w = prob.w0.clone()
    w_snap, mu = w.clone(), prob.grad(w, full)
    for idx in batches:
        w = w - lr * (prob.grad(w, idx) - prob.grad(w_snap, idx) + mu)
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)
    st = stats(opt)
    assert st["n_backwards"] == 6 and st["n_forwards"] == 6 and opt.state["n_snapshots"] == 1
    # new snapshot in the next "epoch"
    opt.set_snapshot(prob.closure(params, full))
    w_snap, mu = w.clone(), prob.grad(w, full)
    run(opt, prob, params, batches[:1])
    w = w - lr * (prob.grad(w, batches[0]) - prob.grad(w_snap, batches[0]) + mu)
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------------- accelerated SGD
def test_accel_sgd_three_sequences_by_hand():
    prob = LSQ(seed=23)
    batches = prob.batches(4)
    mu, L, rho = 0.05, 20.0, 3.0
    params = prob.params()
    opt = build({"name": "accel_sgd", "lr": None, "mu": mu, "L": L, "rho": rho}, params)
    run(opt, prob, params, batches)
    eta = 1 / (rho * L)
    q = math.sqrt(mu * eta / rho)
    alpha, beta, gamma = q / (1 + q), 1 - q, 1 / math.sqrt(mu * eta * rho)
    w = prob.w0.clone()
    z = w.clone()
    for idx in batches:
        y = alpha * z + (1 - alpha) * w
        g = prob.grad(y, idx)
        w = y - eta * g
        z = beta * z + (1 - beta) * y - gamma * eta * g
    torch.testing.assert_close(LSQ.flat(params), w, rtol=1e-12, atol=1e-13)


def test_accel_sgd_is_nesterov_constant_momentum_at_rho_1():
    prob = LSQ(seed=24)
    full = torch.arange(prob.n)
    mu, L = 0.1, 30.0
    params = prob.params()
    opt = build({"name": "accel_sgd", "mu": mu, "L": L, "rho": 1.0}, params)
    run(opt, prob, params, [full] * 10)
    q = math.sqrt(mu / L)
    mom = (1 - q) / (1 + q)
    w_prev = prob.w0.clone()
    y = w_prev.clone()
    for _ in range(10):
        w = y - prob.grad(y, full) / L
        y = w + mom * (w - w_prev)
        w_prev = w
    torch.testing.assert_close(LSQ.flat(params), w_prev, rtol=1e-11, atol=1e-12)


def _iters_to_tol(kappa, tol=1e-8, max_iter=20000):
    d = 40
    lam = torch.logspace(0, -math.log10(kappa), d)          # L = 1, mu = 1/kappa
    w = torch.ones(d, requires_grad=True)
    opt = build({"name": "accel_sgd", "mu": 1.0 / kappa, "L": 1.0, "rho": 1.0}, [w])
    f0 = float(0.5 * (lam * w.detach() ** 2).sum())
    closure = lambda: 0.5 * (lam * w * w).sum()
    for k in range(1, max_iter + 1):
        opt.step(closure)
        with torch.no_grad():
            fk = float(closure())
        if fk <= tol * f0:
            return k
    return max_iter


def test_accel_sgd_needs_sqrt_kappa_iterations():
    k1, k2 = _iters_to_tol(1e2), _iters_to_tol(1e4)
    # GD would need ~100x more iterations for the 100x larger condition number;
    # acceleration needs ~sqrt(100) = 10x.
    assert k2 < 20000
    assert k2 / k1 < 25, (k1, k2)
    assert k2 < 2 * math.sqrt(1e4) * math.log(1e8), (k1, k2)  # GD: ~kappa/2 * log(1e8) = 92000


def test_accel_sgd_validates_constants():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="mu"):
        build({"name": "accel_sgd", "L": 1.0}, [w])
    with pytest.raises(ValueError, match="L"):
        build({"name": "accel_sgd", "mu": 1.0}, [w])
