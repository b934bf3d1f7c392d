"""The local result store: one folder per run, every file written atomically.

results/runs/<run_id>/
    config.json      resolved config, ids, versions, git sha, device (written at start)
    metrics.jsonl    one JSON record per evaluation, appended and flushed during the run
    summary.json     status (completed | diverged | reached_target), final metrics, counts, times
    metrics.parquet  the same records as metrics.jsonl, typed
    DONE             written last: a folder without it is unfinished (and is resumed or redone)
    figures.json     {figure: method} of other figures whose sweeps found the run DONE (optional)
    ckpt/last.pt     checkpoint of a long run (removed once DONE is written); a checkpoint that
                     cannot be used is renamed ``last.pt.rejected-<time>`` (kept, never deleted)
results/locks/<run_id>.lock   the claim of the process writing the run (an OS lock on this
results/locks/<run_id>.json   file, see ``RunDir.claim``) and who holds it (host, pid, since);
                              beside the runs, so a claim alone never makes a run folder

A results folder may be shared by a lab (a cluster's scratch disk), so nothing read from it
may run code (checkpoints load with ``weights_only=True``), files are readable by the group
(0666 minus the umask, not mkstemp's 0600) and only one process writes a run at a time.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

CKPT_FORMAT = 2          # bump when the checkpoint layout changes: older ones are moved aside


class StoreError(RuntimeError):
    """A problem with the result store, said in one line (a run that cannot be finished
    consistently, a disk that is full)."""


class DiskFullError(StoreError):
    """No space (or quota) left where the store is written."""


def _file_mode() -> int:
    # the mode open() would give a new file; os.umask can only be read by setting it
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _disk_full(path, e: OSError) -> DiskFullError:
    return DiskFullError(f"no space left on the device writing {path} ({os.strerror(e.errno)}); "
                         f"free space there or set RESULTS_DIR to a disk with room")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path``, then rename: readers see the old or the new file,
    never half of one; on any failure the temp file is removed."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())    # mkstemp makes 0600: colleagues could not read it
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if _full(e):
            raise _disk_full(path, e) from None
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    # serialised in memory first, so a full disk is an OSError from our own write (C++ writers
    # report it as e.g. 'basic_ios::clear: iostream error') and no partial file is left
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def one_line(e: BaseException) -> str:
    """An exception as one short line, for warnings that must not become tracebacks."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


# claims held by this process: a claim inside a claimed block (execute's own claim inside a
# caller's, e.g. a script that claims first) is granted instead of colliding with our own lock
_HELD: dict[str, object] = {}


