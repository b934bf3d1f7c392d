"""The vision figure scripts (sls_deep, ponos, step_size_collapse, heavy_tailed_vision) render
from a synthetic store and their claim checks react to the numbers: a store showing the effect
PASSes, the same store with the effect removed FAILs (or is INCONCLUSIVE where the quick
profile may legitimately not show it)."""
import json

import numpy as np
import pytest

from scripts.figures import heavy_tailed_vision, ponos, sls_deep, step_size_collapse
from scripts.figures.common import Store
from tests.fake_store import write_store

N, BS = 5000, 128
STEPS = np.arange(0, 2401, 80)          # evaluation every 80 steps; opt/* metrics from the first interval on


OPTIMIZER = {"sls_ponos": "sls", "sps_ponos": "sps"}     # method label -> optimizer choice


def _run(rid, method, loss, *, lr=None, ds="mnist", status="completed", opt=None, extra_cols=None, steps=STEPS,
         acc=0.95):
    """A run of the grid's method ``method`` (a step size ``lr`` for the points of a grid)."""
    curves = {("train", "loss", -1): (steps, loss), ("test", "acc", -1): (steps, acc + 0 * steps)}
    for metric, values in (opt or {}).items():
        curves[("opt", metric, -1)] = (steps[1:], values)
    if lr is None and method == "adam":
        lr = 0.001
    return {"run_id": rid, "method": method, "choices": {"optimizer": OPTIMIZER.get(method, method)},
            "n": N, "batch_size": BS, "curves": curves,
            "columns": {"dataset.name": ds, "summary.status": status, "optimizer.lr": lr, **(extra_cols or {})}}


def _decay(rate, steps=STEPS, start=2.3):
    return start * 10 ** (-steps / rate)


def _line_search_opt(step0, growth, zero_frac, steps=STEPS):
    k = steps[1:]
    return {"step_size": step0 * growth ** k, "step_size_max": 1.5 * step0 * growth ** k,
            "zero_backtrack_frac": zero_frac + 0 * k, "backtracks": (1 - zero_frac) * 2 + 0 * k}


def _sls_store(tmp_path, effect=True, seeds=(0, 1, 2), slow_in=None):
    """Every method in ``seeds`` (training losses of seed s scaled by 1 + 0.05 s); ``slow_in``: a
    seed where SLS is as slow as without the effect (the effect absent in that seed only)."""
    diverged_steps = STEPS[:2]
    runs = []
    for sd in seeds:
        k = 1 + 0.05 * sd
        cols = {"seed": sd}
        runs += [
            _run(f"sgd1_s{sd}", "sgd", k * _decay(1500), lr=0.1, extra_cols=cols),
            _run(f"sgd3_s{sd}", "sgd", k * _decay(900), lr=0.3, extra_cols=cols),
            _run(f"sgd10_s{sd}", "sgd", np.array([2.3, np.inf]), lr=1.0, status="diverged", steps=diverged_steps,
                 extra_cols=cols),
            _run(f"adam_s{sd}", "adam", k * _decay(700), extra_cols=cols),
            _run(f"sps_s{sd}", "sps", k * _decay(450), opt=_line_search_opt(0.4, 1.002, 1.0), extra_cols=cols),
        ]
        if effect and sd != slow_in:
            runs.append(_run(f"sls_s{sd}", "sls", k * _decay(400), opt=_line_search_opt(0.2, 1.002, 0.95),
                             extra_cols=cols))
        else:   # slower than Adam, a constant step and mostly backtracking
            runs.append(_run(f"sls_s{sd}", "sls", k * _decay(1200), opt=_line_search_opt(0.2, 1.0, 0.3),
                             extra_cols=cols))
    return Store(write_store(tmp_path, "sls_deep", runs))


def test_sls_deep_renders_and_checks(tmp_path):
    store = _sls_store(tmp_path / "ok")
    paths = sls_deep.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    claims = sls_deep.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"], [c.measured for c in claims]
    assert "best SGD (step 0.3)" in claims[0].measured          # the diverged step 1.0 is not the best
    assert "s0 95.0%" in claims[1].measured and "over 3 seeds" in claims[1].measured
    bad = _sls_store(tmp_path / "bad", effect=False)
    assert [c.status for c in sls_deep.check(bad)] == ["FAIL", "FAIL", "FAIL"]


