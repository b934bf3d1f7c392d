"""Step-size schedules: lr_k = lr_0 * factor(k), applied by the trainer before step k.

constant       factor 1
inverse        1 / (1 + k / decay_steps)        (the classical O(1/k) SGD schedule)
inverse_sqrt   1 / sqrt(1 + k / decay_steps)
cosine         0.5 * (1 + cos(pi * min(k, total) / total)), total = decay_steps
Optimizers without an ``lr`` (line searches, Polyak steps) ignore the schedule.
"""
from __future__ import annotations

import math

NAMES = ("constant", "inverse", "inverse_sqrt", "cosine")


def factor(schedule: dict, k: int) -> float:
    name = schedule.get("name", "constant")
    if name == "constant":
        return 1.0
    t = float(schedule["decay_steps"])
    if name == "inverse":
        return 1.0 / (1.0 + k / t)
    if name == "inverse_sqrt":
        return 1.0 / math.sqrt(1.0 + k / t)
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(k, t) / t))
    raise ValueError(f"unknown schedule '{name}'; valid: {', '.join(NAMES)}")
