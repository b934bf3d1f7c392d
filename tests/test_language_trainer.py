"""What the language figures read from the trainer, checked by hand on tiny problems:
gradient-noise samples ||g_B - g||, per-class-group losses of an 'lm' task, and the
full-batch gradient accumulated over chunks of windows."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import datasets
import models
from experiments import evaluation, runid, seeding
from experiments.store import RunDir
from experiments.train import execute

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n")


@pytest.fixture
def text_dir(tmp_path):
    """A data folder holding a tiny Tiny-Shakespeare file in the original layout."""
    d = tmp_path / "data"
    (d / "tinyshakespeare").mkdir(parents=True)
    (d / "tinyshakespeare" / "input.txt").write_text(TEXT)
    return d


TINY_LM = ("dataset=tinyshakespeare", "dataset.download=false", "dataset.level=char", "dataset.seq_len=8",
           "model=transformer", "model.d_model=16", "model.n_head=2", "model.n_layer=1")


def _lm_cfg(compose_cfg, text_dir, *extra):
    cfg = compose_cfg(*TINY_LM, *extra)
    cfg["paths"]["data_dir"] = str(text_dir)
    cfg["device"] = "cpu"
    return cfg


def _initial_model(cfg):
    """The data and the initial model of a run, rebuilt from the run's seed streams."""
    seed = int(cfg["seed"])
    data = datasets.load(cfg["dataset"], cfg["paths"]["data_dir"], seeding.generator(seed, "data"))
    torch.manual_seed(seeding.stream_seed(seed, "init"))
    return data, models.build(cfg["model"], data)


# ----------------------------------------------------------------------------- noise norms
def _softmax_grad(W, b, x, y):
    """Closed-form gradient of the mean cross-entropy of a linear softmax model."""
    p = torch.softmax(x @ W.T + b, dim=1)
    r = p - F.one_hot(y, W.shape[0]).to(p.dtype)
    return r.T @ x / x.shape[0], r.mean(0)


def test_noise_norms_match_explicit_minibatch_gradients_of_a_linear_softmax():
    g = torch.Generator().manual_seed(0)
    n, d, c = 11, 4, 3
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    model = nn.Linear(d, c).double()
    params = list(model.parameters())
    norms = evaluation.noise_norms(model, "classification", x, y, 4, params, 3, 6,
                                   torch.Generator().manual_seed(7))
    W, b = model.weight.detach(), model.bias.detach()
    GW, Gb = _softmax_grad(W, b, x, y)
    gen = torch.Generator().manual_seed(7)
    hand = []
    for _ in range(6):
        idx = torch.randperm(n, generator=gen)[:3]          # batch drawn without replacement
        bW, bb = _softmax_grad(W, b, x[idx], y[idx])
        hand.append(math.sqrt(float(((bW - GW) ** 2).sum() + ((bb - Gb) ** 2).sum())))
    assert len(norms) == 6
    assert norms == pytest.approx(hand, rel=1e-10, abs=1e-12)
    assert len(set(round(v, 12) for v in hand)) > 1         # the samples differ: a real check
    # the batch of the whole set has no noise
    full = evaluation.noise_norms(model, "classification", x, y, 4, params, n, 2, torch.Generator().manual_seed(1))
    assert max(full) < 1e-12


def test_noise_norms_on_an_lm_task_use_the_token_mean_of_each_batch():
    g = torch.Generator().manual_seed(1)
    V, N, T = 7, 9, 5
    x = torch.randint(0, V, (N, T), generator=g)
    y = torch.randint(0, V, (N, T), generator=g)
    model = nn.Embedding(V, V)                                 # bigram logits: one row per input token
    nn.init.normal_(model.weight, 0, 1, generator=g)
    norms = evaluation.noise_norms(model, "lm", x, y, 2, [model.weight], 4, 5, torch.Generator().manual_seed(3))

    def grad(idx):
        w = model.weight.detach().clone().requires_grad_(True)
        logits = w[x[idx]]                                    # [b, T, V]
        loss = F.cross_entropy(logits.reshape(-1, V), y[idx].reshape(-1))   # mean over b*T tokens
        return torch.autograd.grad(loss, w)[0]

    full = grad(torch.arange(N))
    gen = torch.Generator().manual_seed(3)
    hand = [float((grad(torch.randperm(N, generator=gen)[:4]) - full).norm()) for _ in range(5)]
    assert norms == pytest.approx(hand, rel=1e-5)


