"""Shared test helpers: compose real configs through Hydra and run them into tmp stores."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """../shared/data (or $DATA_DIR) when present; tests that need it skip otherwise."""
    for cand in (os.environ.get("DATA_DIR"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "MNIST" / "raw").exists():
            return Path(cand)
    return None


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg(*overrides) -> resolved config dict writing into tmp_path/results."""
    from experiments import plan

    def make(*overrides, results=None):
        job = plan.expand(list(overrides), multirun=False)[0]
        cfg = job.cfg
        cfg["paths"]["results_dir"] = str(results or tmp_path / "results")
        return cfg

    return make


LSTSQ_FAST = ("dataset=lstsq", "dataset.n=40", "dataset.d_over_n=0.5", "model.bias=false", "model.init=zeros",
              "train.batch_size=4", "train.epochs=3", "train.eval_every=1")
