"""Bad command lines found by fault injection (issue 9): each is one line naming the key and
the fix, before any run folder exists."""
import os
import subprocess
import sys

import pytest
import torch

from experiments import plan, validate
from tests.conftest import REPO

LSTSQ = ["dataset=lstsq", "dataset.n=20", "train.epochs=1"]


@pytest.mark.parametrize("override, needle", [
    ("optimizer.lr='1/0'", "optimizer.lr: '1/0' cannot be evaluated"),
    ("optimizer.lr=inf", "optimizer.lr=inf is impossible: it must be a finite number"),
    ("optimizer.lr='-1/2'", "optimizer.lr=-0.5 is impossible: it must be > 0"),
    ("optimizer.momentum=nan", "optimizer.momentum=nan is impossible"),
    ("+optimizer.schedule.decay_stpes=3", "unknown key 'optimizer.schedule.decay_stpes'"),
])
def test_sgd_bad_values_are_one_line(override, needle):
    with pytest.raises(validate.ConfigError) as e:
        plan.expand([*LSTSQ, "optimizer=sgd_decreasing", override], multirun=False)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_adam_betas_outside_the_unit_interval():
    with pytest.raises(validate.ConfigError, match=r"optimizer.betas=\[0.9, 1.5\] is impossible: it must be two numbers"):
        plan.expand([*LSTSQ, "optimizer=adam", "optimizer.betas=[0.9,1.5]"], multirun=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_one_line_before_any_work(tmp_path):
    env = {**os.environ, "RESULTS_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "experiments.train", *LSTSQ, "device=cuda"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip() == ("error: device=cuda but CUDA is not available here; use device=auto "
                                "(GPU when present) or device=cpu")
    assert not (tmp_path / "runs").exists()


def _cli(args, tmp_path, **env):
    env = {**os.environ, "RESULTS_DIR": str(tmp_path / "results"), **env}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_expression_that_evaluates_to_an_impossible_step_is_one_line(tmp_path):
    p = _cli([*LSTSQ, "optimizer.lr='-1/L_max'"], tmp_path)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip()
    assert "\n" not in line and line.startswith("error: optimizer.lr=-") and "it must be > 0" in line
    assert not list((tmp_path / "results" / "runs").glob("*")), "an empty run folder was left"


def test_missing_data_leaves_no_run_folder(tmp_path):
    p = _cli(["dataset=mnist", "model=mlp", "dataset.download=false", "train.epochs=1"], tmp_path,
             DATA_DIR=str(tmp_path / "nodata"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not list((tmp_path / "results" / "runs").glob("*"))
