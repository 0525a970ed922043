"""On a GPU: `kernelwright bench` end to end on two tiny problems: each verified by the harness against eager and
torch.compile timed in its own run, one row each, the table, the page with a distribution plot per level; then a
`--resume` that redoes nothing, and `--summary` that rebuilds the same table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.cli_errors import EXIT_PASSED
from kernelwright.eval.kernelbench.rows import ResultStore
from support.paths import PROBLEMS, ROOT

pytestmark = pytest.mark.gpu
runner = CliRunner()
NO_LLM = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "KERNELWRIGHT_MODEL": ""}


def test_bench_verifies_two_tiny_problems_and_writes_the_table(tmp_path: Path) -> None:
    level = tmp_path / "kb" / "level1"
    level.mkdir(parents=True)
    shutil.copy(ROOT / "eval" / "problems" / "tiny_relu.py", level / "1_tiny_relu.py")
    shutil.copy(PROBLEMS / "small_relu_affine.py", level / "2_small_relu_affine.py")
    out = tmp_path / "bench"
    args = ["bench", str(level), "--out", str(out), "--generations", "1", "--candidates", "2", "--max-minutes", "10"]
    result = runner.invoke(app, args, env=NO_LLM)
    print(result.output)
    assert result.exit_code == EXIT_PASSED, result.output
    rows = sorted(ResultStore(out).rows(), key=lambda r: r.key)
    assert [r.key for r in rows] == ["level1/1_tiny_relu", "level1/2_small_relu_affine"]
    for row in rows:
        assert row.status == "verified" and row.verified and row.sanitized is not None, row
        assert row.speedup_vs_eager and row.speedup_vs_compile and row.gpu_name, row  # both baselines, same card
        assert row.gpu_s > 0 and row.evaluations >= 1 and Path(str(row.kernel)).is_file()
        assert (Path(str(row.run_dir)) / "report.html").is_file()
    md = (out / "summary.md").read_text()
    assert "| level1 | 2 | 2 (100%) | 2 (100%) | 2 (100%) | 100.0% |" in md and rows[0].gpu_name in md
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 1 and "1_tiny_relu</a>" in page  # one level's plot; problems link their reports
    again = runner.invoke(app, [*args, "--resume"], env=NO_LLM)
    assert again.exit_code == EXIT_PASSED and "2 problems (2 finished before)" in again.output
    assert sorted(ResultStore(out).rows(), key=lambda r: r.key) == rows  # nothing redone
    before = json.loads((out / "summary.json").read_text())["levels"]
    assert runner.invoke(app, ["bench", "--summary", str(out)]).exit_code == EXIT_PASSED
    assert json.loads((out / "summary.json").read_text())["levels"] == before
