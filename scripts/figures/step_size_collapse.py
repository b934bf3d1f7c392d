"""step_size_collapse: the step size of the monotone stochastic Armijo search (SLS) collapses late
in training on some problems, PoNoS's does not (PoNoS README figure, bottom row: SLS drops from
about 1e-3 to about 1e-9 near epoch 120 on CIFAR-10 ResNet-34).

The step size used is the largest step of each evaluation interval (``opt/step_size_max``):
a collapse means that even the largest step taken in an interval is tiny. Intervals in which
no step was taken at all (zero minibatch gradients, maximum 0) are left out.

Collapse of a run: its step is at least ``DROP`` times below its peak at the end of the
part of training where the training loss is above the float32 floor (``FLOOR``), and the
first interval after the peak that falls that low ("collapse epoch") lies after the first
quarter of training ("late"). Both monotone variants are checked (the SLS paper's default,
which grows without a cap, and the PoNoS paper's SLS, capped at 10); the talk's claim is that
the collapse happens on some problems, so per seed the larger of the two drops counts, and
the claim needs it in every seed (``scripts/figures/seeds.py``, 3 seeds). When the quick
profile shows none the verdict is INCONCLUSIVE with the measured numbers (the genuine
collapse was expected from the paper-scale run; see "Paper scale" below: with the current code it
did not happen there either).

Diagnosis (issue 11, point 7): the earlier criterion (drop of the whole curve) passed on the
quick profile only through a float32 round-off artefact. The uncapped SLS "collapsed" once
the training loss was about 4.5e-9 and still ended 1000x below PoNoS; the capped variant the
slide shows never collapsed (0/3 seeds). At such losses the trial loss equals the reference
loss to float32 resolution: the per-example cross-entropy is computed as a log-sum-exp, and
log(1 + x) with 1 + x rounded to 1 returns exactly 0 for x below eps32 / 2 = 6e-8, so a
minibatch loss within a decade of eps32 = 1.2e-7 is made of a few quantised terms and shorter
trials return the same rounded value. The Armijo test then fails for every trial, which is
a property of float32, not of the monotone search.

Decision: the collapse must happen while the training loss is at or above
FLOOR = 1e-6, i.e. about 10 eps32 (one decade above the resolution of a float32 loss near its
floor; the constant is derived from float32, not from the runs: the artefact of the quick
profile lies at 4.5e-9, 200x below, and the paper-scale collapse of issue 11, capped SLS at
epoch 179 of 200 with final loss 6.7e-6, lies above). Intervals whose training loss is below
FLOOR are left out of the collapse test. The seed rule applies (3 seeds, every seed).

Cost of a collapse: every failed search spends ``max_backtracks`` (100) trial forwards for a
1e-6 fallback step. The figure reports, per run, the forward passes spent in failed searches
(``opt/failed_forwards`` when the trainer logs the optimizer's ``failed_forwards`` counter;
otherwise a lower bound: the trial forwards of the intervals in which every step failed,
``opt/backtracks`` = 100) and the share of all forwards. SLS's ``stop_on_equal`` option
(optimizers/sls.py; off by default, a deviation from the papers) ends a search after the first
trial whose loss ties the reference to float32 resolution. Measured on the quick problem
(uncapped SLS, seed 0, 2,250 steps, a run whose step falls from 5e4 to 1e-6 and then ~1e-11 at
epoch ~105, training loss 5.3e-9): off 7,925 forwards and 811 s of training, on 5,106 forwards
and 542 s (-36% forwards, -33% time), the same final training loss 5.3e-9 (2 CPU cores shared
with other jobs, so the times are indicative). After the fall most trials are accepted with
steps of ~1e-11 (the float64 test ref - c eta ||g||^2 rounds to ref), so the option saves the
searches that back down from the 1e-6 restart, not 100 trials per step.

Paper scale (``make paper-table``: MNIST MLP, all 60,000 images, batch 128, 200 epochs, seed 0,
run 2026-12-04 on the current code): the capped SLS (reset 11, cap 10) did not collapse. Its step
rose to the cap (10 from epoch ~195), no search failed (0 failed-search forwards of 188,000), 2.01
forwards per step, 1,298 s against PoNoS's 1,327 s in the same sweep; final training loss 2.4e-6.
The collapse at epoch 179 that issue 11 reports (final loss 6.7e-6, SLS 2.6x PoNoS's wall time)
was measured on earlier code: norms and directional products were then accumulated in float32
(about 1e-5 relative error on a 200k-weight layer, since changed to float64), among other changes
to the line search. The cause is not isolated (it would take the same 200-epoch run on the old
code); on the evidence here the suite's MNIST MLP shows no collapse at any scale it can run, so
the claim stays INCONCLUSIVE on the quick profile, and the full profile's CIFAR-10 ResNet-34 (the
PoNoS paper's case) is the one left to test, on a GPU.
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures import seeds
from scripts.figures.common import Claim, display, legend_label, plt, save, style
from scripts.figures.sls_deep import DATASET_NAMES, by_dataset, by_method, legend, name, semilogy_band

FIG = "step_size_collapse"
TITLE = "the monotone SLS step size collapses late in training on some problems, PoNoS's does not"
DROP = 1e3
FLOOR = 1e-6            # float32 floor of a training loss: ~10 * eps32 (module docstring)
MAX_BACKTRACKS = 100    # the searches' trial limit (conf/optimizer/sls.yaml)
MONOTONE = ("sls", "sls_ponos")          # method labels of the grid


def _steps(store, run_id, floor: float | None = None):
    """(epoch, largest step per interval) without the intervals where no step was taken and,
    with ``floor``, without those whose training loss is below it."""
    cur = store.curve(run_id, "step_size_max", "opt")
    v = cur.value.to_numpy(float)
    x = cur.epoch.to_numpy(float)
    keep = np.isfinite(v) & (v > 0)
    if floor is not None:
        loss = store.curve(run_id, "loss", "train")
        if len(loss):
            lx, lv = loss.epoch.to_numpy(float), loss.value.to_numpy(float)
            at = np.interp(x, lx, lv)        # training loss at the end of each interval
            keep &= at >= floor
    return x[keep], v[keep]


def collapse(store, run_id, floor: float | None = FLOOR) -> dict:
    x, s = _steps(store, run_id, floor)
    end = float(store.curve(run_id, "step_size_max", "opt").epoch.max()) if len(x) else math.nan
    if len(s) < 3:
        return {"ok": False, "drop": math.nan, "peak": math.nan, "final": math.nan, "t_peak": math.nan,
                "t_collapse": math.nan, "end": end, "late": False}
    i = int(np.argmax(s))
    peak, final = float(s[i]), float(s[-1])
    low = np.nonzero(s[i:] < peak / DROP)[0]
    t_c = float(x[i + low[0]]) if len(low) else math.nan
    drop = peak / final
    late = math.isfinite(t_c) and t_c >= end / 4
    return {"ok": drop >= DROP and late, "drop": drop, "peak": peak, "final": final, "t_peak": float(x[i]),
            "t_collapse": t_c, "end": end, "late": late}


def failed_forwards(store, run_id) -> tuple[float, float, bool]:
    """(forwards spent in failed searches, all forwards, exact?) of a run."""
    fw = store.curve(run_id, "n_forwards", "opt")
    total = float(fw.value.iloc[-1]) if len(fw) else math.nan
    exact = store.curve(run_id, "failed_forwards", "opt")
    if len(exact):
        return float(exact.value.iloc[-1]), total, True
    bt = store.curve(run_id, "backtracks", "opt")
    if not len(bt) or not len(fw):
        return math.nan, total, False
    steps = np.diff(np.concatenate([[0.0], fw.step.to_numpy(float)]))
    all_failed = bt.value.to_numpy(float) >= MAX_BACKTRACKS
    n = min(len(steps), len(all_failed))
    return float(MAX_BACKTRACKS * steps[:n][all_failed[:n]].sum()), total, False


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
    fig, axes = p.subplots(3, ncol, figsize=(5.2 * ncol, 9.0), squeeze=False)
    order = MONOTONE + ("ponos",)
    for j, (ds, runs) in enumerate(panels.items()):
        for c, rows in sorted(by_method(runs).items(), key=lambda kv: (kv[0] not in order,
                                                                       order.index(kv[0]) if kv[0] in order else 0,
                                                                       kv[0])):
            st = style(c)
            marked = False
            for k, (_, r) in enumerate(rows.iterrows()):
                lab = legend_label(c) if k == 0 else None
                x, s = _steps(store, r.run_id)
                if len(x):
                    axes[0, j].semilogy(x, s, color=st["color"], ls=st["ls"], lw=1.0, alpha=0.8, label=lab)
                cur = store.curve(r.run_id, "loss", "train")
                semilogy_band(axes[1, j], cur.epoch.to_numpy(float), cur.value.to_numpy(float),
                              cur.value.to_numpy(float), cur.value.to_numpy(float), lab, st["color"], lw=1.0,
                              ls=st["ls"])
                ff = store.curve(r.run_id, "failed_forwards", "opt")
                fw = store.curve(r.run_id, "n_forwards", "opt")
                if len(ff):
                    axes[2, j].plot(ff.epoch, ff.value, color=st["color"], ls=st["ls"], lw=1.0, label=lab)
                elif len(fw):
                    axes[2, j].plot(fw.epoch, fw.value, color=st["color"], ls=st["ls"], lw=1.0,
                                    label=f"{lab} (all forwards)" if lab else None)
                info = collapse(store, r.run_id)
                if c in MONOTONE and info["ok"]:
                    axes[0, j].axvline(info["t_collapse"], color=st["color"], ls=":", lw=1,
                                       label=None if marked else f"{display(c, tex=True)}: collapse epoch")
                    marked = True
        axes[1, j].axhline(FLOOR, color="0.5", lw=0.8, ls="--", label="float32 floor (collapse test above)")
        axes[0, j].set_title(DATASET_NAMES.get(ds, ds) + " (one line per seed)")
        axes[0, j].set_ylabel("largest step per interval")
        axes[1, j].set_ylabel("training loss")
        axes[2, j].set_ylabel("forwards in failed searches")
        axes[2, j].set_xlabel("epoch")
        for a in axes[:, j]:
            legend(a)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def _cost_text(store, rows) -> str:
    parts = []
    for _, r in rows.iterrows():
        f, tot, exact = failed_forwards(store, r.run_id)
        share = f / tot if tot and math.isfinite(f) and tot > 0 else math.nan
        parts.append(f"s{int(r.get('seed') or 0)} {f:.3g}{'' if exact else '+'} of {tot:.3g} ({share:.0%})")
    return "forwards in failed searches: " + ", ".join(parts) + " ('+': lower bound, all-failed intervals)"


def check(store):
    man = store.manifest(FIG) or {}
    quick = man.get("profile") == "quick"
    claims = []
    for ds, runs in by_dataset(store.runs(FIG)).items():
        tag = DATASET_NAMES.get(ds, ds)
        methods = by_method(runs)
        have = [c for c in MONOTONE if c in methods]
        if not have:
            claims.append(Claim(FIG, f"{tag}: monotone SLS runs present", "none", "FAIL"))
        else:
            per_variant, texts = {}, []
            for c in have:
                info = {}

                def stat(g, c=c, info=info):
                    i = collapse(store, g.run_id.iloc[0])
                    info[int(g.seed.iloc[0]) if "seed" in g else 0] = (g.run_id.iloc[0], i)
                    return i["drop"] if i["late"] else 1.0     # no late fall: no collapse
                per_variant[c] = seeds.per_seed(methods[c], stat)
                where = []
                for s_, (rid, i) in sorted(info.items()):
                    full = collapse(store, rid, floor=None)
                    where.append(f"s{s_}: " + (f"collapse epoch {i['t_collapse']:.0f} of {i['end']:.0f} at training loss "
                                               f"{_loss_at(store, rid, i['t_collapse']):.2e}" if i["ok"] else
                                               f"none above the floor (whole curve: drop {full['drop']:.3g}x"
                                               + (f", at loss {_loss_at(store, rid, full['t_collapse']):.2e}"
                                                  if full["ok"] else "") + ")")
                                 + f", final loss {_loss_at(store, rid, math.nan):.2e}")
                texts.append(f"{name(c)}: drop above the floor {seeds.describe(per_variant[c], '{:.3g}', 'x')}; "
                             + "; ".join(where) + "; " + _cost_text(store, methods[c]))
            best = {}
            for c, vals in per_variant.items():
                for s_, v in vals.items():
                    best[s_] = max(best.get(s_, -math.inf), v if math.isfinite(v) else -math.inf)
            best = {s_: (v if math.isfinite(v) else math.nan) for s_, v in best.items()}
            cl = seeds.seed_claim(
                FIG, f"{tag}: the monotone SLS step size collapses late (largest step per interval falls >= "
                     f"{DROP:.0e}x below its peak after the first quarter of training, while the training loss is "
                     f">= {FLOOR:.0e}, above the float32 floor; per seed the larger drop of "
                     f"{', '.join(name(c) for c in have)}; aggregation: {seeds.AGGREGATION})",
                best, lambda v: v >= DROP, extra=" | ".join(texts))
            if cl.status == "FAIL" and quick:
                cl = Claim(cl.figure, cl.claim, cl.measured + "; the quick profile does not reach a collapse "
                           "above the float32 floor (nor did the 200-epoch paper-scale MNIST run; the full profile's "
                           "CIFAR-10 ResNet-34 is the case left to test)", "INCONCLUSIVE")
            claims.append(cl)
        if "ponos" in methods:
            info = {}

            def pstat(g, info=info):
                i = collapse(store, g.run_id.iloc[0], floor=None)
                info[int(g.seed.iloc[0]) if "seed" in g else 0] = g.run_id.iloc[0]
                return i["drop"]
            drops = seeds.per_seed(methods["ponos"], pstat)
            finals = ", ".join(f"s{s_} {_loss_at(store, rid, math.nan):.2e}" for s_, rid in sorted(info.items()))
            claims.append(seeds.seed_claim(
                FIG, f"{tag}: PoNoS's step size does not collapse (final largest step per interval within "
                     f"{DROP:.0e}x of its peak, whole run; aggregation: {seeds.AGGREGATION})",
                drops, lambda v: v < DROP, unit="x",
                extra=f"final training loss {finals}; " + _cost_text(store, methods["ponos"])))
        else:
            claims.append(Claim(FIG, f"{tag}: PoNoS runs present", "none", "FAIL"))
    if not claims:
        claims.append(Claim(FIG, TITLE, "no runs", "FAIL"))
    return claims
