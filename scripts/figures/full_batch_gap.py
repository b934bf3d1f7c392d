"""full_batch_gap: heavy-tailed noise does not explain the SGD-Adam gap on language models
(Kunstner et al. 2023). SGD(+m) and Adam(+m) on a transformer language model over a batch-size
ladder that ends at the full batch; the step size of every method and batch size is picked
from a half-decade grid by the worst seed's final training loss (algorithms.md 2.6).

The helpers at the top (legend names of the method labels of the grids' sweep blocks, the
run table, the step-size selection, median curves) are shared by the other language figures
(heavy_tailed_labels, linear_heavy_tail, sign_descent). A run's method is its label in the
grid's ``sweep.methods`` (the ``method`` column), its step size the ``optimizer.lr`` column.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from scripts.figures.common import Claim, display, legend_label, plt, save, style
from scripts.figures.seeds import describe, paired, seed_claim

FIG = "full_batch_gap"
TITLE = ("the SGD-Adam gap on a transformer language model persists or grows as the batch size goes "
         "to the full batch (step sizes tuned per batch size)")

FAMILY = {"sgd": ("sgd", "sgd_m"), "adam": ("adam_nom", "adam")}


def label_of(method: str) -> str:
    """Plain-text name of a method label (claim texts); legends use ``common.legend_label``."""
    return display(method)


def style_of(method: str, markers: bool = False) -> dict:
    """The method's colour and line style, the same in every figure (``common.style``)."""
    return style(method, markers)


def _num(v, default=math.nan) -> float:
    try:
        f = float(v)
        return f if math.isfinite(f) else default
    except (TypeError, ValueError):
        return default


def n_train(row) -> float:
    """Training examples of a run (windows for a language model)."""
    n = _num(row.get("summary.data_info.n"))
    if math.isnan(n):
        tok, T = _num(row.get("summary.data_info.n_tokens")), _num(row.get("summary.data_info.seq_len"))
        n = tok / T if T > 0 else math.nan
    return n


def batch_of(row):
    """Batch size as a number (inf for the full batch)."""
    bs = row.get("train.batch_size")
    if str(bs) == "full":
        return math.inf
    bs = _num(bs)
    n = n_train(row)
    return math.inf if (not math.isnan(n) and bs >= n) else bs


def batch_label(bs, n=math.nan) -> str:
    if math.isinf(bs):
        return "full batch" + (f" ({int(n)})" if not math.isnan(n) else "")
    return f"batch {int(bs)}"


def final_loss(store, row, group: int = -1, split: str = "train") -> float:
    """Final training loss; a diverged run counts as +inf (it never pads a curve)."""
    if str(row.get("summary.status")) == "diverged":
        return math.inf
    v = store.final(row["run_id"], "loss", split, group)
    return v if math.isfinite(v) else math.inf


def run_table(store, fig: str) -> pd.DataFrame:
    """One row per run of the figure: method label, lr, seed, batch, task, dataset, final loss."""
    runs = store.runs(fig)
    rows = []
    for _, r in runs.iterrows():
        rows.append({"run_id": r["run_id"], "method": str(r.get("method")), "optimizer": r.get("optimizer.name"),
                     "lr": _num(r.get("optimizer.lr")), "seed": int(_num(r.get("seed"), 0)),
                     "batch": batch_of(r), "n": n_train(r), "task": r.get("choice.task"),
                     "dataset": r.get("dataset.name"), "model": r.get("model.name"),
                     "status": r.get("summary.status"), "final": final_loss(store, r), "path": r.get("path")})
    return pd.DataFrame(rows, columns=["run_id", "method", "optimizer", "lr", "seed", "batch", "n", "task",
                                       "dataset", "model", "status", "final", "path"])


