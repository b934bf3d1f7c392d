"""The training loop. Reads top to bottom: data, model, optimizer, then steps with periodic
evaluation, checkpointing and divergence checks. The result store and logger are passed in.

Units: ``step`` = optimizer steps; ``epoch`` = training samples consumed / n;
``grad_evals`` = per-example gradients computed (a backward over a batch of b counts b).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

import torch

import datasets
import models
import optimizers
from experiments import constants, evaluation, losses, schedules, seeding, store


class Interrupted(RuntimeError):
    """Raised by the test hook ``interrupt_at_step`` to simulate a killed job."""


@dataclass
class Counters:
    step: int = 0
    samples: int = 0            # training samples consumed (epochs = samples / n)
    grad_evals: int = 0         # per-example gradients
    forwards: int = 0           # forward passes (closure evaluations + noise/eval excluded)
    backwards: int = 0
    wall_s: float = 0.0         # training time, evaluation excluded


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: dict, rundir, logger, *, interrupt_at_step: int | None = None) -> dict:
    tc, seed = cfg["train"], int(cfg["seed"])
    device = resolve_device(cfg["device"])
    if device.type == "cpu":
        # denormal floats make CPU kernels several times slower once a trained model has many
        # tiny weights/gradients (measured 5x on 1,000-class MNIST); flushing them to zero
        # changes values below ~1e-38 (float32) only
        torch.set_flush_denormal(bool(tc.get("flush_denormal", True)))

    # ---- data and model: independent random streams (seeding.py) -----------------------
    data = datasets.load(cfg["dataset"], cfg["paths"]["data_dir"], seeding.generator(seed, "data"))
    data = data.to(device)
    store.atomic_write_json(rundir.path / "data_info.json", data.info)   # class frequencies etc.
    torch.manual_seed(seeding.stream_seed(seed, "init"))
    model = models.build(cfg["model"], data).to(device)
    if data.x_train.is_floating_point():
        model = model.to(data.x_train.dtype)          # float64 for the convex problems
    if tc.get("channels_last") and data.x_train.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if tc.get("compile"):
        model = torch.compile(model)                  # off by default: slow start, small models
    task, n = data.task, data.n_train

    full_batch = (tc["batch_size"] == "full" or bool(cfg["optimizer"].get("full_batch"))
                  or int(tc["batch_size"]) >= n)
    bs = n if full_batch else int(tc["batch_size"])
    steps_per_epoch = n // bs
    total_steps = max(1, round(float(tc["epochs"]) * steps_per_epoch))
    eval_every = max(1, round(float(tc["eval_every"]) * steps_per_epoch))
    chunk = int(tc["eval_batch_size"])

    if "rho" in data.info:
        # strong-growth constant of a batch of bs drawn without replacement from n:
        # E||g_B||^2 = ||g||^2 + (n-b)/(b(n-1)) (E_i||g_i||^2 - ||g||^2)
        data.info["rho_b"] = 1 + (n - bs) / (bs * max(n - 1, 1)) * (data.info["rho"] - 1)
    opt_cfg = constants.resolve(cfg["optimizer"], data.info)
    opt = optimizers.build(opt_cfg, params, n_batches_per_epoch=steps_per_epoch)
    schedule = opt_cfg.get("schedule") or {"name": "constant"}
    base_lrs = [g.get("lr") for g in opt.param_groups]
    needs_closure = getattr(opt, "needs_closure", False)
    is_lbfgs = isinstance(opt, torch.optim.LBFGS)
    own_counts = needs_closure                   # closure optimizers count their own backward passes

    order = seeding.generator(seed, "order", device)
    groups = evaluation.class_groups(data.info, data.num_classes, int(tc.get("class_groups") or 0), device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                if tc.get("amp") and device.type == "cuda" else torch.autocast("cpu", enabled=False))

    # ---- resume -----------------------------------------------------------------------
    c = Counters()
    perm, pos, init_loss = None, 0, None
    if rundir.ckpt_path.exists():
        ck = torch.load(rundir.ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        order.set_state(ck["order_rng"].cpu() if device.type == "cpu" else ck["order_rng"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        c, perm, pos, init_loss = Counters(**ck["counters"]), ck["perm"], ck["pos"], ck["init_loss"]
        rundir.truncate_metrics(c.step)
    last_ckpt = time.time()

    # SAG keeps one stored gradient per fixed batch: batches are a fixed partition and each
    # step samples one of them uniformly (with replacement), as in the SAG paper.
    fixed = torch.randperm(n, generator=order, device=device) if getattr(opt, "needs_slot", False) else None

    def next_batch():
        nonlocal perm, pos
        if full_batch:
            return None, None
        if fixed is not None:
            slot = int(torch.randint(steps_per_epoch, (1,), generator=order, device=device))
            return fixed[slot * bs:(slot + 1) * bs], slot
        if perm is None or pos + bs > n:             # a new epoch: fresh permutation
            perm, pos = torch.randperm(n, generator=order, device=device), 0
        idx = perm[pos:pos + bs]
        pos += bs
        return idx, None

    def full_loss():
        """Mean loss over the whole training set, built from chunks (one graph)."""
        total = 0.0
        for s in evaluation.chunks(n, chunk):
            with autocast:
                total = total + losses.mean_loss(task, model(data.x_train[s]), data.y_train[s]) * ((s.stop - s.start) / n)
        return total

    def evaluate() -> dict:
        rec = {"step": c.step, "epoch": c.samples / n, "samples": c.samples,
               "grad_evals": c.grad_evals, "wall_s": c.wall_s}
        rec.update(evaluation.split_metrics(model, task, data.x_train, data.y_train, chunk, groups, "train"))
        if data.x_test is not None:
            rec.update(evaluation.split_metrics(model, task, data.x_test, data.y_test, chunk, groups, "test"))
        if data.info.get("f_star") is not None:
            rec["train/subopt"] = rec["train/loss"] - float(data.info["f_star"])
        if tc.get("eval_grad_norm"):
            rec["train/grad_norm"] = evaluation.grad_norm(
                evaluation.full_gradient(model, task, data.x_train, data.y_train, chunk, params))
        return rec

    per_decade = int(tc.get("eval_per_decade") or 0)        # extra log-spaced evaluations
    log_points = ({round(10 ** (j / per_decade)) for j in range(int(per_decade * math.log10(total_steps)) + 1)}
                  if per_decade else set())
    stop_below = tc.get("stop_below")
    noise_points = sorted({min(total_steps, round(float(f) * total_steps)) for f in (tc.get("noise_at") or [])})

    def record_noise(rec):
        norms = evaluation.noise_norms(model, task, data.x_train, data.y_train, chunk, params,
                                       int(tc["noise_batch_size"]), int(tc["noise_samples"]),
                                       seeding.generator(seed + c.step, "noise", device))
        for k, v in enumerate(norms):
            rec[f"noise/grad_noise_norm/{k}"] = v

    step_sizes, backtracks, polyak, batch_losses = [], [], [], []

    progress = sys.stderr.isatty() and not os.environ.get("CI")    # quiet in CI and in files

    def log(rec):
        if step_sizes:
            rec.update({"opt/step_size": sum(step_sizes) / len(step_sizes), "opt/step_size_min": min(step_sizes),
                        "opt/step_size_max": max(step_sizes), "opt/step_size_last": step_sizes[-1]})
        if backtracks:
            rec.update({"opt/backtracks": sum(backtracks) / len(backtracks), "opt/backtracks_max": max(backtracks),
                        "opt/zero_backtrack_frac": sum(b == 0 for b in backtracks) / len(backtracks)})
        if polyak:
            rec["opt/polyak_step"] = sum(polyak) / len(polyak)
        if batch_losses:
            rec["opt/batch_loss"] = float(torch.stack(batch_losses).mean())
        rec["opt/n_forwards"], rec["opt/n_backwards"] = c.forwards, c.backwards
        for lst in (step_sizes, backtracks, polyak, batch_losses):
            lst.clear()
        rundir.append_metrics(rec)
        logger.log(rec, step=c.step)
        if progress:
            print(f"\r  {rundir.run_id} step {c.step}/{total_steps} ({100 * c.step / total_steps:.0f}%) "
                  f"train/loss {rec['train/loss']:.4g}", end="", file=sys.stderr, flush=True)

    def checkpoint():
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "order_rng": order.get_state(),
              "torch_rng": torch.get_rng_state(),
              "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
              "counters": c.__dict__.copy(), "perm": perm, "pos": pos, "init_loss": init_loss}
        rundir.ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = rundir.ckpt_path.with_suffix(".tmp")
        torch.save(ck, tmp)
        tmp.replace(rundir.ckpt_path)

    status, diverged_step = "completed", None
    if c.step == 0:
        rec = evaluate()
        init_loss = rec["train/loss"]
        if 0 in noise_points:
            record_noise(rec)
        log(rec)

    model.train()
    while c.step < total_steps:
        # ---- one optimizer step ----------------------------------------------------------
        t0 = time.perf_counter()
        if getattr(opt, "needs_snapshot", False) and c.step % steps_per_epoch == 0:
            opt.set_snapshot(full_loss)               # SVRG: full gradient at the snapshot
            c.grad_evals += n
            c.forwards += 1
            c.backwards += 1
        idx, slot = next_batch()
        if idx is not None:
            xb, yb = data.x_train[idx], data.y_train[idx]
            if data.augment is not None and tc.get("augment", True):
                xb = data.augment(xb, order)          # drawn once: every trial sees the same batch
        calls = [0]

        def closure():
            calls[0] += 1
            if idx is None:
                return full_loss()
            with autocast:
                return losses.mean_loss(task, model(xb), yb)

        for g, lr0 in zip(opt.param_groups, base_lrs):
            if lr0 is not None and not isinstance(lr0, torch.Tensor):
                g["lr"] = lr0 * schedules.factor(schedule, c.step)
        before = optimizers.stats(opt)
        if needs_closure:
            loss = opt.step(closure) if slot is None else opt.step(closure, slot=slot)
        elif is_lbfgs:
            def lbfgs_closure():
                opt.zero_grad()
                value = closure()
                value.backward()
                return value
            loss = opt.step(lbfgs_closure)
        else:
            opt.zero_grad(set_to_none=True)
            if idx is None:                           # full batch by accumulation over chunks
                loss = 0.0
                for s in evaluation.chunks(n, chunk):
                    calls[0] += 1
                    with autocast:
                        part = losses.mean_loss(task, model(data.x_train[s]), data.y_train[s]) * ((s.stop - s.start) / n)
                    part.backward()
                    loss = loss + part.detach()
                calls[0] = 1                           # one pass over the data
            else:
                loss = closure()
                loss.backward()
            opt.step() if slot is None else opt.step(slot=slot)
        after = optimizers.stats(opt)
        n_back = (after["n_backwards"] - before.get("n_backwards", 0)) if own_counts else max(1, calls[0] if is_lbfgs else 1)
        c.backwards += n_back
        c.forwards += calls[0]
        c.grad_evals += n_back * bs
        c.samples += bs
        c.step += 1
        step_sizes.append(float(after["step_size"]))
        if "backtracks" in after:
            backtracks.append(int(after["backtracks"]))
        if "polyak_step" in after:
            polyak.append(float(after["polyak_step"]))
        if loss is not None:
            batch_losses.append(torch.as_tensor(loss).detach().double().reshape(()).cpu()
                                if device.type == "cpu" else torch.as_tensor(loss).detach().double().reshape(()))
        if device.type == "cuda":
            torch.cuda.synchronize()
        c.wall_s += time.perf_counter() - t0

        # ---- evaluation, divergence, checkpoint ----------------------------------------------
        if c.step % eval_every == 0 or c.step == total_steps or c.step in noise_points or c.step in log_points:
            rec = evaluate()
            if c.step in noise_points:
                record_noise(rec)
            bad = (not math.isfinite(rec["train/loss"])
                   or rec["train/loss"] > float(tc["divergence_factor"]) * max(init_loss, 1e-12))
            if batch_losses and not torch.isfinite(torch.stack(batch_losses)).all():
                bad = True
            log(rec)
            if bad:
                status, diverged_step = "diverged", c.step
                break
            if stop_below is not None and rec.get("train/subopt", rec["train/loss"]) <= float(stop_below):
                status = "reached_target"
                break
            if time.time() - last_ckpt >= float(tc["checkpoint_every_s"]) and c.step < total_steps:
                checkpoint()
                last_ckpt = time.time()
            if interrupt_at_step is not None and c.step >= interrupt_at_step:
                raise Interrupted(f"interrupted at step {c.step}")

    if progress:
        print(file=sys.stderr)
    if tc.get("save_model"):
        torch.save(model.state_dict(), rundir.path / "model_final.pt")
    final = rundir.read_metrics()[-1]
    return {"status": status, "diverged_step": diverged_step, "steps": c.step,
            "epochs": c.samples / n, "grad_evals": c.grad_evals, "wall_s": c.wall_s,
            "n_forwards": c.forwards, "n_backwards": c.backwards, "init_loss": init_loss,
            "final": {k: v for k, v in final.items() if "/" in k and not k.startswith("noise/")},
            "data_info": {k: v for k, v in data.info.items() if not isinstance(v, (list, tuple))
                          or (len(v) <= 16 and all(isinstance(x, (int, float)) for x in v))}}
