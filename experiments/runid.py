"""Run identity: which parts of a config decide what a run computes.

``config_id`` hashes the canonical JSON of the semantic config (dataset, model, optimizer,
train, after the profile has been applied), the digest of the code of the run's optimizer and
model (``experiments.code_identity``: editing a method re-runs exactly its runs; comments do
not count) and ``KEY_VERSION``; ``run_id`` adds the seed.
Launcher, logger, paths, device, tags and the figure name are deliberately left out, so the
same run requested by two figures or from two machines is stored once.
"""
from __future__ import annotations

import hashlib
import json
import math

# Bump when a change to the code outside the optimizer and model files changes what an existing
# config computes (a bug fix in a loader or the trainer); every run is then recomputed instead
# of silently reused. 2: the optimizer's and model's code digests joined the key.
KEY_VERSION = 2
SEMANTIC_GROUPS = ("dataset", "model", "optimizer", "train")
# Keys inside semantic groups that change how a run is executed, not what it computes.
NON_SEMANTIC = {"train": ("eval_batch_size", "checkpoint_every_s", "save_model", "compile")}
# Keys added after runs were stored, with the value that reproduces what those runs computed:
# at that value they are left out of the hash, so existing run ids stand; any other value is a
# new run. (train.sampling: every run before it sampled by per-epoch reshuffling.)
ADDED_AT_DEFAULT = {"train": {"sampling": "reshuffle"}}


def canonical(value):
    """Normalise a config value so equal meanings give equal JSON (1e-3 == 0.001, 2 == 2.0)."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        f = float(value)
        if math.isfinite(f) and f == int(f) and abs(f) < 2**53:
            return int(f)          # 2.0 and 2 are the same setting
        return repr(f)             # shortest round-trip repr: 1e-3 and 0.001 -> '0.001'
    raise TypeError(f"config value of type {type(value).__name__} cannot be hashed: {value!r}")


def semantic_config(cfg: dict) -> dict:
    out = {g: dict(cfg[g]) for g in SEMANTIC_GROUPS}
    for group, keys in NON_SEMANTIC.items():
        for k in keys:
            out[group].pop(k, None)
    for group, keys in ADDED_AT_DEFAULT.items():
        for k, default in keys.items():
            if out[group].get(k, default) == default:
                out[group].pop(k, None)
    return out


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_id(cfg: dict) -> str:
    from experiments.code_identity import code_ids
    payload = {"key_version": KEY_VERSION, "config": canonical(semantic_config(cfg)), "code": code_ids(cfg)}
    return _sha(json.dumps(payload, sort_keys=True, separators=(",", ":")))[:16]


def run_id(cfg: dict) -> str:
    return _sha(f"{config_id(cfg)}:{int(cfg['seed'])}")[:16]
