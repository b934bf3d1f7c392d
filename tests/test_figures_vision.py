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


def _sls_store(tmp_path, effect=True):
    diverged_steps = STEPS[:2]
    runs = [
        _run("sgd1", "sgd", _decay(1500), lr=0.1),
        _run("sgd3", "sgd", _decay(900), lr=0.3),
        _run("sgd10", "sgd", np.array([2.3, np.inf]), lr=1.0, status="diverged", steps=diverged_steps),
        _run("adam", "adam", _decay(700)),
        _run("sps", "sps", _decay(450), opt=_line_search_opt(0.4, 1.002, 1.0)),
    ]
    if effect:
        runs.append(_run("sls", "sls", _decay(400), opt=_line_search_opt(0.2, 1.002, 0.95)))
    else:   # slower than Adam, a constant step and mostly backtracking
        runs.append(_run("sls", "sls", _decay(1200), opt=_line_search_opt(0.2, 1.0, 0.3)))
    for r in list(runs):      # a second seed of every method, slightly shifted
        r2 = {**r, "run_id": r["run_id"] + "_s1",
              "curves": {k: (v[0], np.asarray(v[1]) * (1.05 if k[0] == "train" else 1.0))
                         for k, v in r["curves"].items()}}
        runs.append(r2)
    return Store(write_store(tmp_path, "sls_deep", runs))


def test_sls_deep_renders_and_checks(tmp_path):
    store = _sls_store(tmp_path / "ok")
    paths = sls_deep.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    claims = sls_deep.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"], [c.measured for c in claims]
    assert "best SGD (step 0.3)" in claims[0].measured          # the diverged step 1.0 is not the best
    assert "95.0%" in claims[1].measured
    bad = _sls_store(tmp_path / "bad", effect=False)
    assert [c.status for c in sls_deep.check(bad)] == ["FAIL", "FAIL", "FAIL"]


def test_sls_deep_one_column_per_dataset(tmp_path):
    runs = [_run("a", "sls", _decay(400), opt=_line_search_opt(0.2, 1.002, 0.9)),
            _run("b", "adam", _decay(700)), _run("c", "sgd", _decay(800), lr=0.1),
            _run("d", "sls", _decay(400), ds="cifar10", opt=_line_search_opt(0.2, 1.002, 0.9)),
            _run("e", "adam", _decay(300), ds="cifar10"), _run("f", "sgd", _decay(800), lr=0.1, ds="cifar10")]
    store = Store(write_store(tmp_path, "sls_deep", runs))
    assert sls_deep.plot(store, tmp_path / "fig")[0].exists()
    claims = sls_deep.check(store)
    assert [c.claim.split(":")[0] for c in claims] == ["MNIST, MLP"] * 3 + ["CIFAR-10, ResNet-34"] * 3
    # on CIFAR-10 Adam (1e-3 decades/step faster) wins by far more than the 2x tolerance
    assert [c.status for c in claims] == ["PASS"] * 3 + ["FAIL", "PASS", "PASS"]


def _ponos_store(tmp_path, effect=True):
    runs = [
        _run("sgd", "sgd", _decay(900), lr=0.3),
        _run("adam", "adam", _decay(700)),
        _run("sls", "sls_ponos", _decay(600), opt=_line_search_opt(0.3, 1.001, 0.95)),
        _run("sps", "sps_ponos", _decay(500), opt=_line_search_opt(0.5, 1.001, 1.0)),
    ]
    if effect:
        runs.append(_run("ponos", "ponos", _decay(350), opt=_line_search_opt(1.0, 1.0005, 0.8)))
    else:
        runs.append(_run("ponos", "ponos", _decay(550), opt=_line_search_opt(1.0, 1.0005, 0.3)))
    return Store(write_store(tmp_path, "ponos", runs))


def test_ponos_renders_and_checks(tmp_path):
    store = _ponos_store(tmp_path / "ok")
    assert ponos.plot(store, tmp_path / "fig")[0].exists()
    claims = ponos.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "80.0%" in claims[1].measured
    bad = _ponos_store(tmp_path / "bad", effect=False)
    claims = ponos.check(bad)
    assert [c.status for c in claims] == ["FAIL", "FAIL"]
    assert "SPS (cap 10)" in claims[0].measured


