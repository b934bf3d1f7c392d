"""The least-squares figure scripts render from a small synthetic store (no runs, no network)
and their claim checks react to the numbers: the same store with the effect removed FAILs."""
import numpy as np
import pytest

from scripts.figures import acceleration, convergence_rates, overparam_sgd
from scripts.figures.common import Store
from tests.fake_store import write_store

N = 100


def _info(**kw):
    base = {"summary.data_info.n": N, "summary.data_info.mu": 0.01, "summary.data_info.L": 1.0,
            "summary.data_info.rho_b": 2.0, "summary.data_info.interpolates": True}
    return {**base, **kw}


def _conv_store(tmp_path, stall_const=True):
    k = np.arange(0, 6001, 50)
    x = k / N
    curves = {
        "gd": 10 ** (-x / 5),
        "sag": 10 ** (-x / 6),
        "svrg": 10 ** (-x / 4),
        "sgd_decreasing": 1 / (1 + x) ** 1.5,
        "sgd_const": 0.2 + 0 * x if stall_const else 10 ** (-x / 5),
    }
    runs = [{"run_id": f"r{i}", "method": c, "choices": {"optimizer": c}, "columns": _info(), "n": N,
             "curves": {("train", "subopt", -1): (k, y)}} for i, (c, y) in enumerate(curves.items())]
    return Store(write_store(tmp_path / "s", "convergence_rates", runs))


def test_convergence_rates_renders_and_checks(tmp_path):
    store = _conv_store(tmp_path)
    paths = convergence_rates.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert [c.status for c in convergence_rates.check(store)] == ["PASS", "PASS", "PASS"]
    bad = _conv_store(tmp_path / "b", stall_const=False)
    assert [c.status for c in convergence_rates.check(bad)][2] == "FAIL"


def _overparam_store(tmp_path):
    runs = []
    k = np.arange(0, 3001, 10)
    for i, ratio in enumerate([0.5, 2.0]):
        interp = ratio >= 1
        for c in ("sgd_const", "sgd_theory"):
            y = 0.9995 ** k if c == "sgd_theory" else (1e-3 + 0 * k if not interp else 10 ** (-k / 100))
            runs.append({"run_id": f"r{i}{c[-5:]}", "method": c, "choices": {"optimizer": c},
                         "columns": {**_info(**{"summary.data_info.interpolates": interp}), "dataset.d_over_n": ratio},
                         "curves": {("train", "subopt", -1): (k, y)}})
    return Store(write_store(tmp_path / "s", "overparam_sgd", runs))


def test_overparam_sgd_renders_and_checks(tmp_path):
    store = _overparam_store(tmp_path)
    assert overparam_sgd.plot(store, tmp_path / "fig")[0].exists()
    # bound (1 - 0.01/2)^k = 0.995^k is above 0.9995^k? no: 0.9995^k decays slower -> outside the bound
    statuses = [c.status for c in overparam_sgd.check(store)]
    assert statuses == ["PASS", "PASS", "FAIL"]


def _accel_store(tmp_path, sgd_power=1.0, acc_power=0.5):
    runs = []
    for i, kappa in enumerate([10, 100, 1e3, 1e4, 1e5]):
        for c, p in (("sgd_theory", sgd_power), ("accel_sgd", acc_power)):
            reach = int(5 * kappa ** p)
            k = np.unique(np.r_[0, np.geomspace(1, 3 * reach, 200).astype(int)])
            y = np.where(k < reach, 1.0, 1e-6)
            runs.append({"run_id": f"{c}{i}", "method": c, "choices": {"optimizer": c}, "columns": {"dataset.kappa": kappa},
                         "curves": {("train", "subopt", -1): (k, y)}})
    return Store(write_store(tmp_path / "s", "acceleration", runs))


@pytest.mark.parametrize("sgd_power,acc_power,expect", [(1.0, 0.5, ["PASS", "PASS"]), (1.0, 1.0, ["PASS", "FAIL"])])
def test_acceleration_slopes(tmp_path, sgd_power, acc_power, expect):
    store = _accel_store(tmp_path, sgd_power, acc_power)
    assert acceleration.plot(store, tmp_path / "fig")[0].exists()
    assert [c.status for c in acceleration.check(store)] == expect
