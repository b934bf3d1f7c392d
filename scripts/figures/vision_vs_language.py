"""vision_vs_language: SGD-type line searches (SLS, PoNoS) against Adam on a vision and on a
language task, and PoNoS_prec (the PoNoS search with Adam's preconditioner) on both
(Galli, Rauhut & Schmidt 2023, transformer figure; the talk's bridge to part (d)).

Adam runs a half-decade grid of step sizes; per dataset the figure keeps the step size whose
worst seed has the lowest final training loss. The line searches have nothing to tune. Every
claim is per seed (scripts/figures/seeds.py: 3 seeds, PASS only when every seed shows it,
min-max interval printed); comparisons are paired within a seed.

PoNoS_prec runs the consistent ``ada_sls`` reading (optimizers/_prec.py: trials along D^-1 g
with the test term g^T D^-1 g, then the step along D^-1 m_hat; Polyak first trial, no
backtrack memory, eta_max 10, as the paper's reset_option 200). The earlier preset ran the
repair of the released code (trials along D^-1 m_hat, test g^T D^-1 g), which is internally
inconsistent (issue 11: g^T d / g^T D^-1 g has median 0.075 and is below c = 0.1 on 64% of
steps).

Quick profile and timings: 3 seeds did not fit the one-seed profile (1,000 MNIST images x 40
epochs; 256 Tiny Shakespeare windows x 20 epochs): on the shared 2-core machine one SLS LeNet
run took 163 s and one PoNoS_prec LM run ~4.5 min for 320 steps at ~30 backtracks per step.
The profile was made cheaper, not the statistics weaker: 500 images x 24 epochs (240 steps)
and 128 windows x 16 epochs (128 steps). Measured there (2 CPU cores shared with 5 other
jobs): vision line-search runs 70-135 s, PoNoS_prec LM runs 325-486 s (31-33 backtracks per
step), Adam LM runs 16-50 s.

Diagnosis (seed 0 variants, same budgets; final training loss, backtracks per step):

    variant (PoNoS_prec)               language (nats)  bt/step   vision (LeNet)   bt/step
    ada_sls (preset; 3 seeds)          4.77-4.95        31.6-32.7 0.056-0.59       1.4-1.8
    released (repaired code)           5.03             25.6      0.032            1.9
    dir_der                            6.34             25.2      diverged (ep. 8) 16.4
    ada_sls + memory                   4.67             1.28      0.016            0.46
    ada_sls + eta_max 0.01 (Adam units) 2.48            0.72      0.0011           0.01
    PoNoS / SLS (3 seeds)              4.50-4.55 / 4.69-4.71  ~1.0  6e-4-8e-4 / 7e-4-3.6e-3
    Adam, best grid step 1e-2 (3 seeds) 2.00-2.76

The consistent reading does not close the gap: it ends above PoNoS in every seed. The cost
(~32 backtracks per step) is the missing backtrack memory (c_p = 0.1: the first trial asks to
remove the whole loss), and memory removes it (1.3 per step) without changing the loss much.
The stall is the step size: every search accepts steps far above Adam's best step (they pass
the Armijo test on the 16-window minibatch, which this model does not interpolate); capped at
Adam's step (eta_max = 0.01) PoNoS_prec closes ~80% of the gap on seed 0, which is then
Adam with an occasional shorter step rather than a line search. dir_der is worst: with
momentum g^T d is small, so its Polyak step (f / (c_p g^T d)) is larger still.

Decision: the claim "PoNoS_prec closes most of the language gap" is checked on the
consistent reading with the thresholds unchanged (TIE, MOST) and FAILs on the quick profile;
the variants above are reported here, not substituted for the preset (eta_max = 0.01 is a
tuned step size, the thing the line search was meant to remove).
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures import seeds
from scripts.figures.common import Claim, display, legend_label, lr_tex, plt, save, style
from scripts.figures.full_batch_gap import fmt_lr, median_curve, run_table, select_step_sizes

FIG = "vision_vs_language"
TITLE = ("SGD-type line searches (SLS, PoNoS) are at least as good as Adam on vision and worse than Adam "
         "on language; PoNoS_prec closes most of the language gap")
LANGUAGE = ("tinyshakespeare", "wikitext2", "ptb")
LS = ("sls", "ponos")
ORDER = ("sls", "ponos", "ponos_prec", "adam")       # legend order
TIE = 1.25          # "at least as good": within 25% of the other's final loss
MOST = 0.5          # "closes most of the gap": more than half


def kind(dataset) -> str:
    return "language" if str(dataset) in LANGUAGE else "vision"


def _selected(store):
    tab = run_table(store, FIG)
    return tab, select_step_sizes(tab, ("dataset", "method"))


def summary(store) -> dict:
    """{dataset: {method: selected row}} for sls, ponos, ponos_prec and adam (best step size)."""
    _, sel = _selected(store)
    out = {}
    for _, r in sel.iterrows():
        out.setdefault(r.dataset, {})[r.method] = r
    return out


def plot(store, out_dir):
    p = plt()
    tab, sel = _selected(store)
    datasets = sorted(sel.dataset.unique(), key=lambda d: (kind(d) == "language", d)) if len(sel) else []
    fig, axes = p.subplots(1, max(1, len(datasets)), figsize=(4.6 * max(1, len(datasets)), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        here = sel[sel.dataset == ds]
        chosen = {rid for ids in here.run_ids for rid in ids}
        # faint: Adam's other step sizes (what the grid tried)
        others = tab[(tab.dataset == ds) & (tab.method == "adam") & ~tab.run_id.isin(chosen)]
        lrs = sorted(set(others.lr.dropna()))
        first = True
        for _, r in others.iterrows():
            cur = store.curve(r.run_id, "loss")
            if len(cur):
                lab = f"{display('adam', tex=True)}, other steps: " + ", ".join(map(lr_tex, lrs)) if first else None
                ax.plot(cur.epoch, cur.value, color=style("adam")["color"], alpha=0.25, lw=0.8, label=lab)
                first = False
        order = lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m)  # noqa: E731
        for _, s in sorted(here.iterrows(), key=lambda kv: order(kv[1].method)):
            mc = median_curve(store, s.run_ids)
            if mc is None:
                continue
            xs, med, lo, hi = mc
            st = style(s.method)
            name = (f"{legend_label(s.method, s.lr)}, best of grid" if s.method == "adam" else legend_label(s.method))
            seeds.draw_band(ax, xs, med, lo, hi, st["color"], ls=st["ls"], label=f"{name} (median, min-max seeds)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{ds} ({kind(ds)})")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training loss")
    fig.suptitle("SGD-type line searches vs Adam: vision and language (PoNoS_prec: ada_sls reading)", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _best_ls(rows):
    have = [rows[m] for m in LS if m in rows]
    return min(have, key=lambda r: r.worst) if have else None


def _per_seed_final(tab, row) -> dict[int, float]:
    """{seed: final training loss} of a selected row (Adam: at the selected step size)."""
    runs = tab[tab.run_id.isin(set(row.run_ids))]
    return seeds.per_seed(runs, lambda g: float(g.final.iloc[0]))


def backtracks_per_step(store, run_ids) -> float:
    """Median over runs of the mean rejected trials per step (mean of the opt/backtracks
    intervals, which all have the same number of steps but the last)."""
    vals = []
    for rid in run_ids:
        cur = store.curve(rid, "backtracks", "opt")
        if len(cur):
            vals.append(float(np.nanmean(cur.value.to_numpy(float))))
    return float(np.median(vals)) if vals else math.nan


def _ratio(a, b):
    return a / b if b > 0 else math.inf


def check(store):
    tab, sel = _selected(store)
    res = {}
    for _, r in sel.iterrows():
        res.setdefault(r.dataset, {})[r.method] = r
    claims = []
    vis = {d: r for d, r in res.items() if kind(d) == "vision"}
    lang = {d: r for d, r in res.items() if kind(d) == "language"}
    if not vis or not lang:
        return [Claim(FIG, TITLE, f"need a vision and a language dataset; have {sorted(res)}", "FAIL")]

    def context(d, rows):
        bts = ", ".join(f"{display(m)} {backtracks_per_step(store, rows[m].run_ids):.2f}"
                        for m in ORDER if m in rows and m != "adam")
        return f"backtracks per step (median over seeds): {bts}"

    for d, rows in sorted(vis.items()):
        ls, adam = _best_ls(rows), rows.get("adam")
        if ls is None or adam is None:
            claims.append(Claim(FIG, f"{d}: line-search and Adam runs present", "missing", "FAIL"))
            continue
        ratio = seeds.paired(_per_seed_final(tab, ls), _per_seed_final(tab, adam), _ratio)
        claims.append(seeds.seed_claim(
            FIG, f"{d} (vision): the best SGD-type line search ({display(ls.method)}, chosen by its worst seed) "
                 f"ends at a final training loss <= {TIE}x Adam's (Adam at its best grid step size {fmt_lr(adam.lr)}), "
                 f"per seed; aggregation: {seeds.AGGREGATION}",
            ratio, lambda v: v <= TIE, extra=context(d, rows)))

    for d, rows in sorted(lang.items()):
        ls, adam, prec = _best_ls(rows), rows.get("adam"), rows.get("ponos_prec")
        if ls is None or adam is None:
            claims.append(Claim(FIG, f"{d}: line-search and Adam runs present", "missing", "FAIL"))
            continue
        f_ls, f_adam = _per_seed_final(tab, ls), _per_seed_final(tab, adam)
        ratio = seeds.paired(f_ls, f_adam, _ratio)
        claims.append(seeds.seed_claim(
            FIG, f"{d} (language): the best SGD-type line search ({display(ls.method)}) ends >= {TIE}x above "
                 f"Adam's final training loss (Adam at {fmt_lr(adam.lr)}), per seed; aggregation: {seeds.AGGREGATION}",
            ratio, lambda v: v >= TIE, extra=context(d, rows)))
        if prec is None:
            claims.append(Claim(FIG, f"{d}: PoNoS_prec runs present", "none", "FAIL"))
            continue
        f_prec = _per_seed_final(tab, prec)
        gap = seeds.paired(f_ls, f_adam, lambda a, b: a - b)
        # a seed without a gap (line search <= Adam) has nothing to close: NaN, not showing it
        frac = {s: ((f_ls[s] - f_prec[s]) / gap[s] if gap[s] > 0 and s in f_prec else math.nan) for s in gap}
        each = ", ".join(f"s{s} PoNoS_prec {f_prec.get(s, math.nan):.3g} / {display(ls.method)} {f_ls[s]:.3g} / "
                         f"Adam {f_adam[s]:.3g}" for s in sorted(gap))
        claims.append(seeds.seed_claim(
            FIG, f"{d} (language): PoNoS_prec (consistent ada_sls reading) closes more than {MOST:.0%} of the gap, "
                 f"(L_line search - L_PoNoS_prec) / (L_line search - L_Adam) in final training loss, per seed; "
                 f"aggregation: {seeds.AGGREGATION}",
            frac, lambda v: v > MOST, fmt="{:.2f}", extra=f"final losses (nats): {each}"))
    return claims
