"""What the run-level cases share: scripted candidate answers, and an evaluator that logs each evaluation it
finishes (one line per candidate file), so a case can count evaluations made, redone and lost."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import EvaluatorDefaults
from kernelwright.graphs.run import RunResult, RunSetup, optimize_problem
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict

PROBLEM = Path(__file__).resolve().parent.parent / "problems" / "tiny_relu.py"


def answer(speed: float, tag: str = "") -> str:
    """A chat answer holding a candidate file; its SPEED line is what the logging evaluator reports."""
    return (f"```python\nimport torch\nimport torch.nn as nn\nSPEED = {speed}\nTAG = '{tag}'\n"
            f"CUDA_SRC = '__global__ void k(float* x) {{}}'  # what the static screen looks for\n\n\n"
            f"class ModelNew(nn.Module):\n    def forward(self, x):\n        return torch.clamp_min(x, 0) * 2.0 + 1.0\n```")


class LoggingEvaluator(EvaluatorDefaults):
    """Appends each candidate to `log` once its evaluation has finished (a kill mid-evaluation leaves no line)."""

    def __init__(self, log: Path, delay_s: float = 0.0) -> None:
        self.log, self.delay_s = log, delay_s

    def evaluate(self, candidate: Path) -> EvalReport:
        time.sleep(self.delay_s)
        speed = float(re.search(r"SPEED = ([\d.]+)", Path(candidate).read_text()).group(1))  # type: ignore[union-attr]
        with self.log.open("a") as fh:
            fh.write(f"{candidate}\n")
        return EvalReport(problem=str(PROBLEM), candidate=str(candidate), status="passed", stage="done",
                          speedup_vs_eager=speed)

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        return SanitizeVerdict("clean", "scripted run: no memcheck", 0.0)


def evaluations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def settings(generations: int, candidates: int) -> RunSettings:
    # one evaluation at a time, no critic or screen: the LLM is asked only for candidates
    return RunSettings(generations=generations, candidates_per_generation=candidates, max_repairs=0, screen=False,
                       profile=False, critic=False, offline_seeds=False, eval_concurrency=1)


def run(runs_dir: Path, log: Path, run_settings: RunSettings, *, run_id: str | None = None, resume: str | None = None,
        delay_s: float = 0.0, **kwargs: Any) -> RunResult:
    """optimize_problem on the tiny problem with the logging evaluator and an LLM (`llm=` or `model=`)."""
    return optimize_problem(PROBLEM, RunSetup(run_settings=run_settings, runs_dir=runs_dir), run_id=run_id,
                            resume=resume, evaluator=LoggingEvaluator(log, delay_s), offline=False, **kwargs)


def lost_work(log: Path, result: RunResult) -> tuple[int, str]:
    """Evaluations redone (a candidate evaluated twice) plus candidates of the run that were never evaluated."""
    done = evaluations(log)
    redone = len(done) - len(set(done))
    sources = {str(r.get("source_path")) for r in result.state.get("candidates", {}).values()}
    never = len(sources - set(done))
    return redone + never, f"{len(done)} evaluations of {len(sources)} candidates ({redone} redone, {never} never)"
