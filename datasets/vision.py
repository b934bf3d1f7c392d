"""Image classification loaders: MNIST, CIFAR-10, CIFAR-100 and any ImageFolder tree.

Every loader follows ``datasets/base.py``: ``load_*(cfg, data_dir, gen) -> Data`` with the whole
split as CPU tensors, task ``'classification'``, images float32 ``[N, C, H, W]`` normalised once.

On-disk formats are torchvision's, read directly (no per-sample ``Dataset`` objects):

- MNIST: ``<data_dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (IDX; the
  ``.gz`` files are accepted too).
- CIFAR-10: ``<data_dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (pickles with
  ``data`` uint8 [N, 3072] and ``labels``).
- CIFAR-100: ``<data_dir>/cifar-100-python/{train,test}`` (``fine_labels``).
- imagefolder: ``cfg['path']`` (absolute or relative to ``data_dir``) with ``train/<class>/*``
  and ``test/<class>/*`` image files. Decoded once to uint8 and cached as a ``.pt`` file (see
  ``cache_root``); the run records ``info['source']`` = the folder and ``info['lossy_copy']``
  (True when the path contains ``jpeg``: e.g. the JPEG copy of CIFAR-10 is *not* CIFAR-10).

A missing file is downloaded with torchvision's helpers when ``cfg['download']`` is true;
otherwise, or when that fails (offline), ``DataMissingError`` says in one line which file is
missing, the URL it comes from and the directory to put it in.

Config knobs shared by the loaders (the yamls in ``conf/dataset`` list them with defaults):

- ``normalize``: ``standard`` (the data set's usual mean/std: MNIST (0.1307, 0.3081), CIFAR
  per-channel), ``half`` (mean = std = 0.5 in every channel, i.e. [-1, 1]), ``computed``
  (per-channel mean/std of the training split actually loaded) or ``none`` (x / 255).
- ``subset``: null = the whole training split; an int = that many training samples chosen with
  ``gen``. ``subset_mode: stratified`` (default) keeps the class proportions (largest-remainder
  rounding, random samples inside each class); ``random`` draws uniformly without replacement.
  ``test_subset`` does the same for the test split (drawn after the training subset).
- ``augment``: random crop with zero padding (4 pixels on 32x32 images, ``H // 8`` in general;
  the padding is black, i.e. 0 before normalisation) plus a horizontal flip for CIFAR/imagefolder
  (MNIST: crop only, digits are not mirror symmetric). Implemented on a whole batch on its
  device with a ``torch.Generator``: ``Data.augment(x, generator) -> x``.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import time
import zlib
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from datasets.base import Data, DataError, DataMissingError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------
# Official sources (the same as torchvision's datasets).
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {  # uncompressed name -> md5 of the .gz archive
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"

# Normalisation constants ("standard"): mean and std of the training set, per channel.
MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
NORMALIZE_CHOICES = ("standard", "half", "computed", "none")
SUBSET_MODES = ("stratified", "random")


# ----------------------------------------------------------------------------------------
# Download helpers
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _download_and_extract(url: str, root: Path, md5: Optional[str]) -> None:
    """torchvision's helper (looked up at call time so tests can replace it)."""
    from torchvision.datasets import utils as tv_utils

    root.mkdir(parents=True, exist_ok=True)
    tv_utils.download_and_extract_archive(url, download_root=str(root), md5=md5)


def _missing(what: str, path: Path, url: str, put_in: str, reason: str = "") -> DataMissingError:
    extra = f" (download failed: {_one_line(reason)})" if reason else ""
    return DataMissingError(f"{what}: missing file {path}; it comes from {url}; {put_in}{extra}")