def test_sls_deep_effect_in_two_of_three_seeds_is_not_pass(tmp_path):
    claims = sls_deep.check(_sls_store(tmp_path / "w", slow_in=1))
    assert [c.status for c in claims] == ["FAIL", "FAIL", "FAIL"]
    assert all("2 of 3 seeds show it" in c.measured for c in claims)
    one = sls_deep.check(_sls_store(tmp_path / "one", seeds=(0,)))
    assert {c.status for c in one} == {"INCONCLUSIVE"}


def test_sls_deep_one_column_per_dataset(tmp_path):
    runs = []
    for sd in (0, 1, 2):
        c = {"seed": sd}
        runs += [_run(f"a{sd}", "sls", _decay(400), opt=_line_search_opt(0.2, 1.002, 0.9), extra_cols=c),
                 _run(f"b{sd}", "adam", _decay(700), extra_cols=c), _run(f"c{sd}", "sgd", _decay(800), lr=0.1, extra_cols=c),
                 _run(f"d{sd}", "sls", _decay(400), ds="cifar10", opt=_line_search_opt(0.2, 1.002, 0.9), extra_cols=c),
                 _run(f"e{sd}", "adam", _decay(300), ds="cifar10", extra_cols=c),
                 _run(f"f{sd}", "sgd", _decay(800), lr=0.1, ds="cifar10", extra_cols=c)]
    store = Store(write_store(tmp_path, "sls_deep", runs))
    assert sls_deep.plot(store, tmp_path / "fig")[0].exists()
    claims = sls_deep.check(store)
    assert [c.claim.split(":")[0] for c in claims] == ["MNIST, MLP"] * 3 + ["CIFAR-10, ResNet-34"] * 3
    # on CIFAR-10 Adam (1e-3 decades/step faster) wins by far more than the 2x tolerance
    assert [c.status for c in claims] == ["PASS"] * 3 + ["FAIL", "PASS", "PASS"]


def _ponos_store(tmp_path, effect=True, seeds=(0, 1, 2), weak_seed=None):
    """Three seeds (losses of seed s times 1 + 0.05 s); ``weak_seed``: PoNoS of that seed ends above SPS."""
    runs = []
    for s in seeds:
        f = 1 + 0.05 * s
        rows = [
            _run("sgd", "sgd", _decay(900) * f, lr=0.3),
            _run("adam", "adam", _decay(700) * f),
            _run("sls", "sls_ponos", _decay(600) * f, opt=_line_search_opt(0.3, 1.001, 0.95)),
            _run("sps", "sps_ponos", _decay(500) * f, opt=_line_search_opt(0.5, 1.001, 1.0)),
        ]
        good = effect and s != weak_seed
        rows.append(_run("ponos", "ponos", _decay(350 if good else 550) * f,
                         opt=_line_search_opt(1.0, 1.0005, 0.8 if effect else 0.3)))
        for r in rows:
            r["run_id"] += f"_s{s}"
            r["columns"]["seed"] = s
        runs += rows
    return Store(write_store(tmp_path, "ponos", runs))


def test_ponos_renders_and_checks(tmp_path):
    store = _ponos_store(tmp_path / "ok")
    assert ponos.plot(store, tmp_path / "fig")[0].exists()
    claims = ponos.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "80.0%" in claims[1].measured and "over 3 seeds" in claims[0].measured
    claims = ponos.check(_ponos_store(tmp_path / "bad", effect=False))
    assert [c.status for c in claims] == ["FAIL", "FAIL"]
    assert "SPS (cap 10)" in claims[0].measured and "capped at step 10" in claims[0].claim
    weak = ponos.check(_ponos_store(tmp_path / "weak", weak_seed=1))
    assert weak[0].status == "FAIL" and "2 of 3 seeds show it" in weak[0].measured


