"""acceleration: iterations to reach a tolerance against the condition number kappa, for SGD
with the strong-growth step and for accelerated SGD, with the log-log slopes."""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import (Claim, display, first_below, fmt_num, legend_label, loglog_slope, plt, save,
                                    style, verdict)

FIG = "acceleration"
TITLE = "iterations to eps grow like kappa for SGD and like sqrt(kappa) for accelerated SGD"
REL_TOL = 1e-4     # relative suboptimality that defines "reached" (runs stop at 1e-7 absolute, below it)


def iterations(store):
    """{method: [(kappa, median iterations over seeds)]}, NaN where a run never got there."""
    runs = store.runs(FIG)
    out = {}
    for (method, kappa), grp in runs.groupby(["method", "dataset.kappa"]):
        its = []
        for _, row in grp.iterrows():
            cur = store.curve(row.run_id, "subopt")
            its.append(first_below(cur, REL_TOL * cur.value.iloc[0]))
        out.setdefault(method, []).append((float(kappa), float(np.median(its))))
    return {c: sorted(v) for c, v in out.items()}


def plot(store, out_dir):
    p = plt()
    fig, ax = p.subplots(figsize=(5, 4))
    for method, pts in sorted(iterations(store).items()):
        k, it = zip(*pts)
        ax.loglog(k, it, label=f"{legend_label(method)} (slope {loglog_slope(k, it):.2f})",
                  **style(method, markers=True))
    ax.set_xlabel(r"condition number $\kappa = L / \mu$")
    e = math.log10(REL_TOL)
    tol = f"10^{{{fmt_num(e)}}}" if e == int(e) else f"{REL_TOL:g}"
    ax.set_ylabel(f"iterations to $f - f^* \\leq {tol}\\,(f(w_0) - f^*)$")
    ax.legend()
    return save(fig, out_dir, FIG)


def check(store):
    its = iterations(store)
    claims = []
    for method, target, tol in (("sgd_theory", 1.0, 0.2), ("accel_sgd", 0.5, 0.15)):
        pts = its.get(method, [])
        k = [p[0] for p in pts]
        it = [p[1] for p in pts]
        slope = loglog_slope(k, it)
        decades = math.log10(max(k) / min(k)) if k else 0
        missing = sum(math.isnan(v) for v in it)
        ok = abs(slope - target) <= tol and missing == 0 and decades >= 4
        measured = (f"slope {slope:.2f} over kappa {min(k, default=0):g}..{max(k, default=0):g} ({decades:.0f} decades); "
                    f"iterations {', '.join(f'{v:.0f}' for v in it)}" + (f"; {missing} never reached" if missing else ""))
        claims.append(Claim(FIG, f"{display(method)}: log-log slope of iterations vs kappa is {target} +- {tol}",
                            measured, verdict(ok)))
    return claims
