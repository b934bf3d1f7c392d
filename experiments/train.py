"""Hydra entry point: ``python -m experiments.train [-m] dataset=lstsq optimizer=sgd ...``.

Before Hydra starts, every job of the command line (sweeps and a preset's grid included) is
composed and validated; a bad config stops everything with one line and exit status 2.
Each job then skips itself when its run is already DONE (``force=true`` re-runs it) and
resumes from its checkpoint when an earlier attempt was killed, so re-running a sweep
command is how a sweep is resumed.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from datasets.base import DataError, DataMissingError
from experiments import loggers, plan, runid, trainer, validate
from experiments.store import RunDir, StoreError

# Errors that are the input's fault (config, data files, device, store): one line, no traceback.
BAD_INPUT = (validate.ConfigError, DataMissingError, DataError, trainer.DeviceError, StoreError)

REPO = Path(__file__).resolve().parent.parent


def _git() -> dict:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal"], cwd=REPO,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        return {"git_sha": sha or None, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}


def _environment(device: str) -> dict:
    dev = trainer.resolve_device(device)
    import hydra as _h
    import numpy
    import pandas
    return {"python": platform.python_version(), "torch": torch.__version__, "hydra": _h.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__,
            "cuda": torch.version.cuda, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
            "num_threads": torch.get_num_threads(), "host": socket.gethostname(), **_git()}


def _label(cfg: dict) -> str:
    return f"{cfg['optimizer']['name']} on {cfg['dataset']['name']} seed={cfg['seed']}"


def execute(cfg: dict, *, interrupt_at_step: int | None = None) -> dict:
    """Run (or skip, or resume) one job given its resolved, validated config."""
    results_dir = Path(cfg["paths"]["results_dir"])
    rid, cid = runid.run_id(cfg), runid.config_id(cfg)
    rundir = RunDir(results_dir, rid)
    with rundir.claim() as ok:
        if not ok:
            print(f"skip {rid} ({_label(cfg)}): another process is writing it ({rundir.holder()})")
            return None
        broken = rundir.intact() if rundir.done and not cfg["force"] else None
        if rundir.done and not cfg["force"] and broken is None:
            s = rundir.summary()
            print(f"skip {rid} ({_label(cfg)}): already DONE ({s['status']}); force=true re-runs it")
            record_figure(rundir, cfg)
            return s
        if broken:
            print(f"warning: {rid}: DONE but {broken}; redoing it", file=sys.stderr)
        if (cfg["force"] or broken) and rundir.ckpt_path.exists():
            rundir.ckpt_path.unlink()
        with gpu_slot(cfg):
            return _train(cfg, rundir, rid, cid, interrupt_at_step)


def record_figure(rundir: RunDir, cfg: dict) -> None:
    """A DONE run found by another figure's sweep (the figure tag is not part of the run id)
    is recorded for that figure too, so selection by query finds it there. Called where a DONE
    run is skipped: here and in the suite sweeper, which leaves DONE runs out of the launch."""
    fig = cfg.get("figure")
    if not fig:
        return
    try:
        made_by = rundir.config_record()["config"].get("figure")
    except (OSError, ValueError, KeyError):
        return
    if fig != made_by:
        rundir.add_figure(fig, cfg.get("method"))


GPU_SLOTS_ENV = "OPTSUITE_GPU_SLOTS"


@contextlib.contextmanager
def gpu_slot(cfg: dict):
    """With ``OPTSUITE_GPU_SLOTS=k`` (the suite sweeper sets it for a sweep over k GPUs): hold
    one GPU of this machine for the job, so parallel jobs never share one. The job's own
    ``device=cuda:i`` (job i of the launch order gets i mod k) is taken when free, else the
    first free GPU (jobs do not finish in launch order), else it waits. The choice is written
    into ``cfg['device']`` (recorded in config.json; not part of the run id)."""
    k = int(os.environ.get(GPU_SLOTS_ENV) or 0)
    dev = str(cfg.get("device", "auto"))
    n = min(k, torch.cuda.device_count()) if k > 0 and dev.startswith("cuda") and torch.cuda.is_available() else 0
    if n <= 0:
        yield
        return
    from filelock import FileLock, Timeout
    want = (int(dev.split(":")[1]) if ":" in dev else 0) % n
    folder = Path(tempfile.gettempdir()) / f"optsuite-gpus-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    host = socket.gethostname()
    while True:
        for i in [want] + [i for i in range(n) if i != want]:
            lock = FileLock(str(folder / f"{host}-cuda{i}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                if i != want:
                    print(f"cuda:{want} is busy with another job of the sweep: this one runs on cuda:{i}")
                cfg["device"] = f"cuda:{i}"
                yield
            finally:
                lock.release()
            return
        time.sleep(0.5)


def _train(cfg: dict, rundir: RunDir, rid: str, cid: str, interrupt_at_step) -> dict:
    resume = rundir.ckpt_path.exists()
    fresh = not rundir.path.exists()
    from experiments.code_identity import code_ids
    record = {"run_id": rid, "config_id": cid, "key_version": runid.KEY_VERSION, "code": code_ids(cfg),
              "config": cfg, "semantic_config": runid.semantic_config(cfg),
              "environment": _environment(cfg["device"]),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed": resume,
              "choices": ({k: v for k, v in HydraConfig.get().runtime.choices.items() if not k.startswith("hydra/")}
                          if HydraConfig.initialized() else None),
              "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None}
    rundir.start(record, resume=resume)
    logger = loggers.build(cfg["logger"], record, Path(cfg["paths"]["results_dir"]))
    summary = None
    t0 = time.time()
    try:
        summary = trainer.run(cfg, rundir, logger, interrupt_at_step=interrupt_at_step)
        summary.update({"run_id": rid, "config_id": cid, "total_s": time.time() - t0,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        rundir.finish(summary)
    except BAD_INPUT:
        if fresh and not (rundir.path / "metrics.jsonl").exists():
            shutil.rmtree(rundir.path, ignore_errors=True)     # bad input leaves no empty run folder
        raise
    finally:
        logger.finish(summary)
    final = summary["final"].get("train/loss")
    extra = f" at step {summary['diverged_step']}" if summary["status"] == "diverged" else ""
    print(f"done {rid} ({_label(cfg)}): {summary['status']}{extra}, train/loss={final:.4g}, "
          f"{summary['steps']} steps, {summary['wall_s']:.1f}s")
    return summary


def _fail(msg: str):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


class JobError(ValueError):
    """Bad input found inside one job of a sweep: the sweep goes on, the sweeper reports it."""


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig):
    hc = HydraConfig.get()
    choices = dict(hc.runtime.choices)
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("sweep", None)                 # the preset's sweep block is not part of a job
    if plain.get("method") is None:          # plain sweeps: the optimizer choice is the label
        plain["method"] = choices.get("optimizer")
    try:
        validate.check(plain, choices)
        return execute(plain)
    except BAD_INPUT as e:
        if hc.mode == RunMode.MULTIRUN:      # sys.exit here would abandon every later job
            raise JobError(str(e)) from None
        _fail(str(e))


def main():
    argv = sys.argv[1:]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    flags = [a for a in argv if a.startswith("-") and a not in ("-m", "--multirun")]
    if not flags:                       # --help, --cfg ... go straight to Hydra
        try:
            plan.expand([a for a in argv if not a.startswith("-")], multirun)
        except validate.ConfigError as e:
            _fail(str(e))
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    hydra_main()


if __name__ == "__main__":
    main()
