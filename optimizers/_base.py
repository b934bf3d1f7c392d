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
import threading
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
# Precision: every norm and dot product that feeds an Armijo test or a Polyak step is
# accumulated in float64, so a float32 model gets its step sizes to ~1e-14 relative instead
# of the ~1e-6 of a float32 reduction over a large layer. On float64 tensors the values are
# bit for bit those of the plain float64 reductions.
#   foreach path (CUDA): ``_foreach_norm(..., dtype=float64)`` casts on load inside the
#     fused kernel (no copies);
#   loop path (CPU): float32 (bf16, fp16) tensors are converted in 64k-element chunks into a
#     reused float64 scratch buffer and reduced there (exact squares and products, float64
#     sums). torch's own ``dtype=float64`` reductions and ``.double()`` casts convert the
#     whole tensor into a fresh buffer first: 1.6x slower on CPU (measured on the MNIST MLP's
#     gradients, one thread: ||g||^2 250 us chunked, 400 us vector_norm(dtype=float64),
#     70 us in float32).
#
# Host reads: these helpers return 0-dim float64 tensors on the parameters' device and never
# read them on the host; an optimizer reads what it needs with one ``host_floats`` call.
F64 = torch.float64
_CHUNK = 1 << 16
_scratch_tls = threading.local()


def resolve_foreach(foreach, params) -> bool:
    """``None`` follows torch.optim's default: the ``torch._foreach_*`` path when every
    parameter is a dense CUDA tensor (fused multi-tensor kernels), plain per-tensor loops
    otherwise (on CPU the foreach kernels are loops too, and the loop path can write
    ``x0 - eta d`` into a preallocated buffer in one pass with ``out=``)."""
    if foreach is None:
        return bool(params) and all(p.is_cuda and not p.is_sparse for p in params)
    return bool(foreach)


def _zero(tensors) -> torch.Tensor:
    return torch.zeros((), dtype=F64, device=tensors[0].device if tensors else None)


def _scratch(device, slot: int) -> torch.Tensor:
    bufs = getattr(_scratch_tls, "bufs", None)
    if bufs is None:
        bufs = _scratch_tls.bufs = {}
    buf = bufs.get((device, slot))
    if buf is None:
        buf = bufs[(device, slot)] = torch.empty(_CHUNK, dtype=F64, device=device)
    return buf


def _reduce64(x: torch.Tensor, y: torch.Tensor | None, kind: str) -> torch.Tensor:
    """float64 reduction of one tensor on the loop path: ``"sq"`` sum x^2, ``"l1"`` sum |x|,
    ``"dot"`` sum x*y. float64 inputs are reduced directly; others chunk by chunk through the
    float64 scratch buffers (a float32 value converts exactly, so squares and products of
    float32 values are exact in float64)."""
    x = x.reshape(-1)
    y = None if y is None else y.reshape(-1)
    if x.dtype == F64 and (y is None or y.dtype == F64):
        if kind == "sq":
            return torch.dot(x, x)
        if kind == "l1":
            return torch.linalg.vector_norm(x, 1)
        return torch.dot(x, y)
    sx = _scratch(x.device, 0)
    sy = _scratch(x.device, 1) if y is not None else None
    n, parts = x.numel(), []
    for i in range(0, n, _CHUNK):
        m = min(_CHUNK, n - i)
        a = sx[:m]
        a.copy_(x[i:i + m])
        if kind == "sq":
            parts.append(torch.dot(a, a))
        elif kind == "l1":
            parts.append(torch.linalg.vector_norm(a, 1))
        else:
            b = y[i:i + m]
            if b.dtype != F64:
                b = sy[:m]
                b.copy_(y[i:i + m])
            parts.append(torch.dot(a, b))
    if not parts:
        return torch.zeros((), dtype=F64, device=x.device)
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum()


def norms(tensors: list, foreach: bool) -> torch.Tensor:
    """Per-tensor Euclidean norms accumulated in float64, stacked into one float64 vector on
    the device of ``tensors[0]``."""
    if not tensors:
        return torch.zeros(0, dtype=F64)
    dev = tensors[0].device
    if foreach:
        ns = torch._foreach_norm(tensors, 2, dtype=F64)
    else:
        ns = [torch.linalg.vector_norm(t) if t.dtype == F64 else _reduce64(t, None, "sq").sqrt()
              for t in tensors]
    return torch.stack([n.to(device=dev) for n in ns])


def sq_norm(tensors: list, foreach: bool) -> torch.Tensor:
    """Squared Euclidean norm of the concatenation of ``tensors``: a 0-dim float64 tensor on
    the device (no host read). float64 tensors: the square of the stacked per-tensor norms
    (the values the optimizers always used); others: float64 sums of squares."""
    if not tensors:
        return _zero(tensors)
    if foreach or all(t.dtype == F64 for t in tensors):
        return norms(tensors, foreach).square().sum()
    dev = tensors[0].device
    terms = [torch.linalg.vector_norm(t).square() if t.dtype == F64 else _reduce64(t, None, "sq")
             for t in tensors]
    return torch.stack([t.to(device=dev) for t in terms]).sum()


