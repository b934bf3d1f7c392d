"""The training step reads nothing from the device between two evaluations (issue 12): step
sizes, counters, batch losses and timings are kept on the device and read at the evaluation,
in one transfer, through ``experiments.trainer._host_read``.

On CPU the sync points are counted through hooks (``_host_read``, ``torch.cuda.synchronize``
and the tensor methods that read a value: ``item``, ``tolist``, ``float()``, ``int()``,
``bool()``); with CUDA, ``torch.cuda.set_sync_debug_mode("error")`` makes any synchronising
call in the steps raise."""
import collections
import math

import pandas as pd
import pytest
import torch

from experiments import losses, runid, trainer
from experiments.store import RunDir
from experiments.train import execute
from tests.conftest import LSTSQ_FAST

READS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")
# optimizers whose step makes no read at all (torch.optim.Adam reads its step counter, a CPU
# tensor on any device, with .item(); the line searches, SPS and SAG read by design)
NO_READ = ("sgd", "heavy_ball", "nesterov", "sign_descent", "signum", "lion", "normalized_gd",
           "rescaled_sign", "accel_sgd", "sgd_decreasing", "gd", "svrg")


@pytest.fixture
def phases(monkeypatch):
    """Counts, per phase of the loop (setup, steps, eval, end), the calls of every read."""
    phase = ["setup"]
    counts = collections.Counter()
    monkeypatch.setattr(trainer, "_phase", lambda name: phase.__setitem__(0, name))
    orig_read = trainer._host_read

    def host_read(x):
        counts[(phase[0], "_host_read")] += 1
        return orig_read(x)

    monkeypatch.setattr(trainer, "_host_read", host_read)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: counts.update([(phase[0], "synchronize")]))
    for name in READS:
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, _name=name, **k):
            if phase[0] == "steps":
                counts[("steps", _name)] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def _cfg(compose_cfg, *extra):
    cfg = compose_cfg(*LSTSQ_FAST, *extra)
    cfg["device"] = "cpu"
    return cfg


@pytest.mark.parametrize("opt", NO_READ)
def test_no_read_in_the_steps_between_evaluations(compose_cfg, phases, opt):
    s = execute(_cfg(compose_cfg, f"optimizer={opt}"))
    assert s["status"] == "completed"
    in_steps = {k: v for k, v in phases.items() if k[0] == "steps"}
    assert not in_steps, in_steps
    # the evaluations read the window: one transfer each (3 epochs, evaluated every epoch)
    assert phases[("eval", "_host_read")] == 3
    assert not any(k[1] == "synchronize" for k in phases)


@pytest.mark.parametrize("opt", ["adam", "sls", "sps", "ponos"])
def test_the_trainer_itself_reads_nothing_in_the_steps(compose_cfg, phases, opt):
    """Optimizers that read (Adam's CPU step counter, a line search's trials) do it inside
    their own step; the trainer's funnel is still silent between evaluations."""
    execute(_cfg(compose_cfg, f"optimizer={opt}"))
    assert phases[("steps", "_host_read")] == 0 and phases[("eval", "_host_read")] == 3


def test_sag_reads_only_its_slot(compose_cfg, phases):
    s = execute(_cfg(compose_cfg, "optimizer=sag", "optimizer.lr=0.01"))
    assert phases[("steps", "_host_read")] == s["steps"]          # the slot index, one per step


