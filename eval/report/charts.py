"""The report's charts as inline SVG: progress, population, lineage, roofline, failure reasons.

Large runs stay light: every chart draws at most a few thousand marks, and the
lineage graph keeps the winner's ancestry plus the fastest candidates (with a
note saying how many were left out).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from kernelwright.agents.run_state import CandidateStatus
from kernelwright.eval.report.labels import Box, place_labels, text_size
from kernelwright.eval.report.profile_table import KernelGroup, kernel_groups
from kernelwright.eval.report.run_data import Candidate, RunData
from kernelwright.eval.report.svg import Axes, circle, document, esc, fmt, legend, nice_ticks, polyline
from kernelwright.eval.report.tables import table
from kernelwright.graphs.generations import generation_label
from kernelwright.tools.measure.ncu import short_kernel_name

STATUS_ORDER: tuple[CandidateStatus, ...] = ("passed", "rejected", "error", "screened_out", "needs_gpu", "pending")
MAX_NUMBERED = 30  # roofline points numbered and listed; more are drawn unnumbered
POINT_R = 5.0  # roofline points
LINEAGE_FONT_PX = 11.0  # .node-label in style.css
LABEL_DX = 14  # a lineage label starts this far right of its node's centre (the largest node's radius is 9)
MAX_SCATTER = 6000  # marks in the progress scatter; beyond it failed candidates are counted, not drawn


@dataclass(frozen=True)
class Chart:
    svg: str  # empty when there is nothing to draw
    note: str = ""  # what was left out, or why there is no chart
    table: str = ""  # HTML shown under the chart (e.g. what each numbered point is)


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


def _generation_ticks(gens: list[int]) -> dict[str, Any]:
    """Axis ticks at each generation (or at round steps when many), numbered as people see them."""
    ticks = gens if len(gens) <= 25 else [int(t) for t in nice_ticks(gens[0], gens[-1]) if float(t).is_integer()]
    return {"x_ticks": ticks, "x_labels": [str(g) for g in ticks]}


def progress_chart(run: RunData) -> Chart:
    """Measured speedups per generation; candidates without one (not verified) sit in a strip below the axis,
    never at 0x."""
    gens = run.generations
    verified = [c for c in run.candidates.values() if c.verified]
    if not gens or not run.candidates:
        return Chart("", "no candidates yet")
    population = int((run.info.get("settings") or {}).get("population") or 4)
    elite = elite_by_generation(run, population)
    top = max([float(c.speedup_vs_eager or 0.0) for c in verified] + [1.0]) * 1.12
    failed = [c for c in run.candidates.values() if not c.verified]
    band = 30 if failed else 0
    height = 300 + band
    ax = Axes(760, height, gens[0] - 0.5, gens[-1] + 0.5, 0.0, top, bottom=58, left=84, band=band,
              band_label="not verified")
    body = [ax.frame("generation", "speedup vs eager (x)", **_generation_ticks(gens))]
    body.append(f'<line class="baseline" x1="{ax.px(ax.x0)}" y1="{ax.py(1.0)}" x2="{ax.px(ax.x1)}" y2="{ax.py(1.0)}"/>')
    drawn_failed = failed[: max(0, MAX_SCATTER - len(verified))]
    for cand in drawn_failed:
        body.append(f'<rect class="{_status_class(cand.status)} unverified-mark" '
                    f'x="{ax.px(cand.generation + _jitter(cand.id)) - 2.5}" '
                    f'y="{ax.band_y(0.5 + _jitter(cand.id[::-1])) - 2.5}" width="5" height="5"><title>{esc(cand.short)} '
                    f'{esc(generation_label(cand.generation))}: not verified ({esc(cand.status)}'
                    f'{", " + esc(cand.reason) if cand.reason else ""}), no speedup measured</title></rect>')
    for cand in verified:
        body.append(circle(ax.px(cand.generation + _jitter(cand.id)), ax.py(float(cand.speedup_vs_eager or 0.0)), 3.2,
                           "pt st-passed", f"{cand.short} {cand.agent} {generation_label(cand.generation)}: "
                                           f"{cand.speedup_vs_eager:.3f}x"))
    best_line = [(ax.px(g), ax.py(e[0])) for g, e in elite.items() if e]
    mean_line = [(ax.px(g), ax.py(sum(e) / len(e))) for g, e in elite.items() if e]
    if best_line:
        body.append(polyline(mean_line, "line-elite"))
        body.append(polyline(best_line, "line-best"))
        body += [circle(x, y, 4.5, "pt-best") for x, y in best_line]
    keys: list[tuple[str, ...]] = [("line-best", "best so far"), ("line-elite", f"elite mean (top {population})"),
                                   ("baseline", "eager (1x)")]
    if failed:
        keys.append(("unverified-key", "not verified: no speedup measured", "square"))
    body.append(legend(keys, ax.left, height - 4, shape="line"))
    notes = [] if verified else [f"no candidate was verified, so there is no speedup to plot: the "
                                 f"{len(failed)} unverified are marked in the strip under the axis"]
    if len(drawn_failed) < len(failed):
        notes.append(f"{len(failed) - len(drawn_failed)} unverified candidates not drawn")
    note = "; ".join(notes)
    return Chart(document(760, height, body, "best speedup and elite over generations"), note)


def population_chart(run: RunData) -> Chart:
    """Candidates per generation, stacked by outcome; a generation that added none says so."""
    gens = run.generations
    if not gens or not run.candidates:
        return Chart("", "no candidates yet")
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for cand in run.candidates.values():
        counts[cand.generation][cand.status if cand.status in STATUS_ORDER else "error"] += 1
    top = max(sum(c.values()) for c in counts.values()) * 1.1
    ax = Axes(760, 220, gens[0] - 0.5, gens[-1] + 0.5, 0.0, top, bottom=58)
    body = [ax.frame("generation", "candidates", **_generation_ticks(gens))]
    width = max(2.0, min(40.0, (ax.px(1) - ax.px(0)) * 0.7))
    room = ax.px(1) - ax.px(0)  # px per generation: room for a sentence, a word, or only a mark
    for gen in gens:
        if not counts[gen]:
            text = "no new candidates" if room >= 110 else "none" if room >= 30 else "·"
            body.append(f'<g><title>{esc(generation_label(gen))}: no new candidates</title><text class="empty-gen" '
                        f'x="{ax.px(gen)}" y="{ax.py(0) - 6}" text-anchor="middle">{esc(text)}</text></g>')
            continue
        base = 0
        for status in STATUS_ORDER:
            n = counts[gen][status]
            if not n:
                continue
            y_top, y_bottom = ax.py(base + n), ax.py(base)
            body.append(f'<rect class="bar {_status_class(status)}" x="{ax.px(gen) - width / 2}" y="{y_top}" '
                        f'width="{width}" height="{round(y_bottom - y_top, 1)}"><title>{esc(generation_label(gen))}: '
                        f'{n} {esc(status)}</title></rect>')
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


def lineage_label(cand: Candidate) -> str:
    """A node's label: its short id and measured speedup, or its outcome when there is none."""
    return f"{cand.id[:8]} {f'{cand.speedup_vs_eager:.2f}x' if cand.verified else cand.status}"


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
    # each column holds its nodes (repairs up to 3 steps right) and their labels, clear of the next column
    label_w = max(text_size(lineage_label(c), LINEAGE_FONT_PX)[0] for c in nodes)
    col_w = max(90.0, 16 * 3 + LABEL_DX + label_w + 12)
    width = max(760, round(col_w * len(gens) + 80))
    height = max(160, tallest * row_h + 86)
    pos: dict[str, tuple[float, float]] = {}
    for gi, gen in enumerate(gens):
        for ri, cand in enumerate(columns[gen]):
            # repairs stay in their parent's generation: a step right keeps their edge visible
            pos[cand.id] = (round(50 + col_w * gi + 8 + 16 * min(cand.repair_depth, 3), 1), 30 + ri * row_h)
    label_end = {c.id: round(pos[c.id][0] + LABEL_DX + text_size(lineage_label(c), LINEAGE_FONT_PX)[0], 1)
                 for c in nodes}
    winner = run.best
    best_chain = {c.id for c in run.lineage(winner.id)} if winner else set()
    edges, marks, labels = [], [], []
    for cand in nodes:
        x2, y2 = pos[cand.id]
        for i, parent in enumerate(cand.parents):
            if parent not in pos:
                continue
            x1, y1 = pos[parent]
            if x2 > label_end[parent]:  # a later column: leave from the end of the parent's label, not across it
                x1 = label_end[parent]
            kind = "repair" if cand.agent == "repair" else ("crossover" if cand.agent == "crossover" else "mutation")
            on_path = cand.id in best_chain and parent in best_chain and i == 0
            mx = (x1 + x2) / 2
            edges.append(f'<path class="edge edge-{kind}{" edge-best" if on_path else ""}" data-from="{parent[:8]}" '
                         f'd="M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}"/>')
        r = 4.0 + min(5.0, 2.0 * max(0.0, (cand.speedup_vs_eager or 0.0) - 1.0)) if cand.verified else 3.5
        title = (f"{cand.short} {generation_label(cand.generation)} {cand.agent} {cand.status}"
                 + (f" {cand.speedup_vs_eager:.3f}x" if cand.verified else f" ({cand.reason or ''})"))
        cls = f"node {_status_class(cand.status)}" + (" node-best" if winner and cand.id == winner.id else "")
        marks.append(circle(x2, y2, round(r, 1), cls, title))
        labels.append(f'<text class="node-label" x="{x2 + LABEL_DX}" y="{y2}" dominant-baseline="central">'
                      f"{esc(lineage_label(cand))}</text>")
    heads = [f'<text class="tick" x="{round(50 + col_w * i + 8, 1)}" y="16">{esc(generation_label(g))}</text>'
             for i, g in enumerate(gens)]
    present = [s for s in STATUS_ORDER if any(c.status == s for c in nodes)]
    keys = [legend([(f"node {_status_class(s)}", s) for s in present], 50, height - 30)]
    if edges:
        keys.append(legend([("edge edge-mutation", "mutation"), ("edge edge-crossover", "crossover"),
                            ("edge edge-repair", "repair"), ("edge edge-best", "winner's lineage")], 50, height - 10,
                           shape="line"))
    else:
        firsts = all(not c.parents for c in nodes)
        note = "; ".join(n for n in ("no parent/child edges in this run"
                                     + (": every candidate is a first proposal" if firsts else ""), note) if n)
    body = [*heads, *edges, f'<g class="nodes">{"".join(marks)}</g>', *labels, *keys]
    return Chart(document(width, height, body, "lineage of candidates", "chart lineage"), note)


