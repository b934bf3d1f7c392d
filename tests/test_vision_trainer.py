"""The trainer on vision data: a full-batch step is one GD step on the whole training set,
an interrupted run resumes to the numbers of an uninterrupted one, and the per-class-group
metrics are the group means of the per-sample losses. Tiny MNIST files in the real IDX format
are written into tmp_path; the test on the real MNIST skips when ../shared/data is absent."""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import datasets
import models
from experiments import evaluation, runid, seeding, trainer
from experiments.store import RunDir
from experiments.train import execute
from tests.conftest import shared_data_dir


def _idx(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
                     + arr.tobytes())


def fake_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> Path:
    """MNIST in torchvision's raw layout: random 28x28 digits with balanced labels."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, size=(n, 28, 28)))
        y = np.arange(n) % 10
        rng.shuffle(y)
        _idx(raw / f"{split}-labels-idx1-ubyte", y)
    return root


def _cfg(compose_cfg, data_dir, *overrides, results=None):
    cfg = compose_cfg("dataset.download=false", *overrides, results=results)
    cfg["paths"]["data_dir"] = str(data_dir)
    return cfg


def _metrics(cfg) -> pd.DataFrame:
    return pd.read_parquet(RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg)).path / "metrics.parquet")


def _gd_by_hand(cfg, lr):
    """The model the run starts from and its weights after one GD step on the mean loss."""
    seed = int(cfg["seed"])
    data = datasets.load(cfg["dataset"], cfg["paths"]["data_dir"], seeding.generator(seed, "data"))
    torch.manual_seed(seeding.stream_seed(seed, "init"))
    model = models.build(cfg["model"], data)
    loss = F.cross_entropy(model(data.x_train), data.y_train)     # mean over the whole set
    grads = torch.autograd.grad(loss, list(model.parameters()))
    with torch.no_grad():
        expected = {k: p - lr * g for (k, p), g in zip(model.named_parameters(), grads)}
    return data, expected, float(loss.detach())


def _check_full_batch_step(compose_cfg, data_dir, tmp_path, *dataset_overrides):
    lr = 0.5
    cfg = _cfg(compose_cfg, data_dir, "dataset=mnist", *dataset_overrides, "model=mlp", "model.hidden_sizes=[16]",
               "optimizer=sgd", f"optimizer.lr={lr}", "train.batch_size=full", "train.epochs=1",
               "train.eval_batch_size=25", "train.save_model=true")   # chunks of 25: the gradient is accumulated
    s = execute(cfg)
    data, expected, loss0 = _gd_by_hand(cfg, lr)
    assert s["steps"] == 1 and s["grad_evals"] == data.n_train and s["epochs"] == 1
    got = torch.load(RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg)).path / "model_final.pt")
    assert set(got) == set(expected)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-5, atol=1e-6)
    m = _metrics(cfg)
    assert m["train/loss"].iloc[0] == pytest.approx(loss0, rel=1e-5)
    assert m["opt/step_size"].iloc[-1] == lr


def test_full_batch_step_is_one_gd_step(compose_cfg, tmp_path):
    _check_full_batch_step(compose_cfg, fake_mnist(tmp_path / "data", n_train=60), tmp_path)


def test_full_batch_step_on_real_mnist_subset(compose_cfg, tmp_path):
    root = shared_data_dir()
    if root is None:
        pytest.skip("../shared/data/MNIST not present")
    _check_full_batch_step(compose_cfg, root, tmp_path, "dataset.subset=200", "dataset.test_subset=50")


@pytest.mark.parametrize("over", [
    ("model=mlp", "model.hidden_sizes=[32]", "optimizer=sls"),
    ("model=mlp", "model.hidden_sizes=[32]", "optimizer=ponos"),
    ("model=simple_cnn", "model.width=0.125", "optimizer=adam"),
], ids=["mlp-sls", "mlp-ponos", "cnn-adam"])
def test_resume_equals_uninterrupted(compose_cfg, tmp_path, over):
    data_dir = fake_mnist(tmp_path / "data", n_train=64)
    common = ("dataset=mnist", *over, "train.batch_size=16", "train.epochs=5", "train.eval_every=1",
              "train.checkpoint_every_s=0")
    ref = _cfg(compose_cfg, data_dir, *common, results=tmp_path / "a")
    execute(ref)
    full = _metrics(ref)

    cfg = _cfg(compose_cfg, data_dir, *common, results=tmp_path / "b")
    with pytest.raises(trainer.Interrupted):
        execute(cfg, interrupt_at_step=8)          # 4 steps an epoch: killed after epoch 2
    rd = RunDir(tmp_path / "b", runid.run_id(cfg))
    assert rd.ckpt_path.exists() and not (rd.path / "DONE").exists()
    execute(cfg)
    resumed = _metrics(cfg)
    assert (rd.path / "DONE").exists()
    assert list(full.step) == [0, 4, 8, 12, 16, 20]
    cols = [c for c in full.columns if c != "wall_s"]
    pd.testing.assert_frame_equal(full[cols], resumed[cols])


def test_class_groups_by_frequency_and_from_the_dataset():
    info = {"class_counts": [10, 50, 10, 30]}
    # sorted by frequency: class 1 (50, mass before 0), 3 (30, 0.5), 0 (10, 0.8), 2 (10, 0.9)
    assert evaluation.class_groups(info, 4, 2, "cpu").tolist() == [1, 0, 1, 1]
    assert evaluation.class_groups(info, 4, 4, "cpu").tolist() == [3, 0, 3, 2]
    assert evaluation.class_groups(info, 4, 0, "cpu") is None
    own = {"class_counts": [10, 50, 10, 30], "class_groups": [0, 0, 1, 1]}
    assert evaluation.class_groups(own, 4, 0, "cpu").tolist() == [0, 0, 1, 1]


class Identity(torch.nn.Module):
    def forward(self, x):
        return x


def test_split_metrics_per_group_by_hand():
    # 3 classes, no ties; the model returns its input, so the logits are chosen by hand
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.0], [2.0, 0.0, 1.0], [0.0, 0.0, 5.0]])
    y = torch.tensor([0, 1, 1, 2, 0])
    groups = torch.tensor([0, 1, 1])               # class 0 -> group 0, classes 1 and 2 -> group 1

    def ce(row, k):
        return math.log(sum(math.exp(v) for v in row)) - row[k]
    losses = [ce(r.tolist(), int(k)) for r, k in zip(logits, y)]
    correct = [1.0, 1.0, 1.0, 0.0, 0.0]
    out = evaluation.split_metrics(Identity(), "classification", logits, y, 2, groups, "train")   # chunks of 2
    g0, g1 = [0, 4], [1, 2, 3]
    assert out["train/loss"] == pytest.approx(sum(losses) / 5)
    assert out["train/acc"] == pytest.approx(3 / 5)
    assert out["train/loss/0"] == pytest.approx((ce([2, 0, 0], 0) + ce([0, 0, 5], 0)) / 2)
    assert out["train/loss/1"] == pytest.approx(sum(losses[i] for i in g1) / 3)
    assert out["train/acc/0"] == pytest.approx(sum(correct[i] for i in g0) / 2) == 0.5
    assert out["train/acc/1"] == pytest.approx(sum(correct[i] for i in g1) / 3)
    # a group without samples in the split is left out, not reported as 0
    out = evaluation.split_metrics(Identity(), "classification", logits[:1], y[:1], 2, groups, "test")
    assert "test/loss/0" in out and "test/loss/1" not in out


def test_barcoded_run_logs_group_losses_that_match_the_final_model(compose_cfg, tmp_path):
    data_dir = fake_mnist(tmp_path / "data", n_train=200, n_test=20)
    cfg = _cfg(compose_cfg, data_dir, "dataset=mnist_barcoded", "dataset.n_val=0", "dataset.n_barcode_bits=3",
               "dataset.n_barcoded_classes=8", "dataset.per_class=2", "model=mlp", "model.hidden_sizes=[16]",
               "optimizer=adam", "train.batch_size=full", "train.epochs=3", "train.save_model=true")
    execute(cfg)
    m = _metrics(cfg)
    assert {"train/loss/0", "train/loss/1", "test/loss/1", "train/acc/1"} <= set(m.columns)
    data = datasets.load(cfg["dataset"], data_dir, seeding.generator(int(cfg["seed"]), "data"))
    model = models.build(cfg["model"], data)
    model.load_state_dict(torch.load(RunDir(tmp_path / "results", runid.run_id(cfg)).path / "model_final.pt"))
    with torch.no_grad():
        per = F.cross_entropy(model(data.x_train), data.y_train, reduction="none")
    rare = data.y_train >= 10                     # barcoded classes have ids 10, 11, ...
    assert int(rare.sum()) == 16
    assert m["train/loss/1"].iloc[-1] == pytest.approx(float(per[rare].mean()), rel=1e-5)
    assert m["train/loss/0"].iloc[-1] == pytest.approx(float(per[~rare].mean()), rel=1e-5)
    assert m["train/loss"].iloc[-1] == pytest.approx(float(per.mean()), rel=1e-5)
