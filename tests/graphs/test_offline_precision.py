"""A run's precision profile reaches the offline translator: under kernelbench its fp32 GEMMs run as plain TF32,
under strict the candidates never do (the run's EvalSettings decides; no setting of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import EvaluatorDefaults
from kernelwright.graphs.run import RunSetup, optimize_problem
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.graph_fakes import fake_report, verdict
from support.offline import suite_dir

PROBLEM = suite_dir() / "12_linear_relu_scale.py"  # one 4096^3 fp32 linear: far above every size floor


class RecordingEvaluator(EvaluatorDefaults):
    """Every candidate 'passes'; the sources it was given are kept."""

    def __init__(self) -> None:
        self.sources: list[str] = []

    def evaluate(self, candidate: Any) -> EvalReport:
        self.sources.append(Path(candidate).read_text())
        return fake_report(candidate, "passed", speedup_vs_eager=1.0 + len(self.sources) / 100)

    def sanitize(self, candidate: Any) -> SanitizeVerdict:
        return verdict("clean")


@pytest.mark.parametrize("precision, tf32", [("kernelbench", True), ("strict", False)])
def test_the_runs_precision_profile_decides_whether_offline_gemms_run_as_tf32(tmp_path: Path, precision: str,
                                                                             tf32: bool) -> None:
    evaluator = RecordingEvaluator()
    setup = RunSetup(eval_settings=EvalSettings(precision=precision), runs_dir=tmp_path,
                     run_settings=RunSettings(generations=1, candidates_per_generation=2, screen=False,
                                              profile=False, critic=False))
    optimize_problem(PROBLEM, setup, run_id=f"tf32-{precision}", evaluator=evaluator, offline=True)
    assert evaluator.sources
    uses_tf32 = ["_kw_tf32_call(torch.ops.aten.linear.default" in s for s in evaluator.sources]
    assert any(uses_tf32) is tf32
    if not tf32:
        assert not any("_kw_tf32_call" in s for s in evaluator.sources)