@dataclass(frozen=True)
class RooflinePoint:
    cand: Candidate
    group: KernelGroup  # the candidate's launches of one kernel; the longest stands for them
    ai: float  # FLOP per DRAM byte
    gflops: float

    @property
    def roof(self) -> dict:
        return dict(self.group.kernel.get("roofline") or {})

    @property
    def kernel(self) -> str:
        return short_kernel_name(str(self.group.kernel.get("name") or "kernel"), 40)


def roofline_points(run: RunData) -> list[RooflinePoint]:
    """One point per profiled candidate and kernel: the winner's first, then the fastest candidates'."""
    winner = run.best
    ranked = sorted((c for c in run.candidates.values() if c.profile),
                    key=lambda c: (not (winner and c.id == winner.id), -(c.speedup_vs_eager or 0.0), c.id))
    points = []
    for cand in ranked:
        for group in kernel_groups([k for k in (cand.profile or {}).get("kernels") or [] if isinstance(k, dict)]):
            roof = group.kernel.get("roofline") or {}
            ai, gflops = roof.get("arithmetic_intensity_flop_per_byte"), roof.get("achieved_gflops")
            if ai and gflops and ai > 0 and gflops > 0:
                points.append(RooflinePoint(cand, group, float(ai), float(gflops)))
    return points


