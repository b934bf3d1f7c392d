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
    again = _run([*SWEEP, *extra], tmp_path)
    assert again.returncode == 0
    # the sweeper leaves DONE runs out before the launcher is called
    assert "4 jobs, 4 already DONE, launching 0" in again.stdout and "done " not in again.stdout
    assert "Launching" not in again.stdout + again.stderr          # the launcher was never called
