"""Reading the result store for figures and claim checks.

A figure's runs are listed in ``results/manifests/<figure>.json`` when it exists (written by
``scripts.reproduce`` from the preset's sweep; it pins the selection), else selected by query
on the index (the runs recorded with ``figure=<figure>``, of one profile; see ``Store``): run
ids, the method label of each job (the name of its entry in the grid's ``sweep.methods``, so
two uses of one optimizer class, e.g. constant and decreasing SGD, stay apart) and its
config-group choices. Step sizes and other
settings are read from the index columns (``optimizer.lr``), never from file names. Runs are
stored once even when several figures use them.
"""
from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Claim:
    figure: str
    claim: str
    measured: str
    status: str          # PASS | FAIL | INCONCLUSIVE (the quick profile cannot show it; numbers given)

    def row(self) -> dict:
        return self.__dict__.copy()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Store:
    """The result store of ``results_dir`` as figures see it: the index (one row per finished
    run), the curves, and each figure's runs.

    A figure's runs are those its manifest lists when ``manifests/<figure>.json`` exists (the
    manifest pins the selection: ``scripts.reproduce`` writes it from the preset's sweep).
    Without one they are selected by query on the index: the runs whose recorded ``figure`` tag
    is the figure, of one profile (``profile.name``; the profile of the most recently finished
    of them when several were run, so a quick and a full sweep never mix). So a hand-typed
    ``experiments.train -m experiment=<fig> profile=quick``, a SLURM or a joblib sweep reaches its
    figure without any manifest."""

    def __init__(self, results_dir):
        self.dir = Path(results_dir)
        self._index = None
        self._curves = None
        self._by_run = None
        self._manifests = {}
        self._records = {}

    @property
    def index(self) -> pd.DataFrame:
        if self._index is None:
            p = self.dir / "index.parquet"
            self._index = pd.read_parquet(p) if p.exists() else pd.DataFrame(columns=["run_id"])
        return self._index

    @property
    def curves(self) -> pd.DataFrame:
        if self._curves is None:
            p = self.dir / "curves.parquet"
            self._curves = pd.read_parquet(p) if p.exists() else pd.DataFrame(
                columns=["run_id", "step", "epoch", "grad_evals", "split", "metric", "value", "group"])
        return self._curves

    def manifest(self, figure: str) -> dict | None:
        """The figure's manifest: the file when there is one, else one built from the index query
        (``"selected_by": "query"``, the same fields: figure, profile, jobs with run_id, method and
        choices); None when neither names a run."""
        if figure not in self._manifests:
            p = self.dir / "manifests" / f"{figure}.json"
            if p.exists():
                man = json.loads(p.read_text())
                man.setdefault("selected_by", "manifest")
            else:
                man = self._query_manifest(figure)
            self._manifests[figure] = man
        return self._manifests[figure]

    def selection(self, figure: str) -> str:
        """How the figure's runs were chosen, in words (for the report and the claims table)."""
        man = self.manifest(figure)
        if man is None:
            return "no runs: no manifest and no run tagged with this figure in the index"
        n = len(man.get("jobs") or [])
        if man.get("selected_by") == "query":
            other = man.get("other_profiles") or {}
            left = "; not used: " + ", ".join(f"{k} runs of profile {p}" for p, k in other.items()) if other else ""
            return f"selected by query: {n} runs tagged figure={figure}, profile {man.get('profile')}{left}"
        return f"pinned by manifests/{figure}.json: {n} runs, profile {man.get('profile')}"

    def _query_manifest(self, figure: str) -> dict | None:
        index = self.index
        if "figure" not in index.columns or not len(index):
            return None
        also = {}      # runs that another figure made and this figure's sweep found DONE
        if "also_figures" in index.columns:
            for rid, text in zip(index["run_id"], index["also_figures"]):
                try:
                    shared = json.loads(text) if isinstance(text, str) else {}
                except ValueError:
                    shared = {}
                if isinstance(shared, dict) and figure in shared:
                    also[str(rid)] = shared[figure]
        rows = index[(index["figure"].astype(str) == figure) | index["run_id"].astype(str).isin(list(also))]
        if not len(rows):
            return None
        profile, other = None, {}
        if "profile.name" in rows.columns:
            profiles = rows["profile.name"].astype(str)
            if profiles.nunique() > 1:          # the last sweep's profile: quick and full never mix
                when = rows["summary.finished"].astype(str) if "summary.finished" in rows.columns \
                    else pd.Series("", index=rows.index)
                profile = profiles.loc[when.sort_values(kind="stable").index[-1]]
                other = profiles[profiles != profile].value_counts().to_dict()
                rows = rows[profiles == profile]
            else:
                profile = profiles.iloc[0]
        jobs = []
        for _, r in rows.iterrows():
            rec = self.record(r["run_id"])
            choices = {k: v for k, v in (rec.get("choices") or {}).items() if v is not None}
            method = also.get(str(r["run_id"]), r.get("method")) if str(r.get("figure")) != figure else r.get("method")
            jobs.append({"run_id": str(r["run_id"]), "choices": choices,
                         "method": method if isinstance(method, str) and method else choices.get("optimizer")})
        return {"figure": figure, "profile": profile, "selected_by": "query", "jobs": jobs,
                "other_profiles": {str(k): int(v) for k, v in other.items()}}

    def record(self, run_id: str) -> dict:
        """The run's ``config.json`` (config, choices, environment: versions, git sha, device,
        host); {} when it cannot be read (the index still has the flattened config)."""
        run_id = str(run_id)
        if run_id not in self._records:
            try:
                self._records[run_id] = json.loads((self.dir / "runs" / run_id / "config.json").read_text())
            except (OSError, ValueError):
                self._records[run_id] = {}
        return self._records[run_id]

    def runs(self, figure: str) -> pd.DataFrame:
        """Index rows of the figure's runs, with the manifest's ``method`` label and
        ``choice.<group>`` columns (the manifest's label wins over the one a run was first
        recorded with: a run shared by two figures may carry a different label in each)."""
        man = self.manifest(figure)
        if man is None or not man.get("jobs"):
            return self.index.iloc[0:0]
        jobs = pd.DataFrame([{"run_id": j["run_id"],
                              "method": j.get("method") or j["choices"].get("optimizer"),
                              **{f"choice.{k}": v for k, v in j["choices"].items()}}
                             for j in man["jobs"]]).drop_duplicates("run_id")
        index = self.index.drop(columns=[c for c in ("method",) if c in self.index.columns])
        return index.merge(jobs, on="run_id", how="inner")

    def _run_curves(self, run_id: str) -> pd.DataFrame:
        """The curves of one run (split once into a dict: figures ask for many runs)."""
        if self._by_run is None:
            self._by_run = dict(tuple(self.curves.groupby("run_id", sort=False)))
        return self._by_run.get(run_id, self.curves.iloc[0:0])

    def curve(self, run_id: str, metric: str, split: str = "train", group: int = -1) -> pd.DataFrame:
        c = self._run_curves(run_id)
        sel = c[(c.split == split) & (c.metric == metric) & (c.group == group)]
        return sel.sort_values("step").reset_index(drop=True)

    def final(self, run_id: str, metric: str, split: str = "train", group: int = -1) -> float:
        cur = self.curve(run_id, metric, split, group)
        return float(cur.value.iloc[-1]) if len(cur) else math.nan


