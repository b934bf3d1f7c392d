"""Evaluation on whole splits: loss, accuracy, per-class-group metrics, gradient norms and
gradient-noise samples. Everything runs in chunks so memory stays bounded."""
from __future__ import annotations

import torch

from experiments import losses


def chunks(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def class_groups(info: dict, num_classes: int | None, n_groups: int, device) -> torch.Tensor | None:
    """Group id per class: the dataset's own grouping (``info['class_groups']``) if it has one,
    else classes sorted by training frequency (most frequent first) and cut into ``n_groups``
    groups holding about equal numbers of samples (Kunstner et al. 2024)."""
    if info.get("class_groups") is not None:
        return torch.as_tensor(info["class_groups"], dtype=torch.long, device=device)
    counts = info.get("class_counts")
    if not n_groups or counts is None or num_classes is None:
        return None
    counts = torch.as_tensor(counts, dtype=torch.float64)
    order = torch.argsort(counts, descending=True, stable=True)
    mass_before = torch.cumsum(counts[order], 0) - counts[order]   # samples in more frequent classes
    group_sorted = torch.clamp((mass_before / counts.sum() * n_groups).floor().long(), max=n_groups - 1)
    groups = torch.empty(num_classes, dtype=torch.long)
    groups[order] = group_sorted
    return groups.to(device)


@torch.no_grad()
def split_metrics(model, task, x, y, chunk: int, groups: torch.Tensor | None, prefix: str) -> dict:
    was_training = model.training
    model.eval()
    loss_sum, correct_sum, count = 0.0, 0.0, 0
    if groups is not None:
        n_g = int(groups.max()) + 1
        g_loss = torch.zeros(n_g, dtype=torch.float64, device=x.device)
        g_corr = torch.zeros(n_g, dtype=torch.float64, device=x.device)
        g_cnt = torch.zeros(n_g, dtype=torch.float64, device=x.device)
    for s in chunks(x.shape[0], chunk):
        out = model(x[s])
        ls = losses.per_sample(task, out, y[s])
        cr = losses.correct(task, out, y[s])
        loss_sum += float(ls.double().sum())
        count += ls.numel()
        if cr is not None:
            correct_sum += float(cr.double().sum())
        if groups is not None:
            gid = groups[y[s]].reshape(-1)
            g_loss.index_add_(0, gid, ls.reshape(-1).double())
            g_corr.index_add_(0, gid, cr.reshape(-1).double())
            g_cnt.index_add_(0, gid, torch.ones_like(ls.reshape(-1), dtype=torch.float64))
    model.train(was_training)
    out = {f"{prefix}/loss": loss_sum / count}
    if task != "regression":
        out[f"{prefix}/acc"] = correct_sum / count
    if task == "lm":
        out[f"{prefix}/ppl"] = float(torch.exp(torch.tensor(loss_sum / count)))
    if groups is not None:
        for g in range(len(g_cnt)):
            if g_cnt[g] > 0:
                out[f"{prefix}/loss/{g}"] = float(g_loss[g] / g_cnt[g])
                out[f"{prefix}/acc/{g}"] = float(g_corr[g] / g_cnt[g])
    return out


def full_gradient(model, task, x, y, chunk: int, params) -> list[torch.Tensor]:
    """Gradient of the mean training loss, accumulated over chunks (dropout as in training)."""
    grads = [torch.zeros_like(p) for p in params]
    n = x.shape[0]
    for s in chunks(n, chunk):
        out = model(x[s])
        loss = losses.per_sample(task, out, y[s]).mean() * ((s.stop - s.start) / n)
        for acc, g in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                acc.add_(g)
    return grads


def grad_norm(grads) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def noise_norms(model, task, x, y, chunk: int, params, batch_size: int, n_samples: int,
                gen: torch.Generator) -> list[float]:
    """||g_B - g|| for ``n_samples`` minibatches B of ``batch_size`` drawn without replacement
    within each sample (Kunstner et al. 2023 measure the noise of the minibatch gradient)."""
    full = full_gradient(model, task, x, y, chunk, params)
    out = []
    n = x.shape[0]
    for _ in range(n_samples):
        idx = torch.randperm(n, generator=gen, device=gen.device)[:batch_size].to(x.device)
        loss = losses.per_sample(task, model(x[idx]), y[idx]).mean()
        gb = torch.autograd.grad(loss, params, allow_unused=True)
        sq = sum(((b if b is not None else torch.zeros_like(f)) - f).double().pow(2).sum()
                 for b, f in zip(gb, full))
        out.append(float(torch.sqrt(sq)))
    return out
