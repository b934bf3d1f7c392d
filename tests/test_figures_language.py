"""The language figures render from small synthetic stores (no runs) and their claim checks
react to the numbers: a store showing the talk's effect PASSes, the same store with the
effect removed FAILs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scripts.figures import (full_batch_gap, heavy_tailed_labels, linear_heavy_tail, noise_histograms,
                             sign_descent, vision_vs_language)
from scripts.figures.common import Store
from tests.fake_store import write_store

LM_INFO = {"summary.data_info.n_tokens": 64 * 32, "summary.data_info.seq_len": 32, "dataset.name": "tinyshakespeare",
           "summary.status": "completed", "seed": 0}


def decay(init, final, steps, tau=None, bump=0.0):
    """A loss curve from init to final (geometric in log space), optionally with an early bump."""
    steps = np.asarray(steps, float)
    tau = tau or max(steps[-1] / 4, 1)
    w = (np.exp(-steps / tau) - np.exp(-steps[-1] / tau)) / (1 - np.exp(-steps[-1] / tau))   # 1 -> 0
    y = np.exp(np.log(final) + (np.log(init) - np.log(final)) * w)
    if bump:
        y = y * (1 + bump * np.exp(-((steps - steps[-1] / 20) / (steps[-1] / 40 + 1)) ** 2))
    return y


# method label (a grid's sweep.methods key) -> its optimizer choice
OPTIMIZER = {"sgd": "sgd", "sgd_m": "heavy_ball", "adam": "adam", "adam_nom": "adam", "sign": "sign_descent",
             "sign_m": "sign_descent_m", "ngd": "normalized_gd", "ngd_m": "normalized_gd_m", "rsign": "rescaled_sign",
             "lion": "lion"}


def _run(rid, choice, lr, curves, columns, bs=64, n=64, method=None, task=None):
    """A fake run: optimizer choice, method label (the grid's sweep.methods key), step size."""
    choices = {"optimizer": choice}
    if task:
        choices["task"] = task
    run = {"run_id": rid, "choices": choices, "n": n, "batch_size": bs,
           "columns": {**columns, "optimizer.lr": lr, "train.batch_size": bs}, "curves": curves}
    if method:
        run["method"] = method
    return run


def _renders(mod, store, tmp_path):
    paths = mod.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)


# ----------------------------------------------------------------------------- full_batch_gap
def _fbg_store(tmp_path, grows=True, seeds=(0,), weak_seed=None):
    """Every final of seed s scaled by 1 + 0.02 s; ``weak_seed``: in that seed Adam(+m) at the full
    batch end at 4.3 (within 0.1 nats of SGD+m's 4.1-4.2: no gap there)."""
    steps = np.arange(0, 201, 10)
    runs = []
    # best finals (at the middle step size of each grid); the other step sizes are worse
    best = {"sgd": {4: 4.6, 16: 4.5, 64: 4.4}, "sgd_m": {4: 4.3, 16: 4.2, 64: 4.1},
            "adam_nom": {4: 4.2, 16: 3.0, 64: 2.0 if grows else 4.1},
            "adam": {4: 3.6, 16: 1.5, 64: 0.2 if grows else 4.0}}
    grid = {"sgd": (-1, -0.5, 0), "sgd_m": (-1.5, -1, -0.5), "adam": (-2.5, -2, -1.5), "adam_nom": (-3, -2.5, -2)}
    optimizer = {"sgd": "sgd", "sgd_m": "heavy_ball", "adam": "adam", "adam_nom": "adam"}
    for seed in seeds:
        for m, exps in grid.items():
            for bs in (4, 16, 64):
                for j, e in enumerate(exps):
                    b = 4.3 if (seed == weak_seed and bs == 64 and m.startswith("adam")) else best[m][bs]
                    final = b * (1.0 if j == 1 else 1.3) * (1 + 0.02 * seed)
                    rid = f"{m}{bs}{j}" + (f"s{seed}" if seed else "")
                    cols = {**LM_INFO, "seed": seed}
                    curve = decay(7.6, final, steps)
                    if m == "sgd" and j == 2:                       # the largest SGD step diverges
                        cols["summary.status"] = "diverged"
                        curve = np.r_[decay(7.6, 6.0, steps[:5]), np.nan]
                        s = steps[:6]
                    else:
                        s = steps
                    runs.append(_run(rid, optimizer[m], 10 ** e, {("train", "loss", -1): (s, curve)}, cols, bs=bs,
                                     method=m, task="ts_word_transformer"))
    return Store(write_store(tmp_path / ("g" if grows else "s"), "full_batch_gap", runs))


