"""Vision loaders (datasets/vision.py) and barcoded data sets (datasets/barcoded.py).

Every test writes tiny files in the exact original on-disk formats into tmp_path; nothing is
downloaded (the download helper is replaced by one that fails, and urlopen is blocked). The
last tests use real MNIST from ../shared/data (or $DATA_DIR) and skip cleanly when it is absent.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import datasets
from datasets import barcoded, vision
from datasets.base import Data, DataMissingError

REPO = Path(__file__).resolve().parents[1]


def conf(name: str, **overrides) -> dict:
    cfg = yaml.safe_load((REPO / "conf" / "dataset" / f"{name}.yaml").read_text())
    cfg.update(overrides)
    return cfg


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails like it does offline; the cache goes under tmp dirs only."""
    import urllib.request

    def offline(*a, **k):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    monkeypatch.delenv("OPTSUITE_CACHE_DIR", raising=False)


# ------------------------------------------------------------------------------------------
# writers of the original formats
def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    data = header + arr.tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def tiny_images(n: int, h: int, w: int, c: int, seed: int, zero_top_row: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
    if zero_top_row:
        x[:, :, 0, :] = 0
    return x


def balanced_labels(n: int, k: int, seed: int) -> np.ndarray:
    y = np.arange(n) % k
    np.random.default_rng(seed).shuffle(y)
    return y.astype(np.uint8)


def make_mnist(root: Path, n_train=60, n_test=20, gz=False, zero_top_row=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    xtr = tiny_images(n_train, 28, 28, 1, 1, zero_top_row)[:, 0]
    xte = tiny_images(n_test, 28, 28, 1, 2, zero_top_row)[:, 0]
    ytr, yte = balanced_labels(n_train, 10, 3), balanced_labels(n_test, 10, 4)
    write_idx(raw / "train-images-idx3-ubyte", xtr, gz)
    write_idx(raw / "train-labels-idx1-ubyte", ytr, gz)
    write_idx(raw / "t10k-images-idx3-ubyte", xte, gz)
    write_idx(raw / "t10k-labels-idx1-ubyte", yte, gz)
    return xtr, ytr, xte, yte


def dump_py2_style(path: Path, d: dict) -> None:
    """The CIFAR archives are Python 2 pickles: byte-string keys, numpy uint8 data."""
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def make_cifar10(root: Path, per_batch=8, n_test=10, zero_top_row=False):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x = tiny_images(per_batch, 32, 32, 3, 10 + i, zero_top_row).reshape(per_batch, 3072)
        y = [int(v) for v in balanced_labels(per_batch, 10, 20 + i)]
        dump_py2_style(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": y, b"data": x,
                                                    b"filenames": [b"f.png"] * per_batch})
        xs.append(x), ys.extend(y)
    xt = tiny_images(n_test, 32, 32, 3, 30, zero_top_row).reshape(n_test, 3072)
    yt = [int(v) for v in balanced_labels(n_test, 10, 31)]
    dump_py2_style(folder / "test_batch", {b"batch_label": b"testing batch", b"labels": yt, b"data": xt})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump_py2_style(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch})
    return np.concatenate(xs), np.array(ys), xt, np.array(yt)


