"""Published numbers beside the measured ones (the report renders one table per figure).

Each entry is a quantity a paper gives a number for (from section 2 of
../shared/reference/algorithms.md, which says how each was read: from a figure, ``[fig]``, not
from a table), the published value as text, its source, and a function that computes the
measured counterpart from the store (NaN when the store has no such run). The settings differ
(the quick profile trains 60 epochs on 5,000 MNIST images, the papers 200 epochs on all
60,000), so the measured column says at which epoch it was measured: the table is for
orientation, not a claim; the claims are in scripts/figures/<figure>.py.

Figures with no entry have no published number: the least-squares figures are didactic
(no public code or numbers, 2.1), and the Kunstner et al. papers tabulate none (2.6, 2.7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

PONOS = "Galli, Rauhut & Schmidt 2023 (PoNoS), README Fig. 1, 200 epochs"
ADA_SLS = "Vaswani et al. 2020 (ada_sls), results_sls.png, 200 epochs"
DATA = {"mnist": "MNIST MLP", "cifar10": "lossy JPEG copy of CIFAR-10"}


@dataclass
class Measured:
    value: float
    note: str            # where it was measured: runs, epoch

    def text(self) -> str:
        if not math.isfinite(self.value):
            return f"n/a ({self.note})"
        v = f"{self.value:.3f}" if 0.1 <= abs(self.value) < 1 else f"{self.value:.2g}"
        return f"{v} ({self.note})"


@dataclass
class Published:
    quantity: str
    value: str
    source: str
    measure: Callable[[object], Measured]

    def row(self, store) -> dict:
        try:
            m = self.measure(store)
        except Exception as e:           # an unreadable store: the table still renders
            m = Measured(math.nan, f"error: {type(e).__name__}")
        return {"quantity": self.quantity, "published": self.value, "source": self.source,
                "measured": m.text(), "measured_value": m.value}


def final_of(fig: str, dataset: str, method: str, metric: str = "loss", split: str = "train",
             reduce: str = "last") -> Callable[[object], Measured]:
    """Median over the figure's runs of ``method`` on ``dataset`` of the curve's last value
    (``reduce="last"``) or its minimum over the second half of the run (``"min_late"``)."""
    def measure(store) -> Measured:
        runs = store.runs(fig)
        if runs.empty or "dataset.name" not in runs.columns:
            return Measured(math.nan, "no run")
        rows = runs[(runs["dataset.name"] == dataset) & (runs["method"] == method)]
        vals, epochs = [], []
        for rid in rows.run_id:
            cur = store.curve(rid, metric, split)
            cur = cur[np.isfinite(cur.value)]
            if not len(cur):
                continue
            if reduce == "min_late":
                late = cur[cur.step >= cur.step.iloc[-1] / 2]
                vals.append(float(late.value.min()))
            else:
                vals.append(float(cur.value.iloc[-1]))
            if "epoch" in cur.columns:
                epochs.append(float(cur.epoch.iloc[-1]))
        if not vals:
            return Measured(math.nan, f"no {method} run on {dataset}")
        where = f"epoch {max(epochs):.0f}" if epochs else "end"
        return Measured(float(np.median(vals)), f"median of {len(vals)} run{'s' * (len(vals) > 1)}, {where}")
    return measure


def _mnist(fig, method, metric="loss", split="train", reduce="last"):
    return final_of(fig, "mnist", method, metric, split, reduce)


PUBLISHED: dict[str, list[Published]] = {
    "sls_deep": [
        Published("MNIST MLP: SLS final training loss", "≈ 6e-6", PONOS, _mnist("sls_deep", "sls")),
        Published("MNIST MLP: Adam final training loss", "≈ 1e-4", PONOS, _mnist("sls_deep", "adam")),
        Published("MNIST MLP: SLS test accuracy", "≈ 0.982-0.983", PONOS, _mnist("sls_deep", "sls", "acc", "test")),
        Published("MNIST MLP: SPS training loss", "≈ 2e-6", PONOS, _mnist("sls_deep", "sps")),
        Published("CIFAR-10 ResNet-34: SLS validation accuracy", "≈ 0.931", ADA_SLS,
                  final_of("sls_deep", "cifar10", "sls", "acc", "test")),
        Published("CIFAR-10 ResNet-34: Adam validation accuracy", "≈ 0.927", ADA_SLS,
                  final_of("sls_deep", "cifar10", "adam", "acc", "test")),
    ],
    "ponos": [
        Published("MNIST MLP: PoNoS training loss", "≈ 1e-6 by epoch ≈ 50", PONOS, _mnist("ponos", "ponos")),
        Published("MNIST MLP: SLS (cap 10) training loss", "≈ 6e-6", PONOS, _mnist("ponos", "sls_ponos")),
        Published("MNIST MLP: SPS (cap 10) training loss", "≈ 2e-6", PONOS, _mnist("ponos", "sps_ponos")),
        Published("MNIST MLP: Adam training loss", "≈ 1e-4", PONOS, _mnist("ponos", "adam")),
        Published("MNIST MLP: PoNoS test accuracy", "≈ 0.985", PONOS, _mnist("ponos", "ponos", "acc", "test")),
    ],
    "step_size_collapse": [
        Published("SLS step size after the collapse (CIFAR-10 ResNet-34 at epoch ≈ 120, Fashion-MNIST "
                  "EfficientNet-B1 at ≈ 150); measured: smallest largest-step-per-interval in the second "
                  "half on MNIST", "≈ 1e-9 (from ≈ 1e-3)", f"{PONOS}, bottom row",
                  _mnist("step_size_collapse", "sls", "step_size_max", "opt", "min_late")),
        Published("MNIST MLP: PoNoS step size (cap 10)", "10 by epoch ≈ 30", f"{PONOS}, bottom row",
                  _mnist("step_size_collapse", "ponos", "step_size", "opt")),
        Published("MNIST MLP: SLS (cap 10) step size", "≈ 5-10 after 200 epochs", f"{PONOS}, bottom row",
                  _mnist("step_size_collapse", "sls_ponos", "step_size", "opt")),
    ],
}

# why a figure has no published number (shown in the report instead of an empty table)
NONE_BECAUSE = {
    "convergence_rates": "didactic figure of the talk: no public code or numbers (algorithms.md 2.1, 2.9)",
    "overparam_sgd": "didactic figure of the talk: no public code or numbers (algorithms.md 2.1, 2.9)",
    "acceleration": "Vaswani, Bach & Schmidt 2019 give a rate (about sqrt(kappa rho) instead of kappa rho "
                    "iterations), no measured number (algorithms.md 2.1)",
    "sls_overparam": "the SLS paper's matrix-factorization and synthetic experiments are read qualitatively "
                     "(linear convergence when interpolating), no number (algorithms.md 2.2)",
}
KUNSTNER = "Kunstner et al. tabulate no numbers; the raw logs are not available (algorithms.md 2.6, 2.7)"


def table(store, figure: str) -> list[dict]:
    """Rows {quantity, published, source, measured} of the figure ([] if none). A figure module
    with its own ``published_rows(store)`` (paper_mnist: the paper table) gives them itself."""
    from scripts.figures import module
    try:
        own = getattr(module(figure), "published_rows", None)
    except Exception:          # not a figure module: only the entries below
        own = None
    if own is not None:
        return [{**r, "quantity": f"{r['method']}: {r['quantity']}"} for r in own(store)]
    return [p.row(store) for p in PUBLISHED.get(figure, [])]


def none_because(figure: str) -> str:
    if figure == "paper_mnist":
        return "no finished paper_mnist run in the store (make paper-table)"
    return NONE_BECAUSE.get(figure, KUNSTNER if figure not in PUBLISHED else "")
