"""sls_overparam renders from a small synthetic store and its three claim checks react to the
numbers: the store that shows the talk's effect PASSes, the same store with one effect removed
FAILs the matching claim. Plus: the preset pairs each data set with the right model."""
import json
import math

import numpy as np
import pytest

from scripts.figures import sls_overparam
from scripts.figures.common import Store
from tests.fake_store import write_store

N, BS = 800, 100
K = np.arange(0, 401, 8)                      # 50 epochs of 8 steps, one evaluation per epoch
F_BY_RANK = [0.6, 0.27, 0.08, 0.04, 0.006, 1e-30]   # f* of the matfac data at rank 1..6
F0 = 4.0

# problem -> (columns, f*); regimes follow from f*/f(w0): rank 1 and sigma 1 are the far ones
PROBLEMS = {
    "mf_full": ({"dataset.name": "matfac", "model.rank": math.nan}, F_BY_RANK[-1]),
    "mf_r10": ({"dataset.name": "matfac", "model.rank": 10.0}, F_BY_RANK[-1]),
    "mf_r4": ({"dataset.name": "matfac", "model.rank": 4.0}, F_BY_RANK[3]),
    "mf_r1": ({"dataset.name": "matfac", "model.rank": 1.0}, F_BY_RANK[0]),
    "ls_s0": ({"dataset.name": "lstsq", "dataset.sigma": 0.0}, 0.0),
    "ls_s0.01": ({"dataset.name": "lstsq", "dataset.sigma": 0.01}, 1e-4),
    "ls_s1": ({"dataset.name": "lstsq", "dataset.sigma": 1.0}, 0.45 * F0),
}
REGIME = {"mf_full": "interp", "mf_r10": "interp", "ls_s0": "interp",
          "mf_r4": "close", "ls_s0.01": "close", "mf_r1": "far", "ls_s1": "far"}


def _rel(method, regime, sls_interp=1e-17, sls_close=1e-4, sls_far=1e-1):
    """Relative excess loss curve (f - f*)/(f0 - f*) of a method on a problem of a regime."""
    decay = lambda rate, floor: np.maximum(10.0 ** (-K / rate), floor)
    if method == "sls":
        return decay(10, {"interp": sls_interp, "close": sls_close, "far": sls_far}[regime])
    if method in ("sps", "ponos"):
        return decay(12, {"interp": 1e-17, "close": 3e-4, "far": 2e-1}[regime])
    if method == "adam":
        return decay(200, 1e-2)
    if method == "sgd_1.0":                   # large step: fast, high floor when noisy
        return decay(15, {"interp": 1e-17, "close": 1e-3, "far": 5e-1}[regime])
    return decay(40, {"interp": 1e-15, "close": 1e-6, "far": 1e-4}[regime])   # sgd_0.1


def _store(tmp_path, info_in_index=True, diverge_sgd=False, **sls):
    runs = []
    for prob, (cols, f_star) in PROBLEMS.items():
        for m in ("sls", "sps", "ponos", "adam", "sgd_1.0", "sgd_0.1"):
            rel = _rel(m, REGIME[prob], **sls)
            k = K
            status = "completed"
            if diverge_sgd and m == "sgd_1.0":     # a diverged grid point ends early with a huge loss
                k, rel, status = K[:5], np.r_[rel[:4], 1e9], "diverged"
            name, lr = (m.split("_")[0], float(m.split("_")[1])) if m.startswith("sgd") else (m, math.nan)
            columns = {**cols, "optimizer.name": name, "optimizer.lr": lr, "summary.status": status,
                       "summary.data_info.f_star": f_star}
            if cols["dataset.name"] == "matfac":
                if info_in_index:
                    columns["summary.data_info.f_star_by_rank"] = json.dumps(F_BY_RANK)
                else:                              # only in the run folder, as the trainer writes it
                    d = tmp_path / "runs" / f"{prob}-{m}"
                    d.mkdir(parents=True, exist_ok=True)
                    (d / "data_info.json").write_text(json.dumps({"f_star_by_rank": F_BY_RANK}))
                    columns["path"] = str(d)
            step = np.full(len(k) - 1, 0.1 if m == "sgd_0.1" else 1.0)
            runs.append({"run_id": f"{prob}-{m}", "choices": {"optimizer": m}, "columns": columns,
                         "n": N, "batch_size": BS,
                         "curves": {("train", "loss", -1): (k, f_star + (F0 - f_star) * rel),
                                    ("opt", "step_size", -1): (k[1:], step)}})
    return Store(write_store(tmp_path / "store", "sls_overparam", runs))