def test_full_batch_gap_renders_and_checks(tmp_path):
    store = _fbg_store(tmp_path, seeds=(0, 1, 2))
    _renders(full_batch_gap, store, tmp_path)
    claims = full_batch_gap.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    # worst-seed summary per rung, then the per-seed gaps and their interval
    assert "full batch (64)" in claims[0].measured and "over 3 seeds" in claims[0].measured
    assert "s0 3.90 nats" in claims[0].measured
    bad = full_batch_gap.check(_fbg_store(tmp_path, grows=False, seeds=(0, 1, 2)))
    assert [c.status for c in bad] == ["FAIL", "FAIL"]
    # one seed: no verdict from seed noise
    assert [c.status for c in full_batch_gap.check(_fbg_store(tmp_path / "one"))] == ["INCONCLUSIVE"] * 2


def test_full_batch_gap_one_seed_without_the_gap_is_not_pass(tmp_path):
    """Seeds 0 and 2 show a 3.9-nat gap at the full batch, seed 1 none: the median gap is large, the
    claim is not PASS."""
    claims = full_batch_gap.check(_fbg_store(tmp_path, seeds=(0, 1, 2), weak_seed=1))
    assert claims[0].status == "FAIL" and "2 of 3 seeds show it" in claims[0].measured


def test_step_size_selection_uses_the_worst_seed_and_flags_grid_ends(tmp_path):
    import pandas as pd
    tab = pd.DataFrame({"method": ["a"] * 6, "lr": [0.1, 0.1, 1.0, 1.0, 10.0, 10.0],
                        "final": [1.0, 5.0, 2.0, 2.5, math.inf, 0.1], "run_id": list("uvwxyz")})
    sel = full_batch_gap.select_step_sizes(tab)
    row = sel.iloc[0]
    # median would pick 0.1 (3.0) or 10 (inf); the max over seeds picks 1.0 (2.5)
    assert row.lr == 1.0 and row.worst == 2.5 and not row.edge and sorted(row.run_ids) == ["w", "x"]
    edge = full_batch_gap.select_step_sizes(tab[tab.lr < 5]).iloc[0]
    assert edge.lr == 1.0 and edge.edge
    # a method without a step size (a line search) is one group with all its runs
    ls = full_batch_gap.select_step_sizes(pd.DataFrame({"method": ["sls"] * 2, "lr": [math.nan] * 2,
                                                        "final": [1.0, 2.0], "run_id": ["p", "q"]})).iloc[0]
    assert ls.worst == 2.0 and sorted(ls.run_ids) == ["p", "q"] and not ls.edge


def test_run_table_reads_method_labels_and_step_sizes(tmp_path):
    store = _fbg_store(tmp_path)
    tab = full_batch_gap.run_table(store, "full_batch_gap")
    nom = tab[tab.method == "adam_nom"]
    # two methods share the optimizer adam: the label, not the optimizer, tells them apart
    assert set(tab.method) == {"sgd", "sgd_m", "adam", "adam_nom"} and len(nom) == 9
    assert sorted(set(nom.lr)) == pytest.approx([1e-3, 10 ** -2.5, 1e-2])
    assert set(tab.task) == {"ts_word_transformer"} and math.isinf(tab.batch.max())


