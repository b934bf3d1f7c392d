"""heavy_tailed_labels: token frequencies are heavy tailed, and SGD makes little progress on the
rare classes while Adam does not care about frequency (Kunstner et al. 2024, Fig. 1 and the
PTB appendix).

Classes are sorted by training frequency and cut into groups holding equal numbers of tokens
(group 0: the most frequent classes); the trainer logs the training loss of every group.
Per method the step size is the one of its half-decade grid whose worst seed has the lowest
final training loss among the *stable* runs (the training loss never rose above its initial
value; Kunstner et al. hand-picked stable step sizes for their per-class plots and note that
larger ones "are better at the end but unstable"). The selection without the stability filter
is reported beside it when it differs.

Seeds (issue 11): the quick grid runs seeds 0-2. The step size is still selected by the worst
seed; the claim statistic (SGD's rare-half progress over Adam's) is then computed within each seed
from that seed's two runs (a paired comparison), and the claim PASSes only when every seed shows
the effect (``seeds.seed_claim``). Diagnosis: with one seed the verdict was seed noise: the
per-seed ratios measured before this change were 0.53, 0.38, 0.44 (seed 0 alone fails the 0.5
threshold, the other two pass). The threshold stays at 0.5 (fixed before any seeds were run);
the quick claim is FAIL whenever one seed is above it, and the measured text says which.

The per-class helpers here are shared with linear_heavy_tail.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scripts.figures.common import Claim, figure_legend, legend_label, plt, save, verdict
from scripts.figures.full_batch_gap import (FAMILY, data_info, fmt_lr, label_of, median_curve, run_table,
                                            select_step_sizes)
from scripts.figures.seeds import AGGREGATION, draw_band, seed_claim

FIG = "heavy_tailed_labels"
TITLE = ("token frequencies are heavy tailed; SGD's training loss on the rare-class groups falls far slower "
         "than Adam's")
RARE_SHARE_MAX = 0.2      # a balanced distribution puts 50% of the tokens in the rarer half of its classes
PROGRESS_RATIO = 0.5      # SGD's rare-group progress (decades) at most half of Adam's
FLOOR = 1e-8              # losses below this count as 0 when taking logs


# ----------------------------------------------------------------------------- frequencies
def class_counts(store, fig: str) -> np.ndarray | None:
    """Training class counts of the figure's data (from a run's data_info.json)."""
    for _, r in store.runs(fig).iterrows():
        counts = data_info(store, r).get("class_counts")
        if counts:
            return np.asarray(counts, float)
    return None


def frequency_stats(counts) -> dict:
    c = np.sort(np.asarray(counts, float))[::-1]
    total = c.sum()
    present = c[c > 0]
    k = len(present)
    rank = np.arange(1, k + 1)
    fit = present >= 2 if (present >= 2).sum() >= 3 else np.ones(k, bool)   # singletons form a plateau
    slope, icpt = np.polyfit(np.log(rank[fit]), np.log(present[fit]), 1) if fit.sum() >= 2 else (math.nan, math.nan)
    return {"classes": len(c), "present": k, "tokens": total,
            "rare_half_present": present[k - k // 2:].sum() / total if k else math.nan,
            "rare_half_vocab": c[len(c) - len(c) // 2:].sum() / total,
            "top10pct": present[:max(1, k // 10)].sum() / total if k else math.nan,
            "zipf_s": -slope, "zipf_c": math.exp(icpt), "singletons": int((present == 1).sum())}


# ----------------------------------------------------------------------------- per-group progress
def group_ids(store, run_id) -> list[int]:
    c = store.curves
    sel = c[(c.run_id == run_id) & (c.split == "train") & (c.metric == "loss") & (c.group >= 0)]
    return sorted(int(g) for g in sel.group.unique())


def run_progress(store, run_id, groups) -> dict:
    """{group: decades of decrease of its training loss} of one run (-inf for a loss that ends
    non-finite)."""
    out = {}
    for g in groups:
        cur = store.curve(run_id, "loss", "train", g)
        if len(cur) < 2:
            continue
        a, b = float(cur.value.iloc[0]), float(cur.value.iloc[-1])
        out[g] = math.log10(max(a, FLOOR) / max(b, FLOOR)) if math.isfinite(b) else -math.inf
    return out


def group_progress(store, run_ids, groups) -> dict:
    """{group: decades of decrease of its training loss, median over seeds}."""
    per_run = [run_progress(store, r, groups) for r in run_ids]
    return {g: float(np.median(v)) for g in groups if (v := [p[g] for p in per_run if g in p])}


def seed_runs(tab: pd.DataFrame, run_ids) -> dict[int, str]:
    """{seed: run id} of the selected runs (one run per seed at the selected step size)."""
    seed = dict(zip(tab.run_id, tab.seed))
    return {int(seed.get(r, 0)): r for r in run_ids}


def stable_flags(store, tab: pd.DataFrame) -> pd.Series:
    """A run is stable when its training loss never rose above the initial value."""
    flags = []
    for r in tab.itertuples():
        cur = store.curve(r.run_id, "loss")
        v = cur.value.to_numpy()
        flags.append(bool(len(v)) and bool(np.all(np.isfinite(v))) and float(np.max(v)) <= float(v[0]) * (1 + 1e-9)
                     and math.isfinite(r.final))
    return pd.Series(flags, index=tab.index)


def select(store, fig: str):
    """(run table, stable selection, unfiltered selection), one row per method."""
    tab = run_table(store, fig)
    tab = tab[tab.method.isin(FAMILY["sgd"] + FAMILY["adam"])].copy()
    tab["stable"] = stable_flags(store, tab) if len(tab) else pd.Series(dtype=bool)
    ok = tab.groupby(["method", "lr"]).stable.transform("all") if len(tab) else tab.stable
    return tab, select_step_sizes(tab[ok], ("method",)), select_step_sizes(tab, ("method",))


def halves(groups):
    """(frequent half, rare half) of the class groups (group 0 = the most frequent)."""
    half = len(groups) / 2
    return [g for g in groups if g < half], [g for g in groups if g >= half]


def family_best(sel: pd.DataFrame, fam: str):
    g = sel[sel.method.isin(FAMILY[fam])]
    return g.loc[g.worst.idxmin()] if len(g) else None


def progress_claim(store, fig: str, tab, sel, sel_all, what: str) -> Claim:
    """SGD's rare-half progress over Adam's, per seed (paired within the seed), at the step sizes
    selected on the worst seed. A seed shows the effect when Adam's rare-half decrease is > 0.3
    decades, the ratio is <= PROGRESS_RATIO and the frequent half's ratio is above the rare half's."""
    sgd, adam = family_best(sel, "sgd"), family_best(sel, "adam")
    if sgd is None or adam is None:
        return Claim(fig, what, "need stable SGD and Adam runs", "FAIL")
    groups = group_ids(store, sgd.run_ids[0])
    if len(groups) < 2:
        return Claim(fig, what, "no per-class-group losses in the store (train.class_groups)", "FAIL")
    freq, rare = halves(groups)
    mean = lambda p, gs: float(np.mean([p[g] for g in gs if g in p])) if any(g in p for g in gs) else math.nan
    rs, ra = seed_runs(tab, sgd.run_ids), seed_runs(tab, adam.run_ids)
    ratio, shows, detail = {}, {}, []
    for s in sorted(set(rs) & set(ra)):
        ps, pa = run_progress(store, rs[s], groups), run_progress(store, ra[s], groups)
        s_rare, a_rare, s_freq, a_freq = mean(ps, rare), mean(pa, rare), mean(ps, freq), mean(pa, freq)
        r_rare = s_rare / a_rare if a_rare > 0 else math.nan
        r_freq = s_freq / a_freq if a_freq > 0 else math.nan
        ratio[s] = r_rare
        shows[s] = bool(a_rare > 0.3 and r_rare <= PROGRESS_RATIO and r_freq > r_rare)
        detail.append(f"s{s}: rare SGD {s_rare:.2f} / Adam {a_rare:.2f}, frequent SGD {s_freq:.2f} / Adam "
                      f"{a_freq:.2f} (ratio {r_freq:.2f})")
    claim = seed_claim(fig, what, ratio, lambda v: v <= PROGRESS_RATIO, fmt="{:.2f}")
    claim.measured = "SGD/Adam rare-half progress ratio " + claim.measured
    if claim.status == "PASS" and not all(shows.values()):
        claim.status = "FAIL"
        claim.measured += ("; seeds where Adam's rare-half decrease is <= 0.3 or the frequent-half ratio is not "
                           "above the rare-half one: " + ", ".join(f"s{s}" for s, ok in shows.items() if not ok))
    ps, pa = group_progress(store, sgd.run_ids, groups), group_progress(store, adam.run_ids, groups)
    claim.measured += (f"; selection (worst seed): {label_of(sgd.method)} ({fmt_lr(sgd.lr)}, final {sgd.worst:.3g}) "
                       f"vs {label_of(adam.method)} ({fmt_lr(adam.lr)}, final {adam.worst:.3g}); decades of loss "
                       f"decrease, rare half = groups {rare[0]}-{rare[-1]}: " + "; ".join(detail)
                       + "; per group (median over seeds) SGD " + " ".join(f"{ps.get(g, math.nan):.2f}" for g in groups)
                       + " | Adam " + " ".join(f"{pa.get(g, math.nan):.2f}" for g in groups))
    s_all, a_all = family_best(sel_all, "sgd"), family_best(sel_all, "adam")
    if s_all is not None and a_all is not None and (s_all.run_ids != sgd.run_ids or a_all.run_ids != adam.run_ids):
        claim.measured += (f"; without the stability filter the selection would be {label_of(s_all.method)} "
                           f"{fmt_lr(s_all.lr)} (final {s_all.worst:.3g}) and {label_of(a_all.method)} "
                           f"{fmt_lr(a_all.lr)} (final {a_all.worst:.3g})")
    return claim


PROGRESS_WHAT = ("SGD's loss on the rare half of the class groups falls far slower than Adam's: in every seed "
                 f"Adam's rare-half decrease > 0.3 decades, SGD's <= {PROGRESS_RATIO} x Adam's, and the SGD/Adam "
                 "progress ratio lower on the rare half than on the frequent half (best stable step size per method, "
                 f"selected on the worst seed; {AGGREGATION})")


# ----------------------------------------------------------------------------- plot
def plot_groups(store, fig_id: str, out_dir, counts, title: str, logy: bool):
    p = plt()
    tab, sel, _ = select(store, fig_id)
    methods = [m for m in ("sgd", "sgd_m", "adam_nom", "adam") if m in set(sel.method)]
    cols = len(methods) + (1 if counts is not None else 0)
    fig, axes = p.subplots(1, max(1, cols), figsize=(3.6 * max(1, cols), 3.4), squeeze=False)
    axes = list(axes[0])
    if counts is not None:
        ax = axes.pop(0)
        st = frequency_stats(counts)
        c = np.sort(counts[counts > 0])[::-1]
        rank = np.arange(1, len(c) + 1)
        ax.loglog(rank, c, ".", ms=3, label="classes")
        if math.isfinite(st["zipf_s"]):
            ax.loglog(rank, st["zipf_c"] * rank ** -st["zipf_s"], "k--", lw=0.8,
                      label=f"Zipf fit $s = {st['zipf_s']:.2f}$")
        ax.set_xlabel("class rank")
        ax.set_ylabel("training count")
        ax.set_title(f"rarer half of classes: {st['rare_half_present']:.0%} of samples", fontsize=9)
        ax.legend(fontsize=7)
    cmap = p.get_cmap("viridis")
    for ax, m in zip(axes, methods):
        s = sel[sel.method == m].iloc[0]
        groups = group_ids(store, s.run_ids[0])
        for g in groups:
            mc = median_curve(store, s.run_ids, group=g)
            if mc is None:
                continue
            xs, med, lo, hi = mc
            tag = " (most frequent)" if g == groups[0] else " (rarest)" if g == groups[-1] else ""
            draw_band(ax, xs, med, lo, hi, cmap(g / max(1, len(groups) - 1)), alpha=0.12, lw=1.2,
                      label=f"group {g}{tag}")
        mc = median_curve(store, s.run_ids)
        if mc is not None:
            ax.plot(mc[0], mc[1], "k--", lw=1, label="all classes")
        ax.set_title(legend_label(m, s.lr) + (f", median of {s.seeds} seeds" if s.seeds > 1 else ""), fontsize=9)
        ax.set_xlabel("epoch")
        if logy:
            ax.set_yscale("log")
    if methods:
        axes[0].set_ylabel("training loss per group (0 = most frequent)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    figure_legend(fig, axes, ncol=6)      # the groups' colours, shared by the method panels
    return save(fig, out_dir, fig_id)


def plot(store, out_dir):
    return plot_groups(store, FIG, out_dir, class_counts(store, FIG),
                       "heavy-tailed tokens: training loss per frequency group (10% of the tokens each)", logy=False)


def check(store):
    claims = []
    counts = class_counts(store, FIG)
    if counts is None:
        claims.append(Claim(FIG, "token frequencies are heavy tailed", "no class counts in the store "
                            "(data_info.json of the runs)", "FAIL"))
    else:
        st = frequency_stats(counts)
        ok = st["rare_half_present"] <= RARE_SHARE_MAX and 0.5 <= st["zipf_s"] <= 2.0
        claims.append(Claim(
            FIG, f"token frequencies are heavy tailed: the rarer half of the classes that occur holds <= "
                 f"{RARE_SHARE_MAX:.0%} of the training tokens (50% if balanced) and a Zipf fit count ~ rank^-s has "
                 "s in [0.5, 2]",
            f"{int(st['tokens'])} training tokens, {st['present']} of {st['classes']} classes occur "
            f"({st['singletons']} once); rarer half of the occurring classes: {st['rare_half_present']:.1%} of the "
            f"tokens; rarer half of the vocabulary: {st['rare_half_vocab']:.1%}; top 10% of the classes: "
            f"{st['top10pct']:.1%}; Zipf exponent s = {st['zipf_s']:.2f} (fit on classes seen twice or more)",
            verdict(ok)))
    tab, sel, sel_all = select(store, FIG)
    claims.append(progress_claim(store, FIG, tab, sel, sel_all, PROGRESS_WHAT))
    return claims
