"""Expand a command line (with sweeps and a preset's grid) into the list of jobs it launches,
using Hydra's own compose API and the basic sweeper's expansion rules.

Used for the pre-flight check of ``experiments.train`` (every job of a sweep is validated
before the first one starts) and by ``scripts.reproduce`` to skip a sweep whose runs are all
DONE without starting it.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from experiments import runid, validate


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


def expand(argv: list[str], multirun: bool) -> list[Job]:
    """All jobs of ``python -m experiments.train [-m] <argv>``; raises ConfigError."""
    args = [a for a in argv if not _hydra_only(a)]
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(args)
    except Exception as e:
        raise validate.ConfigError(_one_line(e)) from None
    if not multirun and any(o.is_sweep_override() for o in parsed):
        raise validate.ConfigError("a sweep (a,b or range) needs multirun: add -m")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(validate.CONF_DIR), version_base="1.3"):
            first = BasicSweeper.split_arguments(parsed, None)[0][0]
            base = compose("config", overrides=first, return_hydra_config=True)
            job_lists = [first]
            if multirun:
                node = base.hydra.sweeper.get("params")
                params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
                grid = [f"{k}={v}" for k, v in params.items()] + args
                job_lists = BasicSweeper.split_arguments(parser.parse_overrides(grid), None)[0]
            jobs = []
            composed = {}      # jobs differing only in the seed share one composition (no
            for ov in job_lists:   # config interpolates ${seed}; tests/test_presets.py checks)
                seed = [o.split("=", 1)[1] for o in ov if o.split("=", 1)[0] == "seed"]
                rest = tuple(o for o in ov if o.split("=", 1)[0] != "seed")
                if len(seed) == 1 and rest in composed:
                    cfg, choices = copy.deepcopy(composed[rest][0]), composed[rest][1]
                    cfg["seed"] = int(seed[0]) if seed[0].lstrip("-").isdigit() else seed[0]
                else:
                    c = compose("config", overrides=ov, return_hydra_config=True)
                    choices = dict(OmegaConf.to_container(c.hydra.runtime.choices))
                    with open_dict(c):
                        del c["hydra"]
                    cfg = OmegaConf.to_container(c, resolve=True)
                    composed[rest] = (cfg, choices)
                validate.check(cfg, choices)
                jobs.append(Job(ov, cfg, choices, runid.run_id(cfg)))
            return jobs
    except validate.ConfigError:
        raise
    except Exception as e:
        raise validate.ConfigError(_one_line(e)) from None
    finally:
        GlobalHydra.instance().clear()
