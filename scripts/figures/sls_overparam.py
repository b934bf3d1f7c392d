"""sls_overparam: SLS against the degree of over-parameterization (SLS paper figure 2, SPS `mf`).

Two families of problems (tasks matfac and lstsq_net, conf/task/), one row of panels each, ordered from
interpolating to far from it:
  matrix factorisation, linear net of hidden rank full, 10 (interpolate), 4, 1 (f* > 0);
  least squares, d < n, label noise sigma = 0 (interpolates), then increasing sigma.
y-axis: (f(w) - f*) / (f(w0) - f*), with f* the best loss the model can reach (matfac:
``f_star_by_rank`` of the data at the model's rank, exact reduced-rank regression; lstsq: the
least-squares optimum), median over seeds. Curves: SLS, SPS, PoNoS, Adam and SGD with its best
step of the grid (chosen per panel by the final training loss; the other grid points faint).
Below each row: the step sizes the adaptive methods take (SGD's best step dashed).

"At the end" is the median of the last 10% of a run's evaluations (median over seeds); a
diverged run counts as +inf. Regimes are measured, not named: a panel interpolates when
f* <= 1e-12 f(w0); among the others of a family the one with the largest f*/f(w0) is "far",
the rest are "close".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scripts.figures.common import (GRID_STYLE, Claim, display, figure_legend, legend_label, lr_tex, mask_below, plt,
                                    save, style, verdict)

FIG = "sls_overparam"
TITLE = ("SLS is excellent when the model interpolates, still good when it is close to "
         "interpolating, and fails when it is far (matrix-factorisation ranks, least-squares noise levels)")
ADAPTIVE = ("sls", "sps", "ponos")
ORDER = ("sls", "sps", "ponos", "adam", "sgd")    # legend order
DRAW_FLOOR = 1e-18   # relative excess loss below this is not drawn (the line ends, no plateau)
INTERP_TOL = 1e-12   # f* / f(w0) below this: the problem interpolates
FLOOR = 1e-10        # below this relative excess loss the methods' stopping thresholds decide
                     # (SLS and SPS skip steps once ||g_B|| < 1e-8), not their rates: a tie
TARGET = 1e-6        # "excellent": relative excess loss reached on interpolating problems
GOOD = 1e-2          # "still good": at least 99% of the way from f(w0) to f*
FAIL_FACTOR = 10.0   # "fails": SLS ends at least this factor above SGD with its best step


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
    """('sgd', lr) for the grid points, (optimizer name, None) otherwise."""
    name = str(row.get("optimizer.name"))
    if name == "sgd":
        return "sgd", float(row["optimizer.lr"])
    return name, None


def _panels(store):
    """{(family, knob): {label, f_star_rel, runs: {(method, lr): [run dicts]}}}"""
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
        p = out.setdefault((family, knob), {"family": family, "label": lab, "f_star_rel": [], "runs": {}})
        p["f_star_rel"].append(f_star / f0)
        p["runs"].setdefault(_method(row), []).append(
            {"epoch": cur.epoch.to_numpy(), "rel": rel, "final": max(final, 0.0), "status": status,
             "ss_epoch": ss.epoch.to_numpy(), "ss": ss.value.to_numpy()})
    for p in out.values():
        p["f_star_rel"] = float(np.median(p["f_star_rel"]))
        finals = {m: float(np.median([r["final"] for r in rs])) for m, rs in p["runs"].items()}
        p["final"] = finals
        grid = {lr: v for (m, lr), v in finals.items() if m == "sgd"}
        p["best_lr"] = min(grid, key=lambda lr: (grid[lr], lr)) if grid else None
        p["grid_edge"] = len(grid) > 2 and p["best_lr"] in (min(grid), max(grid))
        p["value"] = {m: v for (m, lr), v in finals.items() if m != "sgd"}
        p["value"]["sgd"] = grid[p["best_lr"]] if grid else math.nan
    return out


def _regimes(panels):
    """Per family: interpolating panels (f* <= 1e-12 f(w0)); of the others the one farthest
    from interpolation (largest f*/f(w0)) is 'far', the rest 'close'."""
    reg = {}
    for fam in sorted({p["family"] for p in panels.values()}):
        keys = [k for k, p in panels.items() if p["family"] == fam]
        non = sorted((k for k in keys if panels[k]["f_star_rel"] > INTERP_TOL), key=lambda k: panels[k]["f_star_rel"])
        for k in keys:
            reg[k] = "interpolating" if k not in non else ("far" if k == non[-1] else "close")
    return reg


# ---- figure ----------------------------------------------------------------------------------
def _median_curve(rs, x="epoch", y="rel"):
    m = min(len(r[x]) for r in rs)           # diverged seeds end early: never pad, cut to the common part
    return rs[0][x][:m], np.median(np.stack([r[y][:m] for r in rs]), axis=0)


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
            order = lambda kv: (ORDER.index(kv[0][0]) if kv[0][0] in ORDER else len(ORDER), kv[0][0], kv[0][1] or 0)
            for (m, lr), rs in sorted(q["runs"].items(), key=order):
                x, y = _median_curve(rs)
                best = m == "sgd" and lr == q["best_lr"]
                if m == "sgd" and not best:
                    ax.semilogy(x, mask_below(y, DRAW_FLOOR), **GRID_STYLE, label="SGD, other steps of the grid")
                    continue
                st = style(m)
                lab = "SGD, best step of the grid" if best else legend_label(m)
                ax.semilogy(x, mask_below(y, DRAW_FLOOR), color=st["color"], ls=st["ls"], label=lab,
                            lw=1.6 if m == "sls" else 1.1)
                if any(r["status"] == "diverged" for r in rs) and np.isfinite(y[-1]):
                    ax.plot(x[-1], max(y[-1], DRAW_FLOOR), marker="x", color="k", ls="none",
                            label="diverged (last value)")
                if m in ADAPTIVE:
                    sx, sy = _median_curve(rs, "ss_epoch", "ss")
                    # 0 = step skipped (||g_B|| < 1e-8: converged); not drawn
                    axs.semilogy(sx, np.where(sy > 0, sy, np.nan), color=st["color"], ls=st["ls"], lw=1.0, label=lab)
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
    fig.suptitle("SLS vs the degree of over-parameterization (median over seeds)", fontsize=10)
    return save(fig, out_dir, FIG)


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
    return "0 (f* to round-off)" if v == 0 else f"{v:.1e}"


def _first_epoch_below(rs, level):
    x, y = _median_curve(rs)
    hit = np.nonzero(y <= level)[0]
    return float(x[hit[0]]) if len(hit) else math.nan


def _line(q, extra=""):
    v = q["value"]
    others = ", ".join(f"{display(m).split()[0]} {_fmt(v[m])}" for m in ("sps", "ponos") if m in v)
    return (f"{q['family']} {q['label']}: SLS {_fmt(v.get('sls', math.nan))} vs SGD* {_fmt(v['sgd'])} "
            f"(step {q['best_lr']:g}{', at the edge of the grid' if q['grid_edge'] else ''}), Adam {_fmt(v.get('adam', math.nan))}{extra}; {others}")


def check(store):
    panels = _panels(store)
    reg = _regimes(panels)
    by = {r: [panels[k] for k in sorted(panels, key=lambda k: (k[0], k[1])) if reg[k] == r]
          for r in ("interpolating", "close", "far")}
    claims = []

    ok, txt = bool(by["interpolating"]), []
    for q in by["interpolating"]:
        v = q["value"]
        sls = v.get("sls", math.inf)
        base = min(v.get("sgd", math.inf), v.get("adam", math.inf))
        good = sls < TARGET and sls <= max(10 * base, FLOOR)
        ok &= good
        e_sls = _first_epoch_below(q["runs"][("sls", None)], TARGET) if ("sls", None) in q["runs"] else math.nan
        e_sgd = _first_epoch_below(q["runs"][("sgd", q["best_lr"])], TARGET) if q["best_lr"] is not None else math.nan
        txt.append(_line(q, f"; epoch to {TARGET:g}: SLS {e_sls:g}, SGD* {e_sgd:g}"))
    claims.append(Claim(
        FIG, f"interpolating (f* = 0: matfac rank >= 6 / full, lstsq sigma = 0): SLS, untuned, is excellent: "
        f"relative excess loss (f - f*)/(f(w0) - f*) < {TARGET:g} at the end and within 10x of the best of SGD "
        f"with its best grid step (SGD*) and Adam, or below {FLOOR:g} (round-off / stopping thresholds)",
        " | ".join(txt) or "no interpolating panels", verdict(ok)))

    ok, txt = bool(by["close"]), []
    for q in by["close"]:
        sls = q["value"].get("sls", math.inf)
        ok &= sls <= GOOD
        ratio = sls / max(q["value"]["sgd"], 1e-300)
        txt.append(_line(q, f"; f*/f(w0) {q['f_star_rel']:.1e}, SLS/SGD* {ratio:.3g}"))
    claims.append(Claim(
        FIG, f"close to interpolating (f* > 0, not the farthest panel of its family: matfac rank 4, small sigma): "
        f"SLS is still good, relative excess loss <= {GOOD:g} (99% of the way to f*, no tuning)",
        " | ".join(txt) or "no close panels", verdict(ok)))

    ok, txt = bool(by["far"]), []
    for q in by["far"]:
        sls, sgd = q["value"].get("sls", math.inf), q["value"]["sgd"]
        ok &= sls >= FAIL_FACTOR * sgd and sls > FLOOR
        txt.append(_line(q, f"; f*/f(w0) {q['f_star_rel']:.1e}, SLS/SGD* {sls / max(sgd, 1e-300):.3g}"))
    claims.append(Claim(
        FIG, f"far from interpolation (largest f*/f(w0) of each family: matfac rank 1, largest sigma): SLS fails, "
        f"its advantage is gone: it ends >= {FAIL_FACTOR:g}x above SGD with its best grid step",
        " | ".join(txt) or "no far panels", verdict(ok)))
    return claims
