"""Progress bars: silent off a terminal, in CI and in joblib workers; on a terminal the run bar
shows rate, ETA and the last train loss, and the sweep bar counts jobs from the store."""
import io
import os

import pytest

from experiments import progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(progress.ENV, raising=False)


def _drive(stream):
    bar = progress.run_bar("abc sgd", total=10, stream=stream)
    for _ in range(10):
        bar.update()
    bar.loss(0.00254)
    bar.close()


def test_run_bar_silent_when_not_a_tty(capsys):
    buf = io.StringIO()                               # a file or a pipe: isatty() is False
    _drive(buf)
    assert buf.getvalue() == ""
    bar = progress.run_bar("abc", total=3)            # default stream: stderr, captured (not a TTY)
    bar.update()
    bar.close()
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


@pytest.mark.parametrize("env", [("CI", "true"), (progress.ENV, "off")])
def test_run_bar_silent_in_ci_and_when_switched_off(monkeypatch, env):
    monkeypatch.setenv(*env)                          # OPTSUITE_PROGRESS=off: set by the sweeper for joblib
    tty = FakeTTY()
    _drive(tty)
    assert tty.getvalue() == ""


def test_run_bar_on_a_tty_shows_count_rate_eta_and_loss():
    tty = FakeTTY()
    _drive(tty)
    last = tty.getvalue().split("\r")[-1]             # tqdm redraws in place; the last frame is final
    assert "abc sgd" in last and "10/10" in last and ("step/s" in last or "s/step" in last)
    assert "<" in last and "loss=0.00254" in last     # elapsed<remaining, the last train loss


def test_sweep_bar_for_joblib_writes_whole_lines_and_silences_worker_bars(tmp_path):
    tty = FakeTTY()
    runs = [(tmp_path, f"run{k}") for k in range(3)]
    (tmp_path / "runs" / "run0").mkdir(parents=True)
    with progress.SweepBar(runs, skipped=5, launcher_name="JoblibLauncher", stream=tty, poll_s=3600) as bar:
        assert os.environ[progress.ENV] == "off"      # joblib workers draw no bars of their own
        (tmp_path / "runs" / "run0" / "DONE").write_bytes(b"")
        bar.poll()                                    # what the watcher thread does every second
        bar.poll()                                    # no change: no new line
        bar.batch_done(3, 1)
    assert progress.ENV not in os.environ             # restored after the sweep
    lines = tty.getvalue().split("\n")[:-1]
    assert "\r" not in tty.getvalue() and len(lines) == 3    # workers' lines cannot cut a whole line
    assert "job 0/3, 5 skipped" in lines[0] and "job 1/3, 5 skipped" in lines[1]
    assert "job 3/3, 5 skipped, 1 failed" in lines[2]


def test_sweep_bar_in_process_redraws_and_keeps_printed_lines_above(tmp_path, monkeypatch):
    import sys
    tty = FakeTTY()
    monkeypatch.setenv(progress.ENV, "auto")
    (tmp_path / "runs" / "a").mkdir(parents=True)
    with progress.SweepBar([(tmp_path, "a"), (tmp_path, "b")], 0, "BasicLauncher", stream=tty, poll_s=3600) as bar:
        assert os.environ[progress.ENV] == "sweep"    # run bars sit under the sweep bar
        print("done a")                               # a job's line, while the bar is drawn
        (tmp_path / "runs" / "a" / "DONE").write_bytes(b"")
        bar.poll()
        assert "job 1/2, 0 skipped" in tty.getvalue().split("\r")[-1]
    assert os.environ[progress.ENV] == "auto" and not isinstance(sys.stdout, progress._AboveBars)


def test_sweep_bar_silent_off_a_tty_but_still_sets_env(tmp_path):
    buf = io.StringIO()
    with progress.SweepBar([(tmp_path, "r")], skipped=0, launcher_name="BasicLauncher", stream=buf) as bar:
        assert os.environ[progress.ENV] == "sweep"    # in-process runs: bars under the sweep bar
        bar.batch_done(1, 0)
    assert buf.getvalue() == ""
