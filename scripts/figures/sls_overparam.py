"""sls_overparam: SLS against the degree of over-parameterization (SLS paper figure 2, SPS `mf`).

Two families of problems (tasks matfac and lstsq_net, conf/task/), one row of panels each, ordered from
interpolating to far from it:
  matrix factorisation, linear net of hidden rank full, 10 (interpolate), 4, 1 (f* > 0);
  least squares, d < n, label noise sigma = 0 (interpolates), then increasing sigma.
y-axis: (f(w) - f*) / (f(w0) - f*), with f* the best loss the model can reach (matfac:
``f_star_by_rank`` of the data at the model's rank, exact reduced-rank regression; lstsq: the
least-squares optimum), median over seeds with the min-max seed band. Curves: SLS, SPS, PoNoS
(defaults and c_p = 0.5, see below), Adam and SGD with its best step of the grid (chosen per panel
by the worst seed's final training loss, as full_batch_gap does; the other grid points faint). Below
each row: the step sizes the adaptive methods take (SGD's best step dashed).

"At the end" is the median of the last 10% of a run's evaluations; a diverged run counts as +inf.
Every claim follows the seed rule of ``seeds.py``: one statistic per seed (the worst panel of the
regime in that seed, comparisons with SGD and Adam made within the seed), printed with its min-max
interval; PASS only when every seed shows the effect.

Regimes are absolute bands of r = f*/f(w0), the share of the initial loss no model of the family
can remove (they do not depend on which other panels the grid has):
  interpolating  r <= 1e-12;
  close          1e-12 < r <= 0.05 (at least 95% of the initial loss is removable);
  far            r >= 0.1 (at least a tenth of it is not);
  in between     drawn, in no claim.

Diagnosis of the claims as the single-seed suite had them (issue 11, points 3 and 7), and the
decisions taken:
- "still good when close" FAILed at lstsq sigma = 0.1 in all 3 seeds: SLS ends at about 1.8 f* on
  every noisy least-squares panel (final loss 7.9e-5, 7.9e-3, 0.79 at sigma 0.01, 0.1, 1: it scales
  like sigma^2 = f*). That is the noise floor of a step of order 1/L_B on a problem with f* > 0: the
  floor of constant-step SGD at step eta is about eta tr(H) f* / |B| (with replacement; smaller with
  per-epoch reshuffling), 0.4 f* at eta = 1/L on the quick problem (d = 80, |B| = 100, spectrum in
  [0.1, 1]), and SLS accepts steps up to about 2/L_B. So the relative excess of SLS is about r, and a
  fixed limit 1e-2 must fail once r > 1e-2 (sigma 0.1: r = 1.8e-2). Decision: the threshold is derived
  from the problem, relative to f*: "still good" = SLS's excess loss f - f* <= 2 f* (its loss is within
  3 f*, twice the 1/L-step floor computed above: the factor 2 is the step range SLS may accept, not a
  fit to the measured 0.8 f*), and the close band r <= 0.05 makes that at least 90% of the way to f*.
- "far: SLS fails" passed by construction: tuned SGD ends >= 10x below SLS on every noisy panel, the
  close ones included (a tuned small step always beats a 1/L-step floor), so it did not tell far from
  close. Decision: "fails" = SLS removes at most half of the removable loss, relative excess >= 0.5.
  With an excess of order f* that holds exactly when r is large, and it is false on close panels (there
  the relative excess is about r <= 0.05), so the check now separates the regimes. The SLS/SGD* ratio
  is printed beside it.
  Measured (quick, 3 seeds): lstsq sigma = 1 shows it (relative excess 1.4-1.5, SLS/SGD* 1700-2200x),
  matfac hidden rank 1 (f*/f(w0) = 0.15) does not: SLS ends at a relative excess of 3e-4 to 2.4e-3
  (excess about 0.01 f*: on this noise-free factorisation the gradient noise at the optimum is small,
  so SLS's floor is far below f*), although it ends 210-340x above tuned SGD (at rank 4, close, that
  ratio is about 10x). So on matfac "SLS fails when far" holds only in the comparative sense (its
  disadvantage against tuned SGD grows with f*/f(w0)), not in the absolute one. Decision: the absolute
  criterion stays and the claim stays FAIL on matfac; the threshold is not moved toward the measured
  values (any limit low enough to pass rank 1 would not separate far from close).
- "close" and "far" were assigned by rank among the other panels of a family, so adding a panel
  changed the labels; they are now the absolute bands above.
- PoNoS with its defaults (xi = 1, c_p = 0.1) stalls at a relative excess of about 1e-3 on every
  interpolating panel (3 seeds): the first trial f_B / (c_p ||g_B||^2) is 10 Polyak steps, and the
  Zhang-Hager reference with xi = 1 (the running mean of all past losses) stays far above the current
  loss, so the non-monotone test accepts those steps and the iterates bounce. xi = 0 or 0.5, or
  c_p = 0.5, reaches 1e-16. The grid runs PoNoS with c_p = 0.5 (method ponos_cp05, the one-constant
  change that keeps the non-monotone search; c = 0.5 is the SPS constant of this grid) beside the
  defaults, and a claim states both, so the figure does not suggest PoNoS fails under interpolation.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scripts.figures.common import (GRID_STYLE, Claim, display, figure_legend, legend_label, lr_tex, mask_below, plt,
                                    save, style)
from scripts.figures.seeds import draw_band, seed_claim

FIG = "sls_overparam"
TITLE = ("SLS is excellent when the model interpolates, still good when it is close to "
         "interpolating, and fails when it is far (matrix-factorisation ranks, least-squares noise levels)")
ADAPTIVE = ("sls", "sps", "ponos", "ponos_cp05")
ORDER = ("sls", "sps", "ponos", "ponos_cp05", "adam", "sgd")    # legend order
DRAW_FLOOR = 1e-18   # relative excess loss below this is not drawn (the line ends, no plateau)
INTERP_TOL = 1e-12   # f* / f(w0) below this: the problem interpolates
CLOSE_MAX = 0.05     # f* / f(w0) up to this: close to interpolating (>= 95% of f(w0) removable)
FAR_MIN = 0.1        # f* / f(w0) from this on: far from interpolating (>= 10% of f(w0) is irreducible)
FLOOR = 1e-10        # below this relative excess loss the methods' stopping thresholds decide
                     # (SLS and SPS skip steps once ||g_B|| < 1e-8), not their rates: a tie
TARGET = 1e-6        # "excellent": relative excess loss reached on interpolating problems
GOOD_EXCESS = 2.0    # "still good": excess loss f - f* <= 2 f* (the 1/L-step noise floor times the
                     # step range SLS accepts; derivation in the module docstring)
FAIL_REL = 0.5       # "fails": relative excess >= 0.5 (at most half of the removable loss removed)


# ---- reading the store ---------------------------------------------------------------------
def _info_list(row, key):
    """A list-valued entry of the run's data info: from the index when the collector kept it
    (JSON string), else from the run folder's data_info.json."""
    v = row.get(f"summary.data_info.{key}")
    if isinstance(v, str):
        return json.loads(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return list(v)
    path = row.get("path")
    if isinstance(path, str) and (Path(path) / "data_info.json").exists():
        return json.loads((Path(path) / "data_info.json").read_text()).get(key)
    return None


def _rank(row):
    r = row.get("model.rank")
    if r is None or r == "full" or (isinstance(r, float) and math.isnan(r)):
        return math.inf
    return float(r)


def _problem(row):
    """(family, knob, label, f*) of a run."""
    if row.get("dataset.name") == "matfac":
        r = _rank(row)
        by_rank = _info_list(row, "f_star_by_rank")
        if by_rank is None:
            raise ValueError(f"run {row['run_id']}: no f_star_by_rank in its data info")
        f_star = float(by_rank[min(len(by_rank), int(r) if math.isfinite(r) else len(by_rank)) - 1])
        # the knob orders panels from interpolating to far: full rank first
        return "matfac", -r, ("full linear map" if math.isinf(r) else f"hidden rank {int(r)}"), f_star
    sigma = float(row.get("dataset.sigma", math.nan))
    return "lstsq", sigma, f"sigma = {sigma:g}", float(row["summary.data_info.f_star"])


def _method(row):
    """('sgd', lr) for the grid points, (method label, None) otherwise."""
    if str(row.get("optimizer.name")) == "sgd":
        return "sgd", float(row["optimizer.lr"])
    m = row.get("method")
    return (str(m) if isinstance(m, str) and m else str(row.get("optimizer.name"))), None


def _seed(row):
    s = row.get("seed", 0)
    return 0 if s is None or (isinstance(s, float) and math.isnan(s)) else int(s)


def _panels(store):
    """{(family, knob): {label, family, f_star_rel, runs: {(method, lr): [run dicts]},
    seed: {method: {seed: final}}, best_lr, grid_edge}}"""
    out = {}
    runs = store.runs(FIG)
    for _, row in runs.iterrows():
        family, knob, lab, f_star = _problem(row)
        cur = store.curve(row.run_id, "loss")
        if cur.empty:
            continue
        f0 = float(cur.value.iloc[0])
        rel = (cur.value.to_numpy() - f_star) / max(f0 - f_star, 1e-300)
        status = str(row.get("summary.status", "completed"))
        # "at the end": median of the last 10% of the evaluations (a stalled method fluctuates
        # around its noise floor; one evaluation would be a random draw from it)
        tail = rel[-max(1, len(rel) // 10):]
        final = float(np.median(tail)) if status != "diverged" and np.isfinite(tail).all() else math.inf
        ss = store.curve(row.run_id, "step_size", split="opt")
        p = out.setdefault((family, knob), {"family": family, "label": lab, "f_star_rel": [], "f_star": f_star,
                                            "runs": {}})
        p["f_star_rel"].append(f_star / f0)
        p["runs"].setdefault(_method(row), []).append(
            {"seed": _seed(row), "epoch": cur.epoch.to_numpy(), "rel": rel, "final": max(final, 0.0),
             "status": status, "ss_epoch": ss.epoch.to_numpy(), "ss": ss.value.to_numpy()})
    for p in out.values():
        p["f_star_rel"] = float(np.median(p["f_star_rel"]))
        per = {m: {r["seed"]: r["final"] for r in rs} for m, rs in p["runs"].items()}
        # SGD's step: the grid point whose worst seed ends lowest (full_batch_gap's rule)
        grid = {lr: max(v.values()) for (m, lr), v in per.items() if m == "sgd"}
        p["best_lr"] = min(grid, key=lambda lr: (grid[lr], lr)) if grid else None
        p["grid_edge"] = len(grid) > 2 and p["best_lr"] in (min(grid), max(grid))
        p["seed"] = {m: v for (m, lr), v in per.items() if m != "sgd"}
        p["seed"]["sgd"] = per[("sgd", p["best_lr"])] if grid else {}
    return out


def regime(f_star_rel: float) -> str:
    """The regime of a problem from its own f*/f(w0) (absolute bands, not ranks among panels)."""
    if f_star_rel <= INTERP_TOL:
        return "interpolating"
    if f_star_rel <= CLOSE_MAX:
        return "close"
    return "far" if f_star_rel >= FAR_MIN else "in between"


def _regimes(panels):
    return {k: regime(p["f_star_rel"]) for k, p in panels.items()}


# ---- figure ----------------------------------------------------------------------------------
def _band(rs, x="epoch", y="rel"):
    """x, median, min, max over the seeds (diverged seeds end early: never pad, cut to the common part)."""
    m = min(len(r[x]) for r in rs)
    ys = np.stack([r[y][:m] for r in rs])
    return rs[0][x][:m], np.median(ys, axis=0), ys.min(0), ys.max(0)


def plot(store, out_dir):
    p = plt()
    panels = _panels(store)
    if not panels:
        from scripts.figures.common import empty_figure
        return save(empty_figure("sls_overparam: no runs"), out_dir, FIG)
    reg = _regimes(panels)
    fams = sorted({q["family"] for q in panels.values()}, key=lambda f: (f != "matfac", f))
    ncol = max(sum(q["family"] == f for q in panels.values()) for f in fams)
    fig = p.figure(figsize=(3.6 * ncol, 5.6 * len(fams)))
    gs = fig.add_gridspec(2 * len(fams), ncol, height_ratios=[3, 1.4] * len(fams), hspace=0.75, wspace=0.3)
    for i, fam in enumerate(fams):
        keys = sorted((k for k in panels if k[0] == fam), key=lambda k: k[1])
        for j, key in enumerate(keys):
            q = panels[key]
            ax = fig.add_subplot(gs[2 * i, j])
            axs = fig.add_subplot(gs[2 * i + 1, j], sharex=ax)
            ax.set_yscale("log")
            axs.set_yscale("log")
            order = lambda kv: (ORDER.index(kv[0][0]) if kv[0][0] in ORDER else len(ORDER), kv[0][0], kv[0][1] or 0)
            for (m, lr), rs in sorted(q["runs"].items(), key=order):
                x, med, lo, hi = _band(rs)
                best = m == "sgd" and lr == q["best_lr"]
                if m == "sgd" and not best:
                    ax.plot(x, mask_below(med, DRAW_FLOOR), **GRID_STYLE, label="SGD, other steps of the grid")
                    continue
                st = _style(m)
                lab = "SGD, best step of the grid" if best else _legend(m)
                draw_band(ax, x, mask_below(med, DRAW_FLOOR), mask_below(lo, DRAW_FLOOR), mask_below(hi, DRAW_FLOOR),
                          st["color"], ls=st["ls"], label=lab, lw=1.6 if m == "sls" else 1.1)
                if any(r["status"] == "diverged" for r in rs) and np.isfinite(med[-1]):
                    ax.plot(x[-1], max(med[-1], DRAW_FLOOR), marker="x", color="k", ls="none",
                            label="diverged (last value)")
                if m in ADAPTIVE:
                    sx, sy, _, _ = _band(rs, "ss_epoch", "ss")
                    # 0 = step skipped (||g_B|| < 1e-8: converged); not drawn
                    axs.plot(sx, np.where(sy > 0, sy, np.nan), color=st["color"], ls=st["ls"], lw=1.0, label=lab)
                if best:
                    axs.axhline(lr, color=st["color"], ls=(0, (4, 2)), lw=0.8, label="SGD, best step (constant)")
            ax.set_ylim(DRAW_FLOOR, 1e3)
            axs.set_ylim(5e-3, 3e1)
            axs.yaxis.set_minor_formatter(p.NullFormatter())
            best_txt = f"\nbest SGD step {lr_tex(q['best_lr'])}" if q["best_lr"] is not None else ""
            ax.set_title(f"{fam}: {_tex_label(q['label'])}\n{reg[key]}, $f^*/f(w_0)$ = {_tex_sci(q['f_star_rel'])}"
                         f"{best_txt}", fontsize=8)
            axs.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel(r"$(f - f^*) \,/\, (f(w_0) - f^*)$")
                axs.set_ylabel("step size")
    figure_legend(fig, fig.axes, ncol=4)
    fig.suptitle("SLS vs the degree of over-parameterization (median and min-max band over seeds; regimes: "
                 f"$f^*/f(w_0) \\leq 10^{{-12}}$ interpolating, $\\leq {CLOSE_MAX:g}$ close, $\\geq {FAR_MIN:g}$ far)",
                 fontsize=10)
    return save(fig, out_dir, FIG)


def _style(m):
    """ponos_cp05 is a PoNoS variant: PoNoS's colour, dash-dotted (common.METHODS has no entry for it)."""
    return {"color": style("ponos")["color"], "ls": "-.", "marker": None} if m == "ponos_cp05" else style(m)


def _legend(m):
    if m == "ponos":
        return r"PoNoS (defaults: $\xi = 1$, $c_p = 0.1$)"
    if m == "ponos_cp05":
        return r"PoNoS, $c_p = 0.5$"
    return legend_label(m)


def _tex_label(label: str) -> str:
    """Panel label in mathtext: 'sigma = 0.01' -> '$\\sigma = 0.01$'."""
    return f"$\\sigma = {label.split('=', 1)[1].strip()}$" if label.startswith("sigma =") else label


def _tex_sci(v: float) -> str:
    """1.2e-05 -> $1.2\\times10^{-5}$; 0 -> $0$."""
    if not np.isfinite(v) or v <= 0:
        return f"${v:g}$" if np.isfinite(v) else str(v)
    mant, exp = f"{v:.1e}".split("e")
    return f"${mant}\\times10^{{{int(exp)}}}$"


# ---- claim check -----------------------------------------------------------------------------
def _fmt(v):
    if math.isinf(v):
        return "inf (diverged)"
    return "0" if v == 0 else f"{v:.1e}"


def _seeds_of(q, m):
    return q["seed"].get(m, {})


def _worst(by, fn, seeds, agg=max):
    """{seed: agg over the regime's panels of fn(panel, seed)}: the panel farthest from the effect
    (max for an upper limit, min for a lower one). NaN where a panel lacks the seed: a missing run
    shows no effect."""
    out = {}
    for s in seeds:
        vals = [fn(q, s) for q in by]
        out[s] = agg(vals) if vals and not any(math.isnan(v) for v in vals) else math.nan
    return out


def _panel_text(q, fn, name):
    vals = {s: fn(q, s) for s in sorted(_seeds_of(q, "sls"))}
    sgd = f"best SGD step {q['best_lr']:g}" + (" (grid edge)" if q["grid_edge"] else "") if q["best_lr"] else "no SGD"
    return (f"{q['family']} {q['label']} (f*/f(w0) {q['f_star_rel']:.1e}; {sgd}): {name} "
            + ", ".join(f"s{s} {_fmt(v)}" for s, v in vals.items()))


def _get(q, m, s):
    return _seeds_of(q, m).get(s, math.nan)


def check(store):
    panels = _panels(store)
    reg = _regimes(panels)
    by = {r: [panels[k] for k in sorted(panels, key=lambda k: (k[0], k[1])) if reg[k] == r]
          for r in ("interpolating", "close", "far")}
    seeds = sorted({s for q in panels.values() for s in _seeds_of(q, "sls")})
    claims = []
    sls = lambda q, s: _get(q, "sls", s)  # noqa: E731

    # interpolating: SLS < TARGET, and within 10x of the better of SGD* and Adam of the same seed
    # (or below FLOOR). Per seed: the worst panel's max(SLS / TARGET, SLS / max(10 base, FLOOR)); <= 1
    def interp(q, s):
        sls = _get(q, "sls", s)
        base = min(_get(q, "sgd", s), _get(q, "adam", s))
        return max(sls / TARGET, sls / max(10 * base, FLOOR)) if not math.isnan(sls + base) else math.nan
    claims.append(_claim(by["interpolating"], seeds, interp, lambda v: v <= 1, "interpolating",
                         f"interpolating (f*/f(w0) <= {INTERP_TOL:g}): SLS, untuned, is excellent: relative excess "
                         f"loss (f - f*)/(f(w0) - f*) < {TARGET:g} at the end and within 10x of the better of SGD with "
                         f"its best grid step (SGD*) and Adam of the same seed, or below {FLOOR:g} (stopping "
                         f"thresholds); statistic: worst panel of max(SLS/{TARGET:g}, SLS/max(10 best, {FLOOR:g})) <= 1",
                         "SLS rel. excess", sls))

    # close: excess loss <= GOOD_EXCESS f*. Per seed: worst panel's excess / f* (relative excess
    # times (f(w0) - f*) / f*)
    def close(q, s):
        r = q["f_star_rel"]
        return _get(q, "sls", s) * (1 - r) / r
    claims.append(_claim(by["close"], seeds, close, lambda v: v <= GOOD_EXCESS, "close",
                         f"close to interpolating ({INTERP_TOL:g} < f*/f(w0) <= {CLOSE_MAX:g}): SLS is still good: "
                         f"its excess loss ends <= {GOOD_EXCESS:g} f* (the noise floor of a step of order 1/L_B; "
                         f"with f*/f(w0) <= {CLOSE_MAX:g} that is >= 90% of the way to f*, no tuning); statistic: "
                         f"worst panel's (f_SLS - f*)/f*", "(f_SLS - f*)/f*", close))

    # far: relative excess >= FAIL_REL (at most half of the removable loss removed); per seed the
    # smallest relative excess over the far panels
    claims.append(_claim(by["far"], seeds, sls, lambda v: v >= FAIL_REL, "far",
                         f"far from interpolation (f*/f(w0) >= {FAR_MIN:g}): SLS fails: its relative excess loss ends "
                         f">= {FAIL_REL:g} (it removes at most half of the removable loss); statistic: the smallest "
                         f"SLS relative excess over the far panels", "SLS rel. excess (SLS/SGD* of the seed in brackets)",
                         sls, ratio=True, agg=min))

    # PoNoS on interpolating problems: its defaults stall, c_p = 0.5 reaches TARGET
    if by["interpolating"] and any(("ponos_cp05", None) in q["runs"] for q in by["interpolating"]):
        pon = _worst(by["interpolating"], lambda q, s: _get(q, "ponos", s), seeds)
        cp = _worst(by["interpolating"], lambda q, s: _get(q, "ponos_cp05", s), seeds)
        ratio = {s: cp[s] / max(pon[s], 1e-300) for s in seeds} if seeds else {}
        stall = {s: min(_get(q, "ponos", s) for q in by["interpolating"]) for s in seeds}
        c = seed_claim(FIG, f"interpolating: PoNoS with its defaults (xi = 1, c_p = 0.1) stalls (relative excess "
                       f">= {TARGET:g} on every interpolating panel) while PoNoS with c_p = 0.5 reaches < {TARGET:g} on "
                       f"every one; statistic: worst panel of c_p = 0.5, must be < {TARGET:g}",
                       cp, lambda v: v < TARGET, fmt="{:.1e}",
                       extra=f"PoNoS defaults, best panel per seed: " + ", ".join(f"s{s} {_fmt(v)}" for s, v in stall.items()))
        if c.status == "PASS" and not all(v >= TARGET for v in stall.values()):
            c.status = "FAIL"
            c.measured += "; the defaults do not stall on every panel"
        claims.append(c)
    return claims


def _claim(panels, seeds, stat, ok, regime_name, text, name, shown, ratio=False, agg=max):
    """A seed_claim on the per-seed worst panel of ``stat``; the measured text adds every panel's
    per-seed ``shown`` value (and, with ``ratio``, SLS / SGD* of the same seed)."""
    if not panels:
        return Claim(FIG, text, f"no {regime_name} panels", "FAIL")
    values = _worst(panels, stat, seeds, agg)
    parts = []
    for q in panels:
        part = _panel_text(q, shown, name)
        if ratio:
            part += " [" + ", ".join(f"s{s} {_get(q, 'sls', s) / max(_get(q, 'sgd', s), 1e-300):.3g}"
                                     for s in sorted(_seeds_of(q, "sls"))) + "]"
        parts.append(part)
    return seed_claim(FIG, text, values, ok, fmt="{:.3g}", extra=" | ".join(parts))
