"""A result store a lab can share (issue 9): nothing read from it runs code, one writer per
run, broken runs are repaired instead of crashing or being skipped forever, every failure is
one line, files are readable by colleagues."""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from experiments import runid, store, trainer
from experiments.store import RunDir
from experiments.train import execute
from tests.conftest import LSTSQ_FAST, REPO

RESUMABLE = (*LSTSQ_FAST, "train.epochs=6", "train.checkpoint_every_s=0")


def _rundir(cfg) -> RunDir:
    return RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg))


def _metrics(cfg) -> pd.DataFrame:
    m = pd.read_parquet(_rundir(cfg).path / "metrics.parquet")
    return m[[c for c in m.columns if c != "wall_s"]]


def _interrupted(compose_cfg, tmp_path, name, *over, at=30):
    """A run killed after step ``at``: its folder holds a checkpoint and no DONE."""
    cfg = compose_cfg(*RESUMABLE, *over, results=tmp_path / name)
    with pytest.raises(trainer.Interrupted):
        execute(cfg, interrupt_at_step=at)
    assert _rundir(cfg).ckpt_path.exists()
    return cfg


def _reference(compose_cfg, tmp_path, *over) -> pd.DataFrame:
    cfg = compose_cfg(*RESUMABLE, *over, results=tmp_path / "ref")
    execute(cfg)
    return _metrics(cfg)


def _rejected(rd: RunDir) -> list:
    return sorted(rd.ckpt_path.parent.glob("last.pt.rejected-*"))


# ----------------------------------------------------------------------------- checkpoints
class _WritesMarker:
    """Unpickling this calls open(marker, "w"): what a crafted checkpoint can do (any code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_checkpoint_never_runs_code_and_is_moved_aside(compose_cfg, tmp_path, capsys):
    ref = _reference(compose_cfg, tmp_path)
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    rd = _rundir(cfg)
    marker = tmp_path / "PWNED"
    good = torch.load(rd.ckpt_path, weights_only=True)
    torch.save({**good, "model": _WritesMarker(marker)}, rd.ckpt_path)   # right ids, evil payload
    capsys.readouterr()
    s = execute(cfg)
    assert not marker.exists()                                  # the pickle's code never ran
    assert s["status"] == "completed" and (rd.path / "DONE").exists()
    assert len(_rejected(rd)) == 1                              # kept, not deleted
    warn = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning")]
    assert len(warn) == 1 and "weights_only" in warn[0] and "restarting from scratch" in warn[0]
    pd.testing.assert_frame_equal(_metrics(cfg), ref)          # a clean curve from scratch


def test_foreign_checkpoint_is_moved_aside_and_the_run_restarts(compose_cfg, tmp_path, capsys):
    ref = _reference(compose_cfg, tmp_path)
    other = _interrupted(compose_cfg, tmp_path, "b", "seed=1")   # same shapes, other run
    cfg = _interrupted(compose_cfg, tmp_path, "b", at=20)
    rd = _rundir(cfg)
    rd.ckpt_path.write_bytes(_rundir(other).ckpt_path.read_bytes())
    capsys.readouterr()
    s = execute(cfg)
    assert s["status"] == "completed"
    warn = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning")]
    assert len(warn) == 1 and "another run" in warn[0] and runid.run_id(other) in warn[0]
    assert len(_rejected(rd)) == 1
    pd.testing.assert_frame_equal(_metrics(cfg), ref)          # not stitched from two runs


def test_corrupt_checkpoint_is_moved_aside_not_a_crash(compose_cfg, tmp_path, capsys):
    ref = _reference(compose_cfg, tmp_path)
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    rd = _rundir(cfg)
    rd.ckpt_path.write_bytes(rd.ckpt_path.read_bytes()[:300])   # cut short by a full disk or kill
    assert execute(cfg)["status"] == "completed"
    assert len(_rejected(rd)) == 1 and "unreadable" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_metrics(cfg), ref)


def test_checkpoint_records_ids_and_format(compose_cfg, tmp_path):
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    ck = torch.load(_rundir(cfg).ckpt_path, weights_only=True)
    assert (ck["format"], ck["run_id"], ck["config_id"]) == (store.CKPT_FORMAT, runid.run_id(cfg), runid.config_id(cfg))


# ----------------------------------------------------------------------------- one writer per run
def _claimed_execute(cfg, barrier, out):
    """What experiments.train.execute does around a run: claim it, or skip it in one line."""
    rd = _rundir(cfg)
    barrier.wait()
    with rd.claim() as ok:
        if not ok:
            out.put(f"skip {rd.run_id}: claimed by {rd.holder()}")
            return
        execute(cfg)
        out.put("ran")


def test_two_processes_on_one_run_leave_one_copy_of_each_step(compose_cfg, tmp_path):
    cfg = compose_cfg(*LSTSQ_FAST, "train.epochs=200", "optimizer.lr=0.01")
    ctx = multiprocessing.get_context("spawn")        # fork would copy torch's thread pool
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_claimed_execute, args=(cfg, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    said = sorted(out.get(timeout=5) for _ in procs)
    assert said[0] == "ran" and said[1].startswith("skip ") and "pid" in said[1], said
    steps = [json.loads(ln)["step"] for ln in (_rundir(cfg).path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 2001, 10))                    # 201 rows, each step once
    assert len(_metrics(cfg)) == 201


def test_a_dead_holders_claim_is_taken_over(tmp_path):
    rd = RunDir(tmp_path, "deadbeef00000000")
    code = textwrap.dedent(f"""
        import os, signal
        from experiments.store import RunDir
        with RunDir({str(tmp_path)!r}, "deadbeef00000000").claim() as ok:
            assert ok
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60)
    assert p.returncode == -signal.SIGKILL
    with rd.claim() as ok:
        assert ok
        with rd.claim() as again:           # nested in the same process (execute inside a claim)
            assert again


