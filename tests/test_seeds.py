"""The shared seed rule of the claims (scripts/figures/seeds.py)."""
import math

import pandas as pd

from scripts.figures import seeds


def test_effect_within_seed_noise_is_not_pass():
    # median beyond the threshold, one seed on the other side: the interval straddles it
    c = seeds.seed_claim("f", "ratio < 0.5", {0: 0.53, 1: 0.38, 2: 0.44}, lambda v: v < 0.5)
    assert c.status == "FAIL"
    assert "2 of 3 seeds" in c.measured and "s0 0.53" in c.measured and "[0.38, 0.53]" in c.measured


def test_effect_beyond_the_interval_passes():
    c = seeds.seed_claim("f", "ratio < 0.5", {0: 0.41, 1: 0.38, 2: 0.44}, lambda v: v < 0.5)
    assert c.status == "PASS" and "median 0.41" in c.measured


def test_one_seed_is_inconclusive_and_nan_counts_against():
    assert seeds.seed_claim("f", "x", {0: 0.1}, lambda v: v < 0.5).status == "INCONCLUSIVE"
    assert seeds.verdict_over_seeds({0: 0.1, 1: 0.2, 2: 0.3, 3: math.nan}, lambda v: v < 0.5)[0] == "FAIL"


def test_per_seed_and_paired():
    rows = pd.DataFrame({"seed": [0, 0, 1, 1], "v": [1.0, 3.0, 2.0, 4.0]})
    a = seeds.per_seed(rows, lambda g: g.v.min())
    b = seeds.per_seed(rows, lambda g: g.v.max())
    assert a == {0: 1.0, 1: 2.0}
    assert seeds.paired(a, b, lambda x, y: y / x) == {0: 3.0, 1: 2.0}
    assert seeds.interval({0: 1.0, 1: 5.0, 2: 2.0}) == (2.0, 1.0, 5.0)
