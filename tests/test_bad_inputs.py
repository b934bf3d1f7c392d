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
