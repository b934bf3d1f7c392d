"""Run-identity check for config refactors: dump the run ids every figure's preset sweep
launches (quick and full profile), and compare two dumps.

    python -m scripts.run_id_check dump OUT.json [--figures a,b]   # in the tree to dump
    python -m scripts.run_id_check compare OLD.json NEW.json

Run ``dump`` in a worktree of the old commit (``git worktree add /tmp/old <sha>``) and in the
new tree; ``compare`` prints, per figure and profile, how many ids are equal and lists the
ones that differ. Planning only composes configs: no data is read and nothing is trained.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def dump(out: Path, figures: list[str] | None) -> None:
    from experiments import plan
    from experiments.validate import CONF_DIR
    figs = figures or sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    rows = []
    for fig in figs:
        for profile in ("quick", "full"):
            jobs = plan.expand([f"experiment={fig}", f"profile={profile}"], multirun=True)
            for j in jobs:
                rows.append({"figure": fig, "profile": profile, "run_id": j.run_id,
                             "optimizer": j.cfg["optimizer"]["name"], "overrides": j.overrides})
            print(f"{fig} {profile}: {len(jobs)} jobs", flush=True)
    out.write_text(json.dumps(rows, indent=0))


def compare(old: Path, new: Path) -> int:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    keys = sorted({(r["figure"], r["profile"]) for r in a} | {(r["figure"], r["profile"]) for r in b})
    bad = 0
    for fig, prof in keys:
        ra = {r["run_id"]: r for r in a if (r["figure"], r["profile"]) == (fig, prof)}
        rb = {r["run_id"]: r for r in b if (r["figure"], r["profile"]) == (fig, prof)}
        only_a, only_b = sorted(set(ra) - set(rb)), sorted(set(rb) - set(ra))
        ok = not only_a and not only_b
        bad += not ok
        print(f"{'OK  ' if ok else 'DIFF'} {fig:22s} {prof:5s} old {len(ra):4d} new {len(rb):4d} "
              f"equal {len(set(ra) & set(rb)):4d}")
        for rid in only_a[:5]:
            print(f"     only old: {rid} {ra[rid]['overrides']}")
        for rid in only_b[:5]:
            print(f"     only new: {rid} {rb[rid]['overrides']}")
    n_a, n_b = len({(r['figure'], r['profile'], r['run_id']) for r in a}), len({(r['figure'], r['profile'], r['run_id']) for r in b})
    print(f"{n_a} old and {n_b} new (figure, profile, run_id) triples; {bad} figure/profile pairs differ")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--figures", default=None)
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.figures.split(",") if args.figures else None)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
