"""paper_mnist: the paper table. The MNIST panel of the PoNoS paper's figure 1 (Galli, Rauhut &
Schmidt 2023; MLP 784-512-256-10, batch 128, 200 epochs) run by the suite, each number beside
the published one (reference/algorithms.md section 2.5). Not one of the talk's figures
(``scripts.figures.EXTRAS``): ``python -m scripts.reproduce --figures paper_mnist --profile full``.

Plot: training loss (whole training set) and test accuracy against epochs, one line per method;
the published values are drawn as crosses at the epoch they refer to.

Check: one Claim per (method, quantity) of the published table. The published numbers are read
off the paper's plot (section 2.5 gives "about", "≈"), so each has a tolerance written beside it
in PUBLISHED, derived from how precisely a plot can be read and from the spread one seed can
show, not from our measurements:

- test accuracy: within ACC_TOL = 0.3 percentage points of the published value (or range). The
  accuracy axis of the figure resolves about 0.1 point (the paper separates 0.985 from
  0.982-0.983), and one run's test accuracy has a sampling error of its own (10,000 test images:
  the binomial standard error of 98.5% is 0.12 point), so 0.3 point is about 2.5 standard
  errors plus the reading error.
- training loss: within a factor LOSS_FACTOR = 3 of the published value (half a decade: the
  paper's values are read off a log axis whose labelled ticks are decades, "about 1e-4").
- PoNoS's "1e-6 by about epoch 50": the crossing epoch is reported, and the claim is that the
  measured training loss at the published epoch (50) is within the same factor 3 of 1e-6; a
  tolerance in epochs would need the slope of the paper's curve, which we do not have, while
  the factor 3 is the same log-axis reading error as for the other losses.

The paper's PoNoS curve ends once its loss reaches 1e-6 ("then stops by rule", section 2.5); the
rule is not in the released code we have, so PoNoS trains the full 200 epochs like the others,
its accuracy claim uses epoch 200, and the measured text also gives its accuracy at the epoch its
loss first reached 1e-6.

A claim is INCONCLUSIVE when the run does not have the paper's setting: fewer training images
than all 60,000 (the quick profile's subset), another batch size, or a budget shorter than the
epoch the published value refers to. The quick profile is a smoke test of the pipeline; it cannot
reach the paper's numbers and all its claims are INCONCLUSIVE, with the numbers shown.

One seed (the paper's code runs ``runs=[0]``): this table checks that the implementation
reproduces the published curves; it is not a seed-robust claim (``scripts.figures.seeds``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scripts.figures.common import Claim, display, legend_label, mask_below, plt, save, style

FIG = "paper_mnist"
TITLE = "Paper table: the PoNoS paper's MNIST MLP panel (figure 1), measured beside the published numbers"
METHODS = ("ponos", "sls_ponos", "sps_ponos", "sgd", "adam")     # method labels of the grid
SOURCE = "Galli, Rauhut & Schmidt 2023, fig. 1, MNIST MLP (read off the plot; reference/algorithms.md 2.5)"
PAPER_EPOCHS = 200
PAPER_BATCH = 128
PAPER_TRAIN_SIZE = 60000
ACC_TOL = 0.003          # absolute, 0.3 percentage points (module docstring)
LOSS_FACTOR = 3.0        # multiplicative (module docstring)
TARGET = 1e-6            # PoNoS's loss level of "1e-6 by about epoch 50"
FLOOR = 1e-12            # losses below this are not drawn

# (method, quantity) -> (published low, published high, epoch it refers to, text)
# a range where the paper's figure gives one ("0.982-0.983"), low == high otherwise.
ACC, LOSS, CROSS = "final test accuracy", "final training loss", f"epoch training loss first <= {TARGET:g}"
PUBLISHED = {
    ("ponos", ACC): (0.985, 0.985, PAPER_EPOCHS, "0.985"),
    # PoNoS's curve ends at 1e-6 (the paper stops it by rule); only "at most 1e-6" is published
    ("ponos", LOSS): (0.0, TARGET, PAPER_EPOCHS, "<= 1e-6 (curve stopped at 1e-6)"),
    ("ponos", CROSS): (50, 50, 50, "about 50"),
    ("sls_ponos", ACC): (0.982, 0.983, PAPER_EPOCHS, "0.982-0.983"),
    ("sls_ponos", LOSS): (6e-6, 6e-6, PAPER_EPOCHS, "about 6e-6"),
    ("sps_ponos", ACC): (0.982, 0.983, PAPER_EPOCHS, "0.982-0.983"),
    ("sps_ponos", LOSS): (2e-6, 2e-6, PAPER_EPOCHS, "about 2e-6"),
    ("sgd", ACC): (0.982, 0.983, PAPER_EPOCHS, "0.982-0.983"),
    ("sgd", LOSS): (1e-4, 1e-4, PAPER_EPOCHS, "about 1e-4"),
    ("adam", ACC): (0.982, 0.983, PAPER_EPOCHS, "0.982-0.983"),
    ("adam", LOSS): (1e-4, 1e-4, PAPER_EPOCHS, "about 1e-4"),
}


def _runs_by_method(store) -> dict:
    """{method label: the first index row of that method} (one seed; a second seed is ignored)."""
    runs = store.runs(FIG)
    if "seed" in runs.columns:
        runs = runs.sort_values("seed")
    out = {}
    for _, r in runs.iterrows():
        out.setdefault(str(r["method"]), r)
    return out


def epochs(row, cur) -> np.ndarray:
    """Epochs of a curve's points as the paper counts them: passes of a drop_last loader, i.e.
    step / (n_train // batch) (the store's ``epoch`` column is samples / n_train: 200 such
    epochs of 468 steps of 128 are 199.68 there). Falls back to that column when the index
    lacks the number of training images."""
    n, bs = row.get("summary.data_info.n_train"), row.get("train.batch_size")
    try:
        per_epoch = int(float(n)) // int(float(bs))
    except (TypeError, ValueError):
        return cur.epoch.to_numpy(float)
    return cur.step.to_numpy(float) / per_epoch if per_epoch > 0 else cur.epoch.to_numpy(float)


def value_at(store, row, metric: str, split: str, epoch: float) -> float:
    """The value logged at the last evaluation at or before ``epoch`` (nan when none)."""
    cur = store.curve(row.run_id, metric, split)
    at = cur.value.to_numpy(float)[epochs(row, cur) <= epoch + 1e-9]
    return float(at[-1]) if len(at) else math.nan


def last_epoch(store, row) -> float:
    cur = store.curve(row.run_id, "loss", "train")
    return float(epochs(row, cur).max()) if len(cur) else 0.0


def crossing_epoch(store, row, threshold: float = TARGET) -> float:
    cur = store.curve(row.run_id, "loss", "train")
    hit = epochs(row, cur)[cur.value.to_numpy(float) <= threshold]
    return float(hit[0]) if len(hit) else math.nan


def _is_int(value, n: int) -> bool:
    """``value`` (an int, a float or a string in the index; the batch size may be 'full') equals n."""
    try:
        return float(value) == n
    except (TypeError, ValueError):
        return False


def _not_paper_setting(store, row, epoch: float) -> str | None:
    """Why the run cannot be compared with the paper at ``epoch`` (None when it can)."""
    why = []
    n = row.get("summary.data_info.n_train")
    n = row.get("dataset.subset") if pd.isna(n) else n
    if not pd.isna(n) and int(n) < PAPER_TRAIN_SIZE:
        why.append(f"{int(n)} training images, not {PAPER_TRAIN_SIZE}")
    bs = row.get("train.batch_size")
    if not pd.isna(bs) and not _is_int(bs, PAPER_BATCH):
        why.append(f"batch {bs}, not {PAPER_BATCH}")
    last = last_epoch(store, row)
    if last < epoch - 1e-9:
        why.append(f"run ends at epoch {last:g}, the published value is at epoch {epoch:g}")
    return "; ".join(why) or None


def _within(method: str, quantity: str, measured: float) -> bool:
    lo, hi, _, _ = PUBLISHED[(method, quantity)]
    if not math.isfinite(measured):
        return False
    if quantity == ACC:
        return lo - ACC_TOL <= measured <= hi + ACC_TOL
    # losses (and the crossing, judged by the loss at the published epoch): a factor on a log axis
    if quantity == CROSS:
        lo = hi = TARGET
    return (lo / LOSS_FACTOR if lo > 0 else 0.0) <= measured <= hi * LOSS_FACTOR


def _tolerance_text(quantity: str) -> str:
    if quantity == ACC:
        return f"within {ACC_TOL * 100:g} percentage points"
    if quantity == CROSS:
        return f"loss at the published epoch within a factor {LOSS_FACTOR:g} of {TARGET:g}"
    return f"within a factor {LOSS_FACTOR:g}"


def _rows(store) -> list[dict]:
    runs = _runs_by_method(store)
    out = []
    for (method, quantity), (lo, hi, epoch, text) in PUBLISHED.items():
        row = {"method": method, "display": display(method), "quantity": quantity, "published": text,
               "source": SOURCE, "tolerance": _tolerance_text(quantity)}
        r = runs.get(method)
        if r is None:
            out.append({**row, "measured": "no run", "value": math.nan, "status": "FAIL",
                        "note": f"no {method} run in the store"})
            continue
        if quantity == ACC:
            v = value_at(store, r, "acc", "test", epoch)
            measured = f"{v:.4f}"
            cross = crossing_epoch(store, r) if method == "ponos" else math.nan
            if math.isfinite(cross):    # the paper's PoNoS curve ends there (module docstring)
                measured += f" (at epoch {cross:g}, where the loss first reached {TARGET:g}: " \
                            f"{value_at(store, r, 'acc', 'test', cross):.4f})"
        elif quantity == LOSS:
            v = value_at(store, r, "loss", "train", epoch)
            measured = f"{v:.2g}"
        else:
            v = value_at(store, r, "loss", "train", epoch)    # judged on the loss at epoch 50
            cross = crossing_epoch(store, r)
            measured = f"epoch {cross:g}" if math.isfinite(cross) else "never"
            measured += (f" (loss at epoch {epoch:g}: {v:.2g})" if last_epoch(store, r) >= epoch
                         else f" (run ends at epoch {last_epoch(store, r):g})")
        why = _not_paper_setting(store, r, epoch)
        if str(r.get("summary.status")) == "diverged":      # ends early, but that is a result, not a budget
            why, status = "diverged", "FAIL"
        else:
            status = "INCONCLUSIVE" if why else ("PASS" if _within(method, quantity, v) else "FAIL")
        out.append({**row, "measured": measured, "value": v, "status": status,
                    "note": why or f"at epoch {epoch:g}"})
    return out


def published_rows(store) -> list[dict]:
    """The paper table for the report: one dict per (method, quantity) with the keys method
    (display name), quantity, published, measured, source, and also tolerance and status."""
    return [{"method": r["display"], "quantity": r["quantity"], "published": r["published"],
             "measured": r["measured"], "source": r["source"], "tolerance": r["tolerance"],
             "status": r["status"]} for r in _rows(store)]


def check(store):
    claims = []
    for r in _rows(store):
        note = r["note"]
        if r["status"] == "INCONCLUSIVE":
            note = f"not the paper's setting ({note}): a smoke run cannot reach the paper's numbers"
        claims.append(Claim(
            FIG, f"{r['display']}: {r['quantity']} matches the PoNoS paper ({r['published']}; {r['tolerance']})",
            f"measured {r['measured']} ({note}); published {r['published']}", r["status"]))
    return claims


def plot(store, out_dir):
    p = plt()
    fig, (ax_l, ax_a) = p.subplots(1, 2, figsize=(10, 4))
    runs = _runs_by_method(store)
    accs = []
    for m in METHODS:
        if m not in runs:
            continue
        r, st = runs[m], style(m)
        lr = r.get("optimizer.lr") if m in ("sgd", "adam") else None
        label = legend_label(m, lr)
        loss = store.curve(r.run_id, "loss", "train")
        acc = store.curve(r.run_id, "acc", "test")
        ax_l.semilogy(epochs(r, loss), mask_below(loss.value, FLOOR), color=st["color"], ls=st["ls"], label=label)
        ax_a.plot(epochs(r, acc), acc.value, color=st["color"], ls=st["ls"], label=label)
        accs.append(acc.value.to_numpy(float))
        # the published values, where the paper gives a single number or a range
        lo, hi, ep, _ = PUBLISHED[(m, LOSS)]
        if lo > 0:
            ax_l.plot([ep], [math.sqrt(lo * hi)], "x", color=st["color"], ms=8, mew=2)
        lo, hi, ep, _ = PUBLISHED[(m, ACC)]
        ax_a.errorbar([ep], [(lo + hi) / 2], yerr=[[(hi - lo) / 2]], fmt="x", color=st["color"], ms=8, mew=2)
    if "ponos" in runs:
        ax_l.plot([PUBLISHED[("ponos", CROSS)][2]], [TARGET], "x", color=style("ponos")["color"], ms=8, mew=2)
    ax_l.plot([], [], "x", color="0.3", ms=8, mew=2, label="published (PoNoS paper, fig. 1)")
    ax_l.set_ylabel("training loss (all training images)")
    ax_a.set_ylabel("test accuracy")
    for ax in (ax_l, ax_a):
        ax.set_xlabel("epoch")
    if accs:
        lows = [float(np.nanmin(a[len(a) // 2:])) for a in accs if len(a)]
        if lows:
            ax_a.set_ylim(max(0.0, min(min(lows), 0.982) - 0.005), 1.0)
    if ax_l.get_legend_handles_labels()[0]:
        ax_l.legend(fontsize=7)
    if not runs:
        ax_l.text(0.5, 0.5, "no runs", ha="center", transform=ax_l.transAxes)
    fig.suptitle("MNIST, MLP 784-512-256-10, batch 128 (PoNoS paper, fig. 1)", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)