# ----------------------------------------------------------------------------------------
# MNIST (IDX)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) into a tensor of its stored shape."""
    opener = gzip.open if str(path).endswith(".gz") else open
    fix = "delete it and download it again (dataset.download=true) or copy the original file"
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as e:    # a truncated or corrupt .gz
        raise DataError(f"{path}: unreadable ({type(e).__name__}: {_one_line(e)}); {fix}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); {fix}")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - offset != count * dtype.itemsize:
        raise DataError(f"{path}: size {len(raw)} does not match the IDX header shape {shape} "
                        f"(truncated?); {fix}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))


def _mnist_file(raw_dir: Path, name: str, download: bool) -> Path:
    for candidate in (raw_dir / name, raw_dir / (name + ".gz")):
        if candidate.is_file():
            return candidate
    url = MNIST_MIRRORS[0] + name + ".gz"
    reason = ""
    if download:
        reasons = []
        for mirror in MNIST_MIRRORS:
            try:
                _download_and_extract(mirror + name + ".gz", raw_dir, MNIST_FILES[name])
            except Exception as e:  # offline, checksum, ...
                reasons.append(f"{mirror}: {type(e).__name__}: {e}")
                continue
            for candidate in (raw_dir / name, raw_dir / (name + ".gz")):
                if candidate.is_file():
                    return candidate
        reason = "; ".join(reasons) or "no file after download"
    raise _missing("MNIST", raw_dir / name, url, f"put it (gunzipped or as .gz) in {raw_dir}", reason)


def mnist_uint8(data_dir: Path, download: bool = False):
    """(x_train, y_train, x_test, y_test): uint8 [N, 1, 28, 28] and int64 labels."""
    raw_dir = Path(data_dir) / "MNIST" / "raw"
    out = []
    for split in ("train", "t10k"):
        x = read_idx(_mnist_file(raw_dir, f"{split}-images-idx3-ubyte", download))
        y = read_idx(_mnist_file(raw_dir, f"{split}-labels-idx1-ubyte", download))
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"MNIST {split}: inconsistent IDX shapes {tuple(x.shape)} / {tuple(y.shape)}")
        out += [x.to(torch.uint8).unsqueeze(1).contiguous(), y.to(torch.int64)]
    return tuple(out)


# ----------------------------------------------------------------------------------------
# CIFAR (python pickles)
def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_files(data_dir: Path, which: int, download: bool):
    if which == 10:
        folder, url, md5 = Path(data_dir) / "cifar-10-batches-py", CIFAR10_URL, CIFAR10_MD5
        train, test, meta, label_key = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "labels"
    else:
        folder, url, md5 = Path(data_dir) / "cifar-100-python", CIFAR100_URL, CIFAR100_MD5
        train, test, meta, label_key = ["train"], ["test"], "meta", "fine_labels"
    missing = [n for n in train + test if not (folder / n).is_file()]
    if missing:
        reason = ""
        if download:
            try:
                _download_and_extract(url, Path(data_dir), md5)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
            missing = [n for n in train + test if not (folder / n).is_file()]
            reason = reason or ("no file after download" if missing else "")
        if missing:
            raise _missing(f"CIFAR-{which}", folder / missing[0], url,
                           f"extract that archive in {data_dir} (it creates {folder.name}/)", reason)
    return folder, train, test, meta, label_key


def cifar_uint8(data_dir: Path, which: int = 10, download: bool = False):
    """(x_train, y_train, x_test, y_test, class_names): uint8 [N, 3, 32, 32], int64 labels."""
    folder, train, test, meta, label_key = _cifar_files(data_dir, which, download)
    out = []
    for names in (train, test):
        xs, ys = [], []
        for n in names:
            d = _unpickle(folder / n)
            data = np.asarray(d["data"], dtype=np.uint8)
            xs.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
            ys.append(torch.as_tensor(np.asarray(d[label_key], dtype=np.int64)))
        out += [torch.cat(xs), torch.cat(ys)]
    classes = None
    if (folder / meta).is_file():
        m = _unpickle(folder / meta)
        key = "label_names" if which == 10 else "fine_label_names"
        if key in m:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in m[key]]
    return (*out, classes)


