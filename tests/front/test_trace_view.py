"""`kernelwright trace` and `runs` on recorded runs: the tree, its filters, following a live run."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.eval.report.run_data import list_runs, load_run
from kernelwright.progress import RunProgress
from kernelwright.trace_view import build_tree, follow
from support.paths import PROBLEMS
from support.recorded_run import RUN_ID, RecordingFakeEvaluator, record_run

runner = CliRunner()
CANDIDATE_LINE = re.compile(r"[✓✗!⊘?…] ([0-9a-f]{12})  (\w+)")


@pytest.fixture(scope="module")
def recorded_live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunProgress, list[str]]:
    """The recorded run, with the live progress the CLI would have shown and the line it prints per generation."""
    runs = tmp_path_factory.mktemp("runs")
    progress, lines = RunProgress(), []

    def on_update(node: str, update: dict) -> None:
        progress.apply(node, update)
        if node == "select":
            lines.append(progress.line())

    record_run(runs, on_update=on_update)
    return runs / RUN_ID, progress, lines


@pytest.fixture(scope="module")
def recorded(recorded_live: tuple[Path, RunProgress, list[str]]) -> Path:
    return recorded_live[0]


def _render(renderable: object) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_tree_shows_generations_candidates_and_their_steps(recorded: Path) -> None:
    run = load_run(recorded)
    text = _render(build_tree(run))
    assert f"run {RUN_ID}" in text and "finished" in text and f"best {run.best.speedup_vs_eager:.2f}x" in text
    for gen in run.generations:
        assert f"generation {gen}:" in text
    shown = dict(CANDIDATE_LINE.findall(text))
    assert set(shown) == {c.short for c in run.candidates.values()}  # every candidate, with its agent
    assert all(shown[c.short] == c.agent for c in run.candidates.values())
    assert "rejected (compile_error)" in text and "rejected (wrong_output)" in text
    for cand in run.candidates.values():
        if cand.verified:
            assert re.search(rf"{cand.short}  .*passed  {cand.speedup_vs_eager:.2f}x", text), cand.short
    assert "llm proposal by translator (replay, t=0.2)" in text and "llm screen by critic" in text
    assert "llm critique by critic" in text and "tool evaluate: passed" in text and "tool prepare: built" in text
    assert re.search(r"\d+ in / \d+ out tokens", text)


def test_agent_filter_keeps_only_that_agents_candidates(recorded: Path) -> None:
    run = load_run(recorded)
    text = _render(build_tree(run, agent="crossover"))
    agents = {agent for _, agent in CANDIDATE_LINE.findall(text)}
    assert agents == {"crossover"}
    assert len(CANDIDATE_LINE.findall(text)) == sum(c.agent == "crossover" for c in run.candidates.values())
    assert "generation 0:" not in text  # no crossover before there is an elite
    critic = _render(build_tree(run, agent="critic"))
    assert "llm critique by critic" in critic and "llm proposal" not in critic


def test_candidate_filter_shows_its_lineage(recorded: Path) -> None:
    run = load_run(recorded)
    best = run.best
    text = _render(build_tree(run, candidate=best.short[:8]))
    assert "lineage: " in text and all(c.short in text for c in run.lineage(best.id))
    assert [s for s, _ in CANDIDATE_LINE.findall(text)] == [best.short]


def test_trace_and_runs_commands(recorded: Path) -> None:
    result = runner.invoke(app, ["trace", RUN_ID, "--runs-dir", str(recorded.parent), "--agent", "repair"])
    assert result.exit_code == 0, result.output
    assert {a for _, a in CANDIDATE_LINE.findall(result.output)} == {"repair"}
    by_path = runner.invoke(app, ["trace", str(recorded), "--limit", "1"])
    assert by_path.exit_code == 0 and "more candidates (raise --limit)" in by_path.output
    unknown = runner.invoke(app, ["trace", RUN_ID, "--runs-dir", str(recorded.parent), "--candidate", "zzzz"])
    assert unknown.exit_code == 2 and "0 candidates" in unknown.output
    listed = runner.invoke(app, ["runs", "--runs-dir", str(recorded.parent)])
    assert listed.exit_code == 0, listed.output
    best = load_run(recorded).best
    assert RUN_ID in listed.output and f"{best.speedup_vs_eager:.2f}x" in listed.output and "finished" in listed.output


def test_runs_lists_a_killed_run_as_stopped(recorded: Path, tmp_path: Path) -> None:
    import shutil
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = tmp_path / "killed"
    shutil.copytree(recorded, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info.update(status="running", pid=int(dead.stdout), host=socket.gethostname(), best=None, generations_done=None)
    (run_dir / "run.json").write_text(json.dumps(info))
    (row,) = list_runs(tmp_path)
    assert row.status == "stopped" and row.candidates == len(load_run(recorded).candidates) and row.best_speedup
    assert "stopped" in _render(build_tree(load_run(run_dir)))


def test_follow_tails_a_live_run_until_it_ends(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    finished: dict[str, object] = {}

    def run() -> None:
        finished["result"] = record_run(runs, run_id="live", generations=2, evaluator=RecordingFakeEvaluator(delay_s=0.3))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not (runs / "live" / "run.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    console = Console(record=True, width=200, color_system=None, force_terminal=False)
    started = time.monotonic()
    last = follow(runs / "live", console, interval_s=0.2, max_s=120)
    thread.join(timeout=60)
    assert "result" in finished and time.monotonic() - started < 120
    assert last.status == "finished"
    text = console.export_text()
    assert "generation 1:" in text and "finished" in text
    assert len(CANDIDATE_LINE.findall(text)) >= len(finished["result"][0].state["candidates"])


@pytest.mark.nvcc
def test_trace_and_report_of_a_real_cli_run(tmp_path: Path, build_cache: Path) -> None:
    """The CPU end-to-end run (real harness, compile only, no GPU) traces and reports without error."""
    from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
    from support.paths import RELU_CANDIDATE

    problem = PROBLEMS / "relu_affine.py"
    env = {"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a"}
    with ReplayServer([ReplayRule("```python\n" + RELU_CANDIDATE.read_text() + "```", repeat=True)]) as server:
        result = runner.invoke(app, ["run", str(problem), "--runs-dir", str(tmp_path), "--generations", "1",
                                     "--candidates", "1", "--model", "replay", "--no-archive"],
                               env={**env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "t"})
    assert result.exit_code == 3, result.output  # needs a GPU to verify
    (run_dir,) = tmp_path.iterdir()
    trace = runner.invoke(app, ["trace", str(run_dir)])
    assert trace.exit_code == 0, trace.output
    assert "needs_gpu" in trace.output and "llm proposal by translator" in trace.output
    assert "tool evaluate: needs_gpu" in trace.output
    report = runner.invoke(app, ["report", str(run_dir)])
    assert report.exit_code == 0, report.output
    html = (run_dir / "report.html").read_text()
    assert "no verified candidate" in html and "needs_gpu" in html


def test_screen_calls_name_their_candidate_in_the_trace(recorded: Path) -> None:
    """The screen's LLM calls carry the candidate they judged (not matched by order), and load_run links them."""
    events = [json.loads(line) for line in (recorded / "events.jsonl").read_text().splitlines() if line.strip()]
    screens = [e for e in events if e.get("event") == "llm_call" and e.get("node") == "screen"]
    run = load_run(recorded)
    assert screens and all(e.get("role") == "screen" and e.get("subject") for e in screens)
    for event in screens:
        cand = next(c for c in run.candidates.values() if c.id.startswith(event["subject"][:16]))
        assert cand.screen and "(static)" not in cand.screen  # the model screened it, and the call says so
        assert sum(call.role == "screen" for call in cand.llm_calls) == 1
    assert sum(call.role == "screen" for c in run.candidates.values() for call in c.llm_calls) == len(screens)


