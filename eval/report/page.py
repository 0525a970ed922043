"""Assemble the self-contained HTML report of a run (inline CSS and SVG; no network, no third-party code)."""

from __future__ import annotations

import difflib
import time
from importlib.resources import files
from pathlib import Path

from kernelwright.eval.report.charts import (
    Chart,
    failure_chart,
    lineage_chart,
    population_chart,
    progress_chart,
    roofline_chart,
)
from kernelwright.eval.report.kernel_usage_table import kernel_usage_table, roofline_line
from kernelwright.eval.report.profile_table import profile_table
from kernelwright.eval.report.run_data import RunData, load_run
from kernelwright.eval.report.svg import esc
from kernelwright.eval.report.tables import candidate_tables, model_spend_table, node_table, spend_table, table
from kernelwright.graphs.generations import generation_label
from kernelwright.graphs.sanitizing import sanitized_text
from kernelwright.tools.harness.sanitizer import OUT_OF_BOUNDS
from kernelwright.tools.run_folder import RunFolder

# Set once the page has been laid out and painted (two animation frames after the last element):
# the benchmark and the browser tests read it.
RENDER_MARK = ("<script>requestAnimationFrame(function(){requestAnimationFrame(function(){"
               "window.kwRenderedMs=performance.now();document.body.setAttribute('data-rendered','1');});});</script>")


def css() -> str:
    return files("kernelwright.eval.report").joinpath("style.css").read_text(encoding="utf-8")


def section(ident: str, title: str, content: str, note: str = "") -> str:
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<section id="{ident}"><h2>{esc(title)}</h2>{note_html}{content}</section>'


def _chart(chart: Chart, empty_class: str = "empty") -> str:
    if chart.svg:
        return f'<div class="chart-wrap">{chart.svg}</div>{chart.table}'
    return f'<p class="{empty_class}">{esc(chart.note)}</p>'


def plural(n: int, noun: str) -> str:
    return noun if n == 1 else f"{noun}s"


def counted(n: int, noun: str) -> str:
    """'1 generation', '2 generations'."""
    return f"{n} {plural(n, noun)}"


MAX_GENERATION_LINES = 12  # beyond this the header lists only the generations that added nothing


def generation_lines(run: RunData) -> list[str]:
    """What each generation added, one line each; only the empty ones (and a count) for long runs."""
    lines, full = [], []
    for gen in run.generations:
        members = run.generation_members(gen)
        if members:
            verified = sum(c.verified for c in members)
            full.append(f"{generation_label(gen)}: {counted(len(members), 'new candidate')}, {verified} verified")
            continue
        why = run.generation_errors(gen)
        line = f"{generation_label(gen)}: no new candidates" + (f" ({'; '.join(why[:2])})" if why else "")
        full.append(line)
        lines.append(line)
    if len(full) <= MAX_GENERATION_LINES:
        return full
    busy = len(full) - len(lines)
    return [f"{counted(busy, 'generation')} added candidates (see the charts)", *lines]


