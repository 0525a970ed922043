"""A bench's HTML page: the KernelBench table and a speedup distribution per level, self-contained (the run
report's inline CSS and SVG; no network), with a link to each problem's own run report where it has one."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from kernelwright.eval.kernelbench.markdown import (
    baseline_text,
    fast_p_compile_line,
    no_gpu_note,
    outcome_rows,
    precision_text,
    problem_rows,
    speedup_rows,
    spend_rows,
)
from kernelwright.eval.kernelbench.rows import ProblemRow
from kernelwright.eval.kernelbench.table import OVERALL, BenchTable
from kernelwright.eval.report.page import RENDER_MARK, css, section
from kernelwright.eval.report.svg import Axes, document, esc
from kernelwright.eval.report.tables import table
from kernelwright.tools.run_folder import HTML_REPORT_FILE

# Speedup bins of the distribution plot: [low, high) over eager; the first bar is the problems with no
# verified kernel.
SPEEDUP_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.5, 0.8), (0.8, 1.0), (1.0, 1.25), (1.25, 1.5),
                                                 (1.5, 2.0), (2.0, 4.0), (4.0, float("inf")))
NOT_VERIFIED = "not verified"


def bin_label(low: float, high: float) -> str:
    if low == 0.0:
        return f"<{high:g}x"
    return f">={low:g}x" if high == float("inf") else f"{low:g}-{high:g}x"


def speedup_counts(rows: Sequence[ProblemRow]) -> list[tuple[str, int]]:
    """(bar label, problems) for the distribution plot: not verified first, then each speedup bin."""
    speeds = [r.speedup_vs_eager for r in rows if r.verified and r.speedup_vs_eager is not None]
    counts = [(NOT_VERIFIED, sum(1 for r in rows if not r.verified))]
    counts += [(bin_label(lo, hi), sum(1 for s in speeds if lo <= s < hi)) for lo, hi in SPEEDUP_BINS]
    return counts


def distribution_svg(level: str, rows: Sequence[ProblemRow]) -> str:
    counts = speedup_counts(rows)
    top = max(n for _, n in counts) or 1
    ax = Axes(760, 260, -0.5, len(counts) - 0.5, 0.0, top * 1.15, left=56, bottom=46)
    body = [ax.frame("speedup over eager (best verified kernel)", "problems", x_ticks=list(range(len(counts))),
                     x_labels=[label for label, _ in counts])]
    for i, (label, n) in enumerate(counts):
        x0, x1 = ax.px(i - 0.38), ax.px(i + 0.38)
        y = ax.py(n)
        status = "st-rejected" if label == NOT_VERIFIED else "st-passed"
        body.append(f'<rect class="bar {status}" x="{x0}" y="{y}" width="{round(x1 - x0, 1)}" '
                    f'height="{round(ax.py(0) - y, 1)}"><title>{esc(label)}: {n}</title></rect>'
                    f'<text class="bar-value" x="{(x0 + x1) / 2}" y="{y - 4}" text-anchor="middle">{n}</text>')
    return document(760, 260, body, f"speedup distribution, {level}")


def _link(row: ProblemRow, page_dir: Path) -> str:
    report = Path(row.run_dir) / HTML_REPORT_FILE if row.run_dir else None
    if report is None or not report.exists():
        return esc(row.key)
    return f'<a href="{esc(os.path.relpath(report, page_dir))}">{esc(row.key)}</a>'


def _problem_table(rows: Sequence[ProblemRow], without_gpu: bool, page_dir: Path) -> str:
    """Each problem (linked to its run report) with its outcome; figures right-aligned, the reason as text."""
    headers, cells = problem_rows(rows, without_gpu)
    numeric = {headers.index(h) for h in ("vs eager", "vs torch.compile", "x floor", "library", "seconds")}
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + f"<td>{_link(row, page_dir)}</td>" + "".join(
        f'<td{" class=num" if i in numeric else ""}>{esc(v)}</td>' for i, v in enumerate(cell) if i > 0) + "</tr>"
        for row, cell in zip(rows, cells))
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_bench_page(bench: BenchTable, title: str, page_dir: Path, search: str | None = None) -> str:
    notes = [precision_text(bench) + "."] + ([search + "."] if search else [])
    notes.append(no_gpu_note(bench) + "." if bench.without_gpu else baseline_text(bench))
    header = (f"<header><h1>{esc(title)}</h1>" + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
              + "</header>")
    results = table(*outcome_rows(bench))
    if not bench.without_gpu:
        results += ("<h3>speedups</h3>" + table(*speedup_rows(bench)) + f'<p class="note">{esc(fast_p_compile_line(bench.overall))}'
                    " (fast_p: share of all problems that are correct and more than p times faster; over all problems, "
                    "a problem with no verified kernel counts as 1.0x)</p>")
    results += "<h3>time and spend</h3>" + table(*spend_rows(bench))
    body = [header, section("kernelbench", "KernelBench table", results)]
    if not bench.without_gpu:
        plots = "".join(f"<h3>{esc(s.level)}</h3><div class=\"chart-wrap\">"
                        f"{distribution_svg(s.level, [r for r in bench.rows if r.level == s.level])}</div>"
                        for s in bench.levels if s.level != OVERALL)
        body.append(section("distribution", "Speedup distribution per level", plots))
    body.append(section("problems", "Problems", _problem_table(bench.rows, bench.without_gpu, page_dir)))
    body.append(f'<footer>written {esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by kernelwright bench</footer>')
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{css()}</style></head><body>{''.join(body)}{RENDER_MARK}</body></html>")
