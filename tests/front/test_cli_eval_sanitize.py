"""`kernelwright eval`: a candidate that passes is the user's winner, so memcheck runs on it by default; the output
and --json say sanitized yes/no; memory errors reject it (exit 1), a sanitizer that cannot run does not (exit 0).
The harness is a fake here (no GPU); the real one is in tests/front/test_gpu_sanitize.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from kernelwright import api
from kernelwright.cli import EXIT_PASSED, EXIT_REJECTED, app
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.paths import FIXTURES as FIX

ARGS = ["eval", str(FIX / "problems" / "relu_affine.py"), str(FIX / "problems" / "relu_affine.py"), "--no-profile"]
runner = CliRunner()


class FakeHarness:
    """Stands in for tools.harness.evaluate.Evaluator: every candidate passes; memcheck answers `status`."""

    status = "clean"
    sanitized: list[str] = []
    settings_seen: list[Any] = []

    def __init__(self, problem: Any, settings: Any, options: Any = None) -> None:
        self.problem, self.settings = problem, settings
        FakeHarness.settings_seen.append(settings)

    def __enter__(self) -> FakeHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def evaluate(self, candidate: Any) -> EvalReport:
        report = EvalReport(problem=str(self.problem), candidate=str(candidate), status="passed", stage="done",
                            message="verified", speedup_vs_eager=1.5)
        if self.settings.sanitize:  # the harness's own pass, before timing (harness.sanitize)
            report.sanitizer = self.sanitize(candidate).to_dict()
        return report

    def sanitize(self, candidate: Any) -> SanitizeVerdict:
        FakeHarness.sanitized.append(str(candidate))
        return SanitizeVerdict(self.status, f"memcheck says {self.status}", 0.2)  # type: ignore[arg-type]


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> type[FakeHarness]:
    monkeypatch.setattr(api, "Evaluator", FakeHarness)
    FakeHarness.status, FakeHarness.sanitized, FakeHarness.settings_seen = "clean", [], []
    return FakeHarness


def test_a_passing_candidate_is_sanitized_by_default(harness: type[FakeHarness]) -> None:
    result = runner.invoke(app, ARGS, env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_PASSED, result.output
    assert "PASSED" in result.output and "sanitized: yes" in result.output and len(harness.sanitized) == 1
    as_json = json.loads(runner.invoke(app, [*ARGS, "--json"]).stdout)
    assert as_json["sanitized"] is True and as_json["sanitizer"]["status"] == "clean"


def test_memory_errors_reject_the_candidate(harness: type[FakeHarness]) -> None:
    harness.status = "out_of_bounds"
    result = runner.invoke(app, ARGS, env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_REJECTED, result.output
    assert "REJECTED" in result.output and "out_of_bounds" in result.output and "sanitized: no" in result.output
    as_json = json.loads(runner.invoke(app, [*ARGS, "--json"]).stdout)
    assert (as_json["status"], as_json["reason"], as_json["sanitized"]) == ("rejected", "out_of_bounds", False)


def test_a_sanitizer_that_cannot_run_leaves_the_candidate_verified_and_says_so(harness: type[FakeHarness]) -> None:
    harness.status = "unavailable"
    result = runner.invoke(app, ARGS, env={"COLUMNS": "200"})
    assert result.exit_code == EXIT_PASSED, result.output
    assert "sanitized: no (unavailable: memcheck says unavailable)" in result.output
    as_json = json.loads(runner.invoke(app, [*ARGS, "--json"]).stdout)
    assert as_json["status"] == "passed" and as_json["sanitized"] is False


def test_no_sanitize_skips_memcheck_even_over_the_config(harness: type[FakeHarness]) -> None:
    env = {"COLUMNS": "200", "KERNELWRIGHT_HARNESS__SANITIZE": "true"}
    result = runner.invoke(app, [*ARGS, "--no-sanitize"], env=env)
    assert result.exit_code == EXIT_PASSED, result.output
    assert harness.sanitized == [] and harness.settings_seen[-1].sanitize is False
    assert "sanitized: no (memcheck not run)" in result.output


def test_the_harness_pass_before_timing_is_not_repeated(harness: type[FakeHarness]) -> None:
    result = runner.invoke(app, [*ARGS, "--json"], env={"KERNELWRIGHT_HARNESS__SANITIZE": "true"})
    assert result.exit_code == EXIT_PASSED and json.loads(result.stdout)["sanitized"] is True
    assert len(harness.sanitized) == 1 and harness.settings_seen[-1].sanitize is True
