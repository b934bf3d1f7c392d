"""Declared sweeps (experiments/sweep.py): the union of per-method grids, zip blocks, the
generic over-parameterization level, validation of the block, and the sweeper plugin that
launches them (DONE runs left out, a failing job does not stop the others)."""
import os
import subprocess
import sys

import pytest

from experiments import plan, sweep, validate
from experiments.sweep import SweepError
from tests.conftest import REPO


def test_union_of_two_methods_with_their_own_step_sizes():
    block = {"seed": [0, 1],
             "methods": {"sgd": {"optimizer": "sgd", "lr": {"log10": {"start": -2, "stop": -1, "step": 0.5}}},
                         "adam_nom": {"optimizer": "adam", "set": {"optimizer.betas": [0.0, 0.999]},
                                      "lr": [0.001]}}}
    jobs = sweep.expand(block)
    expect = [["optimizer=sgd", "method=sgd", f"optimizer.lr={lr}", f"seed={s}"]
              for lr in ("0.01", "0.0316227766", "0.1") for s in (0, 1)]
    expect += [["optimizer=adam", "optimizer.betas=[0.0,0.999]", "method=adam_nom", "optimizer.lr=0.001",
                f"seed={s}"] for s in (0, 1)]
    assert jobs == expect


def test_log10_spelling_matches_the_old_step_size_files():
    # the removed conf/optimizer/lang/sgd_lr-1.5.yaml had lr: 3.162277660e-02 (ten digits)
    assert sweep.log10_value(-1.5) == 3.162277660e-02
    assert sweep.log10_value(-3) == 0.001 and sweep.log10_value(0) == 1.0


def test_zip_lists_step_together_and_cross_the_product():
    block = {"product": {"level": [1, 2]},
             "zip": {"train.batch_size": [4, "full"], "train.epochs": [10, 0.5]}}
    jobs = sweep.expand(block)
    assert jobs == [["train.batch_size=4", "train.epochs=10", "level=1", "seed=0"],
                    ["train.batch_size=full", "train.epochs=0.5", "level=1", "seed=0"],
                    ["train.batch_size=4", "train.epochs=10", "level=2", "seed=0"],
                    ["train.batch_size=full", "train.epochs=0.5", "level=2", "seed=0"]]
    rows = sweep.expand({"zip": [{"task": "matfac", "level": None}, {"task": "lstsq_net", "dataset.sigma": 0.1}]})
    assert rows == [["task=matfac", "level=null", "seed=0"], ["task=lstsq_net", "dataset.sigma=0.1", "seed=0"]]


@pytest.mark.parametrize("block, needle", [
    ({"zipp": {"a": [1]}}, "unknown key 'sweep.zipp'"),
    ({"zip": {"a": [1, 2], "b": [1]}}, "equal lengths"),
    ({"methods": {"sgd": {"optimizer": "sgd", "lrs": [1]}}}, "unknown key 'sweep.methods.sgd.lrs'"),
    ({"methods": {"sgd": {"lr": {"log10": {"start": 0, "stop": -2, "step": 1}}}}}, "does not go from"),
    ({"seed": [-1]}, "sweep.seed"),
    ({"methods": {"sgd": {"lr": []}}}, "empty list"),
])
def test_a_malformed_block_is_one_line(block, needle):
    with pytest.raises(SweepError) as e:
        sweep.expand(block)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_typo_in_a_preset_sweep_block_stops_the_preflight():
    with pytest.raises(validate.ConfigError, match=r"unknown key 'sweep.zipp'"):
        plan.expand(["experiment=convergence_rates", "+sweep.zipp={a:[1]}"], multirun=True)


