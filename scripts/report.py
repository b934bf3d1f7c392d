"""Write results/report.html: the claims table, every figure (embedded, so the file can be
mailed or opened offline) and a table of the runs behind each figure.

    python -m scripts.report [--results results]
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
import time
from pathlib import Path

from scripts.figures import FIGURES
from scripts.figures.common import Store

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
.PASS{background:#dfd}.FAIL,.ERROR,.INCOMPLETE{background:#fdd}.INCONCLUSIVE,.MISSING,.NO\\ DATA{background:#ffd}
img{max-width:100%}"""


def esc(value) -> str:
    """Every string from the store (a shared folder anyone may write) is text, never markup."""
    return html.escape(str(value), quote=True)


def write(results, rows, profile: str = "?") -> Path:
    results = Path(results)
    store = Store(results)
    try:                       # a corrupt index or manifest is in the claims table; still report
        n_runs = len(store.index)
    except Exception:
        n_runs = "?"
    parts = [f"<html><head><meta charset='utf-8'><title>optsuite report</title><style>{STYLE}</style></head><body>",
             f"<h1>Reproduction report</h1><p>profile: {esc(profile)} &middot; generated "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')} &middot; {n_runs} runs in the store</p>",
             "<h2>Claims</h2><table><tr><th>figure</th><th>claim</th><th>measured</th><th>status</th></tr>"]
    for r in rows:
        parts.append(f"<tr><td><a href='#{esc(r['figure'])}'>{esc(r['figure'])}</a></td><td>{esc(r['claim'])}</td>"
                     f"<td>{esc(r['measured'])}</td><td class='{esc(r['status'])}'>{esc(r['status'])}</td></tr>")
    parts.append("</table>")
    for fig in FIGURES:
        png = results / "figures" / f"{fig}.png"
        try:
            man, runs = store.manifest(fig), store.runs(fig)
        except Exception:
            man, runs = None, None
        if not png.exists() and man is None:
            continue
        parts.append(f"<h2 id='{esc(fig)}'>{esc(fig)}</h2>")
        if man:
            parts.append(f"<p>profile {esc(man.get('profile'))}, {len(man.get('jobs') or [])} runs</p>")
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<img src='data:image/png;base64,{b64}'/>")
        if runs is not None and len(runs):
            cols = [c for c in ("run_id", "choice.optimizer", "choice.dataset", "choice.model", "seed",
                                "summary.status", "summary.steps", "summary.wall_s") if c in runs.columns]
            parts.append(runs[cols].to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}"))
    parts.append("</body></html>")
    from experiments.store import atomic_write_bytes
    out = results / "report.html"
    atomic_write_bytes(out, "\n".join(parts).encode())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    args = ap.parse_args(argv)
    try:
        rows = json.loads((Path(args.results) / "claims.json").read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {Path(args.results) / 'claims.json'} ({type(e).__name__}); "
              f"run `make figures` (or python -m scripts.claims) first", file=sys.stderr)
        return 1
    print(write(args.results, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
