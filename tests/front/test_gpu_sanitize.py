"""On a GPU: the winner of `kernelwright eval` and of a run goes through the real compute-sanitizer memcheck; the
honest relu kernel comes out `sanitized: yes`, the kernel that writes past its output is rejected out_of_bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.cli import EXIT_PASSED, EXIT_REJECTED, app
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.run import optimize
from support.paths import FIXTURES, RELU_CANDIDATE

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc]
PROBLEM = FIXTURES / "problems" / "small_relu_affine.py"
OVERRUN = FIXTURES / "sanitizer" / "out_of_bounds_write.py"


def _eval(candidate: Path, build_cache: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["eval", str(PROBLEM), str(candidate), "--json", "--no-profile",
                                      "--no-compile-baseline"], env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})
    return result.exit_code, json.loads(result.stdout)


def test_eval_sanitizes_the_passing_honest_kernel_and_rejects_the_overrun(build_cache: Path) -> None:
    code, report = _eval(RELU_CANDIDATE, build_cache)
    assert code == EXIT_PASSED and report["sanitized"] is True, report.get("sanitizer")
    assert report["sanitizer"]["status"] == "clean"
    code, report = _eval(OVERRUN, build_cache)
    assert code == EXIT_REJECTED and (report["reason"], report["sanitized"]) == ("out_of_bounds", False), report


def _run(candidate: Path, runs: Path, run_id: str):
    rules = [ReplayRule("```python\n" + candidate.read_text() + "```", repeat=True)]
    with ReplayServer(rules) as server:
        return optimize(PROBLEM, runs_dir=runs, run_id=run_id, offline=False, plugins=(),
                        settings=RunSettings(generations=1, candidates_per_generation=1, screen=False, critic=False,
                                             profile=False, repair_rounds=0),
                        model=ModelSettings(model="replay", base_url=server.base_url, max_retries=0))


def test_a_runs_winner_is_sanitized_clean_and_an_overrunning_winner_is_rejected(tmp_path: Path) -> None:
    honest = _run(RELU_CANDIDATE, tmp_path, "honest")
    assert honest.best is not None and honest.sanitized, honest.sanitizer
    info = json.loads((tmp_path / "honest" / "run.json").read_text())
    assert info["best"]["sanitized"] is True and info["best"]["sanitizer_status"] == "clean"
    overrun = _run(OVERRUN, tmp_path, "overrun")
    (record,) = overrun.state["candidates"].values()
    assert overrun.best is None and (record["status"], record["reason"]) == ("rejected", "out_of_bounds"), record