def label(row) -> str:
    """Legend label of a run: its method label (the sweep block's name for it)."""
    return str(row.get("method") or row.get("optimizer.name"))


def loglog_slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)[0])


# Two ladders that share one point (acceleration: kappa at a fixed rho_b and rho_b at a fixed kappa;
# noise_floor: the step at a fixed batch and the batch at a fixed step). A table row is
# (method, x1, x2, seed, value).
def ladders(tab) -> tuple[float, float]:
    """(the x2 of the x1 ladder, the x1 of the x2 ladder): the x2 with the most distinct x1 values
    and the x1 with the most distinct x2 values."""
    def most(key, other):
        counts = {}
        for t in tab:
            if math.isfinite(t[key]):
                counts.setdefault(t[key], set()).add(round(t[other], 12))
        return max(counts, key=lambda v: (len(counts[v]), -v)) if counts else math.nan
    return most(2, 1), most(1, 2)


def ladder(tab, method, axis: int, fixed: float) -> dict[int, tuple]:
    """{seed: (x, values)} of one ladder, sorted by x: axis 1 = x1 (at x2 = fixed), 2 = x2 (at x1 = fixed)."""
    other = 2 if axis == 1 else 1
    out = {}
    for t in tab:
        if t[0] == method and math.isclose(t[other], fixed, rel_tol=1e-6):
            out.setdefault(t[3], []).append((t[axis], t[4]))
    return {s: tuple(map(np.array, zip(*sorted(v)))) for s, v in sorted(out.items())}


