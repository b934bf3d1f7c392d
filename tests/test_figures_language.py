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
def _fbg_store(tmp_path, grows=True):
    steps = np.arange(0, 201, 10)
    runs = []
    # best finals (at the middle step size of each grid); the other step sizes are worse
    best = {"sgd": {4: 4.6, 16: 4.5, 64: 4.4}, "sgd_m": {4: 4.3, 16: 4.2, 64: 4.1},
            "adam_nom": {4: 4.2, 16: 3.0, 64: 2.0 if grows else 4.1},
            "adam": {4: 3.6, 16: 1.5, 64: 0.2 if grows else 4.0}}
    grid = {"sgd": (-1, -0.5, 0), "sgd_m": (-1.5, -1, -0.5), "adam": (-2.5, -2, -1.5), "adam_nom": (-3, -2.5, -2)}
    optimizer = {"sgd": "sgd", "sgd_m": "heavy_ball", "adam": "adam", "adam_nom": "adam"}
    for m, exps in grid.items():
        for bs in (4, 16, 64):
            for j, e in enumerate(exps):
                final = best[m][bs] * (1.0 if j == 1 else 1.3)
                rid = f"{m}{bs}{j}"
                cols = dict(LM_INFO)
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
    store = _fbg_store(tmp_path)
    _renders(full_batch_gap, store, tmp_path)
    claims = full_batch_gap.check(store)
    assert [c.status for c in claims] == ["PASS"]
    assert "full batch (64)" in claims[0].measured and "gap 3.90 nats" in claims[0].measured
    bad = full_batch_gap.check(_fbg_store(tmp_path, grows=False))
    assert [c.status for c in bad] == ["FAIL"]


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
def _sign_store(tmp_path, effect=True):
    steps = np.arange(0, 201, 10)
    finals = {"sgd": 4.6, "sgd_m": 4.2, "adam": 0.1, "adam_nom": 1.0, "sign": 1.1, "rsign": 3.9,
              "sign_m": 0.12 if effect else 2.0, "lion": 0.2, "ngd": 4.5 if effect else 0.2, "ngd_m": 3.8}
    runs = []
    for m, f in finals.items():
        for j, e in enumerate((-2.5, -2.0, -1.5)):
            runs.append(_run(f"{m}{j}", OPTIMIZER[m], 10 ** e,
                             {("train", "loss", -1): (steps, decay(7.6, f * (1 if j == 1 else 2.0), steps))},
                             dict(LM_INFO), method=m, task="ts_word_transformer"))
    return Store(write_store(tmp_path / ("e" if effect else "n"), "sign_descent", runs))


def test_sign_descent_renders_and_checks(tmp_path):
    store = _sign_store(tmp_path)
    _renders(sign_descent, store, tmp_path)
    claims = sign_descent.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"]
    assert "+0.08 decades" in claims[0].measured          # sign+m 0.12 vs Adam 0.1
    bad = sign_descent.check(_sign_store(tmp_path, effect=False))
    assert [c.status for c in bad] == ["FAIL", "PASS", "FAIL"]


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


def _group_store(tmp_path, fig, groups, counts, effect=True, logy=False):
    steps = np.arange(0, 321, 16)
    G = len(groups)
    task = {"heavy_tailed_labels": "ts_word_transformer", "linear_heavy_tail": "zipf_linear"}[fig]
    runs = []
    (tmp_path / "runs").mkdir(parents=True, exist_ok=True)
    finals_all = {"sgd": 4.5, "sgd_m": 4.0, "adam_nom": 2.5, "adam": 1.8}
    for m, f in finals_all.items():
        for j, e in enumerate((-2.0, -1.5, -1.0)):
            rid = f"{fig[:3]}{m}{j}"
            d = tmp_path / "runs" / rid
            d.mkdir(parents=True, exist_ok=True)
            (d / "data_info.json").write_text(json.dumps({"class_counts": [int(v) for v in counts]}))
            scale = 1.0 if j == 1 else 1.3
            curves = {}
            for g in groups:
                rare = g / max(1, G - 1)                     # 0 most frequent .. 1 rarest
                if m.startswith("sgd") and effect:
                    gf = 0.5 + 7.5 * rare                   # rare groups barely move (or rise)
                else:
                    gf = f * 0.7                             # every group progresses alike
                curves[("train", "loss", g)] = (steps, decay(7.6, gf * scale, steps))
            overall = decay(7.6, f * scale, steps)
            if m == "sgd" and j == 2:                        # unstable but lowest final loss: must be skipped
                overall = decay(7.6, 0.5, steps, bump=1.0)
            curves[("train", "loss", -1)] = (steps, overall)
            runs.append({"run_id": rid, "choices": {"optimizer": OPTIMIZER[m], "task": task}, "method": m,
                         "n": 256, "batch_size": 16,
                         "columns": {**LM_INFO, "optimizer.lr": 10 ** e, "train.batch_size": 16, "path": str(d),
                                     "dataset.m": 7}, "curves": curves})
    return Store(write_store(tmp_path, fig, runs))


def test_heavy_tailed_labels_renders_and_checks(tmp_path):
    store = _group_store(tmp_path / "a", "heavy_tailed_labels", list(range(10)), _zipf_counts())
    _renders(heavy_tailed_labels, store, tmp_path)
    claims = heavy_tailed_labels.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"]
    assert "Zipf exponent s = 1.1" in claims[0].measured
    # the unstable SGD step size (lowest final loss) is skipped and reported
    assert "SGD+m (10^-1.5" in claims[1].measured and "without the stability filter" in claims[1].measured
    flat = _group_store(tmp_path / "b", "heavy_tailed_labels", list(range(10)), np.full(400, 20), effect=False)
    assert [c.status for c in heavy_tailed_labels.check(flat)] == ["FAIL", "FAIL"]