# ----------------------------------------------------------------------------- sign_descent
def _sign_store(tmp_path, effect=True, seeds=(0, 1, 2), ngd_close_in=None):
    """Three seeds (every final loss of seed s scaled by 1 + 0.05 s, so paired within-seed gaps
    are the same in every seed); ``ngd_close_in``: a seed whose normalized GD(+m) ends within
    0.3 decades of Adam (the effect is absent there)."""
    steps = np.arange(0, 201, 10)
    finals = {"sgd": 4.6, "sgd_m": 4.2, "adam": 0.1, "adam_nom": 1.0, "sign": 1.1, "rsign": 3.9,
              "sign_m": 0.12 if effect else 2.0, "lion": 0.2, "ngd": 4.5 if effect else 0.2, "ngd_m": 3.8}
    runs = []
    for seed in seeds:
        for m, f in finals.items():
            if seed == ngd_close_in and m in ("ngd", "ngd_m"):
                f = 0.2
            for j, e in enumerate((-2.5, -2.0, -1.5)):
                val = f * (1 if j == 1 else 2.0) * (1 + 0.05 * seed)
                runs.append(_run(f"{m}{j}s{seed}", OPTIMIZER[m], 10 ** e,
                                 {("train", "loss", -1): (steps, decay(7.6, val, steps))},
                                 {**LM_INFO, "seed": seed}, method=m, task="ts_word_transformer"))
    name = ("e" if effect else "n") + "".join(map(str, seeds)) + str(ngd_close_in)
    return Store(write_store(tmp_path / name, "sign_descent", runs))


def test_sign_descent_renders_and_checks(tmp_path):
    store = _sign_store(tmp_path)
    _renders(sign_descent, store, tmp_path)
    claims = sign_descent.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"]
    assert "s0 +0.08 dec" in claims[0].measured and "over 3 seeds" in claims[0].measured   # sign+m 0.12 vs Adam 0.1
    # best normalized GD (GD+m 3.8) vs Adam 0.1: log10(38) = 1.58 decades above, in every seed
    assert "median +1.58 dec [+1.58 dec, +1.58 dec]" in claims[2].measured
    bad = sign_descent.check(_sign_store(tmp_path, effect=False))
    assert [c.status for c in bad] == ["FAIL", "PASS", "FAIL"]


def test_sign_descent_needs_every_seed_and_three_seeds(tmp_path):
    # normalized GD far from Adam in seeds 0 and 1, within 0.3 decades in seed 2: not PASS
    c = sign_descent.check(_sign_store(tmp_path, ngd_close_in=2))[2]
    assert c.status == "FAIL" and "2 of 3 seeds show it" in c.measured
    # one seed cannot tell the effect from seed noise
    one = sign_descent.check(_sign_store(tmp_path, seeds=(0,)))
    assert {cl.status for cl in one} == {"INCONCLUSIVE"}


def test_sign_descent_is_inconclusive_without_a_gd_adam_gap(tmp_path):
    store = _sign_store(tmp_path)
    c = store.curves
    # make Adam as slow as GD: "tracks Adam" and "tracks GD" cannot be told apart
    adam = store.index.run_id.str.startswith("adam")
    for rid in store.index.run_id[adam]:
        sel = (c.run_id == rid) & (c.metric == "loss")
        c.loc[sel, "value"] = c.loc[sel, "value"] * 40
    assert {cl.status for cl in sign_descent.check(store)} == {"INCONCLUSIVE"}


# ----------------------------------------------------------------------------- per-class figures
def _zipf_counts(V=400, tokens=8000, s=1.1):
    p = np.arange(1, V + 1, dtype=float) ** -s
    return np.maximum(0, np.round(p / p.sum() * tokens)).astype(int)


