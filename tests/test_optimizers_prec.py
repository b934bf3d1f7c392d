"""The consistent readings of SLS_prec / PoNoS_prec (optimizers/_prec.py) and SLS's equal-loss
stop (optimizers/sls.py, optimizers/_linesearch.py), checked against hand computations on
tiny problems whose preconditioner D is known in closed form."""
from __future__ import annotations

import math

import pytest
import torch

from optimizers import build

F64 = torch.float64
B1, B2, EPS = 0.9, 0.999, 1e-8

# Two diagonal quadratics f_i(w) = 1/2 sum a_i (w - t_i)^2 in R^3: step 1 on f_1, step 2 on f_2.
A = torch.tensor([1.0, 4.0, 0.25], dtype=F64)
T1 = torch.tensor([1.0, -1.0, 2.0], dtype=F64)
T2_ALIGNED = torch.tensor([-0.5, -1.2, 4.0], dtype=F64)   # g_2 = A (w_1 - t_2): g^T d > 0 below
W0 = torch.tensor([-1.0, 1.0, -2.0], dtype=F64)


def f(w, t):
    return 0.5 * float((A * (w - t) ** 2).sum())


def grad(w, t):
    return A * (w - t)


def _closure(w, t, seen):
    """The minibatch loss at the current parameter value; records every evaluated point."""
    def closure():
        seen.append(w.detach().clone())
        return 0.5 * (A * (w - t) ** 2).sum()
    return closure


def _hand_moments(w0, w1, t2):
    """m, v and D of step 2 by hand (step 1 at w0 on f_1, step 2 at w1 on f_2)."""
    g1, g2 = grad(w0, T1), grad(w1, t2)
    m = B1 * (1 - B1) * g1 + (1 - B1) * g2
    v = B2 * (1 - B2) * g1 ** 2 + (1 - B2) * g2 ** 2
    D = torch.sqrt(v / (1 - B2 ** 2)) + EPS
    d = (m / (1 - B1 ** 2)) / D            # D^-1 m_hat
    return g2, D, d


def _hand_armijo(w, t, direction, eta, ref, term, c=0.1, beta=0.9):
    """(accepted eta, rejected trials) of backtracking on w - eta direction with test term."""
    for k in range(100):
        if f(w - eta * direction, t) <= ref - c * eta * term:
            return eta, k
        eta *= beta
    return None, 100


def _two_steps(reading, t2, **kw):
    w = W0.clone().requires_grad_(True)
    # xi = 0: the reference is the current loss (the Zhang-Hager mean would only shift ref)
    opt = build({"name": "ponos_prec", "reading": reading, "xi": 0.0, **kw}, [w])
    seen = []
    opt.step(_closure(w, T1, seen))
    w1 = w.detach().clone()
    seen.clear()
    opt.step(_closure(w, t2, seen))
    return opt, w, w1, seen


def _flip_target(w1):
    """t_2 with g_2 = A (w_1 - t_2) = -0.3 g_1 (the gradient reverses after step 1)."""
    return w1 + 0.3 * grad(W0, T1) / A


@pytest.mark.parametrize("reading", ["ada_sls", "dir_der"])
def test_consistent_test_term_is_the_directional_derivative_of_the_trial_direction(reading):
    """Step 2 by hand: the trial direction (ada_sls: D^-1 g; dir_der: d = D^-1 m_hat), the
    Polyak first trial f/(c_p * term) and the Armijo test with term = g^T (trial direction).
    The released term g^T D^-1 g on the trial direction d would give another step here (checked),
    so the test can tell the readings apart."""
    opt, w, w1, seen = _two_steps(reading, T2_ALIGNED)
    g, D, d = _hand_moments(W0, w1, T2_ALIGNED)
    trial_dir = g / D if reading == "ada_sls" else d
    term = float(g @ trial_dir)                          # directional derivative of the trials
    assert term > 0
    f1 = f(w1, T2_ALIGNED)
    eta0 = min(f1 / (0.1 * term), 10.0)
    assert opt.state["polyak_step"] == pytest.approx(f1 / (0.1 * term), rel=1e-12)
    eta, bt = _hand_armijo(w1, T2_ALIGNED, trial_dir, eta0, f1, term)
    assert eta is not None
    assert opt.state["step_size"] == pytest.approx(eta, rel=1e-12)
    assert opt.state["backtracks"] == bt
    # every evaluation after the gradient's lies on w1 - eta_k * trial_dir, eta_k = eta0 0.9^k
    assert len(seen) == 2 + bt
    for k, p in enumerate(seen[1:]):
        torch.testing.assert_close(p, w1 - eta0 * 0.9 ** k * trial_dir, rtol=1e-12, atol=1e-14)
    # the step taken: ada_sls moves along D^-1 m_hat with the accepted eta, dir_der along d
    torch.testing.assert_close(w.detach(), w1 - eta * d, rtol=1e-12, atol=1e-14)
    # discrimination: the released term g^T D^-1 g along d gives a different outcome here
    pp = float(g @ (g / D))
    released = _hand_armijo(w1, T2_ALIGNED, d, min(f1 / (0.1 * pp), 10.0), f1, pp)
    assert released != (eta, bt) or not torch.allclose(trial_dir, d)