def select_step_sizes(tab: pd.DataFrame, by=("method",)) -> pd.DataFrame:
    """For every group of ``by``: the step size whose worst seed has the lowest final loss
    (Kunstner et al.'s ``find_best_stepsize`` uses the max over seeds). ``edge`` flags a best
    step size at the end of the grid that was tried (the grid may be too narrow)."""
    by = list(by)
    out = []
    if tab.empty:
        return pd.DataFrame(columns=by + ["lr", "worst", "median", "seeds", "lrs", "edge", "run_ids"])
    for key, grp in tab.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        per_lr = grp.groupby("lr", dropna=False).final.agg(["max", "median", "count"])
        worst = per_lr["max"].replace(np.nan, np.inf)
        best = worst.idxmin()
        lrs = sorted(v for v in per_lr.index if not pd.isna(v))     # NaN: a method without a step size
        edge = len(lrs) > 1 and best in (lrs[0], lrs[-1]) and math.isfinite(worst[best])
        same = grp.lr.isna() if pd.isna(best) else grp.lr == best
        out.append({**dict(zip(by, key)), "lr": best, "worst": float(worst[best]),
                    "median": float(per_lr.loc[best, "median"]), "seeds": int(per_lr.loc[best, "count"]),
                    "lrs": lrs, "edge": bool(edge), "run_ids": list(grp[same].run_id)})
    return pd.DataFrame(out)


def median_curve(store, run_ids, metric="loss", x="epoch", group=-1, split="train"):
    """Median (and min/max band) over seeds, on the x values of the shortest run."""
    curves = [store.curve(r, metric, split, group) for r in run_ids]
    curves = [c for c in curves if len(c)]
    if not curves:
        return None
    m = min(len(c) for c in curves)
    xs = curves[0][x].to_numpy()[:m]
    ys = np.stack([c.value.to_numpy()[:m] for c in curves])
    return xs, np.median(ys, 0), ys.min(0), ys.max(0)


def data_info(store, row) -> dict:
    """The run's data_info.json (class counts are not in the index: lists are dropped from
    summaries). Looked up in the store's run folder first, then at the index's ``path``."""
    for folder in (Path(store.dir) / "runs" / str(row.get("run_id")), row.get("path")):
        if not folder:
            continue
        try:
            return json.loads((Path(str(folder)) / "data_info.json").read_text())
        except (OSError, ValueError):
            continue
    return {}


def fmt_lr(lr: float) -> str:
    """A step size in plain text, for claim texts (figures use ``common.lr_tex``, mathtext)."""
    return f"10^{math.log10(lr):.1f}" if lr > 0 and math.isfinite(lr) else str(lr)


# ----------------------------------------------------------------------------- this figure
def _selected(store):
    tab = run_table(store, FIG)
    tab = tab[tab.method.isin(FAMILY["sgd"] + FAMILY["adam"])]
    return tab, select_step_sizes(tab, ("batch", "method"))


