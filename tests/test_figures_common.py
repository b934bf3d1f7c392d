"""The look shared by all figures (scripts/figures/common.py): one colour and line style per method
label, stable and distinct; display names; mathtext step sizes; masking instead of clipping at a
floor. And, over every figure rendered from the other figure tests' synthetic stores: every drawn
line is in a legend, a method has the same colour wherever it appears, and nothing is drawn below a
figure's floor."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from scripts import figures
from scripts.figures import common
from scripts.figures.common import Store, display, legend_label, lr_tex, mask_below, style
from tests import test_figures_language as lang
from tests import test_figures_lstsq as lstsq
from tests import test_figures_sls_overparam as overparam
from tests import test_figures_vision as vision
from tests.fake_store import write_store

REPO = Path(__file__).resolve().parent.parent
KNOWN = ("sgd", "sgd_m", "sgd_const", "sgd_theory", "sgd_decreasing", "gd", "sag", "svrg", "accel_sgd", "adam",
         "adam_nom", "sls", "sls_ponos", "sps", "sps_ponos", "ponos", "ponos_prec", "sls_prec", "sign", "sign_m",
         "ngd", "ngd_m", "rsign", "lion")


def _grid_labels() -> set[str]:
    """Every method label under a ``methods:`` block of conf/grid/*.yaml."""
    out = set()

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k == "methods" and isinstance(v, dict):
                    out.update(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for f in sorted((REPO / "conf" / "grid").glob("*.yaml")):
        walk(yaml.safe_load(f.read_text()))
    return out


# ----------------------------------------------------------------------------- the shared map
def test_every_grid_label_has_a_style_and_a_name():
    labels = _grid_labels()
    assert labels, "no method labels found under conf/grid/*.yaml"
    assert labels <= set(common.METHODS), sorted(labels - set(common.METHODS))
    assert set(KNOWN) <= set(common.METHODS)


def test_style_is_stable_and_distinct_for_the_known_labels():
    keys = {m: (style(m)["color"], style(m)["ls"]) for m in common.METHODS}
    assert all(style(m) == style(m) for m in KNOWN)
    assert len(set(keys.values())) == len(keys), "two method labels share a colour and a line style"
    assert all(style(m)["marker"] is None for m in KNOWN)                  # markers only on request
    assert len({style(m, markers=True)["marker"] for m in KNOWN}) > 1
    # a family shares its hue, the variants differ in line style
    assert style("adam")["color"] == style("adam_nom")["color"] and style("adam")["ls"] != style("adam_nom")["ls"]
    assert style("sls")["color"] == style("sls_ponos")["color"] != style("sps")["color"]
    assert display("adam") != display("sgd") and all(display(m) for m in KNOWN)


def test_unknown_labels_get_a_stable_style_from_their_name():
    a, b = style("my_optimizer"), style("my_other_optimizer")
    assert a == style("my_optimizer")
    assert (a["color"], a["ls"]) not in {(style(m)["color"], style(m)["ls"]) for m in KNOWN}
    assert display("my_optimizer") == "my_optimizer"
    # the same in a fresh interpreter with another hash seed (not Python's salted hash, not the cycle)
    code = "from scripts.figures.common import style; print(style('my_optimizer', True))"
    out = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip() for seed in ("1", "2")}
    assert out == {str(style("my_optimizer", markers=True))}
    assert isinstance(b["color"], str)


@pytest.mark.parametrize("lr,tex", [(0.01, r"$10^{-2}$"), (0.03, r"$3\times10^{-2}$"), (10 ** -1.5, r"$10^{-1.5}$"),
                                    (0.001, r"$10^{-3}$"), (1.0, "$1$"), (3.0, "$3$"), (0.3, r"$3\times10^{-1}$"),
                                    (0.0316, r"$3.16\times10^{-2}$"), (0.009999, r"$10^{-2}$")])
def test_lr_tex(lr, tex):
    assert lr_tex(lr) == tex


def test_legend_label_and_numbers():
    assert legend_label("adam", 0.001) == r"Adam ($10^{-3}$)"
    assert legend_label("sgd", math.nan) == "SGD" and legend_label("sgd_theory") == r"SGD, step $1/(\rho L)$"
    assert common.fmt_num(1000.0) == "1000" and common.fmt_num(0.5) == "0.5" and common.fmt_num(256) == "256"


def test_mask_below_leaves_nothing_below_the_floor():
    y = np.array([1.0, 1e-3, 1e-17, 0.0, -1.0, np.inf, 1e-12])
    m = mask_below(y, 1e-16)
    finite = m[np.isfinite(m)]
    assert finite.min() >= 1e-16
    assert np.isnan(m[[2, 3, 4, 5]]).all() and m[6] == 1e-12 and y[2] == 1e-17     # the input is untouched


# ----------------------------------------------------------------------------- every figure
def _capture(monkeypatch):
    """Patch every figure module's ``save`` to keep the figure (and still write it)."""
    figs = []
    orig = common.save

    def save(fig, out_dir, fig_id):
        figs.append(fig)
        return orig(fig, out_dir, fig_id)
    for fig_id in figures.available():
        mod = figures.module(fig_id)
        if hasattr(mod, "save"):
            monkeypatch.setattr(mod, "save", save)
    return figs


def _counts_linear(m=7):
    return np.concatenate([np.full(2 ** i, 2 ** (m - i)) for i in range(m)])


# figure -> a synthetic store of the figure's own tests (the store that shows the talk's effect)
STORES = {
    "convergence_rates": lambda t: lstsq._conv_store(t),
    "overparam_sgd": lambda t: lstsq._overparam_store(t),
    "noise_floor": lambda t: lstsq._nf_store(t),
    "acceleration": lambda t: lstsq._accel_store(t),
    "sls_overparam": lambda t: overparam._store(t, diverge_sgd=True),
    "sls_deep": lambda t: vision._sls_store(t),
    "step_size_collapse": lambda t: vision._collapse_store(t),
    "ponos": lambda t: vision._ponos_store(t),
    "vision_vs_language": lambda t: lang._vvl_store(t),
    "noise_histograms": lambda t: lang._noise_store(t),
    "full_batch_gap": lambda t: lang._fbg_store(t),
    "heavy_tailed_labels": lambda t: lang._group_store(t, "heavy_tailed_labels", list(range(10)), lang._zipf_counts()),
    "heavy_tailed_vision": lambda t: vision._heavy_store(t),
    "linear_heavy_tail": lambda t: lang._group_store(t, "linear_heavy_tail", list(range(7)), _counts_linear()),
    "sign_descent": lambda t: lang._sign_store(t),
}


def _key(line):
    """The look of a line: colour and line style (and the marker of a line drawn as markers only; a
    line that adds markers to a legend entry's colour and style is told apart by them already)."""
    from matplotlib.colors import to_hex
    ls = line.get_linestyle()
    return to_hex(line.get_color()), ls, line.get_marker() if ls in ("None", "none", "", " ") else None


def _legend_entries(fig):
    """[(handle, label)] of every legend of the figure (axes legends and figure legends)."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [(h, t.get_text()) for leg in legends for h, t in zip(leg.legend_handles, leg.get_texts())]


def _drawn_lines(fig):
    from matplotlib.lines import Line2D
    for ax in fig.axes:
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), float)
            if isinstance(line, Line2D) and line.get_visible() and np.isfinite(y).any():
                yield ax, line


def _render(monkeypatch, tmp_path, fig_id):
    figs = _capture(monkeypatch)
    store = STORES[fig_id](tmp_path / "store")
    paths = figures.module(fig_id).plot(store, tmp_path / "fig")
    assert paths[0].exists() and paths[0].stat().st_size > 1000
    assert len(figs) == 1
    return figs[0]


def test_every_figure_has_a_store_here():
    assert set(STORES) == set(figures.FIGURES)


def _method_of(label: str):
    """The known method a legend entry names (the longest display name it starts with), or None."""
    best = None
    for m in common.METHODS:
        name = display(m, tex=True)
        if label == name or label.startswith(name + " (") or label.startswith(name + ","):
            if best is None or len(name) > len(display(best, tex=True)):
                best = m
    return best


@pytest.mark.parametrize("fig_id", figures.FIGURES)
def test_every_line_is_in_a_legend_and_a_method_has_one_colour(monkeypatch, tmp_path, fig_id):
    """Every drawn line's look (colour, line style) is in a legend of its figure, and a legend entry
    naming a method (its display name, maybe followed by a step size) has the method's colour, so
    the same optimizer looks the same in every figure."""
    from matplotlib.colors import to_hex
    from matplotlib.lines import Line2D
    fig = _render(monkeypatch, tmp_path, fig_id)
    entries = _legend_entries(fig)
    shown = {_key(h) for h, _ in entries if isinstance(h, Line2D)}
    missing = [(ax.get_title(), line.get_label(), _key(line)) for ax, line in _drawn_lines(fig) if _key(line) not in shown]
    assert not missing, f"{fig_id}: lines whose look is in no legend: {missing}"
    wrong = []
    for h, label in entries:
        m = _method_of(label)
        if m is None or "other steps" in label or not isinstance(h, Line2D):
            continue
        if to_hex(h.get_color()) != to_hex(style(m)["color"]):
            wrong.append((label, to_hex(h.get_color()), style(m)["color"]))
    assert not wrong, f"{fig_id}: legend entries not in their method's colour: {wrong}"


def _conv_to_round_off(tmp_path):
    """convergence_rates with GD reaching 1e-30 (below the figure's 1e-16 floor)."""
    k = np.arange(0, 6001, 50)
    x = k / lstsq.N
    runs = [{"run_id": c, "method": c, "choices": {"optimizer": c}, "columns": lstsq._info(), "n": lstsq.N,
             "curves": {("train", "subopt", -1): (k, y)}}
            for c, y in (("gd", 10 ** (-x / 2)), ("sgd_const", 0.2 + 0 * x))]
    return Store(write_store(tmp_path, "convergence_rates", runs))


def _sls_deep_to_round_off(tmp_path):
    """sls_deep with SLS's training loss reaching 1e-24 (below the 1e-12 floor)."""
    runs = [vision._run("sls", "sls", vision._decay(100), opt=vision._line_search_opt(0.2, 1.002, 0.95)),
            vision._run("adam", "adam", vision._decay(700)), vision._run("sgd", "sgd", vision._decay(900), lr=0.1)]
    return Store(write_store(tmp_path, "sls_deep", runs))


@pytest.mark.parametrize("fig_id,make,floor", [
    ("convergence_rates", _conv_to_round_off, 1e-16),
    ("overparam_sgd", lambda t: lstsq._overparam_store(t), 1e-17),
    ("sls_overparam", lambda t: overparam._store(t, sls_interp=1e-30), 1e-18),
    ("sls_deep", _sls_deep_to_round_off, 1e-12),
])
def test_values_below_the_floor_are_masked_not_clipped(monkeypatch, tmp_path, fig_id, make, floor):
    figs = _capture(monkeypatch)
    figures.module(fig_id).plot(make(tmp_path / "store"), tmp_path / "fig")
    masked = 0
    for ax, line in _drawn_lines(figs[0]):
        if ax.get_yscale() != "log":
            continue
        y = np.asarray(line.get_ydata(), float)
        assert np.nanmin(y) >= floor, f"{fig_id}: '{line.get_label()}' drawn at {np.nanmin(y):.1e} < {floor:g}"
        # no fake plateau: the line does not sit at the floor for its last points
        assert not (len(y) > 3 and np.all(y[-3:] == floor)), line.get_label()
        masked += int(np.isnan(y).any())
    assert masked, f"{fig_id}: the store goes below {floor:g} but no line ends there"


# ----------------------------------------------------------------------------- run selection
def _tagged(run_id, figure="overparam_sgd", profile="quick", finished="2026-01-01T00:00:00", method="sgd_const"):
    return {"run_id": run_id, "method": method, "choices": {"optimizer": "sgd", "task": "lstsq"},
            "columns": {"figure": figure, "profile.name": profile, "summary.finished": finished, "level": 2.0,
                        "summary.status": "completed"},
            "curves": {("train", "subopt", -1): ([0, 10], [1.0, 0.1])}}


def test_without_a_manifest_the_runs_are_selected_by_query_on_the_figure_tag(tmp_path):
    runs = [_tagged("a"), _tagged("b", method="sgd_theory"), _tagged("other", figure="acceleration"),
            _tagged("old_full", profile="full", finished="2025-01-01T00:00:00")]
    store = Store(write_store(tmp_path, "overparam_sgd", runs, manifest=False))
    assert not (tmp_path / "manifests").exists()
    sel = store.runs("overparam_sgd")
    # the figure's tag, and one profile: the one of the run finished last (quick, not the older full run)
    assert sorted(sel.run_id) == ["a", "b"]
    assert dict(zip(sel.run_id, sel.method)) == {"a": "sgd_const", "b": "sgd_theory"}
    assert set(sel["choice.task"]) == {"lstsq"}            # the choices come from each run's config.json
    man = store.manifest("overparam_sgd")
    assert man["selected_by"] == "query" and man["profile"] == "quick" and man["other_profiles"] == {"full": 1}
    assert "selected by query" in store.selection("overparam_sgd") and "1 runs of profile full" in \
        store.selection("overparam_sgd")
    assert store.manifest("sls_deep") is None and store.runs("sls_deep").empty


def test_a_manifest_pins_the_selection(tmp_path):
    write_store(tmp_path, "overparam_sgd", [_tagged("a")])            # the manifest names only a
    store = Store(write_store(tmp_path / "other", "overparam_sgd", [_tagged("a"), _tagged("b")], manifest=False))
    (store.dir / "manifests").mkdir()
    (store.dir / "manifests" / "overparam_sgd.json").write_text((tmp_path / "manifests" / "overparam_sgd.json").read_text())
    assert list(store.runs("overparam_sgd").run_id) == ["a"]
    assert "pinned by manifests/overparam_sgd.json" in store.selection("overparam_sgd")


def test_a_hand_typed_multirun_reaches_its_figure_and_claims(tmp_path):
    """The README's 'a figure's preset' command (kept to 2 runs of 100 steps: one level, one seed), then scripts.claims
    alone: no manifest, the runs are found by their figure tag, plotted and checked."""
    import json
    import os
    from scripts import claims
    env = {**os.environ, "RESULTS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "experiments.train", "-m", "experiment=overparam_sgd", "profile=quick",
                        "train.epochs=1", "sweep.product.level=[2]", "sweep.seed=[0]", f"hydra.sweep.dir={tmp_path / 'hydra'}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    made = sorted(d.name for d in (tmp_path / "runs").iterdir())
    assert len(made) == 2 and not (tmp_path / "manifests").exists()
    claims.main(["--results", str(tmp_path), "--figures", "overparam_sgd"])
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert rows and not any(r["status"] in ("NO DATA", "INCOMPLETE", "ERROR") for r in rows), rows
    assert any("d/n=2" in r["measured"] for r in rows), rows
    assert (tmp_path / "figures" / "overparam_sgd.png").exists()
    store = Store(tmp_path)
    assert sorted(store.runs("overparam_sgd").run_id) == made
    assert set(store.runs("overparam_sgd").method) == {"sgd_const", "sgd_theory"}


def test_a_run_shared_by_two_figures_reaches_both_by_query(tmp_path):
    """The figure tag is not part of the run id: figure B's sweep finds figure A's run DONE and
    skips it. The run is recorded for B too (runs/<id>/figures.json), the incremental collect
    sees the change, and selection by query finds the run in both, each under its own label."""
    from experiments import plan
    from experiments.train import execute
    from scripts.collect import collect
    from tests.conftest import LSTSQ_FAST
    cfg = plan.expand([*LSTSQ_FAST, "optimizer=sgd"], multirun=False)[0].cfg
    cfg["paths"]["results_dir"] = str(tmp_path)
    a = execute({**cfg, "figure": "convergence_rates", "method": "sgd_const"})
    collect(tmp_path, quiet=True)
    assert list(Store(tmp_path).runs("overparam_sgd").run_id) == []
    b = execute({**cfg, "figure": "overparam_sgd", "method": "sgd_theory"})
    assert b["run_id"] == a["run_id"]                       # skipped: the same run
    collect(tmp_path, quiet=True)
    for fig, label in (("convergence_rates", "sgd_const"), ("overparam_sgd", "sgd_theory")):
        runs = Store(tmp_path).runs(fig)
        assert list(runs.run_id) == [a["run_id"]] and list(runs.method) == [label], fig