def _group_store(tmp_path, fig, groups, counts, effect=True, logy=False, seeds=(0, 1, 2), weak_seed=None):
    """Per-group curves for 3 seeds (losses of seed s scaled by 1 + 0.01 s); in ``weak_seed`` SGD's
    groups all end at 2.83, i.e. log10(7.6 / 2.83) = 0.43 decades = 0.55 x Adam's 0.78."""
    steps = np.arange(0, 321, 16)
    G = len(groups)
    task = {"heavy_tailed_labels": "ts_word_transformer", "linear_heavy_tail": "zipf_linear"}[fig]
    runs = []
    (tmp_path / "runs").mkdir(parents=True, exist_ok=True)
    finals_all = {"sgd": 4.5, "sgd_m": 4.0, "adam_nom": 2.5, "adam": 1.8}
    for seed in seeds:
        k = 1 + 0.01 * seed
        for m, f in finals_all.items():
            for j, e in enumerate((-2.0, -1.5, -1.0)):
                rid = f"{fig[:3]}{m}{j}s{seed}"
                d = tmp_path / "runs" / rid
                d.mkdir(parents=True, exist_ok=True)
                (d / "data_info.json").write_text(json.dumps({"class_counts": [int(v) for v in counts]}))
                scale = 1.0 if j == 1 else 1.3
                curves = {}
                for g in groups:
                    rare = g / max(1, G - 1)                     # 0 most frequent .. 1 rarest
                    if m.startswith("sgd") and seed == weak_seed:
                        gf = 2.83
                    elif m.startswith("sgd") and effect:
                        gf = 0.5 + 7.5 * rare                   # rare groups barely move (or rise)
                    else:
                        gf = f * 0.7                             # every group progresses alike
                    curves[("train", "loss", g)] = (steps, k * decay(7.6, gf * scale, steps))
                overall = decay(7.6, f * scale, steps)
                if m == "sgd" and j == 2:                        # unstable but lowest final loss: must be skipped
                    overall = decay(7.6, 0.5, steps, bump=1.0)
                curves[("train", "loss", -1)] = (steps, k * overall)
                runs.append({"run_id": rid, "choices": {"optimizer": OPTIMIZER[m], "task": task}, "method": m,
                             "n": 256, "batch_size": 16,
                             "columns": {**LM_INFO, "seed": seed, "optimizer.lr": 10 ** e, "train.batch_size": 16,
                                         "path": str(d), "dataset.m": 7}, "curves": curves})
    return Store(write_store(tmp_path, fig, runs))


def test_heavy_tailed_labels_renders_and_checks(tmp_path):
    store = _group_store(tmp_path / "a", "heavy_tailed_labels", list(range(10)), _zipf_counts())
    _renders(heavy_tailed_labels, store, tmp_path)
    claims = heavy_tailed_labels.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"]
    assert "Zipf exponent s = 1.1" in claims[0].measured
    assert "over 3 seeds" in claims[1].measured
    # the unstable SGD step size (lowest final loss) is skipped and reported
    assert "SGD+m (10^-1.5" in claims[1].measured and "without the stability filter" in claims[1].measured
    flat = _group_store(tmp_path / "b", "heavy_tailed_labels", list(range(10)), np.full(400, 20), effect=False)
    assert [c.status for c in heavy_tailed_labels.check(flat)] == ["FAIL", "FAIL"]


def test_heavy_tailed_labels_effect_within_seed_noise_is_not_pass(tmp_path):
    # seeds 0 and 1 show the effect; in seed 2 SGD's rare-half progress is 0.55 x Adam's (> 0.5)
    store = _group_store(tmp_path / "w", "heavy_tailed_labels", list(range(10)), _zipf_counts(), weak_seed=2)
    c = heavy_tailed_labels.check(store)[1]
    assert c.status == "FAIL" and "2 of 3 seeds show it" in c.measured and "s2 0.55" in c.measured
    one = _group_store(tmp_path / "o", "heavy_tailed_labels", list(range(10)), _zipf_counts(), seeds=(0,))
    assert heavy_tailed_labels.check(one)[1].status == "INCONCLUSIVE"


