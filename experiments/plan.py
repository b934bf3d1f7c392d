"""Expand a command line (with sweeps and a preset's grid) into the list of jobs it launches,
using Hydra's own compose API.

The jobs are the command line's own Cartesian sweep (Hydra's basic rules) crossed with what
the composed preset declares: its ``sweep:`` block (``experiments.sweep``: seeds, product,
zip and per-method step-size grids) or, for hand-written grids, ``hydra.sweeper.params``.
Used for the pre-flight check of ``experiments.train`` (every job of a sweep is validated
before the first one starts), by the suite's sweeper plugin (which launches exactly these
jobs, minus the DONE ones) and by ``scripts.reproduce`` for the figure manifests.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from experiments import runid, sweep, validate


@dataclass
class Job:
    overrides: list
    cfg: dict            # resolved config without the hydra node
    choices: dict        # group -> chosen option
    run_id: str


def _one_line(err: Exception) -> str:
    msg = str(err)
    m = re.search(r"Could not find '([\w/]+)/([^']+)'", msg)
    if m:
        group, choice = m.group(1), m.group(2)
        options = sorted(p.stem for p in (validate.CONF_DIR / group).glob("*.yaml"))
        return f"unknown choice {group}={choice}; valid: {', '.join(options)}"
    m = re.search(r"Could not override '([^']+)'", msg) or re.search(r"Key '([^']+)' is not in struct", msg)
    if m:
        key = m.group(1)
        group = key.split(".")[0]
        return f"unknown key '{key}'; see conf/{group}/ for the valid keys (add new keys to the yaml, not on the command line)"
    m = re.search(r"mismatched input|no viable alternative|extraneous input", msg)
    if m:
        return f"cannot parse the command line: {msg.splitlines()[0]}"
    return msg.strip().splitlines()[0] if msg.strip() else type(err).__name__


def _hydra_only(o: str) -> bool:
    key = o.lstrip("+~").split("=", 1)[0]
    return key.startswith("hydra")


def _key(o: str) -> str:
    return o.split("=", 1)[0].lstrip("+~")


def _representative(parsed) -> list[str]:
    """Overrides a job list can be formed from: a sampled sweep (``interval(a, b)`` of the Optuna
    or Ax sweepers) is validated at its lower end; the sweeper plugin samples the rest."""
    out = []
    for o in parsed:
        if o.is_sweep_override() and not o.is_discrete_sweep():
            out.append(f"{o.get_key_element()}={o.value().start}")
        else:
            out.append(o.input_line)
    return out


def _declared(base) -> list[list[str]]:
    """The job lists a composed config declares: its ``sweep:`` block, else Hydra's
    ``hydra.sweeper.params`` (plain Cartesian), else one job."""
    block = base.get("sweep")
    if block is not None:
        try:
            return sweep.expand(OmegaConf.to_container(block, resolve=False))
        except sweep.SweepError as e:
            raise validate.ConfigError(str(e)) from None
    node = base.hydra.sweeper.get("params")
    params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
    if not params:
        return [[]]
    parser = OverridesParser.create()
    return BasicSweeper.split_arguments(parser.parse_overrides([f"{k}={v}" for k, v in params.items()]), None)[0]


def _merge(cmd: list[str], declared: list[str]) -> list[str]:
    """A job's overrides: the command line's, then the declared ones whose key the command line
    does not set (what a user types wins over the preset)."""
    keys = {_key(o) for o in cmd}
    return list(cmd) + [o for o in declared if _key(o) not in keys]


_CACHE: dict = {}


def expand(argv: list[str], multirun: bool) -> list[Job]:
    """All jobs of ``python -m experiments.train [-m] <argv>``; raises ConfigError.

    The last expansion is cached (keyed by the arguments and the config files' state), so the
    sweeper plugin of the same process reuses the pre-flight's plan instead of composing again."""
    args = [a for a in argv if not _hydra_only(a)]
    key = (tuple(args), multirun, _conf_state())
    if key in _CACHE:
        return _CACHE[key]
    jobs = _expand(args, multirun)
    _CACHE.clear()
    _CACHE[key] = jobs
    return jobs


def _conf_state() -> tuple:
    return tuple((str(f), f.stat().st_mtime_ns) for f in sorted(validate.CONF_DIR.rglob("*.yaml")))


def _is_group(o: str) -> bool:
    """A config-group choice (``optimizer=sgd``, ``task=lstsq``) rather than a value
    (``optimizer.lr=0.1``, ``seed=1``, ``level=2``): Hydra's own distinction, a folder of conf/."""
    return (validate.CONF_DIR / _key(o)).is_dir()


_BASES: dict = {}


def _job_config(parser, ov: list[str]) -> tuple[dict, dict]:
    """The resolved config and group choices of one job, as Hydra's compose gives them, at the
    cost of one composition per distinct set of group choices (a sweep's jobs mostly differ in
    values: seeds, step sizes). Hydra composes the defaults list from the group choices and
    then applies the value overrides to the composed config; the same function
    (``ConfigLoaderImpl._apply_overrides_to_config``) applies them here to a copy of the
    composition. ``tests/test_presets.py`` checks the result against one compose per job."""
    groups = tuple(o for o in ov if _is_group(o))
    if groups not in _BASES:
        c = compose("config", overrides=list(groups), return_hydra_config=True)
        choices = dict(OmegaConf.to_container(c.hydra.runtime.choices))
        with open_dict(c):
            del c["hydra"]
        _BASES[groups] = (c, choices)
    base, choices = _BASES[groups]
    c = copy.deepcopy(base)
    ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides([o for o in ov if not _is_group(o)]), c)
    with open_dict(c):
        c.pop("sweep", None)
    return OmegaConf.to_container(c, resolve=True), dict(choices)


