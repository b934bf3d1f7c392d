"""wandb mirror, offline: what the offline run file holds (read back with wandb's own protobuf
``Record``), the conventions (job_type, define_metric, choices, method, histogram, flattened
summary), one continuous history across a kill and resume, and the uploader."""
import json
import struct
import time

import pytest

from experiments import runid
from experiments.train import execute
from tests.conftest import LSTSQ_FAST

_BLOCK = 32 * 1024          # the .wandb file is a LevelDB-style log: 32 KiB blocks of chunks


def read_records(path):
    """Every record of an offline ``.wandb`` file as ``wandb.proto`` ``Record`` messages: a 7-byte
    header (b':W&B', magic 0xBEE1, version), then chunks (crc32c, length, type FULL=1 FIRST=2
    MIDDLE=3 LAST=4) that never straddle a 32 KiB block (a block's tail under 7 bytes is padding)."""
    from wandb.proto import wandb_internal_pb2 as pb
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic)
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:                    # zero padding to the block's end
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def offline_runs(wdir, rid, timeout_s=60.0):
    """The records of each offline folder of run ``rid`` (oldest first), once each file is
    complete: its ``exit`` record is written last by wandb's service process, which may lag
    ``run.finish()`` on a loaded machine, so wait for that record (bounded), not for a time."""
    deadline = time.monotonic() + timeout_s
    while True:
        # offline-run-<time>-<id>, or offline-run-<time>-<id>-1 when a folder of that second exists
        files = [f for r in wdir.glob(f"offline-run-*-{rid}*") for f in r.glob(f"run-{rid}.wandb")]
        recs = [read_records(f) for f in files]
        if (files and all(any(r.WhichOneof("record_type") == "exit" for r in rs) for rs in recs)) \
                or time.monotonic() > deadline:
            assert files, list(wdir.glob("*"))
            start = [[(r.start_time.seconds, r.start_time.nanos) for r in of_type(rs, "run")] for rs in recs]
            return [rs for _, rs in sorted(zip(start, recs), key=lambda p: p[0])]


def of_type(records, kind):
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def history_rows(records):
    """[{key: value}] of the history records (nested keys joined by '/')."""
    rows = []
    for h in of_type(records, "history"):
        row = {}
        for it in h.item:
            key = "/".join(it.nested_key) if it.nested_key else it.key
            row[key] = json.loads(it.value_json)
        rows.append(row)
    return rows


def summary_keys(records):
    return {"/".join(u.nested_key) if u.nested_key else u.key
            for s in of_type(records, "summary") for u in s.update}


