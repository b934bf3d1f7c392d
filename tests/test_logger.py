"""wandb mirror, offline: the offline run folder exists and holds the run's metrics."""
import json
import os

import pytest

from experiments import runid
from experiments.train import execute
from tests.conftest import LSTSQ_FAST


def test_wandb_offline_run_holds_metrics(compose_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_cfg(*LSTSQ_FAST, "logger=wandb", "logger.mode=offline", "figure=testfig")
    execute(cfg)
    rid = runid.run_id(cfg)
    wdir = tmp_path / "results" / "wandb" / "wandb"
    runs = [p for p in wdir.glob(f"offline-run-*-{rid}")]
    assert len(runs) == 1, list(wdir.glob("*"))
    files = list(runs[0].rglob("*.wandb"))
    assert files and files[0].stat().st_size > 0
    blob = files[0].read_bytes()
    assert b"train/subopt" in blob and b"opt/step_size" in blob          # the metrics were logged
    meta = runs[0] / "files" / "wandb-metadata.json"
    summary = runs[0] / "files" / "wandb-summary.json"
    if summary.exists():
        assert "train/loss" in json.loads(summary.read_text())


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
    upload_wandb.main(["--results", str(tmp_path / "results"), "--mode", "offline"])
    assert "uploaded 1 runs, 0 already" in capsys.readouterr().out
    runs = list((tmp_path / "results" / "wandb" / "wandb").glob(f"offline-run-*-{rid}"))
    assert len(runs) == 1 and b"train/subopt" in next(runs[0].rglob("*.wandb")).read_bytes()
    upload_wandb.main(["--results", str(tmp_path / "results"), "--mode", "offline"])
    assert "uploaded 0 runs, 1 already mirrored" in capsys.readouterr().out
