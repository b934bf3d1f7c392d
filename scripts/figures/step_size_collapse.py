"""step_size_collapse: the step size of the monotone stochastic Armijo search (SLS) collapses late
in training on some problems, PoNoS's does not (PoNoS README figure, bottom row: SLS drops from
about 1e-3 to about 1e-9 near epoch 120 on CIFAR-10 ResNet-34).

The step size used is the largest step of each evaluation interval (``opt/step_size_max``):
a collapse means that even the largest step taken in an interval is tiny. Intervals in which
no step was taken at all (zero minibatch gradients, maximum 0) are left out.

Collapse of a run: its final interval's step is at least ``DROP`` times below its peak, and
the first interval after the peak that falls that low ("collapse epoch") lies after the first
quarter of training ("late"). Both monotone variants are checked (the SLS paper's default,
which grows without a cap, and the PoNoS paper's SLS, capped at 10); the talk's claim is that
the collapse happens on some problems, so one collapsing variant suffices. When the quick
profile shows none, the verdict is INCONCLUSIVE with the measured numbers.
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, display, legend_label, plt, save, style, verdict
from scripts.figures.sls_deep import DATASET_NAMES, by_dataset, by_method, legend, name, semilogy_band

FIG = "step_size_collapse"
TITLE = "the monotone SLS step size collapses late in training on some problems, PoNoS's does not"
DROP = 1e3
MONOTONE = ("sls", "sls_ponos")          # method labels of the grid


def _steps(store, run_id):
    """(epoch, largest step per interval) without the intervals where no step was taken."""
    cur = store.curve(run_id, "step_size_max", "opt")
    v = cur.value.to_numpy(float)
    keep = np.isfinite(v) & (v > 0)
    return cur.epoch.to_numpy(float)[keep], v[keep]


def collapse(store, run_id) -> dict:
    x, s = _steps(store, run_id)
    if len(s) < 3:
        return {"ok": False, "drop": math.nan, "peak": math.nan, "final": math.nan, "t_peak": math.nan,
                "t_collapse": math.nan, "end": math.nan, "late": False}
    i = int(np.argmax(s))
    peak, final = float(s[i]), float(s[-1])
    low = np.nonzero(s[i:] < peak / DROP)[0]
    t_c = float(x[i + low[0]]) if len(low) else math.nan
    end = float(x[-1])
    drop = peak / final
    late = math.isfinite(t_c) and t_c >= end / 4
    return {"ok": drop >= DROP and late, "drop": drop, "peak": peak, "final": final, "t_peak": float(x[i]),
            "t_collapse": t_c, "end": end, "late": late}


def _loss_at(store, run_id, epoch):
    cur = store.curve(run_id, "loss", "train")
    if cur.empty:
        return math.nan
    j = int(np.argmin(np.abs(cur.epoch.to_numpy(float) - epoch))) if math.isfinite(epoch) else len(cur) - 1
    return float(cur.value.iloc[j])


def plot(store, out_dir):
    p = plt()
    panels = by_dataset(store.runs(FIG))
    ncol = max(1, len(panels))
    fig, axes = p.subplots(2, ncol, figsize=(5.2 * ncol, 6.5), squeeze=False)
    for j, (ds, runs) in enumerate(panels.items()):
        order = MONOTONE + ("ponos",)
        for c, rows in sorted(by_method(runs).items(), key=lambda kv: (kv[0] not in order,
                                                                       order.index(kv[0]) if kv[0] in order else 0,
                                                                       kv[0])):
            st = style(c)
            marked = False
            for k, (_, r) in enumerate(rows.iterrows()):
                x, s = _steps(store, r.run_id)
                lab = legend_label(c) if k == 0 else None
                if len(x):
                    axes[0, j].semilogy(x, s, color=st["color"], ls=st["ls"], lw=1.2, label=lab)
                cur = store.curve(r.run_id, "loss", "train")
                semilogy_band(axes[1, j], cur.epoch.to_numpy(float), cur.value.to_numpy(float),
                              cur.value.to_numpy(float), cur.value.to_numpy(float), lab, st["color"], lw=1.2,
                              ls=st["ls"])
                info = collapse(store, r.run_id)
                if c in MONOTONE and info["ok"]:
                    axes[0, j].axvline(info["t_collapse"], color=st["color"], ls=":", lw=1,
                                       label=None if marked else f"{display(c, tex=True)}: collapse epoch")
                    marked = True
        axes[0, j].set_title(DATASET_NAMES.get(ds, ds))
        axes[0, j].set_ylabel("largest step per interval")
        axes[1, j].set_ylabel("training loss")
        axes[1, j].set_xlabel("epoch")
        legend(axes[0, j])
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def check(store):
    man = store.manifest(FIG) or {}
    quick = man.get("profile") == "quick"
    claims = []
    for ds, runs in by_dataset(store.runs(FIG)).items():
        tag = DATASET_NAMES.get(ds, ds)
        methods = by_method(runs)
        parts, any_ok = [], False
        for c in MONOTONE:
            if c not in methods:
                continue
            infos = [(r.run_id, collapse(store, r.run_id)) for _, r in methods[c].iterrows()]
            n_ok = sum(i["ok"] for _, i in infos)
            rid, med = sorted(infos, key=lambda t: t[1]["drop"] if math.isfinite(t[1]["drop"]) else -1)[len(infos) // 2]
            any_ok |= n_ok * 2 > len(infos)             # a majority of the seeds collapse
            where = (f"collapse epoch {med['t_collapse']:.0f} of {med['end']:.0f} (training loss there "
                     f"{_loss_at(store, rid, med['t_collapse']):.2e})" if math.isfinite(med["t_collapse"])
                     else f"no drop below peak/{DROP:.0e} in {med['end']:.0f} epochs")
            parts.append(f"{name(c)}: {n_ok}/{len(infos)} seeds collapse; median run: peak {med['peak']:.3g} at "
                         f"epoch {med['t_peak']:.0f}, final {med['final']:.3g} (drop {med['drop']:.3g}x), {where}, "
                         f"final training loss {_loss_at(store, rid, math.nan):.2e}")
        if not parts:
            claims.append(Claim(FIG, f"{tag}: monotone SLS runs present", "none", "FAIL"))
        else:
            status = "PASS" if any_ok else ("INCONCLUSIVE" if quick else "FAIL")
            claims.append(Claim(
                FIG, f"{tag}: the monotone SLS step size collapses late (largest step per interval ends >= "
                     f"{DROP:.0e}x below its peak, first falling that low after the first quarter of training)",
                "; ".join(parts) + ("; the quick profile does not reach the collapse" if status == "INCONCLUSIVE"
                                    else ""), status))
        if "ponos" in methods:
            infos = [(r.run_id, collapse(store, r.run_id)) for _, r in methods["ponos"].iterrows()]
            drops = [i["drop"] for _, i in infos]
            d = float(np.median(drops))
            rid = infos[0][0]
            ok = math.isfinite(d) and d < DROP
            claims.append(Claim(
                FIG, f"{tag}: PoNoS's step size does not collapse (final largest step per interval within "
                     f"{DROP:.0e}x of its peak)",
                f"PoNoS: median drop {d:.3g}x (peak {infos[0][1]['peak']:.3g}, final {infos[0][1]['final']:.3g}), "
                f"final training loss {_loss_at(store, rid, math.nan):.2e}", verdict(ok)))
        else:
            claims.append(Claim(FIG, f"{tag}: PoNoS runs present", "none", "FAIL"))
    if not claims:
        claims.append(Claim(FIG, TITLE, "no runs", "FAIL"))
    return claims
