"""Numerics and host synchronisation of the project optimizers' step.

* Norms and dot products that feed Armijo tests and Polyak steps accumulate in float64:
  checked against numpy's float64 result on a 200k-element float32 tensor (relative error
  < 1e-12 on both the loop and the foreach path), and end to end through the Polyak steps.
* No host synchronisation in the step: on CPU every device -> host read goes through
  ``aten::_local_scalar_dense`` (``item``, ``float``, ``int``, ``bool``, a tensor passed as a
  Python scalar argument) or ``Tensor.tolist`` / ``numpy``; a dispatch mode and a wrapper
  count them. SGD-like methods make 0 reads per step; line searches make one per closure
  evaluation (the gradient evaluation's loss read together with ||g||^2, then one per
  trial); SPS one per step. With CUDA the same steps run under
  ``torch.cuda.set_sync_debug_mode`` (skipped without CUDA).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import optimizers
from optimizers._base import dot, l1_norm, norms, sq_norm, sq_norm_and_dots

N_BIG = 200_000


# ----------------------------------------------------------------------------- float64 accumulation
def _big(seed=0, n=N_BIG, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float32) * scale + 0.5


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("foreach", [False, True])
def test_sq_norm_of_200k_float32_matches_numpy_float64(foreach):
    t = _big()
    ref = float(np.sum(t.numpy().astype(np.float64) ** 2))
    got = sq_norm([t], foreach)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert _rel(float(got), ref) < 1e-12
    # a float32 reduction is far off (the bug this guards against)
    assert _rel(float(torch.linalg.vector_norm(t) ** 2), ref) > 1e-9
    # several tensors, one of them 2-d: the norm of the concatenation
    parts = [t[:1000].view(10, 100), t[1000:]]
    assert _rel(float(sq_norm(parts, foreach)), ref) < 1e-12
    n = norms(parts, foreach)
    assert n.dtype == torch.float64 and n.shape == (2,)


@pytest.mark.parametrize("foreach", [False, True])
def test_l1_norm_and_dot_accumulate_in_float64(foreach):
    a, b = _big(1), _big(2)
    a64, b64 = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    assert _rel(float(l1_norm([a[:7], a[7:]], foreach)), float(np.abs(a64).sum())) < 1e-12
    # signed dot and a non-negative one (g^T D^-1 g style: g * (g / den))
    den = a.abs() + 0.1
    gden = a / den
    ref_signed = float(np.dot(a64, b64))
    ref_pp = float(np.dot(gden.numpy().astype(np.float64), a64))
    got_signed = float(dot([a[:5], a[5:]], [b[:5], b[5:]], foreach))
    got_pp = float(dot([gden], [a], foreach, nonneg=True))
    # loop path: float64 products and sums (exact products of float32 values);
    # foreach path: one fused float32 product per element, float64 sums
    tol = 1e-12 if not foreach else 1e-7
    assert _rel(got_pp, ref_pp) < tol
    assert abs(got_signed - ref_signed) < tol * float(np.abs(a64 * b64).sum())


@pytest.mark.parametrize("foreach", [False, True])
def test_fused_norm_and_dots_equal_the_separate_ones(foreach):
    # a 2-d tensor of more than one 64k chunk and a small one
    gs = [_big(4, 70_000).view(700, 100), _big(5, 1000)]
    as_ = [_big(6, 70_000).view(700, 100), _big(7, 1000)]
    bs = [_big(8, 70_000).view(700, 100), _big(9, 1000)]
    g2, (d1, d2) = sq_norm_and_dots(gs, [as_, bs], foreach, nonneg=(False,))
    assert float(g2) == pytest.approx(float(sq_norm(gs, foreach)), rel=1e-15)
    assert float(d1) == pytest.approx(float(dot(as_, gs, foreach)), rel=1e-13)
    assert float(d2) == pytest.approx(float(dot(bs, gs, foreach)), rel=1e-13)


def _polyak_problem():
    """A 200k-weight float32 least-squares model: f = 0.5 mean((X w - y)^2)."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(4, N_BIG, generator=g) / N_BIG ** 0.5
    y = torch.randn(4, generator=g)
    w = torch.nn.Parameter(torch.randn(N_BIG, generator=g))
    return w, (lambda: 0.5 * ((X @ w - y) ** 2).mean())


