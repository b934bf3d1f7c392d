"""Build results/index.parquet (one row per finished run) and results/curves.parquet (tidy
long format) from the run folders. Idempotent; a corrupt or unfinished run folder is reported
and skipped, never fatal.

    python -m scripts.collect [--results results]

curves columns: run_id, step, epoch, samples, grad_evals, wall_s, split, metric, value, group
(``group`` is the class group for per-group metrics and the sample index for noise norms,
-1 otherwise).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from experiments.store import StoreError, atomic_write_parquet

AXES = ("step", "epoch", "samples", "grad_evals", "wall_s")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def long_format(records: pd.DataFrame, run_id: str) -> pd.DataFrame:
    value_cols = [c for c in records.columns if c not in AXES]
    df = records.melt(id_vars=[c for c in AXES if c in records.columns], value_vars=value_cols,
                      var_name="key", value_name="value").dropna(subset=["value"])
    parts = df["key"].str.split("/", n=2, expand=True)
    df["split"], df["metric"] = parts[0], parts[1]
    df["group"] = pd.to_numeric(parts[2], errors="coerce").fillna(-1).astype("int64") if parts.shape[1] > 2 else -1
    df["run_id"] = run_id
    df["value"] = df["value"].astype("float64")
    return df[["run_id", *[c for c in AXES if c in df.columns], "split", "metric", "value", "group"]]


def read_run(path: Path):
    config = json.loads((path / "config.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    records = pd.read_parquet(path / "metrics.parquet")
    row = {"run_id": config["run_id"], "config_id": config["config_id"], "path": str(path)}
    row.update(_flatten(config["config"]))
    row.update({f"summary.{k}": v for k, v in _flatten(summary).items()})
    return row, long_format(records, config["run_id"])


def collect(results_dir: Path, quiet: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    results_dir = Path(results_dir)
    rows, curves, problems = [], [], []
    runs = sorted((results_dir / "runs").glob("*")) if (results_dir / "runs").exists() else []
    for path in runs:
        if not path.is_dir():
            continue
        if not (path / "DONE").exists():
            problems.append(f"{path.name}: unfinished (no DONE), skipped")
            continue
        try:
            row, curve = read_run(path)
        except Exception as e:  # corrupt files: report, keep going
            problems.append(f"{path.name}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}), skipped")
            continue
        rows.append(row)
        curves.append(curve)
    index = pd.DataFrame(rows)
    for col in index.columns:       # e.g. train.batch_size holds 128 and 'full': store as text
        if index[col].dtype == object and index[col].dropna().map(type).nunique() > 1:
            index[col] = index[col].map(lambda v: v if v is None else str(v))
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["run_id", *AXES, "split", "metric", "value", "group"])
    for name, df in (("index.parquet", index), ("curves.parquet", curves_df)):
        atomic_write_parquet(results_dir / name, df)     # no temp file left, even on a full disk
    if not quiet:
        print(f"collected {len(rows)} runs, {len(curves_df)} curve points into {results_dir}")
        for p in problems:
            print(f"  warning: {p}")
    return index, curves_df, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    args = ap.parse_args(argv)
    try:
        collect(Path(args.results))
    except StoreError as e:             # a full disk: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
