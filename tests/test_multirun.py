"""Hydra multirun sweeps through the real command line, with the basic and joblib launchers;
re-running the same sweep is the resume (the sweeper leaves DONE runs out, unfinished ones resume)."""
import os
import subprocess
import sys

import pytest

from scripts.collect import collect
from tests.conftest import REPO

SWEEP = ["-m", "dataset=lstsq", "dataset.n=30", "model.bias=false", "train.epochs=2", "train.batch_size=5",
         "optimizer=sgd,heavy_ball", "optimizer.lr=0.01,0.02"]


def _run(args, results):
    env = {**os.environ, "RESULTS_DIR": str(results)}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_two_by_two_sweep(tmp_path, launcher):
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    p = _run([*SWEEP, *extra], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    index, _, problems = collect(tmp_path, quiet=True)
    assert len(index) == 4 and not problems
    assert sorted(zip(index["optimizer.name"], index["optimizer.lr"])) == [
        ("heavy_ball", 0.01), ("heavy_ball", 0.02), ("sgd", 0.01), ("sgd", 0.02)]
    import json   # the run record keeps each job's overrides (Hydra's .hydra/ copies are off)
    recorded = sorted(tuple(json.loads(p.read_text())["overrides"]) for p in (tmp_path / "runs").glob("*/config.json"))
    assert [[o for o in r if o.startswith(("optimizer", "optimizer.lr"))] for r in recorded] == [
        ["optimizer=heavy_ball", "optimizer.lr=0.01"], ["optimizer=heavy_ball", "optimizer.lr=0.02"],
        ["optimizer=sgd", "optimizer.lr=0.01"], ["optimizer=sgd", "optimizer.lr=0.02"]], recorded
    again = _run([*SWEEP, *extra], tmp_path)
    assert again.returncode == 0
    # the sweeper leaves DONE runs out before the launcher is called
    assert "4 jobs, 4 already DONE, launching 0" in again.stdout and "done " not in again.stdout
    assert "Launching" not in again.stdout + again.stderr          # the launcher was never called


ORDER_SWEEP = ["-m", "dataset=lstsq", "dataset.n=30", "model.bias=false", "train.batch_size=5",
               "optimizer=sgd", "train.epochs=1,8,3", "seed=0,1"]


def _launch_order(stdout: str) -> list[str]:
    """The overrides of each job in the order the launcher was given them ('#3 : ...' lines)."""
    import re
    return [m.group(1).strip() for m in re.finditer(r"#\d+ : (.*)", stdout)]


def test_jobs_are_launched_longest_first_and_the_order_changes_no_number(tmp_path):
    summaries = {}
    for order in ("plan", "longest_first"):
        p = _run([*ORDER_SWEEP, f"hydra.sweeper.order={order}"], tmp_path / order)
        assert p.returncode == 0, p.stderr[-2000:]
        launched = _launch_order(p.stdout + p.stderr)
        epochs = [int(o.split("train.epochs=")[1].split()[0]) for o in launched]
        if order == "plan":
            assert epochs == [1, 1, 8, 8, 3, 3]
        else:                                 # longest first; ties keep the plan's order
            assert epochs == [8, 8, 3, 3, 1, 1] and launched[0].endswith("seed=0")
        import json
        summaries[order] = {d.name: json.loads((d / "summary.json").read_text())["final"]
                            for d in sorted((tmp_path / order / "runs").iterdir())}
    # the same run ids, the same numbers
    assert len(summaries["plan"]) == 6 and summaries["plan"] == summaries["longest_first"]


def test_longest_first_uses_recorded_times_of_the_same_config(tmp_path):
    """A finished seed of a config gives the time of its other seeds; the estimate (scaled by
    the recorded/estimated ratio) orders the rest."""
    import json
    from experiments import plan
    from experiments.store import RunDir
    from hydra_plugins.suite_sweeper import estimate_seconds, longest_first
    jobs = plan.expand(["dataset=lstsq", "dataset.n=30", "model.bias=false", "train.epochs=1,8",
                        "optimizer=sgd,sls", "seed=0,1"], multirun=True)
    for j in jobs:
        j.cfg["paths"]["results_dir"] = str(tmp_path)
    est = [estimate_seconds(j.cfg) for j in jobs]
    by_est = longest_first(jobs, [])
    assert [estimate_seconds(j.cfg) for j in by_est] == sorted(est, reverse=True)
    assert {j.run_id for j in by_est} == {j.run_id for j in jobs}
    # the seed-0 runs took these times: their seed-1 runs follow them, not the estimate
    took = {("sgd", 1): 100.0, ("sgd", 8): 10.0, ("sls", 1): 5.0, ("sls", 8): 20.0}
    done = [j for j in jobs if j.cfg["seed"] == 0]
    for j in done:
        rd = RunDir(tmp_path, j.run_id)
        rd.path.mkdir(parents=True)
        key = (j.cfg["optimizer"]["name"], j.cfg["train"]["epochs"])
        (rd.path / "summary.json").write_text(json.dumps({"status": "completed", "total_s": took[key]}))
    todo = [j for j in jobs if j.cfg["seed"] == 1]
    order = [(j.cfg["optimizer"]["name"], j.cfg["train"]["epochs"]) for j in longest_first(todo, done)]
    assert order == [("sgd", 1), ("sls", 8), ("sgd", 8), ("sls", 1)]


def test_a_deep_model_is_estimated_longer_than_a_small_convex_one():
    from experiments import plan
    from hydra_plugins.suite_sweeper import estimate_seconds
    cfg = lambda *o: plan.expand(list(o), multirun=False)[0].cfg
    lstsq = estimate_seconds(cfg("task=lstsq"))
    mlp = estimate_seconds(cfg("task=mnist_mlp"))
    resnet = estimate_seconds(cfg("task=cifar10_resnet18"))
    assert lstsq < mlp < resnet
    assert estimate_seconds(cfg("task=mnist_mlp", "optimizer=sls")) > mlp     # two passes a step


def test_device_per_job_and_not_in_the_run_id(compose_cfg):
    from experiments import runid
    from hydra_plugins.suite_sweeper import assign_device
    cfg = compose_cfg("dataset=lstsq")
    assert cfg["device"] == "auto"
    assert [assign_device(["optimizer=sgd"], cfg, i, 3)[-1] for i in range(5)] == [
        "device=cuda:0", "device=cuda:1", "device=cuda:2", "device=cuda:0", "device=cuda:1"]
    assert assign_device(["device=auto", "seed=1"], cfg, 1, 2) == ["seed=1", "device=cuda:1"]
    assert assign_device(["device=cpu"], {**cfg, "device": "cpu"}, 1, 2) == ["device=cpu"]   # set by the user
    ids = {runid.run_id({**cfg, "device": d}) for d in ("auto", "cpu", "cuda", "cuda:0", "cuda:3")}
    assert len(ids) == 1


def test_each_job_holds_a_gpu_of_its_own(monkeypatch, tmp_path):
    """OPTSUITE_GPU_SLOTS=k: a job takes its assigned GPU when free, else the first free one,
    so parallel jobs finishing out of launch order never share a GPU (CUDA faked here)."""
    import tempfile
    import threading
    import torch
    from experiments import train
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setenv(train.GPU_SLOTS_ENV, "2")
    a, b, c = {"device": "cuda:0"}, {"device": "cuda:0"}, {"device": "cuda:1"}
    with train.gpu_slot(a):
        with train.gpu_slot(b):                   # cuda:0 is held: b runs on cuda:1
            assert (a["device"], b["device"]) == ("cuda:0", "cuda:1")
            got = []
            t = threading.Thread(target=lambda: train.gpu_slot(c).__enter__() or got.append(c["device"]))
            t.start()
            t.join(1.0)
            assert not got                        # both held: the third job waits
        t.join(5.0)
        assert got == ["cuda:1"]                  # ... and takes the GPU that came free
    cpu = {"device": "cpu"}
    with train.gpu_slot(cpu):
        assert cpu["device"] == "cpu"


def test_a_sweep_that_finds_another_figures_run_done_records_itself(tmp_path):
    """The sweeper leaves DONE runs out of the launch; a run made under another figure tag is
    still recorded for this sweep's figure (runs/<id>/figures.json)."""
    import json
    base = ["-m", "dataset=lstsq", "dataset.n=30", "model.bias=false", "train.epochs=1", "optimizer=sgd"]
    assert _run([*base, "figure=convergence_rates", "method=sgd_const"], tmp_path).returncode == 0
    again = _run([*base, "figure=overparam_sgd", "method=sgd_theory"], tmp_path)
    assert again.returncode == 0 and "1 already DONE, launching 0" in again.stdout
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "figures.json").read_text()) == {"overparam_sgd": "sgd_theory"}
