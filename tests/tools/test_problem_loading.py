"""Malformed problem and candidate files give typed errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.tools.errors import ProblemError
from kernelwright.tools.problem.files import check_source
from support.paths import FIXTURES, PROBLEMS

BROKEN = FIXTURES / "broken"


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ProblemError) as info:
        check_source(BROKEN / "syntax_error.py", "problem")
    assert info.value.where.endswith("syntax_error.py:5:22") or ":5" in info.value.where
    assert "syntax error" in info.value.message


def test_missing_model_class_is_named() -> None:
    with pytest.raises(ProblemError, match="`Model`") as info:
        check_source(BROKEN / "no_model.py", "problem")
    assert info.value.details["missing"] == "Model"


def test_candidate_without_modelnew_is_named() -> None:
    with pytest.raises(ProblemError, match="ModelNew"):
        check_source(BROKEN / "candidate_no_modelnew.py", "candidate")


def test_missing_file_is_a_problem_error(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="cannot read"):
        check_source(tmp_path / "nope.py", "problem")


def test_valid_problem_records_forward_params() -> None:
    src = check_source(PROBLEMS / "relu_affine.py", "problem")
    assert src.forward_params == ("x",) and len(src.sha256) == 64