# ----------------------------------------------------------------------------------------
# ImageFolder trees (decoded once, cached)
def _is_writable_dir(path: Path) -> bool:
    """Writable by permission bits too: root ignores r-x modes, but a read-only shared data
    folder should stay untouched even for root."""
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK) and bool(st.st_mode & 0o222)


def _inside_repo(path: Path) -> bool:
    try:
        path.resolve().relative_to(REPO_ROOT)
        return True
    except ValueError:
        return False


def cache_root(data_dir: Path) -> Path:
    """``$OPTSUITE_CACHE_DIR`` if set, else ``<data_dir>/.cache/optsuite`` when data_dir is
    writable and outside the repository, else ``~/.cache/optsuite``."""
    env = os.environ.get("OPTSUITE_CACHE_DIR")
    if env:
        return Path(env)
    data_dir = Path(data_dir)
    if _is_writable_dir(data_dir) and not _inside_repo(data_dir):
        return data_dir / ".cache" / "optsuite"
    return Path.home() / ".cache" / "optsuite"


def _list_images(split_dir: Path, classes: Optional[Sequence[str]]):
    if classes is None:
        classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    files, labels = [], []
    for e in sorted((e for e in os.scandir(split_dir) if e.is_dir()), key=lambda e: e.name):
        if e.name not in index:
            raise ValueError(f"imagefolder: class folder {e.path} is not among the training classes")
        for root, _, names in sorted(os.walk(e.path, followlinks=True)):
            for n in sorted(names):
                if n.lower().endswith(IMG_EXTENSIONS):
                    files.append(os.path.join(root, n))
                    labels.append(index[e.name])
    return list(classes), files, labels


_TV_DECODABLE = (".jpg", ".jpeg", ".png", ".webp")


