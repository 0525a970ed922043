"""The report glitches of issue 16, checked on the page Chromium lays out (geometry, not HTML strings).

Generation counts and empty generations in the header, unverified candidates kept off
the speedup axis, roofline labels that do not collide, the profile as a table, and a
lineage of labelled nodes that says when it has no edges. Needs Debian's chromium and
chromium-driver, like tests/eval/test_run_report.py; without them these tests fail and say so.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest

from kernelwright.eval.fakes.synthetic_run import synthetic_run
from kernelwright.eval.report import write_report
from kernelwright.eval.report.browser import headless_chromium, open_and_wait_rendered
from kernelwright.eval.report.profile_table import profile_table
from kernelwright.eval.report.run_data import load_run
from support.recorded_run import record_run
from support.report_runs import record_stalled_run, use_ncu_profile

Rect = list[float]  # left, top, right, bottom (CSS px)

GEOMETRY = """
const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
const all = (sel, root) => [...(root || document).querySelectorAll(sel)];
const text = e => e ? e.innerText || e.textContent : '';
const section = id => document.getElementById(id);
const out = {};
out.header = {text: text(document.querySelector('header')),
              cards: all('.card').map(c => [text(c.querySelector('.card-value')), text(c.querySelector('.card-label'))])};
const prog = section('progress');
out.progress = {plot: box(prog.querySelector('.plot-bg')), band: prog.querySelector('.band-bg') ? box(prog.querySelector('.band-bg')) : null,
                bandLabel: all('.band-label', prog).map(e => [text(e), box(e)]),
                unverified: all('.unverified-mark', prog).map(box), verified: all('circle.pt', prog).map(box),
                ticks: all('text.tick', prog).map(e => [text(e), box(e)])};
const pop = section('population');
out.population = {empty: all('.empty-gen', pop).map(e => [text(e).trim(), box(e)]),
                  ticks: all('text.tick', pop).map(e => [text(e), box(e)])};
const roof = section('roofline');
out.roofline = {labels: all('.pt-label', roof).map(e => [text(e), box(e)]), points: all('circle.pt', roof).map(box),
                plot: roof.querySelector('.plot-bg') ? box(roof.querySelector('.plot-bg')) : null,
                leaders: all('line.leader', roof).map(l => ['x1', 'y1', 'x2', 'y2'].map(a => +l.getAttribute(a))),
                svg: roof.querySelector('svg') ? box(roof.querySelector('svg')) : null,
                rows: all('table.roofline-points tbody tr', roof).map(r => all('td', r).map(text))};
const win = section('winner');
const prof = win.querySelector('table.profile');
out.profile = prof ? {heads: all('thead th', prof).map(text), rows: all('tbody tr', prof).map(r => [...r.cells].map(text)),
                      box: box(prof), paragraphs: all('p.profile', win).length} : null;
const lin = section('lineage');
out.lineage = {note: text(lin.querySelector('.note')), nodes: all('g.nodes circle', lin).map(box),
               labels: all('.node-label', lin).map(e => [text(e), box(e)]), edges: all('path.edge', lin).length,
               keys: all('text.legend', lin).map(text),
               halo: (l => l ? [getComputedStyle(l).paintOrder, getComputedStyle(l).stroke] : [])(lin.querySelector('.node-label')),
               edgePoints: all('path.edge', lin).map(p => { const m = p.getScreenCTM(); const n = p.getTotalLength();
                 const pts = []; for (let s = 0; s <= n; s += 2) { const q = p.getPointAtLength(s);
                   pts.push([q.x * m.a + m.e, q.y * m.d + m.f]); } return [p.dataset.from, pts]; })};
return out;
"""


def overlap(a: Rect, b: Rect, gap: float = 0.0) -> bool:
    return a[0] < b[2] - gap and b[0] < a[2] - gap and a[1] < b[3] - gap and b[1] < a[3] - gap


def inside(a: Rect, outer: Rect, slack: float = 0.5) -> bool:
    return (a[0] >= outer[0] - slack and a[1] >= outer[1] - slack and a[2] <= outer[2] + slack
            and a[3] <= outer[3] + slack)


def crosses(a: list[float], b: list[float]) -> bool:
    def side(p: list[float], q: list[float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    a0, a1, b0, b1 = a[:2], a[2:], b[:2], b[2:]
    return (side(a0, a1, tuple(b0)) * side(a0, a1, tuple(b1)) < 0
            and side(b0, b1, tuple(a0)) * side(b0, b1, tuple(a1)) < 0)


def geometry(page: Path, shot: Path | None = None) -> dict[str, Any]:
    with headless_chromium(1280, 1600) as driver:
        open_and_wait_rendered(driver, page)
        facts = driver.execute_script(GEOMETRY)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        if shot is not None:
            driver.set_window_size(1280, int(driver.execute_script("return document.body.scrollHeight")) + 40)
            assert driver.save_screenshot(str(shot))
    assert errors == []
    return facts


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recorded runs: a stalled second generation (repeats only; unusable answers only), a full run,
    the same with the H100 ncu profile as the winner's, a one-generation run."""
    root = tmp_path_factory.mktemp("layout-runs")
    record_stalled_run(root, "stalled-repeat", second_generation="repeat")
    record_stalled_run(root, "stalled-unusable", second_generation="unusable")
    record_run(root, run_id="full")
    shutil.copytree(root / "full", root / "gpu-profiled")
    use_ncu_profile(root / "gpu-profiled")
    record_run(root, run_id="one-generation", generations=1)
    return root