def test_a_live_claim_refuses_a_second_writer(tmp_path):
    rd = RunDir(tmp_path, "cafe000000000000")
    code = textwrap.dedent(f"""
        from experiments.store import RunDir
        rd = RunDir({str(tmp_path)!r}, "cafe000000000000")
        with rd.claim() as ok:
            print(ok, rd.holder())
    """)
    with rd.claim() as ok:
        assert ok
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("False ") and f"pid {os.getpid()}" in p.stdout, p.stderr[-500:]


def test_finish_refuses_duplicated_steps(tmp_path):
    rd = RunDir(tmp_path, "0123456789abcdef")
    rd.start({"run_id": rd.run_id}, resume=False)
    for step in (0, 10, 10, 20):
        rd.append_metrics({"step": step, "train/loss": 1.0})
    with pytest.raises(store.StoreError, match=r"steps \[10\] more than once"):
        rd.finish({"status": "completed"})
    assert not rd.done and not (rd.path / "metrics.parquet").exists()


# ----------------------------------------------------------------------------- self-repair
def test_a_done_run_is_checked_before_it_is_skipped(compose_cfg, tmp_path):
    cfg = compose_cfg(*LSTSQ_FAST)
    execute(cfg)
    rd = _rundir(cfg)
    assert rd.intact() is None
    parquet = (rd.path / "metrics.parquet").read_bytes()
    summary = (rd.path / "summary.json").read_text()
    for name, damage, reason in [("summary.json", b"{garbage", "summary.json unreadable"),
                                 ("summary.json", b"[1, 2]", "summary.json is not a run record"),
                                 ("metrics.parquet", b"", "metrics.parquet unreadable"),
                                 ("metrics.parquet", None, "3 rows but metrics.jsonl 4 records")]:
        if damage is None:
            pd.read_parquet(rd.path / "metrics.parquet").iloc[:3].to_parquet(rd.path / "metrics.parquet")
        else:
            (rd.path / name).write_bytes(damage)
        got = rd.intact()
        assert got is not None and reason in got and "\n" not in got, (name, got)
        (rd.path / "metrics.parquet").write_bytes(parquet)
        (rd.path / "summary.json").write_text(summary)
    assert rd.intact() is None


