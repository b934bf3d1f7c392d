"""ponos: PoNoS against SLS and SPS as run in the PoNoS paper (both capped at 10), SGD with its
best fixed step and Adam (Galli, Rauhut & Schmidt 2023, Fig. 1).

One column per data set: training loss, step size and backtracks per step against epochs
(median over seeds). The claim: PoNoS reaches the lowest training loss, and most of its steps
take no backtrack (the Polyak first trial with the backtrack memory is usually accepted).
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, plt, save, verdict
from scripts.figures.sls_deep import (DATASET_NAMES, GRID, band, best_of, by_dataset, by_method, drawn_methods,
                                      legend, median_final, name, per_step, semilogy_band, step_weighted)

FIG = "ponos"
TITLE = "PoNoS reaches the lowest training loss, with zero backtracks in most steps"
MAIN = ("ponos", "sls_ponos", "sps_ponos", "adam")      # method labels of the grid
LINE_SEARCHES = ("ponos", "sls_ponos")


def plot(store, out_dir):
    p = plt()
    panels = by_dataset(store.runs(FIG))
    ncol = max(1, len(panels))
    fig, axes = p.subplots(3, ncol, figsize=(4.6 * ncol, 9), squeeze=False)
    for j, (ds, runs) in enumerate(panels.items()):
        for m, label, st, rows in drawn_methods(store, runs, MAIN):
            semilogy_band(axes[0, j], *band(store, rows), label, st["color"], ls=st["ls"])
            if m != "adam":       # Adam's lr is not a step length along the gradient
                semilogy_band(axes[1, j], *band(store, rows, "step_size", "opt"), label, st["color"], ls=st["ls"])
            if m in LINE_SEARCHES:
                xs, med, _, _ = band(store, rows, "backtracks", "opt")
                if len(xs):
                    axes[2, j].plot(xs, med, color=st["color"], ls=st["ls"], label=label)
        axes[0, j].set_title(DATASET_NAMES.get(ds, ds))
        axes[0, j].set_ylabel("training loss")
        axes[1, j].set_ylabel("step size along -gradient\n(mean per interval)")
        axes[2, j].set_ylabel("backtracks per step (mean)")
        axes[2, j].set_xlabel("epoch")
        legend(axes[0, j])
        legend(axes[2, j])
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def check(store):
    claims = []
    for ds, runs in by_dataset(store.runs(FIG)).items():
        tag = DATASET_NAMES.get(ds, ds)
        methods = by_method(runs)
        if "ponos" not in methods:
            claims.append(Claim(FIG, f"{tag}: PoNoS runs present", "no PoNoS run", "FAIL"))
            continue
        finals = {name(m): median_final(store, g) for m, g in methods.items() if m != GRID}
        best, f_sgd = best_of(store, runs, GRID)
        if best is not None:
            finals[f"best {name(GRID, best)}"] = f_sgd
        f_pon = finals.pop(name("ponos"))
        others = ", ".join(f"{c} {v:.2e}" for c, v in sorted(finals.items(), key=lambda kv: kv[1]))
        missing = [m for m in ("sls_ponos", "sps_ponos") if m not in methods]
        ok = bool(finals) and not missing and all(f_pon < v for v in finals.values())
        runner_up = min(finals.values()) if finals else math.nan
        claims.append(Claim(
            FIG, f"{tag}: PoNoS reaches the lowest final training loss (median over seeds) of PoNoS, SLS, SPS, "
                 f"SGD with its best fixed step and Adam",
            f"PoNoS {f_pon:.2e} ({runner_up / max(f_pon, 1e-300):.3g}x below the next); {others}"
            + (f"; missing {', '.join(missing)}" if missing else ""), verdict(ok)))

        pon = methods["ponos"]
        zero = per_step(store, pon, lambda r: step_weighted(store, r, "zero_backtrack_frac"))
        bt = per_step(store, pon, lambda r: step_weighted(store, r, "backtracks"))
        half = []
        for _, r in pon.iterrows():
            cur = store.curve(r.run_id, "zero_backtrack_frac", "opt")
            if len(cur):
                half.append(float(np.mean(cur.value.to_numpy()[len(cur) // 2:])))
        extra = f", second half {np.median(half):.1%}" if half else ""
        sls_zero = (per_step(store, methods["sls_ponos"], lambda r: step_weighted(store, r, "zero_backtrack_frac"))
                    if "sls_ponos" in methods else math.nan)
        claims.append(Claim(
            FIG, f"{tag}: PoNoS takes zero backtracks in most steps (more than half of all steps)",
            f"PoNoS steps without backtracking {zero:.1%}{extra}, mean backtracks per step {bt:.2f} "
            f"(SLS: {sls_zero:.1%} without backtracking)", verdict(zero > 0.5)))
    if not claims:
        claims.append(Claim(FIG, TITLE, "no runs", "FAIL"))
    return claims
