"""One run end to end: store layout, skip/force, interruption, resume, divergence, collect."""
import json
import math

import pandas as pd
import pytest
import torch

from experiments import runid, trainer
from experiments.store import RunDir
from experiments.train import execute
from scripts.collect import collect
from tests.conftest import LSTSQ_FAST


def test_run_writes_the_store_and_skips_when_done(compose_cfg, tmp_path, capsys):
    cfg = compose_cfg(*LSTSQ_FAST)
    s = execute(cfg)
    rd = RunDir(tmp_path / "results", runid.run_id(cfg))
    for f in ("config.json", "metrics.jsonl", "summary.json", "metrics.parquet", "DONE", "data_info.json"):
        assert (rd.path / f).exists(), f
    rec = json.loads((rd.path / "config.json").read_text())
    assert rec["run_id"] == rd.run_id and rec["environment"]["torch"] and "git_sha" in rec["environment"]
    assert s["status"] == "completed" and s["steps"] == 3 * (40 // 4)
    metrics = pd.read_parquet(rd.path / "metrics.parquet")
    assert list(metrics.step) == [0, 10, 20, 30]
    assert {"train/loss", "train/subopt", "opt/step_size", "grad_evals", "wall_s"} <= set(metrics.columns)
    assert metrics.grad_evals.iloc[-1] == 30 * 4               # batch 4: 4 per-example gradients a step
    mtime = (rd.path / "DONE").stat().st_mtime_ns
    capsys.readouterr()
    again = execute(cfg)
    out = capsys.readouterr().out
    assert out.startswith("skip ") and "force=true" in out and out.count("\n") == 1
    assert again == json.loads((rd.path / "summary.json").read_text())
    assert (rd.path / "DONE").stat().st_mtime_ns == mtime
    cfg["force"] = True
    execute(cfg)
    assert (rd.path / "DONE").stat().st_mtime_ns != mtime


@pytest.mark.parametrize("opt", [
    ("optimizer=heavy_ball", "optimizer.lr=0.05"),
    ("optimizer=sag",),                        # fixed partition drawn before the RNG is restored
    ("optimizer=sag", "dataset.n=42"),         # slots of 4 and 5 examples (none dropped)
    ("optimizer=svrg",),                       # snapshot and full gradient in the checkpoint
    ("optimizer=sgd", "train.sampling=with_replacement"),   # i.i.d. indices from the restored stream
], ids=["heavy_ball", "sag", "sag-uneven", "svrg", "with_replacement"])
def test_interrupted_run_leaves_no_done_and_resumes_to_the_same_numbers(compose_cfg, tmp_path, opt):
    over = (*LSTSQ_FAST, "train.epochs=6", "train.checkpoint_every_s=0", *opt)
    ref = compose_cfg(*over, results=tmp_path / "a")
    execute(ref)
    full = pd.read_parquet(RunDir(tmp_path / "a", runid.run_id(ref)).path / "metrics.parquet")

    cfg = compose_cfg(*over, results=tmp_path / "b")
    rd = RunDir(tmp_path / "b", runid.run_id(cfg))
    with pytest.raises(trainer.Interrupted):
        execute(cfg, interrupt_at_step=30)
    assert not (rd.path / "DONE").exists() and not (rd.path / "summary.json").exists()
    assert rd.ckpt_path.exists()
    execute(cfg)                                   # same command again resumes
    resumed = pd.read_parquet(rd.path / "metrics.parquet")
    assert not rd.ckpt_path.exists()
    cols = [c for c in full.columns if c != "wall_s"]
    assert len(full) == 7
    pd.testing.assert_frame_equal(full[cols], resumed[cols])


def test_divergence_is_recorded_not_padded(compose_cfg, tmp_path):
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer.lr=100.0", "train.epochs=20")
    s = execute(cfg)
    assert s["status"] == "diverged" and s["diverged_step"] is not None
    rd = RunDir(tmp_path / "results", runid.run_id(cfg))
    assert (rd.path / "DONE").exists()
    metrics = pd.read_parquet(rd.path / "metrics.parquet")
    # stopped at the evaluation that noticed it (nothing after it); the recorded step is the
    # first whose batch loss was above the threshold, which comes no later
    assert 0 < s["diverged_step"] <= metrics.step.max() < 20 * 10
    last = metrics["train/loss"].iloc[-1]
    assert not math.isfinite(last) or last > 1e6 * metrics["train/loss"].iloc[0]


TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n")
TINY_LM = ("dataset=tinyshakespeare", "dataset.download=false", "dataset.level=char", "dataset.seq_len=8",
           "model=transformer", "model.d_model=16", "model.n_head=2", "model.n_layer=1",
           "optimizer=adam", "train.batch_size=4", "train.epochs=10")


@pytest.mark.parametrize("lr,status,rule", [
    (10.0, "diverged", "factor"),      # ends ~600x above its initial loss: 'completed' under the 1e6 rule
    (0.5, "diverged", "chance"),       # 1.6x its initial loss after 3 evaluations: worse than chance
    (0.3, "completed", None),          # above chance at the first two evaluations, then recovers
    (0.01, "completed", None),         # healthy
], ids=["adam-lr10", "adam-lr0.5", "adam-lr0.3-noisy", "adam-lr0.01"])
def test_cross_entropy_divergence_rule(compose_cfg, tmp_path, monkeypatch, lr, status, rule):
    from experiments import losses, trainer
    (tmp_path / "data" / "tinyshakespeare").mkdir(parents=True)
    (tmp_path / "data" / "tinyshakespeare" / "input.txt").write_text(TEXT)
    cfg = compose_cfg(*TINY_LM, f"optimizer.lr={lr}")
    cfg["paths"]["data_dir"], cfg["device"] = str(tmp_path / "data"), "cpu"
    batch, mean_loss = [], losses.mean_loss

    def spy(task, pred, y):                 # Adam: one closure call per step, so batch[k-1] is step k
        value = mean_loss(task, pred, y)
        if torch.is_grad_enabled():
            batch.append(float(value.detach()))
        return value

    monkeypatch.setattr(losses, "mean_loss", spy)
    s = execute(cfg)
    assert s["status"] == status, s["final"]
    if rule is None:
        return
    chance = math.log(s["data_info"]["vocab_size"])
    threshold = (trainer.CE_DIVERGENCE_FACTOR * max(s["init_loss"], chance) if rule == "factor"
                 else max(s["init_loss"], chance))
    logged = pd.read_parquet(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "metrics.parquet").step
    noticed, before = int(logged.iloc[-1]), int(logged.iloc[-2])
    # the first step after the last good evaluation whose batch loss was over the threshold
    first = next(k for k in range(before + 1, noticed + 1) if batch[k - 1] > threshold)
    assert s["diverged_step"] == first and first <= noticed


def test_collect_builds_tidy_tables_and_reports_corrupt_runs(compose_cfg, tmp_path):
    good = compose_cfg(*LSTSQ_FAST)
    execute(good)
    bad = compose_cfg(*LSTSQ_FAST, "seed=3")
    execute(bad)
    (RunDir(tmp_path / "results", runid.run_id(bad)).path / "metrics.parquet").write_bytes(b"not parquet")
    unfinished = RunDir(tmp_path / "results", "0000000000000000")
    unfinished.path.mkdir(parents=True)
    index, curves, problems = collect(tmp_path / "results", quiet=True)
    assert list(index.run_id) == [runid.run_id(good)]
    assert len(problems) == 2 and any("unreadable" in p for p in problems) and any("unfinished" in p for p in problems)
    assert {"run_id", "step", "epoch", "grad_evals", "wall_s", "split", "metric", "value", "group"} <= set(curves.columns)
    sub = curves[(curves.split == "train") & (curves.metric == "subopt")]
    assert len(sub) == 4 and (sub.group == -1).all()
    assert index["optimizer.name"].iloc[0] == "sgd" and index["summary.status"].iloc[0] == "completed"
    assert (tmp_path / "results" / "index.parquet").exists() and (tmp_path / "results" / "curves.parquet").exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    from experiments.store import atomic_write_json
    p = tmp_path / "x.json"
    atomic_write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {"a": object()} if False else {1j: 2})   # not serialisable
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]        # no temp file left behind


def test_collect_handles_mixed_type_config_columns(compose_cfg, tmp_path):
    execute(compose_cfg(*LSTSQ_FAST))
    execute(compose_cfg(*LSTSQ_FAST, "train.batch_size=full"))
    index, _, problems = collect(tmp_path / "results", quiet=True)
    assert not problems and sorted(index["train.batch_size"]) == ["4", "full"]