@pytest.mark.parametrize("name", ["sps", "ponos"])
def test_polyak_steps_use_the_float64_gradient_norm(name):
    w, closure = _polyak_problem()
    opt = optimizers.build({"name": name}, [w], n_batches_per_epoch=10)
    f0 = float(opt.step(closure))
    c = opt.param_groups[0]["c"] if name == "sps" else opt.param_groups[0]["c_p"]
    g64 = w.grad.detach().numpy().astype(np.float64)  # still the gradient at the start point
    expected = f0 / (c * float(np.sum(g64 ** 2)))
    assert _rel(opt.state["polyak_step"], expected) < 1e-12


# ----------------------------------------------------------------------------- host reads
class HostReads(TorchDispatchMode):
    """Counts device -> host reads: every ``aten::_local_scalar_dense`` (item, float, int,
    bool, a tensor used as a Python scalar argument) plus ``Tensor.tolist`` / ``numpy`` /
    ``__array__`` calls (which read CPU memory without dispatching)."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.n = 0
        for meth in ("tolist", "numpy", "__array__"):
            orig = getattr(torch.Tensor, meth)

            def wrapper(t, *a, _orig=orig, **k):
                self.n += 1
                return _orig(t, *a, **k)
            monkeypatch.setattr(torch.Tensor, meth, wrapper)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.n += 1
        return func(*args, **(kwargs or {}))


def _mlp_problem(device="cpu", seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5)).to(device)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 20, generator=g).to(device)
    y = torch.randint(0, 5, (64,), generator=g).to(device)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    return model, batches


ZERO_READ = {
    "sign_descent": {"lr": 1e-3},
    "sign_descent_m": {"name": "sign_descent", "lr": 1e-3, "momentum": 0.9},
    "signum": {"lr": 1e-3},
    "lion": {"lr": 1e-4, "weight_decay": 0.1},
    "normalized_gd": {"lr": 0.1},
    "normalized_gd_m": {"name": "normalized_gd", "lr": 0.1, "momentum": 0.9},
    "rescaled_sign": {"lr": 1e-5},
    "rescaled_sign_m": {"name": "rescaled_sign", "lr": 1e-5, "momentum": 0.9},
    "accel_sgd": {"lr": 0.05, "mu": 0.01},
    "svrg": {"lr": 0.05},
    "torch_sgd": {"name": "sgd", "lr": 0.05},  # control: torch.optim.SGD
}
LINE_SEARCHES = {
    "sls": {}, "sls_goldstein": {"name": "sls", "line_search_fn": "goldstein", "reset_option": 0},
    "ponos": {}, "sls_prec": {}, "ponos_prec": {}, "ponos_prec_dir_der": {"name": "ponos_prec", "suff_decr": "dir_der"},
}
HAS_FOREACH = {"sign_descent", "signum", "lion", "normalized_gd", "rescaled_sign", "sls", "ponos",
               "sls_prec", "ponos_prec", "sps"}


def _build(key, cfgs, model, foreach):
    cfg = dict(cfgs[key])
    cfg.setdefault("name", key)
    if foreach is not None and cfg["name"] in HAS_FOREACH:
        cfg["foreach"] = foreach
    return optimizers.build(cfg, model.parameters(), n_batches_per_epoch=4)


def _step(opt, model, batch):
    """One step with the trainer's protocol."""
    x, y = batch
    closure = lambda: F.cross_entropy(model(x), y)
    if getattr(opt, "needs_closure", False):
        return opt.step(closure)
    opt.zero_grad(set_to_none=True)
    loss = closure()
    loss.backward()
    opt.step()
    return loss


def _prepare(opt, model, batches):
    if getattr(opt, "needs_snapshot", False):
        xs = torch.cat([b[0] for b in batches])
        ys = torch.cat([b[1] for b in batches])
        opt.set_snapshot(lambda: F.cross_entropy(model(xs), ys))
    for b in batches[:2]:  # warm-up: state allocation on the first step
        _step(opt, model, b)


