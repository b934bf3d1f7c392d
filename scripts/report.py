"""Write results/report.html: one self-contained page (opens offline, can be mailed).

    python -m scripts.report [--results results] [--reference results/reference/quick]

First the verdict counts and the provenance of the runs (code version, packages, devices and
hosts, the commands, compute time), then a table of contents, then one section per figure:
its claims (with the committed reference verdict beside each, flagged where it differs), the
published numbers beside the measured ones, the static PNG beside interactive curves (plotly,
its library inlined once in the page; log/linear buttons, a metric menu, click a legend entry
to hide a method), and a compact table of its runs linked to their config.json.
"""
from __future__ import annotations

import argparse
import base64
import html
import importlib.metadata
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from scripts.figures import FIGURES, module
from scripts.figures import published as published_numbers
from scripts.figures.common import Store, display, style

REPO = Path(__file__).resolve().parent.parent
STATUSES = ("PASS", "FAIL", "INCOMPLETE", "INCONCLUSIVE")     # always shown in the header, even at 0
MAX_POINTS = 300               # per interactive trace: the page stays a few MB with many runs
METRICS = (("train", "subopt", "f - f* (training)"), ("train", "loss", "training loss"), ("test", "acc", "test accuracy"), ("test", "loss", "test loss"),
           ("opt", "step_size", "step size"), ("train", "grad_norm", "gradient norm"))
DASH = {"-": "solid", "--": "dash", "-.": "dashdot", ":": "dot"}
# the x axis of the interactive plot: the static figure's (epochs unless it says otherwise)
X_AXIS = {"overparam_sgd": ("step", "iteration k"), "acceleration": ("step", "iteration k"),
          "noise_floor": ("step", "iteration k"),
          "convergence_rates": ("grad_evals/n", "gradient evaluations / n")}


def x_values(cur, x_col: str) -> np.ndarray:
    if x_col == "grad_evals/n":        # n = samples / epoch: SAG and SVRG spend more than one per sample
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cur.samples > 0, cur.grad_evals * cur.epoch / cur.samples.where(cur.samples > 0), 0.0)
    return cur[x_col].to_numpy(float)

STYLE = """body{font-family:system-ui,sans-serif;max-width:1250px;margin:1.5em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-top:2px solid #ccc;padding-top:.6em;margin-top:2em}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3}.PASS{background:#dfd}.FAIL,.ERROR,.INCOMPLETE{background:#fdd}.INCONCLUSIVE,.MISSING,.NO_DATA{background:#ffd}
.badge{display:inline-block;padding:2px 10px;margin:0 6px 4px 0;border-radius:4px;font-weight:600;font-size:15px}
.differs{outline:2px solid #c00}.muted{color:#666;font-size:13px}
.figrow{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.figrow>div{flex:1 1 560px;min-width:0}
.figrow img{max-width:100%;border:1px solid #eee}.plot{height:560px}
td.num{text-align:right;font-variant-numeric:tabular-nums}details{margin:.4em 0}code{font-size:12px}"""


def esc(value) -> str:
    """Every string from the store (a shared folder anyone may write) is text, never markup."""
    return html.escape(str(value), quote=True)


def status_class(status) -> str:
    return esc(str(status).replace(" ", "_"))


