"""The suite's Hydra sweeper (``hydra/sweeper=suite``, the default in conf/config.yaml).

Hydra only finds sweepers in the ``hydra_plugins`` namespace package, hence this folder. It
launches exactly the jobs ``experiments.plan`` expands (a preset's ``sweep:`` block or plain
``key=a,b`` sweeps), with any launcher (basic, joblib, submitit), and differs from Hydra's
basic sweeper in three ways a result store needs:

* runs that are already DONE are left out before the launcher is called (``force=true``
  launches them), so re-submitting a finished sweep to SLURM queues nothing;
* a failing job does not stop the sweep: every job runs, then one line per failed job
  (run id, overrides, first line of the error) and a non-zero exit;
* the plan composed by the pre-flight of ``experiments.train`` is reused, not recomposed;
* the jobs are launched longest first (``longest_first``: the recorded time of a finished run
  of the same config, another seed, when the store has one, else an estimate from the config),
  so a parallel sweep does not end with one long run on one core; the order changes neither
  the run ids nor the numbers (every job is its own seeded run);
* ``hydra.sweeper.devices=k`` (set by ``scripts.reproduce`` on a machine with k GPUs, for
  local launchers): job i of that order gets ``device=cuda:(i mod k)`` unless its device was
  set, and ``OPTSUITE_GPU_SLOTS=k`` makes each job hold its GPU for its duration
  (``experiments.train``), so k parallel jobs are one per GPU even when they finish out of order.
  ``device`` is not part of the run id;
* on a terminal, one progress bar for the sweep (``experiments.progress.SweepBar``: "job 7/31,
  5 skipped"); it also switches per-run bars off in joblib workers, which share the terminal.
"""

import logging
import math
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class SuiteSweeperConf:
    _target_: str = "hydra_plugins.suite_sweeper.SuiteSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None       # plain Hydra grids (key: a,b) still work
    devices: int = 0                              # k > 0: job i gets device=cuda:(i mod k)
    order: str = "longest_first"                  # longest_first | plan


ConfigStore.instance().store(group="hydra/sweeper", name="suite", node=SuiteSweeperConf,
                             provider="optsuite")


class SweepFailed(HydraException):
    pass


class SuiteSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 devices: int = 0, order: str = "longest_first"):
        super().__init__()
        self.max_batch_size = max_batch_size
        self.devices, self.order = int(devices or 0), order
        if order not in ("longest_first", "plan"):
            raise SweepFailed(f"hydra.sweeper.order={order}; valid: longest_first, plan")
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from experiments import plan, validate
        try:
            jobs = plan.expand(list(arguments), multirun=True)
        except validate.ConfigError as e:
            raise SweepFailed(str(e)) from None
        from experiments.store import RunDir
        todo = [j for j in jobs if j.cfg.get("force") or not
                RunDir(j.cfg["paths"]["results_dir"], j.run_id).finished()]
        from experiments.train import record_figure
        launched = {id(j) for j in todo}
        for j in jobs:                 # a DONE run this figure shares with another one
            if id(j) not in launched:
                record_figure(RunDir(j.cfg["paths"]["results_dir"], j.run_id), j.cfg)
        if self.order == "longest_first":
            launched = {id(j) for j in todo}
            todo = longest_first(todo, [j for j in jobs if id(j) not in launched])
        overrides = [list(j.overrides) for j in todo]
        if self.devices > 0:
            os.environ["OPTSUITE_GPU_SLOTS"] = str(self.devices)
            overrides = [assign_device(ov, j.cfg, i, self.devices) for i, (ov, j) in enumerate(zip(overrides, todo))]
        print(f"sweep: {len(jobs)} jobs, {len(jobs) - len(todo)} already DONE, "
              f"launching {len(todo)}" + (f" on {self.devices} GPUs" if self.devices > 0 else ""), flush=True)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or max(len(todo), 1)
        returns, failed = [], []
        from experiments.progress import SweepBar      # one bar for the sweep, on a terminal only
        with SweepBar([(j.cfg["paths"]["results_dir"], j.run_id) for j in todo], len(jobs) - len(todo),
                      type(self.launcher).__name__) as bar:
            for start in range(0, len(todo), size):
                batch = todo[start:start + size]
                results = self.launcher.launch(overrides[start:start + size], initial_job_idx=start)
                for job, r in zip(batch, results):
                    if r.status == JobStatus.FAILED:
                        failed.append((job, r._return_value))
                returns.append(results)
                bar.batch_done(start + len(batch), len(failed))
        if failed:
            print(f"\n{len(failed)} of {len(todo)} jobs failed (the others finished and are kept):")
            for job, err in failed:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                print(f"  {job.run_id}  {' '.join(job.overrides)}\n      {type(err).__name__}: {first}")
                if not isinstance(err, (validate.ConfigError, ValueError)):   # a bug, not bad input:
                    print("      " + "".join(traceback.format_exception(err)).replace("\n", "\n      "))
            print(f"{len(failed)} of {len(todo)} jobs failed; re-running the same command retries "
                  "them and skips the finished ones", file=sys.stderr)
            sys.exit(1)                       # after every job ran; Hydra would add a traceback
        return returns


def assign_device(overrides: List[str], cfg: dict, i: int, k: int) -> List[str]:
    """Job i of the launch order on cuda:(i mod k), unless its device was set to something
    else than auto/cuda (device is not part of the run id)."""
    if str(cfg.get("device", "auto")) not in ("auto", "cuda"):
        return overrides
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "device"] + [f"device=cuda:{i % k}"]


