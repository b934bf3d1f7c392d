"""scripts.collect is incremental: a run folder is read only when it is new or its files
changed since the last collect, and the tables equal those of a full rebuild."""
import json

import pandas as pd
import pytest

from experiments import runid
from experiments.store import RunDir
from experiments.train import execute
from scripts import collect as C
from tests.conftest import LSTSQ_FAST


@pytest.fixture
def store(compose_cfg, tmp_path):
    results = tmp_path / "results"
    cfgs = [compose_cfg(*LSTSQ_FAST, f"seed={s}", f"optimizer={o}") for s, o in ((0, "sgd"), (1, "sgd"), (0, "heavy_ball"))]
    for cfg in cfgs:
        execute(cfg)
    (results / "runs" / "0000000000000000").mkdir()              # unfinished
    return results, cfgs


@pytest.fixture
def reads(monkeypatch):
    seen = []
    orig = C.read_run
    monkeypatch.setattr(C, "read_run", lambda path: (seen.append(path.name), orig(path))[1])
    return seen


def _same_as_full(results, got, tmp_path):
    """The incremental result equals a full rebuild (made in a copy, so the store is untouched)."""
    import shutil
    copy = tmp_path / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(results / "runs", copy / "runs")
    index, curves, problems = C.collect(copy, quiet=True, full=True)
    index["path"] = index["path"].str.replace(str(copy), str(results), regex=False)
    pd.testing.assert_frame_equal(got[0], index)
    pd.testing.assert_frame_equal(got[1], curves)
    kind = lambda ps: [p.split(" (")[0] for p in ps]              # folder and what is wrong
    assert kind(got[2]) == kind(problems)
    on_disk = pd.read_parquet(results / "curves.parquet"), pd.read_parquet(results / "index.parquet")
    pd.testing.assert_frame_equal(on_disk[0], curves)
    pd.testing.assert_frame_equal(on_disk[1], index)


def test_unchanged_store_reads_no_run_and_writes_nothing(store, reads):
    results, _ = store
    first = C.collect(results, quiet=True)
    assert len(first[0]) == 3 and len(reads) == 3 and any("unfinished" in p for p in first[2])
    stamps = [(results / f).stat().st_mtime_ns for f in ("index.parquet", "curves.parquet")]
    again = C.collect(results, quiet=True)
    assert len(reads) == 3                                          # nothing read again
    assert [(results / f).stat().st_mtime_ns for f in ("index.parquet", "curves.parquet")] == stamps
    pd.testing.assert_frame_equal(first[0], again[0])
    pd.testing.assert_frame_equal(first[1], again[1])
    assert first[2] == again[2]
    assert C.collect(results, quiet=True, load=False)[:2] == (None, None)


def test_new_changed_and_removed_runs(store, reads, compose_cfg, tmp_path):
    results, cfgs = store
    C.collect(results, quiet=True)
    reads.clear()
    # a new run: only it is read
    new = compose_cfg(*LSTSQ_FAST, "seed=2")
    execute(new)
    got = C.collect(results, quiet=True)
    assert reads == [runid.run_id(new)] and len(got[0]) == 4
    _same_as_full(results, got, tmp_path)
    # a changed run (re-run with force=true: every file rewritten) is read again
    reads.clear()
    cfgs[1]["force"] = True
    execute(cfgs[1])
    got = C.collect(results, quiet=True)
    assert reads == [runid.run_id(cfgs[1])]
    _same_as_full(results, got, tmp_path)
    # an edited metrics file: the new numbers are in the tables
    reads.clear()
    path = RunDir(results, runid.run_id(cfgs[0])).path / "metrics.parquet"
    m = pd.read_parquet(path)
    m["train/loss"] = 123.0
    m.to_parquet(path)
    got = C.collect(results, quiet=True)
    assert reads == [runid.run_id(cfgs[0])]
    rid = runid.run_id(cfgs[0])
    sel = got[1][(got[1].run_id == rid) & (got[1].split == "train") & (got[1].metric == "loss")]
    assert len(sel) and (sel.value == 123.0).all()
    _same_as_full(results, got, tmp_path)
    # a removed run and a run that lost its DONE (being redone) leave the index
    reads.clear()
    import shutil
    shutil.rmtree(RunDir(results, runid.run_id(cfgs[2])).path)
    (RunDir(results, runid.run_id(new)).path / "DONE").unlink()
    got = C.collect(results, quiet=True)
    assert reads == [] and len(got[0]) == 2
    assert sum("unfinished" in p for p in got[2]) == 2
    _same_as_full(results, got, tmp_path)


def test_corrupt_run_is_reported_every_time_and_reread_once_fixed(store, reads, tmp_path):
    results, cfgs = store
    bad = RunDir(results, runid.run_id(cfgs[0])).path / "metrics.parquet"
    good = bad.read_bytes()
    bad.write_bytes(b"not parquet")
    first = C.collect(results, quiet=True)
    second = C.collect(results, quiet=True)
    assert len(first[0]) == 2 and first[2] == second[2] and any("unreadable" in p for p in second[2])
    _same_as_full(results, second, tmp_path)
    reads.clear()
    bad.write_bytes(good)
    got = C.collect(results, quiet=True)
    assert reads == [runid.run_id(cfgs[0])] and len(got[0]) == 3 and not any("unreadable" in p for p in got[2])


@pytest.mark.parametrize("how", ["code", "outputs", "state"])
def test_a_format_change_or_missing_output_rebuilds_everything(store, reads, monkeypatch, how):
    results, _ = store
    C.collect(results, quiet=True)
    reads.clear()
    if how == "code":
        monkeypatch.setattr(C, "FORMAT", C.FORMAT + 1)
    elif how == "outputs":
        (results / "curves.parquet").unlink()          # e.g. make clean
    else:
        (results / C.STATE_DIR / "state.json").write_text("{not json")
    got = C.collect(results, quiet=True)
    assert len(reads) == 3 and len(got[0]) == 3 and (results / "curves.parquet").exists()
    state = json.loads((results / C.STATE_DIR / "state.json").read_text())
    assert state["n_runs"] == 3