def test_a_line_cut_mid_write_is_ignored_on_resume(compose_cfg, tmp_path):
    ref = _reference(compose_cfg, tmp_path)
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    rd = _rundir(cfg)
    with open(rd.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 40, "epoch": 4.0, "train/lo')         # killed while writing a record
    assert execute(cfg)["status"] == "completed"
    pd.testing.assert_frame_equal(_metrics(cfg), ref)


def test_a_corrupt_metrics_line_restarts_the_run_instead_of_crashing(compose_cfg, tmp_path, capsys):
    ref = _reference(compose_cfg, tmp_path)
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    rd = _rundir(cfg)
    lines = (rd.path / "metrics.jsonl").read_text().splitlines(keepends=True)
    (rd.path / "metrics.jsonl").write_text(lines[0] + "not json\n" + "".join(lines[1:]))
    with pytest.raises(store.StoreError, match="line 2 is not a JSON record"):
        rd.read_metrics()
    assert execute(cfg)["status"] == "completed"
    assert len(_rejected(rd)) == 1 and "does not fit" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_metrics(cfg), ref)


def test_temp_files_of_a_killed_write_are_removed_on_resume(compose_cfg, tmp_path):
    cfg = _interrupted(compose_cfg, tmp_path, "b")
    rd = _rundir(cfg)
    left = [rd.path / ".summary.json.k1ll3d.tmp", rd.ckpt_path.parent / ".last.pt.k1ll3d.tmp"]
    for f in left:                                    # what a SIGKILL inside atomic_write leaves
        f.write_bytes(b"half")
    execute(cfg)
    assert not any(f.exists() for f in left) and not list(rd.path.rglob("*.tmp"))


# ----------------------------------------------------------------------------- SAG partition
@pytest.mark.parametrize("n,bs", [(40, 4), (42, 4), (19, 5)])
def test_sag_partition_covers_every_example(compose_cfg, tmp_path, monkeypatch, n, bs):
    """Every example is in exactly one slot (the old partition dropped the last n mod bs)."""
    from experiments import losses
    seen, mean_loss = [], losses.mean_loss

    def spy(task, pred, y):
        if y.shape[0] < n:                       # a training batch, not the full-loss pass
            seen.append(y.detach().clone())
        return mean_loss(task, pred, y)

    monkeypatch.setattr(losses, "mean_loss", spy)
    cfg = compose_cfg("dataset=lstsq", f"dataset.n={n}", "dataset.d_over_n=0.5", "model.bias=false",
                      "model.init=zeros", "optimizer=sag", f"train.batch_size={bs}", "train.epochs=40")
    execute(cfg)
    sizes = {int(y.numel()) for y in seen}
    assert max(sizes) - min(sizes) <= 1 and (n % bs == 0) == (sizes == {bs})
    data_y = torch.cat(seen).unique()
    assert data_y.numel() == n                   # all n targets (distinct reals) were trained on


