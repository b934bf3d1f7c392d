"""Plot every figure and run its claim check against the numbers in the store.

    python -m scripts.claims [--results results] [--figures a,b] [--no-plot]

A figure's runs are those of its manifest (results/manifests/<figure>.json) when there is one,
else the runs recorded with its figure tag (``Store.runs``: a hand-typed or SLURM sweep of
``experiment=<figure>`` needs no manifest).
Collects the store first (``--no-collect`` uses the index as it is), then prints the claims
table, writes results/claims.json and results/claims.md, and exits 1 when a claim FAILs, a
figure is INCOMPLETE (its manifest lists runs that the index lacks: missing, unfinished or
unreadable; its plot is still drawn from the runs there are, its claims are never PASS) or a
figure's files cannot be read (ERROR, one line; the other figures still run).
An INCONCLUSIVE claim (one the profile cannot show) does not fail the command but is listed
with its numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from experiments.store import one_line
from scripts.figures import available, module
from scripts.figures.common import Store

FAILING = ("FAIL", "ERROR", "INCOMPLETE")     # statuses that make the command exit 1
FINISHED = ("completed", "diverged", "reached_target")
SHOW_MISSING = 5                               # run ids named in an INCOMPLETE row


def missing_runs(store: Store, man: dict) -> tuple[int, list[str]]:
    """(runs the manifest lists, those of them the store cannot give: not in the index
    (collect leaves out unfinished and unreadable folders), not finished, or without curve)."""
    wanted = list(dict.fromkeys(str(j["run_id"]) for j in man["jobs"]))
    index = store.index
    ok = index[index["summary.status"].isin(FINISHED)] if "summary.status" in index.columns else index
    have = set(ok.run_id.astype(str)) & set(store.curves.run_id.astype(str))
    return len(wanted), [r for r in wanted if r not in have]


def incomplete_row(fig: str, n: int, missing: list[str]) -> dict:
    ids = ", ".join(missing[:SHOW_MISSING]) + (", ..." if len(missing) > SHOW_MISSING else "")
    return {"figure": fig, "claim": "every run of the manifest is in the store",
            "measured": f"{len(missing)} of {n} runs missing, unfinished or unreadable: {ids} "
                        f"(re-run the figure's sweep, then collect)", "status": "INCOMPLETE"}


def _plot_key(store, fig, mod) -> str:
    """What a figure's plot depends on: its module and the shared plotting code, the index rows
    of its runs (ids, configs, summaries, finish times) and the size of the curves table."""
    import hashlib
    from scripts.figures import common
    h = hashlib.sha256()
    for src in (mod.__file__, common.__file__):
        h.update(Path(src).read_bytes())
    h.update(store.runs(fig).to_json(default_handler=str).encode())
    h.update(str(len(store.curves)).encode())
    return h.hexdigest()


def _plot_if_changed(store, fig, mod, out_dir: Path) -> None:
    """Re-plot only when the figure's inputs changed: saving 14 figures as PNG and PDF is most of
    the time of a re-run that has nothing new (measured: about half of 19 s)."""
    from experiments.store import atomic_write_bytes
    if getattr(mod, "__file__", None) is None:      # not a module file (tests' stand-ins): no cache
        mod.plot(store, out_dir)
        return
    key, stamp = _plot_key(store, fig, mod), out_dir / f".{fig}.plotkey"
    if (out_dir / f"{fig}.png").exists() and stamp.exists() and stamp.read_text() == key:
        return
    mod.plot(store, out_dir)
    atomic_write_bytes(stamp, key.encode())


def run_checks(results, figs, plot: bool = True) -> list[dict]:
    store = Store(results)
    rows = []
    for fig in figs:
        try:
            mod = module(fig)
        except ModuleNotFoundError as e:
            rows.append({"figure": fig, "claim": "figure implemented", "measured": str(e), "status": "MISSING"})
            continue
        try:      # a corrupt manifest, index or curves file: one line, the other figures still run
            man = store.manifest(fig)
            n, missing = missing_runs(store, man) if man is not None else (0, [])
        except Exception as e:
            rows.append({"figure": fig, "claim": mod.TITLE, "measured": f"store unreadable ({one_line(e)})",
                         "status": "ERROR"})
            continue
        if man is None or n == 0:
            rows.append({"figure": fig, "claim": mod.TITLE, "measured": "no runs in the store: no manifest and no run "
                         f"recorded with figure={fig} (run its preset first)", "status": "NO DATA"})
            continue
        if len(missing) == n:         # planned, but none of its runs is in the store: nothing to plot
            rows.append(incomplete_row(fig, n, missing))
            continue
        try:
            if plot:
                _plot_if_changed(store, fig, mod, Path(results) / "figures")
            checked = [c.row() for c in mod.check(store)]
            if missing:               # a verdict on part of the runs is no verdict
                rows.append(incomplete_row(fig, n, missing))
                for r in checked:
                    if r["status"] in ("PASS", "INCONCLUSIVE"):
                        r["status"] = "INCOMPLETE"
            rows.extend(checked)
        except Exception as e:  # a broken figure is reported, the others still run
            traceback.print_exc()
            rows.append({"figure": fig, "claim": mod.TITLE, "measured": f"error: {type(e).__name__}: {e}",
                         "status": "ERROR"})
    return rows


def write(results, rows) -> None:
    from experiments.store import atomic_write_bytes, atomic_write_json
    results = Path(results)
    atomic_write_json(results / "claims.json", rows)
    md = ["| figure | claim | measured | status |", "| --- | --- | --- | --- |"]
    md += [f"| {r['figure']} | {r['claim']} | {r['measured']} | {r['status']} |" for r in rows]
    atomic_write_bytes(results / "claims.md", ("\n".join(md) + "\n").encode())


def print_table(rows) -> None:
    print("\nCLAIMS")
    w = max([len(r["figure"]) for r in rows] + [6])
    for r in rows:
        print(f"  {r['status']:<12} {r['figure']:<{w}}  {r['claim']}\n  {'':<12} {'':<{w}}  measured: {r['measured']}")
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


def exit_status(rows) -> int:
    """1 when any claim FAILs, any figure is INCOMPLETE or could not be read; else 0."""
    return 1 if any(r["status"] in FAILING for r in rows) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--figures", default="all")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--no-collect", action="store_true", help="use the index as it is (default: rebuild "
                    "it from results/runs first, so runs finished since the last collect count)")
    args = ap.parse_args(argv)
    figs = available() if args.figures == "all" else args.figures.split(",")
    if not args.no_collect and (Path(args.results) / "runs").is_dir():
        from experiments.store import StoreError
        from scripts.collect import collect
        try:
            collect(args.results, quiet=True)
        except StoreError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    rows = run_checks(args.results, figs, plot=not args.no_plot)
    write(args.results, rows)
    print_table(rows)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
