"""Optimizer registry.

``optimizer.name`` in the config selects a class registered here; every other key of the
``optimizer`` config group is passed to its constructor (``schedule`` is handled by the
trainer). Adding an optimizer is one file in this folder that calls ``register`` plus one
yaml in ``conf/optimizer/``: every module of this package is imported below, so a new file
is picked up without editing this one.

The trainer talks to optimizers through three class attributes (absent means False):

- ``needs_closure``: ``step(closure)`` must be given a closure that returns the minibatch
  loss *without* calling ``backward``; the optimizer zeroes the gradients, calls
  ``backward`` itself and may re-evaluate the closure under ``torch.no_grad()`` (line
  searches). Without it the optimizer is used like ``torch.optim.SGD``: the trainer calls
  ``backward`` and then ``step()``.
- ``needs_slot``: ``step(slot=i)`` also receives the index of the fixed batch (SAG's table).
- ``needs_snapshot``: the trainer calls ``set_snapshot(full_closure)`` at the start of every
  epoch with a closure returning the full training loss (SVRG).

``stats(opt)`` returns the per-step quantities the trainer logs (``stats(opt, host=False)``
leaves values that live on the device as 0-dim tensors).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import torch

REGISTRY: dict[str, type] = {}
# Keys of an optimizer config that the trainer consumes (never passed to the constructor):
# ``schedule`` (step-size schedule) and ``full_batch`` (the method is defined on the full
# batch: GD, L-BFGS).
TRAINER_KEYS = ("name", "schedule", "full_batch")


def register(name: str, cls: type | None = None):
    """Register ``cls`` under ``name``; usable as ``@register("name")`` or ``register(name, cls)``."""
    def add(c):
        if name in REGISTRY and REGISTRY[name] is not c:
            raise ValueError(f"optimizer name '{name}' is registered twice")
        REGISTRY[name] = c
        return c
    return add(cls) if cls is not None else add


def build(cfg: dict, params, *, n_batches_per_epoch: int | None = None) -> torch.optim.Optimizer:
    """Construct the optimizer named ``cfg['name']`` from the remaining keys of ``cfg``.

    ``n_batches_per_epoch`` is passed to constructors that accept it (SLS, SPS, SAG) when the
    config leaves it unset (null)."""
    kwargs = {k: v for k, v in cfg.items() if k not in TRAINER_KEYS}
    name = cfg["name"]
    if name not in REGISTRY:
        raise KeyError(f"unknown optimizer '{name}'; valid: {', '.join(sorted(REGISTRY))}")
    cls = REGISTRY[name]
    accepted = inspect.signature(cls.__init__).parameters
    if "n_batches_per_epoch" in accepted and kwargs.get("n_batches_per_epoch") is None:
        kwargs["n_batches_per_epoch"] = n_batches_per_epoch
    for k in list(kwargs):
        if isinstance(kwargs[k], list):  # yaml lists -> tuples (betas)
            kwargs[k] = tuple(kwargs[k])
    return cls(params, **kwargs)


def stats(opt: torch.optim.Optimizer, host: bool = True) -> dict:
    """Last step size, cumulative forward/backward counts, last step's backtracks.

    Project optimizers keep these under string keys of ``opt.state`` (they survive
    ``state_dict``); for torch.optim classes the step size is the first group's lr and the
    counts are kept by the trainer (one forward and one backward per step).

    The counters are Python ints and the line-search quantities Python floats (a line search
    reads them on the host anyway); a value kept on the device as a 0-dim tensor (e.g. a
    tensor ``lr``) is converted here, i.e. when the stats are read, never inside ``step``.
    ``host=False`` returns such tensors as they are, so that a caller can accumulate them on
    the device and convert once per evaluation (no host synchronisation per step)."""
    st = opt.state
    out = {}
    for key in ("step_size", "n_forwards", "n_backwards", "backtracks", "polyak_step", "failed_forwards"):
        if key in st:
            out[key] = _value(st[key], host)
    if "step_size" not in out:
        out["step_size"] = _value(opt.param_groups[0].get("lr", float("nan")), host)
    return out


def _value(v, host: bool):
    if isinstance(v, int):  # counters (bool is an int too)
        return v
    if isinstance(v, torch.Tensor):
        return float(v) if host else v.detach()
    return float(v)


def _import_all():
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_all()