@pytest.fixture(scope="module")
def pages(runs: Path) -> dict[str, dict[str, Any]]:
    return {name: geometry(write_report(runs / name)) for name in
            ("stalled-repeat", "stalled-unusable", "full", "gpu-profiled", "one-generation")}


def test_header_counts_generations_and_says_which_added_nothing(runs: Path, pages: dict[str, dict[str, Any]]) -> None:
    run = load_run(runs / "stalled-repeat")
    assert run.info["stop_reason"] == "generations: 2 of 2" and {c.generation for c in run.candidates.values()} == {0}
    header = pages["stalled-repeat"]["header"]
    assert ["2", "generations"] in header["cards"]
    assert "generation 0: 3 new candidates, 3 verified" in header["text"]
    assert "generation 1: no new candidates" in header["text"] and "1 generations" not in header["text"]
    # the reason, where the run recorded one
    unusable = pages["stalled-unusable"]["header"]["text"]
    assert "generation 1: no new candidates (mutate: the answer contains no code)" in unusable
    assert ["1", "generation"] in pages["one-generation"]["header"]["cards"]  # singular
    # the population chart shows the empty generation in its column, under its tick
    population = pages["stalled-repeat"]["population"]
    (text, where), = population["empty"]
    tick = next(box for label, box in population["ticks"] if label == "1")
    assert text == "no new candidates" and abs((where[0] + where[2]) / 2 - (tick[0] + tick[2]) / 2) < 2


def test_unverified_candidates_are_never_drawn_as_measured_speedups(runs: Path,
                                                                    pages: dict[str, dict[str, Any]]) -> None:
    run = load_run(runs / "full")
    unverified = [c for c in run.candidates.values() if not c.verified]
    progress = pages["full"]["progress"]
    assert unverified and len(progress["unverified"]) == len(unverified)
    plot, band = progress["plot"], progress["band"]
    assert band is not None and band[1] > plot[3]  # the strip lies under the plot area, apart from it
    for mark in progress["unverified"]:
        assert inside(mark, band) and mark[1] > plot[3]  # below the 0x line, never on the speedup axis
    for point in progress["verified"]:
        assert inside(point, plot, slack=4)
    (label, where), = progress["bandLabel"]
    assert label == "not verified" and where[2] <= band[0] and where[1] < band[3] and where[3] > band[1]
    zero = next(box for text, box in progress["ticks"] if text == "0" and box[2] <= plot[0])  # the y axis' 0x
    assert all(mark[1] > zero[3] for mark in progress["unverified"])


def _assert_roofline_labels_readable(roof: dict[str, Any]) -> None:
    labels = [box for _, box in roof["labels"]]
    assert labels and [int(t) for t, _ in roof["labels"]] == sorted(int(t) for t, _ in roof["labels"])
    for a, b in itertools.combinations(labels, 2):
        assert not overlap(a, b), (a, b)
    for label in labels:
        assert inside(label, roof["plot"])
        assert not any(overlap(label, point, gap=0.5) for point in roof["points"])
    for a, b in itertools.combinations(roof["leaders"], 2):
        assert not crosses(a, b)
    # every number on the chart names one row of the table below it
    assert [row[0] for row in roof["rows"]] == [t for t, _ in roof["labels"]]


def test_roofline_labels_do_not_collide(tmp_path: Path, pages: dict[str, dict[str, Any]]) -> None:
    _assert_roofline_labels_readable(pages["gpu-profiled"]["roofline"])  # 5 points, two nearly on top of each other
    crowded = synthetic_run(tmp_path / "crowded", n_candidates=400, generations=8)  # 15 profiles, one column of points
    roof = geometry(write_report(crowded), tmp_path / "crowded.png")["roofline"]
    assert len(roof["rows"]) >= 10 and len(roof["labels"]) == len(roof["rows"])
    _assert_roofline_labels_readable(roof)


