"""Live progress folds node updates into the numbers the CLI shows."""

from __future__ import annotations

from kernelwright.graphs.generations import generation_label, generations_label, last_finished
from kernelwright.progress import RunProgress


def test_progress_counts_outcomes_best_and_spend() -> None:
    p = RunProgress()
    p.apply("translate", {"candidates": {"a": {"status": "pending"}, "b": {"status": "pending"}},
                          "errors": [{"kind": "answer"}], "spent": {"tokens": 100, "wall_s": 1.5}})
    p.apply("evaluate_one", {"candidates": {"a": {"status": "passed", "speedup_vs_eager": 1.7}}, "spent": {"candidates": 1}})
    p.apply("evaluate_one", {"candidates": {"b": {"status": "rejected", "reason": "wrong_output"}}})
    p.apply("screen", {"candidates": {"a": {"screen": "PASS"}}, "spent": {"tokens": 20, "cost_usd": 0.5}})
    p.apply("select", {"generation": 1, "stop_reason": "LLM tokens: 120 of 100"})
    assert (p.proposed, p.outcomes["passed"], p.outcomes["rejected"], p.malformed) == (2, 1, 1, 1)
    assert p.best_speedup == 1.7 and p.best_id == "a" and p.reasons == {"wrong_output": 1}
    assert p.tokens == 120 and p.cost_usd == 0.5 and p.stop_reason.startswith("LLM tokens")
    assert (p.generation, p.finished) == (0, 1)  # the run stopped after generation 0: it stays on show
    line = p.line()
    assert line.startswith("generation 0 done: ")
    assert "best 1.70x" in line and "verified 1" in line and "failed 1" in line and "$0.50" in line
    assert p.table("t").row_count >= 6


def test_the_winners_memcheck_replaces_a_passed_verdict_and_moves_the_best() -> None:
    p = RunProgress()
    p.apply("evaluate_one", {"candidates": {"a": {"status": "passed", "speedup_vs_eager": 1.9}}})
    p.apply("evaluate_one", {"candidates": {"b": {"status": "passed", "speedup_vs_eager": 1.2}}})
    assert p.best_id == "a" and p.outcomes["passed"] == 2
    p.apply("sanitize_winner", {"candidates": {"a": {"status": "rejected", "reason": "out_of_bounds", "sanitizer": "out_of_bounds"},
                                               "b": {"sanitizer": "clean"}},
                                "best_id": "b", "winner_sanitizer": {"status": "clean", "sanitized": True}})
    assert (p.outcomes["passed"], p.outcomes["rejected"], p.reasons["out_of_bounds"]) == (1, 1, 1)
    assert p.best_id == "b" and p.best_speedup == 1.2 and p.sanitized == "yes"
    assert "verified 1" in p.line() and "failed 1" in p.line()


def test_generations_are_numbered_from_0_as_the_state_and_trace_number_them() -> None:
    assert generation_label(0) == "generation 0" and last_finished(0) is None and last_finished(3) == 2
    assert [generations_label(n) for n in (0, 1, 2)] == ["0 generations", "1 generation (0)", "2 generations (0 to 1)"]


def test_progress_names_the_generation_running_then_the_one_that_ended() -> None:
    p = RunProgress()
    p.apply("translate", {"candidates": {"a": {"status": "pending", "generation": 0}}})
    assert p.line().startswith("generation 0: ")
    p.apply("select", {"generation": 1, "stop_reason": None})
    assert (p.generation, p.finished) == (1, 1) and p.line().startswith("generation 0 done: ")
    p.apply("mutate", {"candidates": {"b": {"status": "pending", "generation": 1}}})
    p.apply("select", {"generation": 2, "stop_reason": "generations: 2 of 2"})
    assert (p.generation, p.finished) == (1, 2) and p.line().startswith("generation 1 done: ")
    resumed = RunProgress()  # a resumed run's first update names its generation
    resumed.apply("mutate", {"candidates": {"c": {"status": "pending", "generation": 4}}})
    assert resumed.generation == 4 and resumed.line().startswith("generation 4: ")
