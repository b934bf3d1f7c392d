"""vision_vs_language: SGD-type line searches (SLS, PoNoS) against Adam on a vision and on a
language task, and PoNoS_prec (the PoNoS search along the Adam direction) on both
(Galli, Rauhut & Schmidt 2023, transformer figure; the talk's bridge to part (d)).

Adam runs a half-decade grid of step sizes; per dataset the figure keeps the step size whose
worst seed has the lowest final training loss. The line searches have nothing to tune.
"""
from __future__ import annotations

import math


from scripts.figures.common import Claim, display, legend_label, lr_tex, plt, save, style, verdict
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
        order = lambda m: (ORDER.index(m) if m in ORDER else len(ORDER), m)
        for _, s in sorted(here.iterrows(), key=lambda kv: order(kv[1].method)):
            mc = median_curve(store, s.run_ids)
            if mc is None:
                continue
            xs, med, lo, hi = mc
            st = style(s.method)
            name = (f"{legend_label(s.method, s.lr)}, best of grid" if s.method == "adam" else legend_label(s.method))
            ax.plot(xs, med, label=name, **st)
            ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"{ds} ({kind(ds)})")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training loss")
    fig.suptitle("SGD-type line searches vs Adam: vision and language", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _best_ls(rows):
    have = [rows[m] for m in LS if m in rows]
    return min(have, key=lambda r: r.worst) if have else None


def check(store):
    res = summary(store)
    claims = []
    vis = {d: r for d, r in res.items() if kind(d) == "vision"}
    lang = {d: r for d, r in res.items() if kind(d) == "language"}
    if not vis or not lang:
        return [Claim(FIG, TITLE, f"need a vision and a language dataset; have {sorted(res)}", "FAIL")]

    parts, ok_v = [], True
    for d, rows in sorted(vis.items()):
        ls, adam = _best_ls(rows), rows.get("adam")
        if ls is None or adam is None:
            parts.append(f"{d}: missing line-search or Adam runs")
            ok_v = False
            continue
        ratio = ls.worst / adam.worst if adam.worst > 0 else math.inf
        ok_v &= ratio <= TIE
        parts.append(f"{d}: best line search {display(ls.method)} {ls.worst:.3g} vs Adam {adam.worst:.3g} "
                     f"({fmt_lr(adam.lr)}) -> ratio {ratio:.2f}")
    claims.append(Claim(FIG, f"vision: the best SGD-type line search reaches a final training loss <= {TIE}x Adam's "
                        f"(Adam at its best grid step size)", "; ".join(parts), verdict(ok_v)))

    parts, ok_l, parts_p, ok_p = [], True, [], True
    for d, rows in sorted(lang.items()):
        ls, adam, prec = _best_ls(rows), rows.get("adam"), rows.get("ponos_prec")
        if ls is None or adam is None:
            parts.append(f"{d}: missing line-search or Adam runs")
            ok_l = ok_p = False
            continue
        ratio = ls.worst / adam.worst if adam.worst > 0 else math.inf
        ok_l &= ratio >= TIE
        parts.append(f"{d}: best line search {display(ls.method)} {ls.worst:.3g} vs Adam {adam.worst:.3g} "
                     f"({fmt_lr(adam.lr)}) -> ratio {ratio:.2f}")
        if prec is None:
            parts_p.append(f"{d}: no PoNoS_prec run")
            ok_p = False
            continue
        gap = ls.worst - adam.worst
        frac = (ls.worst - prec.worst) / gap if gap > 0 and math.isfinite(prec.worst) else -math.inf
        ok_p &= gap > 0 and frac > MOST
        parts_p.append(f"{d}: PoNoS_prec {prec.worst:.3g}, gap SGD-type {ls.worst:.3g} - Adam {adam.worst:.3g} "
                       f"= {gap:.3g} nats, fraction closed {frac:.2f}")
    claims.append(Claim(FIG, f"language: the best SGD-type line search ends >= {TIE}x above Adam's final training loss",
                        "; ".join(parts), verdict(ok_l)))
    claims.append(Claim(FIG, f"language: PoNoS_prec closes more than {MOST:.0%} of the gap, "
                        "(L_line search - L_PoNoS_prec) / (L_line search - L_Adam) in final training loss",
                        "; ".join(parts_p), verdict(ok_p)))
    return claims