def test_wandb_offline_record_follows_conventions(compose_cfg, tmp_path, monkeypatch):
    """job_type, name, define_metric, method/choices/task/level/config_id in the config, noise
    as one histogram per evaluation, flattened summary; all read from the offline run file."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_cfg(*LSTSQ_FAST, "logger=wandb", "logger.mode=offline", "figure=testfig",
                      "optimizer.lr=0.05", "train.noise_at=[1.0]", "train.noise_samples=5",
                      "train.noise_batch_size=4")
    execute(cfg)
    rid = runid.run_id(cfg)
    [recs] = offline_runs(tmp_path / "results" / "wandb" / "wandb", rid)

    [run] = of_type(recs, "run")
    assert run.run_id == rid and run.job_type == "testfig" and run.run_group == runid.config_id(cfg)
    assert run.display_name == "sgd-lr0.05-lstsq-s0"            # method: the optimizer choice
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["method"] == "sgd" and config["config_id"] == runid.config_id(cfg)
    assert config["choices"]["optimizer"] == "sgd" and config["choices"]["dataset"] == "lstsq"
    assert "task" in config and "level" in config

    metrics = of_type(recs, "metric")
    assert {m.name for m in metrics if m.name} >= {"grad_evals", "epoch"}
    assert any(m.glob_name == "*" and m.step_metric == "grad_evals" for m in metrics)

    rows = history_rows(recs)
    assert [r["_step"] for r in rows] == sorted(r["_step"] for r in rows) and "train/loss" in rows[0]
    hist = [r for r in rows if r.get("noise/grad_noise_norm/_type") == "histogram"]
    assert len(hist) == 1 and sum(hist[0]["noise/grad_noise_norm/values"]) == 5   # 5 samples, one histogram
    assert not any(k.startswith("noise/grad_noise_norm/0") for r in rows for k in r)

    keys = summary_keys(recs)
    assert {"final/train/loss", "data_info/L", "data_info/mu", "status"} <= keys


def test_wandb_choices_from_the_run_record_and_replay_on_resume(tmp_path, monkeypatch):
    """The record's Hydra choices reach the config and the name; an attempt whose first record
    is past step 0 (a resume) first replays the store's earlier records: one history 0..5."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from experiments.loggers import WandbLogger
    results = tmp_path / "results"
    rid = "feedfacecafe0001"
    run = results / "runs" / rid
    run.mkdir(parents=True)
    rows = [{"step": s, "epoch": s / 2, "grad_evals": 4 * s, "train/loss": 1.0 / (s + 1)} for s in range(6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {"run_id": rid, "config_id": "c" * 16, "choices": {"optimizer": "sgd", "task": "mnist_mlp",
                                                               "hydra/launcher": "basic"},
              "config": {"seed": 1, "method": "sgd_big", "level": 4, "figure": None,
                         "optimizer": {"name": "sgd", "lr": "1/L"}, "dataset": {"name": "mnist"},
                         "model": {"name": "mlp"}}}
    lg = WandbLogger({"mode": "offline"}, record, results)
    lg.log(rows[5], step=5)
    lg.finish({"status": "completed", "final": {"train/loss": 0.1}})
    [recs] = offline_runs(results / "wandb" / "wandb", rid)
    [r] = of_type(recs, "run")
    assert r.display_name == "sgd_big-lr1/L-mnist_mlp-L4-s1" and r.job_type == "train"
    config = {u.key: json.loads(u.value_json) for u in r.config.update}
    assert config["task"] == "mnist_mlp" and config["choices"] == {"optimizer": "sgd", "task": "mnist_mlp",
                                                                   "dataset": "mnist", "model": "mlp"}
    assert [h["_step"] for h in history_rows(recs)] == [0, 1, 2, 3, 4, 5]


def test_wandb_killed_and_resumed_run_has_one_history(compose_cfg, tmp_path, monkeypatch):
    """Killed after step 6 (checkpoint at 6), resumed: the resumed attempt's offline folder holds
    every step from 0, each once, with the same values as the store."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from experiments.store import RunDir
    from experiments.trainer import Interrupted
    cfg = compose_cfg(*LSTSQ_FAST, "logger=wandb", "logger.mode=offline", "train.eval_every=0.2",
                      "train.checkpoint_every_s=0")
    with pytest.raises(Interrupted):
        execute(cfg, interrupt_at_step=6)
    execute(cfg)
    rid = runid.run_id(cfg)
    first, second = offline_runs(tmp_path / "results" / "wandb" / "wandb", rid)
    assert [h["_step"] for h in history_rows(first)] == [0, 2, 4, 6]       # killed after step 6
    store = RunDir(tmp_path / "results", rid).read_metrics()
    steps = [h["_step"] for h in history_rows(second)]
    assert steps == [r["step"] for r in store] and len(set(steps)) == len(steps) and steps[0] == 0
    assert [h["train/loss"] for h in history_rows(second)] == pytest.approx([r["train/loss"] for r in store])


def test_wandb_disabled_runs_without_files(compose_cfg, tmp_path):
    pytest.importorskip("wandb")
    cfg = compose_cfg(*LSTSQ_FAST, "logger=wandb", "logger.mode=disabled")
    s = execute(cfg)
    assert s["status"] == "completed"


def test_upload_script_is_idempotent(compose_cfg, tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from scripts import upload_wandb
    cfg = compose_cfg(*LSTSQ_FAST)
    execute(cfg)
    rid = runid.run_id(cfg)
    res = str(tmp_path / "results")
    assert upload_wandb.main(["--results", res, "--mode", "offline"]) == 0
    assert "uploaded 1 runs, 0 already" in capsys.readouterr().out
    [recs] = offline_runs(tmp_path / "results" / "wandb" / "wandb", rid)
    assert any("train/subopt" in h for h in history_rows(recs))
    assert upload_wandb.main(["--results", res, "--mode", "offline"]) == 0
    assert "uploaded 0 runs, 1 already mirrored" in capsys.readouterr().out
    marker = json.loads((tmp_path / "results" / "runs" / rid / ".wandb_synced").read_text())
    assert marker["mode"] == "offline" and marker["project"] == "optsuite" and "entity" in marker


def test_upload_script_reuploads_on_new_target_and_survives_a_corrupt_run(compose_cfg, tmp_path,
                                                                          monkeypatch, capsys):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from scripts import upload_wandb
    good = compose_cfg(*LSTSQ_FAST)
    bad = compose_cfg(*LSTSQ_FAST, "seed=1")
    execute(good)
    execute(bad)
    res = str(tmp_path / "results")
    assert upload_wandb.main(["--results", res, "--mode", "offline"]) == 0
    capsys.readouterr()
    # another project: the marker no longer matches, so the runs go out again
    assert upload_wandb.main(["--results", res, "--mode", "offline", "--project", "other"]) == 0
    assert "uploaded 2 runs, 0 already" in capsys.readouterr().out
    marker = json.loads((tmp_path / "results" / "runs" / runid.run_id(good) / ".wandb_synced").read_text())
    assert marker["project"] == "other"
    # one corrupt run: reported in one line, the other still uploaded, exit status 1
    (tmp_path / "results" / "runs" / runid.run_id(bad) / "summary.json").write_text("{not json")
    assert upload_wandb.main(["--results", res, "--mode", "offline", "--project", "third"]) == 1
    out = capsys.readouterr()
    assert "uploaded 1 runs, 0 already mirrored, 1 failed" in out.out
    [line] = [ln for ln in out.err.splitlines() if ln.startswith("failed")]
    assert runid.run_id(bad) in line
