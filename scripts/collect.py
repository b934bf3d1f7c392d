"""Build results/index.parquet (one row per finished run) and results/curves.parquet (tidy
long format) from the run folders. Idempotent and incremental: only run folders that are new or
changed since the last collect are read (results/.collect/ keeps what was read; ``--full``
reads everything); a corrupt or unfinished run folder is reported and skipped, never fatal.

    python -m scripts.collect [--results results] [--full]

curves columns: run_id, step, epoch, samples, grad_evals, wall_s, split, metric, value, group
(``group`` is the class group for per-group metrics and the sample index for noise norms,
-1 otherwise).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import pandas as pd

from experiments.store import StoreError, atomic_write_bytes, atomic_write_json, atomic_write_parquet

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
    try:    # other figures whose sweeps share this run: {figure: method}, as JSON text
        row["also_figures"] = (path / "figures.json").read_text()
    except OSError:
        row["also_figures"] = None
    return row, long_format(records, config["run_id"])


# The incremental state (results/.collect/): per run folder the stamp of the files it was read
# from and its problem, if any (state.json), and its index row (rows.json). A run whose stamp is
# unchanged is not read again: its row comes from rows.json and its curve from the current
# curves.parquet. Bump FORMAT when the layout of the outputs changes; an edit of this file, a
# missing or rewritten output or a corrupt state rebuilds everything.
FORMAT = 3
STATE_DIR = ".collect"
_STAMPED = ("DONE", "config.json", "summary.json", "metrics.parquet", "figures.json")
_INT_AXES = ("step", "samples", "grad_evals")


def _stamp(path: Path):
    """(inode, mtime_ns, size) of the files a run is read from; None without DONE."""
    out = []
    for name in _STAMPED:
        try:
            st = os.stat(path / name)
        except OSError:
            if name == "DONE":
                return None
            out.append(None)
            continue
        out.append([st.st_ino, st.st_mtime_ns, st.st_size])
    return out


def _file_stamp(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def _code() -> str:
    return hashlib.sha256(Path(__file__).read_bytes() + str(FORMAT).encode()).hexdigest()[:16]


_OUTPUTS = ("index.parquet", "curves.parquet", f"{STATE_DIR}/rows.json")


def _load_state(results_dir: Path):
    """The state of the last collect when it still describes the outputs on disk, else None."""
    try:
        state = json.loads((results_dir / STATE_DIR / "state.json").read_text())
        if (state.get("code") != _code() or state.get("root") != str(results_dir)   # rows hold the path
                or state.get("outputs") != [_file_stamp(results_dir / f) for f in _OUTPUTS]):
            return None
        return state
    except (OSError, ValueError, AttributeError):
        return None


def _normalise_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes whatever mix of runs built the table (a full and an incremental collect
    give the same table): counts int64 unless a run lacks them, the rest float64."""
    for col in _INT_AXES:
        if col in df.columns:
            df[col] = df[col].astype("int64" if not df[col].isna().any() else "float64")
    for col in ("epoch", "wall_s", "value"):
        if col in df.columns:
            df[col] = df[col].astype("float64")
    if "group" in df.columns:
        df["group"] = df["group"].astype("int64")
    return df[["run_id", *[c for c in AXES if c in df.columns], "split", "metric", "value", "group"]]