def _collapse_store(tmp_path, sls_collapses=True, ponos_collapses=False, profile="quick"):
    steps = np.arange(0, 4501, 60)
    k = steps[1:]
    grow = np.minimum(0.2 * 1.003 ** k, 3e4)
    collapse_at = 3200                                   # 71% of training
    sls = np.where(k < collapse_at, grow, 1e-11) if sls_collapses else grow
    pon = np.where(k < 600, 0.5 + k / 100, 10.0)
    if ponos_collapses:
        pon = np.where(k < 3000, pon, 1e-6)
    loss = _decay(900, steps)
    runs = [_run("sls", "sls", np.maximum(loss, 2.4e-8), steps=steps, opt={"step_size_max": sls}),
            _run("slsc", "sls_ponos", loss * 3, steps=steps, opt={"step_size_max": np.minimum(grow, 10)}),
            _run("ponos", "ponos", loss * 2, steps=steps, opt={"step_size_max": pon})]
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
    assert "SLS: 1/1 seeds collapse" in claims[0].measured and "collapse epoch 83 of 115" in claims[0].measured
    # no collapse: the quick profile may not reach it (INCONCLUSIVE), the full profile must (FAIL)
    none_quick = step_size_collapse.check(_collapse_store(tmp_path / "nq", sls_collapses=False))
    assert [c.status for c in none_quick] == ["INCONCLUSIVE", "PASS"]
    assert "0/1 seeds collapse" in none_quick[0].measured
    none_full = step_size_collapse.check(_collapse_store(tmp_path / "nf", sls_collapses=False, profile="full"))
    assert [c.status for c in none_full] == ["FAIL", "PASS"]
    both = step_size_collapse.check(_collapse_store(tmp_path / "b", ponos_collapses=True))
    assert [c.status for c in both] == ["PASS", "FAIL"]


def test_step_size_collapse_ignores_intervals_without_steps(tmp_path):
    # an interval where every step was skipped logs a largest step of 0: not a collapse
    steps = np.arange(0, 1201, 100)
    k = steps[1:]
    s = np.where(k == 1100, 0.0, 10.0)
    runs = [_run("sls", "sls", _decay(900, steps), steps=steps, opt={"step_size_max": s}),
            _run("ponos", "ponos", _decay(900, steps), steps=steps, opt={"step_size_max": 10 + 0 * k})]
    store = Store(write_store(tmp_path, "step_size_collapse", runs))
    assert [c.status for c in step_size_collapse.check(store)] == ["INCONCLUSIVE", "PASS"]


def _heavy_store(tmp_path, effect=True):
    steps = np.arange(0, 151, 15)

    def run(rid, method, lr, balanced, loss, g0=None, g1=None):
        r = _run(rid, method, loss, lr=lr, steps=steps, extra_cols={"dataset.balanced_control": balanced,
                                                             "summary.data_info.n_barcoded_classes": 1000})
        r["choices"]["task"] = "mnist_barcoded_mlp"
        if g0 is not None:
            r["curves"][("train", "loss", 0)] = (steps, g0)
            r["curves"][("train", "loss", 1)] = (steps, g1)
        return r
    bal_sgd = _decay(50, steps) if effect else 2.3 * 0.99 ** steps
    runs = [run("bs", "sgd", 1.0, True, bal_sgd, bal_sgd, bal_sgd),
            run("ba", "adam", 0.003, True, _decay(40, steps), _decay(40, steps), _decay(40, steps))]
    g0_sgd, g0_adam = _decay(60, steps, 6.9), _decay(45, steps, 6.9)
    g1_sgd = 6.9 * 10 ** (-steps / 300) if effect else _decay(70, steps, 6.9)
    g1_adam = _decay(55, steps, 6.9)
    runs += [run("ms", "sgd", 1.0, False, (g0_sgd + g1_sgd) / 2, g0_sgd, g1_sgd),
             run("ma", "adam", 0.003, False, (g0_adam + g1_adam) / 2, g0_adam, g1_adam),
             run("ms3", "sgd", 0.3, False, (g0_sgd + 6.9) / 2, g0_sgd * 3, 6.9 + 0 * steps)]
    return Store(write_store(tmp_path, "heavy_tailed_vision", runs))


def test_heavy_tailed_vision_renders_and_checks(tmp_path):
    store = _heavy_store(tmp_path / "ok")
    paths = heavy_tailed_vision.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    claims = heavy_tailed_vision.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS"], [c.measured for c in claims]
    assert "barcoded group: SGD (1) 0.50 decades" in claims[1].measured
    assert "Adam (0.003)" in claims[1].measured and "SGD (0.3) " in claims[1].measured
    claims = heavy_tailed_vision.check(_heavy_store(tmp_path / "bad", effect=False))
    assert [c.status for c in claims] == ["FAIL", "FAIL"]


@pytest.mark.parametrize("mod", [sls_deep, ponos, step_size_collapse, heavy_tailed_vision])
def test_empty_store_does_not_pass(tmp_path, mod):
    store = Store(write_store(tmp_path, mod.FIG, [_run("x", "other", _decay(100))]))
    assert all(c.status != "PASS" for c in mod.check(store))
    assert mod.plot(store, tmp_path / "fig")[0].exists()