def test_frequency_statistics_by_hand():
    st = heavy_tailed_labels.frequency_stats([8, 4, 2, 1, 1, 0])
    # occurring classes 8, 4, 2, 1, 1 (16 tokens): rarer half = the 2 rarest = 2 tokens
    assert st["present"] == 5 and st["classes"] == 6 and st["singletons"] == 2
    assert st["rare_half_present"] == pytest.approx(2 / 16)
    assert st["rare_half_vocab"] == pytest.approx(2 / 16)        # 1, 1, 0 of the 6 classes
    assert st["zipf_s"] == pytest.approx(-np.polyfit(np.log([1, 2, 3]), np.log([8, 4, 2]), 1)[0])


def _linear_store(tmp_path, rare_tau=(195, 195, 195), m=7):
    """GD and Adam on zipf_linear, 3 seeds, full batch (epoch = step), losses logged every 10
    epochs. Group g's loss is 4.8 * 10^(-t / tau): one decade per tau epochs. Adam: tau = 25 on
    every group; GD: tau = 35 on the frequent half, rare_tau[seed] on the rare half."""
    steps = np.arange(0, 501, 10)
    counts = np.concatenate([np.full(2 ** i, 2 ** (m - i)) for i in range(m)])
    runs = []
    for seed, tau_r in enumerate(rare_tau):
        for meth, opt in (("sgd_m", "heavy_ball"), ("adam", "adam")):
            rid = f"lin{meth}s{seed}"
            d = tmp_path / "runs" / rid
            d.mkdir(parents=True, exist_ok=True)
            (d / "data_info.json").write_text(json.dumps({"class_counts": [int(v) for v in counts]}))
            taus = [25] * m if meth == "adam" else [35 if g < m / 2 else tau_r for g in range(m)]
            curves = {("train", "loss", g): (steps, 4.8 * 10.0 ** (-steps / t)) for g, t in enumerate(taus)}
            curves[("train", "loss", -1)] = (steps, np.mean([c[1] for c in curves.values()], axis=0))
            runs.append({"run_id": rid, "choices": {"optimizer": opt, "task": "zipf_linear"}, "method": meth,
                         "n": 896, "batch_size": 896,
                         "columns": {**LM_INFO, "seed": seed, "optimizer.lr": 0.01, "train.batch_size": 896,
                                     "path": str(d), "dataset.m": m}, "curves": curves})
    return Store(write_store(tmp_path, "linear_heavy_tail", runs))


def test_time_to_target_by_hand():
    xs = np.arange(0, 101, 10)
    # 4.8 * 10^(-t/25): 0.76 at t = 20 (above 0.48), 0.30 at t = 30: first logged epoch below is 30
    assert linear_heavy_tail.time_to_target(xs, 4.8 * 10.0 ** (-xs / 25)) == 30
    assert linear_heavy_tail.time_to_target(xs, np.full(len(xs), 4.8)) == math.inf      # never: censored
    assert linear_heavy_tail.time_to_target(xs, [5.0, 2.0, 0.5] + [0.4] * 8) == 20      # reaching 0.5 exactly counts
    assert math.isnan(linear_heavy_tail.slowdown(40.0, math.inf))                      # Adam never reaches it


def test_linear_heavy_tail_renders_and_checks(tmp_path):
    store = _linear_store(tmp_path / "a")
    _renders(linear_heavy_tail, store, tmp_path)
    claims = linear_heavy_tail.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "imbalance 64x" in claims[0].measured
    # rare half: GD first below 0.48 at epoch 200 (tau 195), Adam at 30 (tau 25): 6.67x; frequent: 40 / 30
    assert "median 6.67x [6.67x, 6.67x] over 3 seeds" in claims[1].measured and "slowdown 1.33" in claims[1].measured
    # no frequency effect: GD 35 epochs per decade on every group, 40 / 30 = 1.33x < 2
    flat = linear_heavy_tail.check(_linear_store(tmp_path / "b", rare_tau=(35, 35, 35)))
    assert flat[1].status == "FAIL"