def _header(run: RunData) -> str:
    info = run.info
    best = run.best
    spent = info.get("spent") or {}
    tokens = sum(c.total_tokens for c in run.llm_calls) or spent.get("tokens", 0)
    cost = sum(c.cost_usd for c in run.llm_calls) or spent.get("cost_usd", 0.0)
    gpu = info.get("gpu") or (best.report.get("gpu") if best else None) or {}
    cards = [("best speedup vs eager", f"{best.speedup_vs_eager:.2f}x" if best else "none verified"),
             ("vs torch.compile", f"{best.speedup_vs_compile:.2f}x" if best and best.speedup_vs_compile else "-"),
             ("sanitized (memcheck)", sanitized_text(best.report.get("sanitizer")) if best else "-"),
             ("candidates", str(len(run.candidates))),
             ("verified", str(sum(c.verified for c in run.candidates.values()))),
             (plural(len(run.generations), "generation"), str(len(run.generations))),
             ("LLM tokens", f"{tokens:,}"),
             ("LLM cost", f"${cost:.4f}" if cost else "-"),
             ("wall time (agents + evaluation)", f"{float(spent.get('wall_s') or 0.0):.1f} s")]
    facts = [("run", run.run_id), ("problem", info.get("problem", "?")), ("status", run.status),
             ("started", info.get("started", "")), ("finished", info.get("finished", "")),
             ("models", ", ".join(info.get("models") or [])), ("GPU", gpu.get("name", "not recorded")),
             ("stop reason", info.get("stop_reason") or ""), ("kernelwright", info.get("kernelwright", ""))]
    card_html = "".join(f'<div class="card"><div class="card-value">{esc(v)}</div><div class="card-label">{esc(k)}</div>'
                        f"</div>" for k, v in cards)
    fact_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts if v)
    fact_html += _isolation_row(run)
    if lines := generation_lines(run):
        fact_html += ('<tr class="generations"><th>generations</th><td>'
                      + "".join(f'<div class="generation-line">{esc(line)}</div>' for line in lines) + "</td></tr>")
    warn = (f'<p class="note">{run.skipped_lines} unreadable event line(s) skipped (a run killed mid-write)</p>'
            if run.skipped_lines else "")
    return (f'<header><h1>kernelwright run <code>{esc(run.run_id)}</code></h1><div class="cards">{card_html}</div>'
            f'<table class="facts">{fact_html}</table>{warn}</header>')


def _isolation_row(run: RunData) -> str:
    """What candidate code ran under, in the harness's words: one line, or each with its count where they differ
    (a run resumed on another machine); said plainly when nothing was recorded, never guessed."""
    seen = run.isolation
    if not seen:
        lines = ["not recorded (no candidate reached an evaluation worker)"]
    elif len(seen) == 1:
        lines = [seen[0][0]]
    else:
        lines = [f"{line} ({counted(n, 'candidate')})" for line, n in seen]
    return ('<tr class="isolation"><th>isolation</th><td>'
            + "".join(f'<div class="isolation-line">{esc(line)}</div>' for line in lines) + "</td></tr>")


def unified_diff(parent: str, child: str, parent_name: str, child_name: str) -> str:
    lines = difflib.unified_diff(parent.splitlines(), child.splitlines(), parent_name, child_name, lineterm="")
    out = []
    for line in lines:
        cls = ("hunk" if line.startswith("@@") else "add" if line.startswith("+") and not line.startswith("+++")
               else "del" if line.startswith("-") and not line.startswith("---") else "ctx")
        out.append(f'<span class="{cls}">{esc(line)}</span>')
    return "".join(out)  # each line is a block-level span


def _timing_rows(report: dict) -> list[list[object]]:
    rows = []
    for name in ("candidate", "eager", "compiled"):
        stats = (report.get("timing") or {}).get(name) or {}
        if "median_ms" in stats:
            rows.append([name, f"{stats['median_ms']:.4f}", f"{stats.get('p20_ms', 0):.4f}",
                         f"{stats.get('p80_ms', 0):.4f}", stats.get("n_trials", "")])
    return rows


