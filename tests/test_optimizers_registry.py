"""Configs, registry and documentation of the optimizers: every yaml in conf/optimizer builds
and steps, lists exactly the constructor's arguments, and the examples in
docs/optimizers.md (closure loop, "add your own optimizer") run as documented."""
from __future__ import annotations

import inspect
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from optimizers import REGISTRY, TRAINER_KEYS, build, stats

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "optimizer"
DOC = ROOT / "docs" / "optimizers.md"
YAMLS = sorted(CONF.glob("*.yaml"))
EXPECTED = {
    "sgd", "sgd_decreasing", "gd", "heavy_ball", "nesterov", "adam", "adamw", "amsgrad",
    "adagrad", "lbfgs", "sls", "sls_goldstein", "sps", "ponos", "sls_prec", "ponos_prec",
    "sign_descent", "sign_descent_m", "signum", "normalized_gd", "normalized_gd_m",
    "rescaled_sign", "lion", "sag", "svrg", "accel_sgd"}
CONSTANTS = {"L": 2.0, "L_max": 6.0, "mu": 0.1, "rho": 3.0, "n": 12, "d": 8, "kappa": 20.0}


def evaluate(v):
    """What the trainer does with values naming problem constants (e.g. ``1/L_max``)."""
    if isinstance(v, str) and re.fullmatch(r"[0-9A-Za-z_.+\-*/() ]+", v) and \
            re.search(r"\b(L|L_max|mu|rho|n|d|kappa)\b", v):
        return float(eval(v, {"__builtins__": {}}, dict(CONSTANTS)))
    return v


def load(path):
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def test_every_method_has_a_yaml():
    assert {p.stem for p in YAMLS} >= EXPECTED


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_yaml_lists_exactly_the_constructor_arguments(path):
    cfg = load(path)
    assert cfg["name"] in REGISTRY, cfg["name"]
    assert isinstance(cfg.get("schedule"), dict) and "name" in cfg["schedule"]
    cls = REGISTRY[cfg["name"]]
    sig = inspect.signature(cls.__init__).parameters
    accepted = {k for k in sig if k not in ("self", "params")}
    keys = set(cfg) - set(TRAINER_KEYS)          # name, schedule, full_batch: read by the trainer
    assert keys <= accepted, f"{path.name}: keys the constructor does not take: {keys - accepted}"
    if cls.__module__.startswith("optimizers."):
        assert keys == accepted, f"{path.name}: missing constructor arguments {accepted - keys}"
    for k, v in cfg.items():  # YAML 1.1 pitfall: 1e-6 without a dot is a string
        if isinstance(v, str) and k not in ("name", "line_search_fn", "adapt_flag", "suff_decr", "reading"):
            assert evaluate(v) is not v, f"{path.name}: {k}: {v!r} is neither a number nor an expression"


@pytest.mark.parametrize("path", YAMLS, ids=[p.stem for p in YAMLS])
def test_yaml_builds_and_steps(path):
    cfg = {k: evaluate(v) for k, v in load(path).items()}
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(12, 8, generator=g), torch.randn(12, generator=g)
    w = torch.zeros(8, requires_grad=True)
    opt = build(cfg, [w], n_batches_per_epoch=3)
    closure = lambda: 0.5 * ((X[:4] @ w - y[:4]) ** 2).mean()
    if getattr(opt, "needs_snapshot", False):
        opt.set_snapshot(lambda: 0.5 * ((X @ w - y) ** 2).mean())
    if getattr(opt, "needs_closure", False):
        opt.step(closure)
    else:
        opt.zero_grad()
        closure().backward()
        opt.step(slot=0) if getattr(opt, "needs_slot", False) else opt.step()
    assert torch.isfinite(w).all() and w.abs().sum() > 0
    s = stats(opt)
    assert math.isfinite(s["step_size"])


def test_schedule_and_name_are_not_passed_to_the_constructor():
    w = torch.zeros(2, requires_grad=True)
    opt = build({"name": "sgd", "lr": 0.1, "schedule": {"name": "inverse", "decay_steps": 10}}, [w])
    assert isinstance(opt, torch.optim.SGD)


def test_unknown_name_lists_valid_choices():
    with pytest.raises(KeyError, match="sls"):
        build({"name": "no_such_method"}, [torch.zeros(1, requires_grad=True)])


def test_lbfgs_follows_the_closure_contract():
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(20, 5, generator=g, dtype=torch.float64), torch.randn(20, generator=g, dtype=torch.float64)
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    opt = build(load(CONF / "lbfgs.yaml"), [w])
    for _ in range(3):
        opt.step(lambda: 0.5 * ((X @ w - y) ** 2).mean())
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(w.detach(), w_star, rtol=1e-4, atol=1e-5)  # stops at tolerance_grad
    assert stats(opt)["n_forwards"] == stats(opt)["n_backwards"] > 3
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()


# ----------------------------------------------------------------------------- docs
def _doc_block(marker: str) -> str:
    text = DOC.read_text()
    m = re.search(re.escape(marker) + r"\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"block {marker} not found in docs/optimizers.md"
    return m.group(1)


def test_doc_closure_example_runs(capsys):
    code = _doc_block("<!-- test: closure-example -->")
    assert len(code.strip().splitlines()) <= 16
    torch.manual_seed(0)
    exec(compile(code, "docs/optimizers.md", "exec"), {})
    assert "n_forwards" in capsys.readouterr().out


def test_add_your_own_optimizer_flow(tmp_path):
    """Exactly the documented flow: drop the file into a copy of optimizers/, add the yaml,
    import the package (auto-discovery), build from the yaml, train a few steps."""
    shutil.copytree(ROOT / "optimizers", tmp_path / "optimizers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "optimizers" / "my_sgd.py").write_text(_doc_block("<!-- file: optimizers/my_sgd.py -->"))
    (tmp_path / "conf" / "optimizer").mkdir(parents=True)
    (tmp_path / "conf" / "optimizer" / "my_sgd.yaml").write_text(
        _doc_block("<!-- file: conf/optimizer/my_sgd.yaml -->"))
    script = """
import torch, optimizers
from omegaconf import OmegaConf
assert optimizers.__file__.startswith(%r), optimizers.__file__
cfg = OmegaConf.to_container(OmegaConf.load("conf/optimizer/my_sgd.yaml"))
w = torch.ones(3, requires_grad=True)
opt = optimizers.build(cfg, [w])
for _ in range(2):
    opt.zero_grad(); (w * w).sum().backward(); opt.step()
assert torch.allclose(w.detach(), torch.full((3,), 0.64)), w
print("OK", optimizers.stats(opt))
""" % str(tmp_path)
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "'n_backwards': 2" in res.stdout