def l1_norm(tensors: list, foreach: bool) -> torch.Tensor:
    """l1 norm of the concatenation of ``tensors`` (float64 accumulation, 0-dim, on device)."""
    if not tensors:
        return _zero(tensors)
    if foreach:
        ns = torch._foreach_norm(tensors, 1, dtype=F64)
    else:
        ns = [_reduce64(t, None, "l1") for t in tensors]
    dev = tensors[0].device
    return torch.stack([n.to(device=dev) for n in ns]).sum()


def dot(a: list, b: list, foreach: bool, nonneg: bool = False) -> torch.Tensor:
    """sum_i <a_i, b_i> as a 0-dim float64 tensor on the device (no host read).

    Loop path: per-tensor float64 dot products (exact products of float32 values, float64
    sums), summed left to right.
    Foreach path: one fused ``_foreach_mul`` (products rounded to the tensors' dtype) and
    float64 ``_foreach_norm(., 1)`` reductions; the l1 norm is the sum when every product is
    >= 0 (``nonneg=True``, e.g. g^T D^-1 g), otherwise sum = 2 * sum(max(x, 0)) - sum(|x|)
    (one more fused pass). No per-parameter kernels and no Python sum over tensors."""
    if not a:
        return _zero(a)
    dev = a[0].device
    if foreach:
        prods = torch._foreach_mul(a, b)
        l1 = torch.stack([n.to(device=dev) for n in torch._foreach_norm(prods, 1, dtype=F64)]).sum()
        if nonneg:
            return l1
        pos = torch._foreach_norm(torch._foreach_clamp_min(prods, 0.0), 1, dtype=F64)
        return 2.0 * torch.stack([n.to(device=dev) for n in pos]).sum() - l1
    terms = [_reduce64(x, y, "dot").to(device=dev) for x, y in zip(a, b)]
    # running sum in parameter order (one kernel; the same rounding as a left-to-right sum)
    return torch.stack(terms).cumsum(0)[-1]


def sq_norm_and_dots(g: list, others: list, foreach: bool, nonneg=()) -> tuple:
    """(||g||^2, [<o, g> for o in others]) as 0-dim float64 tensors: the same values as
    ``sq_norm(g)`` and ``dot(o, g)``, but on the loop path every chunk of g is converted to
    float64 once for all the reductions (``nonneg[i]`` is ``dot``'s ``nonneg`` for
    ``others[i]``, used by the foreach path)."""
    nonneg = tuple(nonneg) + (False,) * (len(others) - len(nonneg))
    if foreach or not g or all(t.dtype == F64 for t in g) and all(
            t.dtype == F64 for o in others for t in o):
        return sq_norm(g, foreach), [dot(o, g, foreach, nn) for o, nn in zip(others, nonneg)]
    dev = g[0].device
    sq_terms, dot_terms = [], [[] for _ in others]
    for i, x in enumerate(g):
        ys = [o[i] for o in others]
        if x.dtype == F64 and all(y.dtype == F64 for y in ys):
            sq_terms.append(torch.linalg.vector_norm(x).square())
            for k, y in enumerate(ys):
                dot_terms[k].append(torch.dot(y.reshape(-1), x.reshape(-1)))
            continue
        xf, yf = x.reshape(-1), [y.reshape(-1) for y in ys]
        sx = _scratch(x.device, 0)
        sy = _scratch(x.device, 1)
        sq_parts, dot_parts = [], [[] for _ in ys]
        for j in range(0, xf.numel(), _CHUNK):
            m = min(_CHUNK, xf.numel() - j)
            a = sx[:m]
            a.copy_(xf[j:j + m])
            sq_parts.append(torch.dot(a, a))
            for k, y in enumerate(yf):
                b = sy[:m]
                b.copy_(y[j:j + m])
                dot_parts[k].append(torch.dot(b, a))
        zero = torch.zeros((), dtype=F64, device=x.device)
        sq_terms.append(torch.stack(sq_parts).sum() if sq_parts else zero)
        for k in range(len(ys)):
            dot_terms[k].append(torch.stack(dot_parts[k]).sum() if dot_parts[k] else zero)
    g2 = torch.stack([t.to(device=dev) for t in sq_terms]).sum()
    return g2, [torch.stack([t.to(device=dev) for t in d]).cumsum(0)[-1] for d in dot_terms]


def host_floats(*values) -> list:
    """Python floats of several scalars with ONE device-to-host transfer (``tolist`` of a
    stacked float64 vector); Python numbers pass through. The only host read an optimizer
    makes outside its line-search trials."""
    idx = [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    out = [float(v) if not isinstance(v, torch.Tensor) else None for v in values]
    if idx:
        dev = values[idx[0]].device
        vec = torch.stack([values[i].detach().reshape(()).to(device=dev, dtype=F64) for i in idx])
        for i, x in zip(idx, vec.tolist()):
            out[i] = x
    return out


def lr_value(lr):
    """The step size to log: a Python float, or the tensor itself when ``lr`` is a tensor
    (``optimizers.stats`` converts it when it is read, not in the step)."""
    return lr if isinstance(lr, torch.Tensor) else float(lr)


def finite(x: float) -> bool:
    return math.isfinite(x)
