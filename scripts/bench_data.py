"""Cost of the project's data path + trainer for one MNIST epoch, against (a) a bare PyTorch loop
over the same in-memory tensors and model and (b) a torchvision Dataset + DataLoader pipeline,
measured in one run.

Problem: MNIST (60,000 training images), MLP 784-512-256-10 (ReLU), batch 128, cross-entropy,
torch.optim.SGD(lr=0.1); 468 steps an epoch in all three (the last partial batch is dropped,
as the trainer does).

* project: ``experiments.train.execute`` (the trainer's ``run``) for one epoch, data from
  ``datasets.load`` (IDX files read once, normalised once, kept as tensors; batches are index
  slices of a per-epoch permutation). Timed by the trainer's own ``wall_s``: the sum over
  steps of batch selection + closure + backward + step + the per-step logging bookkeeping;
  evaluation (at step 0 and at the end), data loading, checkpoints and file writing are
  excluded.
* (a) bare loop: the same ``Data`` tensors and the same model (same init), a hand-written
  loop (randperm, index, zero_grad, forward, cross_entropy, backward, step). Timed around the
  loop (one perf_counter pair per epoch).
* (b) torchvision: ``torchvision.datasets.MNIST(root=DATA_DIR)`` with ToTensor + Normalize,
  ``DataLoader(batch_size=128, shuffle=True, drop_last=True, num_workers=--workers)``, the same
  model and loop. Timed around the loop (decoding and collation included: that is the data
  path being compared).

The three alternate ``--repeats`` times (one epoch each, the order rotating); the ratios are
of the medians (and, printed beside them, of the fastest epochs).
One-time costs (loading the data set into tensors vs building the torchvision Dataset) are
printed separately. Target: project / bare <= 1.05.

Timings use one torch thread by default (``--threads``): on a 2-core machine shared with
other work, two threads make step times jump by several x, which swamps the ratios.

Usage: python -m scripts.bench_data [--repeats 3] [--threads 1] [--workers 0] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import datasets  # noqa: E402
import models  # noqa: E402
from experiments import plan, seeding  # noqa: E402
from experiments.train import execute  # noqa: E402

BATCH, LR = 128, 0.1


def default_data_dir() -> str:
    for cand in (os.environ.get("DATA_DIR"), str(ROOT.parent / "shared" / "data"), str(ROOT / "data")):
        if cand and (Path(cand) / "MNIST" / "raw").exists():
            return cand
    return os.environ.get("DATA_DIR") or "data"


def project_cfg(data_dir: str, results: str) -> dict:
    cfg = plan.expand(["dataset=mnist", "dataset.download=false", "model=mlp", "optimizer=sgd", f"optimizer.lr={LR}",
                       f"train.batch_size={BATCH}", "train.epochs=1", "train.eval_every=1",
                       "train.checkpoint_every_s=1000000"], multirun=False)[0].cfg
    cfg["paths"].update(data_dir=data_dir, results_dir=results)
    cfg["device"] = "cpu"
    cfg["force"] = True
    return cfg


def model_like(cfg, data):
    torch.manual_seed(seeding.stream_seed(int(cfg["seed"]), "init"))
    return models.build(cfg["model"], data)


def bare_epoch(model, x, y, gen) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    n = x.shape[0]
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=gen)
    for i in range(n // BATCH):
        idx = perm[i * BATCH:(i + 1) * BATCH]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def loader_epoch(model, loader) -> tuple[float, int]:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    steps = 0
    t0 = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        steps += 1
    return time.perf_counter() - t0, steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers for (b)")
    ap.add_argument("--data-dir", default=default_data_dir())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (Path(args.data_dir) / "MNIST" / "raw").exists():
        print(f"error: no MNIST under {args.data_dir}/MNIST/raw (set DATA_DIR)", file=sys.stderr)
        return 2
    import torchvision
    from torchvision import transforms

    tmp = tempfile.mkdtemp(prefix="bench_data_")
    cfg = project_cfg(args.data_dir, tmp)

    t0 = time.perf_counter()
    data = datasets.load(cfg["dataset"], args.data_dir, seeding.generator(int(cfg["seed"]), "data"))
    load_project = time.perf_counter() - t0
    t0 = time.perf_counter()
    tv = torchvision.datasets.MNIST(root=args.data_dir, train=True, download=False,
                                    transform=transforms.Compose([transforms.ToTensor(),
                                                                  transforms.Normalize((0.1307,), (0.3081,))]))
    load_tv = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(tv, batch_size=BATCH, shuffle=True, drop_last=True,
                                         num_workers=args.workers, generator=torch.Generator().manual_seed(0))
    # same inputs in (a) and in the project run; the torchvision tensors agree to float32 rounding
    x0, _ = tv[0]
    assert torch.allclose(x0, data.x_train[0], atol=1e-5), "torchvision and project inputs differ"

    print(f"MNIST {data.n_train} images, MLP 784-512-256-10, batch {BATCH}, SGD lr {LR}, "
          f"{data.n_train // BATCH} steps/epoch, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"DataLoader workers {args.workers}")
    print(f"one-time: project load (IDX -> normalised tensors) {load_project:.2f}s, "
          f"torchvision Dataset construction {load_tv:.2f}s")
    times = {"project": [], "bare": [], "torchvision": []}
    gen = torch.Generator().manual_seed(0)

    def project():
        with contextlib.redirect_stdout(io.StringIO()):
            s = execute(cfg)
        assert s["steps"] == data.n_train // BATCH
        return s["wall_s"]

    def bare():
        return bare_epoch(model_like(cfg, data), data.x_train, data.y_train, gen)

    def torchvision_loop():
        t, steps = loader_epoch(model_like(cfg, data), loader)
        assert steps == data.n_train // BATCH
        return t

    runs = [("project", project), ("bare", bare), ("torchvision", torchvision_loop)]
    for r in range(args.repeats):
        for k in range(3):                 # rotate the order so no method always runs first
            key, fn = runs[(r + k) % 3]
            times[key].append(fn())
        print(f"  repeat {r + 1}: project {times['project'][-1]:.2f}s, bare {times['bare'][-1]:.2f}s, "
              f"torchvision {times['torchvision'][-1]:.2f}s")
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"median epoch: project {med['project']:.2f}s, bare loop {med['bare']:.2f}s, "
          f"torchvision DataLoader {med['torchvision']:.2f}s (fastest: {best['project']:.2f} / {best['bare']:.2f} / "
          f"{best['torchvision']:.2f}s)")
    ratio = med["project"] / med["bare"]
    print(f"(a) project / bare loop = {ratio:.3f} on medians, {best['project'] / best['bare']:.3f} on the fastest "
          f"epochs  (target <= 1.05 on medians: {'met' if ratio <= 1.05 else 'NOT met'})")
    print(f"(b) torchvision DataLoader / project = {med['torchvision'] / med['project']:.2f}x on medians, "
          f"{best['torchvision'] / best['project']:.2f}x on the fastest (speed-up of the in-memory data path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
