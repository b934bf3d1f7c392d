"""One rule for every claim that rests on random runs: per-seed values, an interval, and a
verdict that needs the effect in every seed.

A claim compares a per-seed statistic (a ratio, a gap in decades, a final loss) with a
threshold. ``seed_claim`` is given the statistic of each seed and the direction of the
effect; it prints the per-seed values with their median and min-max interval, and

- PASS only when the whole interval is on the claimed side of the threshold (the worst seed
  shows the effect: with 3 seeds the min-max interval is the 67% coverage interval of the
  median, and the "all seeds" rule is what Kunstner et al.'s worst-seed step-size selection
  uses too);
- FAIL when any seed is on the other side (the number of seeds that show it is given);
- INCONCLUSIVE when fewer than ``MIN_SEEDS`` seeds have a finite value (one seed cannot tell a
  verdict from seed noise; the numbers are still printed).

Paired comparisons (method A against method B) are made within a seed: the statistic of seed
s is computed from the runs of seed s only, so the shared data and initialisation cancel.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from scripts.figures.common import Claim

MIN_SEEDS = 3
AGGREGATION = "every seed (min-max interval over seeds beyond the threshold)"


def per_seed(rows: pd.DataFrame, fn: Callable[[pd.DataFrame], float]) -> dict[int, float]:
    """{seed: fn(the rows of that seed)} for the index rows ``rows`` (column ``seed``)."""
    if rows is None or len(rows) == 0:
        return {}
    seeds = rows["seed"] if "seed" in rows.columns else pd.Series(0, index=rows.index)
    out = {}
    for s, grp in rows.groupby(seeds.fillna(0).astype(int), sort=True):
        v = fn(grp)
        out[int(s)] = float(v) if v is not None else math.nan
    return out


def interval(values: Mapping[int, float]) -> tuple[float, float, float]:
    """(median, min, max) of the finite per-seed values (NaNs where there are none)."""
    v = np.array([x for x in values.values() if x is not None and not math.isnan(x)], float)
    if not len(v):
        return math.nan, math.nan, math.nan
    return float(np.median(v)), float(v.min()), float(v.max())


def describe(values: Mapping[int, float], fmt: str = "{:.3g}", unit: str = "") -> str:
    """'median 0.44 [0.38, 0.53] over 3 seeds (s0 0.53, s1 0.38, s2 0.44)'."""
    med, lo, hi = interval(values)
    f = lambda x: (fmt.format(x) if x is not None and math.isfinite(x) else str(x)) + unit  # noqa: E731
    each = ", ".join(f"s{s} {f(v)}" for s, v in sorted(values.items()))
    n = sum(1 for v in values.values() if v is not None and not math.isnan(v))
    return f"median {f(med)} [{f(lo)}, {f(hi)}] over {n} seed{'s' * (n != 1)} ({each})"


def verdict_over_seeds(values: Mapping[int, float], ok: Callable[[float], bool],
                       min_seeds: int = MIN_SEEDS) -> tuple[str, int, int]:
    """(status, seeds showing the effect, seeds with a value). NaN counts as not showing it
    (a run that is missing or diverged where the claim needs a number)."""
    vals = list(values.values())
    finite = [v for v in vals if v is not None and not math.isnan(v)]
    good = sum(1 for v in vals if v is not None and not math.isnan(v) and ok(v))
    if len(finite) < min_seeds:
        return "INCONCLUSIVE", good, len(finite)
    return ("PASS" if good == len(vals) else "FAIL"), good, len(finite)


def seed_claim(fig: str, claim: str, values: Mapping[int, float], ok: Callable[[float], bool],
               fmt: str = "{:.3g}", unit: str = "", extra: str = "", min_seeds: int = MIN_SEEDS) -> Claim:
    """A Claim whose measured text gives every seed and the interval, and whose status follows
    ``verdict_over_seeds``. ``extra`` is appended to the measured text (context numbers)."""
    status, good, n = verdict_over_seeds(values, ok, min_seeds)
    text = describe(values, fmt, unit)
    if status == "FAIL":
        text += f"; {good} of {len(values)} seeds show it"
    elif status == "INCONCLUSIVE":
        text += f"; needs >= {min_seeds} seeds with a value for a verdict"
    if extra:
        text += f"; {extra}"
    return Claim(fig, claim, text, status)


def paired(a: Mapping[int, float], b: Mapping[int, float], op: Callable[[float, float], float]) -> dict[int, float]:
    """{seed: op(a[seed], b[seed])} over the seeds both have (NaN where either is NaN)."""
    return {s: (op(a[s], b[s]) if not (math.isnan(a[s]) or math.isnan(b[s])) else math.nan)
            for s in sorted(set(a) & set(b))}


def draw_band(ax, xs, med, lo, hi, color, alpha: float = 0.18, **line_kw):
    """The median line and its min-max seed band (no band for a single seed)."""
    line, = ax.plot(xs, med, color=color, **line_kw)
    if len(xs) and np.any(np.asarray(hi) != np.asarray(lo)):
        ax.fill_between(xs, lo, hi, color=color, alpha=alpha, lw=0)
    return line
