"""A run of the optimisation graph in its own process, for the kill-and-resume test.

    python -m support.graph_run RUNS_DIR RUN_ID LOG [--crash-after N]     (from tests/)

The scripted model answers three candidates per generation; the fake evaluator
appends each candidate it evaluates to LOG and, with --crash-after N, kills the
process (os._exit) when asked for evaluation N+1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import EvaluatorDefaults
from kernelwright.run import optimize
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.graph_fakes import answer, fake_report, scripted, verdict
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "relu_affine.py"


def scripted_model() -> Any:
    return scripted(*(answer(s) for s in (1.1, 1.2, 1.3, 1.5, 1.6, 1.7)))


class LoggingEvaluator(EvaluatorDefaults):
    def __init__(self, log: Path, crash_after: int | None):
        self.log, self.crash_after = log, crash_after

    def evaluate(self, candidate: Path) -> EvalReport:
        done = self.log.read_text().splitlines() if self.log.exists() else []
        if self.crash_after is not None and len(done) >= self.crash_after:
            os._exit(9)  # killed mid-generation, mid-node
        with self.log.open("a") as fh:
            fh.write(str(candidate) + "\n")
        speed = float(re.search(r"SPEED = ([\d.]+)", Path(candidate).read_text()).group(1))
        return fake_report(candidate, "passed", speedup_vs_eager=speed)

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        return verdict("clean")


def run(runs_dir: Path, run_id: str, log: Path, crash_after: int | None, resume: bool, llm: Any) -> Any:
    # one evaluation at a time, so "killed at evaluation N+1" is well defined
    settings = RunSettings(generations=2, candidates_per_generation=3, max_repairs=0, screen=False, profile=False,
                           eval_concurrency=1)
    return optimize(PROBLEM, runs_dir=runs_dir, run_id=None if resume else run_id, resume=run_id if resume else None,
                    settings=settings, llm=llm, evaluator=LoggingEvaluator(log, crash_after), offline=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("log", type=Path)
    parser.add_argument("--crash-after", type=int)
    args = parser.parse_args()
    run(args.runs_dir, args.run_id, args.log, args.crash_after, False, scripted_model())
    sys.exit(0)
