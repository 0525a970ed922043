"""events.jsonl and run.json as a real CPU run writes them: nodes, LLM calls through callbacks, tool calls."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.eval.report.run_data import load_run
from kernelwright.graphs.events import RecordingEvaluator
from kernelwright.run import RunError, optimize
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.run_folder import EventLog
from support.graph_fakes import PROBLEM, FakeEvaluator, answer, scripted
from support.recorded_run import GPU, RUN_ID, RecordingFakeEvaluator, record_run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, list[dict]]:
    runs = tmp_path_factory.mktemp("runs")
    evaluator = RecordingFakeEvaluator()
    result, requests = record_run(runs, evaluator=evaluator)
    return runs / RUN_ID, (result, evaluator), requests


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_every_llm_call_inside_the_nodes_is_recorded_through_callbacks(recorded) -> None:
    run_dir, (result, _), requests = recorded
    calls = [e for e in _events(run_dir) if e["event"] == "llm_call"]
    assert len(calls) == len(requests) > 10  # one event per HTTP request the agents made
    # the same temperatures, in the same order, as the chat requests the server saw
    assert [c["temperature"] for c in calls] == [r.get("temperature") for r in requests]
    assert Counter(c["agent"] for c in calls).keys() >= {"translator", "mutator", "repair", "critic"}
    for call, request in zip(calls, requests):
        assert call["run_id"] == RUN_ID and call["model"] == "replay" and call["ts"].endswith("Z")
        assert call["messages"][-1]["content"] == request["messages"][-1]["content"]
        assert call["input_tokens"] > 0 and call["output_tokens"] > 0
        assert call["total_tokens"] == call["input_tokens"] + call["output_tokens"]
        assert call["cost_usd"] == pytest.approx((call["input_tokens"] * 2 + call["output_tokens"] * 8) / 1e6)
        assert call["latency_s"] >= 0 and call["node_run"]
    proposals = [c for c in calls if c["candidate_id"]]
    assert {c["candidate_id"] for c in proposals} == set(result.state["candidates"])  # every candidate's call
    assert sum(c["total_tokens"] for c in calls) == result.state["spent"]["tokens"]  # the run's own accounting


def test_nodes_start_and_end_in_pairs_with_their_updates(recorded) -> None:
    run_dir, (result, _), _ = recorded
    events = _events(run_dir)
    starts = {e["node_run"]: e for e in events if e["event"] == "node_start"}
    ends = {e["node_run"]: e for e in events if e["event"] == "node_end"}
    assert starts.keys() == ends.keys() and len(starts) > 20
    names = Counter(e["node"] for e in starts.values())
    assert names["select"] == 3 and names["critique"] == 2 and names["evaluate_one"] == len(result.state["candidates"])
    evaluated = [e for e in ends.values() if e["node"] == "evaluate_one"]
    assert all(len(e["candidates"]) == 1 and e["candidates"][0]["status"] in ("passed", "rejected") for e in evaluated)
    assert all(starts[e["node_run"]]["candidate_id"] == e["candidates"][0]["id"] for e in evaluated)
    selects = sorted((e for e in ends.values() if e["node"] == "select"), key=lambda e: e["t"])
    assert [s["next_generation"] for s in selects] == [1, 2, 3] and selects[-1]["best_id"] == result.state["best_id"]
    assert all(e["duration_s"] >= 0 for e in ends.values())


def test_tool_calls_record_each_evaluator_call(recorded) -> None:
    run_dir, (result, evaluator), _ = recorded
    tools = [e for e in _events(run_dir) if e["event"] == "tool_call"]
    by_tool = Counter(e["tool"] for e in tools)
    assert by_tool["evaluate"] == len(evaluator.seen) and by_tool["prepare"] == len(evaluator.prepared)
    assert by_tool["profile"] == len(evaluator.profiled) == 3
    evaluated = {e["candidate_id"]: e for e in tools if e["tool"] == "evaluate"}
    for cid, record in result.state["candidates"].items():
        assert evaluated[cid]["status"] == record["status"] and evaluated[cid]["speedup"] == record.get("speedup_vs_eager")
    assert all(e["status"] == "built" for e in tools if e["tool"] == "prepare")


def test_run_json_holds_the_outcome(recorded) -> None:
    run_dir, (result, _), _ = recorded
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "finished" and info["best"]["id"] == result.state["best_id"]
    assert info["best"]["speedup_vs_eager"] == result.best["speedup_vs_eager"]
    assert info["stop_reason"] == "generations: 3 of 3" and info["spent"] == result.state["spent"]
    assert info["gpu"] == GPU and info["settings"]["generations"] == 3  # settings from the start survive


def test_lines_from_many_threads_stay_whole(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", "r")
    payload = "x" * 5000  # longer than a pipe buffer: a torn write would show

    def write(n: int) -> None:
        for i in range(200):
            log.emit("tool_call", worker=n, i=i, blob=payload)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert len(parsed) == 1600 and Counter(p["worker"] for p in parsed) == {n: 200 for n in range(8)}


def test_the_wrapper_records_every_evaluator_call_with_its_typed_outcome(tmp_path: Path) -> None:
    """Calls an evaluator answers with the defaults (no separate build, no profiler) are recorded too."""
    log = EventLog(tmp_path / "events.jsonl", "r")
    inner = FakeEvaluator()
    wrapped = RecordingEvaluator(inner, log)
    assert isinstance(inner, CandidateEvaluator) and isinstance(wrapped, CandidateEvaluator)
    assert isinstance(wrapped.traces_out_of_process, bool) and wrapped.gpus == inner.gpus == ()
    folder = tmp_path / "candidates" / "abcdef0123456789"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"id": "abcdef0123456789" + "0" * 48}))
    (folder / "candidate.py").write_text(answer(1.5).strip("`").removeprefix("python\n"))
    assert wrapped.prepare(folder / "candidate.py") is None
    assert wrapped.evaluate(folder / "candidate.py").speedup_vs_eager == 1.5
    assert wrapped.sanitize(folder / "candidate.py").status == "clean"
    assert wrapped.profile(folder / "candidate.py").summary.startswith("relu_affine_kernel")
    assert wrapped.functional_form()["method"] == "source"
    log.close()
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["tool"], e["status"]) for e in events] == [("prepare", "built"), ("evaluate", "passed"),
                                                          ("sanitize", "clean"), ("profile", "profiled"),
                                                          ("functional_form", "traced")]
    assert {e["candidate_id"] for e in events[:4]} == {"abcdef0123456789" + "0" * 48}
    assert events[1]["speedup"] == 1.5 and events[4]["candidate_id"] is None


def test_a_failed_run_is_recorded_and_its_resume_appends(tmp_path: Path) -> None:
    settings = RunSettings(generations=2, candidates_per_generation=1, screen=False, critic=False, profile=False)

    class Broken(FakeEvaluator):
        def evaluate(self, candidate: object) -> EvalReport:
            raise RuntimeError("worker pool is gone")

    with pytest.raises(RunError):
        optimize(PROBLEM, runs_dir=tmp_path, run_id="r", settings=settings, llm=scripted(answer(1.2)),
                 evaluator=Broken(), plugins=(), offline=False)
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["status"] == "failed" and "worker pool is gone" in info["error"]
    failed = _events(tmp_path / "r")
    assert failed[-1]["event"] == "run_end" and failed[-1]["status"] == "failed"
    assert any(e["event"] == "tool_call" and e["status"] == "error" for e in failed)
    result = optimize(PROBLEM, runs_dir=tmp_path, resume="r", settings=settings, llm=scripted(answer(1.4)),
                      evaluator=FakeEvaluator(), plugins=(), offline=False)
    events = _events(tmp_path / "r")
    assert events[: len(failed)] == failed  # appended, nothing rewritten
    starts = [e for e in events if e["event"] == "run_start"]
    assert [s["resumed"] for s in starts] == [False, True]
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "finished"
    assert load_run(tmp_path / "r").best.speedup_vs_eager == result.best["speedup_vs_eager"]


def test_a_half_written_last_line_does_not_break_loading(recorded, tmp_path: Path) -> None:
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(recorded[0], run_dir)
    lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["event"] == "run_end"
    (run_dir / "events.jsonl").write_text("".join(lines[:-1]) + '{"event": "llm_call", "messa')  # killed mid-write
    (run_dir / "run.json").unlink()
    run = load_run(run_dir)
    assert run.skipped_lines == 1 and run.status == "unknown" and len(run.candidates) == len(load_run(recorded[0]).candidates)


def test_the_event_log_ignores_the_consoles_log_level(tmp_path: Path) -> None:
    import io

    from kernelwright.logging_setup import configure_logging

    configure_logging(level="error", stream=io.StringIO())  # as the CLI does: the console shows errors only
    log = EventLog(tmp_path / "events.jsonl", "r")
    log.emit("llm_call", agent="translator")
    log.close()
    (event,) = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert event["event"] == "llm_call" and event["run_id"] == "r" and "level" not in event