def test_linear_heavy_tail_effect_within_seed_noise_is_not_pass(tmp_path):
    # seed 2: the rare half needs 45 epochs per decade (first logged epoch below: 50), 50 / 30 = 1.67x < 2
    c = linear_heavy_tail.check(_linear_store(tmp_path / "w", rare_tau=(195, 195, 45)))[1]
    assert c.status == "FAIL" and "2 of 3 seeds show it" in c.measured and "s2 1.67x" in c.measured


# ----------------------------------------------------------------------------- vision_vs_language
def _vvl_store(tmp_path, effect=True, seeds=(0, 1, 2), weak_seed=None):
    """Per seed the same finals times 1 + 0.05 s (seed noise that keeps every ratio);
    ``weak_seed``: in that seed PoNoS_prec is no better than PoNoS (closes nothing)."""
    steps = np.arange(0, 601, 30)
    base = {"mnist": {"sls": 6e-5, "ponos": 8e-5, "ponos_prec": 2e-4, "adam": 3e-4},
            "tinyshakespeare": {"sls": 4.5, "ponos": 4.2, "ponos_prec": 2.2 if effect else 4.6, "adam": 1.8}}
    tasks = {"mnist": "mnist_lenet5", "tinyshakespeare": "ts_word_transformer"}
    if not effect:
        base["mnist"].update(sls=3e-3, ponos=2e-3)
    runs = []
    for seed in seeds:
        for ds, fin in base.items():
            init = 2.3 if ds == "mnist" else 7.6
            for m, f in fin.items():
                if seed == weak_seed and ds == "tinyshakespeare" and m == "ponos_prec":
                    f = fin["ponos"]
                lrs = (-3.0, -2.5, -2.0) if m == "adam" else (None,)
                for j, e in enumerate(lrs):
                    rid = f"{ds[:2]}{m}{j}s{seed}"
                    val = f * (1 + 0.05 * seed) * (1 if (e is None or j == 1) else 3)
                    runs.append(_run(rid, m, 10 ** e if e is not None else math.nan,
                                     {("train", "loss", -1): (steps, decay(init, val, steps))},
                                     {**LM_INFO, "dataset.name": ds, "seed": seed}, bs=16, n=256, method=m,
                                     task=tasks[ds]))
    name = f"{'e' if effect else 'n'}{len(seeds)}{weak_seed}"
    return Store(write_store(tmp_path / name, "vision_vs_language", runs))


def test_vision_vs_language_renders_and_checks(tmp_path):
    store = _vvl_store(tmp_path)
    _renders(vision_vs_language, store, tmp_path)
    claims = vision_vs_language.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"]
    # (4.2 - 2.2) / (4.2 - 1.8) = 0.83 in every seed; the vision ratio 6e-5 / 3e-4 = 0.2
    assert "s0 0.83, s1 0.83, s2 0.83" in claims[2].measured
    assert "s0 0.2," in claims[0].measured and "over 3 seeds" in claims[0].measured
    assert [c.status for c in vision_vs_language.check(_vvl_store(tmp_path, effect=False))] == ["FAIL", "PASS", "FAIL"]


def test_vision_vs_language_needs_every_seed_and_three_seeds(tmp_path):
    weak = vision_vs_language.check(_vvl_store(tmp_path, weak_seed=1))[2]
    assert weak.status == "FAIL" and "2 of 3 seeds show it" in weak.measured and "s1 0.00" in weak.measured
    one = vision_vs_language.check(_vvl_store(tmp_path, seeds=(0,)))
    assert [c.status for c in one] == ["INCONCLUSIVE"] * 3


