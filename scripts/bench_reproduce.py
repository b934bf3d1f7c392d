"""What a reproduce costs beyond the training itself, measured in one run (issue 12); every
number is a ratio or a split of times taken in this run, so a loaded machine shifts them less.

1. **figures**: ``scripts.reproduce`` on a small figure subset (default convergence_rates and
   overparam_sgd with ``train.epochs=1``), once with ``--jobs 1`` and once with ``--jobs N``
   (all cores), each into its own temporary store: wall and CPU time (the children's
   user + sys) per figure, the parallel speed-up, that both stores hold the same numbers, and
   the time of a second call with nothing new (the re-run). ``--store DIR`` adds, from the run
   records of an existing store, the CPU time per figure and the makespan on N cores with the
   jobs in plan order against longest first.
2. **per-job overhead** of an lstsq job: the README sweep ``task=lstsq level=0.1,0.5,2,10
   optimizer=sgd,sls,ponos seed=0,1,2`` (36 jobs, basic launcher, one process): (wall -
   training time) / jobs, split into imports, Hydra (compose, launch, sweeper) and the
   job's own setup, then the in-job part by function (data, evaluations, store writes,
   provenance) from an in-process run of the same jobs.
3. **trainer step / bare loop**: seconds per step of ``experiments.trainer.run`` (its
   ``wall_s``: evaluations excluded) against a bare ``zero_grad; loss; backward; step`` loop
   over the same data, model and torch.optim.SGD, interleaved, median of the repeats; on the
   tiny lstsq problem (bookkeeping-bound) and the MNIST MLP (compute-bound, real MNIST from
   DATA_DIR when present); plus the state copy the trainer keeps at each evaluation (to redo
   a window after a NaN batch loss) against the evaluation itself.
4. **device-side variant** (CUDA only): 3 on the GPU, with the host synchronisations per step
   of the trainer counted (``torch.cuda.set_sync_debug_mode("warn")``).

Usage: python -m scripts.bench_reproduce [--only figures,overhead,step] [--figures a,b]
       [--jobs N] [--store results] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OVERHEAD_SWEEP = ["task=lstsq", "level=0.1,0.5,2,10", "optimizer=sgd,sls,ponos", "seed=0,1,2"]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _env(results: Path) -> dict:
    data = os.environ.get("DATA_DIR") or (str(ROOT.parent / "shared" / "data")
                                          if (ROOT.parent / "shared" / "data").exists() else "data")
    return {**os.environ, "RESULTS_DIR": str(results), "DATA_DIR": data, "OMP_NUM_THREADS": "1",
            "OPTSUITE_PROGRESS": "off"}


def _timed(cmd: list, env: dict) -> tuple[float, float, str]:
    """(wall s, children's CPU s, output) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout + p.stderr


def _finals(results: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()).get("final")
            for p in sorted((results / "runs").glob("*/summary.json"))}


def _table(rows: list, cols: list) -> str:
    w = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    line = lambda vals: "  ".join(str(v).rjust(n) for v, n in zip(vals, w))
    return "\n".join([line(cols), line(["-" * n for n in w])] + [line([r.get(c, "") for c in cols]) for r in rows])


