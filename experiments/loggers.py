"""Loggers mirror the result store; they are never the source of truth.

``logger=none``: nothing. ``logger=wandb``: one wandb run per store run, following wandb's
conventions so that dashboards work without hand editing:

* id = run_id (re-logging the same run resumes it instead of duplicating it), group =
  config_id (the seeds of one setting together), job_type = the figure (or ``train``), tags =
  figure, method, optimizer, dataset, task;
* a run name that tells step-size variants apart: ``<method>-lr<lr>-<task|dataset>[-L<level>]-s<seed>``;
* config = the resolved config plus ``method``, ``task``, ``level``, ``config_id``, ``run_id``
  and the Hydra group ``choices`` (from the run record when it has them, else the registry
  names of dataset, model and optimizer);
* ``define_metric``: every metric is plotted against ``grad_evals`` (gradient evaluations);
  ``epoch``, ``samples`` and ``wall_s`` are step metrics too (pick them as x-axis in a panel);
* gradient-noise samples (``noise/<name>/<k>`` in the store) go out as one ``wandb.Histogram``
  per evaluation (``noise/<name>``) instead of one scalar series per sample;
* the summary's nested values are flattened: ``final/train/loss``, ``data_info/L``, ...

History continuity: the store (metrics.jsonl) is the truth. A resumed run (killed, then
restarted from its checkpoint) logs into the same wandb id with ``resume="allow"``; steps the
wandb run already holds (``run.starting_step`` online) are skipped, and before its first
record a resumed attempt replays the store's earlier records, so each attempt's offline
folder holds the whole history from step 0 (syncing either, or both, gives one continuous
history). ``python -m scripts.upload_wandb`` rebuilds a run's history from the store.

``mode`` is online | offline | disabled; offline runs land in ``<results>/wandb`` and are
uploaded later with ``python -m scripts.upload_wandb`` (prefer it to ``wandb sync``).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

STEP_METRICS = ("grad_evals", "epoch", "samples", "wall_s")   # x-axes; grad_evals is the default
DEFAULT_X = "grad_evals"
_NOISE = re.compile(r"^(noise/.+)/(\d+)$")                    # noise/grad_noise_norm/17


class NoLogger:
    def log(self, record: dict, step: int) -> None:
        pass

    def finish(self, summary: dict | None = None) -> None:
        pass


# ---- what a run looks like in wandb (pure functions: tested without wandb) ---------------------
def run_choices(run_record: dict) -> dict:
    """Hydra group -> chosen option. The record's ``choices`` (written by experiments.train)
    win; without them (older runs, direct ``execute`` calls) the registry names stand in."""
    c = run_record["config"]
    out = {g: c[g]["name"] for g in ("dataset", "model", "optimizer")
           if isinstance(c.get(g), dict) and c[g].get("name") is not None}
    out.update({k: v for k, v in (run_record.get("choices") or {}).items()
                if v is not None and not str(k).startswith("hydra/")})
    if out.get("experiment") is None:
        out.pop("grid", None)       # 'None_quick': the optional grid of no preset, not a choice
    return out


def _short(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:g}"
    return re.sub(r"\s+", "", str(v))


def run_name(run_record: dict) -> str:
    """``<method>-lr<lr>-<task or dataset>[-L<level>]-s<seed>``: step-size variants and levels
    of one method get different names (the id stays the unique key)."""
    c = run_record["config"]
    ch = run_choices(run_record)
    parts = [str(c.get("method") or ch.get("optimizer") or c["optimizer"]["name"])]
    lr = (c.get("optimizer") or {}).get("lr")
    if lr is not None:
        parts.append(f"lr{_short(lr)}")
    parts.append(str(ch.get("task") or c["dataset"]["name"]))
    if c.get("level") is not None:
        parts.append(f"L{_short(c['level'])}")
    parts.append(f"s{c.get('seed')}")
    return "-".join(parts)


def run_config(run_record: dict) -> dict:
    c = run_record["config"]
    ch = run_choices(run_record)
    out = dict(c)
    out.update({"method": c.get("method") or ch.get("optimizer") or c["optimizer"]["name"],
                "task": ch.get("task"), "level": c.get("level"), "figure": c.get("figure"),
                "choices": ch, "config_id": run_record.get("config_id"), "run_id": run_record.get("run_id")})
    for k in ("key_version", "code", "environment"):
        if run_record.get(k) is not None:
            out[k] = run_record[k]
    return out


def run_tags(run_record: dict) -> list[str]:
    c = run_record["config"]
    ch = run_choices(run_record)
    tags = []
    for t in (c.get("figure"), c.get("method"), c["optimizer"]["name"], c["dataset"]["name"], ch.get("task")):
        if t and str(t) not in tags:
            tags.append(str(t)[:64])                  # wandb limits a tag to 64 characters
    return tags


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested summary -> flat keys (``final/train/loss``, ``data_info/L``). Scalars and short
    lists of numbers are kept; None and other values are dropped."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        elif (isinstance(v, (list, tuple)) and len(v) <= 16
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            out[key] = list(v)
    return out


def split_noise(record: dict) -> tuple[dict, dict]:
    """(scalars without 'step', {noise/<name>: [samples in index order]})."""
    scalars, noise = {}, {}
    for k, v in record.items():
        if k == "step":
            continue
        m = _NOISE.match(k)
        if m:
            noise.setdefault(m.group(1), []).append((int(m.group(2)), v))
        else:
            scalars[k] = v
    return scalars, {k: [v for _, v in sorted(vs)] for k, vs in noise.items()}


class WandbLogger:
    """One wandb run mirroring one store run. ``replay``: before the first record of an attempt
    that starts past step 0 (a resume), log the store's earlier records, so this attempt's
    history is whole. The uploader logs every record itself and passes ``replay=False``."""

    def __init__(self, cfg: dict, run_record: dict, results_dir, *, replay: bool = True):
        import wandb

        self._wandb = wandb
        self._results = Path(results_dir)
        self._run_id = run_record["run_id"]
        self._replay = replay
        self._started = False
        wdir = Path(cfg.get("dir") or self._results / "wandb")
        wdir.mkdir(parents=True, exist_ok=True)
        c = run_record["config"]
        self.run = wandb.init(project=cfg.get("project") or "optsuite", entity=cfg.get("entity"),
                              mode=cfg.get("mode", "offline"), dir=str(wdir), id=self._run_id,
                              group=run_record.get("config_id"), job_type=str(c.get("figure") or "train"),
                              tags=run_tags(run_record), config=run_config(run_record), name=run_name(run_record),
                              resume="allow", reinit="finish_previous")
        # steps the wandb run already holds (an online run resumed on the server); 0 offline
        self._floor = int(getattr(self.run, "starting_step", 0) or 0)
        for m in STEP_METRICS:
            self.run.define_metric(m)
        self.run.define_metric("*", step_metric=DEFAULT_X)

    def _send(self, record: dict, step: int) -> None:
        if step < self._floor:                      # already in the mirror: a resumed run
            return
        scalars, noise = split_noise(record)
        for name, values in noise.items():
            finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            if finite:
                scalars[name] = self._wandb.Histogram(finite)
        self.run.log(scalars, step=step)

    def log(self, record: dict, step: int) -> None:
        if not self._started:
            self._started = True
            if self._replay and step > self._floor:
                for earlier in self._history(before=step):
                    self._send(earlier, int(earlier["step"]))
        self._send(record, step)

    def _history(self, before: int) -> list[dict]:
        from experiments.store import RunDir, StoreError
        try:
            rows = RunDir(self._results, self._run_id).read_metrics()
        except (OSError, StoreError):
            return []                                # a mirror never stops a run
        return [r for r in rows if isinstance(r.get("step"), int) and self._floor <= r["step"] < before]

    def finish(self, summary: dict | None = None) -> None:
        if summary:
            self.run.summary.update(flatten(summary))
        self.run.finish(exit_code=0 if summary else 1)


def build(cfg: dict, run_record: dict, results_dir):
    name = cfg.get("name", "none")
    if name == "none":
        return NoLogger()
    if name == "wandb":
        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(cfg, run_record, results_dir)
    raise ValueError(f"unknown logger '{name}'; valid: none, wandb")