def js(value) -> str:
    """JSON for a <script> block: '<', '>' and '&' escaped, so no store string can end the block."""
    return json.dumps(value, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt_s(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def fmt_num(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    return "" if math.isnan(f) else f"{f:.3g}"


# ---------------------------------------------------------------------------------- provenance
def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> tuple[str, bool] | None:
    """(HEAD sha, uncommitted changes?) of this checkout; None without git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return sha or "?", bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return None


def _git_here() -> str:
    g = git_state()
    return "? (no git)" if g is None else f"{g[0][:12]}{' (dirty)' if g[1] else ' (clean)'}"


def _count(values) -> str:
    """'a (3 runs), b (1 run)' of the distinct values, most frequent first."""
    c = Counter(v for v in values if v not in (None, ""))
    return ", ".join(f"{esc(v)} ({n} run{'s' * (n > 1)})" for v, n in c.most_common()) or "not recorded"


def provenance(store: Store, run_ids) -> list[tuple[str, str]]:
    """(field, html) rows: what produced the runs (from each run's config.json) and this page."""
    envs = [store.record(r).get("environment") or {} for r in run_ids]

    def code(e):
        if not e.get("git_sha"):
            return None
        return f"{e['git_sha'][:12]} ({'dirty' if e.get('git_dirty') else 'clean'})"
    pkgs = [", ".join(f"{k} {e[k]}" for k in ("python", "torch", "cuda", "hydra", "numpy", "pandas") if e.get(k))
            for e in envs]
    where = [f"{e.get('host', '?')}: {e.get('device', '?')} ({e.get('device_name', '?')}, "
             f"{e.get('num_threads', '?')} threads)" for e in envs if e]
    wall = _wall(store, run_ids)
    here = ", ".join(f"{p} {_version(p)}" for p in ("matplotlib", "pandas", "plotly", "wandb"))
    cmd = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    return [("code of the runs (git sha, working tree)", _count(map(code, envs))),
            ("code of this page", esc(_git_here())),
            ("packages of the runs", _count(pkgs)),
            ("packages of this page", esc(here)),
            ("device and host", _count(where)),
            ("runs, compute", f"{len(run_ids)} runs, {fmt_s(wall)} of training (sum of their recorded wall times)"),
            ("this page made by", f"<code>{esc(cmd)}</code> at {esc(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}")]


def _wall(store: Store, run_ids) -> float:
    idx = store.index
    if "summary.wall_s" not in idx.columns:
        return math.nan
    return float(idx[idx.run_id.isin(list(run_ids))]["summary.wall_s"].astype(float).sum())


def sweep_command(fig: str, man: dict | None) -> str:
    profile = (man or {}).get("profile") or "quick"
    return f"python -m experiments.train -m experiment={fig} profile={profile}"


# ---------------------------------------------------------------------------------- curves
def subsample(n: int, k: int = MAX_POINTS) -> np.ndarray:
    """At most ``k`` indices of ``n`` points, half log-spaced (the early steps for a log x axis),
    half evenly spaced, always with the first and the last point."""
    if n <= k:
        return np.arange(n)
    geo = np.unique(np.geomspace(1, n, k // 2).astype(int) - 1)
    lin = np.linspace(0, n - 1, k - len(geo)).astype(int)
    return np.unique(np.concatenate([geo, lin, [0, n - 1]]))


def _clean(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float)]


# f - f* is float64 round-off once it is below ~1e-15 of where it started (f and f* agree to the
# last bits): those points, and non-positive ones a log axis cannot show, are left out rather
# than drawn as spikes and a fake plateau (the static figures mask the same way, mask_below)
ROUND_OFF = 1e-15
DIVERGED = 1e3


def masked(values, metric: str) -> list:
    y = np.asarray(values, float)
    if metric == "subopt" and len(y):
        finite = y[np.isfinite(y)]
        start = abs(finite[0]) if len(finite) else 0.0        # where the run started
        with np.errstate(invalid="ignore"):
            y = np.where(y > ROUND_OFF * start, y, np.nan)
    return _clean(y)


def _hex(color) -> str:
    from matplotlib.colors import to_hex
    return to_hex(color)


NAME_COLUMNS = (("dataset.name", ""), ("optimizer.lr", "lr "), ("level", "level "), ("train.batch_size", "batch "),
                ("dataset.kappa", "kappa "), ("seed", "seed "))


def _varying(runs) -> dict[str, list[tuple[str, str]]]:
    """{method: the NAME_COLUMNS whose value differs between its runs} (the others name nothing:
    the legend stays narrow)."""
    out = {}
    for m, rows in runs.groupby(runs["method"].astype(str)):
        out[m] = [(c, t) for c, t in NAME_COLUMNS if c in rows.columns and rows[c].astype(str).nunique() > 1]
    return out


def _run_name(r, columns) -> str:
    """What tells a method's runs apart: the varying settings (step size, level, seed, ...)."""
    parts = []
    for col, tag in columns:
        v = r.get(col)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{tag}{fmt_num(v) if tag else v}")
    return ", ".join(parts) or f"run {r.run_id}"


def plot_spec(store: Store, runs, fig: str) -> dict | None:
    """{data, layout} of the figure's interactive plot: one trace per run and metric (x: X_AXIS).
    Names are HTML-escaped: plotly renders a subset of HTML (links included) in legends and hovers."""
    traces, metrics = [], []
    x_col, x_title = X_AXIS.get(fig, ("epoch", "epoch"))
    columns = _varying(runs)
    for split, metric, title in METRICS:
        group, shown = [], []
        for _, r in runs.iterrows():
            cur = store.curve(r.run_id, metric, split)
            if not len(cur):
                continue
            cur = cur.iloc[subsample(len(cur))]
            m = str(r.get("method"))
            st = style(m)
            first = m not in shown
            shown.append(m)
            group.append({"type": "scatter", "mode": "lines", "x": _clean(x_values(cur, x_col)), "y": masked(cur.value, metric),
                          # one legend entry per method (a click hides all its runs); the run's
                          # settings are in its hover text
                          "name": esc(display(m)), "legendgroup": m, "showlegend": first,
                          "line": {"color": _hex(st["color"]), "dash": DASH.get(st["ls"], "solid"), "width": 1.6},
                          "hovertemplate": f"{esc(display(m))} {esc(_run_name(r, columns[m]))}<br>run {esc(r.run_id)}"
                                           f"<br>{x_title} %{{x:.3g}}<br>%{{y:.4g}}<extra></extra>"})
        if group and metric != "acc":
            # a diverging run would stretch the axis to 1e+100: its curve ends where it leaves
            # 1000x the largest starting value of the group (the static figures cut it the same way)
            starts = [next((v for v in t["y"] if v is not None), None) for t in group]
            top = DIVERGED * max((abs(v) for v in starts if v is not None), default=math.inf)
            for t in group:
                t["y"] = [None if v is not None and abs(v) > top else v for v in t["y"]]
        if group:
            metrics.append((title, len(traces), len(group)))
            traces += group
    if not traces:
        return None
    for t in traces[metrics[0][2]:]:
        t["visible"] = False

    def visible(i0, n):
        return [i0 <= i < i0 + n for i in range(len(traces))]
    log_y = metrics[0][0] != "test accuracy"
    y_order = ("log", "linear") if log_y else ("linear", "log")
    # dropdowns (they show only the active choice: buttons overlapped in a half-page-wide plot)
    menus = [{"type": "dropdown", "x": 0, "y": 1.12, "xanchor": "left", "showactive": True,
              "buttons": [{"label": f"{t} y", "method": "relayout", "args": [{"yaxis.type": t}]} for t in y_order]},
             {"type": "dropdown", "x": 0.26, "y": 1.12, "xanchor": "left", "showactive": True,
              "buttons": [{"label": f"{t} x", "method": "relayout", "args": [{"xaxis.type": t}]}
                          for t in ("linear", "log")]}]
    if len(metrics) > 1:
        menus.append({"type": "dropdown", "x": 0.52, "y": 1.12, "xanchor": "left", "showactive": True,
                      "buttons": [{"label": t, "method": "update",
                                   "args": [{"visible": visible(i0, n)}, {"yaxis.title.text": t}]}
                                  for t, i0, n in metrics]})
    # the legend below the plot: on the right it was cut at the column's edge (headless Chromium)
    layout = {"margin": {"l": 60, "r": 20, "t": 70, "b": 45}, "updatemenus": menus, "hovermode": "closest",
              "xaxis": {"title": {"text": x_title}, "type": "linear"},
              "yaxis": {"title": {"text": metrics[0][0]}, "type": "log" if log_y else "linear", "exponentformat": "e"},
              "legend": {"font": {"size": 10}, "groupclick": "togglegroup", "orientation": "h",
                         "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top",
                         # a fixed entry width: the measured text width overlapped entries
                         "entrywidth": 170, "entrywidthmode": "pixels"},
              "font": {"family": "DejaVu Sans, Verdana, Arial, sans-serif"}, "template": None}
    return {"data": traces, "layout": layout}


# ---------------------------------------------------------------------------------- tables
def claims_table(rows: list[dict], reference: dict | None) -> str:
    head = "<tr><th>status</th><th>claim</th><th>measured</th>" + ("<th>reference</th>" if reference else "") + "</tr>"
    out = ["<table class='claims'>", head]
    for r in rows:
        ref = ""
        if reference is not None:
            want = reference.get((str(r["figure"]), str(r["claim"])))
            if want is None:
                ref = "<td class='muted'>not in the reference</td>"
            elif want == r["status"]:
                ref = f"<td class='{status_class(want)}'>{esc(want)} (same)</td>"
            else:
                ref = f"<td class='{status_class(want)} differs' title='differs from the reference'>" \
                      f"{esc(want)} &ne; now</td>"
        out.append(f"<tr><td class='{status_class(r['status'])}'>{esc(r['status'])}</td><td>{esc(r['claim'])}</td>"
                   f"<td>{esc(r['measured'])}</td>{ref}</tr>")
    out.append("</table>")
    return "\n".join(out)


def published_table(store: Store, fig: str) -> str:
    rows = published_numbers.table(store, fig)
    if not rows:
        why = published_numbers.none_because(fig)
        return f"<p class='muted'>Published numbers: none ({esc(why)}).</p>" if why else ""
    out = ["<table class='published'><tr><th>quantity</th><th>published</th><th>measured here</th>"
           "<th>source</th></tr>"]
    for r in rows:
        out.append(f"<tr><td>{esc(r['quantity'])}</td><td>{esc(r['published'])}</td><td>{esc(r['measured'])}</td>"
                   f"<td class='muted'>{esc(r['source'])}</td></tr>")
    out.append("</table>")
    return "<h3>Published numbers</h3>" + "\n".join(out)


def runs_table(store: Store, runs) -> str:
    level = "level" in runs.columns and runs["level"].notna().any()
    cols = ["run", "method", "step size", "seed"] + (["level"] if level else []) + ["status", "final train loss",
                                                                                  "wall time"]
    out = ["<table class='runs'><tr>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for _, r in runs.iterrows():
        rid = str(r.run_id)
        cells = [f"<a href='runs/{esc(rid)}/config.json'><code>{esc(rid)}</code></a>", esc(display(r.get("method"))),
                 esc(fmt_num(r.get("optimizer.lr"))), esc(r.get("seed"))]
        if level:
            cells.append(esc(fmt_num(r.get("level"))))
        status = r.get("summary.status")
        cells += [esc(status), esc(fmt_num(store.final(rid, "loss"))), esc(fmt_s(float(r.get("summary.wall_s", math.nan))))]
        cls = ["", "", "num", "num"] + (["num"] if level else []) + ["", "num", "num"]
        out.append("<tr>" + "".join(f"<td class='{c}'>{v}</td>" for c, v in zip(cls, cells)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------- page
def _figures_in(rows: list[dict]) -> list[str]:
    """The registered figures in their order, then any other figure named by a claim row."""
    named = list(dict.fromkeys(str(r["figure"]) for r in rows))
    return [f for f in FIGURES if f in named] + [f for f in named if f not in FIGURES]


def _title(fig: str) -> str:
    try:
        return module(fig).TITLE
    except Exception:
        return ""


def write(results, rows, profile: str = "?", reference_dir=None) -> Path:
    results = Path(results)
    store = Store(results)
    from scripts import reference as ref_mod
    reference, ref_note = ref_mod.load(reference_dir)
    figs = _figures_in(rows)
    counts = Counter(str(r["status"]) for r in rows)
    sections, toc, all_runs = [], [], []
    for fig in figs:
        fig_rows = [r for r in rows if str(r["figure"]) == fig]
        try:      # a corrupt index or manifest is in the claims table already; still report
            man, runs = store.manifest(fig), store.runs(fig)
            selection = store.selection(fig)
        except Exception as e:
            man, runs, selection = None, None, f"store unreadable ({type(e).__name__})"
        ids = list(runs.run_id.astype(str)) if runs is not None else []
        all_runs += ids
        wall = _wall(store, ids) if ids else 0.0
        badges = " ".join(f"<span class='{status_class(s)}'>{n}&nbsp;{esc(s)}</span>"
                          for s, n in Counter(str(r["status"]) for r in fig_rows).items())
        toc.append(f"<tr><td><a href='#{esc(fig)}'>{esc(fig)}</a></td><td>{esc(_title(fig))}</td><td>{badges}</td>"
                   f"<td class='num'>{len(ids)}</td><td class='num'>{esc(fmt_s(wall))}</td></tr>")
        parts = [f"<section id='{esc(fig)}'><h2>{esc(fig)}</h2><p><b>{esc(_title(fig))}</b></p>",
                 f"<p class='muted'>{esc(selection)} &middot; {len(ids)} runs, {esc(fmt_s(wall))} of compute "
                 f"&middot; made by <code>{esc(sweep_command(fig, man))}</code></p>",
                 claims_table(fig_rows, reference), published_table(store, fig)]
        png = results / "figures" / f"{fig}.png"
        spec = plot_spec(store, runs, fig) if runs is not None and len(runs) else None
        if png.exists() or spec:
            parts.append("<div class='figrow'>")
            if png.exists():
                b64 = base64.b64encode(png.read_bytes()).decode()
                parts.append(f"<div><img alt='{esc(fig)} (static figure)' src='data:image/png;base64,{b64}'/></div>")
            if spec:
                parts.append(f"<div><div class='plot' id='plot-{esc(fig)}'></div>"
                             f"<script type='application/json' id='spec-{esc(fig)}'>{js(spec)}</script></div>")
            parts.append("</div>")
        if ids:
            parts.append(f"<details><summary>{len(ids)} runs (links open each run's config.json)</summary>"
                         f"{runs_table(store, runs)}</details>")
        parts.append("</section>")
        sections.append("\n".join(parts))
    header = ["<div>" + " ".join(f"<span class='badge {status_class(s)}'>{counts.get(s, 0)} {esc(s)}</span>"
                                 for s in (*STATUSES, *sorted(set(counts) - set(STATUSES)))) + "</div>"]
    if ref_note:
        header.append(f"<p class='muted'>Reference verdicts: {esc(ref_note)}</p>")
    header.append("<table class='provenance'>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>"
                                                         for k, v in provenance(store, list(dict.fromkeys(all_runs))))
                  + "</table>")
    page = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'><title>optsuite report</title>",
            f"<style>{STYLE}</style>", _plotly_script(), "</head><body>",
            f"<h1>Reproduction report</h1><p class='muted'>profile {esc(profile)} &middot; {len(figs)} figures, "
            f"{len(rows)} claims</p>", *header,
            "<h2 id='contents'>Contents</h2><table class='toc'><tr><th>figure</th><th>claim</th><th>verdicts</th>"
            "<th>runs</th><th>compute</th></tr>", *toc, "</table>", *sections, RENDER, "</body></html>"]
    from experiments.store import atomic_write_bytes
    out = results / "report.html"
    atomic_write_bytes(out, "\n".join(page).encode())
    return out


def _plotly_script() -> str:
    """plotly.js, inlined once for the whole page (no network); without plotly installed the
    page keeps its static figures and says so."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        return "<script type='text/javascript'>window.Plotly = null;</script>"
    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


# draws every plot from its JSON block; a page without plotly shows a note instead
RENDER = """<script type='text/javascript'>
document.querySelectorAll("div.plot").forEach(function (div) {
  var spec = JSON.parse(document.getElementById("spec-" + div.id.slice(5)).textContent);
  if (!window.Plotly) { div.textContent = "interactive plot unavailable: plotly is not installed"; return; }
  Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
});
</script>"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--reference", default=None, help="folder with a reference claims.json "
                    "(default: results/reference/quick of the repository)")
    args = ap.parse_args(argv)
    try:
        rows = json.loads((Path(args.results) / "claims.json").read_text())
    except (OSError, ValueError) as e:
        print(f"error: cannot read {Path(args.results) / 'claims.json'} ({type(e).__name__}); "
              f"run `make figures` (or python -m scripts.claims) first", file=sys.stderr)
        return 1
    profiles = {str(m.get("profile")) for m in (Store(args.results).manifest(f) for f in _figures_in(rows))
                if m and m.get("profile")}
    out = write(args.results, rows, profile=", ".join(sorted(profiles)) or "?", reference_dir=args.reference)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
