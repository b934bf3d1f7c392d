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
from scripts.figures.sls_deep import (DATASET_NAMES, SGD_PREFIX, band, best_of, by_choice, by_dataset, legend,
                                      median_final, name, per_step, semilogy_band, step_weighted)

FIG = "ponos"
TITLE = "PoNoS reaches the lowest training loss, with zero backtracks in most steps"
MAIN = ("ponos", "vision/sls_ponos", "vision/sps_ponos", "adam")
COLORS = {"ponos": "C4", "vision/sls_ponos": "C0", "vision/sps_ponos": "C1", "adam": "C2", "sgd": "C3"}
LINE_SEARCHES = ("ponos", "vision/sls_ponos")


def plot(store, out_dir):
    p = plt()
    panels = by_dataset(store.runs(FIG))
    ncol = max(1, len(panels))
    fig, axes = p.subplots(3, ncol, figsize=(4.6 * ncol, 9), squeeze=False)
    for j, (ds, runs) in enumerate(panels.items()):
        choices = by_choice(runs)
        best, _ = best_of(store, runs, SGD_PREFIX)
        for c in [*MAIN, best]:
            if c is None or c not in choices:
                continue
            color = COLORS["sgd"] if c == best else COLORS[c]
            label = f"{name(c)}, best SGD" if c == best else name(c)
            semilogy_band(axes[0, j], *band(store, choices[c]), label, color)
            if c != "adam":       # Adam's lr is not a step length along the gradient
                semilogy_band(axes[1, j], *band(store, choices[c], "step_size", "opt"), label, color)
            if c in LINE_SEARCHES:
                xs, med, _, _ = band(store, choices[c], "backtracks", "opt")
                if len(xs):
                    axes[2, j].plot(xs, med, color=color, label=label)
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
        choices = by_choice(runs)
        if "ponos" not in choices:
            claims.append(Claim(FIG, f"{tag}: PoNoS runs present", "no PoNoS run", "FAIL"))
            continue
        finals = {c: median_final(store, g) for c, g in choices.items()
                  if not c.startswith(SGD_PREFIX)}
        best, f_sgd = best_of(store, runs, SGD_PREFIX)
        if best is not None:
            finals[best] = f_sgd
        f_pon = finals.pop("ponos")
        others = ", ".join(f"{name(c)} {v:.2e}" for c, v in sorted(finals.items(), key=lambda kv: kv[1]))
        missing = [c for c in ("vision/sls_ponos", "vision/sps_ponos") if c not in choices]
        ok = bool(finals) and not missing and all(f_pon < v for v in finals.values())
        runner_up = min(finals.values()) if finals else math.nan
        claims.append(Claim(
            FIG, f"{tag}: PoNoS reaches the lowest final training loss (median over seeds) of PoNoS, SLS, SPS, "
                 f"SGD with its best fixed step and Adam",
            f"PoNoS {f_pon:.2e} ({runner_up / max(f_pon, 1e-300):.3g}x below the next); {others}"
            + (f"; missing {', '.join(missing)}" if missing else ""), verdict(ok)))

        pon = choices["ponos"]
        zero = per_step(store, pon, lambda r: step_weighted(store, r, "zero_backtrack_frac"))
        bt = per_step(store, pon, lambda r: step_weighted(store, r, "backtracks"))
        half = []
        for _, r in pon.iterrows():
            cur = store.curve(r.run_id, "zero_backtrack_frac", "opt")
            if len(cur):
                half.append(float(np.mean(cur.value.to_numpy()[len(cur) // 2:])))
        extra = f", second half {np.median(half):.1%}" if half else ""
        sls_zero = (per_step(store, choices["vision/sls_ponos"],
                             lambda r: step_weighted(store, r, "zero_backtrack_frac"))
                    if "vision/sls_ponos" in choices else math.nan)
        claims.append(Claim(
            FIG, f"{tag}: PoNoS takes zero backtracks in most steps (more than half of all steps)",
            f"PoNoS steps without backtracking {zero:.1%}{extra}, mean backtracks per step {bt:.2f} "
            f"(SLS: {sls_zero:.1%} without backtracking)", verdict(zero > 0.5)))
    if not claims:
        claims.append(Claim(FIG, TITLE, "no runs", "FAIL"))
    return claims