def _roofline_table(points: list[RooflinePoint]) -> str:
    rows = [[i + 1, p.cand.short, p.kernel, p.group.launches,
             f"{p.cand.speedup_vs_eager:.3f}x" if p.cand.verified else p.cand.status, fmt(p.ai), fmt(p.gflops),
             p.roof.get("bound", "?")] for i, p in enumerate(points)]
    return table(["#", "candidate", "kernel", "launches", "speedup", "FLOP / byte", "GFLOP/s", "bound"], rows,
                 css="data roofline-points", numeric_from=3)


def roofline_chart(run: RunData) -> Chart:
    """Numbered points (labels placed so none collide, leader lines where moved) and a table naming each number."""
    points = roofline_points(run)
    if not points:
        reasons = sorted({str((c.profile or {}).get("summary") or "") for c in run.candidates.values()
                          if c.profile} - {""})
        why = "; ".join(reasons[:3])
        return Chart("", "no profiles" + (f" with roofline metrics ({why})" if why else " (no candidate was profiled)"))
    peak_flops = max((p.roof.get("peak_gflops") or 0.0 for p in points), default=0.0)
    peak_bw = max((p.roof.get("peak_dram_gbps") or 0.0 for p in points), default=0.0)
    ais = [p.ai for p in points]
    perf = [p.gflops for p in points]
    x0, x1 = min(ais) / 4, max(ais) * 4
    if peak_flops and peak_bw:
        x0, x1 = min(x0, peak_flops / peak_bw / 20), max(x1, peak_flops / peak_bw * 20)
    y0 = min(perf) / 4
    y1 = max(perf + [peak_flops]) * 2
    ax = Axes(760, 340, x0, x1, y0, y1, log_x=True, log_y=True, bottom=58, left=64)
    body = [ax.frame("arithmetic intensity (FLOP / DRAM byte)", "achieved GFLOP/s")]
    obstacles: list[Box] = []
    if peak_bw:
        ridge = peak_flops / peak_bw if peak_flops else x1
        roof = [(ax.px(x0), ax.py(max(y0, peak_bw * x0))), (ax.px(min(ridge, x1)), ax.py(min(y1, peak_bw * min(ridge, x1))))]
        if peak_flops and ridge < x1:
            roof.append((ax.px(x1), ax.py(peak_flops)))
        body.append(polyline(roof, "roof"))
        roof_text = f"DRAM {fmt(peak_bw)} GB/s" + (f", compute {fmt(peak_flops)} GFLOP/s" if peak_flops else "")
        body.append(f'<text class="roof-label" x="{ax.left + 8}" y="{ax.top + 14}">{esc(roof_text)}</text>')
        w, h = text_size(roof_text, 11.0)
        obstacles.append(Box(ax.left + 8, ax.top + 14 - h, ax.left + 8 + w, ax.top + 18))
    winner = run.best
    numbered = points[:MAX_NUMBERED]
    xy = [(ax.px(p.ai), ax.py(p.gflops)) for p in points]
    area = Box(ax.left + 1, ax.top + 1, ax.width - ax.right - 1, ax.plot_bottom - 1)
    obstacles += [Box(x - POINT_R, y - POINT_R, x + POINT_R, y + POINT_R) for x, y in xy[len(numbered):]]
    spots = place_labels(xy[: len(numbered)], [str(i + 1) for i in range(len(numbered))], area,
                         point_r=POINT_R, font_px=11.0, obstacles=obstacles)
    marks, leaders, labels = [], [], []
    for i, (p, (x, y)) in enumerate(zip(points, xy)):
        cls = "pt st-passed" + (" pt-winner" if winner and p.cand.id == winner.id else "")
        number = f"#{i + 1} " if i < len(numbered) else ""
        marks.append(circle(x, y, POINT_R, cls, f"{number}{p.cand.short} {p.kernel}: {fmt(p.ai)} FLOP/B, "
                                                f"{fmt(p.gflops)} GFLOP/s, {p.roof.get('bound', '?')}-bound"))
        spot = spots[i] if i < len(spots) else None
        if spot is None:
            continue
        if spot.leader:
            lx, ly = spot.box.nearest(x, y)
            leaders.append(f'<line class="leader" x1="{x}" y1="{y}" x2="{round(lx, 1)}" y2="{round(ly, 1)}"/>')
        labels.append(f'<text class="pt-label" x="{spot.x}" y="{spot.y}" text-anchor="middle" '
                      f'dominant-baseline="central">{i + 1}</text>')
    body += [*leaders, *marks, *labels]
    notes = [] if peak_bw else ["peak bandwidth unknown: no roof drawn"]
    if unplaced := sum(s is None for s in spots):
        notes.append(f"{unplaced} crowded point(s) unlabelled on the chart: the table lists them")
    if len(points) > len(numbered):
        notes.append(f"{len(points) - len(numbered)} more point(s) drawn without a number")
    return Chart(document(760, 340, body, "roofline of profiled kernels"), "; ".join(notes),
                 _roofline_table(numbered))
