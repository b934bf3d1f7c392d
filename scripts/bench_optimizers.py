"""Per-step cost of every project optimizer relative to torch.optim.SGD (the prec line
searches relative to torch.optim.Adam), measured in one run; on CPU and, when CUDA is
present, again on the GPU with CUDA events.

Problem: MLP 784-512-256-10 (ReLU), batch 128, cross-entropy; real MNIST from
$DATA_DIR/MNIST/raw (or ../shared/data/MNIST/raw) when present, random MNIST-shaped data
otherwise. Each optimizer is built from its yaml in conf/optimizer (problem-constant
expressions replaced by fixed values) and driven with the trainer's protocol.

Baselines: torch.optim.SGD; torch.optim.SGD(momentum=0.9) for the methods that rewrite one
parameter-sized buffer per step like heavy ball (sign_descent_m, signum, normalized_gd_m,
lion, accel_sgd, sag); torch.optim.Adam for sls_prec / ponos_prec. Line searches get
n_batches_per_epoch = 469 (an MNIST epoch at batch 128), SAG one slot per distinct batch.

Timing: after a warm-up, blocks of steps of the optimizer and of its baseline alternate
(same batches, own model copies); ``ratio`` is the median over blocks of
t(optimizer block) / t(baseline block). In the same run the script measures

  fwd_share = t(forward under no_grad) / t(forward + backward)

(interleaved, so both see the same machine load) and prints each method's floor, the cost
of its extra passes if the update itself were free:

  floor = 1 + fwd_share * (forwards - backwards per step) + (backwards per step - 1)

which for a line search (1 backward, 2 + backtracks forwards) is
1 + fwd_share * (1 + mean backtracks), and 1 for one-gradient methods; ``/floor`` =
ratio / floor is what the method costs beyond its passes (update, norms, bookkeeping).
Against Adam the bracket is multiplied by t(forward + backward) / t(Adam step) (passes
are counted in baseline steps, and Adam's update is not negligible).
On CUDA the times are CUDA-event times of the device timeline (the host loop is the same),
``syncs`` counts host synchronisations per step (``torch.cuda.set_sync_debug_mode``), and
every optimizer takes its foreach path.

CPU timings use one torch thread by default (``--threads``): with two threads a second busy
process on a 2-core machine makes per-step times jump by 10x, which swamps the ratios.

Usage: python -m scripts.bench_optimizers [--blocks 25] [--steps 8] [--only sls,ponos]
       [--threads 1] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optimizers  # noqa: E402

# config file, baseline, overrides for expressions that need problem constants.
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


class Clock:
    """Wall clock on CPU; CUDA events (device timeline) on CUDA."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def time(self, fn) -> float:
        if not self.cuda:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3


class Runner:
    """One model + optimizer, stepped with the trainer's protocol over a fixed batch cycle."""

    def __init__(self, cfg: dict, batches, state_dict, device):
        self.model = mlp().to(device)
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

    def steps(self, n: int):
        for _ in range(n):
            self.step()


def measure_fwd_share(base: Runner, clock: Clock, reps: int = 40):
    """Median times of a baseline step, a no_grad forward and a forward+backward, taken
    interleaved so that all three see the same machine load."""
    x, y = base.batches[0]
    model = base.model

    def fwd():
        with torch.no_grad():
            F.cross_entropy(model(x), y)

    def fb():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    ts, tf, tfb = [], [], []
    for _ in range(reps):
        ts.append(clock.time(lambda: base.steps(1)))
        tf.append(clock.time(fwd))
        tfb.append(clock.time(fb))
    return statistics.median(tf) / statistics.median(tfb), statistics.median(tfb), statistics.median(ts)


def syncs_per_step(r: Runner, n: int) -> float:
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            r.steps(n)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in rec) / n


def bench(device: torch.device, methods, batches, init, args):
    clock = Clock(device)
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    bases = {}
    for bname in sorted({b for _, b, _ in methods}, key=list(BASELINES).index):
        r = Runner(dict(BASELINES[bname]), batches, init, device)
        r.steps(args.warmup)
        share, t_fb, t_step = measure_fwd_share(r, clock)
        # passes are counted in units of one SGD step (= forward + backward); Adam's update is
        # not negligible, so for its rows a pass costs t(forward + backward) / t(Adam step)
        unit = t_fb / t_step if bname == "adam" else 1.0
        bases[bname] = (r, share, unit)
        print(f"[{device.type}] baseline {bname}: {1e3 * t_step:.3f} ms/step; "
              f"fwd_share = forward / (forward + backward) = {share:.3f}"
              + (f"; forward + backward = {unit:.3f} Adam steps" if bname == "adam" else ""))
    rows = []
    for cname, bname, over in methods:
        cfg = load_cfg(cname)
        cfg.update(over)
        base, share, unit = bases[bname]
        r = Runner(cfg, batches, init, device)
        r.steps(args.warmup)
        st0 = optimizers.stats(r.opt)
        bts, ratios = [], []

        def block():  # the backtracks are host ints: reading them does not synchronise
            for _ in range(args.steps):
                r.step()
                bts.append(r.opt.state.get("backtracks", 0))

        for _ in range(args.blocks):
            tb = clock.time(lambda: base.steps(args.steps))
            ratios.append(clock.time(block) / tb)
        st1 = optimizers.stats(r.opt)
        n = args.blocks * args.steps
        fwd = (st1["n_forwards"] - st0["n_forwards"]) / n
        bwd = (st1["n_backwards"] - st0["n_backwards"]) / n
        ratio = statistics.median(ratios)
        floor = 1 + unit * (share * (fwd - bwd) + (bwd - 1))
        syncs = syncs_per_step(r, args.steps) if device.type == "cuda" else None
        rows.append((cname, bname, ratio, fwd, bwd, sum(bts) / len(bts), floor, syncs))

    fmt = "{:<16} {:<5} {:>6} {:>8} {:>8} {:>8} {:>6} {:>7} {:>6}"
    print()
    print(fmt.format("optimizer", "vs", "ratio", "fwd/step", "bwd/step", "mean bt", "floor", "/floor",
                     "syncs" if device.type == "cuda" else ""))
    for c, b, ratio, fwd, bwd, bt, floor, syncs in rows:
        print(fmt.format(c, b, f"{ratio:.2f}", f"{fwd:.2f}", f"{bwd:.2f}", f"{bt:.2f}", f"{floor:.2f}",
                         f"{ratio / floor:.2f}", "" if syncs is None else f"{syncs:.2f}"))
    print()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=25, help="alternating timing blocks per method")
    ap.add_argument("--steps", type=int, default=8, help="steps per block")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batches", type=int, default=16, help="distinct batches (SAG slots)")
    ap.add_argument("--only", default="", help="comma-separated config names")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: stable timings on a shared CPU)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto: CPU, then CUDA when it is available")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batches, source = mnist_batches(args.batches)
    init = mlp().state_dict()
    methods = [m for m in METHODS if not args.only or m[0] in args.only.split(",")]
    devices = {"cpu": ["cpu"], "cuda": ["cuda"],
               "auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}[args.device]
    t_start = time.perf_counter()
    print(f"data: {source}; MLP 784-512-256-10, batch 128, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for dev in devices:
        bench(torch.device(dev), methods, batches, init, args)
    if "cuda" not in devices:
        print("(no CUDA device: the device-side variant was skipped)")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