# ----------------------------------------------------------------------------- files, disks, report
def test_store_files_are_readable_by_colleagues(compose_cfg, tmp_path):
    old = os.umask(0o022)
    try:
        cfg = compose_cfg(*LSTSQ_FAST)
        execute(cfg)
        rd = _rundir(cfg)
        modes = {f.name: oct(f.stat().st_mode & 0o777) for f in rd.path.iterdir() if f.is_file()}
        assert set(modes.values()) == {"0o644"}, modes
        os.umask(0o077)                          # a private store stays private
        store.atomic_write_json(tmp_path / "private.json", {})
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def _full_disk(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_disk_is_one_line_naming_results_dir(compose_cfg, tmp_path, monkeypatch, capsys):
    from scripts import collect
    cfg = compose_cfg(*LSTSQ_FAST)
    execute(cfg)
    before = sorted(p.name for p in (tmp_path / "results").rglob("*"))
    _full_disk(monkeypatch)
    assert collect.main(["--results", str(tmp_path / "results")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "RESULTS_DIR" in err and "no space left" in err
    assert sorted(p.name for p in (tmp_path / "results").rglob("*")) == before   # no temp files
    with pytest.raises(store.DiskFullError, match="RESULTS_DIR"):
        execute(compose_cfg(*LSTSQ_FAST, "seed=5"))
    assert not list((tmp_path / "results").rglob("*.tmp"))


def test_report_escapes_what_it_reads_from_the_store(tmp_path):
    from scripts import report
    from tests.fake_store import write_store
    evil = "<script>alert(1)</script>"
    write_store(tmp_path, "convergence_rates", [{"run_id": evil, "choices": {"optimizer": evil},
                                                 "columns": {"summary.status": evil},
                                                 "curves": {("train", "loss", -1): ([0, 1], [1.0, 0.5])}}])
    man = json.loads((tmp_path / "manifests" / "convergence_rates.json").read_text())
    man["profile"] = evil
    (tmp_path / "manifests" / "convergence_rates.json").write_text(json.dumps(man))
    rows = [{"figure": f"x'><img src=y>{evil}", "claim": evil, "measured": evil, "status": evil}]
    html = report.write(tmp_path, rows, profile=evil).read_text()
    assert "<script>" not in html and "<img src=y>" not in html and "&lt;script&gt;" in html


def test_make_clean_keeps_the_runs():
    p = subprocess.run(["make", "-n", "clean"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "rm -rf" in p.stdout and "runs" not in p.stdout
    p = subprocess.run(["make", "-n", "clean-runs", "CONFIRM=yes"], cwd=REPO, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and "/runs" in p.stdout
    p = subprocess.run(["make", "-n", "report"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "scripts.report" in p.stdout


# ----------------------------------------------------------------------------- claims
class _FakeFigure:
    """A figure whose claim check always passes on whatever runs it finds."""
    TITLE = "fake figure"

    @staticmethod
    def plot(store, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fake.png").write_bytes(b"png")

    @staticmethod
    def check(store):
        from scripts.figures.common import Claim
        return [Claim("fake", "it works", f"{len(store.runs('fake'))} runs", "PASS")]


def _claims_store(tmp_path, n_runs=17, n_missing=7):
    from tests.fake_store import write_store
    runs = [{"run_id": f"run{k:02d}", "choices": {"optimizer": "sgd"}, "columns": {"summary.status": "completed"},
             "curves": {("train", "loss", -1): ([0, 1], [1.0, 0.5])}} for k in range(n_runs)]
    write_store(tmp_path, "fake", runs)
    (tmp_path / "manifests" / "other.json").write_text((tmp_path / "manifests" / "fake.json").read_text())
    if n_missing:                           # the index lost the last n_missing runs
        index = pd.read_parquet(tmp_path / "index.parquet")
        index.iloc[:n_runs - n_missing].to_parquet(tmp_path / "index.parquet")


@pytest.fixture
def fake_figures(monkeypatch):
    from scripts import claims
    monkeypatch.setattr(claims, "module", lambda fig: _FakeFigure)
    monkeypatch.setattr(claims, "available", lambda: ["fake", "other"])
    return claims


def test_claims_of_an_incomplete_figure_are_never_pass(fake_figures, tmp_path, capsys):
    _claims_store(tmp_path)
    code = fake_figures.main(["--results", str(tmp_path), "--figures", "fake"])
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert code == 1 and "PASS" not in {r["status"] for r in rows}
    inc = [r for r in rows if r["claim"] == "every run of the manifest is in the store"]
    assert len(inc) == 1 and inc[0]["status"] == "INCOMPLETE"
    assert inc[0]["measured"].startswith("7 of 17 runs missing") and "run10, run11, run12" in inc[0]["measured"]
    assert (tmp_path / "figures" / "fake.png").exists()          # the plot is still drawn
    _claims_store(tmp_path, n_missing=0)
    assert fake_figures.main(["--results", str(tmp_path), "--figures", "fake"]) == 0


def test_a_corrupt_manifest_or_index_is_one_line_and_the_others_still_run(fake_figures, tmp_path):
    _claims_store(tmp_path, n_missing=0)
    (tmp_path / "manifests" / "other.json").write_text("{not json")
    rows = fake_figures.run_checks(tmp_path, ["other", "fake"], plot=False)
    assert [r["status"] for r in rows] == ["ERROR", "PASS"]
    assert "store unreadable (JSONDecodeError" in rows[0]["measured"] and "\n" not in rows[0]["measured"]
    (tmp_path / "index.parquet").write_bytes(b"garbage")
    rows = fake_figures.run_checks(tmp_path, ["other", "fake"], plot=False)
    assert [r["status"] for r in rows] == ["ERROR", "ERROR"] and "store unreadable" in rows[1]["measured"]
    assert fake_figures.exit_status(rows) == 1


# ----------------------------------------------------------------------------- bad inputs: one line
def test_device_cuda_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(trainer.DeviceError) as e:
        trainer.resolve_device("cuda")
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value) and "device=cpu" in str(e.value)
    with pytest.raises(trainer.DeviceError, match="not a device"):
        trainer.resolve_device("gpu0")
    assert trainer.resolve_device("cpu").type == "cpu"


def _idx(path, arr: np.ndarray) -> None:
    arr = np.asarray(arr, np.uint8)
    path.write_bytes(bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
                     + arr.tobytes())


@pytest.mark.parametrize("damage", ["truncated", "truncated-gz", "empty-text", "binary-text"])
def test_unusable_data_files_are_one_data_error(tmp_path, damage):
    import gzip
    import datasets
    from datasets.base import DataError
    from experiments import seeding
    if damage.startswith("truncated"):
        raw = tmp_path / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for split, n in (("train", 20), ("t10k", 10)):
            _idx(raw / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28)))
            _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
        f = raw / "train-images-idx3-ubyte"
        f.write_bytes(f.read_bytes()[:5000])
        if damage == "truncated-gz":
            _idx(f, np.zeros((20, 28, 28)))                   # images whole, labels a cut .gz
            labels = raw / "train-labels-idx1-ubyte"
            labels.with_suffix(".gz").write_bytes(gzip.compress(labels.read_bytes())[:20])
            labels.unlink()
        cfg = {"name": "mnist", "download": False}
    else:
        (tmp_path / "tinyshakespeare").mkdir()
        (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(
            b"" if damage == "empty-text" else bytes(range(256)) * 4)
        cfg = {"name": "tinyshakespeare", "download": False}
    with pytest.raises(DataError) as e:
        datasets.load(cfg, tmp_path, seeding.generator(0, "data"))
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path) in msg and ("download" in msg or "copy" in msg), msg


def test_figures_are_replotted_only_when_their_runs_change(tmp_path, monkeypatch):
    from scripts import claims
    from scripts.figures import module
    from tests.test_figures_lstsq import _accel_store
    store_dir = _accel_store(tmp_path).dir
    calls = []
    mod = module("acceleration")
    real = mod.plot
    monkeypatch.setattr(mod, "plot", lambda store, out: calls.append(1) or real(store, out))
    claims.run_checks(store_dir, ["acceleration"])
    claims.run_checks(store_dir, ["acceleration"])
    assert len(calls) == 1                                   # nothing changed: no second plot
    import pandas as pd
    idx = pd.read_parquet(store_dir / "index.parquet")
    idx.loc[0, "dataset.kappa"] = idx.loc[0, "dataset.kappa"] * 1.0 + 1   # a run changed
    idx.to_parquet(store_dir / "index.parquet")
    claims.run_checks(store_dir, ["acceleration"])
    assert len(calls) == 2