def test_preset_union_grid_expands_to_exactly_its_jobs():
    jobs = plan.expand(["experiment=sls_overparam", "profile=quick"], multirun=True)
    got = {(j.cfg["method"], j.cfg["optimizer"]["lr"] if j.cfg["method"] == "sgd" else None,
            j.choices["task"], j.cfg["model"].get("rank"), j.cfg["dataset"].get("sigma")) for j in jobs}
    problems = [("matfac", r, None) for r in (1, 4, None)] + [("lstsq_net", None, s) for s in (0.0, 0.1, 1.0)]
    methods = [(m, None) for m in ("sls", "ponos", "ponos_cp05", "adam")] + [("sgd", lr) for lr in (1.0, 0.3, 0.1, 0.03)]
    assert got == {(m, lr, t, r, s) for m, lr in methods for t, r, s in problems}
    assert len(jobs) == 6 * 8 * 3 and {j.cfg["seed"] for j in jobs} == {0, 1, 2}
    assert {j.cfg["optimizer"]["c_p"] for j in jobs if j.cfg["method"] == "ponos_cp05"} == {0.5}


def test_one_level_knob_across_task_families():
    jobs = plan.expand(["task=lstsq,matfac,mnist_mlp", "level=1,2,4", "optimizer=sgd,sls,ponos"], multirun=True)
    assert len(jobs) == 27 and len({j.run_id for j in jobs}) == 27
    for j in jobs:
        level, task = j.cfg["level"], j.choices["task"]
        meaning = {"lstsq": j.cfg["dataset"].get("d_over_n"), "matfac": j.cfg["model"].get("rank"),
                   "mnist_mlp": j.cfg["model"].get("width")}[task]
        assert meaning == level, (task, level, meaning)
    assert {j.cfg["method"] for j in jobs} == {None}         # plain sweeps: label set at run time


def test_sampling_sweepers_pass_the_preflight():
    """Optuna / Ax sweeps use interval(...) and choice(...): the pre-flight validates a
    representative job instead of rejecting what the basic sweeper cannot enumerate."""
    jobs = plan.expand(["dataset=lstsq", "optimizer.lr=interval(0.001,0.1)", "optimizer=choice(sgd,adam)",
                        "hydra/sweeper=optuna", "hydra.sweeper.n_trials=20"], multirun=True)
    assert [j.cfg["optimizer"]["lr"] for j in jobs] == [0.001, 0.001]


@pytest.mark.parametrize("epochs", ["0.5", "2.0", "3"])
def test_fractional_epochs_are_valid(epochs):
    job = plan.expand([f"train.epochs={epochs}"], multirun=False)[0]
    assert job.cfg["train"]["epochs"] == float(epochs)


def test_a_variant_that_extends_a_base_option_validates(tmp_path):
    conf = tmp_path / "conf" / "optimizer"
    conf.mkdir(parents=True)
    (conf / "sgd.yaml").write_text((validate.CONF_DIR / "optimizer" / "sgd.yaml").read_text())
    (conf / "sgd_big.yaml").write_text("defaults: [sgd]\nlr: 0.5\n")
    cfg = plan.expand(["optimizer=sgd", "optimizer.lr=0.5"], multirun=False)[0].cfg
    validate.check(cfg, {"optimizer": "sgd_big"}, conf_dir=tmp_path / "conf")
    cfg["optimizer"]["lrr"] = 1.0
    with pytest.raises(validate.ConfigError, match="unknown key 'optimizer.lrr'"):
        validate.check(cfg, {"optimizer": "sgd_big"}, conf_dir=tmp_path / "conf")


def _train(args, results):
    env = {**os.environ, "RESULTS_DIR": str(results), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    args = ["-m", "dataset=lstsq", "dataset.n=30", "model.bias=false", "train.epochs=1",
            "optimizer.lr=0.01,'1/(L-L)',0.02", f"hydra.sweep.dir={tmp_path / 'hydra'}"]
    p = _train(args, tmp_path)
    assert p.returncode == 1
    assert p.stdout.count("done ") == 2                       # the jobs after the failure ran
    assert "1 of 3 jobs failed" in p.stdout and "optimizer.lr='1/(L-L)'" in p.stdout
    again = _train(args, tmp_path)                             # a re-run launches only the failure
    assert "3 jobs, 2 already DONE, launching 1" in again.stdout and again.returncode == 1
