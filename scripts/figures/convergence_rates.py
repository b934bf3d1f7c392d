"""convergence_rates: deterministic vs stochastic methods on noisy, under-parameterized least
squares. x-axis: gradient evaluations / n; y-axis: f(w) - f*."""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, display, fmt_num, legend_label, loglog_slope, mask_below, plt, save, style, verdict

FIG = "convergence_rates"
TITLE = ("GD, SAG and SVRG converge linearly; SGD with decreasing steps sublinearly; "
         "constant-step SGD stalls at a noise floor")
FLOOR = 1e-16        # relative suboptimality below this is round-off: not drawn
ORDER = ("gd", "sag", "svrg", "sgd_const", "sgd_decreasing")


def _curves(store):
    """{method label: (x = grad evals / n, median relative suboptimality over seeds)}."""
    runs = store.runs(FIG)
    out = {}
    for method, grp in runs.groupby("method"):
        series = []
        for _, row in grp.iterrows():
            cur = store.curve(row.run_id, "subopt")
            n = row["summary.data_info.n"]
            series.append((cur.grad_evals.to_numpy() / n, cur.value.to_numpy() / cur.value.iloc[0]))
        m = min(len(s[0]) for s in series)
        out[method] = (series[0][0][:m], np.median(np.stack([s[1][:m] for s in series]), axis=0))
    return out


def plot(store, out_dir):
    p = plt()
    fig, ax = p.subplots(figsize=(6, 4))
    curves = _curves(store)
    for method in [m for m in ORDER if m in curves] + sorted(set(curves) - set(ORDER)):
        x, y = curves[method]
        ax.semilogy(x, mask_below(y, FLOOR), label=legend_label(method), **style(method))
    ax.set_xlabel("gradient evaluations / n")
    ax.set_ylabel(r"$(f(w) - f^*) \,/\, (f(w_0) - f^*)$")
    runs = store.runs(FIG)
    ratios = sorted(set(runs["dataset.d_over_n"].dropna())) if "dataset.d_over_n" in runs else []
    ax.set_title("noisy least squares" + (f", $d/n = {fmt_num(ratios[0])}$" if len(ratios) == 1 else ""))
    ax.legend()
    return save(fig, out_dir, FIG)


def _half_decades(x, y):
    """log10 decrease over the first and over the second half of the x range."""
    mid = np.searchsorted(x, x[-1] / 2)
    ly = np.log10(np.maximum(y, 1e-16))   # below 1e-16 is round-off
    return ly[0] - ly[mid], ly[mid] - ly[-1]


def check(store):
    cur = _curves(store)
    claims = []
    lin = []
    ok_lin = True
    for c in ("gd", "sag", "svrg"):
        if c not in cur:
            ok_lin = False
            lin.append(f"{c}: missing")
            continue
        x, y = cur[c]
        first, second = _half_decades(x, y)
        floor = y[-1] < 1e-12              # reached round-off: no later decrease is possible
        linear = y[-1] < 1e-6 and (floor or second > 0.3 * first)
        ok_lin &= linear
        lin.append(f"{display(c)}: final {y[-1]:.1e}, decades 1st/2nd half {first:.1f}/{second:.1f}")
    claims.append(Claim(FIG, "GD, SAG and SVRG converge linearly (rel. subopt < 1e-6, the second half "
                        "keeps >= 30% of the first half's log-decrease)", "; ".join(lin), verdict(ok_lin)))

    if "sgd_decreasing" in cur and "sgd_const" in cur:
        x, y = cur["sgd_decreasing"]
        # A power law x^-a loses the same number of decades over every doubling of x; a linear
        # rate loses twice as many over the last doubling as over the one before.
        at = lambda v: np.log10(np.interp(v, x, y))
        last, prev = at(x[-1] / 2) - at(x[-1]), at(x[-1] / 4) - at(x[-1] / 2)
        r = last / prev if prev > 0 else math.nan
        slope = loglog_slope(x[x >= x[-1] / 2], y[x >= x[-1] / 2])
        xc, yc = cur["sgd_const"]
        q = len(yc) // 4
        late, mid = np.median(yc[3 * q:]), np.median(yc[q:2 * q])
        ok_dec = 0.5 <= r <= 1.5 and last > 0 and y[-1] < yc[-1]
        claims.append(Claim(FIG, "SGD with decreasing steps is sublinear (decades lost over the last doubling of "
                            "x / over the doubling before in [0.5, 1.5]: a power law) and ends below constant-step SGD",
                            f"ratio {r:.2f} (log-log slope {slope:.2f}), final {y[-1]:.2e} vs constant {yc[-1]:.2e}",
                            verdict(ok_dec)))
        ok_stall = late > 1e-4 and 1 / 3 <= late / mid <= 3
        claims.append(Claim(FIG, "constant-step SGD stalls at a noise floor (median of the last quarter "
                            "within 3x of the second quarter, above 1e-4)",
                            f"2nd quarter {mid:.2e}, last quarter {late:.2e}", verdict(ok_stall)))
    else:
        claims.append(Claim(FIG, "SGD runs present", "missing sgd_const or sgd_decreasing", "FAIL"))
    return claims
