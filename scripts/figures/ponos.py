"""ponos: PoNoS against SLS and SPS as run in the PoNoS paper (both capped at eta_max = 10), SGD with
its best fixed step and Adam (Galli, Rauhut & Schmidt 2023, Fig. 1).

One column per data set: training loss, step size and backtracks per step against epochs
(median over seeds with the min-max seed band). The claims, by the seed rule of ``seeds.py``
(one statistic per seed, comparisons within the seed, PASS only when every seed shows it):
PoNoS reaches the lowest training loss, and most of its steps take no backtrack (the Polyak first
trial with the backtrack memory is usually accepted). SGD's step is the grid point whose worst
seed ends lowest (full_batch_gap's rule); its per-seed value is then compared within the seed.

Which caps apply (issue 11, point 7): "PoNoS is lowest" holds in all 3 seeds only against SLS and
SPS capped at a step of 10, as the PoNoS paper runs them (methods sls_ponos: reset 11, eta_max 10;
sps_ponos: SPS_max with eta_max 10). Uncapped SPS and SLS (the sls_deep figure's runs) end below
PoNoS in every seed. The claim, the title and the legend say so; the claim is not about the
uncapped methods.

PoNoS's defaults (xi = 1, c_p = 0.1) and interpolation: on every interpolating problem of the suite
(the sls_overparam panels with f* = 0) PoNoS with these defaults stalls at a relative excess loss of
about 1e-3 in all seeds, while xi = 0 or 0.5, or c_p = 0.5, reaches 1e-16. The first trial is
f_B / (c_p ||g_B||^2), ten Polyak steps at c_p = 0.1, and with xi = 1 the Zhang-Hager reference is
the running mean of all past losses, which stays far above the current loss once the loss has
fallen by decades, so the non-monotone test keeps accepting those long steps. sls_overparam runs the
setting that works (method ponos_cp05, c_p = 0.5) beside the defaults and checks both; this figure
runs it too (same method label) so the MNIST panel shows what the defaults cost where the MLP nearly
interpolates its 5,000 images.
Measured (quick, 3 seeds, 2026-12-03): on MNIST it is the other way round: defaults / c_p 0.5 =
0.18 [0.09, 0.36], i.e. c_p = 0.5 ends 3-11x above the defaults in every seed (its first trial is
a fifth as long, and the MLP does not interpolate within the budget). Decision: that check is
reported, not a claim of the talk, and stays FAIL: the setting that fixes PoNoS on interpolating
least squares and matrix factorisation costs on the MLP, and the figure shows both.
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, plt, save, style
from scripts.figures.seeds import per_seed, seed_claim
from scripts.figures.sls_deep import (DATASET_NAMES, GRID, band, by_dataset, by_method, drawn_methods, final_value,
                                      legend, name, points, semilogy_band, step_weighted)

FIG = "ponos"
TITLE = ("PoNoS reaches the lowest training loss (against SLS and SPS capped at step 10, as in the PoNoS "
         "paper), with zero backtracks in most steps")
MAIN = ("ponos", "ponos_cp05", "sls_ponos", "sps_ponos", "adam")      # method labels of the grid
COMPETITORS = ("sls_ponos", "sps_ponos", "adam")                      # and SGD with its best step
LINE_SEARCHES = ("ponos", "ponos_cp05", "sls_ponos")
LABELS = {"ponos": r"PoNoS (defaults: $\xi = 1$, $c_p = 0.1$)", "ponos_cp05": r"PoNoS, $c_p = 0.5$",
          "sls_ponos": "SLS (reset 11, cap 10)", "sps_ponos": "SPS (cap 10)"}


def plot(store, out_dir):
    p = plt()
    panels = by_dataset(store.runs(FIG))
    ncol = max(1, len(panels))
    fig, axes = p.subplots(3, ncol, figsize=(4.6 * ncol, 9), squeeze=False)
    for j, (ds, runs) in enumerate(panels.items()):
        for m, label, st, rows in drawn_methods(store, runs, MAIN):
            label = LABELS.get(m, label)
            if m == "ponos_cp05":     # a PoNoS variant: PoNoS's colour, dash-dotted (no common.METHODS entry)
                st = {**st, "color": style("ponos")["color"], "ls": "-."}
            semilogy_band(axes[0, j], *band(store, rows), label, st["color"], ls=st["ls"])
            if m != "adam":       # Adam's lr is not a step length along the gradient
                semilogy_band(axes[1, j], *band(store, rows, "step_size", "opt"), label, st["color"], ls=st["ls"])
            if m in LINE_SEARCHES:
                xs, med, _, _ = band(store, rows, "backtracks", "opt")
                if len(xs):
                    axes[2, j].plot(xs, med, color=st["color"], ls=st["ls"], label=label)
        axes[0, j].set_title(f"{DATASET_NAMES.get(ds, ds)}\nSLS, SPS capped at step 10 (PoNoS paper); "
                             "median, min-max over seeds", fontsize=8)
        axes[0, j].set_ylabel("training loss")
        axes[1, j].set_ylabel("step size along -gradient\n(mean per interval)")
        axes[2, j].set_ylabel("backtracks per step (mean)")
        axes[2, j].set_xlabel("epoch")
        legend(axes[0, j])
        legend(axes[2, j])
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _best_grid_lr(store, runs):
    """The SGD grid point whose worst seed ends lowest (None without a grid)."""
    worst = {lr: max(final_value(store, r) for _, r in g.iterrows()) for lr, g in points(runs, GRID).items()}
    return min(worst, key=lambda lr: (worst[lr], lr)) if worst else None


def check(store):
    claims = []
    for ds, runs in by_dataset(store.runs(FIG)).items():
        tag = DATASET_NAMES.get(ds, ds)
        methods = by_method(runs)
        if "ponos" not in methods:
            claims.append(Claim(FIG, f"{tag}: PoNoS runs present", "no PoNoS run", "FAIL"))
            continue
        final = lambda g: final_value(store, g.iloc[0])  # noqa: E731  (one run per seed and method)
        fin = {m: per_seed(methods[m], final) for m in COMPETITORS if m in methods}
        best = _best_grid_lr(store, runs)
        if best is not None:
            fin[f"best {name(GRID, best)}"] = per_seed(points(runs, GRID)[best], final)
        pon = per_seed(methods["ponos"], final)
        # per seed: the runner-up of the same seed over PoNoS (> 1: PoNoS lowest)
        ratio = {s: min(f[s] if s in f else math.nan for f in fin.values()) / max(v, 1e-300)
                 for s, v in pon.items()} if fin else {}
        missing = [m for m in ("sls_ponos", "sps_ponos") if m not in methods]
        others = "; ".join(f"{name(m) if m in methods else m}: " + ", ".join(f"s{s} {v:.2e}" for s, v in f.items())
                           for m, f in fin.items())
        c = seed_claim(FIG, f"{tag}: PoNoS (defaults) reaches the lowest final training loss of PoNoS, SLS and SPS "
                       f"capped at step 10 (as in the PoNoS paper; uncapped SLS and SPS are not compared), SGD with "
                       f"its best fixed step and Adam; statistic: runner-up / PoNoS of the same seed, > 1",
                       ratio, lambda v: v > 1, extra="PoNoS " + ", ".join(f"s{s} {v:.2e}" for s, v in pon.items())
                       + f"; {others}" + (f"; missing {', '.join(missing)}" if missing else ""))
        if missing:
            c.status = "FAIL"
        claims.append(c)

        zero = per_seed(methods["ponos"], lambda g: step_weighted(store, g.run_id.iloc[0], "zero_backtrack_frac"))
        bt = per_seed(methods["ponos"], lambda g: step_weighted(store, g.run_id.iloc[0], "backtracks"))
        sls_zero = (per_seed(methods["sls_ponos"], lambda g: step_weighted(store, g.run_id.iloc[0],
                                                                              "zero_backtrack_frac"))
                    if "sls_ponos" in methods else {})
        claims.append(seed_claim(
            FIG, f"{tag}: PoNoS takes zero backtracks in most steps (share of steps without a backtrack > 0.5)",
            zero, lambda v: v > 0.5, fmt="{:.1%}",
            extra="mean backtracks per step " + ", ".join(f"s{s} {v:.2f}" for s, v in bt.items())
            + "; SLS (cap 10) without backtracking " + ", ".join(f"s{s} {v:.1%}" for s, v in sls_zero.items())))

        if "ponos_cp05" in methods:
            cp = per_seed(methods["ponos_cp05"], final)
            claims.append(seed_claim(
                FIG, f"{tag}: PoNoS with c_p = 0.5 ends below PoNoS with its defaults (c_p = 0.1) (the setting that "
                f"works on interpolating problems, see sls_overparam); statistic: defaults / c_p = 0.5 of the same "
                f"seed, > 1 (reported, not a claim of the talk)",
                {s: pon[s] / max(cp[s], 1e-300) for s in pon if s in cp}, lambda v: v > 1,
                extra="c_p = 0.5 " + ", ".join(f"s{s} {v:.2e}" for s, v in cp.items())))
    if not claims:
        claims.append(Claim(FIG, TITLE, "no runs", "FAIL"))
    return claims