def _decode_one(path: str, grayscale: bool, size: Optional[int]) -> np.ndarray:
    """uint8 [C, H, W]. torchvision.io decodes JPEG/PNG/WebP (about 3x faster than PIL); other
    formats, or files it rejects, go through PIL."""
    a = None
    if path.lower().endswith(_TV_DECODABLE):
        try:
            from torchvision.io import ImageReadMode, decode_image, read_file

            t = decode_image(read_file(path), mode=ImageReadMode.GRAY if grayscale else ImageReadMode.RGB)
            if size is not None and tuple(t.shape[1:]) != (size, size):
                t = torch.nn.functional.interpolate(t[None].float(), size=(size, size), mode="bilinear",
                                                    antialias=True, align_corners=False)[0]
                t = t.round_().clamp_(0, 255).to(torch.uint8)
            a = t.numpy()
        except (RuntimeError, ValueError):
            a = None
    if a is None:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("L" if grayscale else "RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return a


def _decode_all(files: list, grayscale: bool, size: Optional[int]) -> torch.Tensor:
    """Decode every file into one uint8 [N, C, H, W] array (sequential: decoding holds the GIL,
    threads were slower here)."""
    first = _decode_one(files[0], grayscale, size)
    out = np.empty((len(files),) + first.shape, dtype=np.uint8)
    out[0] = first
    for i in range(1, len(files)):
        a = _decode_one(files[i], grayscale, size)
        if a.shape != first.shape:
            raise ValueError(
                f"imagefolder: {files[i]} has shape {a.shape[1:]} but {files[0]} has {first.shape[1:]};"
                " set dataset.image_size to resize every image"
            )
        out[i] = a
    return torch.from_numpy(out)


def imagefolder_uint8(root: Path, data_dir: Path, grayscale: bool = False, image_size: Optional[int] = None,
                      cache: bool = True):
    """(x_train, y_train, x_test, y_test, classes, cache_hit) for ``root/{train,test}/<class>/*``."""
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir():
        raise DataMissingError(
            f"imagefolder: missing folder {train_dir}; it comes from the user (an ImageFolder tree"
            f" with train/<class>/*.jpg and test/<class>/*.jpg); put it in {root}"
        )
    classes, f_tr, y_tr = _list_images(train_dir, None)
    _, f_te, y_te = _list_images(test_dir, classes) if test_dir.is_dir() else (classes, [], [])
    if not f_tr:
        raise DataMissingError(f"imagefolder: no image files under {train_dir}; put class folders of images in {train_dir}")
    # The cache key covers the file list with sizes and modification times and the decode options.
    h = hashlib.sha256(repr((str(root.resolve()), grayscale, image_size, classes)).encode())
    for f in f_tr + f_te:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cache_file = cache_root(data_dir) / "imagefolder" / f"{root.name}-{h.hexdigest()[:16]}.pt"
    if cache and cache_file.is_file():
        try:
            c = torch.load(cache_file, map_location="cpu", weights_only=True)
            return c["x_train"], c["y_train"], c["x_test"], c["y_test"], classes, True
        except Exception as e:  # corrupt or incompatible cache: decode again
            log.warning("imagefolder cache %s unreadable (%s); decoding again", cache_file, _one_line(e))
    x_tr = _decode_all(f_tr, grayscale, image_size)
    x_te = _decode_all(f_te, grayscale, image_size) if f_te else torch.zeros((0,) + tuple(x_tr.shape[1:]), dtype=torch.uint8)
    if x_te.shape[1:] != x_tr.shape[1:]:
        raise ValueError(f"imagefolder: test images {tuple(x_te.shape[1:])} differ from train images {tuple(x_tr.shape[1:])}")
    y_tr, y_te = torch.tensor(y_tr, dtype=torch.int64), torch.tensor(y_te, dtype=torch.int64)
    if cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
            torch.save({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, tmp)
            os.replace(tmp, cache_file)
        except OSError as e:
            log.warning("imagefolder: could not write cache %s (%s)", cache_file, _one_line(e))
    return x_tr, y_tr, x_te, y_te, classes, False


# ----------------------------------------------------------------------------------------
# Shared post-processing: subsets, normalisation, augmentation
def choose_subset(y: torch.Tensor, n: Optional[int], gen: torch.Generator, mode: str = "stratified") -> Optional[torch.Tensor]:
    """Sorted indices of ``n`` samples (None = keep all). ``stratified`` keeps class
    proportions by largest-remainder rounding; ``random`` is uniform without replacement."""
    N = int(y.shape[0])
    if n is None or int(n) >= N:
        return None
    n = int(n)
    if n <= 0:
        raise ValueError(f"subset must be positive or null, got {n}")
    if mode not in SUBSET_MODES:
        raise ValueError(f"subset_mode '{mode}' unknown; valid: {', '.join(SUBSET_MODES)}")
    if mode == "random":
        return torch.randperm(N, generator=gen)[:n].sort().values
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * n / N
    take = exact.floor().long()
    rest = n - int(take.sum())
    if rest > 0:  # largest remainders first, ties by class order
        order = torch.argsort(-(exact - take.double()), stable=True)[:rest]
        take[order] += 1
    perm = torch.randperm(N, generator=gen)
    ys = y[perm]
    picked = [perm[ys == c][: int(k)] for c, k in zip(classes.tolist(), take.tolist())]
    return torch.cat(picked).sort().values


def norm_stats(normalize: str, standard, x_uint8: torch.Tensor):
    """(mean, std) per channel in [0, 1] units for the ``normalize`` choice."""
    C = int(x_uint8.shape[1])
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(f"normalize '{normalize}' unknown; valid: {', '.join(NORMALIZE_CHOICES)}")
    if normalize == "standard":
        if standard is None:
            raise ValueError("normalize 'standard' has no fixed statistics here; valid: computed, half, none")
        mean, std = standard
    elif normalize == "half":
        mean, std = (0.5,) * C, (0.5,) * C
    elif normalize == "none":
        mean, std = (0.0,) * C, (1.0,) * C
    else:  # computed on the training split, per channel, exactly from the 256-bin histogram
        mean, std = [], []
        levels = torch.arange(256, dtype=torch.float64) / 255.0
        for c in range(C):
            h = torch.bincount(x_uint8[:, c].reshape(-1), minlength=256).double()
            n = float(h.sum())
            m = float((h * levels).sum() / n)
            var = float((h * (levels - m) ** 2).sum() / max(n - 1.0, 1.0))
            mean.append(m)
            std.append(max(var ** 0.5, 1e-8))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalize_uint8(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 (x/255 - mean) / std, one pass per channel block."""
    C = x.shape[1]
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(1, C, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32).view(1, C, 1, 1)
    out = x.to(torch.float32)
    out.mul_(scale).sub_(shift)
    return out


def make_crop_flip(pad: int, flip: bool, fill: Sequence[float]) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Batch augmentation: random crop after padding every side with ``fill`` (per channel, the
    normalised value of a black pixel) and, if ``flip``, a horizontal flip with probability 1/2.
    Works on any device; random numbers come from ``generator`` (drawn on its device)."""
    fill_t = torch.tensor(list(fill), dtype=torch.float32)

    def augment(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        B, C, H, W = x.shape
        dev = generator.device if generator is not None else x.device
        dy = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=dev).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=dev).to(x.device)
        if flip:
            fl = torch.randint(0, 2, (B,), generator=generator, device=dev).to(x.device).bool()
        padded = x.new_empty(B, C, H + 2 * pad, W + 2 * pad)
        padded[:] = fill_t.to(device=x.device, dtype=x.dtype).view(1, C, 1, 1)
        padded[:, :, pad:pad + H, pad:pad + W] = x
        ar_h = torch.arange(H, device=x.device)
        ar_w = torch.arange(W, device=x.device)
        rows = dy[:, None] + ar_h[None]                                   # [B, H]
        cols_w = ar_w.flip(0) if flip else ar_w
        cols = dx[:, None] + ar_w[None]                                   # [B, W]
        if flip:
            cols = torch.where(fl[:, None], dx[:, None] + cols_w[None], cols)
        b = torch.arange(B, device=x.device).view(B, 1, 1, 1)
        c = torch.arange(C, device=x.device).view(1, C, 1, 1)
        return padded[b, c, rows.view(B, 1, H, 1), cols.view(B, 1, 1, W)]

    return augment


def _class_counts(y: torch.Tensor, num_classes: int) -> list:
    return torch.bincount(y, minlength=num_classes).tolist()


def _check_keys(cfg: dict, allowed: Sequence[str], loader: str) -> None:
    unknown = sorted(set(cfg) - set(allowed) - {"name"})
    if unknown:
        raise ValueError(f"{loader}: unknown dataset key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")


COMMON_KEYS = ("download", "normalize", "subset", "subset_mode", "test_subset", "augment")


def build_data(x_tr, y_tr, x_te, y_te, cfg: dict, gen: torch.Generator, standard, num_classes: int,
               info: dict, flip: bool) -> Data:
    """Subset, normalise and package uint8 splits as a ``Data``."""
    mode = cfg.get("subset_mode", "stratified")
    idx = choose_subset(y_tr, cfg.get("subset"), gen, mode)
    if idx is not None:
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    if x_te is not None:
        idx = choose_subset(y_te, cfg.get("test_subset"), gen, mode)
        if idx is not None:
            x_te, y_te = x_te[idx], y_te[idx]
    mean, std = norm_stats(cfg.get("normalize", "standard"), standard, x_tr)
    xf_tr = normalize_uint8(x_tr, mean, std)
    xf_te = normalize_uint8(x_te, mean, std) if x_te is not None else None
    C, H, W = (int(s) for s in x_tr.shape[1:])
    augment = None
    if cfg.get("augment", False):
        pad = max(1, H // 8)
        augment = make_crop_flip(pad, flip, [(0.0 - m) / s for m, s in zip(mean, std)])
    info = dict(info)
    info.update(
        class_counts=_class_counts(y_tr, num_classes),
        norm_mean=list(mean),
        norm_std=list(std),
        n_train=int(y_tr.shape[0]),
        n_test=0 if y_te is None else int(y_te.shape[0]),
    )
    return Data(
        x_train=xf_tr, y_train=y_tr, x_test=xf_te, y_test=y_te, task="classification",
        num_classes=num_classes, input_dim=C * H * W, input_shape=(C, H, W), info=info, augment=augment,
    )


# ----------------------------------------------------------------------------------------
# Loaders (registry entries)
def load_mnist(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    _check_keys(cfg, COMMON_KEYS, "mnist")
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = mnist_uint8(Path(data_dir), bool(cfg.get("download", False)))
    info = {"source": str(Path(data_dir) / "MNIST" / "raw"), "dataset": "MNIST",
            "classes": [str(i) for i in range(10)]}
    data = build_data(x_tr, y_tr, x_te, y_te, cfg, gen, MNIST_STATS, 10, info, flip=False)
    log.info("mnist: %d train / %d test loaded in %.2fs", data.n_train, data.info["n_test"], time.perf_counter() - t0)
    return data


def _load_cifar(cfg: dict, data_dir, gen: torch.Generator, which: int) -> Data:
    _check_keys(cfg, COMMON_KEYS, f"cifar{which}")
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te, classes = cifar_uint8(Path(data_dir), which, bool(cfg.get("download", False)))
    folder = "cifar-10-batches-py" if which == 10 else "cifar-100-python"
    info = {"source": str(Path(data_dir) / folder), "dataset": f"CIFAR-{which}"}
    if classes:
        info["classes"] = classes
    stats = CIFAR10_STATS if which == 10 else CIFAR100_STATS
    data = build_data(x_tr, y_tr, x_te, y_te, cfg, gen, stats, which, info, flip=True)
    log.info("cifar%d: %d train / %d test loaded in %.2fs", which, data.n_train, data.info["n_test"], time.perf_counter() - t0)
    return data


def load_cifar10(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    return _load_cifar(cfg, data_dir, gen, 10)


def load_cifar100(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    return _load_cifar(cfg, data_dir, gen, 100)


IMAGEFOLDER_KEYS = ("path", "normalize", "subset", "subset_mode", "test_subset", "augment", "grayscale",
                    "image_size", "cache")


def resolve_imagefolder_path(cfg: dict, data_dir) -> Path:
    if not cfg.get("path"):
        raise ValueError("imagefolder: dataset.path is required (a folder with train/ and test/ class folders)")
    p = Path(os.path.expanduser(str(cfg["path"])))
    return Path(os.path.abspath(p if p.is_absolute() else Path(data_dir) / p))


def load_imagefolder(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    _check_keys(cfg, IMAGEFOLDER_KEYS, "imagefolder")
    t0 = time.perf_counter()
    root = resolve_imagefolder_path(cfg, data_dir)
    x_tr, y_tr, x_te, y_te, classes, hit = imagefolder_uint8(
        root, Path(data_dir), bool(cfg.get("grayscale", False)), cfg.get("image_size"), bool(cfg.get("cache", True))
    )
    info = {"source": str(root), "lossy_copy": "jpeg" in str(root).lower(), "classes": classes,
            "dataset": f"imagefolder:{root.name}"}
    if len(x_te) == 0:
        x_te, y_te = None, None
    data = build_data(x_tr, y_tr, x_te, y_te, cfg, gen, None, len(classes), info, flip=True)
    log.info("imagefolder %s: %d train / %d test loaded in %.2fs (cache %s)", root, data.n_train,
             data.info["n_test"], time.perf_counter() - t0, "hit" if hit else "miss")
    return data
