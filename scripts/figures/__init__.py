"""One module per talk figure (DESIGN.md section 7). Each module defines

    TITLE: str
    plot(store: Store, out_dir: Path) -> list[Path]      writes <id>.png and <id>.pdf
    check(store: Store) -> list[Claim]                   measured numbers + PASS/FAIL

and reads only the result store (``scripts.figures.common.Store``).
"""
from __future__ import annotations

import importlib

# Order of the talk.
FIGURES = (
    "convergence_rates",
    "overparam_sgd",
    "noise_floor",
    "acceleration",
    "sls_overparam",
    "sls_deep",
    "step_size_collapse",
    "ponos",
    "vision_vs_language",
    "noise_histograms",
    "full_batch_gap",
    "heavy_tailed_labels",
    "heavy_tailed_vision",
    "linear_heavy_tail",
    "sign_descent",
)

# Figures that are not the talk's: accepted by module() and ``--figures``, never part of "all"
# (the default ``make reproduce-all``). paper_mnist is the paper table, about an hour on CPU.
EXTRAS = ("paper_mnist",)


def module(fig_id: str):
    if fig_id not in FIGURES + EXTRAS:
        raise KeyError(f"unknown figure '{fig_id}'; valid: {', '.join(FIGURES + EXTRAS)}")
    return importlib.import_module(f"scripts.figures.{fig_id}")


def available() -> list[str]:
    """Figures whose module exists (the others are reported as missing, not skipped silently)."""
    out = []
    for f in FIGURES:
        try:
            module(f)
            out.append(f)
        except ModuleNotFoundError as e:
            if e.name != f"scripts.figures.{f}":
                raise
    return out