def _collapse_store(tmp_path, sls_collapses=True, ponos_collapses=False, profile="quick", artefact=False,
                    seeds=(0, 1, 2), exact_counter=False):
    """3 seeds; SLS's step falls 1e11-fold at step 3200 (epoch 83 of 115). ``artefact``: its loss
    is below the float32 floor (1e-6) by then (the quick profile's round-off collapse)."""
    steps = np.arange(0, 4501, 60)
    k = steps[1:]
    grow = np.minimum(0.2 * 1.003 ** k, 3e4)
    collapse_at = 3200                                   # 71% of training
    sls = np.where(k < collapse_at, grow, 1e-11) if sls_collapses else grow
    pon = np.where(k < 600, 0.5 + k / 100, 10.0)
    if ponos_collapses:
        pon = np.where(k < 3000, pon, 1e-6)
    loss = _decay(900, steps)                            # 6e-4 at step 3200: above the floor
    sls_loss = np.maximum(_decay(300, steps) if artefact else loss, 2.4e-8)
    failed = np.where(k < collapse_at, 0, 100)           # every search fails after the collapse
    fw = np.cumsum(60 * (2 + failed))
    sls_opt = {"step_size_max": sls, "backtracks": failed, "n_forwards": fw}
    if exact_counter:
        sls_opt["failed_forwards"] = np.cumsum(60 * failed)
    runs = []
    for sd in seeds:
        f = 1 + 0.1 * sd
        runs += [_run(f"sls{sd}", "sls", sls_loss * f, steps=steps, opt=sls_opt, extra_cols={"seed": sd}),
                 _run(f"slsc{sd}", "sls_ponos", loss * 3 * f, steps=steps, opt={"step_size_max": np.minimum(grow, 10)},
                      extra_cols={"seed": sd}),
                 _run(f"ponos{sd}", "ponos", loss * 2 * f, steps=steps, opt={"step_size_max": pon},
                      extra_cols={"seed": sd})]
    root = write_store(tmp_path, "step_size_collapse", runs)
    man = root / "manifests" / "step_size_collapse.json"
    m = json.loads(man.read_text())
    m["profile"] = profile
    man.write_text(json.dumps(m))
    return Store(root)


def test_step_size_collapse_renders_and_checks(tmp_path):
    store = _collapse_store(tmp_path / "ok")
    assert step_size_collapse.plot(store, tmp_path / "fig")[0].exists()
    claims = step_size_collapse.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "over 3 seeds" in claims[0].measured and "s0: collapse epoch 83 of 115" in claims[0].measured
    # forwards in failed searches: 100 per step over the last 1,300 steps (lower bound from the
    # all-failed intervals, or the optimizer's counter when logged)
    assert "s0 1.32e+05+ of" in claims[0].measured
    exact = step_size_collapse.check(_collapse_store(tmp_path / "x", exact_counter=True))[0]
    assert "s0 1.32e+05 of" in exact.measured
    # no collapse: the quick profile may not reach it (INCONCLUSIVE), the full profile must (FAIL)
    none_quick = step_size_collapse.check(_collapse_store(tmp_path / "nq", sls_collapses=False))
    assert [c.status for c in none_quick] == ["INCONCLUSIVE", "PASS"]
    none_full = step_size_collapse.check(_collapse_store(tmp_path / "nf", sls_collapses=False, profile="full"))
    assert [c.status for c in none_full] == ["FAIL", "PASS"]
    both = step_size_collapse.check(_collapse_store(tmp_path / "b", ponos_collapses=True))
    assert [c.status for c in both] == ["PASS", "FAIL"]


def test_step_size_collapse_below_the_float32_floor_does_not_count(tmp_path):
    """The same step-size fall with the loss already below 1e-6 is the round-off artefact."""
    full = step_size_collapse.check(_collapse_store(tmp_path / "af", artefact=True, profile="full"))
    assert full[0].status == "FAIL" and "none above the floor" in full[0].measured
    assert "0 of 3 seeds show it" in full[0].measured
    one = step_size_collapse.check(_collapse_store(tmp_path / "one", seeds=(0,), profile="full"))
    assert [c.status for c in one] == ["INCONCLUSIVE", "INCONCLUSIVE"]


def test_step_size_collapse_ignores_intervals_without_steps(tmp_path):
    # an interval where every step was skipped logs a largest step of 0: not a collapse
    steps = np.arange(0, 1201, 100)
    k = steps[1:]
    s = np.where(k == 1100, 0.0, 10.0)
    runs = []
    for sd in (0, 1, 2):
        runs += [_run(f"sls{sd}", "sls", _decay(900, steps), steps=steps, opt={"step_size_max": s},
                      extra_cols={"seed": sd}),
                 _run(f"ponos{sd}", "ponos", _decay(900, steps), steps=steps, opt={"step_size_max": 10 + 0 * k},
                      extra_cols={"seed": sd})]
    store = Store(write_store(tmp_path, "step_size_collapse", runs))
    assert [c.status for c in step_size_collapse.check(store)] == ["INCONCLUSIVE", "PASS"]


