"""Start-up validation: every problem is reported as one line naming the key, what is wrong
and what is valid, before any work is done.

The yaml file of each chosen option is the schema: a key it does not list is unknown, and a
value must have the type of the yaml's default (ints are accepted for float defaults; a
``null`` default accepts anything). On top of that, ``RULES`` rejects impossible values.
"""
from __future__ import annotations

import ast
import functools
import math
import re
from pathlib import Path

from omegaconf import OmegaConf

from experiments import constants, schedules

GROUPS = ("dataset", "model", "optimizer", "train", "logger")
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class ConfigError(ValueError):
    """A bad configuration; str(err) is the one line shown to the user."""


def _positive(v):
    return v > 0


def _nonneg(v):
    return v >= 0


def _unit_open(v):
    return 0 < v < 1


def _unit_halfopen(v):
    return 0 <= v < 1


def _betas(v):
    return isinstance(v, list) and len(v) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v)


# key suffix (group.key or bare key within a group) -> (predicate, what is required)
RULES = {
    "optimizer.lr": (_positive, "> 0"),
    "optimizer.eta_max": (_positive, "> 0"),
    "optimizer.max_eta": (_positive, "> 0"),
    "optimizer.min_eta": (_positive, "> 0"),
    "optimizer.init_step_size": (_positive, "> 0"),
    "optimizer.c": (_positive, "> 0"),
    "optimizer.c_p": (_positive, "> 0"),
    "optimizer.momentum": (_unit_halfopen, "in [0, 1)"),
    "optimizer.beta_b": (_unit_open, "in (0, 1)"),
    "optimizer.delta": (_unit_open, "in (0, 1)"),
    "optimizer.weight_decay": (_nonneg, ">= 0"),
    "optimizer.betas": (_betas, "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    "optimizer.beta1": (_unit_halfopen, "in [0, 1)"),
    "optimizer.beta2": (_unit_halfopen, "in [0, 1)"),
    "optimizer.mu": (_positive, "> 0"),
    "optimizer.L": (_positive, "> 0"),
    "optimizer.rho": (_positive, "> 0"),
    "dataset.n": (_positive, "> 0"),
    "dataset.d": (_positive, "> 0"),
    "dataset.d_over_n": (_positive, "> 0 (d/n is the over-parameterization ratio)"),
    "dataset.sigma": (_nonneg, ">= 0"),
    "dataset.kappa": (lambda v: v >= 1, ">= 1"),
    "dataset.subset": (_positive, "> 0 or null"),
    "dataset.seq_len": (_positive, "> 0"),
    "model.width": (_positive, "> 0"),
    "train.epochs": (_positive, "> 0"),
    "train.eval_every": (_positive, "> 0"),
    "train.eval_batch_size": (_positive, "> 0"),
    "train.divergence_factor": (lambda v: v > 1, "> 1"),
    "train.class_groups": (_nonneg, ">= 0"),
    "train.noise_samples": (_nonneg, ">= 0"),
    "train.noise_batch_size": (_positive, "> 0"),
    "train.eval_per_decade": (_nonneg, ">= 0"),
    "train.stop_below": (_positive, "> 0"),
}
# Keys of each schedule beside its name (experiments/schedules.py).
SCHEDULE_KEYS = {"constant": (), "inverse": ("decay_steps",), "inverse_sqrt": ("decay_steps",),
                 "cosine": ("decay_steps",)}
CHOICES = {
    "logger.mode": ("online", "offline", "disabled"),
    "optimizer.schedule.name": schedules.NAMES,
    "train.sampling": ("reshuffle", "with_replacement"),
}
STRINGS_ALLOWED = {"train.batch_size": ("full",)}
# Keys whose default is an int but whose meaning allows fractions (half an epoch).
NUMBERS = {"train.epochs"}


def _type_name(v):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(v), type(v).__name__)


def _check_value(path: str, value, default, group: str):
    if default is None or value is None:              # null: unset / computed, any type
        return
    if isinstance(value, str) and value in STRINGS_ALLOWED.get(path, ()):
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int) and path not in NUMBERS:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok and isinstance(value, str) and group == "optimizer":
            try:
                constants.check_expression(value)
                return                                    # e.g. lr: 1/L_max, checked at run time
            except constants.ExpressionError as e:
                raise ConfigError(f"{path}: {e}") from None
    elif isinstance(default, str):
        ok = isinstance(value, str) or (group == "optimizer" and isinstance(value, (int, float)))
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        ok = True
    if not ok:
        allowed = STRINGS_ALLOWED.get(path)
        extra = f" or one of {', '.join(allowed)}" if allowed else ""
        raise ConfigError(f"{path} must be {_type_name(default)}{extra}, got {value!r}")


def _walk(group: str, cfg: dict, schema: dict, prefix: str, choice: str):
    for key, value in cfg.items():
        path = f"{prefix}.{key}"
        if key not in schema:
            valid = ", ".join(sorted(schema))
            raise ConfigError(f"unknown key '{path}' for {group}={choice}; valid keys: {valid}")
        default = schema[key]
        if isinstance(default, dict) and isinstance(value, dict):
            if group == "optimizer" and key == "schedule":
                _check_schedule(path, value)
                continue
            _walk(group, value, default, path, choice)
        else:
            _check_value(path, value, default, group)


