"""The report's charts as inline SVG: progress, population, lineage, roofline, failure reasons.

Large runs stay light: every chart draws at most a few thousand marks, and the
lineage graph keeps the winner's ancestry plus the fastest candidates (with a
note saying how many were left out).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass

from kernelwright.eval.report.svg import Axes, circle, document, esc, fmt, legend, polyline
from kernelwright.eval.run_data import Candidate, RunData

STATUS_ORDER = ("passed", "rejected", "error", "screened_out", "needs_gpu", "pending")
MAX_SCATTER = 6000  # marks in the progress scatter; beyond it failed candidates are counted, not drawn


@dataclass(frozen=True)
class Chart:
    svg: str  # empty when there is nothing to draw
    note: str = ""  # what was left out, or why there is no chart


def _jitter(cid: str) -> float:
    return (int(hashlib.blake2s(cid.encode(), digest_size=2).hexdigest(), 16) / 65535.0 - 0.5) * 0.6


def _status_class(status: str) -> str:
    return f"st-{status if status in STATUS_ORDER else 'error'}"


def elite_by_generation(run: RunData, population: int) -> dict[int, list[float]]:
    """Speedups of the elite kept after each generation (the top `population` verified so far)."""
    by_gen: dict[int, list[float]] = defaultdict(list)
    for cand in run.candidates.values():
        if cand.verified:
            by_gen[cand.generation].append(float(cand.speedup_vs_eager or 0.0))
    pool: list[float] = []
    out: dict[int, list[float]] = {}
    for gen in run.generations:
        pool = sorted(pool + by_gen.get(gen, []), reverse=True)[:population]
        out[gen] = list(pool)
    return out


def progress_chart(run: RunData) -> Chart:
    gens = run.generations
    verified = [c for c in run.candidates.values() if c.verified]
    if not gens or not run.candidates:
        return Chart("", "no candidates yet")
    population = int((run.info.get("settings") or {}).get("population") or 4)
    elite = elite_by_generation(run, population)
    top = max([float(c.speedup_vs_eager or 0.0) for c in verified] + [1.0]) * 1.12
    ax = Axes(760, 300, gens[0] - 0.5, gens[-1] + 0.5, 0.0, top, bottom=58)
    body = [ax.frame("generation", "speedup vs eager (x)", x_ticks=gens if len(gens) <= 25 else None)]
    body.append(f'<line class="baseline" x1="{ax.px(ax.x0)}" y1="{ax.py(1.0)}" x2="{ax.px(ax.x1)}" y2="{ax.py(1.0)}"/>')
    failed = [c for c in run.candidates.values() if not c.verified]
    drawn_failed = failed[: max(0, MAX_SCATTER - len(verified))]
    for cand in drawn_failed:
        body.append(f'<rect class="{_status_class(cand.status)} fail-mark" x="{ax.px(cand.generation + _jitter(cand.id)) - 2}" '
                    f'y="{ax.py(0) - 5}" width="4" height="4"><title>{esc(cand.short)} {esc(cand.status)} '
                    f'{esc(cand.reason or "")}</title></rect>')
    for cand in verified:
        body.append(circle(ax.px(cand.generation + _jitter(cand.id)), ax.py(float(cand.speedup_vs_eager or 0.0)), 3.2,
                           "pt st-passed", f"{cand.short} {cand.agent} gen {cand.generation}: "
                                           f"{cand.speedup_vs_eager:.3f}x"))
    best_line = [(ax.px(g), ax.py(e[0])) for g, e in elite.items() if e]
    mean_line = [(ax.px(g), ax.py(sum(e) / len(e))) for g, e in elite.items() if e]
    if best_line:
        body.append(polyline(mean_line, "line-elite"))
        body.append(polyline(best_line, "line-best"))
        body += [circle(x, y, 4.5, "pt-best") for x, y in best_line]
    body.append(legend([("line-best", "best so far"), ("line-elite", f"elite mean (top {population})"),
                        ("baseline", "eager (1x)")], ax.left, 296, shape="line"))
    note = (f"{len(failed) - len(drawn_failed)} failed candidates not drawn" if len(drawn_failed) < len(failed) else "")
    return Chart(document(760, 300, body, "best speedup and elite over generations"), note)


def population_chart(run: RunData) -> Chart:
    """Candidates per generation, stacked by outcome."""
    gens = run.generations
    if not gens or not run.candidates:
        return Chart("", "no candidates yet")
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for cand in run.candidates.values():
        counts[cand.generation][cand.status if cand.status in STATUS_ORDER else "error"] += 1
    top = max(sum(c.values()) for c in counts.values()) * 1.1
    ax = Axes(760, 220, gens[0] - 0.5, gens[-1] + 0.5, 0.0, top, bottom=58)
    body = [ax.frame("generation", "candidates", x_ticks=gens if len(gens) <= 25 else None)]
    width = max(2.0, min(40.0, (ax.px(1) - ax.px(0)) * 0.7))
    for gen in gens:
        base = 0
        for status in STATUS_ORDER:
            n = counts[gen][status]
            if not n:
                continue
            y_top, y_bottom = ax.py(base + n), ax.py(base)
            body.append(f'<rect class="bar {_status_class(status)}" x="{ax.px(gen) - width / 2}" y="{y_top}" '
                        f'width="{width}" height="{round(y_bottom - y_top, 1)}"><title>generation {gen}: {n} '
                        f'{esc(status)}</title></rect>')
            base += n
    present = [s for s in STATUS_ORDER if any(c[s] for c in counts.values())]
    body.append(legend([(_status_class(s), s) for s in present], ax.left, 216))
    return Chart(document(760, 220, body, "candidates per generation by outcome"))


def failure_chart(run: RunData) -> Chart:
    reasons: Counter[tuple[str, str]] = Counter()
    for cand in run.candidates.values():
        if cand.status != "passed":
            reasons[(cand.status, cand.reason or cand.status)] += 1
    if not reasons:
        return Chart("", "no failed candidates")
    rows = reasons.most_common(16)
    rest = sum(reasons.values()) - sum(n for _, n in rows)
    height = 30 + 24 * len(rows)
    most = rows[0][1]
    body = []
    for i, ((status, reason), n) in enumerate(rows):
        y = 12 + 24 * i
        w = round(460 * n / most, 1)
        body.append(f'<text class="bar-label" x="214" y="{y + 13}" text-anchor="end">{esc(reason)}</text>'
                    f'<rect class="bar {_status_class(status)}" x="220" y="{y}" width="{max(w, 1.0)}" height="18">'
                    f'<title>{esc(reason)} ({esc(status)}): {n}</title></rect>'
                    f'<text class="bar-value" x="{226 + w}" y="{y + 13}">{n}</text>')
    return Chart(document(760, height, body, "failure reasons"), f"{rest} more in smaller groups" if rest else "")


def lineage_selection(run: RunData, max_nodes: int) -> tuple[list[Candidate], str]:
    cands = run.candidates
    if len(cands) <= max_nodes:
        return list(cands.values()), ""
    keep: dict[str, Candidate] = {}
    best = run.best
    for cand in run.lineage(best.id) if best else []:  # the winner's line, with crossovers' second parents
        for cid in [cand.id, *cand.parents]:
            if cid in cands:
                keep.setdefault(cid, cands[cid])
    ranked = sorted((c for c in cands.values() if c.verified), key=lambda c: -(c.speedup_vs_eager or 0.0))
    for cand in ranked:
        if len(keep) >= max_nodes:
            break
        for cid in [cand.id, *cand.parents]:
            if cid in cands and len(keep) < max_nodes:
                keep.setdefault(cid, cands[cid])
    note = (f"showing {len(keep)} of {len(cands)} candidates: the winner's ancestry and the fastest verified "
            "candidates with their parents")
    return list(keep.values()), note


def lineage_chart(run: RunData, max_nodes: int = 240) -> Chart:
    nodes, note = lineage_selection(run, max_nodes)
    if not nodes:
        return Chart("", "no candidates yet")
    gens = sorted({c.generation for c in nodes})
    columns: dict[int, list[Candidate]] = defaultdict(list)
    for cand in nodes:
        columns[cand.generation].append(cand)
    for col in columns.values():
        col.sort(key=lambda c: (not c.verified, -(c.speedup_vs_eager or 0.0), c.id))
    tallest = max(len(c) for c in columns.values())
    row_h = 16
    width = max(760, 90 * len(gens) + 80)
    height = max(160, tallest * row_h + 70)
    col_w = (width - 80) / max(1, len(gens))
    pos: dict[str, tuple[float, float]] = {}
    for gi, gen in enumerate(gens):
        for ri, cand in enumerate(columns[gen]):
            # repairs stay in their parent's generation: a step right keeps their edge visible
            pos[cand.id] = (round(50 + col_w * (gi + 0.5) + 16 * min(cand.repair_depth, 3), 1), 30 + ri * row_h)
    winner = run.best
    best_chain = {c.id for c in run.lineage(winner.id)} if winner else set()
    edges, marks = [], []
    for cand in nodes:
        x2, y2 = pos[cand.id]
        for i, parent in enumerate(cand.parents):
            if parent not in pos:
                continue
            x1, y1 = pos[parent]
            kind = "repair" if cand.agent == "repair" else ("crossover" if cand.agent == "crossover" else "mutation")
            on_path = cand.id in best_chain and parent in best_chain and i == 0
            mx = (x1 + x2) / 2
            edges.append(f'<path class="edge edge-{kind}{" edge-best" if on_path else ""}" '
                         f'd="M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}"/>')
        r = 4.0 + min(5.0, 2.0 * max(0.0, (cand.speedup_vs_eager or 0.0) - 1.0)) if cand.verified else 3.5
        title = (f"{cand.short} gen {cand.generation} {cand.agent} {cand.status}"
                 + (f" {cand.speedup_vs_eager:.3f}x" if cand.verified else f" ({cand.reason or ''})"))
        cls = f"node {_status_class(cand.status)}" + (" node-best" if winner and cand.id == winner.id else "")
        marks.append(circle(x2, y2, round(r, 1), cls, title))
    heads = [f'<text class="tick" x="{round(50 + col_w * (i + 0.5), 1)}" y="16" text-anchor="middle">gen {g}</text>'
             for i, g in enumerate(gens)]
    keys = legend([("edge edge-mutation", "mutation"), ("edge edge-crossover", "crossover"),
                   ("edge edge-repair", "repair"), ("edge edge-best", "winner's lineage")], 50, height - 10, shape="line")
    return Chart(document(width, height, [*heads, *edges, *marks, keys], "lineage of candidates", "chart lineage"), note)


def _roofline_points(run: RunData) -> list[tuple[Candidate, str, float, float, dict]]:
    points = []
    for cand in run.candidates.values():
        for kernel in (cand.profile or {}).get("kernels") or []:
            roof = kernel.get("roofline") or {}
            ai, gflops = roof.get("arithmetic_intensity_flop_per_byte"), roof.get("achieved_gflops")
            if ai and gflops and ai > 0 and gflops > 0:
                points.append((cand, str(kernel.get("name") or "kernel"), float(ai), float(gflops), roof))
    return points


def roofline_chart(run: RunData) -> Chart:
    points = _roofline_points(run)
    if not points:
        reasons = sorted({str((c.profile or {}).get("summary") or "") for c in run.candidates.values()
                          if c.profile} - {""})
        why = "; ".join(reasons[:3])
        return Chart("", "no profiles" + (f" with roofline metrics ({why})" if why else " (no candidate was profiled)"))
    peak_flops = max((p[4].get("peak_gflops") or 0.0 for p in points), default=0.0)
    peak_bw = max((p[4].get("peak_dram_gbps") or 0.0 for p in points), default=0.0)
    ais = [p[2] for p in points]
    perf = [p[3] for p in points]
    x0, x1 = min(ais) / 4, max(ais) * 4
    if peak_flops and peak_bw:
        x0, x1 = min(x0, peak_flops / peak_bw / 20), max(x1, peak_flops / peak_bw * 20)
    y0 = min(perf) / 4
    y1 = max(perf + [peak_flops]) * 2
    ax = Axes(760, 340, x0, x1, y0, y1, log_x=True, log_y=True, bottom=58, left=64)
    body = [ax.frame("arithmetic intensity (FLOP / DRAM byte)", "achieved GFLOP/s")]
    if peak_bw:
        ridge = peak_flops / peak_bw if peak_flops else x1
        roof = [(ax.px(x0), ax.py(max(y0, peak_bw * x0))), (ax.px(min(ridge, x1)), ax.py(min(y1, peak_bw * min(ridge, x1))))]
        if peak_flops and ridge < x1:
            roof.append((ax.px(x1), ax.py(peak_flops)))
        body.append(polyline(roof, "roof"))
        body.append(f'<text class="roof-label" x="{ax.left + 8}" y="{ax.top + 14}">DRAM {fmt(peak_bw)} GB/s'
                    + (f", compute {fmt(peak_flops)} GFLOP/s" if peak_flops else "") + "</text>")
    winner = run.best
    for cand, name, ai, gflops, roof in points:
        cls = "pt st-passed" + (" pt-winner" if winner and cand.id == winner.id else "")
        body.append(circle(ax.px(ai), ax.py(gflops), 5, cls, f"{cand.short} {name}: {fmt(ai)} FLOP/B, "
                                                              f"{fmt(gflops)} GFLOP/s, {roof.get('bound', '?')}-bound"))
        if len(points) <= 12:  # few enough to name
            body.append(f'<text class="tick" x="{ax.px(ai) + 8}" y="{ax.py(gflops) + 4}">{esc(cand.short[:8])}</text>')
    note = "" if peak_bw else "peak bandwidth unknown: no roof drawn"
    return Chart(document(760, 340, body, "roofline of profiled kernels"), note)
