"""Dataset registry: ``dataset.name`` -> loader. See ``datasets/base.py`` for the contract.

Loaders are imported lazily so that a missing optional dependency of one data set does
not break the others.
"""
from __future__ import annotations

import importlib
import pickle
import zlib
from pathlib import Path

import torch

from datasets.base import Data, DataError, DataMissingError

LOADERS = {
    "lstsq": "datasets.lstsq:load",
    "linclass": "datasets.linclass:load",
    "matfac": "datasets.matfac:load",
    "zipf_linear": "datasets.zipf_linear:load",
    "mnist": "datasets.vision:load_mnist",
    "cifar10": "datasets.vision:load_cifar10",
    "cifar100": "datasets.vision:load_cifar100",
    "imagefolder": "datasets.vision:load_imagefolder",
    "mnist_barcoded": "datasets.barcoded:load_mnist_barcoded",
    "cifar10_barcoded": "datasets.barcoded:load_cifar10_barcoded",
    "tinyshakespeare": "datasets.text:load_tinyshakespeare",
    "wikitext2": "datasets.text:load_wikitext2",
    "ptb": "datasets.text:load_ptb",
}


def get_loader(name: str):
    if name not in LOADERS:
        raise KeyError(f"unknown dataset '{name}'; valid: {', '.join(sorted(LOADERS))}")
    module, func = LOADERS[name].split(":")
    return getattr(importlib.import_module(module), func)


def load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    """The loader's Data; a file that is there but unusable, or a setting that does not fit
    the data, is one ``DataError`` line (the loaders' ValueErrors and the decoders' errors
    would otherwise reach the user as a traceback, after the run folder was made)."""
    try:
        return get_loader(cfg["name"])(cfg, Path(data_dir), gen)
    except (DataError, DataMissingError):
        raise
    except (ValueError, EOFError, OSError, zlib.error, pickle.UnpicklingError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"dataset {cfg['name']}: {msg}") from None


__all__ = ["Data", "DataError", "DataMissingError", "LOADERS", "get_loader", "load"]
