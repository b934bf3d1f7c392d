"""Loggers mirror the result store; they are never the source of truth.

``logger=none``: nothing. ``logger=wandb``: one wandb run per store run, with
id = run_id (so re-logging the same run resumes it instead of duplicating it),
group = config_id (seeds of one setting together), tags = figure, optimizer, dataset.
``mode`` is online | offline | disabled; offline runs land in ``<results>/wandb`` and can be
uploaded later with ``wandb sync`` or ``python -m scripts.upload_wandb``.
"""
from __future__ import annotations

import os
from pathlib import Path


class NoLogger:
    def log(self, record: dict, step: int) -> None:
        pass

    def finish(self, summary: dict | None = None) -> None:
        pass


class WandbLogger:
    def __init__(self, cfg: dict, run_record: dict, results_dir):
        import wandb

        self._wandb = wandb
        wdir = Path(cfg.get("dir") or Path(results_dir) / "wandb")
        wdir.mkdir(parents=True, exist_ok=True)
        c = run_record["config"]
        tags = [t for t in (c.get("figure"), c["optimizer"]["name"], c["dataset"]["name"]) if t]
        self.run = wandb.init(project=cfg.get("project") or "optsuite", entity=cfg.get("entity"),
                              mode=cfg.get("mode", "offline"), dir=str(wdir), id=run_record["run_id"],
                              group=run_record["config_id"], tags=tags, config=c, resume="allow",
                              name=f"{c['optimizer']['name']}-{c['dataset']['name']}-s{c['seed']}",
                              reinit=True)

    def log(self, record: dict, step: int) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=step)

    def finish(self, summary: dict | None = None) -> None:
        if summary:
            for k, v in summary.items():
                if isinstance(v, (int, float, str)):
                    self.run.summary[k] = v
        self.run.finish()


def build(cfg: dict, run_record: dict, results_dir):
    name = cfg.get("name", "none")
    if name == "none":
        return NoLogger()
    if name == "wandb":
        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(cfg, run_record, results_dir)
    raise ValueError(f"unknown logger '{name}'; valid: none, wandb")
