"""The HTML report (scripts/report.py): provenance header, valid HTML, one plotly copy and a plot
per figure with log/linear buttons and methods grouped for show/hide, claims inside their
figure's section, the published numbers beside the measured ones, reference verdicts flagged
where they differ; and the reference folder (scripts/reference.py)."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from scripts import reference, report
from scripts.figures.common import Store
from tests.fake_store import write_store

VOID = {"meta", "img", "br", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
ENV = {"git_sha": "0123456789abcdef0123", "git_dirty": True, "torch": "9.9.1", "hydra": "1.3.8", "pandas": "3.1.1",
       "python": "3.11.7", "numpy": "2.4.6", "cuda": None, "device": "cpu", "device_name": "x86_64",
       "num_threads": 1, "host": "testhost"}


class Balance(HTMLParser):
    """Every opened tag is closed in order (void elements aside)."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def _run(rid, method, final, lr=0.1, n=50, metric="loss", dataset="mnist", wall=12.5):
    steps = np.arange(n) * 10
    values = np.geomspace(1.0, final, n)
    return {"run_id": rid, "method": method, "choices": {"optimizer": method, "dataset": dataset},
            "environment": ENV,
            "columns": {"optimizer.lr": lr, "seed": 0, "summary.status": "completed", "summary.wall_s": wall,
                        "dataset.name": dataset},
            "curves": {("train", metric, -1): (steps, values), ("test", "acc", -1): (steps, np.linspace(0.5, 0.97, n))}}


ROWS = [{"figure": "sls_deep", "claim": "MNIST, MLP: SLS beats Adam", "measured": "1e-3 vs 2e-3", "status": "PASS"},
        {"figure": "sls_deep", "claim": "MNIST, MLP: step grows", "measured": "x2", "status": "INCONCLUSIVE"},
        {"figure": "overparam_sgd", "claim": "d >= n: linear", "measured": "1e-30", "status": "FAIL"}]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    write_store(tmp_path, "sls_deep", [_run("r_sls", "sls", 3e-4, n=2000), _run("r_adam", "adam", 1e-3)],
                manifest=False)
    lstsq = write_store(tmp_path / "l", "overparam_sgd", [_run("r_gd", "sgd_const", 1e-20, metric="subopt",
                                                               dataset="lstsq", wall=7.5)], manifest=False)
    import pandas as pd                 # one store with both figures' runs
    for name in ("index.parquet", "curves.parquet"):
        both = pd.concat([pd.read_parquet(tmp_path / name), pd.read_parquet(lstsq / name)], ignore_index=True)
        both.to_parquet(tmp_path / name)
    (tmp_path / "runs" / "r_gd").mkdir(parents=True)
    (tmp_path / "runs" / "r_gd" / "config.json").write_text((lstsq / "runs" / "r_gd" / "config.json").read_text())
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "claims.json").write_text(json.dumps([{**ROWS[0]}, {**ROWS[1], "status": "PASS"}]))
    out = report.write(tmp_path, ROWS, profile="quick", reference_dir=ref)
    return out.read_text()


def _section(html_text, fig):
    m = re.search(rf"<section id='{fig}'>(.*?)</section>", html_text, re.S)
    assert m, f"no section {fig}"
    return m.group(1)


def test_header_has_counts_and_provenance(page):
    head = page.split("<h2 id='contents'>")[0]
    for s, n in (("PASS", 1), ("FAIL", 1), ("INCOMPLETE", 0), ("INCONCLUSIVE", 1)):
        assert re.search(rf">{n} {s}</span>", head), s
    assert "0123456789ab (dirty)" in head                          # the runs' git sha and dirty flag
    assert "torch 9.9.1" in head and "hydra 1.3.8" in head and "pandas 3.1.1" in head
    assert re.search(r"matplotlib \d", head) and re.search(r"wandb (\d|not installed)", head)
    assert "testhost: cpu" in head and "3 runs" in head
    assert "32 s of training" in head                              # 12.5 + 12.5 + 7.5
    assert "this page made by" in head and "pytest" in head        # the command line of this process
    toc = page.split("<h2 id='contents'>")[1].split("<section")[0]
    assert "href='#sls_deep'" in toc and "href='#overparam_sgd'" in toc
    assert re.search(r"overparam_sgd.*?<td class='num'>1</td><td class='num'>8 s</td>", toc, re.S)


def test_page_is_balanced_html_with_one_plotly_copy(page):
    p = Balance()
    p.feed(page)
    p.close()
    assert not p.errors and not p.stack, (p.errors[:5], p.stack)
    assert page.startswith("<!DOCTYPE html>")
    from plotly.offline import get_plotlyjs
    js = get_plotlyjs()
    assert page.count(js[:200]) == 1 and len(page) < len(js) + 2_000_000
    assert "cdn.plot.ly" not in page.split(js)[0] + page.split(js)[1]        # nothing fetched