def test_a_nan_batch_loss_stops_the_run_at_that_step(compose_cfg, tmp_path, monkeypatch):
    """The NaN is only seen at the evaluation; the loop goes back to the last evaluation and
    redoes the steps reading each loss, so it stops where a loop reading every step would."""
    batch, mean_loss = [], losses.mean_loss

    def spy(task, pred, y):
        value = mean_loss(task, pred, y)
        if torch.is_grad_enabled():
            batch.append(float(value.detach()))
        return value

    monkeypatch.setattr(losses, "mean_loss", spy)
    cfg = _cfg(compose_cfg, "optimizer.lr=1e10", "train.epochs=20", "train.eval_every=10")   # evals at 0, 100, 200
    s = execute(cfg)
    metrics = pd.read_parquet(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "metrics.parquet")
    # SGD: one closure per step; the replay repeats the steps, the last pass is the one kept
    steps = s["steps"]
    first_nan = next(k for k in range(1, steps + 1) if not math.isfinite(batch[len(batch) - steps + k - 1]))
    assert s["status"] == "diverged" and steps == first_nan < 100
    assert list(metrics.step) == [0, first_nan] and s["diverged_step"] <= first_nan
    assert len(batch) > steps                                    # the window was redone


def test_stats_of_a_window_are_those_of_its_steps(compose_cfg, tmp_path):
    """opt/* columns are computed from the values read at the evaluation: SLS (Python floats)
    and a tensor step size give the mean/min/max/last of the window's steps."""
    cfg = _cfg(compose_cfg, "optimizer=sls")
    execute(cfg)
    m = pd.read_parquet(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "metrics.parquet")
    row = m.iloc[1]
    assert row["opt/step_size_min"] <= row["opt/step_size"] <= row["opt/step_size_max"]
    assert 0 <= row["opt/zero_backtrack_frac"] <= 1 and row["opt/n_backwards"] > 0
    assert math.isfinite(row["opt/batch_loss"])


def test_series_keeps_tensors_on_their_device_and_reads_once(monkeypatch):
    calls = []
    orig = trainer._host_read
    monkeypatch.setattr(trainer, "_host_read", lambda x: (calls.append(1), orig(x))[1])
    a, b = trainer._Series(), trainer._Series()
    monkeypatch.setattr(trainer._Series, "CHUNK", 3)
    vals = [torch.tensor(float(i), dtype=torch.float32) for i in range(7)]
    for v in vals:
        a.append(v)
    b.append(1.5)
    b.append(torch.tensor(2.5))
    b.append(3)
    (va, vb), extra = trainer._read_all([a, b], [torch.tensor(9.0, dtype=torch.float64)])
    assert va == [float(v) for v in vals] and vb == [1.5, 2.5, 3] and extra == [9.0]
    assert len(calls) == 1                                  # one transfer for everything


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("opt", ["sgd", "heavy_ball", "adam", "lion", "sign_descent"])
def test_cuda_steps_make_no_host_synchronisation(compose_cfg, monkeypatch, opt):
    """Any synchronising CUDA call between two evaluations raises (sync debug mode 'error');
    the reads at the evaluations run with the mode off."""
    phase = ["setup"]

    def set_phase(name):
        phase[0] = name
        torch.cuda.set_sync_debug_mode("error" if name == "steps" else "default")

    monkeypatch.setattr(trainer, "_phase", set_phase)
    orig = trainer._host_read

    def host_read(x):
        assert phase[0] != "steps", "a host read in the steps"
        return orig(x)

    monkeypatch.setattr(trainer, "_host_read", host_read)
    cfg = compose_cfg(*LSTSQ_FAST, f"optimizer={opt}", "dataset.n=400", "train.batch_size=32")
    cfg["device"] = "cuda"
    try:
        s = execute(cfg)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert s["status"] == "completed" and s["wall_s"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_matches_cpu_counts_and_times_with_events(compose_cfg):
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer=heavy_ball")
    cfg["device"] = "cuda"
    s = execute(cfg)
    ref = compose_cfg(*LSTSQ_FAST, "optimizer=heavy_ball", results=cfg["paths"]["results_dir"] + "_cpu")
    ref["device"] = "cpu"
    r = execute(ref)
    assert (s["steps"], s["grad_evals"], s["n_backwards"]) == (r["steps"], r["grad_evals"], r["n_backwards"])
    assert 0 < s["wall_s"] < s["total_s"]
    assert math.isclose(s["final"]["train/loss"], r["final"]["train/loss"], rel_tol=1e-6)
