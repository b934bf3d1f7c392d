"""linear_heavy_tail: the heavy-tailed-label gap needs no depth or attention (Kunstner et al.
2024, Fig. 2). A linear softmax model on zipf_linear: group i of the size-m data holds 2^i
classes of 2^(m-i) samples each, so every group holds the same number of samples and class
frequency falls like 1/rank. Full batch; per method the best *stable* step size of its
half-decade grid (see heavy_tailed_labels for the selection rule and the progress measure).
"""
from __future__ import annotations

import math

import numpy as np

from scripts.figures.common import Claim, verdict
from scripts.figures.heavy_tailed_labels import (PROGRESS_WHAT, class_counts, plot_groups, progress_claim,
                                                 select)

FIG = "linear_heavy_tail"
TITLE = ("linear softmax model on heavy-tailed synthetic labels: GD's loss on the rare classes falls far slower "
         "than Adam's")


def plot(store, out_dir):
    runs = store.runs(FIG)
    m = runs["dataset.m"].iloc[0] if "dataset.m" in runs.columns and len(runs) else None
    m = int(m) if m is not None and np.isfinite(m) else "?"
    return plot_groups(store, FIG, out_dir, class_counts(store, FIG),
                       f"linear softmax on zipf_linear ($m = {m}$): training loss per class group "
                       f"(group $i$: $2^i$ classes of $2^{{m-i}}$ samples)", logy=True)


def check(store):
    claims = []
    counts = class_counts(store, FIG)
    if counts is not None:
        c = np.sort(counts)[::-1]
        ratio = c[0] / c[-1] if c[-1] > 0 else math.inf
        claims.append(Claim(FIG, "the labels are heavy tailed (most / least frequent class >= 16)",
                            f"{len(c)} classes, counts {int(c[0])} .. {int(c[-1])} (ratio {ratio:.0f}), "
                            f"rarer half of the classes: {c[len(c) - len(c) // 2:].sum() / c.sum():.1%} of the samples",
                            verdict(ratio >= 16)))
    _, sel, sel_all = select(store, FIG)
    claims.append(progress_claim(store, FIG, sel, sel_all, PROGRESS_WHAT.replace("SGD", "GD")))
    return claims
