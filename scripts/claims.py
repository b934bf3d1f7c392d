"""Plot every figure and run its claim check against the numbers in the store.

    python -m scripts.claims [--results results] [--figures a,b] [--no-plot]

Prints the claims table, writes results/claims.json and results/claims.md, and exits 1 when a
claim FAILs (an INCONCLUSIVE claim, one the profile cannot show, does not fail the command
but is listed with its numbers).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from scripts.figures import available, module
from scripts.figures.common import Store


def run_checks(results, figs, plot: bool = True) -> list[dict]:
    store = Store(results)
    rows = []
    for fig in figs:
        try:
            mod = module(fig)
        except ModuleNotFoundError as e:
            rows.append({"figure": fig, "claim": "figure implemented", "measured": str(e), "status": "MISSING"})
            continue
        if store.manifest(fig) is None or store.runs(fig).empty:
            rows.append({"figure": fig, "claim": mod.TITLE, "measured": "no runs in the store (run its preset first)",
                         "status": "NO DATA"})
            continue
        try:
            if plot:
                mod.plot(store, Path(results) / "figures")
            rows.extend(c.row() for c in mod.check(store))
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--figures", default="all")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    figs = available() if args.figures == "all" else args.figures.split(",")
    rows = run_checks(args.results, figs, plot=not args.no_plot)
    write(args.results, rows)
    print_table(rows)
    return 1 if any(r["status"] in ("FAIL", "ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
