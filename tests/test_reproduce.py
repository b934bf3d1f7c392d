"""scripts.reproduce skips a figure whose runs are all DONE without planning or launching,
and plans again as soon as a config file or an override changes."""
import json

import pandas as pd

from scripts import reproduce


def test_skip_uses_the_manifest_until_the_configs_change(tmp_path, monkeypatch, capsys):
    fig, overrides = "convergence_rates", ["experiment=convergence_rates", "profile=quick"]
    jobs = [{"run_id": f"r{i}", "overrides": [], "choices": {}} for i in range(3)]
    for j in jobs:                      # finished, readable runs (DONE alone is not enough)
        d = tmp_path / "runs" / j["run_id"]
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
        (d / "summary.json").write_text('{"status": "completed"}')
        (d / "metrics.jsonl").write_text('{"step": 0}\n')
        pd.DataFrame([{"step": 0}]).to_parquet(d / "metrics.parquet")
        (d / "DONE").write_bytes(b"")
    (tmp_path / "manifests").mkdir()
    man = {"figure": fig, "profile": "quick", "conf_hash": reproduce._conf_hash(overrides), "jobs": jobs}
    (tmp_path / "manifests" / f"{fig}.json").write_text(json.dumps(man))

    def no_planning(*a, **k):
        raise AssertionError("planned although the manifest was current")
    monkeypatch.setattr("experiments.plan.expand", no_planning)
    monkeypatch.setattr("subprocess.run", no_planning)
    assert reproduce.run_figure(fig, "quick", tmp_path, 1, []) == (3, 3)
    assert "all 3 runs already DONE" in capsys.readouterr().out
    # another override (or an edited yaml) changes the fingerprint: it must plan again
    assert reproduce._conf_hash(overrides + ["seed=1"]) != man["conf_hash"]