def test_frequency_statistics_by_hand():
    st = heavy_tailed_labels.frequency_stats([8, 4, 2, 1, 1, 0])
    # occurring classes 8, 4, 2, 1, 1 (16 tokens): rarer half = the 2 rarest = 2 tokens
    assert st["present"] == 5 and st["classes"] == 6 and st["singletons"] == 2
    assert st["rare_half_present"] == pytest.approx(2 / 16)
    assert st["rare_half_vocab"] == pytest.approx(2 / 16)        # 1, 1, 0 of the 6 classes
    assert st["zipf_s"] == pytest.approx(-np.polyfit(np.log([1, 2, 3]), np.log([8, 4, 2]), 1)[0])


def test_linear_heavy_tail_renders_and_checks(tmp_path):
    m = 7
    counts = np.concatenate([np.full(2 ** i, 2 ** (m - i)) for i in range(m)])
    store = _group_store(tmp_path / "a", "linear_heavy_tail", list(range(m)), counts)
    _renders(linear_heavy_tail, store, tmp_path)
    assert [c.status for c in linear_heavy_tail.check(store)] == ["PASS", "PASS"]
    flat = _group_store(tmp_path / "b", "linear_heavy_tail", list(range(m)), np.full(127, 7), effect=False)
    assert [c.status for c in linear_heavy_tail.check(flat)] == ["FAIL", "FAIL"]


# ----------------------------------------------------------------------------- vision_vs_language
def _vvl_store(tmp_path, effect=True):
    steps = np.arange(0, 601, 30)
    finals = {"mnist": {"sls": 6e-5, "ponos": 8e-5, "ponos_prec": 2e-4, "adam": 3e-4},
              "tinyshakespeare": {"sls": 4.5, "ponos": 4.2, "ponos_prec": 2.2 if effect else 4.6, "adam": 1.8}}
    tasks = {"mnist": "mnist_lenet5", "tinyshakespeare": "ts_word_transformer"}
    if not effect:
        finals["mnist"].update(sls=3e-3, ponos=2e-3)
    runs = []
    for ds, fin in finals.items():
        init = 2.3 if ds == "mnist" else 7.6
        for m, f in fin.items():
            lrs = (-3.0, -2.5, -2.0) if m == "adam" else (None,)
            for j, e in enumerate(lrs):
                rid = f"{ds[:2]}{m}{j}"
                val = f * (1 if (e is None or j == 1) else 3)
                runs.append(_run(rid, m, 10 ** e if e is not None else math.nan,
                                 {("train", "loss", -1): (steps, decay(init, val, steps))},
                                 {**LM_INFO, "dataset.name": ds}, bs=16, n=256, method=m, task=tasks[ds]))
    return Store(write_store(tmp_path / ("e" if effect else "n"), "vision_vs_language", runs))


def test_vision_vs_language_renders_and_checks(tmp_path):
    store = _vvl_store(tmp_path)
    _renders(vision_vs_language, store, tmp_path)
    claims = vision_vs_language.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"]
    assert "fraction closed 0.83" in claims[2].measured          # (4.2 - 2.2) / (4.2 - 1.8)
    assert [c.status for c in vision_vs_language.check(_vvl_store(tmp_path, effect=False))] == ["FAIL", "PASS", "FAIL"]


# ----------------------------------------------------------------------------- noise_histograms
def _noise_store(tmp_path, heavy=True):
    rng = np.random.default_rng(0)
    runs = []
    for ds, bs, task in (("mnist", 256, "mnist_lenet5"), ("tinyshakespeare", 16, "ts_word_transformer")):
        curves = {}
        for step in (0, 38):
            if (ds == "tinyshakespeare") == heavy:          # without the effect the tails are swapped
                x = 0.4 * rng.lognormal(0, 0.35, 400)
            else:
                x = 0.15 + 0.02 * rng.standard_normal(400)
            for k, v in enumerate(x):
                curves[("noise", "grad_noise_norm", k)] = curves.get(("noise", "grad_noise_norm", k), ([], []))
                curves[("noise", "grad_noise_norm", k)][0].append(step)
                curves[("noise", "grad_noise_norm", k)][1].append(v)
        curves[("train", "loss", -1)] = ([0, 38], [2.3, 1.4])
        runs.append(_run(ds, "sgd", 0.1, curves, {**LM_INFO, "dataset.name": ds, "train.noise_batch_size": bs},
                         bs=bs, n=5000, method="sgd", task=task))
    return Store(write_store(tmp_path / ("h" if heavy else "g"), "noise_histograms", runs))


def test_noise_histograms_renders_and_checks(tmp_path):
    store = _noise_store(tmp_path)
    _renders(noise_histograms, store, tmp_path)
    claims = noise_histograms.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"]
    assert "Gaussian: T=1.72" in claims[0].measured
    assert [c.status for c in noise_histograms.check(_noise_store(tmp_path, heavy=False))] == ["FAIL", "FAIL"]


def test_tail_statistics_of_a_gaussian_and_a_heavy_tail():
    rng = np.random.default_rng(1)
    g = noise_histograms.tail_stats(rng.standard_normal(200_000))
    assert g["T"] == pytest.approx(noise_histograms.GAUSS_T, rel=0.02) and abs(g["kurt"]) < 0.05
    h = noise_histograms.tail_stats(rng.lognormal(0, 0.5, 200_000))
    assert h["T"] > 2.5 and h["kurt"] > 1
