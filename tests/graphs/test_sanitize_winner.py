"""The winner's memcheck at a run's end (CPU, fake evaluator): the best verified kernel is sanitized before it is
reported; memory errors reject it and the next best is tried; a sanitizer that cannot run leaves it the best,
and every report says `sanitized: no` and why."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.cli import app
from kernelwright.eval.report import render_report
from kernelwright.eval.report.run_data import list_runs, load_run
from kernelwright.graphs.sanitizing import sanitize_in_order, sanitized_text
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import HashedEmbedding
from kernelwright.run import optimize
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.graph_fakes import PROBLEM, FakeEvaluator, answer, run_graph, scripted

ONE_GENERATION = dict(generations=1, candidates_per_generation=3, critic=False)


def _speed(record: dict) -> float:
    return float(Path(record["source_path"]).read_text().split("SPEED = ")[1].split()[0])


def _report(record: dict) -> dict:
    return json.loads(Path(record["report_path"]).read_text())


def test_the_best_verified_kernel_is_sanitized_once_before_it_is_reported(tmp_path: Path) -> None:
    llm = scripted(answer(1.2), answer(1.5, tag="b"), answer(0, tag="wrong"))
    final, evaluator = run_graph(llm, tmp_path, **ONE_GENERATION)
    best = final["candidates"][final["best_id"]]
    assert _speed(best) == 1.5 and final["winner_checked"] is True
    assert final["winner_sanitizer"]["status"] == "clean" and final["winner_sanitizer"]["sanitized"] is True
    assert len(evaluator.sanitized) == 1 and "SPEED = 1.5" in evaluator.sanitized[0]  # the winner only
    assert best["sanitizer"] == "clean" and _report(best)["sanitizer"]["status"] == "clean"
    assert sanitized_text(final["winner_sanitizer"]) == "yes"


def test_memory_errors_reject_the_best_and_the_next_best_is_sanitized(tmp_path: Path) -> None:
    llm = scripted(answer(1.9, "out_of_bounds", "fast-but-overruns"), answer(1.7, "out_of_bounds", "also"),
                   answer(1.2, tag="honest"))
    final, evaluator = run_graph(llm, tmp_path, **ONE_GENERATION)
    by_speed = {_speed(r): r for r in final["candidates"].values()}
    assert [float(t.split("SPEED = ")[1].split()[0]) for t in evaluator.sanitized] == [1.9, 1.7, 1.2]
    for speed in (1.9, 1.7):
        record = by_speed[speed]
        assert (record["status"], record["reason"], record["sanitizer"]) == ("rejected", "out_of_bounds", "out_of_bounds")
        report = _report(record)  # the record's report says why, for the trace and the HTML report
        assert report["status"] == "rejected" and report["reason"] == "out_of_bounds"
        assert "fake memcheck: out_of_bounds" in report["message"] and report["sanitizer"]["sanitized"] is False
    assert final["best_id"] == by_speed[1.2]["id"] and final["winner_sanitizer"]["status"] == "clean"
    assert final["population"] == [by_speed[1.2]["id"]]


def test_when_memcheck_rejects_every_verified_kernel_nothing_is_reported(tmp_path: Path) -> None:
    llm = scripted(answer(1.9, "out_of_bounds", "a"), answer(1.3, "out_of_bounds", "b"), answer(0, tag="wrong"))
    final, evaluator = run_graph(llm, tmp_path, **ONE_GENERATION)
    assert len(evaluator.sanitized) == 2 and final["best_id"] is None and final["winner_sanitizer"] is None
    assert sorted(r["reason"] for r in final["candidates"].values()) == ["out_of_bounds", "out_of_bounds", "wrong_output"]


def test_a_sanitizer_that_cannot_run_leaves_the_best_and_says_why(tmp_path: Path) -> None:
    llm = scripted(answer(1.2), answer(1.5, tag="b"))
    final, evaluator = run_graph(llm, tmp_path, evaluator=FakeEvaluator(sanitizer="unavailable"), generations=1,
                                 candidates_per_generation=2, critic=False)
    best = final["candidates"][final["best_id"]]
    assert _speed(best) == 1.5 and best["status"] == "passed" and len(evaluator.sanitized) == 1
    assert final["winner_sanitizer"]["status"] == "unavailable" and final["winner_sanitizer"]["sanitized"] is False
    assert sanitized_text(final["winner_sanitizer"]) == "no (unavailable: fake memcheck: unavailable)"


def test_a_sanitizer_that_raises_is_a_run_with_an_unsanitized_winner(tmp_path: Path) -> None:
    class BrokenSanitizer(FakeEvaluator):
        def sanitize(self, candidate: Path) -> SanitizeVerdict:
            raise FileNotFoundError("compute-sanitizer vanished")

    final, _ = run_graph(scripted(answer(1.4)), tmp_path, evaluator=BrokenSanitizer(), generations=1,
                         candidates_per_generation=1, critic=False)
    verdict = final["winner_sanitizer"]
    assert final["best_id"] and verdict["status"] == "error" and "FileNotFoundError" in verdict["message"]


def test_a_verdict_the_harness_already_gave_is_not_repeated(tmp_path: Path) -> None:
    class SanitizingHarness(FakeEvaluator):  # harness.sanitize: memcheck inside every evaluation, before timing
        def evaluate(self, candidate: Path) -> EvalReport:
            report = super().evaluate(candidate)
            report.sanitizer = self.sanitize(candidate).to_dict()
            return report

    final, evaluator = run_graph(scripted(answer(1.2), answer(1.5, tag="b")), tmp_path, evaluator=SanitizingHarness(),
                                 generations=1, candidates_per_generation=2, critic=False)
    assert len(evaluator.sanitized) == 2  # once per evaluation, none more at the end
    assert final["winner_sanitizer"]["status"] == "clean" and _speed(final["candidates"][final["best_id"]]) == 1.5


def test_sanitize_in_order_stops_at_the_first_kernel_memcheck_does_not_reject() -> None:
    statuses = {"a": "out_of_bounds", "b": "timeout", "c": "clean"}
    seen: list[str] = []

    def sanitize(path: Path) -> dict:
        seen.append(path.name)
        return {"status": statuses[path.name], "sanitized": statuses[path.name] == "clean", "message": "m"}

    check = sanitize_in_order([(k, Path(k)) for k in "abc"], sanitize)
    assert (check.winner, check.rejected, seen) == ("b", ["a"], ["a", "b"])  # a timeout keeps b the winner
    assert sanitize_in_order([], sanitize).winner is None


def test_run_json_trace_runs_list_and_html_report_say_sanitized(tmp_path: Path) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=2, screen=False, critic=False, profile=False)
    result = optimize(PROBLEM, runs_dir=tmp_path, run_id="s1", settings=settings, plugins=(), offline=False,
                      llm=scripted(answer(1.8, "out_of_bounds", "overrun"), answer(1.3, tag="ok")),
                      evaluator=FakeEvaluator())
    assert result.sanitized and result.speedup_vs_eager == 1.3
    info = json.loads((tmp_path / "s1" / "run.json").read_text())
    assert info["best"]["sanitized"] is True and info["best"]["sanitizer_status"] == "clean"
    assert len(info["sanitizer_rejected"]) == 1 and info["sanitizer_rejected"][0] != info["best"]["id"]
    events = [json.loads(line) for line in (tmp_path / "s1" / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events if e["event"] == "tool_call" and e["tool"] == "sanitize"] == ["out_of_bounds",
                                                                                                      "clean"]
    assert events[-1]["event"] == "run_end" and events[-1]["sanitized"] is True
    run = load_run(tmp_path / "s1")
    rejected = run.candidates[info["sanitizer_rejected"][0]]
    assert rejected.status == "rejected" and rejected.reason == "out_of_bounds" and run.best.id == info["best"]["id"]
    html = render_report(run)
    assert "sanitized (memcheck)" in html and "rejected by memcheck (out_of_bounds)" in html
    assert [(r.run_id, r.sanitized) for r in list_runs(tmp_path)] == [("s1", True)]
    wide = {"COLUMNS": "200"}
    listed = CliRunner().invoke(app, ["runs", "--runs-dir", str(tmp_path)], env=wide)
    assert listed.exit_code == 0 and "sanitized" in listed.output and "yes" in listed.output, listed.output
    trace = CliRunner().invoke(app, ["trace", str(tmp_path / "s1")], env=wide)
    assert "tool sanitize: out_of_bounds" in trace.output
    summary = _summary(result)
    assert "sanitized: yes" in summary and "1 verified candidate(s) rejected by compute-sanitizer memcheck" in summary


def test_an_unsanitized_winner_is_reported_as_such(tmp_path: Path) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=1, screen=False, critic=False, profile=False)
    result = optimize(PROBLEM, runs_dir=tmp_path, run_id="u1", settings=settings, plugins=(), offline=False,
                      llm=scripted(answer(1.3)), evaluator=FakeEvaluator(sanitizer="timeout"))
    assert result.best is not None and not result.sanitized and result.sanitizer["status"] == "timeout"
    info = json.loads((tmp_path / "u1" / "run.json").read_text())
    assert info["best"]["sanitized"] is False and info["best"]["sanitizer_message"] == "fake memcheck: timeout"
    assert "no (timeout: fake memcheck: timeout)" in render_report(load_run(tmp_path / "u1"))
    assert "sanitized: no (timeout: fake memcheck: timeout)" in _summary(result)


def _summary(result: object) -> str:
    """What `kernelwright run` prints at the end."""
    from rich.console import Console

    from kernelwright.cli import _print_run_result

    console = Console(record=True, width=200)
    _print_run_result(console, result)
    return console.export_text()


def test_the_archive_keeps_the_verdicts_and_a_memcheck_failure_replaces_an_earlier_pass(tmp_path: Path) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=2, screen=False, critic=False, profile=False)
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        # both kernels are archived as verified after the generation; the end's memcheck then rejects one
        result = optimize(PROBLEM, runs_dir=tmp_path / "runs", settings=settings, plugins=(), offline=False,
                          llm=scripted(answer(1.8, "out_of_bounds", "overrun"), answer(1.3, tag="ok")),
                          evaluator=FakeEvaluator(), archive=archive)
        records = {cid: archive.get(cid) for cid in result.state["candidates"]}
    best_id = result.state["best_id"]
    (bad_id,) = set(records) - {best_id}
    assert records[best_id].verified and records[best_id].correctness["sanitizer"] == "clean"
    assert not records[bad_id].verified and records[bad_id].correctness["sanitizer"] == "out_of_bounds"