def test_dir_der_restarts_along_D_inv_g_when_the_momentum_direction_is_not_descent():
    """g_2 = -0.3 g_1: m_hat = 0.06 g_1 / 0.19, so g^T d < 0 and no step along d passes any
    Armijo test; the step restarts with D^-1 g and the term g^T D^-1 g (descent_restarts)."""
    w = W0.clone().requires_grad_(True)
    opt = build({"name": "ponos_prec", "reading": "dir_der", "xi": 0.0}, [w])
    opt.step(_closure(w, T1, []))
    w1 = w.detach().clone()
    t2 = _flip_target(w1)
    opt.step(_closure(w, t2, []))
    g, D, d = _hand_moments(W0, w1, t2)
    assert float(g @ d) < 0
    assert opt.state["descent_restarts"] == 1
    pp = float(g @ (g / D))
    f1 = f(w1, t2)
    eta, bt = _hand_armijo(w1, t2, g / D, min(f1 / (0.1 * pp), 10.0), f1, pp)
    assert opt.state["step_size"] == pytest.approx(eta, rel=1e-12) and opt.state["backtracks"] == bt
    torch.testing.assert_close(w.detach(), w1 - eta * g / D, rtol=1e-12, atol=1e-14)


def test_ada_sls_one_step_by_hand_sls_prec():
    """SLS_prec, reading ada_sls, first step (k = 1: m_hat = g, v_hat = g^2, D = |g| + eps) and
    second step (momentum differs from g) against the formulas written out."""
    w = W0.clone().requires_grad_(True)
    opt = build({"name": "sls_prec", "reading": "ada_sls"}, [w], n_batches_per_epoch=4)
    seen = []
    opt.step(_closure(w, T1, seen))
    g1 = grad(W0, T1)
    D1 = g1.abs() + EPS
    eta1, bt1 = _hand_armijo(W0, T1, g1 / D1, min(1.0 * 2 ** 0.25, 10.0), f(W0, T1), float(g1 @ (g1 / D1)))
    assert opt.state["step_size"] == pytest.approx(eta1, rel=1e-12) and opt.state["backtracks"] == bt1
    w1 = w.detach().clone()
    torch.testing.assert_close(w1, W0 - eta1 * g1 / D1, rtol=1e-12, atol=1e-14)  # m_hat = g at k = 1
    opt.step(_closure(w, T2_ALIGNED, seen))
    g, D, d = _hand_moments(W0, w1, T2_ALIGNED)
    eta2, _ = _hand_armijo(w1, T2_ALIGNED, g / D, min(eta1 * 2 ** 0.25, 10.0), f(w1, T2_ALIGNED),
                           float(g @ (g / D)))
    assert opt.state["step_size"] == pytest.approx(eta2, rel=1e-12)
    torch.testing.assert_close(w.detach(), w1 - eta2 * d, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(g / D, d, rtol=1e-3)       # the two directions do differ


def test_reading_validation():
    w = [torch.zeros(2, dtype=F64, requires_grad=True)]
    with pytest.raises(ValueError, match="reading"):
        build({"name": "ponos_prec", "reading": "momentum"}, w)
    with pytest.raises(ValueError, match="released"):
        build({"name": "sls_prec", "reading": "ada_sls", "suff_decr": "grad_norm"}, w)
    assert build({"name": "ponos_prec", "suff_decr": "dir_der"}, w).defaults["reading"] == "released"
    assert build({"name": "ponos_prec"}, w).defaults["reading"] == "ada_sls"


# ----------------------------------------------------------------------------- equal-loss stop
def _flat_float32_problem():
    """A float32 loss 1 + 1e-5 * sum(w): ||g|| = 1e-5 * sqrt(4) passes the 1e-8 gradient test,
    but a trial w - eta g with eta <= 2 changes the loss by <= 1e-9, far below float32's
    resolution at 1 (1.2e-7): every trial returns exactly the reference loss 1.0."""
    w = torch.zeros(4, dtype=torch.float32, requires_grad=True)
    return w, lambda: 1.0 + 1e-5 * w.sum()


@pytest.mark.parametrize("stop", [False, True])
def test_sls_equal_loss_stop_ends_the_search_and_takes_the_same_fallback(stop):
    w, closure = _flat_float32_problem()
    opt = build({"name": "sls", "stop_on_equal": stop}, [w], n_batches_per_epoch=4)
    calls = []
    opt.step(lambda: (calls.append(1), closure())[1])
    # off: the paper's search, all 100 trials rejected; on: one trial, then the same fallback
    assert len(calls) == (2 if stop else 101)
    assert opt.state["backtracks"] == 100 and opt.state["step_size"] == 1e-6
    assert opt.state["failed_forwards"] == (1 if stop else 100)
    assert opt.state["equal_stops"] == (1 if stop else 0)
    assert torch.equal(w.detach(), torch.full((4,), -1e-6 * 1e-5, dtype=torch.float32))


def test_sls_equal_loss_stop_is_inert_when_no_trial_ties():
    """On float64 least squares no trial loss ties the reference: on and off take bit-identical
    steps (and off is the released reference algorithm, tests/test_optimizers_linesearch.py)."""
    g = torch.Generator().manual_seed(3)
    X, y = torch.randn(12, 5, generator=g, dtype=F64), torch.randn(12, generator=g, dtype=F64)
    out = []
    for stop in (False, True):
        w = torch.zeros(5, dtype=F64, requires_grad=True)
        opt = build({"name": "sls", "stop_on_equal": stop}, [w], n_batches_per_epoch=3)
        for k in range(15):
            idx = torch.arange(4 * (k % 3), 4 * (k % 3) + 4)
            opt.step(lambda: 0.5 * ((X[idx] @ w - y[idx]) ** 2).mean())
        out.append((w.detach().clone(), opt.state["n_forwards"], opt.state["equal_stops"]))
    assert torch.equal(out[0][0], out[1][0]) and out[0][1] == out[1][1] and out[1][2] == 0


def test_goldstein_rejects_stop_on_equal():
    with pytest.raises(ValueError, match="Armijo"):
        build({"name": "sls", "line_search_fn": "goldstein", "stop_on_equal": True},
              [torch.zeros(2, requires_grad=True)])


# ----------------------------------------------------------------------------- state_dict
def test_new_counters_survive_a_state_dict_round_trip():
    w, closure = _flat_float32_problem()
    opt = build({"name": "sls", "stop_on_equal": True}, [w], n_batches_per_epoch=4)
    opt.step(closure)     # one search ended on an equal loss after its first trial
    w2 = w.detach().clone().requires_grad_(True)
    opt2 = build({"name": "sls", "stop_on_equal": True}, [w2], n_batches_per_epoch=4)
    opt2.load_state_dict(opt.state_dict())
    assert (opt2.state["failed_forwards"], opt2.state["equal_stops"]) == (1, 1)

    ws = [W0.clone().requires_grad_(True), None]
    p = build({"name": "ponos_prec", "reading": "dir_der", "xi": 0.0}, [ws[0]])
    p.step(_closure(ws[0], T1, []))
    p.step(_closure(ws[0], _flip_target(ws[0].detach().clone()), []))
    ws[1] = ws[0].detach().clone().requires_grad_(True)
    q = build({"name": "ponos_prec", "reading": "dir_der", "xi": 0.0}, [ws[1]])
    q.load_state_dict(p.state_dict())
    assert q.state["descent_restarts"] == p.state["descent_restarts"] == 1
    for opt_, w_ in ((p, ws[0]), (q, ws[1])):     # the next step is identical from the copy
        opt_.step(_closure(w_, T2_ALIGNED, []))
    assert torch.equal(ws[0].detach(), ws[1].detach())
    assert math.isfinite(q.state["step_size"])
