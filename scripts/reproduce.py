"""Regenerate the talk's figures: run each figure's preset sweep (skipping finished runs),
collect the store, plot, check the claims, write results/report.html.

    python -m scripts.reproduce [--profile auto|quick|full] [--figures a,b,...] [--jobs N]

``auto`` is ``full`` when a CUDA device is present and ``quick`` otherwise. On CPU the jobs
of a sweep run in parallel, one per core with one torch thread each (Hydra's joblib
launcher; every run is its own process, so the numbers equal a sequential run's); with k
GPUs, k jobs run in parallel, one per GPU (job i of the launch order gets cuda:(i mod k) and
holds it: ``hydra.sweeper.devices``). The sweeper launches the longest jobs first. A sweep
whose runs are all DONE is not started at all, and collect reads only new or changed run
folders, so a second call right after the first only re-checks the claims.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.store import RunDir, StoreError
from scripts import claims, collect, report
from scripts.figures import EXTRAS, FIGURES, available


_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/gpus", "/dev/dxg", "/dev/kfd")


@functools.lru_cache(maxsize=None)
def _gpus() -> int:
    """CUDA devices of this machine (0 without CUDA). Without any GPU device node (NVIDIA,
    WSL, ROCm) torch is not imported: it costs 1-2 s, most of a re-run that has nothing to do."""
    if not any(os.path.exists(p) for p in _GPU_NODES):
        return 0
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _profile(name: str) -> str:
    if name != "auto":
        return name
    return "full" if _gpus() else "quick"


def write_manifest(results: Path, fig: str, profile: str, jobs, conf_hash: str | None = None) -> None:
    from experiments.store import atomic_write_json
    atomic_write_json(results / "manifests" / f"{fig}.json", {
        "figure": fig, "profile": profile, "conf_hash": conf_hash,
        "jobs": [{"run_id": j.run_id, "method": j.cfg.get("method"), "overrides": j.overrides,
                  "choices": j.choices} for j in jobs]})


_REPO = Path(__file__).resolve().parent.parent
# What turns a config into run ids besides the config files: the planner, the id itself and the
# code digests of the optimizers and models that go into it (experiments/code_identity.py).
ID_CODE = ("experiments/runid.py", "experiments/code_identity.py", "experiments/plan.py",
           "experiments/sweep.py", "experiments/constants.py", "optimizers", "models")


def _conf_hash(overrides: list[str]) -> str:
    """Fingerprint of the overrides, every config file and the code that maps them to run ids
    (``ID_CODE``): when it matches the manifest's, the manifest's run ids are still the sweep's
    and planning (composing every job) is skipped. (Until 2026-12-04 only the config files and
    overrides counted: after an edit to an optimizer, whose runs then get new ids, the stale
    manifest still named the old runs, found them DONE and plotted them.)"""
    h = hashlib.sha256(json.dumps(overrides).encode())
    files = sorted((_REPO / "conf").rglob("*.yaml"))
    for part in ID_CODE:
        p = _REPO / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(_REPO)).encode() + b"\0" + (f.read_bytes() if f.exists() else b""))
    return h.hexdigest()


# What a re-run with nothing new may skip (results/.reproduce/): the runs found intact at their
# files' stamps (RunDir.finished() parses every file of a run: ~2 ms a run, a second for the
# quick profile's ~500), and the key of the last claims table and report.
STATE_DIR = ".reproduce"
_RUN_FILES = ("DONE", "config.json", "summary.json", "metrics.parquet", "metrics.jsonl")


def _stamp(path: Path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


class _Intact:
    """``RunDir.finished`` remembered by the stamps of the files it reads."""

    def __init__(self, results: Path):
        self.path = Path(results) / STATE_DIR / "intact.json"
        try:
            self.known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.dirty = False

    def finished(self, results: Path, run_id: str) -> bool:
        rd = RunDir(results, run_id)
        stamp = [_stamp(rd.path / f) for f in _RUN_FILES]
        if stamp[0] is None:
            return False
        if self.known.get(run_id) == stamp:
            return True
        ok = rd.finished()
        if ok:
            self.known[run_id] = stamp
            self.dirty = True
        return ok

    def save(self) -> None:
        if self.dirty:
            from experiments.store import atomic_write_bytes
            atomic_write_bytes(self.path, json.dumps(self.known, separators=(",", ":")).encode())
            self.dirty = False


_INTACT: dict = {}


def _intact(results: Path) -> _Intact:
    key = str(Path(results).resolve())
    if key not in _INTACT:
        _INTACT[key] = _Intact(results)
    return _INTACT[key]


def plan_figure(fig: str, profile: str, results: Path, extra: list[str]) -> tuple[list[str], str, int, int]:
    """Make results/manifests/<fig>.json name the runs of the figure's preset sweep (planning
    only when the config files or overrides changed since it was written); returns
    (overrides, config fingerprint, jobs, jobs already DONE)."""
    overrides = [f"experiment={fig}", f"profile={profile}", *extra]
    key = _conf_hash(overrides)
    man_path = results / "manifests" / f"{fig}.json"
    if man_path.exists():
        try:
            man = json.loads(man_path.read_text())
        except (OSError, ValueError):
            man = {}
        if man.get("conf_hash") == key:
            cache = _intact(results)
            done = sum(cache.finished(results, j["run_id"]) for j in man["jobs"])
            cache.save()
            return overrides, key, len(man["jobs"]), done
    from experiments import plan
    jobs = plan.expand(overrides, multirun=True)
    write_manifest(results, fig, profile, jobs, key)
    cache = _intact(results)
    done = sum(cache.finished(results, j.run_id) for j in jobs)
    cache.save()
    return overrides, key, len(jobs), done


def run_figure(fig: str, profile: str, results: Path, n_jobs: int, extra: list[str],
               gpus: int = 0) -> tuple[int, int]:
    """Run the preset sweep of one figure; returns (jobs, jobs that were already DONE).
    ``gpus`` > 0: the parallel jobs are spread over that many GPUs, one job per GPU."""
    overrides, key, n, done = plan_figure(fig, profile, results, extra)
    if done == n:
        print(f"[{fig}] all {n} runs already DONE, sweep not started")
        return n, done
    print(f"[{fig}] {n - done} of {n} runs to do ({profile} profile)", flush=True)
    cmd = [sys.executable, "-m", "experiments.train", "-m", *overrides]
    if n_jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"]
        if gpus > 0:
            cmd += [f"hydra.sweeper.devices={gpus}"]
    t0 = time.time()
    proc = subprocess.run(cmd, env={**os.environ, "RESULTS_DIR": str(results)})
    if _conf_hash(overrides) != key:
        # a config file was edited while the sweep ran: the manifest must name the runs the
        # sweep really made
        from experiments import plan
        write_manifest(results, fig, profile, plan.expand(overrides, multirun=True), _conf_hash(overrides))
    if proc.returncode != 0:
        print(f"[{fig}] sweep failed with exit status {proc.returncode}; finished runs are kept")
    else:
        print(f"[{fig}] sweep finished in {time.time() - t0:.0f}s")
    return n, done


def _checks_key(results: Path, figs: list, missing: list, profile: str) -> str:
    """What the claims table, the plots and the report are made of: the collected tables (their
    files' stamps: collect rewrites them only when a run changed), the figures' manifests, the
    code under scripts/, the reference folder, the outputs themselves (a deleted plot or
    report is redone) and the arguments."""
    h = hashlib.sha256(json.dumps([figs, missing, profile]).encode())
    repo = Path(__file__).resolve().parent.parent
    for f in sorted((repo / "scripts").rglob("*.py")):
        h.update(str(f.relative_to(repo)).encode() + b"\0" + f.read_bytes())
    try:
        from scripts import reference
        ref = Path(reference.DEFAULT)
        for f in sorted(ref.rglob("*")) if ref.is_dir() else []:
            h.update(str(f).encode() + json.dumps(_stamp(f)).encode())
    except Exception:   # no reference module or folder: nothing it could change
        pass
    for name in ("index.parquet", "curves.parquet", "claims.json", "report.html"):
        h.update(name.encode() + json.dumps(_stamp(results / name)).encode())
    for fig in figs:
        try:
            h.update((results / "manifests" / f"{fig}.json").read_bytes())
        except OSError:
            h.update(b"no manifest")
    figures = results / "figures"
    for f in sorted(figures.iterdir()) if figures.is_dir() else []:
        h.update(f.name.encode() + json.dumps(_stamp(f)).encode())
    return h.hexdigest()


def _unchanged_table(results: Path, key: str):
    """The last claims table when nothing it was made from changed since, else None."""
    try:
        if (results / STATE_DIR / "checks.key").read_text() != key:
            return None
        table = json.loads((results / "claims.json").read_text())
        return table if isinstance(table, list) else None
    except (OSError, ValueError):
        return None


def _save_checks_key(results: Path, figs: list, missing: list, profile: str) -> None:
    """Taken after the outputs were written (their stamps are part of it), so the next call
    with nothing new finds the same key."""
    from experiments.store import atomic_write_bytes
    atomic_write_bytes(results / STATE_DIR / "checks.key", _checks_key(results, figs, missing, profile).encode())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("PROFILE") or "auto", choices=["auto", "quick", "full"])
    ap.add_argument("--figures", default="all", help="comma-separated figure ids, or 'all'")
    ap.add_argument("--results", default=os.environ.get("RESULTS_DIR", "results"))
    ap.add_argument("--jobs", type=int, default=None,
                    help="parallel jobs per sweep (default: one per CPU core without CUDA, one per GPU with it)")
    ap.add_argument("--no-run", action="store_true", help="only collect, plot, check and report")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every sweep (e.g. device=cpu)")
    args = ap.parse_args(argv)
    t0 = time.time()
    profile = _profile(args.profile)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    gpus = 0 if args.no_run else _gpus()
    cuda = gpus > 0
    jobs = args.jobs or (gpus if cuda else cores)
    if cuda:
        print(f"CUDA: {gpus} GPU(s), {jobs} parallel job(s), one per GPU")
        if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
            os.environ["OMP_NUM_THREADS"] = str(max(1, cores // jobs))
    if not cuda and not args.no_run and "OMP_NUM_THREADS" not in os.environ:
        # Several torch threads per run oversubscribe the cores (measured: an MNIST epoch 3.5 s
        # with 1 thread, 17.8 s with 2 while another process ran): one thread per job, one job
        # per core. Set OMP_NUM_THREADS to change.
        os.environ["OMP_NUM_THREADS"] = "1"
        print(f"CPU run: {jobs} parallel job(s), OMP_NUM_THREADS=1 (set it or --jobs to override)")
    results = Path(args.results)
    have = available()
    figs = list(have) if args.figures == "all" else [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = [f for f in figs if f not in FIGURES + EXTRAS]
    if unknown:
        print(f"error: unknown figure(s) {', '.join(unknown)}; valid: {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    missing = [f for f in FIGURES if f not in have] if args.figures == "all" else []
    print(f"profile={profile}  figures={','.join(figs)}  results={results}")
    failed = []
    for fig in figs:
        try:
            if args.no_run:       # runs made by any route (a typed multirun, SLURM) reach the figure
                _, _, n, done = plan_figure(fig, profile, results, args.overrides)
                print(f"[{fig}] {done} of {n} runs DONE")
            else:
                run_figure(fig, profile, results, jobs, args.overrides, gpus=gpus if jobs > 1 else 0)
        except Exception as e:  # one figure's failure must not lose the others
            print(f"[{fig}] could not {'plan' if args.no_run else 'run'}: {e}")
            failed.append(fig)
    try:
        collect.collect(results, load=False)      # incremental: only new or changed run folders
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    key = _checks_key(results, figs, missing, profile)
    table = _unchanged_table(results, key)
    if table is not None:
        claims.print_table(table)
        print(f"claims and report unchanged: nothing new in the store, the code or the manifests "
              f"since they were written (delete {results / STATE_DIR} to redo them)")
    else:
        table = claims.run_checks(results, figs, plot=True)
        for f in missing:
            table.append({"figure": f, "claim": "figure implemented", "measured": "no module scripts/figures/"
                          f"{f}.py yet", "status": "MISSING"})
        claims.write(results, table)
        claims.print_table(table)
        report.write(results, table, profile)
        _save_checks_key(results, figs, missing, profile)
    print(f"report: {results / 'report.html'}")
    print(f"total time {time.time() - t0:.1f}s")
    return 1 if failed or claims.exit_status(table) else 0


if __name__ == "__main__":
    sys.exit(main())