# ---- 1. figures: sequential vs parallel, and the re-run ---------------------------------------
def bench_figures(figs: list, jobs: int, extra: list, keep: Path | None) -> dict:
    out = {"figures": figs, "jobs": jobs, "extra": extra, "per_figure": []}
    tmp = Path(tempfile.mkdtemp(prefix="bench_reproduce_"))
    try:
        stores = {}
        for fig in figs:
            row = {"figure": fig}
            for n in (1, jobs):
                store = tmp / f"jobs{n}"
                stores[n] = store
                wall, cpu, log = _timed([sys.executable, "-m", "scripts.reproduce", "--profile", "quick",
                                         "--figures", fig, "--jobs", str(n), "--results", str(store), *extra],
                                        _env(store))
                row[f"wall_j{n}"], row[f"cpu_j{n}"] = round(wall, 1), round(cpu, 1)
            row["speedup"] = round(row["wall_j1"] / row[f"wall_j{jobs}"], 2)
            man = json.loads((stores[1] / "manifests" / f"{fig}.json").read_text())
            row["runs"] = len(man["jobs"])             # the store holds the earlier figures' runs too
            out["per_figure"].append(row)
            print(f"  {fig}: {row}", flush=True)
        out["same_numbers"] = _finals(stores[1]) == _finals(stores[jobs])
        tot = {k: round(sum(r[k] for r in out["per_figure"]), 1) for k in out["per_figure"][0] if k.startswith(("wall", "cpu"))}
        out["total"] = {**tot, "speedup": round(tot["wall_j1"] / tot[f"wall_j{jobs}"], 2)}
        # the re-run: every figure at once, nothing new (twice: the first builds the caches)
        cmd = [sys.executable, "-m", "scripts.reproduce", "--profile", "quick", "--figures", ",".join(figs),
               "--results", str(stores[1]), *extra]
        first = _timed(cmd, _env(stores[1]))
        second = _timed(cmd, _env(stores[1]))
        out["rerun_s"] = {"first": round(first[0], 2), "again": round(second[0], 2)}
        if keep is not None:
            shutil.copytree(stores[1], keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def makespan(times: list, k: int) -> float:
    """Wall time of ``times`` on k workers that each take the next job when free."""
    import heapq
    free = [0.0] * k
    for t in times:
        heapq.heapreplace(free, free[0] + t)
    return max(free)


def bench_store(store: Path, k: int) -> list:
    """CPU time per figure from the run records, and the makespan on k cores: plan order
    against longest first."""
    rows = []
    for man_path in sorted((store / "manifests").glob("*.json")):
        man = json.loads(man_path.read_text())
        times = []
        for j in man.get("jobs", []):
            try:
                times.append(float(json.loads((store / "runs" / j["run_id"] / "summary.json").read_text())["total_s"]))
            except (OSError, ValueError, KeyError):
                pass
        if not times:
            continue
        plan, lpt = makespan(times, k), makespan(sorted(times, reverse=True), k)
        rows.append({"figure": man["figure"], "runs": len(times), "cpu_s": round(sum(times), 1),
                     f"plan_order_{k}cores_s": round(plan, 1), f"longest_first_{k}cores_s": round(lpt, 1),
                     "gain": round(plan / lpt, 2)})
    return rows


# ---- 2. per-job overhead -------------------------------------------------------------------------
@contextlib.contextmanager
def _timing(targets: dict, acc: dict):
    """Wrap module functions to add their time to acc[category] (outermost call only)."""
    import importlib
    saved, depth = [], {"n": 0}
    for cat, names in targets.items():
        for name in names:
            mod_name, _, attr = name.rpartition(".")
            try:
                owner = importlib.import_module(mod_name)
            except ImportError:          # a class path: module.Class.method
                mod2, _, cls = mod_name.rpartition(".")
                owner = getattr(importlib.import_module(mod2), cls)
            fn = getattr(owner, attr, None)
            if fn is None:
                continue

            def wrapped(*a, _fn=fn, _cat=cat, **k):
                if depth["n"]:
                    return _fn(*a, **k)
                depth["n"] += 1
                t0 = time.perf_counter()
                try:
                    return _fn(*a, **k)
                finally:
                    depth["n"] -= 1
                    acc[_cat] = acc.get(_cat, 0.0) + time.perf_counter() - t0

            saved.append((owner, attr, fn))
            setattr(owner, attr, wrapped)
    try:
        yield acc
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


IN_JOB = {
    "data (load, constants)": ["datasets.load"],
    "evaluations": ["experiments.evaluation.split_metrics", "experiments.evaluation.full_gradient"],
    "store writes": ["experiments.store.RunDir.start", "experiments.store.RunDir.append_metrics",
                     "experiments.store.RunDir.finish", "experiments.store.atomic_write_json",
                     "experiments.store.RunDir.claim"],
    "provenance (git, environment, code digests)": ["experiments.train._git", "experiments.train._environment",
                                                    "experiments.code_identity.code_ids"],
    "model and optimizer build": ["models.build", "optimizers.build"],
}


def bench_overhead() -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    try:
        # the first torch.optim construction imports torch._dynamo (~1.4 s): part of the imports
        t_import, _, _ = _timed([sys.executable, "-c", "import torch, hydra, experiments.train; "
                                 "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"], _env(tmp))
        wall, cpu, log = _timed([sys.executable, "-m", "experiments.train", "-m", *OVERHEAD_SWEEP,
                                 f"hydra.sweep.dir={tmp / 'hydra'}"], _env(tmp / "sweep"))
        sums = [json.loads(p.read_text()) for p in (tmp / "sweep" / "runs").glob("*/summary.json")]
        n = len(sums)
        train = sum(s["wall_s"] for s in sums)
        in_job = sum(s["total_s"] for s in sums)
        rerun, _, _ = _timed([sys.executable, "-m", "experiments.train", "-m", *OVERHEAD_SWEEP,
                              f"hydra.sweep.dir={tmp / 'hydra2'}"], _env(tmp / "sweep"))
        out = {"jobs": n, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "training_s": round(train, 2),
               "per_job_overhead_s": round((wall - train) / max(n, 1), 3),
               "split_per_job_s": {"imports (once, spread)": round(t_import / max(n, 1), 3),
                                   "Hydra compose + launch + sweeper": round((wall - t_import - in_job) / max(n, 1), 3),
                                   "in the job, not training": round((in_job - train) / max(n, 1), 3)},
               "rerun_all_done_s": round(rerun, 2)}
        # the in-job part by function, from the same jobs run in this process
        from experiments import plan
        from experiments.train import execute
        jobs = plan.expand(list(OVERHEAD_SWEEP), multirun=True)
        acc: dict = {}
        t0 = time.perf_counter()
        trained = 0.0
        with _timing(IN_JOB, acc), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            for j in jobs:
                cfg = copy.deepcopy(j.cfg)
                cfg["paths"]["results_dir"] = str(tmp / "inproc")
                trained += execute(cfg)["wall_s"]
        total = time.perf_counter() - t0
        acc["training steps"] = trained
        acc["other (trainer setup, checkpoint logic, summaries)"] = total - sum(acc.values())
        out["in_process_per_job_ms"] = {k: round(1e3 * v / len(jobs), 1) for k, v in acc.items()}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- 3./4. trainer step against a bare loop ----------------------------------------------------------
def _problem(name: str):
    if name == "lstsq":
        return ["task=lstsq", "dataset.n=2000", "level=0.5", "train.batch_size=10", "train.epochs=2"]
    return ["task=mnist_mlp", "dataset.subset=12800", "train.batch_size=128", "train.epochs=2"]


def bench_step(problem: str, device: str, repeats: int) -> dict | None:
    import torch
    import datasets
    import models
    from experiments import losses, plan, seeding, trainer
    from experiments.train import execute
    over = _problem(problem) + ["optimizer=sgd", "optimizer.lr=0.01", "train.eval_every=100"]
    try:
        cfg0 = plan.expand(over, multirun=False)[0].cfg
    except Exception as e:
        return {"problem": problem, "error": str(e)}
    data_dir = _env(Path("."))["DATA_DIR"]
    cfg0["paths"]["data_dir"] = data_dir
    cfg0["device"] = device
    dev = torch.device(device)
    try:
        data = datasets.load(cfg0["dataset"], data_dir, seeding.generator(0, "data")).to(dev)
    except Exception as e:      # no MNIST here
        return {"problem": problem, "error": f"{type(e).__name__}: {str(e)[:80]}"}
    bs = int(cfg0["train"]["batch_size"])
    steps = int(cfg0["train"]["epochs"]) * (data.n_train // bs)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    def bare() -> float:
        torch.manual_seed(0)
        model = models.build(cfg0["model"], data).to(dev)
        if data.x_train.is_floating_point():
            model = model.to(data.x_train.dtype)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        gen = seeding.generator(0, "order", dev)
        perm, pos = None, 0
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            if perm is None or pos + bs > data.n_train:
                perm, pos = torch.randperm(data.n_train, generator=gen, device=dev), 0
            idx = perm[pos:pos + bs]
            pos += bs
            opt.zero_grad(set_to_none=True)
            loss = losses.mean_loss(data.task, model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            opt.step()
        sync()
        return (time.perf_counter() - t0) / steps

    syncs = {"steps": 0}

    def through_trainer(tmp: Path) -> float:
        cfg = copy.deepcopy(cfg0)
        cfg["paths"]["results_dir"] = str(tmp)
        cfg["force"] = True
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            s = execute(cfg)
        return s["wall_s"] / s["steps"]

    tmp = Path(tempfile.mkdtemp(prefix="bench_step_"))
    phase_orig = trainer._phase if hasattr(trainer, "_phase") else None
    try:
        bare()
        through_trainer(tmp)                                    # warm-up
        t_bare, t_tr = [], []
        for _ in range(repeats):
            t_bare.append(bare())
            t_tr.append(through_trainer(tmp))
        out = {"problem": problem, "device": device, "steps": steps,
               "bare_ms": round(1e3 * statistics.median(t_bare), 4),
               "trainer_ms": round(1e3 * statistics.median(t_tr), 4)}
        out["ratio"] = round(out["trainer_ms"] / out["bare_ms"], 2)
        if dev.type == "cuda" and phase_orig is not None:
            import warnings

            def phase(name):
                syncs["in"] = name == "steps"
                torch.cuda.set_sync_debug_mode("warn" if name == "steps" else "default")

            trainer._phase = phase
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                through_trainer(tmp)
            torch.cuda.set_sync_debug_mode("default")
            out["host_syncs_per_step"] = round(sum("synchroniz" in str(w.message) for w in caught) / steps, 3)
        # the state copy kept at each evaluation against the evaluation itself
        from experiments import evaluation
        torch.manual_seed(0)
        model = models.build(cfg0["model"], data).to(dev).to(data.x_train.dtype if data.x_train.is_floating_point() else torch.float32)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss = losses.mean_loss(data.task, model(data.x_train[:bs]), data.y_train[:bs])
        loss.backward()
        opt.step()
        t_snap, t_eval = [], []
        for _ in range(max(3, repeats)):
            sync()
            t0 = time.perf_counter()
            copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
            sync()
            t_snap.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            evaluation.split_metrics(model, data.task, data.x_train, data.y_train, 4096, None, "train")
            t_eval.append(time.perf_counter() - t0)
        out["snapshot_ms"] = round(1e3 * statistics.median(t_snap), 3)
        out["eval_ms"] = round(1e3 * statistics.median(t_eval), 2)
        out["snapshot/eval"] = round(statistics.median(t_snap) / statistics.median(t_eval), 4)
        return out
    finally:
        if phase_orig is not None:
            trainer._phase = phase_orig
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="figures,overhead,step")
    ap.add_argument("--figures", default="convergence_rates,overparam_sgd")
    ap.add_argument("--extra", default="train.epochs=1", help="overrides for the figure sweeps (space-separated)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel jobs (default: all cores, at least 2)")
    ap.add_argument("--store", default=None, help="also report CPU time per figure from this store's runs")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    jobs = args.jobs or max(2, _cores())
    out = {"cores": _cores()}
    import torch
    torch.set_num_threads(1)
    if "figures" in parts:
        print(f"1. figures {args.figures} ({args.extra or 'preset budgets'}), --jobs 1 vs --jobs {jobs}", flush=True)
        out["figures"] = f = bench_figures(args.figures.split(","), jobs, args.extra.split(), None)
        print(_table(f["per_figure"] + [{"figure": "total", **f["total"]}],
                     ["figure", "runs", "wall_j1", "cpu_j1", f"wall_j{jobs}", f"cpu_j{jobs}", "speedup"]))
        print(f"   same numbers with 1 and {jobs} jobs: {f['same_numbers']}; re-run with nothing new: "
              f"{f['rerun_s']['first']} s (builds the caches), then {f['rerun_s']['again']} s")
    if args.store:
        rows = bench_store(Path(args.store), jobs)
        out["store"] = rows
        print(f"\n   from the run records of {args.store} (CPU s = sum of the jobs' total_s):")
        print(_table(rows, list(rows[0]) if rows else ["figure"]))
    if "overhead" in parts:
        print(f"\n2. per-job overhead: {' '.join(OVERHEAD_SWEEP)} (basic launcher)", flush=True)
        out["overhead"] = o = bench_overhead()
        print(f"   {o['jobs']} jobs: {o['wall_s']} s wall, {o['training_s']} s training -> "
              f"{o['per_job_overhead_s']} s per job beyond training; re-run with all DONE {o['rerun_all_done_s']} s")
        for k, v in o["split_per_job_s"].items():
            print(f"     {k:<40} {v:>7.3f} s/job")
        print("   in-process, per job (ms):")
        for k, v in o["in_process_per_job_ms"].items():
            print(f"     {k:<50} {v:>8.1f}")
    if "step" in parts:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        print(f"\n3. trainer step against a bare loop (torch.optim.SGD; {', '.join(devices)})", flush=True)
        rows = [r for d in devices for p in ("lstsq", "mnist_mlp") if (r := bench_step(p, d, args.repeats))]
        out["step"] = rows
        print(_table(rows, ["problem", "device", "steps", "bare_ms", "trainer_ms", "ratio", "snapshot_ms",
                            "eval_ms", "snapshot/eval", "host_syncs_per_step", "error"]))
        if len(devices) == 1:
            print("   (no CUDA here: the device-side variant runs where a GPU is present)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
