"""Small causal transformer language models.

``build``: a decoder-only (GPT-style) LM. Token embedding + positional embedding (learned or
sinusoidal), ``n_layer`` pre-LayerNorm blocks ``x + attn(ln(x))``, ``x + mlp(ln(x))`` with
causal multi-head self-attention (``F.scaled_dot_product_attention(is_causal=True)``) and a
GELU MLP, a final LayerNorm and a linear head (untied by default, ``tie_weights`` ties it to
the token embedding). Init: N(0, init_std) for linear and embedding weights, zero biases,
residual output projections scaled by 1/sqrt(2 n_layer). Output: logits [B, T, V].

Width: ``d_model`` and ``d_ff`` (null: 4 d_model) are multiplied by ``width`` (the
over-parameterization knob shared with the other models); d_model is rounded to a multiple
of ``n_head``. ``block_size`` (null: the data's window length ``x_train.shape[1]``) is the
longest sequence the model accepts.

``build_last_layer``: the "train only the last layer" model of Kunstner et al. 2024: token +
positional embedding, ``n_layer`` causal self-attention layers with residual connections,
no MLP, no LayerNorm, no dropout, then the linear head. Everything but the head is frozen
(``requires_grad = False``) and evaluated without autograd, so training it is a convex
multinomial logistic regression on fixed random features. The frozen embeddings are drawn
from N(0, emb_std^2) and the frozen attention weights from N(0, 1/d_model) so that the
features are O(1); the head uses N(0, init_std).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _block_size(cfg: dict, data) -> int:
    bs = cfg.get("block_size")
    if bs is None:
        bs = int(data.x_train.shape[1])
    return int(bs)


def _vocab(data) -> int:
    if data.num_classes is None:
        raise ValueError("transformer needs data.num_classes (the vocabulary size)")
    if data.task != "lm":
        raise ValueError(f"transformer is a language model; data.task is '{data.task}'")
    return int(data.num_classes)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos position table of Vaswani et al. 2017, shape [n_pos, dim]."""
    pos = torch.arange(n_pos, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_pos, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class PositionalEmbedding(nn.Module):
    def __init__(self, kind: str, block_size: int, dim: int):
        super().__init__()
        if kind not in ("learned", "sinusoidal", "none"):
            raise ValueError(f"model.pos must be one of learned, sinusoidal, none; got '{kind}'")
        self.kind, self.block_size = kind, block_size
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(block_size, dim))
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(block_size, dim), persistent=False)

    def forward(self, T: int) -> torch.Tensor | float:
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds the model's block_size {self.block_size}")
        if self.kind == "learned":
            return self.weight[:T]
        if self.kind == "sinusoidal":
            return self.table[:T]
        return 0.0


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} is not a multiple of n_head {n_head}")
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        shape = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float, bias: bool):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=bias)
        self.proj = nn.Linear(d_ff, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, d_model, n_head, d_ff, dropout, bias):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout, bias)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, d_ff, dropout, bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLM(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 2, n_head: int = 4,
                 d_model: int = 128, d_ff: int = 512, dropout: float = 0.0, pos: str = "learned",
                 tie_weights: bool = False, bias: bool = True, head_bias: bool = False,
                 init_std: float = 0.02):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = PositionalEmbedding(pos, block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_head, d_ff, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=head_bias)
        # init
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                nn.init.normal_(mod.weight, 0.0, init_std)
                if getattr(mod, "bias", None) is not None:
                    nn.init.zeros_(mod.bias)
        if pos == "learned":
            nn.init.normal_(self.pos_emb.weight, 0.0, init_std)
        for blk in self.blocks:
            for proj in (blk.attn.proj, blk.mlp.proj):
                nn.init.normal_(proj.weight, 0.0, init_std / math.sqrt(2 * max(n_layer, 1)))
        if tie_weights:
            self.head.weight = self.tok_emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.drop(self.tok_emb(idx) + self.pos_emb(T))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


class LastLayerLM(nn.Module):
    """Frozen embeddings + attention (no MLP, no LayerNorm, no dropout); trainable head."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 1, n_head: int = 1,
                 d_model: int = 128, pos: str = "sinusoidal", bias: bool = True,
                 head_bias: bool = True, emb_std: float = 1.0, init_std: float = 0.02):
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = PositionalEmbedding(pos, block_size, d_model)
        self.attn = nn.ModuleList(CausalSelfAttention(d_model, n_head, 0.0, bias) for _ in range(n_layer))
        self.head = nn.Linear(d_model, vocab_size, bias=head_bias)
        nn.init.normal_(self.tok_emb.weight, 0.0, emb_std)
        if pos == "learned":
            nn.init.normal_(self.pos_emb.weight, 0.0, emb_std)
        for a in self.attn:
            for lin in (a.qkv, a.proj):
                nn.init.normal_(lin.weight, 0.0, 1.0 / math.sqrt(d_model))
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        nn.init.normal_(self.head.weight, 0.0, init_std)
        if self.head.bias is not None:
            nn.init.zeros_(self.head.bias)
        for name, p in self.named_parameters():
            if not name.startswith("head."):
                p.requires_grad_(False)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = self.tok_emb(idx) + self.pos_emb(idx.shape[1])
            for a in self.attn:
                x = x + a(x)
        return x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx))


def _width(cfg: dict) -> tuple[int, int, int]:
    n_head = int(cfg.get("n_head", 4))
    w = float(cfg.get("width", 1.0))
    if w <= 0:
        raise ValueError(f"model.width must be > 0; got {w}")
    d_model = n_head * max(1, round(int(cfg.get("d_model", 128)) * w / n_head))
    d_ff = cfg.get("d_ff")
    d_ff = 4 * d_model if d_ff is None else max(1, round(int(d_ff) * w))
    return n_head, d_model, d_ff


def build(cfg: dict, data) -> nn.Module:
    n_head, d_model, d_ff = _width(cfg)
    return TransformerLM(
        vocab_size=_vocab(data), block_size=_block_size(cfg, data),
        n_layer=int(cfg.get("n_layer", 2)), n_head=n_head, d_model=d_model, d_ff=d_ff,
        dropout=float(cfg.get("dropout", 0.0)), pos=cfg.get("pos", "learned"),
        tie_weights=bool(cfg.get("tie_weights", False)), bias=bool(cfg.get("bias", True)),
        head_bias=bool(cfg.get("head_bias", False)), init_std=float(cfg.get("init_std", 0.02)))


def build_last_layer(cfg: dict, data) -> nn.Module:
    n_head, d_model, _ = _width({**cfg, "n_head": cfg.get("n_head", 1), "d_ff": 1})
    return LastLayerLM(
        vocab_size=_vocab(data), block_size=_block_size(cfg, data),
        n_layer=int(cfg.get("n_layer", 1)), n_head=n_head, d_model=d_model,
        pos=cfg.get("pos", "sinusoidal"), bias=bool(cfg.get("bias", True)),
        head_bias=bool(cfg.get("head_bias", True)), emb_std=float(cfg.get("emb_std", 1.0)),
        init_std=float(cfg.get("init_std", 0.02)))