def make_cifar100(root: Path, n_train=200, n_test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    x = tiny_images(n_train, 32, 32, 3, 40).reshape(n_train, 3072)
    y = [int(v) for v in np.arange(n_train) % 100]
    dump_py2_style(folder / "train", {b"fine_labels": y, b"coarse_labels": [v // 5 for v in y], b"data": x})
    xt = tiny_images(n_test, 32, 32, 3, 41).reshape(n_test, 3072)
    yt = [int(v) for v in (np.arange(n_test) * 7) % 100]
    dump_py2_style(folder / "test", {b"fine_labels": yt, b"coarse_labels": [v // 5 for v in yt], b"data": xt})
    dump_py2_style(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    return x, np.array(y), xt, np.array(yt)


# ------------------------------------------------------------------------------------------
# MNIST
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_values_shapes_labels(tmp_path, gz):
    xtr, ytr, xte, yte = make_mnist(tmp_path, gz=gz)
    d = datasets.load(conf("mnist"), tmp_path, gen())
    assert isinstance(d, Data) and d.task == "classification"
    assert d.x_train.shape == (60, 1, 28, 28) and d.x_test.shape == (20, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.input_shape == (1, 28, 28) and d.input_dim == 784 and d.num_classes == 10
    assert torch.equal(d.y_train, torch.as_tensor(ytr, dtype=torch.int64))
    assert torch.equal(d.y_test, torch.as_tensor(yte, dtype=torch.int64))
    expect = (torch.as_tensor(xtr, dtype=torch.float32) / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(d.x_train[:, 0], expect, rtol=1e-5, atol=1e-5)
    assert d.info["class_counts"] == [6] * 10
    assert d.info["source"].endswith(os.path.join("MNIST", "raw"))
    assert d.augment is None


def test_mnist_normalize_choices(tmp_path):
    xtr, *_ = make_mnist(tmp_path)
    raw = torch.as_tensor(xtr, dtype=torch.float32)[:, None] / 255
    half = datasets.load(conf("mnist", normalize="half"), tmp_path, gen())
    torch.testing.assert_close(half.x_train, (raw - 0.5) / 0.5)
    assert half.x_train.min() >= -1 and half.x_train.max() <= 1
    none = datasets.load(conf("mnist", normalize="none"), tmp_path, gen())
    torch.testing.assert_close(none.x_train, raw)
    comp = datasets.load(conf("mnist", normalize="computed"), tmp_path, gen())
    assert abs(comp.x_train.mean().item()) < 1e-4 and abs(comp.x_train.std().item() - 1) < 1e-3
    with pytest.raises(ValueError, match="valid: standard, half, computed, none"):
        datasets.load(conf("mnist", normalize="zscore"), tmp_path, gen())


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        vision.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((3, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-1])
    with pytest.raises(ValueError, match="does not match"):
        vision.read_idx(tmp_path / "short")


@pytest.mark.parametrize("download", [False, True])
def test_mnist_missing_file_error_is_one_line(tmp_path, download):
    with pytest.raises(DataMissingError) as e:
        datasets.load(conf("mnist", download=download), tmp_path, gen())
    msg = str(e.value)
    raw = tmp_path / "MNIST" / "raw"
    assert "\n" not in msg
    assert "train-images-idx3-ubyte" in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in msg
    assert str(raw) in msg
    assert ("download failed" in msg) == download


def test_download_success_path_is_used(tmp_path, monkeypatch):
    """When the helper works (online), the loader reads what it extracted."""
    src = tmp_path / "src"
    xtr, ytr, _, _ = make_mnist(src)
    calls = []

    def fake(url, download_root, md5=None, **kw):
        calls.append(url)
        name = url.rsplit("/", 1)[1][:-3]
        Path(download_root).mkdir(parents=True, exist_ok=True)
        (Path(download_root) / name).write_bytes((src / "MNIST" / "raw" / name).read_bytes())

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake)
    d = datasets.load(conf("mnist", download=True), tmp_path / "dl", gen())
    assert len(calls) == 4 and all(c.startswith(vision.MNIST_MIRRORS[0]) for c in calls)
    assert torch.equal(d.y_train, torch.as_tensor(ytr, dtype=torch.int64))


# ------------------------------------------------------------------------------------------
# CIFAR
def test_cifar10_pickles(tmp_path):
    x, y, xt, yt = make_cifar10(tmp_path)
    d = datasets.load(conf("cifar10"), tmp_path, gen())
    assert d.x_train.shape == (40, 3, 32, 32) and d.x_test.shape == (10, 3, 32, 32)
    assert d.input_shape == (3, 32, 32) and d.input_dim == 3072 and d.num_classes == 10
    assert torch.equal(d.y_train, torch.as_tensor(y)) and torch.equal(d.y_test, torch.as_tensor(yt))
    # channel-major rows: the first 1024 bytes are the red plane
    mean = torch.tensor(vision.CIFAR10_STATS[0]).view(1, 3, 1, 1)
    std = torch.tensor(vision.CIFAR10_STATS[1]).view(1, 3, 1, 1)
    expect = (torch.as_tensor(x.reshape(-1, 3, 32, 32), dtype=torch.float32) / 255 - mean) / std
    torch.testing.assert_close(d.x_train, expect, rtol=1e-5, atol=1e-5)
    assert d.x_train[0, 0, 0, 1].item() == pytest.approx((x[0, 1] / 255 - mean[0, 0, 0, 0].item()) / std[0, 0, 0, 0].item(), abs=1e-5)
    assert d.x_train[0, 1, 0, 0].item() == pytest.approx((x[0, 1024] / 255 - mean[0, 1, 0, 0].item()) / std[0, 1, 0, 0].item(), abs=1e-5)
    assert d.info["class_counts"] == torch.bincount(torch.as_tensor(y), minlength=10).tolist()
    assert d.info["classes"][0] == "airplane" and d.info["source"].endswith("cifar-10-batches-py")


def test_cifar100_pickles(tmp_path):
    x, y, xt, yt = make_cifar100(tmp_path)
    d = datasets.load(conf("cifar100", normalize="none"), tmp_path, gen())
    assert d.num_classes == 100 and d.x_train.shape == (200, 3, 32, 32) and d.x_test.shape == (100, 3, 32, 32)
    assert torch.equal(d.y_train, torch.as_tensor(y)) and torch.equal(d.y_test, torch.as_tensor(yt))
    torch.testing.assert_close(d.x_test, torch.as_tensor(xt.reshape(-1, 3, 32, 32), dtype=torch.float32) / 255)
    assert d.info["class_counts"] == [2] * 100 and d.info["classes"][99] == "c99"


@pytest.mark.parametrize("which,missing,url", [
    ("cifar10", "data_batch_1", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    ("cifar100", "train", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
])
@pytest.mark.parametrize("download", [False, True])
def test_cifar_missing_error_is_one_line(tmp_path, which, missing, url, download):
    with pytest.raises(DataMissingError) as e:
        datasets.load(conf(which, download=download), tmp_path, gen())
    msg = str(e.value)
    assert "\n" not in msg and missing in msg and url in msg and str(tmp_path) in msg


def test_cifar_partial_folder_names_first_missing_batch(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataMissingError, match="data_batch_3"):
        datasets.load(conf("cifar10", download=False), tmp_path, gen())


# ------------------------------------------------------------------------------------------
# subsets and augmentation
def test_subsets_stratified_random_and_deterministic(tmp_path):
    make_cifar100(tmp_path, n_train=400, n_test=100)  # 4 per class
    a = datasets.load(conf("cifar100", subset=100, test_subset=30), tmp_path, gen(5))
    b = datasets.load(conf("cifar100", subset=100, test_subset=30), tmp_path, gen(5))
    c = datasets.load(conf("cifar100", subset=100, test_subset=30), tmp_path, gen(6))
    assert a.n_train == 100 and a.x_test.shape[0] == 30
    assert a.info["class_counts"] == [1] * 100  # stratified: proportions kept
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)
    r = datasets.load(conf("cifar100", subset=100, subset_mode="random"), tmp_path, gen(5))
    assert r.n_train == 100 and sum(r.info["class_counts"]) == 100
    full = datasets.load(conf("cifar100", subset=10_000), tmp_path, gen(5))
    assert full.n_train == 400


def test_stratified_subset_largest_remainder():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = vision.choose_subset(y, 10, gen())
    assert torch.bincount(y[idx], minlength=3).tolist() == [5, 3, 2]
    idx = vision.choose_subset(y, 7, gen())
    assert torch.bincount(y[idx], minlength=3).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4 -> remainders 0.5 first
    assert len(set(idx.tolist())) == 7 and torch.equal(idx, idx.sort().values)


def test_cifar_augment_shapes_determinism_and_crop_flip(tmp_path):
    make_cifar10(tmp_path)
    d = datasets.load(conf("cifar10", augment=True), tmp_path, gen())
    x = d.x_train[:16]
    a1 = d.augment(x, torch.Generator().manual_seed(1))
    a2 = d.augment(x, torch.Generator().manual_seed(1))
    a3 = d.augment(x, torch.Generator().manual_seed(2))
    assert a1.shape == x.shape and a1.dtype == x.dtype
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    # every output is a 32x32 window of the black-padded image, possibly mirrored
    black = torch.tensor([(0 - m) / s for m, s in zip(*vision.CIFAR10_STATS)]).view(3, 1, 1)
    for i in range(16):
        padded = black.expand(3, 40, 40).clone()
        padded[:, 4:36, 4:36] = x[i]
        found = any(torch.equal(a1[i], win) or torch.equal(a1[i], win.flip(-1))
                    for dy in range(9) for dx in range(9) for win in [padded[:, dy:dy + 32, dx:dx + 32]])
        assert found


def test_flip_only_and_crop_only():
    x = torch.randn(32, 2, 6, 6)
    flip = vision.make_crop_flip(0, True, [0.0, 0.0])(x, gen(3))
    same = [(torch.equal(f, o), torch.equal(f, o.flip(-1))) for f, o in zip(flip, x)]
    assert all(a or b for a, b in same) and any(b and not a for a, b in same) and any(a for a, _ in same)
    crop = vision.make_crop_flip(1, False, [7.0, 7.0])(x, gen(3))
    assert crop.shape == x.shape and (crop == 7.0).any()  # some windows include padding


def test_mnist_augment_crops_without_flip(tmp_path):
    make_mnist(tmp_path)
    d = datasets.load(conf("mnist", augment=True), tmp_path, gen())
    out = d.augment(d.x_train, gen(0))
    assert out.shape == d.x_train.shape and torch.equal(out, d.augment(d.x_train, gen(0)))


# ------------------------------------------------------------------------------------------
# imagefolder
def make_folder(root: Path, ext: str, n_train=3, n_test=2, size=8, classes=("cat", "dog", "emu")):
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                p = root / split / c / f"{i:03d}.{ext}"
                Image.fromarray(a).save(p)
                arrays[(split, c, i)] = a
    (root / "train" / classes[0] / "notes.txt").write_text("not an image")
    return arrays


def test_imagefolder_png_exact_and_cached(tmp_path):
    root = tmp_path / "tree"
    arrays = make_folder(root, "png")
    cfg = conf("imagefolder", path="tree", normalize="none")
    d = datasets.load(cfg, tmp_path, gen())
    assert d.x_train.shape == (9, 3, 8, 8) and d.x_test.shape == (6, 3, 8, 8) and d.num_classes == 3
    assert d.info["classes"] == ["cat", "dog", "emu"] and d.info["class_counts"] == [3, 3, 3]
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    torch.testing.assert_close(d.x_train[4], torch.as_tensor(arrays[("train", "dog", 1)]).permute(2, 0, 1).float() / 255)
    assert d.info["source"] == str(root) and d.info["lossy_copy"] is False
    cached = list((tmp_path / ".cache" / "optsuite" / "imagefolder").glob("tree-*.pt"))
    assert len(cached) == 1
    again = datasets.load(cfg, tmp_path, gen())
    assert torch.equal(again.x_train, d.x_train) and torch.equal(again.y_test, d.y_test)
    # a changed file invalidates the cache key
    from PIL import Image
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "dog" / "001.png")
    os.utime(root / "train" / "dog" / "001.png", ns=(1, 1))
    changed = datasets.load(cfg, tmp_path, gen())
    assert changed.x_train[4].abs().sum() == 0
    assert len(list(cached[0].parent.glob("tree-*.pt"))) == 2


def test_imagefolder_jpeg_lossy_flag_gray_and_resize(tmp_path):
    root = tmp_path / "tiny-jpeg"
    make_folder(root, "jpg", size=10)
    d = datasets.load(conf("imagefolder", path=str(root), cache=False), tmp_path / "elsewhere", gen())
    assert d.x_train.shape == (9, 3, 10, 10) and d.info["lossy_copy"] is True
    assert abs(d.x_train.mean().item()) < 1e-4  # computed per-channel normalisation
    assert not (tmp_path / "elsewhere" / ".cache").exists()
    g = datasets.load(conf("imagefolder", path=str(root), grayscale=True, image_size=6, augment=True), tmp_path, gen())
    assert g.x_train.shape == (9, 1, 6, 6) and g.input_shape == (1, 6, 6)
    assert g.augment(g.x_train, gen()).shape == g.x_train.shape


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataMissingError, match="train"):
        datasets.load(conf("imagefolder", path="nothing-here"), tmp_path, gen())
    root = tmp_path / "mixed"
    make_folder(root, "png", size=8)
    from PIL import Image
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "emu" / "big.png")
    with pytest.raises(ValueError, match="image_size"):
        datasets.load(conf("imagefolder", path=str(root)), tmp_path, gen())
    with pytest.raises(ValueError, match="valid: computed, half, none"):
        datasets.load(conf("imagefolder", path=str(root), normalize="standard", image_size=8), tmp_path, gen())


def test_cache_root_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert vision.cache_root(tmp_path) == tmp_path / ".cache" / "optsuite"
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert vision.cache_root(ro) == tmp_path / "home" / ".cache" / "optsuite"
    finally:
        ro.chmod(0o755)
    assert vision.cache_root(REPO) == tmp_path / "home" / ".cache" / "optsuite"  # never inside the repo
    monkeypatch.setenv("OPTSUITE_CACHE_DIR", str(tmp_path / "c"))
    assert vision.cache_root(ro) == tmp_path / "c"


# ------------------------------------------------------------------------------------------
# barcoded
def code_bits(code: int, n_bits: int):
    return [(code >> j) & 1 for j in range(n_bits)]


def test_mnist_barcoded_counts_groups_and_pixels(tmp_path):
    xtr, ytr, xte, yte = make_mnist(tmp_path, n_train=100, n_test=20, zero_top_row=True)
    cfg = conf("mnist_barcoded", n_val=0, n_barcode_bits=2, per_class=5, per_class_val=1, normalize="none")
    d = datasets.load(cfg, tmp_path, gen())
    K = 4 * 10
    assert d.num_classes == 10 + K and d.info["n_base_classes"] == 10 and d.info["n_barcoded_classes"] == K
    assert d.info["class_counts"] == [10] * 10 + [5] * K
    assert d.info["class_groups"] == [0] * 10 + [1] * K
    assert d.n_train == 100 + 5 * K and d.x_test.shape[0] == 20 + K
    as_u8 = lambda t: (t * 255).round().to(torch.uint8)  # noqa: E731  (normalize: none -> x / 255)
    assert torch.equal(as_u8(d.x_train[:100, 0]), torch.as_tensor(xtr))
    assert torch.equal(d.y_train[:100], torch.as_tensor(ytr, dtype=torch.int64))
    # labels: 10 + (code * 10 + digit); the barcode pixels carry the code, the rest of the image is a digit of that class
    src = torch.as_tensor(xtr)
    for x, y in zip(as_u8(d.x_train[100:]).float() / 255, d.y_train[100:]):
        code, digit = divmod(int(y) - 10, 10)
        assert x[0, 0, :2].tolist() == [float(b) for b in code_bits(code, 2)]
        assert x[0, 0, 2:].abs().sum() == 0
        matches = (src[:, 1:] == as_u8(x[0, 1:])).flatten(1).all(1).nonzero().flatten()
        assert len(matches) >= 1 and int(ytr[int(matches[0])]) == digit
    for x, y in zip(d.x_test[20:], d.y_test[20:]):
        code = (int(y) - 10) // 10
        assert x[0, 0, :2].tolist() == [float(b) for b in code_bits(code, 2)]
    # distinct images inside each barcoded class (drawn without replacement)
    for k in range(10, 10 + K):
        imgs = d.x_train[d.y_train == k]
        assert len(imgs) == 5 and len({tuple(i.flatten().tolist()) for i in imgs}) == 5


def test_mnist_barcoded_split_variants_and_normalisation(tmp_path):
    make_mnist(tmp_path, n_train=300, n_test=20)
    base = dict(n_val=50, n_barcode_bits=3, per_class=2, per_class_val=1)
    d = datasets.load(conf("mnist_barcoded", **base), tmp_path, gen(1))
    assert d.n_train == 250 + 2 * 80 and d.x_test.shape[0] == 50 + 80 and d.num_classes == 90
    # per-pixel normalisation over the returned training set
    assert d.x_train.mean(0).abs().max() < 1e-4
    sd = d.x_train.std(0)
    assert ((sd - 1).abs() < 1e-3).logical_or(sd == 0).all()
    again = datasets.load(conf("mnist_barcoded", **base), tmp_path, gen(1))
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.y_test, again.y_test)
    # subset of classes
    sub = datasets.load(conf("mnist_barcoded", **base, n_barcoded_classes=7), tmp_path, gen(1))
    assert sub.num_classes == 17 and sub.info["class_counts"][10:] == [2] * 7 and sub.info["class_groups"] == [0] * 10 + [1] * 7
    # balanced control: the same base split, 10 classes only
    bal = datasets.load(conf("mnist_barcoded", **base, balanced_control=True, normalize="none"), tmp_path, gen(1))
    raw = datasets.load(conf("mnist_barcoded", **base, normalize="none"), tmp_path, gen(1))
    assert bal.num_classes == 10 and bal.n_train == 250 and bal.info["class_groups"] == [0] * 10
    assert torch.equal(bal.x_train, raw.x_train[:250]) and torch.equal(bal.y_test, raw.y_test[:50])
    only = datasets.load(conf("mnist_barcoded", **base, barcoded_only=True), tmp_path, gen(1))
    assert only.num_classes == 80 and only.n_train == 160 and only.y_train.max() == 79
    assert only.info["n_base_classes"] == 0 and only.info["class_groups"] == [1] * 80
    no_zero = datasets.load(conf("mnist_barcoded", **base, include_zero_code=False), tmp_path, gen(1))
    assert no_zero.num_classes == 10 + 70
    with pytest.raises(ValueError, match="cannot both"):
        datasets.load(conf("mnist_barcoded", **base, balanced_control=True, barcoded_only=True), tmp_path, gen(1))
    with pytest.raises(ValueError, match="n_barcoded_classes"):
        datasets.load(conf("mnist_barcoded", **base, n_barcoded_classes=81), tmp_path, gen(1))


def test_cifar10_barcoded_sets_all_channels(tmp_path):
    make_cifar10(tmp_path, per_batch=20, zero_top_row=True)
    d = datasets.load(conf("cifar10_barcoded", n_barcode_bits=2, per_class=3, normalize="none"), tmp_path, gen())
    assert d.num_classes == 50 and d.input_shape == (3, 32, 32)
    assert d.info["class_counts"] == [10] * 10 + [3] * 40 and d.x_test.shape[0] == 10 + 40
    for x, y in zip(d.x_train[100:], d.y_train[100:]):
        code = (int(y) - 10) // 10
        for ch in range(3):
            assert x[ch, 0, :2].tolist() == [float(b) for b in code_bits(code, 2)]
    with pytest.raises(DataMissingError):
        datasets.load(conf("cifar10_barcoded", download=False), tmp_path / "empty", gen())


def test_cifar10_barcoded_from_imagefolder(tmp_path):
    root = tmp_path / "c10-jpeg"
    make_folder(root, "png", n_train=4, n_test=1, size=8, classes=tuple(f"k{i}" for i in range(10)))
    d = datasets.load(conf("cifar10_barcoded", path=str(root), n_barcode_bits=1, per_class=2), tmp_path, gen())
    assert d.num_classes == 30 and d.info["lossy_copy"] is True and d.info["source"] == str(root)


def test_yaml_keys_match_loader_keys():
    assert set(conf("mnist")) - {"name"} == set(vision.COMMON_KEYS)
    assert set(conf("cifar10")) - {"name"} == set(vision.COMMON_KEYS)
    assert set(conf("cifar100")) - {"name"} == set(vision.COMMON_KEYS)
    assert set(conf("imagefolder")) - {"name"} == set(vision.IMAGEFOLDER_KEYS)
    assert set(conf("mnist_barcoded")) - {"name"} == set(barcoded.KEYS)
    assert set(conf("cifar10_barcoded")) - {"name"} == set(barcoded.KEYS)
    for n in ("mnist", "cifar10", "cifar100", "imagefolder", "mnist_barcoded", "cifar10_barcoded"):
        assert list(conf(n))[0] == "name" and conf(n)["name"] == n and n in datasets.LOADERS
    with pytest.raises(ValueError, match="unknown dataset key"):
        datasets.load(conf("mnist", subsett=3), Path("/nonexistent"), gen())


# ------------------------------------------------------------------------------------------
# real MNIST (../shared/data or $DATA_DIR); skipped when absent
def real_data_dir() -> Path:
    for cand in (os.environ.get("DATA_DIR"), REPO.parent / "shared" / "data", "/work/shared/data"):
        if cand and (Path(cand) / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return Path(cand)
    pytest.skip("real MNIST not found (set DATA_DIR or provide ../shared/data/MNIST/raw)")


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist():
    d = datasets.load(conf("mnist", download=False), real_data_dir(), gen())
    assert d.n_train == 60000 and d.x_test.shape == (10000, 1, 28, 28)
    assert d.info["class_counts"] == MNIST_TRAIN_COUNTS
    assert torch.bincount(d.y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert d.y_train[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert abs(d.x_train.mean().item()) < 0.01 and abs(d.x_train.std().item() - 1) < 0.01


def test_real_mnist_barcoded_quick_size():
    d = datasets.load(conf("mnist_barcoded", download=False, n_barcoded_classes=1024), real_data_dir(), gen())
    assert d.n_train == 50000 + 5 * 1024 and d.x_test.shape[0] == 10000 + 1024
    assert d.num_classes == 1034 and sum(d.info["class_counts"][:10]) == 50000