def test_profile_is_a_table_of_kernels_and_measures(pages: dict[str, dict[str, Any]]) -> None:
    profile = pages["gpu-profiled"]["profile"]
    assert profile is not None and profile["paragraphs"] == 0
    assert profile["heads"] == ["kernel", "vec_add", "fma_loop", "half_fma"]  # costliest first, launches grouped
    rows = {row[0]: row[1:] for row in profile["rows"]}
    assert rows["launches"] == ["3", "1", "1"]
    assert rows["bound"] == ["memory-bound", "compute-bound", "latency-bound"]
    assert rows["DRAM bandwidth (of peak TB/s)"][0] == "2.15 TB/s (64% of 3.35)"
    assert rows["top stalls"][0] == "long_scoreboard 77%, wait 7%, short_scoreboard 6%"
    assert profile["box"][2] - profile["box"][0] < 1100  # fits the page: no one-line paragraph running off it


def test_a_profile_without_kernels_shows_its_reason() -> None:
    html = profile_table({"summary": "profiler unavailable: ERR_NVGPUCTRPERM", "available": False})
    assert "<table" not in html and "profiler unavailable: ERR_NVGPUCTRPERM" in html


def test_lineage_nodes_are_labelled_and_a_run_without_edges_says_so(runs: Path,
                                                                    pages: dict[str, dict[str, Any]]) -> None:
    lineage = pages["stalled-repeat"]["lineage"]
    run = load_run(runs / "stalled-repeat")
    assert lineage["edges"] == 0 and "no parent/child edges in this run" in lineage["note"]
    assert "mutation" not in lineage["keys"] and "passed" in lineage["keys"]  # no key for lines that are not there
    for page in ("stalled-repeat", "full"):
        lineage = pages[page]["lineage"]
        nodes, labels = lineage["nodes"], lineage["labels"]
        assert len(labels) == len(nodes) == len(load_run(runs / page).candidates)
        for node, (text, label) in zip(nodes, labels):
            assert label[0] > node[2] and abs((label[1] + label[3]) / 2 - (node[1] + node[3]) / 2) < 3, text
        for a, b in itertools.combinations([box for _, box in labels], 2):
            assert not overlap(a, b)
        for _, label in labels:
            assert not any(overlap(label, node, gap=0.5) for node in nodes)
    full = pages["full"]["lineage"]
    assert full["edges"] >= 5 and "no parent/child edges" not in full["note"]
    # an edge leaves from the end of its parent's label, never across it; where another edge crosses a label,
    # the label's white halo keeps the text readable
    by_id = {text.split()[0]: [b[0] + 1, b[1] + 1, b[2] - 1, b[3] - 1] for text, b in full["labels"]}
    for parent, points in full["edgePoints"]:
        own = by_id[parent]
        assert not any(own[0] < x < own[2] and own[1] < y < own[3] for x, y in points), parent
    assert full["halo"][0].startswith("stroke") and full["halo"][1] == "rgb(255, 255, 255)"
    texts = [t for t, _ in pages["stalled-repeat"]["lineage"]["labels"]]
    assert sorted(texts) == sorted(f"{c.id[:8]} {c.speedup_vs_eager:.2f}x" for c in run.candidates.values())


def test_placed_labels_never_collide_on_random_clusters() -> None:
    """The placement's promise on many layouts (no browser): boxes apart, inside the plot, leaders uncrossed."""
    import random

    from kernelwright.eval.report.labels import Box, _cross, place_labels

    area = Box(64, 14, 744, 282)
    for seed in range(200):
        rng = random.Random(seed)
        centres = [(rng.uniform(80, 720), rng.uniform(30, 260)) for _ in range(rng.randint(1, 4))]
        points = [(min(740.0, max(68.0, cx + rng.gauss(0, 6))), min(278.0, max(18.0, cy + rng.gauss(0, 12))))
                  for _ in range(rng.randint(1, 30)) for cx, cy in [rng.choice(centres)]]
        spots = place_labels(points, [str(i + 1) for i in range(len(points))], area)
        placed = [s for s in spots if s is not None]
        for a, b in itertools.combinations(placed, 2):
            assert not a.box.hits(b.box, gap=0.0), seed
        for s in placed:
            assert s.box.inside(area)
            assert not any(s.box.hits(Box(x - 5, y - 5, x + 5, y + 5), gap=0.0) for x, y in points), seed
        leaders = [(x, y, *s.box.nearest(x, y)) for (x, y), s in zip(points, spots) if s is not None and s.leader]
        for a, b in itertools.combinations(leaders, 2):
            assert not _cross(a, b), seed
        assert len(placed) >= min(len(points), 8), seed  # crowding may leave some off, never most of a small set
