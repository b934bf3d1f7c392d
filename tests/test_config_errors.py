"""Bad input: one clear line naming the key and what is valid, non-zero exit, nothing run."""
import os
import subprocess
import sys

import pytest

from experiments import plan, validate
from tests.conftest import REPO

CASES = [
    (["optimizer=nope"], "unknown choice optimizer=nope; valid:"),
    (["train.epochz=3"], "unknown key 'train.epochz'"),
    (["+optimizer.foo=1"], "unknown key 'optimizer.foo'"),
    (["train.epochs=-1"], "train.epochs=-1 is impossible"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1 is impossible"),
    (["dataset=lstsq", "dataset.d_over_n=0"], "dataset.d_over_n=0 is impossible"),
    (["train.epochs=abc"], "train.epochs must be an integer"),
    (["train.batch_size=fulll"], "train.batch_size must be an integer or one of full"),
    (["optimizer.lr=1/Lmax"], "unknown name 'Lmax'"),
    (["logger=wandb", "logger.mode=onlin"], "logger.mode='onlin' is not valid; valid: online, offline, disabled"),
    (["device=gpu"], "device='gpu' is not valid"),
    (["optimizer=sgd_decreasing", "optimizer.schedule.name=linear"], "is not a schedule; valid:"),
    (["train.sampling=replacement"], "train.sampling='replacement' is not valid; valid: reshuffle, with_replacement"),
    (["optimizer=sag", "train.sampling=with_replacement"], "does not apply to SAG"),
]


@pytest.mark.parametrize("overrides,message", CASES)
def test_preflight_messages(overrides, message):
    with pytest.raises(validate.ConfigError) as e:
        plan.expand(overrides, multirun=False)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_sweep_with_one_bad_value_is_rejected_before_any_job(tmp_path):
    with pytest.raises(validate.ConfigError, match="optimizer.lr=-1 is impossible"):
        plan.expand(["dataset=lstsq", "optimizer.lr=0.1,-1"], multirun=True)


def test_sweep_without_multirun_is_an_error():
    with pytest.raises(validate.ConfigError, match="add -m"):
        plan.expand(["optimizer=sgd,adam"], multirun=False)


@pytest.mark.parametrize("args", [["optimizer=nope"], ["-m", "train.epochs=1,-2"]])
def test_cli_exits_nonzero_with_one_line_and_runs_nothing(tmp_path, args):
    env = {**os.environ, "RESULTS_DIR": str(tmp_path / "results")}
    p = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert not (tmp_path / "results" / "runs").exists()
