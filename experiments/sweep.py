"""The declared sweep of a preset: the ``sweep:`` block of a grid file, expanded into the
override lists of ordinary Hydra jobs.

    sweep:
      seed: [0, 1, 2]                       # every job runs once per seed
      product:                              # shared keys, crossed with everything else
        level: [0.5, 2]
      zip:                                  # settings that change together: equal-length lists...
        train.batch_size: [4, 16, full]
        train.epochs: [10, 40, 160]
      # ...or a list of rows, e.g. [{task: matfac, level: 4}, {task: lstsq, dataset.sigma: 0.1}]
      methods:                              # the union of per-method grids (benchopt's solvers)
        sgd:   {optimizer: sgd, lr: {log10: {start: -3, stop: 0, step: 0.5}}}
        sgd_m: {optimizer: heavy_ball, lr: [0.1, 0.01]}
        adam_nom: {optimizer: adam, set: {optimizer.betas: [0.0, 0.999]}, lr: {log10: [-3, -2]}}
        sls:   {optimizer: sls}

A method is a label, an optimizer choice, fixed overrides (``set``), an optional step-size
list (``lr``: values, or ``log10`` exponents as a list or a start/stop/step range) and an
optional ``product`` of its own. Every job gets ``method=<label>`` (not part of the run id),
so figures read the label as data. Keys are Hydra override keys (``train.epochs``, a group
such as ``task``, ``+new.key``); values are yaml values. A step size 10^e is spelled
``float(f"{10**e:.9e}")`` (ten significant digits), the spelling the earlier per-step-size
files used, so run ids are unchanged.
"""
from __future__ import annotations

import itertools
import math
import re

TOP_KEYS = ("seed", "product", "zip", "methods")
METHOD_KEYS = ("optimizer", "set", "lr", "product")
LR_KEY = "optimizer.lr"


class SweepError(ValueError):
    """A malformed sweep block; str(err) is one line naming the key."""


def log10_value(e: float) -> float:
    return float(f"{10 ** e:.9e}")


def fmt(value) -> str:
    """A yaml value as a Hydra override value (strings quoted unless they are plain names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z_][\w/.\-]*", value) and value not in ("null", "true", "false",
                                                                         "inf", "nan"):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{fmt(v)}" for k, v in value.items()) + "}"
    raise SweepError(f"sweep value {value!r} of type {type(value).__name__} cannot be an override")


def _as_list(where: str, value) -> list:
    if isinstance(value, (list, tuple)):
        if not value:
            raise SweepError(f"{where} is an empty list; give at least one value")
        return list(value)
    return [value]


def _product(where: str, block) -> list[list[str]]:
    """Cartesian product of {key: values} as lists of 'key=value' strings."""
    if block is None:
        return [[]]
    if not isinstance(block, dict):
        raise SweepError(f"{where} must be a mapping key: [values], got {type(block).__name__}")
    axes = [[f"{k}={fmt(v)}" for v in _as_list(f"{where}.{k}", vals)] for k, vals in block.items()]
    return [list(p) for p in itertools.product(*axes)]


def _zip(block) -> list[list[str]]:
    if block is None:
        return [[]]
    if isinstance(block, dict):
        lists = {k: _as_list(f"sweep.zip.{k}", v) for k, v in block.items()}
        lengths = {k: len(v) for k, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise SweepError("sweep.zip lists must have equal lengths, got "
                             + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
        n = next(iter(lengths.values()), 0)
        return [[f"{k}={fmt(v[i])}" for k, v in lists.items()] for i in range(n)]
    if isinstance(block, list):
        rows = []
        for i, row in enumerate(block):
            if not isinstance(row, dict) or not row:
                raise SweepError(f"sweep.zip[{i}] must be a mapping of settings, got {row!r}")
            rows.append([f"{k}={fmt(v)}" for k, v in row.items()])
        return rows
    raise SweepError("sweep.zip must be a mapping of equal-length lists or a list of rows")


def _lrs(label: str, spec) -> list:
    where = f"sweep.methods.{label}.lr"
    if spec is None:
        return [None]
    if isinstance(spec, dict):
        if set(spec) != {"log10"}:
            raise SweepError(f"{where} must be a list of values or {{log10: ...}}, got keys {sorted(spec)}")
        exps = spec["log10"]
        if isinstance(exps, dict):
            if set(exps) != {"start", "stop", "step"}:
                raise SweepError(f"{where}.log10 must be a list of exponents or {{start, stop, step}}, "
                                 f"got keys {sorted(exps)}")
            start, stop, step = (float(exps[k]) for k in ("start", "stop", "step"))
            if step == 0 or (stop - start) / step < 0:
                raise SweepError(f"{where}.log10: step {step} does not go from {start} to {stop}")
            n = int(round((stop - start) / step)) + 1
            exps = [start + i * step for i in range(n)]
        values = [log10_value(float(e)) for e in _as_list(f"{where}.log10", exps)]
    else:
        values = _as_list(where, spec)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise SweepError(f"{where}: {v!r} is not a step size")
    return values


def _method(label: str, m) -> list[list[str]]:
    where = f"sweep.methods.{label}"
    if not isinstance(m, dict):
        raise SweepError(f"{where} must be a mapping with keys {', '.join(METHOD_KEYS)}")
    unknown = sorted(set(m) - set(METHOD_KEYS))
    if unknown:
        raise SweepError(f"unknown key '{where}.{unknown[0]}'; valid keys: {', '.join(METHOD_KEYS)}")
    fixed = [f"optimizer={m['optimizer']}"] if m.get("optimizer") is not None else []
    sets = m.get("set") or {}
    if not isinstance(sets, dict):
        raise SweepError(f"{where}.set must be a mapping of key: value")
    fixed += [f"{k}={fmt(v)}" for k, v in sets.items()]
    fixed.append(f"method={fmt(label)}")
    out = []
    for lr in _lrs(label, m.get("lr")):
        for extra in _product(f"{where}.product", m.get("product")):
            out.append(fixed + ([f"{LR_KEY}={fmt(lr)}"] if lr is not None else []) + extra)
    return out


def expand(block) -> list[list[str]]:
    """The override lists of every job a sweep block declares (without the command line)."""
    if not isinstance(block, dict):
        raise SweepError(f"sweep must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(block) - set(TOP_KEYS))
    if unknown:
        raise SweepError(f"unknown key 'sweep.{unknown[0]}'; valid keys: {', '.join(TOP_KEYS)}")
    seeds = _as_list("sweep.seed", block.get("seed", 0))
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise SweepError(f"sweep.seed must be non-negative integers, got {s!r}")
    methods = block.get("methods")
    if methods is None:
        per_method = [[]]
    elif isinstance(methods, dict) and methods:
        per_method = [job for label, m in methods.items() for job in _method(str(label), m)]
    else:
        raise SweepError("sweep.methods must be a mapping label: {optimizer, set, lr, product}")
    shared = _product("sweep.product", block.get("product"))
    zipped = _zip(block.get("zip"))
    return [z + p + m + [f"seed={s}"]
            for m in per_method for p in shared for z in zipped for s in seeds]
