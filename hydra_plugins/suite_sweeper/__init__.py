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
* on a terminal, one progress bar for the sweep (``experiments.progress.SweepBar``: "job 7/31,
  5 skipped"); it also switches per-run bars off in joblib workers, which share the terminal.
"""

import logging
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


ConfigStore.instance().store(group="hydra/sweeper", name="suite", node=SuiteSweeperConf,
                             provider="optsuite")


class SweepFailed(HydraException):
    pass


class SuiteSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None):
        super().__init__()
        self.max_batch_size = max_batch_size
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
        print(f"sweep: {len(jobs)} jobs, {len(jobs) - len(todo)} already DONE, "
              f"launching {len(todo)}", flush=True)
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
                results = self.launcher.launch([j.overrides for j in batch], initial_job_idx=start)
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
