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
import time
from pathlib import Path

from scripts.figures import FIGURES
from scripts.figures.common import Store

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
.PASS{background:#dfd}.FAIL,.ERROR{background:#fdd}.INCONCLUSIVE,.MISSING,.NO\\ DATA{background:#ffd}
img{max-width:100%}"""


def write(results, rows, profile: str = "?") -> Path:
    results = Path(results)
    store = Store(results)
    parts = [f"<html><head><meta charset='utf-8'><title>optsuite report</title><style>{STYLE}</style></head><body>",
             f"<h1>Reproduction report</h1><p>profile: {html.escape(profile)} &middot; generated "
             f"{time.strftime('%Y-%m-%d %H:%M:%S')} &middot; {len(store.index)} runs in the store</p>",
             "<h2>Claims</h2><table><tr><th>figure</th><th>claim</th><th>measured</th><th>status</th></tr>"]
    for r in rows:
        parts.append(f"<tr><td><a href='#{r['figure']}'>{r['figure']}</a></td><td>{html.escape(r['claim'])}</td>"
                     f"<td>{html.escape(r['measured'])}</td><td class='{r['status']}'>{r['status']}</td></tr>")
    parts.append("</table>")
    for fig in FIGURES:
        png = results / "figures" / f"{fig}.png"
        man = store.manifest(fig)
        if not png.exists() and man is None:
            continue
        parts.append(f"<h2 id='{fig}'>{fig}</h2>")
        if man:
            parts.append(f"<p>profile {man['profile']}, {len(man['jobs'])} runs</p>")
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode()
            parts.append(f"<img src='data:image/png;base64,{b64}'/>")
        runs = store.runs(fig)
        if len(runs):
            cols = [c for c in ("run_id", "choice.optimizer", "choice.dataset", "choice.model", "seed",
                                "summary.status", "summary.steps", "summary.wall_s") if c in runs.columns]
            parts.append(runs[cols].to_html(index=False, float_format=lambda v: f"{v:.3g}"))
    parts.append("</body></html>")
    from experiments.store import atomic_write_bytes
    out = results / "report.html"
    atomic_write_bytes(out, "\n".join(parts).encode())
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    args = ap.parse_args(argv)
    rows = json.loads((Path(args.results) / "claims.json").read_text())
    print(write(args.results, rows))


if __name__ == "__main__":
    main()
