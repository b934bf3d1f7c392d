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
from scripts.figures import FIGURES, available


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


def _conf_hash(overrides: list[str]) -> str:
    """Fingerprint of every config file and the overrides: when it matches the manifest's,
    the manifest's run ids are still the sweep's and planning (composing every job) is skipped."""
    conf = Path(__file__).resolve().parent.parent / "conf"
    h = hashlib.sha256(json.dumps(overrides).encode())
    for f in sorted(conf.rglob("*.yaml")):
        h.update(str(f.relative_to(conf)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


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
            done = sum(RunDir(results, j["run_id"]).finished() for j in man["jobs"])
            return overrides, key, len(man["jobs"]), done
    from experiments import plan
    jobs = plan.expand(overrides, multirun=True)
    write_manifest(results, fig, profile, jobs, key)
    done = sum(RunDir(results, j.run_id).finished() for j in jobs)
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
    unknown = [f for f in figs if f not in FIGURES]
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
    table = claims.run_checks(results, figs, plot=True)
    for f in missing:
        table.append({"figure": f, "claim": "figure implemented", "measured": "no module scripts/figures/"
                      f"{f}.py yet", "status": "MISSING"})
    claims.write(results, table)
    claims.print_table(table)
    report.write(results, table, profile)
    print(f"report: {results / 'report.html'}")
    print(f"total time {time.time() - t0:.1f}s")
    return 1 if failed or claims.exit_status(table) else 0


if __name__ == "__main__":
    sys.exit(main())
