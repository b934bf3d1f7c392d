"""Every figure has a preset with a quick and a full grid, every job of which composes and
validates (the lightning-hydra-template style compose test), and a figure module."""
import functools
from pathlib import Path

import pytest

from experiments import plan, runid
from scripts.figures import EXTRAS, FIGURES, available

CONF = Path(__file__).resolve().parent.parent / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def test_presets_belong_to_figures():
    assert set(PRESETS) <= set(FIGURES) | set(EXTRAS)


@functools.lru_cache(maxsize=None)
def _jobs(preset, profile):
    return plan.expand([f"experiment={preset}", f"profile={profile}"], multirun=True)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("profile", ["quick", "full"])
def test_preset_grid_composes_and_validates(preset, profile):
    assert (CONF / "grid" / f"{preset}_{profile}.yaml").exists()
    jobs = _jobs(preset, profile)
    assert len(jobs) >= 2
    assert len({j.run_id for j in jobs}) == len(jobs), "two jobs of one sweep share a run id"
    assert all(j.cfg["figure"] == preset for j in jobs)
    assert preset in available() or preset in EXTRAS


@pytest.mark.parametrize("preset", PRESETS)
def test_full_profile_is_larger_than_quick(preset):
    quick, full = _jobs(preset, "quick"), _jobs(preset, "full")
    seeds_q = {j.cfg["seed"] for j in quick}
    seeds_f = {j.cfg["seed"] for j in full}
    assert len(full) >= len(quick) and len(seeds_f) >= len(seeds_q), preset


def test_no_config_interpolates_the_seed():
    """plan.expand composes once per setting and copies it per seed; that is only valid while
    no config value is derived from ${seed}."""
    for f in CONF.rglob("*.yaml"):
        assert "${seed" not in f.read_text(), f


def test_seed_copies_equal_fresh_compositions():
    jobs = plan.expand(["dataset=lstsq", "seed=0,1,2", "optimizer=sgd,sls"], multirun=True)
    from omegaconf import OmegaConf  # noqa: F401
    fresh = [plan.expand(j.overrides, multirun=False)[0] for j in jobs]
    assert [j.cfg for j in jobs] == [f.cfg for f in fresh]
    assert [j.run_id for j in jobs] == [f.run_id for f in fresh]


@pytest.mark.parametrize("preset,profile", [("sls_overparam", "quick"), ("vision_vs_language", "quick"),
                                            ("sign_descent", "full"), ("acceleration", "quick")])
def test_one_composition_per_group_choice_equals_hydra_composing_each_job(preset, profile):
    """plan composes once per set of group choices and applies the value overrides (seeds,
    step sizes, levels, expressions) with Hydra's own function: every sampled job's config,
    choices and run id equal one Hydra compose of that job's whole override list."""
    jobs = _jobs(preset, profile)
    sample = jobs[::max(1, len(jobs) // 6)]
    for j in sample:
        cfg, choices = plan.compose_job(j.overrides)
        assert cfg == j.cfg and choices == j.choices, j.overrides
        assert runid.run_id(cfg) == j.run_id