def plot(store, out_dir):
    p = plt()
    tab, sel = _selected(store)
    batches = sorted(sel.batch.unique()) if len(sel) else []
    cols = len(batches) + 1
    fig, axes = p.subplots(1, cols, figsize=(3.6 * cols, 3.3), squeeze=False)
    axes = axes[0]
    n = tab.n.dropna().max() if len(tab) else math.nan
    for ax, bs in zip(axes, batches):
        order = FAMILY["sgd"] + FAMILY["adam"]
        here = sel[sel.batch == bs]
        for _, s in sorted(here.iterrows(), key=lambda kv: (order.index(kv[1].method) if kv[1].method in order
                                                           else len(order), kv[1].method)):
            mc = median_curve(store, s.run_ids)
            if mc is None:
                continue
            xs, med, lo, hi = mc
            st = style_of(s.method)
            ax.plot(xs, med, label=legend_label(s.method, s.lr), **st)
            ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.15)
        ax.set_title(batch_label(bs, n))
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    if len(batches):
        axes[0].set_ylabel("training loss")
    ax = axes[-1]
    finite = [b for b in batches if math.isfinite(b)]
    full_x = n if math.isfinite(n) else 4 * max(finite, default=1)
    pos = {b: (b if math.isfinite(b) else full_x) for b in batches}
    for m in FAMILY["sgd"] + FAMILY["adam"]:
        s = sel[sel.method == m].sort_values("batch")
        if len(s):
            ax.plot([pos[b] for b in s.batch], s.worst, label=legend_label(m), **style_of(m, markers=True))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([pos[b] for b in batches])
    ax.set_xticklabels([f"{int(b)}" if math.isfinite(b) else "full" for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("final training loss (worst seed, best step)")
    ax.set_title("final loss vs batch size")
    ax.legend(fontsize=7)
    fig.suptitle("SGD vs Adam on a transformer LM: small batch to full batch", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def gaps(sel: pd.DataFrame) -> pd.DataFrame:
    """Per batch size: best SGD-family and best Adam-family final loss (worst seed) and their gap."""
    rows = []
    for bs, grp in sel.groupby("batch"):
        row = {"batch": bs}
        for fam, methods in FAMILY.items():
            g = grp[grp.method.isin(methods)]
            best = g.loc[g.worst.idxmin()] if len(g) else None
            row[fam] = float(best.worst) if best is not None else math.nan
            row[f"{fam}_method"] = best.method if best is not None else None
            row[f"{fam}_runs"] = list(best.run_ids) if best is not None else []
        row["gap"] = row["sgd"] - row["adam"]
        rows.append(row)
    return pd.DataFrame(rows).sort_values("batch").reset_index(drop=True)


def seed_gaps(tab: pd.DataFrame, g: pd.DataFrame) -> dict:
    """{batch: {seed: gap}}: the gap of each seed, from that seed's runs of the selected method and
    step size of each family (the selection itself uses all seeds: worst seed per step size)."""
    final = tab.set_index("run_id")[["seed", "final"]]
    out = {}
    for r in g.itertuples():
        f = {fam: final.loc[getattr(r, f"{fam}_runs")].groupby("seed").final.min() for fam in FAMILY}
        out[r.batch] = {int(s): float(f["sgd"][s] - f["adam"][s]) for s in f["sgd"].index if s in f["adam"].index}
    return out


MIN_GAP = 0.1          # nats: a gap at the full batch smaller than this is no gap
KEEP = 0.75            # "persists or grows": the full-batch gap keeps >= 75% of the smallest batch's


def check(store):
    tab, sel = _selected(store)
    claims = []
    g = gaps(sel) if len(sel) else pd.DataFrame()
    if len(g) < 2 or not math.isinf(g.batch.iloc[-1]) or g[["sgd", "adam"]].isna().any().any():
        return [Claim(FIG, TITLE, f"need SGD and Adam runs at >= 2 batch sizes ending at the full batch; "
                      f"have batches {list(g.batch) if len(g) else []}", "FAIL")]
    n = tab.n.dropna().max()
    parts = [f"{batch_label(r.batch, n)}: {label_of(r.sgd_method)} {r.sgd:.3g} vs {label_of(r.adam_method)} "
             f"{r.adam:.3g} (gap {r.gap:.2f} nats, worst seeds)" for r in g.itertuples()]
    edges = [f"{label_of(r.method)} @ {batch_label(r.batch, n)}: {fmt_lr(r.lr)}" for r in sel.itertuples() if r.edge]
    parts.append(("selected step size at a grid end: " + ", ".join(edges)) if edges else
                 f"all {len(sel)} selected step sizes inside their grids")
    per = seed_gaps(tab, g)
    small, full = per[g.batch.iloc[0]], per[g.batch.iloc[-1]]
    claims.append(seed_claim(
        FIG, f"SGD-Adam gap at the full batch (best of SGD/SGD+m minus best of Adam/Adam+m final training loss, "
        f"method and step size per batch size selected by the worst seed on the half-decade grid, gap per seed) "
        f"is > {MIN_GAP:g} nats", full, lambda v: v > MIN_GAP, fmt="{:.2f}", unit=" nats", extra="; ".join(parts)))
    ratio = paired(full, small, lambda a, b: a / b if b > 0 else math.inf)
    claims.append(seed_claim(
        FIG, f"the gap persists or grows from the smallest batch to the full batch: full-batch gap / smallest-batch "
        f"gap of the same seed >= {KEEP:g} (inf: no gap at the smallest batch)", ratio, lambda v: v >= KEEP,
        fmt="{:.2f}", extra=f"smallest-batch gap {describe(small, '{:.2f}', ' nats')}"))
    return claims
