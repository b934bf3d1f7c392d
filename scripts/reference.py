"""Copy a quick-profile claims table and small figure thumbnails into the committed reference
folder results/reference/quick/, so a newcomer can compare their run with a known-good one.

    python -m scripts.reference [--results results] [--out results/reference/quick]

Writes claims.json, claims.md, thumbs/<figure>.png (400 px wide, 8-bit palette: a few tens of
kB each) and README.md (which commit, date and machine produced it). The report shows the
reference verdict beside each claim (``load``). Run it only on a store made with
``--profile quick``: the reference is the quick profile's, and figures of another profile are
refused (one line).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "results" / "reference" / "quick"
WIDTH = 400


def load(folder=None) -> tuple[dict | None, str]:
    """({(figure, claim): status} of the reference, a line saying what it is), or (None, '')
    when there is no reference claims.json (the report then has no reference column)."""
    folder = Path(folder) if folder else DEFAULT
    try:
        rows = json.loads((folder / "claims.json").read_text())
        table = {(str(r["figure"]), str(r["claim"])): str(r["status"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return None, ""
    readme = folder / "README.md"
    made = next((ln.strip() for ln in readme.read_text().splitlines() if ln.startswith("Produced")), "") \
        if readme.exists() else ""
    return table, f"{folder.name} profile reference in {folder}{'; ' + made if made else ''} (a claim whose " \
                  f"status differs from it is outlined in red)"


def thumbnail(src: Path, dst: Path, width: int = WIDTH) -> int:
    """A ``width`` px wide palette PNG of ``src``; returns its size in bytes."""
    from PIL import Image
    with Image.open(src) as im:
        im = im.convert("RGB")
        h = max(1, round(im.height * width / im.width))
        small = im.resize((width, h), Image.LANCZOS).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        small.save(dst, optimize=True)
    return dst.stat().st_size


def _git() -> str:
    from scripts.report import git_state
    g = git_state()
    return "? (no git)" if g is None else f"{g[0]}{' with uncommitted changes' if g[1] else ''}"


def make(results: Path, out: Path) -> list[str]:
    """Write the reference folder; returns a line per problem (empty when all went well)."""
    results, out = Path(results), Path(out)
    rows = json.loads((results / "claims.json").read_text())
    from scripts.figures.common import Store
    store = Store(results)
    profiles = {fig: (store.manifest(fig) or {}).get("profile") for fig in dict.fromkeys(str(r["figure"]) for r in rows)}
    wrong = {f: p for f, p in profiles.items() if p not in (None, "quick")}
    if wrong:
        return [f"not a quick-profile store: {', '.join(f'{f} ({p})' for f, p in wrong.items())}"]
    if (out / "thumbs").exists():     # a figure dropped since the last reference leaves no stale thumbnail
        shutil.rmtree(out / "thumbs")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(results / "claims.json", out / "claims.json")
    if (results / "claims.md").exists():
        shutil.copy(results / "claims.md", out / "claims.md")
    total, problems = 0, []
    for fig in dict.fromkeys(str(r["figure"]) for r in rows):
        png = results / "figures" / f"{fig}.png"
        if png.exists():
            total += thumbnail(png, out / "thumbs" / f"{fig}.png")
    # the machine of the runs, as each recorded it (not the one that copies the files)
    envs = {(e.get("host"), e.get("device_name") or e.get("device")) for e in
            (store.record(r).get("environment") or {} for fig in profiles for r in store.runs(fig).run_id)}
    machine = "; ".join(f"{h} ({d})" for h, d in sorted(envs, key=str) if h) or \
        f"{socket.gethostname()} ({platform.machine()}; runs record no environment)"
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    (out / "README.md").write_text(
        "# Reference results, quick profile\n\n"
        f"Produced from commit {_git()} on {time.strftime('%Y-%m-%d')} on {machine} "
        f"by `python -m scripts.reference` (verdicts: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ").\n\n"
        "claims.md / claims.json: the claims table of `make reproduce-all PROFILE=quick`; thumbs/: the figures "
        f"at {WIDTH} px. `make report` shows these verdicts beside the current ones.\n")
    print(f"reference written to {out}: {len(rows)} claims, "
          f"{len(list((out / 'thumbs').glob('*.png')))} thumbnails, {total / 1e3:.1f} kB of images")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--out", default=str(DEFAULT))
    args = ap.parse_args(argv)
    if not (Path(args.results) / "claims.json").exists():
        print(f"error: no {Path(args.results) / 'claims.json'}; run `make reproduce-all PROFILE=quick` first",
              file=sys.stderr)
        return 1
    problems = make(Path(args.results), Path(args.out))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
