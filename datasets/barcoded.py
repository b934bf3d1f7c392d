"""Heavy-tailed "barcoded" image classification (Kunstner et al. 2024, section 4.1 of
``reference/algorithms.md``), built from MNIST or CIFAR-10.

Construction (every random choice uses the data stream ``gen``):

1. Base set: the base loader's training split (uint8). With ``n_val > 0`` a random permutation
   splits it into ``N - n_val`` training and ``n_val`` validation images (the reference: MNIST
   60k -> 50k train / 10k val). With ``n_val: 0`` the official test split is the validation set.
2. Codes: the ``2**n_barcode_bits`` binary vectors over the first ``n_barcode_bits`` pixels of
   the top row (bit j of code k is ``(k >> j) & 1`` and sits at pixel (0, j)); the all-zero code
   is included like in the reference (its classes look like plain digits with new labels), unless
   ``include_zero_code: false``.
3. Barcoded classes: every (code, base class) pair is one new class, 10 * 2**bits in all.
   ``n_barcoded_classes`` (null = all) keeps that many pairs, drawn uniformly without
   replacement with ``gen``. Class ids: base classes 0..9, then the kept pairs in
   (code, base class) order, ids 10, 11, ...
4. Each barcoded class gets ``per_class`` training images (default 5) drawn without replacement
   from the training images of its base class, and ``per_class_val`` validation images (default
   1) from the validation images of its base class; the code's pixels are set to 255 (all
   channels) *before* normalisation.
5. Normalisation (``normalize``): ``per_pixel`` (default, as the reference: per-pixel mean/std
   over the training set actually returned, pixels whose std is 0 are only centred, i.e.
   divided by 1), or the base data set's ``standard`` / ``half`` / ``computed`` / ``none``
   choices of ``datasets.vision``.

Variants: ``balanced_control: true`` returns the base set only (10 classes, same split and
normalisation rule); ``barcoded_only: true`` returns only the barcoded samples with labels
0..K-1 (the reference's "barcode only" feasibility check).

No augmentation option: crops and flips would move the barcode pixels.

``info``: ``class_counts`` (training frequencies), ``n_base_classes``, ``n_barcoded_classes``,
``class_groups`` (per class: 0 = base class, 1 = barcoded class), ``group_names``, ``source``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from datasets import vision
from datasets.base import Data

log = logging.getLogger(__name__)

KEYS = ("download", "path", "n_val", "n_barcode_bits", "n_barcoded_classes", "per_class", "per_class_val",
        "include_zero_code", "balanced_control", "barcoded_only", "normalize")
NORMALIZE_CHOICES = ("per_pixel",) + vision.NORMALIZE_CHOICES


def _split(x, y, n_val: int, gen: torch.Generator):
    perm = torch.randperm(int(y.shape[0]), generator=gen)
    tr, va = perm[: len(perm) - n_val], perm[len(perm) - n_val:]
    return x[tr], y[tr], x[va], y[va]


def _draw(pool_y: torch.Tensor, cls: torch.Tensor, k: int, gen: torch.Generator, n_base: int, what: str):
    """For each entry of ``cls`` (a base class), ``k`` distinct indices into the pool with that
    label. Returns [len(cls), k]."""
    out = torch.empty(len(cls), k, dtype=torch.int64)
    for c in range(n_base):
        rows = (cls == c).nonzero().flatten()
        if len(rows) == 0 or k == 0:
            continue
        members = (pool_y == c).nonzero().flatten()
        if len(members) < k:
            raise ValueError(f"barcoded: base class {c} has {len(members)} {what} images, fewer than {k} per class")
        # k distinct members per row: the k smallest of uniform keys (rows drawn in blocks to bound memory)
        block = max(1, (1 << 24) // len(members))
        for s in range(0, len(rows), block):
            r = rows[s: s + block]
            keys = torch.rand(len(r), len(members), generator=gen)
            out[r] = members[keys.topk(k, dim=1, largest=False).indices]
    return out


def _stamp(x: torch.Tensor, codes: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Set pixel (0, j) of every channel to 255 where bit j of the sample's code is 1 (in place)."""
    bits = ((codes[:, None] >> torch.arange(n_bits)[None]) & 1).bool()  # [M, n_bits]
    top = x[:, :, 0, :n_bits]                                           # view [M, C, n_bits]
    top[bits[:, None, :].expand_as(top)] = 255
    return x


