"""Run identity: what changes a run id and what must not."""
import copy

from experiments import runid
from tests.conftest import LSTSQ_FAST


def test_key_order_and_float_spelling_do_not_matter(compose_cfg):
    a = compose_cfg(*LSTSQ_FAST, "optimizer.lr=0.001")
    b = copy.deepcopy(a)
    b["optimizer"] = dict(reversed(list(a["optimizer"].items())))
    b["optimizer"]["lr"] = 1e-3
    assert runid.run_id(a) == runid.run_id(b)
    c = compose_cfg(*LSTSQ_FAST, "optimizer.lr=1e-3")
    assert runid.run_id(a) == runid.run_id(c)
    d = copy.deepcopy(a)
    d["train"]["epochs"] = 3.0          # 3 and 3.0 are the same setting
    assert runid.run_id(a) == runid.run_id(d)


def test_semantic_changes_change_the_id(compose_cfg):
    a = compose_cfg(*LSTSQ_FAST)
    assert runid.run_id(a) != runid.run_id(compose_cfg(*LSTSQ_FAST, "seed=1"))
    assert runid.config_id(a) == runid.config_id(compose_cfg(*LSTSQ_FAST, "seed=1"))   # seeds share a group
    assert runid.run_id(a) != runid.run_id(compose_cfg(*LSTSQ_FAST, "optimizer.lr=0.2"))
    assert runid.run_id(a) != runid.run_id(compose_cfg(*LSTSQ_FAST, "dataset.sigma=0.3"))


def test_logger_launcher_paths_device_do_not_change_the_id(compose_cfg, tmp_path):
    a = compose_cfg(*LSTSQ_FAST)
    for extra in (("logger=wandb", "logger.mode=disabled"), ("device=cpu",), ("force=true",),
                  ("hydra/launcher=joblib",), ("train.checkpoint_every_s=5",), ("train.eval_batch_size=7",),
                  ("figure=something",)):
        assert runid.run_id(compose_cfg(*LSTSQ_FAST, *extra)) == runid.run_id(a), extra
    assert runid.run_id(compose_cfg(*LSTSQ_FAST, results=tmp_path / "elsewhere")) == runid.run_id(a)


def test_canonical_floats():
    assert runid.canonical(0.001) == runid.canonical(1e-3) == "0.001"
    assert runid.canonical(2.0) == runid.canonical(2) == 2
    assert runid.canonical({"b": 1, "a": [1.5, None]}) == {"a": ["1.5", None], "b": 1}


def _copy_code(tmp_path, monkeypatch):
    import shutil
    from experiments import code_identity
    for pkg in code_identity.PACKAGES:
        shutil.copytree(code_identity.REPO / pkg, tmp_path / "code" / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_identity, "REPO", tmp_path / "code")
    return tmp_path / "code"


def test_editing_an_optimizer_changes_exactly_its_runs(compose_cfg, tmp_path, monkeypatch):
    cfgs = {o: compose_cfg(*LSTSQ_FAST, f"optimizer={o}") for o in ("sls", "ponos", "lion", "sgd")}
    before = {o: runid.run_id(c) for o, c in cfgs.items()}
    code = _copy_code(tmp_path, monkeypatch)
    assert {o: runid.run_id(c) for o, c in cfgs.items()} == before      # same code, same ids
    sls = code / "optimizers" / "sls.py"
    sls.write_text(sls.read_text() + "\n# a comment does not change what SLS computes\n")
    assert {o: runid.run_id(c) for o, c in cfgs.items()} == before
    shared = code / "optimizers" / "_linesearch.py"                   # imported by SLS and PoNoS
    shared.write_text(shared.read_text() + "\n_EDITED = 1\n")
    after = {o: runid.run_id(c) for o, c in cfgs.items()}
    assert after["sls"] != before["sls"] and after["ponos"] != before["ponos"]
    assert after["lion"] == before["lion"] and after["sgd"] == before["sgd"]   # torch.optim.SGD: no digest


def test_an_edited_optimizer_file_reruns(compose_cfg, tmp_path, monkeypatch, capsys):
    from experiments.train import execute
    cfg = compose_cfg(*LSTSQ_FAST, "optimizer=lion")
    execute(cfg)
    execute(cfg)
    assert "already DONE" in capsys.readouterr().out
    code = _copy_code(tmp_path, monkeypatch)
    lion = code / "optimizers" / "lion.py"
    lion.write_text(lion.read_text() + "\n_STEP_DOUBLED = True\n")
    execute(cfg)
    assert "already DONE" not in capsys.readouterr().out
