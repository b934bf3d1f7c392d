"""heavy_tailed_vision: heavy-tailed class imbalance on vision data (Kunstner et al. 2024, Fig. 3).

Two data sets built the same way from MNIST: the balanced control (the 10 digit classes only)
and MNIST + barcoded classes (each barcoded class holds a handful of images). Full-batch SGD
and Adam (methods sgd and adam of the grid), each at its best step size of a small grid
(``optimizer.lr``; lowest final overall training loss, chosen separately on each data set).
Panels: overall training loss, and the training loss per class group (group 0 = the 10 MNIST
classes, group 1 = the barcoded classes).

Progress is measured in decades of loss decrease, log10(loss at step 0 / final loss), which is
comparable across data sets whose initial losses differ (log 10 vs log(10 + K)):

* balanced: SGD ~ Adam means SGD achieves at least ``RATIO`` of Adam's decades;
* barcoded: Adam >> SGD on the rare group means SGD achieves less than ``RATIO`` of Adam's
  decades on group 1 (its group-0 share is reported beside it).

Seeds (issue 11): the quick grid runs seeds 0-2. The step size of each family is chosen as before
(lowest median final overall training loss over the seeds, on each data set), then the ratio of
decades is computed within each seed (SGD's seed-s run against Adam's seed-s run) and a claim
PASSes only when every seed shows it (``seeds.seed_claim``: per-seed values, median, min-max).
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, fmt_num, legend_label, mask_below, plt, save, style
from scripts.figures.seeds import AGGREGATION, paired, per_seed, seed_claim
from scripts.figures.sls_deep import FLOOR, band, best_of, legend, name, points, semilogy_band

FIG = "heavy_tailed_vision"
TITLE = "balanced MNIST: SGD ~ Adam; MNIST + barcoded classes: Adam >> SGD on the rare (barcoded) classes"
RATIO = 0.5
FAMILIES = {"SGD": "sgd", "Adam": "adam"}      # family -> method label of the grid


def _variants(store):
    """{'balanced' | 'barcoded': runs}."""
    runs = store.runs(FIG)
    if runs.empty or "dataset.balanced_control" not in runs:
        return {}
    bal = runs["dataset.balanced_control"].astype(str).str.lower() == "true"
    out = {}
    if bal.any():
        out["balanced"] = runs[bal]
    if (~bal).any():
        out["barcoded"] = runs[~bal]
    return out


def _best(store, runs, tex=False):
    """{family: (name, rows)} at the best step size (``optimizer.lr``) of each family (``tex``: the
    legend label, in mathtext)."""
    out = {}
    for fam, method in FAMILIES.items():
        lr, _ = best_of(store, runs, method)
        if lr is not None:
            out[fam] = (legend_label(method, lr) if tex else name(method, lr), points(runs, method)[lr])
    return out


def decades(store, rows, group=-1) -> float:
    """Median over seeds of log10(loss at step 0 / final loss) on the training set (0 for a diverged
    run: no progress is credited)."""
    vals = []
    for _, r in rows.iterrows():
        cur = store.curve(r.run_id, "loss", "train", group)
        if cur.empty:
            continue
        l0, lt = float(cur.value.iloc[0]), float(cur.value.iloc[-1])
        diverged = str(r.get("summary.status", "")) == "diverged" or not math.isfinite(lt)
        vals.append(0.0 if diverged else math.log10(l0 / max(lt, 1e-30)))
    return float(np.median(vals)) if vals else math.nan


def plot(store, out_dir):
    p = plt()
    variants = _variants(store)
    fig, axes = p.subplots(1, 2, figsize=(10, 3.8), squeeze=False)
    for j, key in enumerate(("balanced", "barcoded")):
        ax = axes[0, j]
        if key not in variants:
            ax.text(0.5, 0.5, f"no {key} runs", ha="center", transform=ax.transAxes)
            continue
        for fam, (c, rows) in _best(store, variants[key], tex=True).items():
            color = style(FAMILIES[fam])["color"]      # line styles tell the class groups apart here
            semilogy_band(ax, *band(store, rows, x="step"), f"{c}: all classes", color)
            if key == "barcoded":
                for g, ls, what in ((0, "--", "MNIST classes"), (1, ":", "barcoded classes")):
                    xs, med, lo, hi = band(store, rows, group=g, x="step")
                    if len(xs):
                        ax.semilogy(xs, mask_below(med, FLOOR), ls, color=color, label=f"{c}: {what}")
                        if np.any(hi > lo):       # the min-max band over seeds
                            ax.fill_between(xs, mask_below(lo, FLOOR), mask_below(hi, FLOOR), color=color,
                                            alpha=0.08, lw=0)
        k = variants[key]["summary.data_info.n_barcoded_classes"].iloc[0] if key == "barcoded" and \
            "summary.data_info.n_barcoded_classes" in variants[key] else None
        ax.set_title("balanced MNIST" if key == "balanced" else f"MNIST + {fmt_num(k)} barcoded classes"
                     if k is not None else "MNIST + barcoded classes")
        ax.set_xlabel("full-batch steps (epochs)")
        ax.set_ylabel("training loss")
        legend(ax)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _grid_txt(store, runs):
    return ", ".join(f"{name(m, lr)} {decades(store, g):.2f}"
                     for m in FAMILIES.values() for lr, g in sorted(points(runs, m).items()))


def seed_ratio(store, sgd_rows, adam_rows, group=-1) -> dict:
    """{seed: SGD's decades / Adam's decades} within each seed (NaN where Adam made no progress)."""
    d_s = per_seed(sgd_rows, lambda g: decades(store, g, group))
    d_a = per_seed(adam_rows, lambda g: decades(store, g, group))
    return paired(d_s, d_a, lambda a, b: a / b if b > 0 else math.nan)


def check(store):
    variants = _variants(store)
    claims = []
    if "balanced" in variants:
        best = _best(store, variants["balanced"])
        if set(best) == set(FAMILIES):
            d_sgd, d_adam = decades(store, best["SGD"][1]), decades(store, best["Adam"][1])
            claims.append(seed_claim(
                FIG, f"balanced MNIST: SGD ~ Adam (tuned SGD achieves >= {RATIO:g} of tuned Adam's decades of "
                     f"training-loss decrease; {AGGREGATION})",
                seed_ratio(store, best["SGD"][1], best["Adam"][1]), lambda r: r >= RATIO, fmt="{:.2f}",
                extra=f"{best['SGD'][0]} {d_sgd:.2f} decades vs {best['Adam'][0]} {d_adam:.2f} (medians over seeds); "
                      f"grid (decades, median over seeds): {_grid_txt(store, variants['balanced'])}"))
        else:
            claims.append(Claim(FIG, "balanced MNIST: SGD and Adam runs present", f"have {sorted(best)}", "FAIL"))
    else:
        claims.append(Claim(FIG, "balanced MNIST runs present", "none", "FAIL"))
    if "barcoded" in variants:
        best = _best(store, variants["barcoded"])
        if set(best) == set(FAMILIES):
            s, a = best["SGD"][1], best["Adam"][1]
            d1s, d1a = decades(store, s, 1), decades(store, a, 1)
            d0s, d0a = decades(store, s, 0), decades(store, a, 0)
            r0 = seed_ratio(store, s, a, 0)
            f1s = median_group_final(store, s, 1)
            f1a = median_group_final(store, a, 1)
            claims.append(seed_claim(
                FIG, f"MNIST + barcoded: Adam >> SGD on the rare (barcoded) classes (tuned SGD achieves < {RATIO:g} "
                     f"of tuned Adam's decades of decrease of the barcoded-group training loss; {AGGREGATION})",
                seed_ratio(store, s, a, 1), lambda r: r < RATIO, fmt="{:.2f}",
                extra=f"barcoded group (medians over seeds): {best['SGD'][0]} {d1s:.2f} decades (final {f1s:.3g}) vs "
                      f"{best['Adam'][0]} {d1a:.2f} (final {f1a:.3g}); MNIST group: SGD {d0s:.2f} vs Adam {d0a:.2f} "
                      f"decades (per-seed ratios " + ", ".join(f"s{k} {v:.2f}" for k, v in r0.items()) + "); grid "
                      f"(decades, all classes): {_grid_txt(store, variants['barcoded'])}"))
        else:
            claims.append(Claim(FIG, "barcoded: SGD and Adam runs present", f"have {sorted(best)}", "FAIL"))
    else:
        claims.append(Claim(FIG, "MNIST + barcoded runs present", "none", "FAIL"))
    return claims


def median_group_final(store, rows, group) -> float:
    vals = [store.final(r.run_id, "loss", "train", group) for _, r in rows.iterrows()]
    return float(np.median(vals)) if vals else math.nan
