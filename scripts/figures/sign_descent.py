"""sign_descent: sign-based updates explain Adam's advantage on language models (Kunstner et
al. 2023 Fig. 7, 2024). Full-batch training of a transformer LM with SGD(+m), Adam(+m),
sign descent(+m), normalized GD(+m), rescaled sign descent and Lion; each method at the step
size of its half-decade grid whose worst seed has the lowest final training loss.

Tolerance: "tracks" = final training loss within half a decade (a factor 10^0.5 = 3.16).
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, display, legend_label, plt, save, style, verdict
from scripts.figures.full_batch_gap import fmt_lr, label_of, median_curve, run_table, select_step_sizes

FIG = "sign_descent"
TITLE = ("sign descent with momentum and Lion track Adam; normalized GD tracks GD "
         "(full-batch transformer LM, tolerance half a decade of final loss)")
TOL = 0.5            # decades
ORDER = ("sgd", "sgd_m", "ngd", "ngd_m", "rsign", "sign", "sign_m", "lion", "adam_nom", "adam")


def _selected(store):
    tab = run_table(store, FIG)
    return tab, select_step_sizes(tab, ("method",))


def plot(store, out_dir):
    p = plt()
    tab, sel = _selected(store)
    fig, (ax, ax2) = p.subplots(1, 2, figsize=(11, 4))
    rows = {r.method: r for r in sel.itertuples()}
    for m in [m for m in ORDER if m in rows] + sorted(set(rows) - set(ORDER)):
        s = rows[m]
        mc = median_curve(store, s.run_ids)
        if mc is None:
            continue
        xs, med, lo, hi = mc
        st = style(m)
        ax.plot(xs, med, label=legend_label(m, s.lr), **st)
        ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.12, lw=0)
        per_lr = tab[tab.method == m].groupby("lr").final.max().sort_index()
        y = per_lr.replace(np.inf, np.nan)
        ax2.plot(per_lr.index, y, ms=4, label=legend_label(m), **style(m, markers=True))
    ax.set_yscale("log")
    ax.set_xlabel("epoch (= full-batch step)")
    ax.set_ylabel("training loss")
    ax.set_title("best step size of each method")
    ax.legend(fontsize=7, ncol=2)          # the right panel's lines have the same looks (plus markers)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.xaxis.set_minor_formatter(p.NullFormatter())
    ax2.set_xlabel("step size")
    ax2.set_ylabel("final training loss (worst seed; gaps: diverged)")
    ax2.set_title("step-size sensitivity")
    fig.suptitle("sign descent, normalized GD, Lion, Adam and SGD on a transformer LM (full batch)", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _dec(a, b) -> float:
    """log10(a / b): how many decades a lies above b."""
    if not (a > 0 and b > 0) or math.isinf(a) or math.isinf(b):
        return math.inf if (math.isinf(a) or b == 0) else -math.inf
    return math.log10(a / b)


def check(store):
    _, sel = _selected(store)
    L = {r.method: r.worst for r in sel.itertuples()}
    lr = {r.method: r.lr for r in sel.itertuples()}
    need = ("sgd", "sgd_m", "adam", "sign_m", "lion", "ngd", "ngd_m")
    missing = [m for m in need if m not in L]
    if missing:
        return [Claim(FIG, TITLE, f"missing methods: {', '.join(missing)}", "FAIL")]
    fin = lambda m: f"{label_of(m)} {L[m]:.3g} ({fmt_lr(lr[m])})"
    gap = _dec(min(L["sgd"], L["sgd_m"]), L["adam"])
    context = f"GD(+m) vs {display('adam')}: {gap:.2f} decades"
    claims = []
    # With no GD-Adam gap "tracks Adam" and "tracks GD" cannot be told apart.
    distinct = gap > 2 * TOL
    for m in ("sign_m", "lion"):
        d = _dec(L[m], L["adam"])
        ok = d <= TOL
        claims.append(Claim(FIG, f"{label_of(m)} tracks {display('adam')}: final training loss at most {TOL} "
                            f"decades above {display('adam')}'s", f"{fin(m)} vs {fin('adam')}: {d:+.2f} decades; {context}",
                            verdict(ok) if distinct else "INCONCLUSIVE"))
    d0, d1 = _dec(L["ngd"], L["sgd"]), _dec(L["ngd_m"], L["sgd_m"])
    far = _dec(min(L["ngd"], L["ngd_m"]), L["adam"])
    ok = abs(d0) <= TOL and abs(d1) <= TOL
    claims.append(Claim(FIG, f"normalized GD tracks GD: normalized GD within {TOL} decades of GD and normalized GD+m "
                        f"within {TOL} decades of GD+m", f"{fin('ngd')} vs {fin('sgd')}: {d0:+.2f}; {fin('ngd_m')} vs "
                        f"{fin('sgd_m')}: {d1:+.2f}; best normalized GD vs {display('adam')}: {far:+.2f} decades; {context}",
                        verdict(ok) if distinct else "INCONCLUSIVE"))
    edges = [f"{label_of(r.method)} {fmt_lr(r.lr)}" for r in sel.itertuples() if r.edge]
    others = [fin(m) for m in ("sign", "rsign", "adam_nom") if m in L]
    extra = ("; also " + ", ".join(others) if others else "") + (
        "; selected step size at a grid end: " + ", ".join(edges) if edges
        else "; every selected step size is inside its grid")
    claims[-1].measured += extra
    return claims