def test_trainer_logs_noise_samples_at_the_requested_fractions(compose_cfg, text_dir):
    cfg = _lm_cfg(compose_cfg, text_dir, "optimizer=sgd", "optimizer.lr=0.1", "train.batch_size=2",
                  "train.epochs=2", "train.noise_at=[0.0,1.0]", "train.noise_samples=4", "train.noise_batch_size=3")
    data, model = _initial_model(cfg)
    execute(cfg)
    rd = RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg))
    recs = [json.loads(line) for line in (rd.path / "metrics.jsonl").read_text().splitlines()]
    with_noise = [r for r in recs if "noise/grad_noise_norm/0" in r]
    assert [r["step"] for r in with_noise] == [0, recs[-1]["step"]]
    logged = [with_noise[0][f"noise/grad_noise_norm/{k}"] for k in range(4)]
    assert "noise/grad_noise_norm/4" not in with_noise[0]
    params = [p for p in model.parameters() if p.requires_grad]
    expect = evaluation.noise_norms(model, "lm", data.x_train, data.y_train, int(cfg["train"]["eval_batch_size"]),
                                    params, 3, 4, seeding.generator(int(cfg["seed"]) + 0, "noise"))
    assert logged == pytest.approx(expect, rel=1e-5)
    # noise samples are not summary metrics
    summary = json.loads((rd.path / "summary.json").read_text())
    assert not any(k.startswith("noise/") for k in summary["final"])


# ----------------------------------------------------------------------------- class groups
def test_class_groups_cut_sorted_classes_into_equal_sample_mass():
    # counts 6, 1, 3, 2 (total 12); sorted: class 0 (6), 2 (3), 3 (2), 1 (1).
    # mass before: 0, 6, 9, 11 -> group floor(mass/12 * 2) = 0, 1, 1, 1
    g = evaluation.class_groups({"class_counts": [6, 1, 3, 2]}, 4, 2, "cpu")
    assert g.tolist() == [0, 1, 1, 1]
    # with 4 groups: floor(mass/12 * 4) = 0, 2, 3, 3
    g4 = evaluation.class_groups({"class_counts": [6, 1, 3, 2]}, 4, 4, "cpu")
    assert g4.tolist() == [0, 3, 2, 3]
    # a dataset's own grouping wins (zipf_linear)
    own = evaluation.class_groups({"class_counts": [6, 1, 3, 2], "class_groups": [1, 0, 0, 1]}, 4, 2, "cpu")
    assert own.tolist() == [1, 0, 0, 1]
    assert evaluation.class_groups({"class_counts": [6, 1, 3, 2]}, 4, 0, "cpu") is None