def _winner(run: RunData) -> str:
    best = run.best
    if best is None:
        return '<p class="empty">no verified candidate: nothing won</p>'
    verified = sorted((c for c in run.candidates.values() if c.verified), key=lambda c: -(c.speedup_vs_eager or 0.0))
    runner_up = next((c for c in verified if c.id != best.id), None)
    why = [f"fastest verified candidate: {best.speedup_vs_eager:.3f}x vs eager"
           + (f", {best.speedup_vs_compile:.3f}x vs torch.compile" if best.speedup_vs_compile else "")
           + (f" (next best {runner_up.short}: {runner_up.speedup_vs_eager:.3f}x)" if runner_up else "")]
    why.append(f"compute-sanitizer memcheck: sanitized {sanitized_text(best.report.get('sanitizer'))}")
    if failed_memcheck := [c.short for c in run.candidates.values() if c.reason == OUT_OF_BOUNDS]:
        why.append(f"rejected by memcheck (out_of_bounds) although their other checks passed: {', '.join(failed_memcheck)}")
    why.append(f"made by {best.agent} ({best.model or 'unknown model'}"
               + (f", temperature {best.temperature:g}" if best.temperature is not None else "")
               + f") in {generation_label(best.generation)}, prompt {best.prompt or '?'}")
    chain = run.lineage(best.id)
    steps = []
    for cand in chain:
        line = (f"<li><code>{esc(cand.short)}</code> {esc(cand.agent)}, {esc(generation_label(cand.generation))}: "
                f"{esc(f'{cand.speedup_vs_eager:.3f}x' if cand.verified else cand.status)}")
        if cand.critique and cand.id != best.id:
            line += f' <span class="critique">critic: {esc(cand.critique)}</span>'
        steps.append(line + "</li>")
    timing = _timing_rows(best.report)
    parts = ["<ul>" + "".join(f"<li>{esc(w)}</li>" for w in why) + "</ul>",
             f"<details{' open' if len(steps) <= 15 else ''}><summary>lineage: {len(steps)} step(s) from the first "
             f"proposal</summary><ol class=\"lineage-path\">{''.join(steps)}</ol></details>"]
    if timing:
        parts.append("<h3>timing (ms)</h3>" + table(["what", "median", "p20", "p80", "trials"], timing)
                     + roofline_line(best.report))
    if kernels := kernel_usage_table(best.report):
        parts.append("<h3>GPU kernels launched</h3>" + kernels)
    if best.profile:
        parts.append("<h3>profile (Nsight Compute)</h3>" + profile_table(best.profile))
    source = best.source()
    parent = run.candidates.get(best.parents[0]) if best.parents else None
    if parent is not None:
        diff = unified_diff(parent.source(), source, f"parent {parent.short}", f"winner {best.short}")
        parts.append(f'<h3>diff from its parent <code>{esc(parent.short)}</code></h3>'
                     f'<pre class="diff">{diff or esc("(identical source)")}</pre>')
    else:
        parts.append('<p class="note">a first proposal: no parent to diff against</p>')
    parts.append(f'<details open><summary>winning kernel source ({esc(best.source_path or "")})</summary>'
                 f'<pre class="code">{esc(source)}</pre></details>')
    return "".join(parts)


def render_report(run: RunData) -> str:
    progress, population = progress_chart(run), population_chart(run)
    lineage, roofline, failures = lineage_chart(run), roofline_chart(run), failure_chart(run)
    body = [
        _header(run),
        section("progress", "Best speedup and elite over generations", _chart(progress), progress.note),
        section("population", "Candidates per generation", _chart(population), population.note),
        section("winner", "The winning kernel and why it won", _winner(run)),
        section("lineage", "Lineage", _chart(lineage), lineage.note),
        section("roofline", "Roofline of profiled kernels", _chart(roofline), roofline.note if roofline.svg else ""),
        section("failures", "Failure reasons", _chart(failures), failures.note if failures.svg else ""),
        section("spend", "Spend per agent and model", model_spend_table(run)
                + "<h3>tokens and time per agent</h3>" + spend_table(run)
                + "<h3>time per graph node</h3>" + node_table(run)),
        section("candidates", "Candidates", candidate_tables(run)),
        f'<footer>written {esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by kernelwright report</footer>',
    ]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>kernelwright run "
            f"{esc(run.run_id)}</title><style>{css()}</style></head><body>{''.join(body)}{RENDER_MARK}</body></html>")


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the run's report (default: its place in the run folder, tools.run_folder); returns its path."""
    run = load_run(run_dir, messages=False)
    out = Path(output) if output else RunFolder(Path(run_dir)).html_report_path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run), encoding="utf-8")
    return out
