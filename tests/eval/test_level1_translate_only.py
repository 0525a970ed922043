"""Issue 19's CPU bar: `kernelwright bench <level1> --translate-only` with the preview kernel families on gives a
candidate for at least 76 of the 80 level-1 dev problems, and every candidate compiles with nvcc. Off, the
preview families add nothing (the same run without the setting has fewer candidates, none of them a conv of its
own). ~10 min on two cores."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.cli_errors import EXIT_PASSED
from kernelwright.eval.kernelbench.rows import ResultStore
from support.paths import KERNELBENCH

pytestmark = [pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(3600),
              pytest.mark.skipif(not (KERNELBENCH / "level1").is_dir(),
                                 reason="the KernelBench dev split is not beside this checkout")]
NO_LLM = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "KERNELWRIGHT_MODEL": ""}


def test_level1_gets_a_compiled_candidate_for_at_least_76_of_80_problems(tmp_path: Path) -> None:
    config = tmp_path / "preview.toml"
    config.write_text("[agents]\noffline_preview = true\n")
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", str(KERNELBENCH / "level1"), "--translate-only", "--jobs", "2",
                                      "--out", str(out), "--config", str(config)], env=NO_LLM)
    assert result.exit_code == EXIT_PASSED, result.output
    rows = ResultStore(out).rows()
    assert len(rows) == len(list((KERNELBENCH / "level1").glob("*.py")))
    with_candidate = [r for r in rows if r.candidate]
    assert len(with_candidate) >= 76, sorted(r.key for r in rows if not r.candidate)
    assert all(r.compiled for r in with_candidate), [(r.key, r.reason) for r in with_candidate if not r.compiled]
    implicit_gemm = [r for r in with_candidate if "conv" in r.key and not ("depthwise" in r.key or "pointwise" in r.key)]
    assert len(implicit_gemm) >= 20 and all("kw_conv" in Path(str(r.kernel)).read_text() for r in implicit_gemm)
    pointwise = [r for r in with_candidate if "pointwise" in r.key]  # a GEMM over NCHW (conv_plan.pointwise_as_matmul)
    assert pointwise and all("kw_gemm" in Path(str(r.kernel)).read_text() for r in pointwise)
