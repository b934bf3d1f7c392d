"""Transformer LMs (full and last-layer-only) and the linear model."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import models
from datasets.base import Data

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def _cfg(name, **kw):
    with open(CONF / f"{name}.yaml") as f:
        cfg = yaml.safe_load(f)
    assert cfg["name"] == name
    unknown = set(kw) - set(cfg)
    assert not unknown, f"test uses keys missing from {name}.yaml: {unknown}"
    cfg.update(kw)
    return cfg


def _lm_data(V=50, N=6, T=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, V, (N * T + 1,), generator=g)
    x, y = s[:-1].reshape(N, T), s[1:].reshape(N, T)
    return Data(x_train=x, y_train=y, x_test=x[:2], y_test=y[:2], task="lm", num_classes=V,
                input_shape=(T,))


def _build(name, data, **kw):
    torch.manual_seed(0)
    return models.build(_cfg(name, **kw), data)


# ----------------------------------------------------------------------------- transformer
@pytest.mark.parametrize("kw", [{}, {"pos": "sinusoidal", "tie_weights": True, "head_bias": True},
                                {"n_layer": 1, "n_head": 2, "width": 0.5, "dropout": 0.1, "pos": "none"}])
def test_transformer_shapes_and_backward(kw):
    d = _lm_data()
    m = _build("transformer", d, **kw)
    logits = m(d.x_train)
    assert logits.shape == (6, 16, 50) and logits.dtype == torch.float32
    short = m(d.x_train[:, :5])  # shorter than block_size is fine
    assert short.shape == (6, 5, 50)
    loss = F.cross_entropy(logits.reshape(-1, 50), d.y_train.reshape(-1))
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.5  # near-uniform at init
    loss.backward()
    for name, p in m.named_parameters():
        assert p.requires_grad and p.grad is not None and torch.isfinite(p.grad).all(), name
    with pytest.raises(ValueError):
        m(torch.zeros(1, 17, dtype=torch.int64))  # longer than the data's seq_len


def test_transformer_width_knob_and_tying():
    d = _lm_data()
    base = _build("transformer", d)
    assert base.tok_emb.weight.shape == (50, 128) and base.blocks[0].mlp.fc.out_features == 512
    assert len(base.blocks) == 2 and base.blocks[0].attn.n_head == 4
    wide = _build("transformer", d, width=2.0, d_ff=100)
    assert wide.tok_emb.weight.shape[1] == 256 and wide.blocks[0].mlp.fc.out_features == 200
    odd = _build("transformer", d, width=0.3)  # 38.4 -> rounded to a multiple of n_head = 4
    assert odd.tok_emb.weight.shape[1] % 4 == 0
    tied = _build("transformer", d, tie_weights=True)
    assert tied.head.weight is tied.tok_emb.weight
    assert base.head.weight is not base.tok_emb.weight
    assert sum(p.numel() for p in tied.parameters()) == sum(p.numel() for p in base.parameters()) - 50 * 128


@pytest.mark.parametrize("name", ["transformer", "transformer_last_layer"])
def test_causality(name):
    d = _lm_data(T=12)
    m = _build(name, d).eval()
    x = d.x_train[:3].clone()
    t = 7
    x2 = x.clone()
    x2[:, t] = (x2[:, t] + 1) % 50
    with torch.no_grad():
        a, b = m(x), m(x2)
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6), "logits before t depend on token t"
    assert not torch.allclose(a[:, t], b[:, t]), "logits at t do not depend on token t"
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_dropout_is_off_in_eval_and_at_default():
    d = _lm_data()
    m = _build("transformer", d)
    m.train()
    assert torch.equal(m(d.x_train), m(d.x_train))  # dropout 0 by default: deterministic closures
    m = _build("transformer", d, dropout=0.5)
    m.train()
    assert not torch.equal(m(d.x_train), m(d.x_train))
    m.eval()
    assert torch.equal(m(d.x_train), m(d.x_train))


def test_last_layer_only_head_trainable():
    d = _lm_data()
    m = _build("transformer_last_layer", d)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert any(n.startswith("tok_emb") for n in frozen) and any(n.startswith("attn") for n in frozen)
    # no MLP, no LayerNorm, no dropout anywhere
    kinds = {type(mod) for mod in m.modules()}
    assert torch.nn.LayerNorm not in kinds and torch.nn.GELU not in kinds
    assert all(mod.p == 0 for mod in m.modules() if isinstance(mod, torch.nn.Dropout))
    assert all(a.dropout == 0 for a in m.attn)
    logits = m(d.x_train)
    assert logits.shape == (6, 16, 50)
    F.cross_entropy(logits.reshape(-1, 50), d.y_train.reshape(-1)).backward()
    for n, p in m.named_parameters():
        assert (p.grad is not None) == n.startswith("head."), n
    # frozen features are O(1) and do not change with a step on the head
    feats = m.features(d.x_train)
    assert not feats.requires_grad and 0.3 < feats.std().item() < 5
    with torch.no_grad():
        m.head.weight -= 0.1 * m.head.weight.grad
    assert torch.equal(m.features(d.x_train), feats)


def test_last_layer_options():
    d = _lm_data()
    m = _build("transformer_last_layer", d, n_layer=2, n_head=2, width=2.0, pos="learned", head_bias=False)
    assert m.head.weight.shape == (50, 256) and m.head.bias is None and len(m.attn) == 2
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["head.weight"]


def test_transformer_rejects_non_lm_data():
    d = Data(x_train=torch.randn(4, 3), y_train=torch.zeros(4, dtype=torch.int64), num_classes=2)
    with pytest.raises(ValueError):
        _build("transformer", d)


# ----------------------------------------------------------------------------- linear
def test_linear_regression_1d_squeezes_and_keeps_float64():
    X = torch.randn(10, 7, dtype=torch.float64)
    d = Data(x_train=X, y_train=torch.randn(10, dtype=torch.float64), task="regression", input_dim=7)
    m = _build("linear", d, bias=False, init="zeros")
    out = m(X)
    assert out.shape == (10,) and out.dtype == torch.float64 and torch.all(out == 0)
    assert m.linear.bias is None and m.linear.weight.shape == (1, 7)
    assert sum(p.numel() for p in m.parameters()) == 7


def test_linear_regression_multi_target_and_classification_flatten():
    d = Data(x_train=torch.randn(10, 5), y_train=torch.randn(10, 3), task="regression", input_dim=5)
    assert _build("linear", d)(d.x_train).shape == (10, 3)
    imgs = torch.randn(8, 1, 4, 4)
    d = Data(x_train=imgs, y_train=torch.randint(0, 10, (8,)), task="classification", num_classes=10,
             input_shape=(1, 4, 4))  # input_dim unset: taken from the shape
    m = _build("linear", d)
    out = m(imgs)
    assert out.shape == (8, 10) and m.linear.bias is not None and m.linear.weight.abs().sum() > 0
    F.cross_entropy(out, d.y_train).backward()
    assert m.linear.weight.grad.shape == (10, 16)
    with pytest.raises(ValueError):
        _build("linear", d, init="bogus")
    with pytest.raises(ValueError):
        _build("linear", _lm_data())
