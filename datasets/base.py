"""The one loader contract every dataset follows.

A loader is a function ``load(cfg: dict, data_dir: pathlib.Path, gen: torch.Generator) -> Data``.
``cfg`` is the resolved ``dataset`` config group as a plain dict (it always has ``name``),
``data_dir`` is ``paths.data_dir`` and ``gen`` is the *data* random stream (CPU generator,
seeded from the run seed; use it for every random choice: synthetic draws, subsets, barcodes).
Loaders return CPU tensors; the trainer moves the whole split to the run's device once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


class DataMissingError(RuntimeError):
    """A data file is absent and cannot be downloaded (offline). The message is one line
    saying which file, where it comes from and where to put it."""


class DataError(ValueError):
    """A data file is there but unusable (truncated, empty, not the expected format), or a
    loader setting does not fit the data. The message is one line naming the file (or key)
    and the fix; ``datasets.load`` turns every loader ValueError into one."""


@dataclass
class Data:
    # Training split. For images x is float (already normalised) [N, C, H, W] or [N, D];
    # for language x is int64 token windows [N, T] and y the next-token targets [N, T].
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: Optional[torch.Tensor] = None
    y_test: Optional[torch.Tensor] = None
    # 'regression' (loss 0.5*||pred-y||^2 averaged over samples), 'classification'
    # (cross-entropy) or 'lm' (cross-entropy averaged over every token).
    task: str = "classification"
    num_classes: Optional[int] = None        # classes or vocabulary size
    input_dim: Optional[int] = None          # flat feature count (linear/MLP models)
    input_shape: Optional[tuple] = None      # per-sample shape, e.g. (1, 28, 28)
    # Scalars and small lists recorded with the run (config.json "data_info"):
    # f_star, L, L_max, mu, rho for lstsq; class_counts for classification/lm; vocab size ...
    info: dict = field(default_factory=dict)
    # Optional on-device training augmentation: augment(x_batch, generator) -> x_batch.
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def to(self, device) -> "Data":
        moved = {}

        def move(t):   # a split shared by train and test (zipf_linear) is moved once
            if t is None:
                return None
            if id(t) not in moved:
                moved[id(t)] = t.to(device)
            return moved[id(t)]

        self.x_train, self.y_train = move(self.x_train), move(self.y_train)
        self.x_test, self.y_test = move(self.x_test), move(self.y_test)
        return self