def _heavy_store(tmp_path, effect=True, seeds=(0, 1, 2), weak_in=None):
    """Both data sets in ``seeds`` (losses of seed s scaled by 1 + 0.02 s); ``weak_in``: a seed where
    SGD's barcoded group falls as fast as Adam's (the effect absent in that seed only)."""
    steps = np.arange(0, 151, 15)

    def run(rid, method, lr, balanced, loss, g0=None, g1=None, sd=0):
        k = 1 + 0.02 * sd
        r = _run(f"{rid}_s{sd}", method, k * loss, lr=lr, steps=steps,
                 extra_cols={"dataset.balanced_control": balanced, "summary.data_info.n_barcoded_classes": 1000,
                             "seed": sd})
        r["choices"]["task"] = "mnist_barcoded_mlp"
        if g0 is not None:
            r["curves"][("train", "loss", 0)] = (steps, k * g0)
            r["curves"][("train", "loss", 1)] = (steps, k * g1)
        return r
    runs = []
    for sd in seeds:
        bal_sgd = _decay(50, steps) if effect else 2.3 * 0.99 ** steps
        runs += [run("bs", "sgd", 1.0, True, bal_sgd, bal_sgd, bal_sgd, sd=sd),
                 run("ba", "adam", 0.003, True, _decay(40, steps), _decay(40, steps), _decay(40, steps), sd=sd)]
        g0_sgd, g0_adam = _decay(60, steps, 6.9), _decay(45, steps, 6.9)
        g1_sgd = 6.9 * 10 ** (-steps / 300) if effect and sd != weak_in else _decay(70, steps, 6.9)
        g1_adam = _decay(55, steps, 6.9)
        runs += [run("ms", "sgd", 1.0, False, (g0_sgd + g1_sgd) / 2, g0_sgd, g1_sgd, sd=sd),
                 run("ma", "adam", 0.003, False, (g0_adam + g1_adam) / 2, g0_adam, g1_adam, sd=sd),
                 run("ms3", "sgd", 0.3, False, (g0_sgd + 6.9) / 2, g0_sgd * 3, 6.9 + 0 * steps, sd=sd)]
    return Store(write_store(tmp_path, "heavy_tailed_vision", runs))


def test_heavy_tailed_vision_renders_and_checks(tmp_path):
    store = _heavy_store(tmp_path / "ok")
    paths = heavy_tailed_vision.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    claims = heavy_tailed_vision.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    # barcoded group: SGD 150/300 = 0.50 decades, Adam 150/55 = 2.73 decades: ratio 0.18 in every seed
    assert "median 0.18 [0.18, 0.18] over 3 seeds" in claims[1].measured
    assert "SGD (1) 0.50 decades" in claims[1].measured
    assert "Adam (0.003)" in claims[1].measured and "SGD (0.3) " in claims[1].measured
    claims = heavy_tailed_vision.check(_heavy_store(tmp_path / "bad", effect=False))
    assert [c.status for c in claims] == ["FAIL", "FAIL"]


def test_heavy_tailed_vision_effect_in_two_of_three_seeds_is_not_pass(tmp_path):
    c = heavy_tailed_vision.check(_heavy_store(tmp_path / "w", weak_in=0))[1]
    assert c.status == "FAIL" and "2 of 3 seeds show it" in c.measured
    one = heavy_tailed_vision.check(_heavy_store(tmp_path / "o", seeds=(0,)))
    assert [x.status for x in one] == ["INCONCLUSIVE", "INCONCLUSIVE"]


@pytest.mark.parametrize("mod", [sls_deep, ponos, step_size_collapse, heavy_tailed_vision])
def test_empty_store_does_not_pass(tmp_path, mod):
    store = Store(write_store(tmp_path, mod.FIG, [_run("x", "other", _decay(100))]))
    assert all(c.status != "PASS" for c in mod.check(store))
    assert mod.plot(store, tmp_path / "fig")[0].exists()
