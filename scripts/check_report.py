"""Render results/report.html in headless Chromium and say what a reader gets (not run in CI).

    python -m scripts.check_report [--report results/report.html] [--out /tmp/report_check]
                                   [--section overparam_sgd]

Takes a screenshot of the top of the page and of one figure section (PNG, in --out), reads the
DOM after the scripts ran, and prints: the JavaScript errors on the console, how many plotly
plots rendered of how many plot divs, the figure sections and the page size. Exits 1 when a
JavaScript error was logged or a plot did not render. Needs chromium on PATH
(``apt-get install -y chromium``).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

BUDGET_MS = 15000          # virtual time for the scripts (plotly draws every plot on load)
# shows only one section (headless Chromium's --screenshot neither follows a #fragment nor keeps
# a scroll position set by a script: the screenshot came out blank)
ONLY = "<style>body > :not(section#SECTION) {display: none}</style>"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _run(browser: str, args: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={BUDGET_MS}"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """Console messages of the page that are errors (Chromium logs them as CONSOLE lines)."""
    return [ln.strip() for ln in stderr.splitlines()
            if "CONSOLE" in ln and re.search(r"error|uncaught|exception", ln, re.I)]


def check(report: Path, out: Path, section: str | None) -> int:
    browser = chromium()
    if browser is None:
        print("error: no chromium on PATH; install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    url = report.resolve().as_uri()
    dom = _run(browser, ["--dump-dom", url])
    text = dom.stdout
    sections = re.findall(r"<section id=\"([^\"]+)\"", text)
    n_divs = len(re.findall(r"<div class=\"plot[\" ]", text))
    n_drawn = len(re.findall(r"class=\"plot-container plotly\"", text))
    n_svg = len(re.findall(r"class=\"main-svg\"", text))
    legend = re.findall(r'class="legendtext"[^>]*data-unformatted="([^"]*)"', text)
    errors = console_errors(dom.stderr)
    section = section or (sections[0] if sections else None)
    shots = []
    targets = [("top", url, "1300,1000")]
    if section:     # a copy of the page that shows the section alone
        copy = out / "section.html"
        copy.write_text(report.read_text().replace("</head>", ONLY.replace("SECTION", section) + "</head>", 1))
        targets.append((f"section_{section}", copy.resolve().as_uri(), "1300,1300"))
    for name, target, size in targets:
        png = out / f"{name}.png"
        r = _run(browser, [f"--window-size={size}", f"--screenshot={png}", target])
        errors += [e for e in console_errors(r.stderr) if e not in errors]
        shots.append(f"{png} ({png.stat().st_size / 1e3:.0f} kB)" if png.exists() else f"{png}: not written")
    print(f"report: {report} ({report.stat().st_size / 1e6:.2f} MB)")
    print(f"figure sections: {len(sections)} ({', '.join(sections)})")
    print(f"plotly: {n_drawn} of {n_divs} plot divs rendered ({n_svg} svg layers)")
    print(f"legend entries (one per method, click to hide): {len(legend)} ({', '.join(legend[:8])}"
          f"{', ...' if len(legend) > 8 else ''})")
    print(f"javascript errors on the console: {len(errors)}")
    for e in errors[:10]:
        print(f"  {e[:300]}")
    print("screenshots: " + "; ".join(shots))
    return 1 if errors or n_drawn < n_divs else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default="results/report.html")
    ap.add_argument("--out", default="/tmp/report_check")
    ap.add_argument("--section", default=None, help="figure id of the section to screenshot (default: the first)")
    args = ap.parse_args(argv)
    report = Path(args.report)
    if not report.exists():
        print(f"error: no {report}; run `make report` first", file=sys.stderr)
        return 2
    return check(report, Path(args.out), args.section)


if __name__ == "__main__":
    sys.exit(main())
