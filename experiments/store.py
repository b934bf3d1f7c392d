"""The local result store: one folder per run, every file written atomically.

results/runs/<run_id>/
    config.json      resolved config, ids, versions, git sha, device (written at start)
    metrics.jsonl    one JSON record per evaluation, appended and flushed during the run
    summary.json     status (completed | diverged), final metrics, counts, times
    metrics.parquet  the same records as metrics.jsonl, typed
    DONE             written last: a folder without it is unfinished (and is resumed or redone)
    ckpt/last.pt     checkpoint of a long run (removed once DONE is written)
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


class RunDir:
    def __init__(self, results_dir, run_id: str):
        self.path = Path(results_dir) / "runs" / run_id
        self.run_id = run_id

    # --- state -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists()

    @property
    def ckpt_path(self) -> Path:
        return self.path / "ckpt" / "last.pt"

    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    # --- writing -------------------------------------------------------------------------
    def start(self, config_record: dict, resume: bool) -> None:
        """Create the folder; a fresh start clears what an unfinished earlier attempt left."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in ("metrics.jsonl", "summary.json", "metrics.parquet", "DONE"):
                (self.path / name).unlink(missing_ok=True)
        atomic_write_json(self.path / "config.json", config_record)

    def truncate_metrics(self, last_step: int) -> None:
        """On resume, drop records written after the checkpoint so no step appears twice."""
        keep = [r for r in self.read_metrics() if r["step"] <= last_step]
        atomic_write_bytes(self.path / "metrics.jsonl",
                           "".join(json.dumps(r) + "\n" for r in keep).encode())

    def append_metrics(self, record: dict) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def finish(self, summary: dict) -> None:
        records = self.read_metrics()
        atomic_write_json(self.path / "summary.json", summary)
        tmp = self.path / ".metrics.parquet.tmp"
        pd.DataFrame.from_records(records).to_parquet(tmp, index=False)
        os.replace(tmp, self.path / "metrics.parquet")
        atomic_write_bytes(self.path / "DONE", b"")   # last: marks the run complete
        if self.ckpt_path.exists():
            self.ckpt_path.unlink()
