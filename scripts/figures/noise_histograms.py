"""noise_histograms: the heavy-tailed noise hypothesis (Kunstner et al. 2023, Fig. 1, top row).
Histograms of the gradient-noise norm ||g_B - g|| (B drawn without replacement) at
initialization (and later in training) for vision and language tasks, with QQ-plots against a
Gaussian of the same median and spread.

Tail statistics (both are 0-centred or fixed for a Gaussian, so a Gaussian reference needs no
fit): the quantile ratio T = (q99 - q50) / (q75 - q25), which is 2.326 / 1.349 = 1.72 for any
Gaussian and grows with a heavy right tail, and the excess kurtosis (0 for a Gaussian). The ratio
q99 / median is printed too but not tested: it mixes tail shape with the spread relative to
the level (1 + 2.33 sigma/mu for a Gaussian), so it is not comparable across tasks.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from scripts.figures.common import Claim, fmt_num, plt, save, verdict

FIG = "noise_histograms"
TITLE = "gradient-noise norms are heavier-tailed for language than for vision (at initialization)"
LANGUAGE = ("tinyshakespeare", "wikitext2", "ptb")
GAUSS_T = (NormalDist().inv_cdf(0.99)) / (NormalDist().inv_cdf(0.75) - NormalDist().inv_cdf(0.25))


def kind(dataset) -> str:
    return "language" if str(dataset) in LANGUAGE else "vision"


def tail_stats(x) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 8:
        return {"n": len(x), "T": math.nan, "kurt": math.nan, "p99_med": math.nan}
    q25, q50, q75, q99 = np.quantile(x, [0.25, 0.5, 0.75, 0.99])
    z = (x - x.mean()) / x.std() if x.std() > 0 else x * 0
    return {"n": len(x), "T": (q99 - q50) / (q75 - q25) if q75 > q25 else math.inf,
            "kurt": float((z ** 4).mean() - 3.0), "p99_med": q99 / q50 if q50 > 0 else math.inf,
            "median": q50}


def samples(store) -> dict:
    """{dataset: {"init": [norms over seeds], "last": [...], "last_epoch": float}}"""
    runs = store.runs(FIG)
    c = store.curves
    c = c[(c.split == "noise") & (c.metric == "grad_noise_norm")]
    out = {}
    for _, r in runs.iterrows():
        mine = c[c.run_id == r.run_id]
        if mine.empty:
            continue
        d = out.setdefault(str(r.get("dataset.name")), {"init": [], "last": [], "last_epoch": math.nan,
                                                          "batch": r.get("train.noise_batch_size")})
        steps = sorted(mine.step.unique())
        d["init"].extend(mine[mine.step == steps[0]].value.tolist())
        if len(steps) > 1:
            last = mine[mine.step == steps[-1]]
            d["last"].extend(last.value.tolist())
            d["last_epoch"] = float(last.epoch.iloc[0])
    return out


def plot(store, out_dir):
    p = plt()
    data = samples(store)
    names = sorted(data, key=lambda d: (kind(d) == "language", d))
    cols = max(1, len(names))
    fig, axes = p.subplots(2, cols, figsize=(3.8 * cols, 6.2), squeeze=False)
    nd = NormalDist()
    for j, ds in enumerate(names):
        d = data[ds]
        ax, qq = axes[0][j], axes[1][j]
        for key, color, lab in (("init", "C0", "at init"), ("last", "C1", f"after {d['last_epoch']:.3g} epochs")):
            x = np.asarray(d[key], float)
            if len(x) < 2:
                continue
            st = tail_stats(x)
            ax.hist(x, bins=40, color=color, alpha=0.55, density=True,
                    label=f"{lab}: $T = {st['T']:.2f}$, excess kurtosis {st['kurt']:.1f}")
            # QQ: standardized by median and IQR so a Gaussian falls on the diagonal
            xs = np.sort(x)
            q = np.array([nd.inv_cdf((i + 0.5) / len(xs)) for i in range(len(xs))])
            iqr = np.quantile(xs, 0.75) - np.quantile(xs, 0.25)
            zs = (xs - np.median(xs)) / (iqr / 1.349) if iqr > 0 else xs * 0
            qq.plot(q, zs, ".", ms=3, color=color, label=lab)
        lim = 3.2
        qq.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="Gaussian")
        ax.set_title(f"{ds} ({kind(ds)}), $|B| = {fmt_num(d['batch'])}$", fontsize=9)
        ax.set_xlabel(r"$\|g_B - g\|$")
        ax.legend(fontsize=7)
        qq.set_xlabel("Gaussian quantile")
        qq.set_ylabel("(norm - median) / (IQR/1.349)")
        qq.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.suptitle(f"gradient-noise norms; Gaussian reference $T = {GAUSS_T:.2f}$, excess kurtosis 0", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, FIG)


def check(store):
    data = samples(store)
    vis = {d: tail_stats(v["init"]) for d, v in data.items() if kind(d) == "vision"}
    lang = {d: tail_stats(v["init"]) for d, v in data.items() if kind(d) == "language"}
    if not vis or not lang:
        return [Claim(FIG, TITLE, f"need noise samples for a vision and a language dataset; have {sorted(data)}",
                      "FAIL")]
    fmt = lambda d, s: (f"{d}: T={s['T']:.2f}, excess kurtosis={s['kurt']:.2f}, "
                        f"q99/median={s['p99_med']:.2f} (scale-dependent) (n={s['n']})")
    measured = "; ".join([fmt(d, s) for d, s in sorted(vis.items())] + [fmt(d, s) for d, s in sorted(lang.items())])
    measured += f"; Gaussian: T={GAUSS_T:.2f}, excess kurtosis=0"
    ok = all(sl["T"] > sv["T"] and sl["kurt"] > sv["kurt"] for sl in lang.values() for sv in vis.values())
    ok &= all(sl["T"] > GAUSS_T for sl in lang.values())
    claims = [Claim(FIG, "at initialization every language task has a larger tail ratio T = (q99-q50)/(q75-q25) and "
                    "a larger excess kurtosis of ||g_B - g|| than every vision task, and T above the Gaussian's "
                    f"{GAUSS_T:.2f}", measured, verdict(ok))]
    later = {d: tail_stats(v["last"]) for d, v in data.items() if len(v["last"]) >= 8}
    if later:
        ok_l = all(later[dl]["T"] > later[dv]["T"] for dl in later if kind(dl) == "language"
                   for dv in later if kind(dv) == "vision")
        both = any(kind(d) == "language" for d in later) and any(kind(d) == "vision" for d in later)
        claims.append(Claim(FIG, "later in training (last noise sample of the run) the language tail ratio T is still "
                            "above the vision one",
                            "; ".join(f"{d} after {data[d]['last_epoch']:.3g} epochs: T={s['T']:.2f}, "
                                      f"excess kurtosis={s['kurt']:.2f}" for d, s in sorted(later.items())),
                            verdict(ok_l) if both else "INCONCLUSIVE"))
    return claims
