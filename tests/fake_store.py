"""Build a small synthetic result store (index, curves, manifest) for figure tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_store(root: Path, figure: str, runs: list[dict]) -> Path:
    """runs: dicts with run_id, method (default: the optimizer choice), choices {group: choice},
    columns {index column: value} and
    curves {(split, metric, group): (steps, values)} (x axes derived from the steps)."""
    rows, curves, jobs = [], [], []
    for r in runs:
        rows.append({"run_id": r["run_id"], "config_id": r["run_id"], **r["columns"]})
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
    (root / "manifests").mkdir(exist_ok=True)
    (root / "manifests" / f"{figure}.json").write_text(json.dumps({"figure": figure, "profile": "quick",
                                                                     "jobs": jobs}))
    return root
