"""Reading the result store for figures and claim checks.

A figure's runs are listed in ``results/manifests/<figure>.json`` (written by
``scripts.reproduce`` from the preset's sweep): run ids, the method label of each job (the
name of its entry in the grid's ``sweep.methods``, so two uses of one optimizer class, e.g.
constant and decreasing SGD, stay apart) and its config-group choices. Step sizes and other
settings are read from the index columns (``optimizer.lr``), never from file names. Runs are
stored once even when several figures use them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Claim:
    figure: str
    claim: str
    measured: str
    status: str          # PASS | FAIL | INCONCLUSIVE (the quick profile cannot show it; numbers given)

    def row(self) -> dict:
        return self.__dict__.copy()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Store:
    def __init__(self, results_dir):
        self.dir = Path(results_dir)
        self._index = None
        self._curves = None
        self._by_run = None

    @property
    def index(self) -> pd.DataFrame:
        if self._index is None:
            p = self.dir / "index.parquet"
            self._index = pd.read_parquet(p) if p.exists() else pd.DataFrame(columns=["run_id"])
        return self._index

    @property
    def curves(self) -> pd.DataFrame:
        if self._curves is None:
            p = self.dir / "curves.parquet"
            self._curves = pd.read_parquet(p) if p.exists() else pd.DataFrame(
                columns=["run_id", "step", "epoch", "grad_evals", "split", "metric", "value", "group"])
        return self._curves

    def manifest(self, figure: str) -> dict | None:
        p = self.dir / "manifests" / f"{figure}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def runs(self, figure: str) -> pd.DataFrame:
        """Index rows of the figure's runs, with the manifest's ``method`` label and
        ``choice.<group>`` columns (the manifest's label wins over the one a run was first
        recorded with: a run shared by two figures may carry a different label in each)."""
        man = self.manifest(figure)
        if man is None:
            return self.index.iloc[0:0]
        jobs = pd.DataFrame([{"run_id": j["run_id"],
                              "method": j.get("method") or j["choices"].get("optimizer"),
                              **{f"choice.{k}": v for k, v in j["choices"].items()}}
                             for j in man["jobs"]]).drop_duplicates("run_id")
        index = self.index.drop(columns=[c for c in ("method",) if c in self.index.columns])
        return index.merge(jobs, on="run_id", how="inner")

    def _run_curves(self, run_id: str) -> pd.DataFrame:
        """The curves of one run (split once into a dict: figures ask for many runs)."""
        if self._by_run is None:
            self._by_run = dict(tuple(self.curves.groupby("run_id", sort=False)))
        return self._by_run.get(run_id, self.curves.iloc[0:0])

    def curve(self, run_id: str, metric: str, split: str = "train", group: int = -1) -> pd.DataFrame:
        c = self._run_curves(run_id)
        sel = c[(c.split == split) & (c.metric == metric) & (c.group == group)]
        return sel.sort_values("step").reset_index(drop=True)

    def final(self, run_id: str, metric: str, split: str = "train", group: int = -1) -> float:
        cur = self.curve(run_id, metric, split, group)
        return float(cur.value.iloc[-1]) if len(cur) else math.nan


def label(row) -> str:
    """Legend label of a run: its method label (the sweep block's name for it)."""
    return str(row.get("method") or row.get("optimizer.name"))


def loglog_slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)[0])


def first_below(cur: pd.DataFrame, threshold: float, x: str = "step") -> float:
    hit = cur[cur.value <= threshold]
    return float(hit[x].iloc[0]) if len(hit) else math.nan


def save(fig, out_dir: Path, fig_id: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{fig_id}.png", out_dir / f"{fig_id}.pdf"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths


def empty_figure(message: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return fig


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as p
    return p