def test_each_figure_has_a_plot_with_toggles_and_method_groups(page):
    for fig, methods in (("sls_deep", {"sls", "adam"}), ("overparam_sgd", {"sgd_const"})):
        sec = _section(page, fig)
        assert f"id='plot-{fig}'" in sec
        spec = json.loads(re.search(rf"id='spec-{fig}'>(.*?)</script>", sec, re.S).group(1))
        assert {t["legendgroup"] for t in spec["data"]} == methods
        buttons = [b["args"][0] for m in spec["layout"]["updatemenus"] for b in m["buttons"]]
        assert {"yaxis.type": "log"} in buttons and {"yaxis.type": "linear"} in buttons
        assert {"xaxis.type": "log"} in buttons
        assert all(len(t["x"]) <= report.MAX_POINTS for t in spec["data"])
    spec = json.loads(re.search(r"id='spec-sls_deep'>(.*?)</script>", page, re.S).group(1))
    sls = [t for t in spec["data"] if t["legendgroup"] == "sls" and t.get("visible", True)][0]
    assert sls["x"][0] == 0.0 and sls["x"][-1] == 19990 / 100 and sls["y"][-1] == pytest.approx(3e-4)
    metric_menu = [m for m in spec["layout"]["updatemenus"] if m["buttons"][0]["method"] == "update"]
    assert [b["label"] for b in metric_menu[0]["buttons"]] == ["training loss", "test accuracy"]
    # one legend entry per method (clicking it hides the method's runs); the run's settings in the hover
    assert [t["name"] for t in spec["data"] if t.get("showlegend") and t.get("visible", True)] == ["SLS", "Adam"]
    assert "run r_sls" in sls["hovertemplate"]


def test_claims_sit_in_their_figure_section_with_the_reference(page):
    sls, lstsq = _section(page, "sls_deep"), _section(page, "overparam_sgd")
    assert "SLS beats Adam" in sls and "step grows" in sls and "SLS beats Adam" not in lstsq
    assert "d &gt;= n: linear" in lstsq
    row = re.search(r"<tr>.*?step grows.*?</tr>", sls, re.S).group(0)
    assert "differs" in row and "PASS" in row                        # INCONCLUSIVE now, PASS in the reference
    row = re.search(r"<tr>.*?SLS beats Adam.*?</tr>", sls, re.S).group(0)
    assert "differs" not in row and "(same)" in row
    assert "not in the reference" in lstsq


def test_published_numbers_beside_the_measured_ones(page):
    sls = _section(page, "sls_deep")
    table = re.search(r"<table class='published'>(.*?)</table>", sls, re.S).group(1)
    row = re.search(r"<tr><td>MNIST MLP: SLS final training loss</td>(.*?)</tr>", table, re.S).group(1)
    assert "≈ 6e-6" in row and "0.0003 (median of 1 run" in row and "PoNoS" in row
    assert "n/a" in re.search(r"CIFAR-10 ResNet-34: SLS(.*?)</tr>", table, re.S).group(1)     # no such run
    assert "Published numbers: none" in _section(page, "overparam_sgd")


def test_run_table_is_compact_and_linked(page):
    sls = _section(page, "sls_deep")
    table = re.search(r"<table class='runs'>(.*?)</table>", sls, re.S).group(1)
    assert "href='runs/r_sls/config.json'" in table
    assert [h for h in re.findall(r"<th>(.*?)</th>", table)] == ["run", "method", "step size", "seed", "status",
                                                                "final train loss", "wall time"]


def test_subsample_keeps_the_ends_and_the_budget():
    idx = report.subsample(10_000)
    assert idx[0] == 0 and idx[-1] == 9_999 and len(idx) <= report.MAX_POINTS and np.all(np.diff(idx) > 0)
    assert list(report.subsample(7)) == list(range(7))


def test_reference_folder_has_claims_thumbnails_and_provenance(tmp_path):
    from PIL import Image
    res = tmp_path / "res"
    write_store(res, "sls_deep", [_run("r", "sls", 1e-3)], manifest=False)
    (res / "claims.json").write_text(json.dumps(ROWS))
    (res / "claims.md").write_text("| table |\n")
    (res / "figures").mkdir()
    Image.new("RGB", (1800, 900), "white").save(res / "figures" / "sls_deep.png")
    assert reference.make(res, tmp_path / "out") == []
    with Image.open(tmp_path / "out" / "thumbs" / "sls_deep.png") as im:
        assert im.size == (400, 200)
    assert json.loads((tmp_path / "out" / "claims.json").read_text()) == ROWS
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "Produced from commit" in readme and "PASS 1" in readme and "testhost (x86_64)" in readme
    table, note = reference.load(tmp_path / "out")
    assert table[("overparam_sgd", "d >= n: linear")] == "FAIL" and "Produced from commit" in note
    # a store of another profile is refused
    write_store(tmp_path / "full", "sls_deep", [_run("r", "sls", 1e-3)], profile="full")
    (tmp_path / "full" / "claims.json").write_text(json.dumps(ROWS[:1]))
    assert "not a quick-profile store" in reference.make(tmp_path / "full", tmp_path / "out2")[0]


def test_interactive_curves_leave_out_round_off_and_non_positive_values():
    """f - f* below 1e-15 of its start is float64 round-off: left out (None), as are values a log
    axis cannot show; other metrics keep every finite value."""
    from scripts.report import masked
    assert masked([1.0, 1e-8, 3e-16, 0.0, -1e-17, float("nan")], "subopt") == [1.0, 1e-8, None, None, None, None]
    assert masked([2.0, 1e-20, 0.5], "loss") == [2.0, 1e-20, 0.5]
    # the floor is relative to where the run started, so a diverging run keeps its early points
    assert masked([1.0, 1e-3, 1e100], "subopt") == [1.0, 1e-3, 1e100]