def collect(results_dir: Path, quiet: bool = False, *, full: bool = False,
            load: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Write index.parquet and curves.parquet; returns (index, curves, problems).

    Incremental: only run folders that are new or whose files changed since the last collect
    are read (``full=True`` reads every one); when nothing changed nothing is written.
    ``load=False`` returns None for the tables when nothing changed (a caller that only needs
    the files on disk saves reading them back)."""
    results_dir = Path(results_dir)
    if not full:
        try:
            return _collect(results_dir, quiet, _load_state(results_dir), load)
        except (OSError, ValueError, KeyError, TypeError):   # the state does not fit the files
            pass
    return _collect(results_dir, quiet, None, load)


def _collect(results_dir: Path, quiet: bool, state, load: bool):
    known = state["runs"] if state else {}
    rows_cache = None
    runs = sorted(p for p in (results_dir / "runs").iterdir() if p.is_dir()) \
        if (results_dir / "runs").exists() else []
    problems, entries, todo = [], {}, []
    for path in runs:
        st = _stamp(path)
        if st is None:
            problems.append(f"{path.name}: unfinished (no DONE), skipped")
            continue
        old = known.get(path.name)
        if old is not None and old["stamp"] == st:
            entries[path.name] = old
            if old.get("problem"):
                problems.append(old["problem"])
        else:
            todo.append(path)
            entries[path.name] = {"stamp": st}
    changed = state is None or bool(todo) or set(known) != set(entries)
    if not changed:
        if not quiet:
            print(f"collected {state['n_runs']} runs, {state['n_points']} curve points into {results_dir} "
                  f"(nothing new)")
            for p in problems:
                print(f"  warning: {p}")
        if not load:
            return None, None, problems
        return pd.read_parquet(results_dir / "index.parquet"), pd.read_parquet(results_dir / "curves.parquet"), problems

    new = {}
    for path in todo:
        try:
            new[path.name] = read_run(path)
        except Exception as e:  # corrupt files: report, keep going
            msg = f"{path.name}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}), skipped"
            entries[path.name]["problem"] = msg
            problems.append(msg)
    problems.sort(key=lambda p: p.split(":", 1)[0])     # folder order, as a full rebuild gives
    reuse = [name for name, e in entries.items() if name not in new and not e.get("problem")]
    old_curves = {}
    if reuse:
        rows_cache = json.loads((results_dir / STATE_DIR / "rows.json").read_text())
        cur = pd.read_parquet(results_dir / "curves.parquet")
        wanted = {rows_cache[name]["run_id"] for name in reuse}
        for rid, part in cur.groupby("run_id", sort=False):
            if rid in wanted:
                old_curves[rid] = part
    rows, curves, row_by_name = [], [], {}
    for name, e in entries.items():
        if e.get("problem"):
            continue
        if name in new:
            row, curve = new[name]
        else:
            row = rows_cache[name]
            curve = old_curves.get(row["run_id"])
        row_by_name[name] = row
        rows.append(row)
        if curve is not None:
            curves.append(curve)
    index = pd.DataFrame(rows)
    for col in index.columns:       # e.g. train.batch_size holds 128 and 'full': store as text
        if index[col].dtype == object and index[col].dropna().map(type).nunique() > 1:
            index[col] = index[col].map(lambda v: v if v is None else str(v))
    for col in index.columns:       # a missing value of a text column is None, as index.parquet reads back
        if index[col].dtype == object and index[col].isna().any():
            index[col] = index[col].where(index[col].notna(), None)
    curves_df = _normalise_curves(pd.concat(curves, ignore_index=True)) if curves else pd.DataFrame(
        columns=["run_id", *AXES, "split", "metric", "value", "group"])
    for name, df in (("index.parquet", index), ("curves.parquet", curves_df)):
        atomic_write_parquet(results_dir / name, df)     # no temp file left, even on a full disk
    atomic_write_bytes(results_dir / STATE_DIR / "rows.json",
                       json.dumps(row_by_name, separators=(",", ":"), default=str).encode())
    atomic_write_json(results_dir / STATE_DIR / "state.json", {
        "format": FORMAT, "code": _code(), "root": str(results_dir), "n_runs": len(rows), "n_points": len(curves_df),
        "outputs": [_file_stamp(results_dir / f) for f in _OUTPUTS], "runs": entries})
    if not quiet:
        print(f"collected {len(rows)} runs ({len(new)} read), {len(curves_df)} curve points into {results_dir}")
        for p in problems:
            print(f"  warning: {p}")
    return index, curves_df, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--full", action="store_true", help="read every run folder again (default: only new or changed ones)")
    args = ap.parse_args(argv)
    try:
        collect(Path(args.results), full=args.full, load=False)
    except StoreError as e:             # a full disk: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
