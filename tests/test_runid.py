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