# ---- launch order: longest first ------------------------------------------------------------
# A rough model of a job's time, only used to order the jobs when the store has no finished run
# of the same config: seconds ~ training FLOPs / FLOPS + steps x per-step overhead. The
# constants are orders of magnitude (one CPU core); the ordering is what matters.
FLOPS = 3e10
STEP_S = 5e-4
_EXAMPLES = {"mnist": 60000, "cifar10": 50000, "cifar100": 50000, "mnist_barcoded": 101200,
             "cifar10_barcoded": 101200, "imagefolder": 50000}
_TOKENS = {"tinyshakespeare": 1.0e6, "ptb": 9.3e5, "wikitext2": 2.1e6}
_INPUTS = {"mnist": 784, "mnist_barcoded": 784, "cifar10": 3072, "cifar100": 3072,
           "cifar10_barcoded": 3072, "imagefolder": 3072}
_CLASSES = {"cifar100": 100, "mnist_barcoded": 10250, "cifar10_barcoded": 10250}
# forward FLOPs per example at width 1 (CIFAR-size inputs for the ResNets)
_CONV = {"lenet5": 8e5, "simple_cnn": 5e6, "resnet18": 1.1e9, "resnet34": 2.3e9}
_PASSES = {"sls": 2.0, "sls_goldstein": 2.0, "sls_prec": 2.0, "ponos": 1.5, "ponos_prec": 1.5,
           "sag": 1.5, "svrg": 3.0, "lbfgs": 3.0}


def _num(v, default):
    try:
        return float(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def _examples(d: dict) -> tuple[float, float]:
    """(training examples, tokens per example) of a dataset config."""
    name = d.get("name")
    if name in _TOKENS:
        seq = _num(d.get("seq_len"), 64)
        windows = _TOKENS[name] / seq
        if d.get("subset"):
            windows = min(windows, _num(d["subset"], windows))
        return windows, seq
    if name == "lstsq":
        return _num(d.get("n"), 200), 1.0
    if name == "linclass":
        return _num(d.get("n"), 1000) * (1 - _num(d.get("test_frac"), 0.2)), 1.0
    if name == "matfac":
        return _num(d.get("n_samples"), 1000) * (1 - _num(d.get("test_size"), 0.2)), 1.0
    if name == "zipf_linear":
        m = _num(d.get("m"), 7)
        return (m + 1) * 2 ** m, 1.0
    n = _EXAMPLES.get(name, 10000)
    if d.get("subset"):
        n = min(n, _num(d["subset"], n))
    if d.get("n_barcoded_classes"):
        n = 50000 + _num(d["n_barcoded_classes"], 10240) * _num(d.get("per_class"), 5)
    return n, 1.0


def _forward_flops(m: dict, d: dict, tokens: float) -> float:
    name, w = m.get("name"), _num(m.get("width"), 1.0)
    d_in = _INPUTS.get(d.get("name"))
    if d_in is None:
        n = _num(d.get("n"), 200)
        d_in = _num(d.get("d"), None) or _num(d.get("d_over_n"), 0.5) * n if d.get("name") == "lstsq" else 100
    out = _CLASSES.get(d.get("name"), 10)
    if name in _CONV:
        return _CONV[name] * w * w
    if name == "mlp":
        sizes = [d_in] + [h * w for h in (m.get("hidden_sizes") or [512, 256])] + [out]
        return 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))
    if name in ("transformer", "transformer_last_layer"):
        dm = _num(m.get("d_model"), 128) * w
        layers = _num(m.get("n_layer"), 2)
        vocab = 65 if d.get("level", "word") == "char" else 10000
        return tokens * (24 * layers * dm * dm + 2 * dm * vocab)
    return 2 * _num(d_in, 100) * out


def estimate_seconds(cfg: dict) -> float:
    """Rough time of one job from its config (see FLOPS, STEP_S)."""
    d, m, o, t = cfg.get("dataset", {}), cfg.get("model", {}), cfg.get("optimizer", {}), cfg.get("train", {})
    n, tokens = _examples(d)
    epochs = _num(t.get("epochs"), 1.0)
    bs = t.get("batch_size")
    full = bs == "full" or bool(o.get("full_batch")) or _num(bs, n) >= n
    steps = epochs if full else epochs * max(1.0, n / _num(bs, n))
    passes = _PASSES.get(o.get("name"), 1.0)
    fwd = _forward_flops(m, d, tokens)
    evals = epochs / max(_num(t.get("eval_every"), 1.0), 1e-9) + 1 + _num(t.get("eval_per_decade"), 0) * 5
    flops = fwd * n * (3 * epochs * passes + evals * 1.2)
    return flops / FLOPS + steps * STEP_S * passes


def longest_first(todo: list, done: list) -> list:
    """The jobs in decreasing expected time (stable: ties keep the plan's order). A job whose
    config has a finished run in ``done`` (another seed) takes that run's recorded total time;
    the others take ``estimate_seconds`` scaled by the median recorded/estimated ratio of the
    finished runs (1 without any)."""
    from experiments import runid
    from experiments.store import RunDir
    recorded: dict = {}
    ratios = []
    for j in done:
        try:
            total = float(RunDir(j.cfg["paths"]["results_dir"], j.run_id).summary()["total_s"])
        except Exception:                # an older or odd summary: no record
            continue
        recorded.setdefault(runid.config_id(j.cfg), []).append(total)
        est = estimate_seconds(j.cfg)
        if est > 0 and total > 0:
            ratios.append(total / est)
    scale = sorted(ratios)[len(ratios) // 2] if ratios else 1.0

    def cost(j) -> float:
        times = recorded.get(runid.config_id(j.cfg)) if recorded else None
        if times:
            return sorted(times)[len(times) // 2]
        c = estimate_seconds(j.cfg) * scale
        return c if math.isfinite(c) else 0.0

    costs = [cost(j) for j in todo]
    order = sorted(range(len(todo)), key=lambda i: -costs[i])
    return [todo[i] for i in order]
