"""The training loop. Reads top to bottom: data, model, optimizer, then steps with periodic
evaluation, checkpointing and divergence checks. The result store and logger are passed in.

Units: ``step`` = optimizer steps; ``epoch`` = training samples consumed / n;
``grad_evals`` = per-example gradients computed (a backward over a batch of b counts b).

No host synchronisation between evaluations: a step reads nothing from the device. Step sizes,
backtracks, batch losses and (on CUDA) the step timings (CUDA events) are kept where they are
and read at the next evaluation in one transfer through ``_host_read``, the single funnel of
every device-to-host read of the loop (a test counts its calls). A batch loss that is NaN/Inf
is therefore seen at the next evaluation; the run then goes back to the state of the last
evaluation (kept on the device) and redoes those steps reading each batch loss, so it stops at
the first bad step exactly as a loop that read every loss would (the rare diverging run pays
the replay, every other run pays one state copy per evaluation). Exceptions: SAG draws its
slot as a Python int (one read per step) and LBFGS and the line searches read the loss of each
trial by design.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

import datasets
import models
import optimizers
from experiments import constants, evaluation, losses, progress, runid, schedules, seeding, store, validate

# Divergence of a cross-entropy run (classification, lm). Regression uses train.divergence_factor
# (1e6 by default: a least-squares loss can legitimately start tiny and a bad step size blows
# it up by decades), but a cross-entropy loss is bounded near log(n_classes) by any sane model,
# so a run whose full training loss exceeds CE_DIVERGENCE_FACTOR x max(initial loss,
# log(n_classes)) has diverged (measured: Adam runs ending 27x and 2,500x above their
# initial loss were 'completed' under the 1e6 rule). A run is also diverged when, after
# CHANCE_AFTER_EVALS regular evaluations, its training loss is worse than both chance
# (log(n_classes), a uniform guess) and its own initial loss: it got worse than where it
# started *and* than guessing; a slow run (tiny step size) gets better, however little.
CE_DIVERGENCE_FACTOR = 5.0
CHANCE_AFTER_EVALS = 3


def _host_read(x):
    """Every device-to-host read of the training loop goes through here (on CUDA each is a
    synchronisation): a tensor gives ``tolist()``, a CUDA event is waited for (None)."""
    if isinstance(x, torch.Tensor):
        return x.tolist()
    x.synchronize()
    return None


def _phase(name: str) -> None:
    """Hook (a no-op): ``"steps"`` when the steps after an evaluation begin, ``"eval"`` when
    the next evaluation begins, ``"end"`` after the last. Tests patch it to check that no read
    happens in between."""


class _Series:
    """Per-step values of one logged quantity between two evaluations, kept where they are:
    Python numbers on the host, 0-dim tensors on their device (stacked every CHUNK steps, on
    the device), read by ``values`` at the evaluation."""

    CHUNK = 1024

    def __init__(self):
        self.parts: list = []        # Python numbers, or 1-D tensors of stacked per-step values
        self._pending: list = []     # 0-dim tensors not stacked yet
        self.n = 0

    def append(self, v) -> None:
        self.n += 1
        if isinstance(v, torch.Tensor):
            if self._pending and self._pending[0].device != v.device:
                self._stack()
            self._pending.append(v.detach().reshape(()).to(torch.float64, copy=True))
            if len(self._pending) >= self.CHUNK:
                self._stack()
        else:
            self._stack()
            self.parts.append(v)

    def _stack(self) -> None:
        if self._pending:
            self.parts.append(torch.stack(self._pending))
            self._pending = []

    def tensors(self) -> list:
        self._stack()
        return [p for p in self.parts if isinstance(p, torch.Tensor)]

    def clear(self) -> None:
        self.parts, self._pending, self.n = [], [], 0


def _read_all(series: list, extra: list) -> tuple[list, list]:
    """Python values of every ``_Series`` in ``series`` and of the 0-dim tensors in ``extra``
    with one ``_host_read`` per device (normally one in all)."""
    chunks = [t for s in series for t in s.tensors()] + [e.reshape(1).to(torch.float64) for e in extra]
    by_dev: dict = {}
    for t in chunks:
        by_dev.setdefault(t.device, []).append(t)
    got = {}
    for dev, ts in by_dev.items():
        flat = iter(_host_read(torch.cat(ts)))
        for t in ts:
            got[id(t)] = [next(flat) for _ in range(t.numel())]
    out = []
    for s in series:
        vals = []
        for p in s.parts:
            vals.extend(got[id(p)] if isinstance(p, torch.Tensor) else [p])
        out.append(vals)
    return out, [got[id(t)][0] for t in chunks[len(chunks) - len(extra):]]


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


class DeviceError(ValueError):
    """``device=`` names a device this machine does not have; the message is one line."""


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"device={name} is not a device; valid: auto, cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            have = f"this machine has {n} CUDA device(s)" if n else "CUDA is not available here"
            raise DeviceError(f"device={name} but {have}; use device=auto (GPU when present) or device=cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device={name} but MPS is not available here; use device=auto or device=cpu")
    return dev


def run(cfg: dict, rundir, logger, *, interrupt_at_step: int | None = None) -> dict:
    tc, seed = cfg["train"], int(cfg["seed"])
    device = resolve_device(cfg["device"])
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)           # events, streams and RNG of this device
        # float32 math: TF32 matmuls and convolutions only with train.amp (reduced precision
        # by choice, recorded in the run's config); otherwise strict float32, cuDNN included
        # (torch's default lets cuDNN convolutions use TF32). No effect on float64.
        tf32 = bool(tc.get("amp"))
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
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

    with_replacement = tc.get("sampling", "reshuffle") == "with_replacement" and not full_batch
    if "rho" in data.info:
        # strong-growth constant of a batch of bs: drawn without replacement from n (reshuffle),
        # E||g_B||^2 = ||g||^2 + (n-b)/(b(n-1)) (E_i||g_i||^2 - ||g||^2); bs i.i.d. indices
        # (with_replacement), E||g_B||^2 = ||g||^2 + (E_i||g_i||^2 - ||g||^2)/b
        shrink = 1 / bs if with_replacement else (n - bs) / (bs * max(n - 1, 1))
        data.info["rho_b"] = 1 + shrink * (data.info["rho"] - 1)
    try:
        opt_cfg = constants.resolve(cfg["optimizer"], data.info)
    except constants.ExpressionError as e:
        raise validate.ConfigError(f"optimizer: {e}") from None
    validate.check_values("optimizer", opt_cfg)      # e.g. lr: -1/L_max, now a number
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

    # SAG keeps one stored gradient per fixed batch: the batches are a fixed partition of all
    # n examples into steps_per_epoch slots (sizes differ by at most one, none is dropped) and
    # each step samples one uniformly (with replacement), as in the SAG paper. Drawn before
    # the resume block restores the order stream, so a resumed run has the same partition.
    slots = (torch.randperm(n, generator=order, device=device).tensor_split(steps_per_epoch)
             if getattr(opt, "needs_slot", False) else None)

    # ---- resume -----------------------------------------------------------------------
    c = Counters()
    perm, pos, init_loss = None, 0, None
    config_id = runid.config_id(cfg)
    ck = rundir.load_checkpoint(config_id, map_location=device)   # None: none, or moved aside
    if ck is not None:
        fresh = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()),
                 order.get_state(), torch.get_rng_state())
        try:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            order.set_state(ck["order_rng"].cpu())          # generator states are CPU byte tensors
            torch.set_rng_state(ck["torch_rng"].cpu())
            if device.type == "cuda" and ck.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
            resumed = Counters(**ck["counters"])
            rundir.truncate_metrics(resumed.step)
            c, perm, pos, init_loss = resumed, ck["perm"], ck["pos"], ck["init_loss"]
        except Exception as e:   # own ids but does not fit (edited model, corrupt metrics.jsonl)
            rundir.reject_checkpoint(f"does not fit this run ({store.one_line(e)})")
            model.load_state_dict(fresh[0])                # undo what was loaded before it failed
            opt.load_state_dict(fresh[1])
            order.set_state(fresh[2])
            torch.set_rng_state(fresh[3])
            ck = None
    if ck is None:
        rundir.clear_metrics()        # from scratch: rows of an earlier attempt would repeat steps
    last_ckpt = time.time()

    def next_batch():
        nonlocal perm, pos
        if full_batch:
            return None, None
        if slots is not None:
            # a Python int for the optimizer's table: SAG's one host read per step
            slot = int(_host_read(torch.randint(steps_per_epoch, (1,), generator=order, device=device))[0])
            return slots[slot], slot
        if with_replacement:       # bs i.i.d. uniform indices per step: the SGD theorems' sampling
            return torch.randint(n, (bs,), generator=order, device=device), None
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

    # per-step values of the window since the last evaluation (read there, see _Series)
    step_sizes, backtracks, polyak, batch_losses = _Series(), _Series(), _Series(), _Series()
    loss_steps: list[int] = []             # the step of each batch loss
    cuda = device.type == "cuda"
    timings: list = []                     # CUDA: (start, end) events of each step

    bar = progress.run_bar(f"{rundir.run_id} {str(cfg.get('method') or cfg['optimizer']['name'])[:24]}",
                           total_steps, initial=c.step)      # quiet in CI, in files, in joblib workers

    def read_window() -> tuple[dict, list]:
        """The window's opt/* statistics and its (step, batch loss) pairs, with one host read;
        adds the steps' CUDA time to ``c.wall_s``."""
        bl = batch_losses.tensors()
        if len({t.device for t in bl}) > 1:          # a Python-float loss on a CUDA run: on the host
            bl = [t.cpu() for t in bl]
        mean = [torch.cat(bl).mean()] if bl else []
        (ss, bt, pk, bl), extra = _read_all([step_sizes, backtracks, polyak, batch_losses], mean)
        if timings:
            _host_read(timings[-1][1])
            c.wall_s += sum(a.elapsed_time(b) for a, b in timings) / 1000.0
            timings.clear()
        out = {}
        if ss:
            out.update({"opt/step_size": sum(ss) / len(ss), "opt/step_size_min": min(ss),
                        "opt/step_size_max": max(ss), "opt/step_size_last": ss[-1]})
        if bt:
            bt = [int(b) for b in bt]
            out.update({"opt/backtracks": sum(bt) / len(bt), "opt/backtracks_max": max(bt),
                        "opt/zero_backtrack_frac": sum(b == 0 for b in bt) / len(bt)})
        if pk:
            out["opt/polyak_step"] = sum(pk) / len(pk)
        if extra:
            out["opt/batch_loss"] = extra[0]
        return out, list(zip(loss_steps, bl))

    def clear_window() -> None:
        for s in (step_sizes, backtracks, polyak, batch_losses):
            s.clear()
        loss_steps.clear()
        timings.clear()

    def log(rec, opt_stats):
        rec.update(opt_stats)
        rec["opt/n_forwards"], rec["opt/n_backwards"] = c.forwards, c.backwards
        failed = opt.state.get("failed_forwards")      # line searches: trial forwards of failed
        if isinstance(failed, int):                   # searches so far (a host int, no sync)
            rec["opt/failed_forwards"] = failed
        rundir.append_metrics(rec)
        logger.log(rec, step=c.step)
        bar.loss(rec["train/loss"])

    def checkpoint():
        # tensors and plain values only: it must load with weights_only=True (no code runs)
        rundir.save_checkpoint({
            "model": model.state_dict(), "optimizer": opt.state_dict(), "order_rng": order.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
            "counters": c.__dict__.copy(), "perm": perm, "pos": pos, "init_loss": init_loss}, config_id)

    def snapshot():
        """The state at an evaluation, kept (on the device) to redo the window's steps when a
        batch loss in it turns out NaN/Inf (see the module docstring)."""
        return (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), order.get_state(),
                torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None,
                copy.deepcopy(c), perm, pos)

    def restore(snap) -> None:
        nonlocal c, perm, pos
        model.load_state_dict(snap[0])
        opt.load_state_dict(snap[1])
        order.set_state(snap[2])
        torch.set_rng_state(snap[3])
        if snap[4] is not None:
            torch.cuda.set_rng_state(snap[4], device)
        c, perm, pos = copy.deepcopy(snap[5]), snap[6], snap[7]
        clear_window()

    status, diverged_step = "completed", None
    if c.step == 0:
        rec = evaluate()
        init_loss = rec["train/loss"]
        if 0 in noise_points:
            record_noise(rec)
        log(rec, {})

    # ---- divergence thresholds (see CE_DIVERGENCE_FACTOR) -------------------------------------
    chance = math.log(data.num_classes) if task != "regression" and (data.num_classes or 0) > 1 else None
    if task == "regression":
        limit = float(tc["divergence_factor"]) * max(init_loss, 1e-12)
    else:
        limit = CE_DIVERGENCE_FACTOR * max(init_loss, chance or 0.0, 1e-12)

    def first_bad(window, threshold: float) -> int:
        """The first step since the last evaluation whose batch loss was non-finite or above
        ``threshold`` (the evaluation only noticed it); the evaluation's step when none was."""
        return next((s for s, v in window if not math.isfinite(v) or v > threshold), c.step)

    def counter(v) -> int:
        return v if isinstance(v, int) else int(_host_read(v))

    def one_step() -> None:
        nonlocal loss_value
        if cuda:
            ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            ev[0].record()
        else:
            t0 = time.perf_counter()
        if getattr(opt, "needs_snapshot", False) and c.step % steps_per_epoch == 0:
            opt.set_snapshot(full_loss)               # SVRG: full gradient at the snapshot
            c.grad_evals += n
            c.forwards += 1
            c.backwards += 1
        idx, slot = next_batch()
        b = n if idx is None else int(idx.numel())       # a SAG slot may hold more than bs
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
        before = optimizers.stats(opt, host=False)
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
        after = optimizers.stats(opt, host=False)
        n_back = (counter(after["n_backwards"]) - counter(before.get("n_backwards", 0)) if own_counts
                  else max(1, calls[0] if is_lbfgs else 1))
        c.backwards += n_back
        c.forwards += calls[0]
        c.grad_evals += n_back * b
        c.samples += b
        c.step += 1
        v = after["step_size"]                 # Python numbers as before; tensors stay on the device
        step_sizes.append(v if isinstance(v, torch.Tensor) else float(v))
        if "backtracks" in after:
            v = after["backtracks"]
            backtracks.append(v if isinstance(v, torch.Tensor) else int(v))
        if "polyak_step" in after:
            v = after["polyak_step"]
            polyak.append(v if isinstance(v, torch.Tensor) else float(v))
        loss_value = None
        if loss is not None:
            loss_value = torch.as_tensor(loss).detach().double().reshape(())
            batch_losses.append(loss_value)
            loss_steps.append(c.step)
        if cuda:
            ev[1].record()
            timings.append(ev)
        else:
            c.wall_s += time.perf_counter() - t0

    model.train()
    loss_value = None
    eager = False            # redoing a window after a NaN/Inf batch loss: read every batch loss
    snap = snapshot()
    _phase("steps")
    while c.step < total_steps:
        # ---- one optimizer step (no host read, see the module docstring) -------------------
        one_step()
        bar.update()                   # redraws on a time basis (about once a second)
        nonfinite = eager and loss_value is not None and not math.isfinite(_host_read(loss_value))

        # ---- evaluation, divergence, checkpoint ----------------------------------------------
        if (c.step % eval_every == 0 or c.step == total_steps or c.step in noise_points or c.step in log_points
                or nonfinite):            # a NaN/Inf batch loss: stop now, training on is meaningless
            _phase("eval")
            opt_stats, window = read_window()
            bad = next((s for s, v in window if not math.isfinite(v)), None)
            if bad is not None and bad < c.step and not eager:
                # the steps after the first NaN/Inf batch loss should not have been taken: back
                # to the last evaluation, and redo the steps up to that one reading each loss
                restore(snap)
                eager = True
                _phase("steps")
                continue
            nonfinite = bad is not None
            eager = False
            rec = evaluate()
            if c.step in noise_points:
                record_noise(rec)
            full = rec["train/loss"]
            worse_than_chance = (chance is not None and c.step >= CHANCE_AFTER_EVALS * eval_every
                                 and full > max(chance, init_loss))
            log(rec, opt_stats)
            clear_window()
            if nonfinite or not math.isfinite(full) or full > limit:
                status, diverged_step = "diverged", first_bad(window, limit)
                break
            if worse_than_chance:
                status, diverged_step = "diverged", first_bad(window, max(chance, init_loss))
                break
            # batch spikes the full loss does not confirm were noise: the window starts afresh
            if stop_below is not None and rec.get("train/subopt", rec["train/loss"]) <= float(stop_below):
                status = "reached_target"
                break
            if time.time() - last_ckpt >= float(tc["checkpoint_every_s"]) and c.step < total_steps:
                checkpoint()
                last_ckpt = time.time()
            if interrupt_at_step is not None and c.step >= interrupt_at_step:
                raise Interrupted(f"interrupted at step {c.step}")
            if c.step < total_steps:
                snap = snapshot()
                _phase("steps")
    _phase("end")
    bar.close()
    if tc.get("save_model"):
        torch.save(model.state_dict(), rundir.path / "model_final.pt")
    final = rundir.read_metrics()[-1]
    return {"status": status, "diverged_step": diverged_step, "steps": c.step,
            "epochs": c.samples / n, "grad_evals": c.grad_evals, "wall_s": c.wall_s,
            "n_forwards": c.forwards, "n_backwards": c.backwards, "init_loss": init_loss,
            "final": {k: v for k, v in final.items() if "/" in k and not k.startswith("noise/")},
            "data_info": {k: v for k, v in data.info.items() if not isinstance(v, (list, tuple))
                          or (len(v) <= 16 and all(isinstance(x, (int, float)) for x in v))}}
