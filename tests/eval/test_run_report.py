"""The HTML report of a recorded run, opened in headless Chromium: the plots and tables are drawn, not just present.

Needs Debian's chromium and chromium-driver (scripts/setup.sh installs them where
it can). Without them these tests fail and say so; they never skip.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.eval.fakes.synthetic_run import synthetic_run
from kernelwright.eval.report import write_report
from kernelwright.eval.report.browser import headless_chromium, open_and_wait_rendered
from kernelwright.eval.report.run_data import load_run
from support.recorded_run import RUN_ID, record_run

# Sizes and counts of the drawn marks, per section, as the browser laid them out.
MEASURE = """
const out = {};
for (const section of document.querySelectorAll('section')) {
  const marks = [...section.querySelectorAll('svg circle, svg rect:not(.plot-bg), svg path, svg polyline')];
  const drawn = marks.filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
  const svg = section.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : null;
  out[section.id] = {marks: marks.length, drawn: drawn.length, svgWidth: box ? box.width : 0,
                     svgHeight: box ? box.height : 0, rows: section.querySelectorAll('tbody tr').length,
                     text: section.innerText};
}
out.classes = {};
for (const cls of ['edge-mutation', 'edge-crossover', 'edge-repair', 'edge-best', 'roof', 'line-best', 'node-best',
                   'pt-winner']) {
  out.classes[cls] = [...document.getElementsByClassName(cls)].filter(e => {
    const b = e.getBoundingClientRect(); return b.width > 0 || b.height > 0; }).length;
}
out.diff = {add: document.querySelectorAll('pre.diff .add').length, del: document.querySelectorAll('pre.diff .del').length,
            height: (document.querySelector('pre.diff') || {getBoundingClientRect: () => ({height: 0})})
                      .getBoundingClientRect().height};
out.scripts = document.scripts.length;
return out;
"""


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    record_run(runs)
    return runs / RUN_ID


def test_report_of_a_recorded_run_renders_in_chromium(recorded: Path, tmp_path: Path) -> None:
    page = write_report(recorded, tmp_path / "report.html")
    html = page.read_text()
    # self-contained: nothing to fetch (no links, no external src/href, no imports)
    assert not re.search(r"<link|<script[^>]*\ssrc=|(src|href)\s*=\s*[\"']?(https?:)?//|@import", html)
    run = load_run(recorded)
    verified = sum(c.verified for c in run.candidates.values())
    with headless_chromium(1280, 1600) as driver:
        rendered_ms = open_and_wait_rendered(driver, page)
        facts = driver.execute_script(MEASURE)
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        shot = tmp_path / "report.png"
        driver.set_window_size(1280, int(driver.execute_script("return document.body.scrollHeight")) + 40)
        assert driver.save_screenshot(str(shot))
    assert errors == [] and rendered_ms < 3000
    assert facts["progress"]["drawn"] >= verified + 3 and facts["progress"]["svgHeight"] > 100
    assert facts["classes"]["line-best"] == 2  # the line and its legend key
    assert facts["population"]["drawn"] >= len(run.generations)
    assert facts["lineage"]["drawn"] >= len(run.candidates)  # every candidate a node, plus the edges
    for cls in ("edge-mutation", "edge-crossover", "edge-repair", "edge-best", "node-best"):
        assert facts["classes"][cls] >= 1, cls
    assert facts["roofline"]["drawn"] >= 3 and facts["classes"]["roof"] == 1 and facts["classes"]["pt-winner"] >= 1
    assert facts["failures"]["drawn"] >= 2 and "compile_error" in facts["failures"]["text"]
    assert "wrong_output" in facts["failures"]["text"]
    spend = facts["spend"]
    assert spend["rows"] >= 6 and all(a in spend["text"] for a in ("translator", "mutator", "critic", "repair"))
    assert facts["candidates"]["rows"] == len(run.candidates)
    winner = facts["winner"]["text"]
    assert f"{run.best.speedup_vs_eager:.3f}x" in winner and "diff from its parent" in winner
    assert facts["diff"]["add"] >= 1 and facts["diff"]["del"] >= 1 and facts["diff"]["height"] > 20
    assert facts["scripts"] == 1  # only the render mark
    width, height = png_size(shot)
    assert width >= 1200 and height > 2000 and shot.stat().st_size > 50_000


def test_user_content_is_escaped(recorded: Path, tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "hostile"
    shutil.copytree(recorded, run_dir)
    best = load_run(run_dir).best
    evil = "</pre><script>window.pwned = 1</script><img src=x onerror='window.pwned=2'>"
    best.source_path.write_text(best.source() + f"\n# {evil}\n")
    meta = json.loads((best.folder / "meta.json").read_text())
    (best.folder / "meta.json").write_text(json.dumps({**meta, "model": "<b>model</b>"}))
    page = write_report(run_dir)
    assert evil not in page.read_text() and "&lt;/pre&gt;&lt;script&gt;" in page.read_text()
    with headless_chromium() as driver:
        open_and_wait_rendered(driver, page)
        assert driver.execute_script("return window.pwned === undefined && document.scripts.length === 1")
        text = driver.execute_script("return document.querySelector('#winner').innerText")
    assert evil in text and "<b>model</b>" in text  # shown as text, verbatim


def test_report_command_writes_the_file(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", RUN_ID, "--runs-dir", str(recorded.parent), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "<svg" in out.read_text() and str(out) in result.output
    missing = CliRunner().invoke(app, ["report", "nope", "--runs-dir", str(recorded.parent)])
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output


@pytest.mark.slow
def test_a_5000_candidate_report_renders_within_3_s(tmp_path: Path) -> None:
    run_dir = synthetic_run(tmp_path / "big", n_candidates=5000, generations=50)
    page = write_report(run_dir)
    with headless_chromium() as driver:
        rendered_ms = open_and_wait_rendered(driver, page, timeout_s=60)
        counts = driver.execute_script("return [document.querySelectorAll('#lineage circle').length,"
                                       " document.querySelectorAll('#candidates tr').length]")
    assert rendered_ms < 3000, rendered_ms
    assert counts[0] <= 300 and counts[1] > 5000  # the lineage is decimated, the table complete
    assert "showing" in page.read_text() and "of 5000 candidates" in page.read_text()