class RunDir:
    def __init__(self, results_dir, run_id: str):
        self.path = Path(results_dir) / "runs" / run_id
        self.run_id = run_id
        self._lock = Path(results_dir) / "locks" / f"{run_id}.lock"
        self._holder = self._lock.with_suffix(".json")

    # --- state -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return (self.path / "DONE").exists()

    @property
    def ckpt_path(self) -> Path:
        return self.path / "ckpt" / "last.pt"

    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    def config_record(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def finished(self) -> bool:
        """DONE and readable: a run a sweep may skip."""
        return self.done and self.intact() is None

    def figures(self) -> dict:
        """{figure: method label} of the other figures whose sweeps found this run DONE (a run
        id does not depend on the figure tag, so two figures' sweeps can share a run; its
        config.json keeps the figure that made it)."""
        try:
            obj = json.loads((self.path / "figures.json").read_text())
            return obj if isinstance(obj, dict) else {}
        except (OSError, ValueError):
            return {}

    def add_figure(self, figure: str, method) -> bool:
        """Record that ``figure``'s sweep uses this run (under its label ``method``); True when
        that was new. Call with the run's claim held."""
        have = self.figures()
        if have.get(figure, object()) == method:
            return False
        atomic_write_json(self.path / "figures.json", {**have, figure: method})
        return True

    def intact(self) -> str | None:
        """None when a DONE run reads back whole (config and summary parse, metrics.parquet
        opens and has one row per record of metrics.jsonl); otherwise one line saying what is
        wrong, so the caller redoes the run instead of skipping it forever."""
        if not self.done:
            return "no DONE file"
        for name in ("config.json", "summary.json"):
            try:
                obj = json.loads((self.path / name).read_text())
            except (OSError, ValueError) as e:
                return f"{name} unreadable ({one_line(e)})"
            if not isinstance(obj, dict) or (name == "summary.json" and "status" not in obj):
                return f"{name} is not a run record"
        try:
            import pyarrow.parquet as pq
            rows = pq.read_metadata(self.path / "metrics.parquet").num_rows
        except Exception as e:   # missing, empty or garbage file: pyarrow raises several types
            return f"metrics.parquet unreadable ({one_line(e)})"
        try:
            records = len(self.read_metrics())
        except StoreError as e:
            return str(e)
        if rows != records:
            return f"metrics.parquet has {rows} rows but metrics.jsonl {records} records"
        return None

    # --- one writer per run ----------------------------------------------------------------
    @contextlib.contextmanager
    def claim(self, wait: float = 0.0):
        """``with rundir.claim() as ok:`` -- ok is True when this process may write the run,
        False when another process holds it (after waiting up to ``wait`` seconds; -1 waits
        for ever). The claim is an OS lock (flock, via ``filelock``) on
        ``results/locks/<run_id>.lock``: the kernel drops it when the holder dies, so a killed
        job's run is taken over by the next one without a stale-lock timeout (on NFS this
        needs the lock service, which Linux NFSv4 clients use for flock). Check ``done``
        inside the claim: a previous holder may have finished the run."""
        from filelock import FileLock, Timeout

        key = os.path.abspath(self._lock)
        if key in _HELD:
            yield True
            return
        try:
            self._lock.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if _full(e):
                raise _disk_full(self._lock, e) from None
            raise
        lock = FileLock(str(self._lock), timeout=wait, mode=_file_mode())
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        _HELD[key] = lock
        try:
            for tmp in self._lock.parent.glob(f".{self._holder.name}.*.tmp"):   # a holder killed mid-write
                tmp.unlink(missing_ok=True)
            atomic_write_json(self._holder, {"host": socket.gethostname(), "pid": os.getpid(),
                                             "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            yield True
        finally:
            _HELD.pop(key, None)
            self._holder.unlink(missing_ok=True)
            lock.release()

    def holder(self, wait: float = 2.0) -> str:
        """Who holds the claim, for the skip message ("host pid 123 since ..."). The holder
        writes it just after taking the lock, so a second writer may look a moment early."""
        deadline = time.monotonic() + wait
        while True:
            try:
                h = json.loads(self._holder.read_text())
                return f"{h['host']} pid {h['pid']} since {h['since']}"
            except (OSError, ValueError, KeyError, TypeError):
                if time.monotonic() > deadline:
                    return "another process"
                time.sleep(0.05)

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict, config_id: str) -> None:
        """``state`` holds tensors and plain Python values only, so that it loads with
        ``weights_only=True``; the ids and format tell a resumed job whether it is its own."""
        import torch
        buf = io.BytesIO()        # in memory first: see atomic_write_parquet
        torch.save({**state, "format": CKPT_FORMAT, "run_id": self.run_id, "config_id": config_id}, buf)
        atomic_write_bytes(self.ckpt_path, buf.getvalue())

    def load_checkpoint(self, config_id: str, map_location=None) -> dict | None:
        """The checkpoint when there is one and it belongs to this run, else None. A file that
        does not load with ``weights_only=True`` (a pickle that would run code, a truncated
        file), another run's, or an older format is moved aside with one warning line; the
        caller then starts from scratch."""
        import torch
        if not self.ckpt_path.exists():
            return None
        try:
            ck = torch.load(self.ckpt_path, map_location=map_location, weights_only=True)
        except Exception as e:   # UnpicklingError, RuntimeError (bad zip), EOFError ...
            # torch's refusal is a page of advice; the line that names the offending global is
            # the one worth a warning
            why = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
            self.reject_checkpoint(f"unreadable with weights_only=True "
                                   f"({why.group(1).split('. ')[0] if why else one_line(e)})")
            return None
        if not isinstance(ck, dict):
            self.reject_checkpoint("not a checkpoint dict")
            return None
        got = (ck.get("format"), ck.get("run_id"), ck.get("config_id"))
        if got != (CKPT_FORMAT, self.run_id, config_id):
            self.reject_checkpoint(f"belongs to another run or format (format={got[0]}, run_id={got[1]}, "
                                   f"config_id={got[2]}; expected {CKPT_FORMAT}, {self.run_id}, {config_id})")
            return None
        return ck

    def reject_checkpoint(self, reason: str) -> Path:
        """Rename the checkpoint aside (kept for inspection, never deleted) and say so once."""
        base = f"{self.ckpt_path.name}.rejected-{time.strftime('%Y%m%d-%H%M%S')}"
        aside, k = self.ckpt_path.with_name(base), 1
        while aside.exists():                     # two rejections within a second
            aside, k = self.ckpt_path.with_name(f"{base}.{k}"), k + 1
        os.replace(self.ckpt_path, aside)
        print(f"warning: {self.run_id}: checkpoint {reason}; moved to {aside}; restarting from scratch",
              file=sys.stderr)
        return aside

    # --- writing -------------------------------------------------------------------------
    def start(self, config_record: dict, resume: bool) -> None:
        """Create the folder; a fresh start clears what an unfinished earlier attempt left."""
        self.path.mkdir(parents=True, exist_ok=True)
        # temp files of an attempt killed mid-write (SIGKILL skips the cleanup); the caller holds
        # the claim, so no other process is writing one now
        for tmp in [*self.path.glob(".*.tmp"), *self.ckpt_path.parent.glob(".*.tmp")]:
            tmp.unlink(missing_ok=True)
        if not resume:
            for name in ("metrics.jsonl", "summary.json", "metrics.parquet", "DONE"):
                (self.path / name).unlink(missing_ok=True)
        atomic_write_json(self.path / "config.json", config_record)

    def truncate_metrics(self, last_step: int) -> None:
        """On resume, drop records written after the checkpoint so no step appears twice."""
        keep = [r for r in self.read_metrics() if r["step"] <= last_step]
        atomic_write_bytes(self.path / "metrics.jsonl",
                           "".join(json.dumps(r) + "\n" for r in keep).encode())

    def clear_metrics(self) -> None:
        """A start from scratch: no record of an earlier attempt may remain (not even a
        corrupt file, which is why this does not read it)."""
        (self.path / "metrics.jsonl").unlink(missing_ok=True)

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        except OSError as e:
            if _full(e):
                raise _disk_full(self.path / "metrics.jsonl", e) from None
            raise

    def read_metrics(self) -> list[dict]:
        """The records of metrics.jsonl. A last line cut short (the job was killed while
        writing it) is dropped; a bad line anywhere else is corruption: StoreError."""
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        try:
            lines = p.read_bytes().decode().split("\n")
        except UnicodeDecodeError:
            raise StoreError(f"{p}: not UTF-8 text") from None
        out = []
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                if k == len(lines) - 1:          # no newline after it: a write cut mid-line
                    break
                raise StoreError(f"{p}: line {k + 1} is not a JSON record") from None
        return out

    def finish(self, summary: dict) -> None:
        records = self.read_metrics()
        dup = sorted(s for s, k in Counter(r["step"] for r in records).items() if k > 1)
        if dup:
            raise StoreError(f"{self.run_id}: metrics.jsonl holds steps {dup[:5]} more than once "
                             f"(two writers?); not finishing the run: re-run it with force=true")
        atomic_write_json(self.path / "summary.json", summary)
        atomic_write_parquet(self.path / "metrics.parquet", pd.DataFrame.from_records(records))
        atomic_write_bytes(self.path / "DONE", b"")   # last: marks the run complete
        if self.ckpt_path.exists():
            self.ckpt_path.unlink()
