"""Shared machinery of the project optimizers (module name starts with ``_``: the registry
does not treat it as an optimizer file).

``ProjectOptimizer`` is a ``torch.optim.Optimizer`` that

* keeps the logged quantities under *string* keys of ``self.state``: ``step_size`` (the step
  length applied at the last step), ``n_forwards`` (cumulative closure evaluations),
  ``n_backwards`` (cumulative backward passes) and ``backtracks`` (rejected trial steps in
  the last step), plus whatever ``_extra_global`` adds (``polyak_step``, Zhang-Hager
  reference, backtrack memory ...). ``torch.optim.Optimizer.state_dict`` stores string keys
  as they are, so they survive a ``state_dict`` / ``load_state_dict`` round trip;
  ``load_state_dict`` below deep-copies them so that two optimizers never share a mutable
  value;
* gives the closure helpers (forward with backward, forward under ``no_grad``) that count
  the passes, and the RNG snapshot that makes every evaluation inside one step see the same
  random numbers (dropout masks).
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Iterable

import torch

CLOSURE_CONTRACT = (
    "{name}.step() needs a closure: call `opt.step(closure)` where `closure()` evaluates the "
    "loss of the current minibatch and returns it as a scalar tensor WITHOUT calling "
    "backward() (the optimizer zeroes the gradients, calls backward() itself and may call the "
    "closure again under torch.no_grad() on the same minibatch). See docs/optimizers.md."
)


class RNGSnapshot:
    """The torch CPU (and, when CUDA is in use, every CUDA device's) RNG state at one moment.

    ``restore()`` puts the generators back to that state, so a closure evaluated after it
    draws exactly the random numbers (dropout masks, noise) of the first evaluation. Nothing
    is reseeded: the stream simply continues after the step from where the last evaluation
    left it (one forward pass worth of draws), which keeps runs deterministic and resumable.
    """

    __slots__ = ("cpu", "cuda")

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.cuda = torch.cuda.get_rng_state_all()

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def _as_float(loss) -> float:
    return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)


class ProjectOptimizer(torch.optim.Optimizer):
    """Base class: counters in ``self.state`` under string keys, closure helpers."""

    needs_closure = False
    needs_slot = False
    needs_snapshot = False

    def __init__(self, params, defaults: dict):
        super().__init__(params, defaults)
        self._init_global_state()

    # ------------------------------------------------------------------ global state
    def _extra_global(self) -> dict:
        """Additional global (not per-parameter) state entries and their initial values."""
        return {}

    def _global_defaults(self) -> dict:
        d = {"step_size": 0.0, "n_forwards": 0, "n_backwards": 0, "backtracks": 0}
        d.update(self._extra_global())
        return d

    def _init_global_state(self) -> None:
        for k, v in self._global_defaults().items():
            if k not in self.state:  # `in` does not create entries in the defaultdict
                self.state[k] = copy.deepcopy(v)

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # torch copies non-parameter entries by reference; never share them with the source
        for k in list(self.state.keys()):
            if isinstance(k, str):
                self.state[k] = copy.deepcopy(self.state[k])
        self._init_global_state()

    # ------------------------------------------------------------------ helpers
    def _require_closure(self, closure) -> None:
        if closure is None:
            raise RuntimeError(CLOSURE_CONTRACT.format(name=type(self).__name__))

    def _all_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def _check_global_hparams(self, keys: Iterable[str]) -> None:
        """Methods with one global step (line searches, Polyak steps) read their
        hyper-parameters from the first group; groups may not disagree on them."""
        g0 = self.param_groups[0]
        for g in self.param_groups[1:]:
            for k in keys:
                if g.get(k) != g0.get(k):
                    raise ValueError(
                        f"{type(self).__name__} takes one global step for all parameters: "
                        f"hyper-parameter '{k}' must be equal in every param group "
                        f"({g0.get(k)!r} != {g.get(k)!r})")

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        keys = getattr(self, "_global_hparams", ())
        if keys and len(self.param_groups) > 1:
            self._check_global_hparams(keys)

    def _forward_backward(self, closure: Callable) -> torch.Tensor:
        """Zero the gradients, evaluate the closure with autograd on and backpropagate."""
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            raise RuntimeError(
                f"{type(self).__name__}: the closure must return the minibatch loss as a tensor "
                "that requires grad (do not call backward() or detach it inside the closure).")
        loss.backward()
        self.state["n_forwards"] += 1
        self.state["n_backwards"] += 1
        return loss.detach()

    def _forward(self, closure: Callable) -> float:
        """Evaluate the closure under ``torch.no_grad()`` (a line-search trial)."""
        with torch.no_grad():
            loss = closure()
        self.state["n_forwards"] += 1
        return _as_float(loss)

    def _torch_style_closure(self, closure) -> torch.Tensor | None:
        """For optimizers used like torch.optim.SGD: the optional closure computes the loss
        and calls backward itself (torch convention). Counts one forward and one backward
        either way (without a closure the trainer did them)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.state["n_forwards"] += 1
        self.state["n_backwards"] += 1
        return loss


# ---------------------------------------------------------------------- tensor-list ops
def resolve_foreach(foreach, params) -> bool:
    """``None`` follows torch.optim's default: the ``torch._foreach_*`` path when every
    parameter is a dense CUDA tensor (fused multi-tensor kernels), plain per-tensor loops
    otherwise (on CPU the foreach kernels are loops too, and the loop path can write
    ``x0 - eta d`` in one pass with ``out=``)."""
    if foreach is None:
        return bool(params) and all(p.is_cuda and not p.is_sparse for p in params)
    return bool(foreach)


def norms(tensors: list, foreach: bool) -> torch.Tensor:
    """Per-tensor Euclidean norms, stacked into one float64 vector (same values on both
    paths: the foreach kernel and the loop call the same per-tensor norm)."""
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    if foreach:
        ns = torch._foreach_norm(tensors)
    else:
        ns = [torch.linalg.vector_norm(t) for t in tensors]
    dev = tensors[0].device
    return torch.stack([n.to(device=dev, dtype=torch.float64) for n in ns])


def sq_norm(tensors: list, foreach: bool) -> float:
    """Squared Euclidean norm of the concatenation of ``tensors`` as a Python float."""
    n = norms(tensors, foreach)
    return float(n.square().sum()) if n.numel() else 0.0


def copy_(dst: list, src: list, foreach: bool) -> None:
    if not dst:
        return
    if foreach:
        torch._foreach_copy_(dst, src)
    else:
        for d, s in zip(dst, src):
            d.copy_(s)


def set_point(params: list, x0: list, direction: list, eta: float, foreach: bool,
              at_x0: bool = False) -> None:
    """params <- x0 - eta * direction, always computed from the saved point x0 (never
    incrementally from the previous trial). ``at_x0=True`` says the parameters still hold
    x0 bit for bit (first trial of a step), so the update is done in place in one pass."""
    if not params:
        return
    if at_x0:
        if foreach:
            torch._foreach_add_(params, direction, alpha=-eta)
        else:
            for p, d in zip(params, direction):
                p.add_(d, alpha=-eta)
    elif foreach:
        torch._foreach_copy_(params, x0)
        torch._foreach_add_(params, direction, alpha=-eta)
    else:
        for p, x, d in zip(params, x0, direction):
            torch.add(x, d, alpha=-eta, out=p)


def finite(x: float) -> bool:
    return math.isfinite(x)