class FixedLogits(nn.Module):
    """Logits depend only on the input token: row ``x`` of a fixed table."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, x):
        return self.table[x]


def test_per_group_loss_of_an_lm_task_by_hand():
    V = 4
    table = torch.tensor([[2.0, 0.0, 0.0, -1.0],
                          [0.0, 1.0, 0.5, 0.0],
                          [1.0, 1.0, 1.0, 1.0],
                          [-1.0, 0.0, 2.0, 3.0]])
    model = FixedLogits(table)
    x = torch.tensor([[0, 1, 2], [3, 0, 1]])
    y = torch.tensor([[1, 0, 0], [2, 3, 0]])                  # targets: class 0 x3, 1, 2, 3
    counts = torch.bincount(y.reshape(-1), minlength=V).tolist()
    assert counts == [3, 1, 1, 1]
    groups = evaluation.class_groups({"class_counts": counts}, V, 2, "cpu")
    # sorted: 0 (3), 1, 2, 3 (ties by id); mass before 0, 3, 4, 5 of 6 -> groups 0, 1, 1, 1
    assert groups.tolist() == [0, 1, 1, 1]
    out = evaluation.split_metrics(model, "lm", x, y, 1, groups, "train")

    def ce(inp, tgt):
        row = table[inp]
        return float(torch.logsumexp(row, 0) - row[tgt])

    tok = [(0, 1), (1, 0), (2, 0), (3, 2), (0, 3), (1, 0)]   # (input, target) pairs
    per = [ce(i, t) for i, t in tok]
    g0 = [v for (i, t), v in zip(tok, per) if t == 0]
    g1 = [v for (i, t), v in zip(tok, per) if t != 0]
    assert out["train/loss"] == pytest.approx(sum(per) / 6)
    assert out["train/loss/0"] == pytest.approx(sum(g0) / 3)
    assert out["train/loss/1"] == pytest.approx(sum(g1) / 3)
    assert out["train/ppl"] == pytest.approx(math.exp(sum(per) / 6), rel=1e-6)
    acc = [float(table[i].argmax() == t) for i, t in tok]
    assert out["train/acc/1"] == pytest.approx(sum(a for a, (i, t) in zip(acc, tok) if t != 0) / 3)


def test_trainer_group_losses_average_to_the_train_loss(compose_cfg, text_dir):
    cfg = _lm_cfg(compose_cfg, text_dir, "optimizer=adam", "optimizer.lr=0.01", "train.batch_size=2",
                  "train.epochs=2", "train.class_groups=3")
    data, _ = _initial_model(cfg)
    execute(cfg)
    rd = RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg))
    info = json.loads((rd.path / "data_info.json").read_text())
    groups = evaluation.class_groups(info, data.num_classes, 3, "cpu")
    tokens = torch.bincount(groups[data.y_train.reshape(-1)], minlength=3).double()
    assert tokens.min() > 0
    for rec in (json.loads(line) for line in (rd.path / "metrics.jsonl").read_text().splitlines()):
        g = torch.tensor([rec[f"train/loss/{k}"] for k in range(3)], dtype=torch.float64)
        assert float((g * tokens).sum() / tokens.sum()) == pytest.approx(rec["train/loss"], rel=1e-6)


# ----------------------------------------------------------------------------- full batch
def test_full_batch_step_on_an_lm_task_uses_the_gradient_of_the_full_mean_loss(compose_cfg, text_dir):
    # 11 windows in chunks of 3 (3, 3, 3, 2): uneven chunks must still give the token mean
    cfg = _lm_cfg(compose_cfg, text_dir, "optimizer=sgd", "optimizer.lr=0.5", "train.batch_size=full",
                  "train.epochs=1", "train.eval_batch_size=3", "train.save_model=true")
    data, model = _initial_model(cfg)
    n = data.n_train
    assert n % 3 != 0 and n > 3
    logits = model(data.x_train)                                    # the mean over all tokens, by hand
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data.y_train.reshape(-1))
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    expect = {name: (p - 0.5 * g).detach() for (name, p), g in zip(
        ((k, v) for k, v in model.named_parameters() if v.requires_grad), grads)}
    s = execute(cfg)
    assert s["steps"] == 1 and s["grad_evals"] == n
    rd = RunDir(cfg["paths"]["results_dir"], runid.run_id(cfg))
    final = torch.load(rd.path / "model_final.pt", weights_only=True)
    moved = 0
    for name, w in expect.items():
        torch.testing.assert_close(final[name], w, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(final[name], dict(model.named_parameters())[name].detach()))
    assert moved > 0
    # the logged batch loss of the step is the full mean loss at the start
    recs = [json.loads(line) for line in (rd.path / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["opt/batch_loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert recs[0]["train/loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