def test_host_read_counter_sees_reads(monkeypatch):
    t = torch.tensor([1.5, 2.0])
    with HostReads(monkeypatch) as hr:
        float(t[0])
        bool(t[1] > 0)
        t.add_(t, alpha=t[0])   # tensor passed as a Python scalar
        t.tolist()
    assert hr.n == 4


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("key", sorted(ZERO_READ))
def test_sgd_like_step_makes_no_host_read(key, foreach, monkeypatch):
    model, batches = _mlp_problem()
    opt = _build(key, ZERO_READ, model, foreach)
    _prepare(opt, model, batches)
    with HostReads(monkeypatch) as hr:
        for b in batches:
            _step(opt, model, b)
    assert hr.n == 0, f"{key}: {hr.n} host reads in {len(batches)} steps"
    st = optimizers.stats(opt)  # converted when read, after the steps
    assert all(isinstance(v, (int, float)) for v in st.values())


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("key", sorted(LINE_SEARCHES))
def test_line_search_reads_once_per_closure_evaluation(key, foreach, monkeypatch):
    model, batches = _mlp_problem(seed=1)
    opt = _build(key, LINE_SEARCHES, model, foreach)
    _prepare(opt, model, batches)
    before = opt.state["n_forwards"]
    trials = 0
    with HostReads(monkeypatch) as hr:
        for b in batches * 2:
            _step(opt, model, b)
            bt = opt.state["backtracks"]  # == max_backtracks: failed search, bt trials
            trials += bt if bt == opt.param_groups[0]["max_backtracks"] else bt + 1
    evals = opt.state["n_forwards"] - before
    steps = 2 * len(batches)
    assert evals == steps + trials  # sanity: one gradient evaluation + the trials per step
    # one read per trial (the acceptance test) + one for the gradient evaluation (its loss
    # together with ||g||^2 and the directional products)
    assert hr.n == evals, f"{key}: {hr.n} host reads for {evals} closure evaluations"


@pytest.mark.parametrize("foreach", [False, True])
def test_sps_reads_once_per_step(foreach, monkeypatch):
    model, batches = _mlp_problem(seed=2)
    opt = _build("sps", {"sps": {}}, model, foreach)
    _prepare(opt, model, batches)
    with HostReads(monkeypatch) as hr:
        for b in batches:
            _step(opt, model, b)
    assert hr.n == len(batches)
    # closure-free call: the loss is read together with ||g||^2 (one read)
    x, y = batches[0]
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with HostReads(monkeypatch) as hr:
        opt.step(loss=loss)
    assert hr.n == 1


def test_stats_converts_device_values_when_read():
    model, batches = _mlp_problem()
    opt = optimizers.build({"name": "sign_descent", "lr": 1e-3}, model.parameters())
    _step(opt, model, batches[0])
    opt.state["step_size"] = torch.tensor(0.25)  # a value kept on the device
    assert optimizers.stats(opt)["step_size"] == 0.25
    raw = optimizers.stats(opt, host=False)
    assert isinstance(raw["step_size"], torch.Tensor) and isinstance(raw["n_forwards"], int)


# ----------------------------------------------------------------------------- CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("key", sorted(k for k in ZERO_READ if k != "torch_sgd"))
def test_cuda_sgd_like_step_never_synchronises(key):
    model, batches = _mlp_problem("cuda")
    opt = _build(key, ZERO_READ, model, None)  # foreach resolves to True on CUDA
    _prepare(opt, model, batches)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for b in batches:
            _step(opt, model, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


@cuda
@pytest.mark.parametrize("key", sorted(LINE_SEARCHES) + ["sps"])
def test_cuda_line_search_synchronises_once_per_closure_evaluation(key):
    cfgs = dict(LINE_SEARCHES, sps={})
    model, batches = _mlp_problem("cuda", seed=1)
    opt = _build(key, cfgs, model, None)
    _prepare(opt, model, batches)
    torch.cuda.synchronize()
    before = opt.state["n_forwards"]
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            for b in batches:
                _step(opt, model, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in rec)
    evals = opt.state["n_forwards"] - before
    assert 0 < syncs <= evals


@cuda
@pytest.mark.parametrize("key", ["sls", "ponos", "sls_prec", "ponos_prec", "normalized_gd_m", "rescaled_sign"])
def test_cuda_foreach_path_equals_loop_path(key):
    cfgs = dict(LINE_SEARCHES, **ZERO_READ)
    res = []
    for fe in (True, False):
        model, batches = _mlp_problem("cuda", seed=4)
        model.double()
        batches = [(x.double(), y) for x, y in batches]
        opt = _build(key, cfgs, model, fe)
        for b in batches * 2:
            _step(opt, model, b)
        res.append((torch.cat([p.detach().reshape(-1) for p in model.parameters()]), optimizers.stats(opt)))
    (w1, s1), (w2, s2) = res
    torch.testing.assert_close(w1, w2, rtol=1e-10, atol=1e-12)
    assert s1["n_forwards"] == s2["n_forwards"]