def _per_pixel_stats(x: torch.Tensor, chunk: int = 4096):
    """Per-pixel mean and std (unbiased) of uint8 images in [0, 1] units. Two passes over chunks
    (sum, then centred squares), each a float32 matmul with a ones vector, accumulated in float64
    (the sums over dim 0 of a uint8 tensor are several times slower)."""
    n, shape = int(x.shape[0]), x.shape[1:]
    flat = x.reshape(n, -1)
    s = torch.zeros(flat.shape[1], dtype=torch.float64)
    for i in range(0, n, chunk):
        c = flat[i: i + chunk].float()
        s += (torch.ones(1, len(c)) @ c)[0].double()
    mean = s / n
    m32 = mean.float()
    ss = torch.zeros_like(s)
    for i in range(0, n, chunk):
        c = flat[i: i + chunk].float().sub_(m32)
        ss += (torch.ones(1, len(c)) @ c.mul_(c))[0].double()
    std = (ss / max(n - 1, 1)).sqrt() / 255.0
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant pixels: centred only
    return (mean / 255.0).view(shape), std.view(shape)


def build_barcoded(x_all, y_all, x_val_src, y_val_src, cfg: dict, gen: torch.Generator, n_base: int,
                   standard, info: dict) -> Data:
    cfg = {k: v for k, v in cfg.items() if k != "name"}
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise ValueError(f"barcoded: unknown dataset key(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
    n_val = int(cfg.get("n_val", 0) or 0)
    n_bits = int(cfg.get("n_barcode_bits", 10))
    per_class = int(cfg.get("per_class", 5))
    per_val = int(cfg.get("per_class_val", 1))
    balanced, only = bool(cfg.get("balanced_control", False)), bool(cfg.get("barcoded_only", False))
    normalize = cfg.get("normalize", "per_pixel")
    if balanced and only:
        raise ValueError("barcoded: balanced_control and barcoded_only cannot both be true")
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"barcoded: normalize '{normalize}' unknown; valid: {', '.join(NORMALIZE_CHOICES)}")
    W = int(x_all.shape[-1])
    if not 1 <= n_bits <= min(W, 24):
        raise ValueError(f"barcoded: n_barcode_bits must be in 1..{min(W, 24)}, got {n_bits}")
    if per_class < 1 or per_val < 0:
        raise ValueError("barcoded: per_class must be >= 1 and per_class_val >= 0")

    # 1. base train / validation split
    if n_val > 0:
        if n_val >= len(y_all):
            raise ValueError(f"barcoded: n_val={n_val} leaves no training images out of {len(y_all)}")
        x_tr, y_tr, x_va, y_va = _split(x_all, y_all, n_val, gen)
    else:
        x_tr, y_tr, x_va, y_va = x_all, y_all, x_val_src, y_val_src

    # 2.-3. the barcoded classes: (code, base class) pairs
    first_code = 0 if cfg.get("include_zero_code", True) else 1
    n_pairs = ((1 << n_bits) - first_code) * n_base
    k = cfg.get("n_barcoded_classes")
    k = n_pairs if k is None else int(k)
    if not 0 <= k <= n_pairs:
        raise ValueError(f"barcoded: n_barcoded_classes must be in 0..{n_pairs} for {n_bits} bits, got {k}")
    pairs = torch.arange(n_pairs) if k == n_pairs else torch.randperm(n_pairs, generator=gen)[:k].sort().values
    codes = pairs // n_base + first_code
    base_of = pairs % n_base

    # 4. barcoded samples (not drawn for the balanced control: its base split is the same)
    if balanced:
        k = 0
        codes, base_of = codes[:0], base_of[:0]
    src_tr = _draw(y_tr, base_of, per_class, gen, n_base, "training")          # [k, per_class]
    src_va = _draw(y_va, base_of, per_val, gen, n_base, "validation")          # [k, per_val]
    bx_tr = _stamp(x_tr[src_tr.flatten()].clone(), codes.repeat_interleave(per_class), n_bits)
    by_tr = torch.arange(k).repeat_interleave(per_class)
    bx_va = _stamp(x_va[src_va.flatten()].clone(), codes.repeat_interleave(per_val), n_bits)
    by_va = torch.arange(k).repeat_interleave(per_val)

    if balanced:
        X_tr, Y_tr, X_va, Y_va, n_classes, groups, nb = x_tr, y_tr, x_va, y_va, n_base, [0] * n_base, n_base
    elif only:
        X_tr, Y_tr, X_va, Y_va, n_classes, groups, nb = bx_tr, by_tr, bx_va, by_va, k, [1] * k, 0
    else:
        X_tr, Y_tr = torch.cat([x_tr, bx_tr]), torch.cat([y_tr, by_tr + n_base])
        X_va, Y_va = torch.cat([x_va, bx_va]), torch.cat([y_va, by_va + n_base])
        n_classes, groups, nb = n_base + k, [0] * n_base + [1] * k, n_base

    # 5. normalisation
    if normalize == "per_pixel":
        mean, std = _per_pixel_stats(X_tr)
        scale, shift = (1.0 / (255.0 * std)).float(), (mean / std).float()  # x/255 -> (x/255 - mean) / std
        xf_tr = X_tr.float().mul_(scale).sub_(shift)
        xf_va = X_va.float().mul_(scale).sub_(shift)
        norm_info = {"normalize": "per_pixel"}
    else:
        mean_c, std_c = vision.norm_stats(normalize, standard, X_tr)
        xf_tr = vision.normalize_uint8(X_tr, mean_c, std_c)
        xf_va = vision.normalize_uint8(X_va, mean_c, std_c)
        norm_info = {"normalize": normalize, "norm_mean": list(mean_c), "norm_std": list(std_c)}

    C, H, W = (int(s) for s in X_tr.shape[1:])
    info = dict(info)
    info.update(
        norm_info,
        class_counts=torch.bincount(Y_tr, minlength=n_classes).tolist(),
        n_base_classes=nb,
        n_barcoded_classes=k,
        n_barcode_bits=n_bits,
        class_groups=groups,
        group_names=["base", "barcoded"],
        variant="balanced_control" if balanced else ("barcoded_only" if only else "base+barcoded"),
        n_train=int(Y_tr.shape[0]),
        n_test=int(Y_va.shape[0]),
    )
    return Data(
        x_train=xf_tr, y_train=Y_tr, x_test=xf_va, y_test=Y_va, task="classification", num_classes=n_classes,
        input_dim=C * H * W, input_shape=(C, H, W), info=info,
    )