# ----------------------------------------------------------------------------- noise_histograms
def _noise_store(tmp_path, heavy=True, seeds=(0, 1, 2), light_in=None, n=400):
    """Noise norms per seed; ``light_in``: a seed whose language sample is as light-tailed as
    the vision one (the effect absent in that seed)."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in seeds:
        for ds, bs, task in (("mnist", 256, "mnist_lenet5"), ("tinyshakespeare", 16, "ts_word_transformer")):
            curves = {}
            for step in (0, 38):
                lang = ds == "tinyshakespeare"
                if lang == heavy and not (lang and seed == light_in):   # without the effect the tails are swapped
                    x = 0.4 * (1 + 0.3 * seed) * rng.lognormal(0, 0.35, n)   # each seed its own scale
                else:
                    x = 0.15 + 0.02 * rng.standard_normal(n)
                for k, v in enumerate(x):
                    curves[("noise", "grad_noise_norm", k)] = curves.get(("noise", "grad_noise_norm", k), ([], []))
                    curves[("noise", "grad_noise_norm", k)][0].append(step)
                    curves[("noise", "grad_noise_norm", k)][1].append(v)
            curves[("train", "loss", -1)] = ([0, 38], [2.3, 1.4])
            runs.append(_run(f"{ds}s{seed}", "sgd", 0.1, curves,
                             {**LM_INFO, "seed": seed, "dataset.name": ds, "train.noise_batch_size": bs},
                             bs=bs, n=5000, method="sgd", task=task))
    return Store(write_store(tmp_path / f"{'h' if heavy else 'g'}{len(seeds)}{light_in}", "noise_histograms", runs))


def test_noise_histograms_renders_and_checks(tmp_path):
    store = _noise_store(tmp_path)
    _renders(noise_histograms, store, tmp_path)
    claims = noise_histograms.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "Gaussian: T=1.72" in claims[0].measured and "over 3 seeds" in claims[0].measured
    assert [c.status for c in noise_histograms.check(_noise_store(tmp_path, heavy=False))] == ["FAIL", "FAIL"]


def test_noise_histograms_needs_every_seed(tmp_path):
    # language heavier-tailed in seeds 0 and 1 only: not PASS
    c = noise_histograms.check(_noise_store(tmp_path, light_in=2))[0]
    assert c.status == "FAIL" and "2 of 3 seeds show it" in c.measured
    # one seed: no verdict
    assert noise_histograms.check(_noise_store(tmp_path, seeds=(0,)))[0].status == "INCONCLUSIVE"


def test_pooled_noise_test_standardises_each_seed():
    rng = np.random.default_rng(3)
    # the same Gaussian shape in both kinds, but one language seed at 3x the scale: pooling the raw
    # norms measures the spread between seeds (a bimodal pool); the standardised pool shows no gap
    lang = {s: (1, 1, 3)[s] * (1 + 0.1 * rng.standard_normal(3000)) for s in range(3)}
    vis = {s: 1 + 0.1 * rng.standard_normal(3000) for s in range(3)}
    point, low = noise_histograms.pooled_t_gap({"lm": lang}, {"mnist": vis}, boot=300)
    assert abs(point) < 0.1 and low < 0
    raw = noise_histograms.tail_stats(np.concatenate(list(lang.values())))["T"]
    assert raw < 1.45       # the raw pool's T, far from the Gaussian's 1.72 (measured 1.37)
    # a real heavy tail (lognormal) is detected beyond the bootstrap bound
    heavy = {s: rng.lognormal(0, 0.5, 3000) for s in range(3)}
    point, low = noise_histograms.pooled_t_gap({"lm": heavy}, {"mnist": vis}, boot=300)
    assert low > 0.3


def test_tail_statistics_of_a_gaussian_and_a_heavy_tail():
    rng = np.random.default_rng(1)
    g = noise_histograms.tail_stats(rng.standard_normal(200_000))
    assert g["T"] == pytest.approx(noise_histograms.GAUSS_T, rel=0.02) and abs(g["kurt"]) < 0.05
    h = noise_histograms.tail_stats(rng.lognormal(0, 0.5, 200_000))
    assert h["T"] > 2.5 and h["kurt"] > 1
