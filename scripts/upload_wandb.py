"""Mirror finished local runs to wandb (the store stays the source of truth).

    python -m scripts.upload_wandb [--results results] [--mode online|offline] [--project optsuite]
                                   [--entity E] [--force]

Each run is logged as ``logger=wandb`` would have done live (id = run_id, group = config_id,
job_type, name, config, define_metric: ``experiments.loggers``), its history rebuilt from the
store's metrics.jsonl (the truth: one continuous history even for a run that was killed and
resumed), so uploading twice never duplicates a run. A mirrored run carries a
``.wandb_synced`` marker (JSON: mode, entity, project, the run's finish time); it is skipped
while the marker matches, and uploaded again when ``--mode``, ``--entity`` or ``--project``
differ, when the run was re-done since, or with ``--force``. A run that fails to upload is
reported in one line and the others go on; the exit status is 1 if any failed.

Online, a run id the server already holds (a live ``logger.mode=online`` mirror) is resumed:
the steps it has are kept and only the missing ones are sent. Upload offline trials with
this script rather than ``wandb sync``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from experiments.loggers import WandbLogger
from experiments.store import RunDir, atomic_write_bytes, one_line

MARKER = ".wandb_synced"


def target(mode: str, project: str, entity: str | None, summary: dict) -> dict:
    return {"mode": mode, "entity": entity, "project": project, "finished": summary.get("finished")}


def read_marker(run: Path) -> dict | None:
    """The marker's JSON; None when absent or unreadable (an older plain-text marker held only
    the mode: the run is uploaded again)."""
    try:
        m = json.loads((run / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def history(run: Path) -> list[dict]:
    """The run's records: metrics.jsonl (the truth), else metrics.parquet."""
    rows = RunDir(run.parent.parent, run.name).read_metrics()
    if not rows and (run / "metrics.parquet").exists():
        import math

        import pandas as pd
        rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
                for r in pd.read_parquet(run / "metrics.parquet").to_dict("records")]
    if not rows:
        raise ValueError("no metrics (metrics.jsonl and metrics.parquet are empty or missing)")
    return rows


def upload_run(path: Path, mode: str, project: str, entity: str | None, results: Path,
               record: dict | None = None, summary: dict | None = None) -> None:
    record = record if record is not None else json.loads((path / "config.json").read_text())
    summary = summary if summary is not None else json.loads((path / "summary.json").read_text())
    rows = history(path)                      # read everything before a wandb run is opened
    logger = WandbLogger({"mode": mode, "project": project, "entity": entity}, record, results, replay=False)
    ok = False
    try:
        for rec in sorted(rows, key=lambda r: int(r["step"])):
            logger.log(rec, step=int(rec["step"]))
        ok = True
    finally:
        logger.finish(summary if ok else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--mode", default="online", choices=["online", "offline"])
    ap.add_argument("--project", default="optsuite")
    ap.add_argument("--entity", default=None)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("WANDB_SILENT", "true")
    results = Path(args.results)
    done = uploaded = 0
    failed = []
    for path in sorted((results / "runs").glob("*/DONE")):
        run = path.parent
        try:
            record = json.loads((run / "config.json").read_text())
            summary = json.loads((run / "summary.json").read_text())
            want = target(args.mode, args.project, args.entity, summary)
            if read_marker(run) == want and not args.force:
                done += 1
                continue
            upload_run(run, args.mode, args.project, args.entity, results, record, summary)
            atomic_write_bytes(run / MARKER, json.dumps(want, indent=1).encode())
            uploaded += 1
        except Exception as e:            # one bad run is reported; the others are uploaded
            failed.append(run.name)
            print(f"failed {run.name}: {one_line(e)}", file=sys.stderr)
    print(f"uploaded {uploaded} runs, {done} already mirrored" + (f", {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
