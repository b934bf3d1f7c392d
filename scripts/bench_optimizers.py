"""Per-step cost of every project optimizer relative to torch.optim.SGD (the prec line
searches relative to torch.optim.Adam), measured in one run on CPU.

Problem: MLP 784-512-256-10 (ReLU), batch 128, cross-entropy; real MNIST from
$DATA_DIR/MNIST/raw (or ../shared/data/MNIST/raw) when present, random MNIST-shaped data
otherwise. Each optimizer is built from its yaml in conf/optimizer (problem-constant
expressions replaced by fixed values) and driven with the trainer's protocol.

Baselines: torch.optim.SGD; torch.optim.SGD(momentum=0.9) for the methods that rewrite one
parameter-sized buffer per step like heavy ball (sign_descent_m, signum, normalized_gd_m,
lion, accel_sgd, sag); torch.optim.Adam for sls_prec / ponos_prec. Line searches get
n_batches_per_epoch = 469 (an MNIST epoch at batch 128), SAG one slot per distinct batch.

Timing: after a warm-up, blocks of steps of the optimizer and of its baseline alternate
(same batches, own model copies); the ratio is the median over blocks of
t(optimizer block) / t(baseline block). In the same run the script measures
  share    = t(forward under no_grad) / t(baseline step)   (cost of one line-search trial)
  share_fb = t(forward + backward)    / t(baseline step)   (cost of an extra gradient)
and prints the target ratio

  target = 1 + share * (forwards - backwards per step) + share_fb * (backwards per step - 1) + 0.10

which for a line search (1 backward, 2 + backtracks forwards) is the brief's
1 + share * (1 + mean backtracks) + 0.10, and 1.10 for one-gradient methods.

Timings use one torch thread by default (``--threads``): with two threads a second busy
process on a 2-core machine makes per-step times jump by 10x, which swamps the ratios.

Usage: python scripts/bench_optimizers.py [--blocks 25] [--steps 8] [--only sls,ponos] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optimizers  # noqa: E402

# config file, baseline, overrides for expressions that need problem constants.
# Baselines: torch.optim.SGD ("sgd"); torch.optim.SGD(momentum=0.9) ("sgd_m") for the methods
# that, like heavy ball, keep one parameter-sized buffer they rewrite every step (same
# inherent memory traffic); torch.optim.Adam for the Adam-direction line searches.
METHODS = [
    ("sls", "sgd", {}), ("sls_goldstein", "sgd", {}), ("sps", "sgd", {}), ("ponos", "sgd", {}),
    ("sls_prec", "adam", {}), ("ponos_prec", "adam", {}),
    ("sign_descent", "sgd", {}), ("normalized_gd", "sgd", {}), ("rescaled_sign", "sgd", {"lr": 1e-7}),
    ("sign_descent_m", "sgd_m", {}), ("signum", "sgd_m", {}), ("normalized_gd_m", "sgd_m", {}),
    ("lion", "sgd_m", {}), ("accel_sgd", "sgd_m", {"lr": 0.05, "mu": 0.01, "L": None, "rho": 1.0}),
    ("sag", "sgd_m", {"lr": 0.01}), ("svrg", "sgd", {"lr": 0.01}),
]
BASELINES = {"sgd": {"name": "sgd", "lr": 0.05}, "sgd_m": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
             "adam": {"name": "adam", "lr": 1e-3}}
MNIST_BATCHES_PER_EPOCH = 469  # 60000 / 128: what the trainer passes as n_batches_per_epoch


def load_cfg(name: str) -> dict:
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "optimizer" / f"{name}.yaml"))
    cfg.pop("schedule", None)
    return cfg


def mnist_batches(n_batches: int, bs: int = 128):
    cands = [os.environ.get("DATA_DIR"), str(ROOT.parent / "shared" / "data")]
    for base in filter(None, cands):
        img = Path(base) / "MNIST" / "raw" / "train-images-idx3-ubyte"
        lab = Path(base) / "MNIST" / "raw" / "train-labels-idx1-ubyte"
        if img.exists() and lab.exists():
            n = n_batches * bs
            x = torch.frombuffer(bytearray(img.read_bytes()[16:16 + n * 784]), dtype=torch.uint8)
            y = torch.frombuffer(bytearray(lab.read_bytes()[8:8 + n]), dtype=torch.uint8)
            x = (x.float().view(n, 1, 28, 28) / 255 - 0.5) / 0.5
            return list(zip(x.split(bs), y.long().split(bs))), f"MNIST ({img.parent})"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_batches * bs, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_batches * bs,), generator=g)
    return list(zip(x.split(bs), y.split(bs))), "random MNIST-shaped data"


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                         nn.ReLU(), nn.Linear(256, 10))


class Runner:
    """One model + optimizer, stepped with the trainer's protocol over a fixed batch cycle."""

    def __init__(self, cfg: dict, batches, state_dict):
        self.model = mlp()
        self.model.load_state_dict(state_dict)
        self.batches = batches
        # SAG's table has one slot per distinct batch; the step-size growth of the line
        # searches (gamma^(1/n)) uses a real MNIST epoch
        nb = len(batches) if cfg["name"] == "sag" else MNIST_BATCHES_PER_EPOCH
        self.opt = optimizers.build(cfg, self.model.parameters(), n_batches_per_epoch=nb)
        self.k = 0
        if getattr(self.opt, "needs_snapshot", False):
            xs = torch.cat([b[0] for b in batches[:8]])
            ys = torch.cat([b[1] for b in batches[:8]])
            self.opt.set_snapshot(lambda: F.cross_entropy(self.model(xs), ys))

    def step(self):
        i = self.k % len(self.batches)
        x, y = self.batches[i]
        self.k += 1
        closure = lambda: F.cross_entropy(self.model(x), y)
        opt = self.opt
        if getattr(opt, "needs_closure", False):
            return opt.step(closure)
        opt.zero_grad()
        loss = closure()
        loss.backward()
        if getattr(opt, "needs_slot", False):
            opt.step(slot=i)
        else:
            opt.step()
        return loss

    def timed(self, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            self.step()
        return time.perf_counter() - t


def measure_shares(base: Runner, reps: int = 40):
    """Median times of a baseline step, a no_grad forward and a forward+backward, taken
    interleaved so that all three see the same machine load."""
    x, y = base.batches[0]
    model = base.model
    ts, tf, tfb = [], [], []
    for _ in range(reps):
        ts.append(base.timed(1))
        t = time.perf_counter()
        with torch.no_grad():
            F.cross_entropy(model(x), y)
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        tfb.append(time.perf_counter() - t)
    t_step = statistics.median(ts)
    return statistics.median(tf) / t_step, statistics.median(tfb) / t_step, t_step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=25, help="alternating timing blocks per method")
    ap.add_argument("--steps", type=int, default=8, help="steps per block")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batches", type=int, default=16, help="distinct batches (SAG slots)")
    ap.add_argument("--only", default="", help="comma-separated config names")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: stable timings on a shared CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches, source = mnist_batches(args.batches)
    init = mlp().state_dict()
    methods = [m for m in METHODS if not args.only or m[0] in args.only.split(",")]
    t_start = time.perf_counter()
    print(f"data: {source}; MLP 784-512-256-10, batch 128, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    bases = {}
    for bname in sorted({b for _, b, _ in methods}, key=list(BASELINES).index):
        r = Runner(dict(BASELINES[bname]), batches, init)
        r.timed(args.warmup)
        share, share_fb, t_step = measure_shares(r)
        bases[bname] = (r, share, share_fb, t_step)
        print(f"baseline {bname}: {1e3 * t_step:.2f} ms/step; forward (no_grad) share {share:.3f}, "
              f"forward+backward share {share_fb:.3f}")

    rows = []
    for cname, bname, over in methods:
        cfg = load_cfg(cname)
        cfg.update(over)
        base, share, share_fb, _ = bases[bname]
        r = Runner(cfg, batches, init)
        r.timed(args.warmup)
        st0 = optimizers.stats(r.opt)
        bts, ratios = [], []
        for _ in range(args.blocks):
            tb = base.timed(args.steps)
            t = 0.0
            for _ in range(args.steps):
                t0 = time.perf_counter()
                r.step()
                t += time.perf_counter() - t0
                bts.append(r.opt.state.get("backtracks", 0))
            ratios.append(t / tb)
        st1 = optimizers.stats(r.opt)
        n = args.blocks * args.steps
        fwd = (st1["n_forwards"] - st0["n_forwards"]) / n
        bwd = (st1["n_backwards"] - st0["n_backwards"]) / n
        ratio = statistics.median(ratios)
        target = 1 + share * (fwd - bwd) + share_fb * (bwd - 1) + 0.10
        rows.append((cname, bname, ratio, fwd, bwd, sum(bts) / len(bts), share, target,
                     "PASS" if ratio <= target else "FAIL"))

    head = ("optimizer", "vs", "ratio", "fwd/step", "bwd/step", "mean bt", "fwd share", "target", "")
    fmt = "{:<16} {:<5} {:>6} {:>8} {:>8} {:>8} {:>9} {:>7}  {}"
    print()
    print(fmt.format(*head))
    for c, b, ratio, fwd, bwd, bt, share, target, ok in rows:
        print(fmt.format(c, b, f"{ratio:.2f}", f"{fwd:.2f}", f"{bwd:.2f}", f"{bt:.2f}",
                         f"{share:.3f}", f"{target:.2f}", ok))
    n_fail = sum(r[-1] == "FAIL" for r in rows)
    print(f"\n{len(rows) - n_fail}/{len(rows)} within target; total {time.perf_counter() - t_start:.0f} s")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
