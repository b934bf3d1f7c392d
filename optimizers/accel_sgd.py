"""Accelerated SGD under the strong growth condition (Vaswani, Bach & Schmidt, AISTATS 2019,
"Fast and faster convergence of SGD for over-parameterized models"), strongly convex case."""
from __future__ import annotations

import math

import torch

from optimizers import register
from optimizers._base import ProjectOptimizer, lr_value


def accel_constants(eta: float, mu: float, rho: float) -> dict:
    """q = sqrt(mu eta / rho); alpha = q/(1+q); beta = 1-q; gamma = q/(mu eta)."""
    q = math.sqrt(mu * eta / rho)
    return {"q": q, "alpha": q / (1 + q), "beta": 1 - q, "gamma": q / (mu * eta)}


@register("accel_sgd")
class AcceleratedSGD(ProjectOptimizer):
    r"""Nesterov's method with three sequences, driven by stochastic gradients:

        y_k     = alpha z_k + (1 - alpha) w_k
        w_{k+1} = y_k - eta g(y_k)
        z_{k+1} = beta z_k + (1 - beta) y_k - gamma eta g(y_k)          (z_0 = w_0)

    with g the minibatch gradient, eta = ``lr`` (default 1/(rho L)) and, q = sqrt(mu eta / rho),

        alpha = q / (1 + q),   beta = 1 - q,   gamma = q / (mu eta)  (= 1/sqrt(mu eta rho)).

    These are the constants of the paper's strongly convex theorem as I recall them
    (gamma = 1/sqrt(mu eta rho), beta = 1 - sqrt(mu eta / rho), alpha the limit of its
    alpha_k formula), which I could not check against the PDF; I re-derived them as follows.
    Derivation (potential Phi_k = f(w_k) - f* + mu/2 ||z_k - w*||^2, SGC
    E||g_i(y)||^2 <= rho ||grad f(y)||^2, L-smooth, mu-strongly convex):
    (i) smoothness + SGC with eta = 1/(rho L): E f(w_{k+1}) <= f(y_k) - ||grad f(y_k)||^2/(2 rho L);
    (ii) expanding mu/2 E||z_{k+1} - w*||^2 with beta = 1 - q and gamma eta = q/mu, using
    convexity of ||.||^2, strong convexity at (y_k, w*) and convexity at (y_k, w_k):
    mu/2 E||z_{k+1}-w*||^2 <= (1-q) mu/2 ||z_k-w*||^2 - q (f(y_k) - f*)
    + q (1-q) (1-alpha)/alpha (f(w_k) - f(y_k)) + q^2 rho/(2 mu) ||grad f(y_k)||^2;
    (iii) alpha = q/(1+q) makes q(1-q)(1-alpha)/alpha = 1 - q, which cancels f(y_k) and
    leaves (1-q)(f(w_k) - f*); (iv) the gradient terms cancel when q^2 rho / mu <= eta, i.e.
    q = sqrt(mu eta / rho). Hence E Phi_{k+1} <= (1 - q) Phi_k:

        rate (1 - sqrt(mu / (rho^2 L)))^k for eta = 1/(rho L).

    With rho = 1 (deterministic) this is (1 - sqrt(mu/L))^k and, eliminating z, the
    iteration is exactly Nesterov's constant-momentum method
    w_{k+1} = y_k - g(y_k)/L,  y_{k+1} = w_{k+1} + (1 - q)/(1 + q) (w_{k+1} - w_k).
    Note: this analysis gives sqrt(mu/(rho^2 L)), not sqrt(mu/(rho L)); for rho = 1 they
    agree. Iterations to eps scale like sqrt(kappa) (tested).

    The parameters hold w_k between steps (so evaluations measure f(w_k)); the gradient is
    taken at y_k, which is why this optimizer needs the closure (1 forward + 1 backward per
    step); the returned loss is f_B(y_k). State: per parameter ``z``; ``step_size`` (eta),
    ``n_forwards``, ``n_backwards``, ``backtracks`` (0). Per-group constants (separable).
    """

    needs_closure = True

    def __init__(self, params, lr: float | None = None, mu: float | None = None,
                 L: float | None = None, rho: float = 1.0):
        if mu is None or mu <= 0:
            raise ValueError("accel_sgd needs the strong-convexity constant mu > 0")
        if lr is None:
            if L is None or L <= 0:
                raise ValueError("accel_sgd needs lr or the smoothness constant L > 0 (lr = 1/(rho L))")
            lr = 1.0 / (rho * L)
        if rho < 1 or lr <= 0:
            raise ValueError("need rho >= 1 and lr > 0")
        if mu * lr / rho > 1:
            raise ValueError(f"mu * lr / rho = {mu * lr / rho:.3g} > 1: lr too large for this mu")
        super().__init__(params, dict(lr=float(lr), mu=float(mu), L=L, rho=float(rho)))

    def step(self, closure=None):
        self._require_closure(closure)
        with torch.no_grad():
            for group in self.param_groups:
                k = accel_constants(group["lr"], group["mu"], group["rho"])
                for p in group["params"]:
                    ps = self.state[p]
                    if "z" not in ps:
                        ps["z"] = p.detach().clone()
                    # p (= w_k) <- y = alpha z + (1 - alpha) w   (lerp: one pass)
                    p.lerp_(ps["z"], k["alpha"])
        loss = self._forward_backward(closure)
        with torch.no_grad():
            for group in self.param_groups:
                eta = group["lr"]
                k = accel_constants(eta, group["mu"], group["rho"])
                for p in group["params"]:
                    g = p.grad if p.grad is not None else torch.zeros_like(p)
                    z = self.state[p]["z"]
                    # z <- beta z + (1 - beta) y - gamma eta g   (p holds y)
                    z.lerp_(p, 1 - k["beta"]).add_(g, alpha=-k["gamma"] * eta)
                    # w <- y - eta g
                    p.add_(g, alpha=-eta)
        self.state["step_size"] = lr_value(self.param_groups[0]["lr"])
        return loss