def compose_job(ov: list[str]) -> tuple[dict, dict]:
    """One job composed by Hydra alone (the reference ``_job_config`` is tested against)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(validate.CONF_DIR), version_base="1.3"):
            c = compose("config", overrides=list(ov), return_hydra_config=True)
            choices = dict(OmegaConf.to_container(c.hydra.runtime.choices))
            with open_dict(c):
                del c["hydra"]
                c.pop("sweep", None)
            return OmegaConf.to_container(c, resolve=True), choices
    finally:
        GlobalHydra.instance().clear()


def _expand(args: list[str], multirun: bool) -> list[Job]:
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(args)
    except Exception as e:
        raise validate.ConfigError(_one_line(e)) from None
    if not multirun and any(o.is_sweep_override() for o in parsed):
        raise validate.ConfigError("a sweep (a,b or range) needs multirun: add -m")
    GlobalHydra.instance().clear()
    _BASES.clear()
    try:
        with initialize_config_dir(config_dir=str(validate.CONF_DIR), version_base="1.3"):
            cmd_jobs = BasicSweeper.split_arguments(parser.parse_overrides(_representative(parsed)), None)[0]
            # a preset's sweep depends on the preset: compose each command-line job whose
            # group choices differ (usually one)
            job_lists, bases = [], {}
            for cj in (cmd_jobs if multirun else cmd_jobs[:1]):
                groups = tuple(o for o in cj if "." not in _key(o) and _key(o) != "seed")
                if groups not in bases:
                    base = compose("config", overrides=cj, return_hydra_config=True)
                    bases[groups] = _declared(base) if multirun else [[]]
                job_lists += [_merge(cj, d) for d in bases[groups]]
            jobs = []
            for ov in job_lists:
                cfg, choices = _job_config(parser, ov)
                validate.check(cfg, choices)
                jobs.append(Job(ov, cfg, choices, runid.run_id(cfg)))
            return jobs
    except validate.ConfigError:
        raise
    except Exception as e:
        raise validate.ConfigError(_one_line(e)) from None
    finally:
        GlobalHydra.instance().clear()
        _BASES.clear()
