"""A fake GPU evaluator for Ray actors (tests/graphs/test_ray_executor.py): each evaluation leaves a marker file
when it starts (naming its process) and one when it finishes, so a test kills the actor of an evaluation in progress
and counts how often every candidate was evaluated to the end."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict


class CountingEvaluator:
    """Passes every candidate after `delay_s`, and records the finished evaluation in `markers`."""

    def __init__(self, problem: Path, settings: EvalSettings, markers: Path, delay_s: float):
        self.problem, self.markers, self.delay_s = problem, Path(markers), delay_s
        self.baseline_pid = os.getpid()  # the process that "measured the baselines"

    def functional_form(self) -> dict[str, Any]:
        return {"method": "source", "fallback_reason": "fake evaluator"}

    def evaluate(self, candidate: Path) -> EvalReport:
        (self.markers / f"{Path(candidate).parent.name}.{os.getpid()}.started").write_text("")
        time.sleep(self.delay_s)
        text = Path(candidate).read_text()
        (self.markers / f"{Path(candidate).parent.name}.{uuid.uuid4().hex[:8]}.done").write_text(str(os.getpid()))
        return EvalReport(problem=str(self.problem), candidate=str(candidate), status="passed", stage="done",
                          speedup_vs_eager=1.5, message=f"{len(text)} bytes",
                          gpu={"baseline_pid": self.baseline_pid, "eval_pid": os.getpid()})

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        return SanitizeVerdict("clean", "fake", 0.0)

    def close(self) -> None:
        return None


def counting_factory(markers: Path, delay_s: float) -> Any:
    """An EvaluatorFactory (graphs.ray_executor) of CountingEvaluators writing into `markers`."""

    def make(problem: Path, settings: EvalSettings) -> CountingEvaluator:
        return CountingEvaluator(problem, settings, markers, delay_s)

    return make


def failing_factory(problem: Path, settings: EvalSettings) -> Any:
    """An EvaluatorFactory whose evaluator cannot start (as the harness on a node without a driver)."""
    raise RuntimeError("no GPU driver on this node")