def ladder_span(series: dict, what: str) -> str:
    """'kappa 10..10000' over the x values of a ladder's seeds."""
    xs = sorted({float(v) for x, _ in series.values() for v in x})
    return f"{what} {fmt_num(min(xs))}..{fmt_num(max(xs))}" if xs else f"no {what} ladder"


def first_below(cur: pd.DataFrame, threshold: float, x: str = "step") -> float:
    hit = cur[cur.value <= threshold]
    return float(hit[x].iloc[0]) if len(hit) else math.nan


def save(fig, out_dir: Path, fig_id: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{fig_id}.png", out_dir / f"{fig_id}.pdf"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths


def empty_figure(message: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return fig


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as p
    return p


# ---- one look for every figure ------------------------------------------------------------------
# method label (the key of a grid's ``sweep.methods``) -> (display name, mathtext display name or
# None, colour, line style, marker). One hue per family of methods; within a family the grid's plain
# method is solid and its variants dashed / dash-dotted, so the same optimizer looks the same in every
# figure. Markers are only drawn where a figure asks for them (sparse curves: one point per kappa,
# per batch size, per step size).
METHODS = {
    # deterministic and variance-reduced methods (least squares)
    "gd": ("GD (1/L)", r"GD ($1/L$)", "k", "-", "s"),
    "sag": ("SAG", None, "#8c564b", "-", "v"),
    "svrg": ("SVRG", None, "#b8860b", "-", "^"),
    # SGD and its step-size rules
    "sgd": ("SGD", None, "#1f77b4", "-", "o"),
    "sgd_m": ("SGD+m", None, "#1f77b4", "--", "o"),
    "sgd_const": ("SGD, step 1/L_max", r"SGD, step $1/L_{\max}$", "#1f77b4", "-.", "o"),
    "sgd_decreasing": ("SGD, decreasing steps", None, "#1a2a6c", "-", "D"),
    "sgd_theory": ("SGD, step 1/(rho L)", r"SGD, step $1/(\rho L)$", "#17becf", "-", "o"),
    "sgd_with_replacement": ("SGD, with replacement", None, "#08519c", "-", "o"),
    "sgd_reshuffle": ("SGD, reshuffled each epoch", None, "#08519c", "--", "s"),
    "accel_sgd": ("accelerated SGD", None, "#d95f02", "-", "s"),
    # line searches and Polyak steps
    "sls": ("SLS", None, "#2ca02c", "-", "o"),
    "sls_ponos": ("SLS (reset 11, cap 10)", None, "#2ca02c", "--", "o"),
    "sls_prec": ("SLS_prec", r"SLS$_\mathrm{prec}$", "#2ca02c", "-.", "o"),
    "sps": ("SPS", None, "#ff7f0e", "-", "^"),
    "sps_ponos": ("SPS (cap 10)", None, "#ff7f0e", "--", "^"),
    "ponos": ("PoNoS", None, "#9467bd", "-", "D"),
    "ponos_cp05": ("PoNoS (c_p = 0.5)", r"PoNoS ($c_p = 0.5$)", "#9467bd", "-.", "D"),
    "ponos_prec": ("PoNoS_prec", r"PoNoS$_\mathrm{prec}$", "#9467bd", "--", "D"),
    # Adam and the sign-like methods
    "adam": ("Adam", None, "#d62728", "-", "s"),
    "adam_nom": ("Adam (beta1=0)", r"Adam ($\beta_1=0$)", "#d62728", "--", "s"),
    "sign": ("sign descent", None, "#00796b", "-", "v"),
    "sign_m": ("sign descent+m", None, "#00796b", "--", "v"),
    "rsign": ("rescaled sign", None, "#00796b", "-.", "<"),
    "ngd": ("normalized GD", None, "#bcbd22", "-", ">"),
    "ngd_m": ("normalized GD+m", None, "#bcbd22", "--", ">"),
    "lion": ("Lion", None, "#e377c2", "-", "*"),
}
# labels not in METHODS (a user's own method): a colour from this list and a dotted line, a style
# no label of METHODS has
FALLBACK_COLORS = ("#e7298a", "#66a61e", "#a6761d", "#555555", "#1b9e77", "#7570b3", "#e6ab02", "#984ea3",
                   "#4daf4a", "#377eb8", "#a50f15", "#08519c")
FALLBACK_LS = ":"
FALLBACK_MARKERS = ("o", "s", "^", "v", "D", "P", "X")
# the points of a step-size grid that are not the selected one
GRID_STYLE = {"color": "0.65", "lw": 0.8, "ls": "-"}


def style(method, markers: bool = False) -> dict:
    """Colour, line style and (with ``markers``) marker of a method label, the same in every figure.
    A label outside METHODS gets a stable style from a CRC of its name (not from the plotting order,
    and not Python's salted ``hash``)."""
    method = str(method)
    if method in METHODS:
        _, _, color, ls, marker = METHODS[method]
    else:
        h = zlib.crc32(method.encode())
        color, ls = FALLBACK_COLORS[h % len(FALLBACK_COLORS)], FALLBACK_LS
        marker = FALLBACK_MARKERS[(h // len(FALLBACK_COLORS)) % len(FALLBACK_MARKERS)]
    return {"color": color, "ls": ls, "marker": marker if markers else None}


def display(method, tex: bool = False) -> str:
    """Display name of a method label (plain text for claim texts; ``tex``: with mathtext, for
    legends and titles). Unknown labels are shown as they are."""
    method = str(method)
    if method not in METHODS:
        return method
    plain, mathtext = METHODS[method][:2]
    return mathtext if tex and mathtext else plain


def lr_tex(lr) -> str:
    """A step size in mathtext: 0.01 -> $10^{-2}$, 0.03 -> $3\times10^{-2}$, 10^-1.5 -> $10^{-1.5}$
    (half-decade grids), 3 -> $3$."""
    try:
        v = float(lr)
    except (TypeError, ValueError):
        return str(lr)
    if not math.isfinite(v) or v <= 0:
        return str(lr)
    e = math.log10(v)
    if abs(2 * e - round(2 * e)) < 1e-9 and round(2 * e) % 2:       # a half decade: 10^-1.5
        return rf"$10^{{{round(2 * e) / 2:g}}}$"
    k = math.floor(e + 1e-9)
    m = float(f"{v / 10 ** k:.3g}")
    if m >= 10:                                                        # 9.996 rounds up to 10
        m, k = m / 10, k + 1
    mant = f"{m:g}"
    if k == 0:
        return f"${mant}$"
    return rf"$10^{{{k}}}$" if mant == "1" else rf"${mant}\times10^{{{k}}}$"


def legend_label(method, lr=None) -> str:
    """Legend entry of a method (mathtext), with its step size for a point of a step-size grid."""
    name = display(method, tex=True)
    return f"{name} ({lr_tex(lr)})" if lr is not None and not _nan(lr) else name


def _nan(v) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def fmt_num(v) -> str:
    """A number for a title: integers as integers (1000, not 1000.0), others with :g."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isfinite(f) and f == int(f):
        return str(int(f))
    return f"{f:g}"


def mask_below(y, floor: float) -> np.ndarray:
    """``y`` as floats with the values below ``floor`` (and non-finite ones) set to NaN: the line
    ends where the data leaves the axis instead of drawing a fake plateau at the floor."""
    y = np.array(y, dtype=float)
    with np.errstate(invalid="ignore"):
        y[~np.isfinite(y) | ~(y >= floor)] = np.nan
    return y


def unique_legend_entries(axes) -> tuple[list, list]:
    """(handles, labels) of the labelled artists of ``axes``, one per label, in drawing order."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab and not lab.startswith("_") and lab not in seen:
                seen[lab] = h
    return list(seen.values()), list(seen)


def figure_legend(fig, axes, ncol: int | None = None, fontsize: float = 8):
    """One legend below the figure for all labelled lines of ``axes`` (saved with bbox_inches="tight",
    the canvas grows to hold it)."""
    handles, labels = unique_legend_entries(axes)
    if not handles:
        return None
    ncol = ncol or min(len(handles), 4)
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                      fontsize=fontsize, frameon=False)


def zoom_accuracy(ax, curves, top: float = 1.0):
    """y range of an accuracy panel from the data: from the lowest value over the second half of the
    curves (the early epochs are cut off) to ``top``, with a small margin."""
    lows, highs = [], []
    for y in curves:
        y = np.asarray(y, float)
        y = y[np.isfinite(y)]
        if len(y):
            lows.append(float(np.min(y[len(y) // 2:])))
            highs.append(float(np.max(y)))
    if not lows:
        return
    lo, hi = min(lows), min(top, max(highs))
    pad = max(0.05 * (hi - lo), 0.005)
    ax.set_ylim(max(0.0, lo - pad), min(top, hi + pad))