def test_the_fingerprint_follows_the_code_that_makes_run_ids(tmp_path, monkeypatch):
    """An edited optimizer gets new run ids (experiments/code_identity.py), so the manifest
    planned before the edit must not be reused; an edited figure script or trainer does not
    change ids and does not count."""
    import shutil
    for part in ("conf", "experiments", "optimizers", "models", "scripts"):
        shutil.copytree(reproduce._REPO / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(reproduce, "_REPO", tmp_path)
    overrides = ["experiment=convergence_rates", "profile=quick"]
    before = reproduce._conf_hash(overrides)
    for edited in ("scripts/figures/convergence_rates.py", "experiments/trainer.py"):
        (tmp_path / edited).write_text((tmp_path / edited).read_text() + "\n# a comment\n")
    assert reproduce._conf_hash(overrides) == before
    for edited in ("optimizers/sls.py", "models/__init__.py", "experiments/runid.py", "conf/train/default.yaml"):
        f = tmp_path / edited
        text = f.read_text()
        f.write_text(text + "\n# an edit\n")
        assert reproduce._conf_hash(overrides) != before, edited
        f.write_text(text)
    assert reproduce._conf_hash(overrides) == before


def test_parallel_sweep_gives_the_numbers_of_a_sequential_one(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    extra = ["train.epochs=1", f"hydra.sweep.dir={tmp_path / 'hydra'}"]
    summaries = {}
    for jobs in (1, 2):
        results = tmp_path / f"jobs{jobs}"
        assert reproduce.run_figure("convergence_rates", "quick", results, jobs, extra) == (15, 0)   # 5 methods x 3 seeds
        summaries[jobs] = {p.parent.name: json.loads(p.read_text())["final"]
                           for p in sorted((results / "runs").glob("*/summary.json"))}
    assert len(summaries[1]) == 15 and summaries[1] == summaries[2]


def test_no_run_finds_runs_made_by_a_hand_typed_multirun(tmp_path):
    """The SLURM flow: a sweep launched outside reproduce, then ``--no-run`` gives the claims
    (one epoch instead of the preset's 30: the same override on both commands names the same runs)."""
    import os
    import subprocess
    import sys
    from tests.conftest import REPO
    env = {**os.environ, "RESULTS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "experiments.train", "-m", "experiment=convergence_rates",
                        "profile=quick", "train.epochs=1", f"hydra.sweep.dir={tmp_path / 'hydra'}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    reproduce.main(["--no-run", "--profile", "quick", "--figures", "convergence_rates", "--results", str(tmp_path),
                    "train.epochs=1"])
    man = json.loads((tmp_path / "manifests" / "convergence_rates.json").read_text())
    assert len(man["jobs"]) == 15 and all((tmp_path / "runs" / j["run_id"] / "DONE").exists() for j in man["jobs"])
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert rows and all(r["status"] in ("PASS", "FAIL", "INCONCLUSIVE") for r in rows), rows


def test_claims_collect_first_so_new_runs_count(tmp_path, monkeypatch):
    """scripts.claims rebuilds the index before checking: a run finished after the last collect
    is not invisible."""
    from scripts import claims, collect
    from tests.conftest import LSTSQ_FAST
    from experiments import plan
    from experiments.train import execute
    cfg = plan.expand([*LSTSQ_FAST], multirun=False)[0].cfg
    cfg["paths"]["results_dir"] = str(tmp_path)
    (tmp_path / "runs").mkdir()
    collect.collect(tmp_path, quiet=True)                      # an empty index
    execute(cfg)
    claims.main(["--results", str(tmp_path), "--figures", "convergence_rates", "--no-plot"])
    index = pd.read_parquet(tmp_path / "index.parquet")
    assert len(index) == 1


def _fake_store(tmp_path, fig, overrides, n=3):
    """n finished, readable runs and a current manifest naming them."""
    jobs = [{"run_id": f"r{i}", "method": "sgd", "overrides": [], "choices": {"optimizer": "sgd"}} for i in range(n)]
    for i, j in enumerate(jobs):
        d = tmp_path / "runs" / j["run_id"]
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"run_id": j["run_id"], "config_id": f"c{i}",
                                                   "config": {"seed": i, "optimizer": {"name": "sgd"}}}))
        (d / "summary.json").write_text('{"status": "completed"}')
        (d / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n')
        pd.DataFrame([{"step": 0, "train/loss": 1.0}, {"step": 1, "train/loss": 0.5}]).to_parquet(d / "metrics.parquet")
        (d / "DONE").write_bytes(b"")
    (tmp_path / "manifests").mkdir()
    man = {"figure": fig, "profile": "quick", "conf_hash": reproduce._conf_hash(overrides), "jobs": jobs}
    (tmp_path / "manifests" / f"{fig}.json").write_text(json.dumps(man))
    return jobs


def test_a_rerun_with_nothing_new_redoes_nothing(tmp_path, monkeypatch, capsys):
    """All DONE, nothing changed: no sweep, no run folder parsed twice, no claim check, no
    report; a changed run, a deleted report or plot brings them back."""
    from scripts import claims, report
    fig = "convergence_rates"
    jobs = _fake_store(tmp_path, fig, [f"experiment={fig}", "profile=quick"])
    calls = {"checks": 0, "report": 0, "finished": 0}

    def checks(results, figs, plot=True):
        calls["checks"] += 1
        (tmp_path / "figures").mkdir(exist_ok=True)
        (tmp_path / "figures" / f"{fig}.png").write_bytes(b"png")
        return [{"figure": fig, "claim": "c", "measured": "m", "status": "FAIL"}]

    def write(results, table, profile="?", reference_dir=None):
        calls["report"] += 1
        (tmp_path / "report.html").write_text("<html>")

    def forbidden(*a, **k):
        raise AssertionError("planned or launched although every run is DONE")

    orig_finished = reproduce.RunDir.finished

    def finished(self):
        calls["finished"] += 1
        return orig_finished(self)

    monkeypatch.setattr(claims, "run_checks", checks)
    monkeypatch.setattr(report, "write", write)
    monkeypatch.setattr("experiments.plan.expand", forbidden)
    monkeypatch.setattr("subprocess.run", forbidden)
    monkeypatch.setattr(reproduce.RunDir, "finished", finished)
    argv = ["--profile", "quick", "--figures", fig, "--results", str(tmp_path)]
    assert reproduce.main(argv) == 1                              # the FAIL keeps the exit status
    assert calls == {"checks": 1, "report": 1, "finished": 3}
    assert reproduce.main(argv) == 1
    assert calls == {"checks": 1, "report": 1, "finished": 3}     # intact runs not re-read either
    assert "claims and report unchanged" in capsys.readouterr().out
    # a changed run: collected again, the claims and the report are redone
    m = tmp_path / "runs" / jobs[0]["run_id"] / "metrics.parquet"
    pd.DataFrame([{"step": 0, "train/loss": 2.0}, {"step": 1, "train/loss": 0.1}]).to_parquet(m)
    assert reproduce.main(argv) == 1
    assert calls == {"checks": 2, "report": 2, "finished": 4}
    for gone in ("report.html", "figures/convergence_rates.png"):
        (tmp_path / gone).unlink()
        reproduce.main(argv)
    assert calls["checks"] == 4 and calls["report"] == 4


def test_gpus_give_one_job_per_gpu(tmp_path, monkeypatch):
    """With k GPUs, k parallel jobs and the sweeper spreads them (hydra.sweeper.devices=k)."""
    cmds = []
    monkeypatch.setattr("subprocess.run", lambda cmd, **k: cmds.append(cmd) or
                        type("P", (), {"returncode": 0})())
    reproduce.run_figure("convergence_rates", "quick", tmp_path, 2, [], gpus=2)
    assert "hydra/launcher=joblib" in cmds[0] and "hydra.launcher.n_jobs=2" in cmds[0]
    assert "hydra.sweeper.devices=2" in cmds[0]
    reproduce.run_figure("convergence_rates", "quick", tmp_path, 2, [])        # CPU: no devices
    assert not any("devices" in a for a in cmds[1])


def test_no_torch_import_without_a_gpu_device_node(monkeypatch):
    reproduce._gpus.cache_clear()
    monkeypatch.setattr(reproduce, "_GPU_NODES", ("/nonexistent/nvidia0",))
    monkeypatch.setitem(__import__("sys").modules, "torch", None)      # importing it would fail
    try:
        assert reproduce._gpus() == 0 and reproduce._profile("auto") == "quick"
    finally:
        reproduce._gpus.cache_clear()