def load_mnist_barcoded(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    t0 = time.perf_counter()
    if cfg.get("path"):
        raise ValueError("mnist_barcoded: 'path' is only for cifar10_barcoded; leave it null")
    x_tr, y_tr, x_te, y_te = vision.mnist_uint8(Path(data_dir), bool(cfg.get("download", False)))
    info = {"source": str(Path(data_dir) / "MNIST" / "raw"), "dataset": "MNIST+barcodes"}
    data = build_barcoded(x_tr, y_tr, x_te, y_te, cfg, gen, 10, vision.MNIST_STATS, info)
    log.info("mnist_barcoded: %d train / %d val, %d classes in %.2fs", data.n_train, data.info["n_test"],
             data.num_classes, time.perf_counter() - t0)
    return data


def load_cifar10_barcoded(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    """Base set: the CIFAR-10 pickles, or with ``path`` set an ImageFolder tree of 10 classes
    (e.g. the lossy JPEG copy; then ``info['lossy_copy']`` records it)."""
    t0 = time.perf_counter()
    if cfg.get("path"):
        root = vision.resolve_imagefolder_path(cfg, data_dir)
        x_tr, y_tr, x_te, y_te, classes, _ = vision.imagefolder_uint8(root, Path(data_dir))
        if len(classes) != 10:
            raise ValueError(f"cifar10_barcoded: {root} has {len(classes)} classes, expected 10")
        info = {"source": str(root), "lossy_copy": "jpeg" in str(root).lower(),
                "dataset": f"imagefolder:{root.name}+barcodes"}
    else:
        x_tr, y_tr, x_te, y_te, _ = vision.cifar_uint8(Path(data_dir), 10, bool(cfg.get("download", False)))
        info = {"source": str(Path(data_dir) / "cifar-10-batches-py"), "dataset": "CIFAR-10+barcodes"}
    data = build_barcoded(x_tr, y_tr, x_te, y_te, cfg, gen, 10, vision.CIFAR10_STATS, info)
    log.info("cifar10_barcoded: %d train / %d val, %d classes in %.2fs", data.n_train, data.info["n_test"],
             data.num_classes, time.perf_counter() - t0)
    return data
