"""Independent random streams derived from the run seed.

data:  synthetic draws, subsets, barcodes (loaders get a CPU generator)
init:  model initialisation (global torch RNG seeded just before models.build)
order: batch permutations and augmentation (a generator on the run's device)
None depends on the optimizer, so every optimizer sees the same data, init and batches.
"""
from __future__ import annotations

import hashlib

import torch

STREAMS = ("data", "init", "order")


def stream_seed(seed: int, stream: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{stream}".encode()).digest()[:8], "little") >> 1


def generator(seed: int, stream: str, device="cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, stream))
    return g
