"""Mirror finished local runs to wandb (the store stays the source of truth).

    python -m scripts.upload_wandb [--results results] [--mode online|offline] [--project optsuite] [--force]

Each run is logged with id = run_id and group = config_id, exactly as ``logger=wandb`` would
have done live, so uploading twice never duplicates a run: a run already mirrored carries a
``.wandb_synced`` marker (its mode) in its folder and is skipped unless ``--force``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import pandas as pd

from experiments.loggers import WandbLogger
from experiments.store import atomic_write_bytes


def upload_run(path: Path, mode: str, project: str, entity: str | None, results: Path) -> None:
    record = json.loads((path / "config.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    metrics = pd.read_parquet(path / "metrics.parquet")
    logger = WandbLogger({"mode": mode, "project": project, "entity": entity}, record, results)
    try:
        for rec in metrics.to_dict("records"):
            clean = {k: v for k, v in rec.items() if not (isinstance(v, float) and math.isnan(v))}
            logger.log(clean, step=int(rec["step"]))
    finally:
        logger.finish({k: v for k, v in summary.items() if not isinstance(v, dict)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--mode", default="online", choices=["online", "offline"])
    ap.add_argument("--project", default="optsuite")
    ap.add_argument("--entity", default=None)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    results = Path(args.results)
    done = uploaded = 0
    for path in sorted((results / "runs").glob("*/DONE")):
        run = path.parent
        marker = run / ".wandb_synced"
        if marker.exists() and not args.force:
            done += 1
            continue
        upload_run(run, args.mode, args.project, args.entity, results)
        atomic_write_bytes(marker, args.mode.encode())
        uploaded += 1
    print(f"uploaded {uploaded} runs, {done} already mirrored")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
