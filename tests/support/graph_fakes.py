"""Scripted answers and a fake evaluator for CPU runs of the optimisation graph (a GPU would run the harness)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from kernelwright.agents.context import KContext, RunSettings
from kernelwright.agents.evaluator import CandidateProfile, EvaluatorDefaults
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.state import Budget, make_initial_state
from kernelwright.tools.harness.results import EvalReport, Status
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "relu_affine.py"
CRITIC = "VERDICT: memory-bound at 40% of DRAM bandwidth\nDIRECTIONS:\n- vectorize loads to float4\n- fuse the two passes"
# What only the critic's prompts ask for (replay rules pick the critique and the screen requests by them)
CRITIQUE_ASKS, SCREEN_ASKS = '"directions"', '"defect"'


def answer(speed: float, outcome: str = "ok", tag: str = "") -> str:
    """A candidate file whose SPEED / OUTCOME lines tell the fake evaluator what to report."""
    return (f"```python\nimport torch.nn as nn\nSPEED = {speed}\nOUTCOME = '{outcome}'\nTAG = '{tag}'\n"
            f"CUDA_SRC = '__global__ void k(float* x) {{}}'\n\n\nclass ModelNew(nn.Module):\n"
            f"    def forward(self, x):\n        return x\n```")


def scripted(*texts: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(t) for t in texts]))


def verdict(status: str) -> SanitizeVerdict:
    """A memcheck verdict as the harness gives it."""
    return SanitizeVerdict(status, f"fake memcheck: {status}", 0.01)  # type: ignore[arg-type]


def fake_report(candidate: Any, status: Status, **fields: Any) -> EvalReport:
    """The harness report of a fake evaluation (problem: the fixture every graph test runs)."""
    return EvalReport(problem=str(PROBLEM), candidate=str(candidate), status=status,
                      stage="done" if status == "passed" else "correctness", **fields)


def profile_of(found: dict[str, Any]) -> CandidateProfile:
    """A profile.json-shaped dict (its "summary" and metrics) as an evaluator's profile."""
    return CandidateProfile.from_dict(found)


class FakeEvaluator(EvaluatorDefaults):
    """Reads SPEED / OUTCOME from the candidate; OUTCOME 'compile_error' or 'timeout' rejects it like the harness.
    OUTCOME 'out_of_bounds' passes the harness and fails memcheck; other candidates get `sanitizer`'s status."""

    def __init__(self, delay_s: float = 0.0, profile: dict[str, Any] | Exception | None = None,
                 sanitizer: str = "clean") -> None:
        self.seen: list[str] = []
        self.sanitized: list[str] = []  # candidate sources, in the order memcheck saw them
        self.sanitizer = sanitizer
        self.delay_s, self._profile = delay_s, profile
        self.in_flight = self.max_in_flight = 0
        self.profiled: list[str] = []
        self._lock = threading.Lock()

    def evaluate(self, candidate: Any) -> EvalReport:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            text = Path(candidate).read_text()
            with self._lock:
                self.seen.append(text)
            speed = float(re.search(r"SPEED = ([\d.]+)", text).group(1))
            outcome = re.search(r"OUTCOME = '(\w+)'", text).group(1)
            if outcome == "compile_error":
                return fake_report(candidate, "rejected", reason="compile_error", message="nvcc failed",
                                   error={"diagnostics": [{"file": "k.cu", "line": 3, "severity": "error",
                                                           "message": "identifier \"flaot\" is undefined"}]})
            if outcome == "timeout":
                return fake_report(candidate, "rejected", reason="timeout", message="no reply in 30 s: the kernel hangs")
            if speed == 0:
                return fake_report(candidate, "rejected", reason="wrong_output",
                                   message="12 of 4096 elements outside tolerance")
            return fake_report(candidate, "passed", speedup_vs_eager=speed, speedup_vs_compile=speed / 1.2)
        finally:
            with self._lock:
                self.in_flight -= 1

    def sanitize(self, candidate: Any) -> SanitizeVerdict:
        text = Path(candidate).read_text()
        self.sanitized.append(text)
        return verdict("out_of_bounds" if "OUTCOME = 'out_of_bounds'" in text else self.sanitizer)

    def profile(self, candidate: Any) -> CandidateProfile:
        self.profiled.append(str(candidate))
        if isinstance(self._profile, Exception):
            raise self._profile
        return profile_of(self._profile or {"summary": "relu_affine_kernel: 82% of DRAM bandwidth, memory-bound"})


def run_graph(llm: Any, tmp_path: Path, *, evaluator: FakeEvaluator | None = None, budget: dict[str, Any] | None = None,
              concurrency: int = 1, plugins: tuple = (), **settings: Any) -> tuple[dict, FakeEvaluator]:
    evaluator = evaluator or FakeEvaluator()
    defaults: dict[str, Any] = dict(generations=2, candidates_per_generation=2, max_repairs=1, screen=False, profile=False,
                                    repair_rounds=0, temperature_schedule="fixed")
    run_settings = RunSettings(**{**defaults, **settings})
    ctx = KContext(llm=llm, evaluator=evaluator, run_dir=tmp_path / "run", model_name="scripted", settings=run_settings)
    graph = build_optimize_graph(checkpointer=InMemorySaver(), plugins=plugins)
    limits = Budget(generations=run_settings.generations, candidates=100, wall_s=600.0, tokens=10**6)
    limits.update(budget or {})  # type: ignore[typeddict-item]
    state = make_initial_state("r1", str(PROBLEM), limits)
    final = graph.invoke(state, context=ctx, config={"configurable": {"thread_id": "r1"}, "max_concurrency": concurrency,
                                                     "recursion_limit": 200})
    return final, evaluator