def _check_schedule(path, sched):
    name = sched.get("name", "constant")
    if name not in schedules.NAMES:
        raise ConfigError(f"{path}.name='{name}' is not a schedule; valid: {', '.join(schedules.NAMES)}")
    valid = ("name", *SCHEDULE_KEYS.get(name, ()))
    for key in sched:
        if key not in valid:
            raise ConfigError(f"unknown key '{path}.{key}' for schedule '{name}'; valid keys: {', '.join(valid)}")
    if name != "constant" and not (isinstance(sched.get("decay_steps"), (int, float)) and sched["decay_steps"] > 0):
        raise ConfigError(f"{path}.decay_steps must be a number > 0 for schedule '{name}'")


def check_values(group: str, values: dict) -> None:
    """The value rules of one group: finite numbers, RULES, constant expressions such as
    ``lr: 1/0``. Called at start-up and again on the optimizer once the data's constants have
    turned ``lr: 1/L_max`` into a number (``check_values("optimizer", resolved)``)."""
    for key, value in values.items():
        path = f"{group}.{key}"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not math.isfinite(value):
            raise ConfigError(f"{path}={value} is impossible: it must be a finite number")
        if isinstance(value, str) and group == "optimizer" and _is_constant_expression(value):
            try:
                value = constants.evaluate(value, {})
            except constants.ExpressionError as e:
                raise ConfigError(f"{path}: {e}") from None
        if path in RULES and value is not None and not isinstance(value, (str, bool)):
            # numbers, and lists for the rules written for lists (betas); strings are problem-
            # constant expressions, checked again once the data has turned them into numbers
            pred, need = RULES[path]
            if not pred(value):
                raise ConfigError(f"{path}={value} is impossible: it must be {need}")


def _is_constant_expression(text: str) -> bool:
    """An expression without names (``1/0``, ``2**-3``): it can be checked before any data."""
    try:
        constants.check_expression(text)
    except constants.ExpressionError:
        return False
    return not any(isinstance(node, ast.Name) for node in ast.walk(ast.parse(text, mode="eval")))


def _check_rules(cfg: dict):
    for group in GROUPS:
        check_values(group, cfg.get(group, {}))
    for path, valid in CHOICES.items():
        node = cfg
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and node not in valid:
            raise ConfigError(f"{path}='{node}' is not valid; valid: {', '.join(valid)}")
    bs = cfg["train"]["batch_size"]
    if not (bs == "full" or (isinstance(bs, int) and bs > 0)):
        raise ConfigError(f"train.batch_size must be a positive integer or 'full', got {bs!r}")
    if cfg["train"].get("sampling") == "with_replacement":
        import optimizers                 # only here: a slot optimizer draws its own batches
        cls = optimizers.REGISTRY.get(cfg["optimizer"].get("name"))
        if getattr(cls, "needs_slot", False):
            raise ConfigError(f"train.sampling=with_replacement does not apply to {cls.__name__} (it draws its fixed "
                              "batches with replacement already); leave train.sampling=reshuffle")
    dev = cfg.get("device", "auto")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(dev)):
        raise ConfigError(f"device='{dev}' is not valid; valid: auto, cpu, cuda, cuda:N, mps")
    if str(dev).startswith("cuda"):
        import torch
        n = torch.cuda.device_count()
        index = int(dev.split(":")[1]) if ":" in str(dev) else 0
        if index >= n:
            have = f"this machine has {n} CUDA device(s)" if n else "CUDA is not available here"
            raise ConfigError(f"device={dev} but {have}; use device=auto (GPU when present) or device=cpu")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool) or cfg["seed"] < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.get('seed')!r}")


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@functools.lru_cache(maxsize=None)
def _schema(path: Path, mtime_ns: int) -> dict:
    """The keys an option accepts: its own, merged over those of the options its defaults list
    extends (Hydra's ``defaults: [sgd]`` + ``lr: ...`` pattern composes to the base's keys)."""
    own = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    schema = {}
    for entry in own.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_":
            base = (CONF_DIR / entry.lstrip("/")) if entry.startswith("/") else path.parent / entry
            base = base.with_suffix(".yaml")
            if base.exists():
                schema = _merge(schema, _schema(base, base.stat().st_mtime_ns))
    return _merge(schema, {k: v for k, v in own.items() if k != "defaults"})


def _option_schema(conf_dir: Path, group: str, choice: str, name) -> dict | None:
    f = conf_dir / group / f"{choice}.yaml"
    if not f.exists():
        return None
    schema = _schema(f, f.stat().st_mtime_ns)
    named = conf_dir / group / f"{name}.yaml"          # a variant also accepts its class's keys
    if isinstance(name, str) and named != f and named.exists():
        schema = _merge(_schema(named, named.stat().st_mtime_ns), schema)
    return schema


def check(cfg: dict, choices: dict, conf_dir: Path = CONF_DIR) -> None:
    """Validate a resolved config (plain dict) against the yaml of each chosen option."""
    for group in GROUPS:
        choice = choices.get(group)
        if choice is None:
            continue
        schema = _option_schema(conf_dir, group, choice, cfg[group].get("name"))
        if schema is None:
            continue
        _walk(group, cfg[group], schema, group, choice)
    _check_rules(cfg)
    if cfg["optimizer"].get("name") is None:
        raise ConfigError(f"optimizer={choices.get('optimizer')} has no 'name' key")
