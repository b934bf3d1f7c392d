"""Build a small synthetic result store (index, curves, manifest) for figure tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_store(root: Path, figure: str, runs: list[dict], manifest: bool = True, profile: str = "quick") -> Path:
    """runs: dicts with run_id, method (default: the optimizer choice), choices {group: choice},
    columns {index column: value} and
    curves {(split, metric, group): (steps, values)} (x axes derived from the steps).
    Each index row is tagged as a run records itself (``figure``, ``method``, ``profile.name``;
    ``columns`` may override them). ``manifest``: write manifests/<figure>.json; without it the
    figure's runs are selected by query, and runs/<id>/config.json holds each run's choices and
    ``environment`` as the trainer records them (only then: ``scripts.claims.main`` re-collects a
    store that has runs/, and these folders have no DONE)."""
    rows, curves, jobs = [], [], []
    for r in runs:
        tags = {"figure": figure, "method": r.get("method", r["choices"].get("optimizer")), "profile.name": profile}
        rows.append({"run_id": r["run_id"], "config_id": r["run_id"], **tags, **r["columns"]})
        if not manifest:
            run_dir = root / "runs" / r["run_id"]
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps({"run_id": r["run_id"], "choices": r["choices"],
                                                             "environment": r.get("environment", {})}))
        jobs.append({"run_id": r["run_id"], "overrides": [], "choices": r["choices"],
                     "method": r.get("method", r["choices"].get("optimizer"))})
        n = r.get("n", 100)
        bs = r.get("batch_size", 1)
        for (split, metric, group), (steps, values) in r["curves"].items():
            steps = np.asarray(steps)
            curves.append(pd.DataFrame({"run_id": r["run_id"], "step": steps, "epoch": steps * bs / n,
                                        "samples": steps * bs, "grad_evals": steps * bs, "wall_s": steps * 1e-3,
                                        "split": split, "metric": metric, "value": np.asarray(values, float),
                                        "group": group}))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "index.parquet")
    pd.concat(curves, ignore_index=True).to_parquet(root / "curves.parquet")
    if manifest:
        (root / "manifests").mkdir(exist_ok=True)
        (root / "manifests" / f"{figure}.json").write_text(json.dumps({"figure": figure, "profile": profile,
                                                                         "jobs": jobs}))
    return root
