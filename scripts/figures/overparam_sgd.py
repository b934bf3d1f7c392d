"""overparam_sgd: constant-step SGD on least squares from under- to over-parameterized.

One panel per d/n. Solid: SGD with step 1/L_max (practical) and 1/(rho_b L) (theory step), the median
over seeds with the min-max seed band; dashed: the bound (1 - mu/(rho_b L))^k (f(w_0) - f*) from the
measured L, mu and rho (each seed has its own data, hence its own bound; the median is drawn), which
holds when the problem interpolates (d >= n).

Claims follow the seed rule of ``seeds.py``: one statistic per seed (the worst panel of that seed),
min-max interval printed, PASS only when every seed shows the effect.

The noise floor (d < n) and how it scales (issue 11, point 7): the talk states the floor of
constant-step SGD as O(alpha sigma^2 / |B|). That is the with-replacement result (each step draws a
fresh batch uniformly). The trainer samples by per-epoch reshuffling (experiments/trainer.py draws a
permutation per epoch), and then the floor is smaller and scales differently: measured on this
problem family, like alpha^2 and |B|^-1.4 to |B|^-2 (reshuffling cancels the noise of an epoch to
first order, the leftover is second order in the step). The claims here only need a floor to exist
(a plateau above 1e-6 that stops decreasing), which holds under either sampling; they do not test the
O(alpha sigma^2 / |B|) scaling. The ``noise_floor`` figure does, with ``train.sampling=with_replacement``
beside the default reshuffling.
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, figure_legend, fmt_num, legend_label, mask_below, plt, save, style
from scripts.figures.seeds import draw_band, seed_claim

FIG = "overparam_sgd"
TITLE = ("constant-step SGD converges linearly when d >= n and stalls at a noise floor when d < n; "
         "the measured curve stays within the bound (1 - mu/(rho L))^k")
FLOOR = 1e-17        # below this relative suboptimality nothing is drawn (round-off)
BOUND = r"bound $(1 - \mu/(\rho L))^k$ (SGD, step $1/(\rho L)$)"
CONVERGED = 1e-10    # d >= n: relative suboptimality that counts as converged to f*
STALLED = 1e-6       # d < n: a floor above this
BOUND_TOL = 1.01     # a single run may sit above the expectation bound by round-off-sized fluctuations


def _seed(row):
    s = row.get("seed", 0)
    return 0 if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)


def _panels(store):
    """{d/n: {method: {seed: (step, rel subopt, bound, interpolates)}}}"""
    runs = store.runs(FIG)
    out = {}
    for _, row in runs.iterrows():
        cur = store.curve(row.run_id, "subopt")
        if cur.empty:
            continue
        k = cur.step.to_numpy()
        sub0 = cur.value.iloc[0]
        mu, L = row["summary.data_info.mu"], row["summary.data_info.L"]
        rho_b = row["summary.data_info.rho_b"]
        bound = (1 - mu / (rho_b * L)) ** k
        ratio = float(row["dataset.d_over_n"])
        out.setdefault(ratio, {}).setdefault(row["method"], {})[_seed(row)] = (
            k, cur.value.to_numpy() / sub0, bound, bool(row["summary.data_info.interpolates"]))
    return dict(sorted(out.items()))


def _stack(series, i):
    m = min(len(s[i]) for s in series)
    return np.stack([s[i][:m] for s in series])


def plot(store, out_dir):
    p = plt()
    panels = _panels(store)
    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig, axes = p.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (ratio, by_method) in zip(axes.flat, panels.items()):
        interp = False
        for method, by_seed in sorted(by_method.items()):
            series = list(by_seed.values())
            k = series[0][0][:min(len(s[0]) for s in series)]
            y = _stack(series, 1)
            interp = series[0][3]
            st = style(method)
            ax.set_yscale("log")
            draw_band(ax, k, mask_below(np.median(y, 0), FLOOR), mask_below(y.min(0), FLOOR),
                      mask_below(y.max(0), FLOOR), st["color"], ls=st["ls"], label=legend_label(method))
            if method == "sgd_theory" and interp:     # the bound needs interpolation
                ax.plot(k, mask_below(np.median(_stack(series, 2), 0), FLOOR), color=st["color"], ls=(0, (2, 2)),
                        lw=1.0, label=BOUND)
        ax.set_title(f"$d/n = {fmt_num(ratio)}$" + (" (interpolates)" if interp else " (noise floor)"))
        ax.set_xlabel("iteration $k$")
        ax.set_ylim(FLOOR, 10)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$(f - f^*) \,/\, (f(w_0) - f^*)$")
    fig.suptitle("median and min-max band over seeds", fontsize=9)
    fig.tight_layout()
    figure_legend(fig, axes.flat, ncol=3)
    return save(fig, out_dir, FIG)


def _lost(y):
    """Decades lost over the second half of a run (median of its first and last tenth)."""
    half = y[len(y) // 2:]
    q = max(1, len(half) // 10)
    return float(np.log10(np.median(half[:q]) / np.median(half[-q:])))


def _per_seed(panels, method, keep, fn, agg=max):
    """{seed: agg over the kept panels of fn(series)}; NaN where a kept panel lacks the seed."""
    sel = [by[method] for r, by in panels.items() if keep(r) and method in by]
    seeds = sorted({s for by in sel for s in by})
    return {s: (agg(fn(by[s]) for by in sel) if all(s in by for by in sel) else math.nan) for s in seeds}, len(sel)


def _each(panels, method, keep, fn, fmt):
    return "; ".join(f"d/n={r:g}: " + ", ".join(f"s{s} {fmt.format(fn(v))}" for s, v in sorted(by[method].items()))
                     for r, by in panels.items() if keep(r) and method in by)


def check(store):
    panels = _panels(store)
    over, under = (lambda r: r >= 1), (lambda r: r < 1)
    final = lambda s: float(s[1][-1])  # noqa: E731
    claims = []

    v, n = _per_seed(panels, "sgd_const", over, final)
    claims.append(_claim(f"d >= n: constant-step SGD (1/L_max) converges linearly to f* (rel. subopt < {CONVERGED:g} "
                         f"at the end; statistic: worst panel of the seed)", v, lambda x: x < CONVERGED, n,
                         _each(panels, "sgd_const", over, final, "{:.1e}")))

    v, n = _per_seed(panels, "sgd_const", under, final, agg=min)
    claims.append(_claim(f"d < n: constant-step SGD (1/L_max) stalls above the round-off range (rel. subopt > "
                         f"{STALLED:g} at the end; statistic: lowest panel of the seed)", v, lambda x: x > STALLED, n,
                         _each(panels, "sgd_const", under, final, "{:.1e}")))

    v, n = _per_seed(panels, "sgd_const", under, lambda s: _lost(s[1]))
    claims.append(_claim("d < n: constant-step SGD has reached its noise floor (less than one decade lost over the "
                         "second half; statistic: largest loss of a panel of the seed, in decades)", v,
                         lambda x: x < 1, n, _each(panels, "sgd_const", under, lambda s: _lost(s[1]), "{:.2f}")))

    # k = 0 is 1/1 by construction: compare from the first step on
    worst = lambda s: float(np.max(s[1][1:] / np.maximum(s[2][1:], 1e-300)))  # noqa: E731
    v, n = _per_seed(panels, "sgd_theory", over, worst)
    claims.append(_claim(f"d >= n: SGD with step 1/(rho L) stays within (1 - mu/(rho L))^k at every evaluation, in "
                         f"every seed (tolerance {BOUND_TOL:g}: the bound is on the expectation, a run concentrates "
                         f"below it); statistic: max over evaluations and panels of measured / bound", v,
                         lambda x: x <= BOUND_TOL, n, _each(panels, "sgd_theory", over, worst, "{:.3g}")))
    return claims


def _claim(text, values, ok, n_panels, extra):
    if not n_panels:
        return Claim(FIG, text, "no runs", "FAIL")
    return seed_claim(FIG, text, values, ok, fmt="{:.3g}", extra=extra)