def test_progress_and_trace_number_the_generations_alike(recorded_live: tuple[Path, RunProgress, list[str]]) -> None:
    """The CLI's progress used to say 'generation 1' for what trace calls generation 0, and ended on a
    generation the run never had."""
    run_dir, progress, lines = recorded_live
    run = load_run(run_dir)
    traced = re.findall(r"^\W*(generation \d+):", _render(build_tree(run)), flags=re.M)
    assert traced == [f"generation {gen}" for gen in run.generations] and len(traced) == 3
    assert [line.split(" done:")[0] for line in lines] == traced  # one line per generation, as trace names it
    assert progress.generation == run.generations[-1] and progress.finished == len(run.generations)
    table = _render(progress.table("t"))
    assert re.search(rf"generation\s+│ {run.generations[-1]} \(done\)", table), table


RUN_ROW = re.compile(r"^│ (\S+)")


def _long_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for run_id, problem in (("20250612-101530-3fa9c1", "problem_relu_affine.py"),
                            ("20250612-094501-b07e2d", "softmax_rowwise_fp16_large_batch.py")):
        (runs / run_id / "candidates").mkdir(parents=True)
        (runs / run_id / "run.json").write_text(json.dumps({
            "run_id": run_id, "problem": f"/home/u/problems/{problem}", "started": "2025-06-12T10:15:30+0000",
            "generations_done": 3, "status": "finished", "best": {"speedup_vs_eager": 1.73, "sanitized": True}}))
    return runs


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_runs_fits_the_terminal_without_splitting_words(tmp_path: Path, width: int) -> None:
    """`runs` used to fold every column at 80 columns ("proble/m", "2025-0/6-12"): now values stay on one line,
    the problem's name is cut with "…", and narrower terminals drop the start time, then the counts."""
    runs = _long_runs(tmp_path)
    result = runner.invoke(app, ["runs", "--runs-dir", str(runs)], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= width, result.output
    rows = [line for line in lines if RUN_ROW.match(line)]
    assert [RUN_ROW.match(r).group(1) for r in rows] == ["20250612-101530-3fa9c1", "20250612-094501-b07e2d"]
    assert all("1.73x" in r and "finished" in r for r in rows)  # the best and the status are never dropped
    names = ["problem_relu_affine.py", "softmax_rowwise_fp16_large_batch.py"]
    for row, name in zip(rows, names):  # on the run's own line: whole, or cut short with "…"
        cell = row.split("│")[2].strip()
        assert cell == name or (cell.endswith("…") and len(cell) > 8 and name.startswith(cell[:-1])), result.output
    header = next(line for line in lines if "run" in line and "problem" in line)
    if width >= 120:
        assert "problem_relu_affine.py" in result.output and "2025-06-12 10:15" in result.output
    if width >= 200:
        assert "softmax_rowwise_fp16_large_batch.py" in result.output
        assert "generations" in header and "candidates" in header
    if width <= 80:
        assert "started" not in header and "…" in result.output
    assert "sanitized" in header or width < 80