def _statuses(store):
    return [c.status for c in sls_overparam.check(store)]


def test_renders_and_passes_when_the_effect_is_there(tmp_path):
    store = _store(tmp_path)
    paths = sls_overparam.plot(store, tmp_path / "fig")
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    claims = sls_overparam.check(store)
    assert [c.status for c in claims] == ["PASS", "PASS", "PASS"], [c.measured for c in claims]
    # the measured text names every panel of its regime, with numbers
    assert "hidden rank 10" in claims[0].measured and "sigma = 0:" in claims[0].measured
    assert "hidden rank 4" in claims[1].measured and "sigma = 0.01" in claims[1].measured
    assert "hidden rank 1:" in claims[2].measured and "sigma = 1:" in claims[2].measured


@pytest.mark.parametrize("sls,expect", [
    ({"sls_interp": 1e-3}, ["FAIL", "PASS", "PASS"]),     # SLS stalls although the model interpolates
    ({"sls_interp": 1e-9}, ["FAIL", "PASS", "PASS"]),     # < 1e-6 but 1e6x behind tuned SGD (1e-15)
    ({"sls_close": 5e-2}, ["PASS", "FAIL", "PASS"]),      # SLS no longer good when close
    ({"sls_far": 5e-4}, ["PASS", "PASS", "FAIL"]),        # SLS within 10x of tuned SGD when far
])
def test_check_fails_when_an_effect_is_removed(tmp_path, sls, expect):
    assert _statuses(_store(tmp_path, **sls)) == expect


def test_diverged_grid_point_is_never_the_best_step(tmp_path):
    store = _store(tmp_path, diverge_sgd=True)
    panels = sls_overparam._panels(store)
    assert all(p["best_lr"] == 0.1 for p in panels.values())
    assert all(p["final"][("sgd", 1.0)] == math.inf for p in panels.values())
    assert _statuses(store) == ["PASS", "PASS", "PASS"]
    assert sls_overparam.plot(store, tmp_path / "fig")[0].exists()


def test_f_star_by_rank_read_from_the_run_folder(tmp_path):
    """The trainer's summary drops list-valued data info; f_star_by_rank then comes from
    <run>/data_info.json and gives the same regimes and verdicts."""
    store = _store(tmp_path, info_in_index=False)
    reg = sls_overparam._regimes(sls_overparam._panels(store))
    assert sorted(reg.values()) == sorted({"interp": "interpolating", "close": "close", "far": "far"}[r]
                                          for r in REGIME.values())
    assert _statuses(store) == ["PASS", "PASS", "PASS"]


def test_preset_pairs_each_problem_with_its_model():
    from experiments import plan
    jobs = plan.expand(["experiment=sls_overparam", "profile=quick"], multirun=True)
    problems = {(j.cfg["dataset"]["name"], j.cfg["model"]["rank"], j.cfg["dataset"].get("sigma")) for j in jobs}
    assert problems == {("matfac", 1, None), ("matfac", 4, None), ("matfac", 10, None), ("matfac", None, None),
                        ("lstsq", None, 0.0), ("lstsq", None, 0.01), ("lstsq", None, 0.1), ("lstsq", None, 1.0)}
    assert all(j.cfg["model"]["name"] == "linear_net" and j.cfg["train"]["batch_size"] == 100 for j in jobs)
    assert all(j.cfg["dataset"]["float64"] for j in jobs if j.cfg["dataset"]["name"] == "matfac")
    sps = [j.cfg["optimizer"] for j in jobs if j.cfg["optimizer"]["name"] == "sps"]
    assert sps and all(o["c"] == 0.5 for o in sps)
    lrs = {j.cfg["optimizer"]["lr"] for j in jobs if j.cfg["optimizer"]["name"] == "sgd"}
    assert len(lrs) >= 5
