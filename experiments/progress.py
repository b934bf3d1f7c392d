"""Progress bars (tqdm): one per run (trainer) and one per sweep (the suite sweeper).

Shown only on a terminal: a bar needs its stream (stderr) to be a TTY, ``CI`` unset and
``OPTSUITE_PROGRESS`` not ``off``/``0``. Logs, pipes, SLURM output files and CI stay clean.

* Run bar: ``<run_id> 37%|████      | 1130/3000 [00:21<00:35, 52.8step/s, loss=0.00254]``,
  redrawn on a time basis (at most once a second, on steps, not only at evaluations), with
  rate and ETA; ``loss`` is the last full training loss (from the last evaluation). A resumed
  run starts at its checkpoint's step, and its rate counts only this attempt's steps.
* Sweep bar: ``sweep: job 7/31, 5 skipped, 1 failed |███   | 03:10<10:12, 27.1s/job``; the
  count follows the store (a job is done when its DONE file appears), so it moves with any
  launcher, in-process or not. With the basic launcher it is redrawn in place (the jobs' own
  lines are printed above it); with launchers whose workers print to the same terminal
  (joblib) it is written as one full line each time the count changes, so worker lines never
  cut it.
* Launchers: the sweeper sets ``OPTSUITE_PROGRESS=sweep`` for the basic (in-process)
  launcher (a run bar sits under the sweep bar and clears itself when its run ends) and
  ``OPTSUITE_PROGRESS=off`` for the others (joblib workers share one terminal: many
  processes drawing on one line garble it, so only the sweep bar is drawn).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from pathlib import Path

ENV = "OPTSUITE_PROGRESS"          # unset | auto: default; off | 0: no run bars; sweep: set by the sweeper
MININTERVAL_S = 1.0


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):   # closed or file-like without isatty
        return False


def enabled(stream=None, *, run: bool = True) -> bool:
    """Whether to draw on ``stream`` (default stderr): a TTY, not CI, not switched off
    (``run=False``: the sweep bar, which the sweeper's own ``OPTSUITE_PROGRESS=off`` for its
    jobs does not silence; it checks the user's setting before it sets that)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI"):
        return False
    if run and _off(os.environ.get(ENV)):
        return False
    return _isatty(stream)


def _off(value) -> bool:
    return (value or "").strip().lower() in ("0", "off", "false", "no")


class _Quiet:
    """What a bar is when nothing may be drawn: every call is a no-op."""

    def update(self, n: int = 1) -> None:
        pass

    def loss(self, value) -> None:
        pass

    def close(self) -> None:
        pass


class RunBar:
    def __init__(self, label: str, total: int, initial: int, stream, leave: bool):
        from tqdm import tqdm as _tqdm
        self._bar = _tqdm(total=total, initial=initial, desc=label, unit="step", file=stream,
                          mininterval=MININTERVAL_S, leave=leave, dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)               # cheap: redraws at most every MININTERVAL_S

    def loss(self, value) -> None:
        try:
            self._bar.set_postfix_str(f"loss={float(value):.4g}", refresh=False)
        except (TypeError, ValueError):
            pass

    def close(self) -> None:
        self._bar.close()


def run_bar(label: str, total: int, initial: int = 0, stream=None):
    """The bar of one run (a no-op object where nothing may be drawn)."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        return _Quiet()
    in_sweep = os.environ.get(ENV, "").strip().lower() == "sweep"
    return RunBar(label, int(total), int(initial), stream, leave=not in_sweep)


class _AboveBars:
    """stdout while a sweep bar is drawn on stderr: each complete line is written with the bars
    cleared and redrawn after it, so printed lines never land inside a bar."""

    def __init__(self, wrapped, bars_on):
        self._wrapped, self._bars_on, self._buf = wrapped, bars_on, ""

    def write(self, s: str) -> int:
        self._buf += s
        if "\n" in self._buf:
            head, _, self._buf = self._buf.rpartition("\n")
            from tqdm import tqdm as _tqdm
            with _tqdm.external_write_mode(file=self._bars_on):
                self._wrapped.write(head + "\n")
                self._wrapped.flush()
        return len(s)

    def flush(self) -> None:
        if self._buf:
            text, self._buf = self._buf, ""
            self._wrapped.write(text)
        self._wrapped.flush()

    def __getattr__(self, name):           # encoding, fileno, isatty, ...
        return getattr(self._wrapped, name)


class _Null:
    def write(self, s) -> None:
        pass

    def flush(self) -> None:
        pass


class SweepBar:
    """``with SweepBar(jobs, skipped, launcher_name) as bar: ... bar.batch_done(n, failed)``.
    ``jobs``: (results_dir, run_id) of every job launched. Sets OPTSUITE_PROGRESS for the
    jobs (see the module docstring) and restores it afterwards, drawn or not."""

    def __init__(self, jobs, skipped: int, launcher_name: str = "BasicLauncher", stream=None,
                 poll_s: float = MININTERVAL_S):
        self._stream = sys.stderr if stream is None else stream
        self._jobs = [Path(d) / "runs" / rid / "DONE" for d, rid in jobs]
        self._before = [self._mtime(p) for p in self._jobs]     # force=true: DONE exists already
        self.skipped, self.failed, self._processed = int(skipped), 0, 0
        self._in_process = launcher_name == "BasicLauncher"
        self._poll_s = poll_s
        self._bar = self._thread = self._old_stdout = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._saved_env = None
        self._last_line = None

    @staticmethod
    def _mtime(p: Path):
        try:
            return p.stat().st_mtime_ns
        except OSError:
            return None

    def finished(self) -> int:
        """Jobs whose DONE appeared (or was rewritten) since the sweep started."""
        return sum(1 for p, b in zip(self._jobs, self._before) if (m := self._mtime(p)) is not None and m != b)

    def _postfix(self) -> str:
        s = f"{self.skipped} skipped"
        return s + (f", {self.failed} failed" if self.failed else "")

    def poll(self) -> None:
        if self._bar is None:
            return
        with self._lock:
            n = min(max(self.finished(), self._processed), self._bar.total)
            if n != self._bar.n:
                self._bar.update(n - self._bar.n)
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            if self._in_process:
                self._bar.refresh()
            elif (n, self.failed) != self._last_line:    # line mode: one full line per change
                self._last_line = (n, self.failed)
                self._stream.write(str(self._bar) + "\n")
                self._stream.flush()

    def batch_done(self, processed: int, failed: int) -> None:
        """After a launcher batch: ``processed`` jobs of the sweep ran so far, ``failed`` failed."""
        self._processed, self.failed = int(processed), int(failed)
        self.poll()

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            self.poll()

    def __enter__(self):
        self._saved_env = os.environ.get(ENV)
        user_off = _off(self._saved_env)
        if not user_off:
            os.environ[ENV] = "sweep" if self._in_process else "off"
        if enabled(self._stream, run=False) and not user_off and self._jobs:
            from tqdm import tqdm as _tqdm
            # other launchers (joblib, submitit) run the jobs in processes that print to this
            # terminal too: a bar redrawn in place would be cut by their lines, so there the
            # bar is written as a full line each time the count changes ("line mode")
            cols = max(40, shutil.get_terminal_size().columns - 1)
            self._bar = _tqdm(total=len(self._jobs), desc="sweep", unit="job",
                              file=self._stream if self._in_process else _Null(),
                              mininterval=MININTERVAL_S, leave=True, position=0,
                              dynamic_ncols=self._in_process, ncols=None if self._in_process else cols,
                              ascii=None if self._in_process else
                              "utf" not in str(getattr(self._stream, "encoding", "") or "").lower(),
                              postfix=self._postfix(),
                              bar_format="{desc}: job {n_fmt}/{total_fmt}{postfix} |{bar}| "
                                         "{elapsed}<{remaining}, {rate_fmt}")
            if self._in_process:         # the jobs print in this process: keep lines above the bars
                self._old_stdout = sys.stdout
                sys.stdout = _AboveBars(sys.stdout, self._stream)
            self.poll()
            self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar is not None:
            self.poll()
            self._bar.close()
        if self._old_stdout is not None:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            sys.stdout = self._old_stdout
        if self._saved_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._saved_env
        return False
