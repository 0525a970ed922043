"""Paths that are no Python source (binary, not UTF-8, a directory, empty, missing) and GPU architectures nvcc
cannot build for are bad input: a typed error naming the file (and line) or the value, exit 2, no traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import EXIT_BAD_INPUT, app
from kernelwright.cli_errors import ERROR_PREFIX
from kernelwright.config import ConfigError, load_config
from kernelwright.tools.compile.diagnostics import Diagnostic
from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions, unsupported_arch
from kernelwright.tools.errors import CompileError, InputFileError, ProblemError, location
from kernelwright.tools.problem.files import check_source, read_source
from support.paths import PROBLEMS, RELU_CANDIDATE

PROBLEM = PROBLEMS / "relu_affine.py"
runner = CliRunner()


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)  # NUL and every other byte
    return path


def _nul_in_text(path: Path) -> Path:
    path.write_bytes(b"import torch\nx = 1\x00\n")
    return path


def _latin1(path: Path) -> Path:
    path.write_bytes(PROBLEM.read_bytes() + b"# caf\xe9 au lait\n")  # valid Python, but not UTF-8
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _empty(path: Path) -> Path:
    path.write_text("  \n\n")
    return path


def _missing(path: Path) -> Path:
    return path


# each kind of bad file, and what the message must say (with the line, where there is one)
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "binary": (_binary, "file is not Python source text: it contains a NUL byte", ":1:"),
    "nul_in_text": (_nul_in_text, "file is not Python source text: it contains a NUL byte", ":2:"),
    "latin1": (_latin1, "file is not UTF-8 text: byte 0xe9 cannot be decoded", f":{len(PROBLEM.read_text().splitlines()) + 1}:"),
    "directory": (_directory, "path is a directory, not a Python file", ": "),
    "empty": (_empty, "file is empty", ": "),
    "missing": (_missing, "file: No such file or directory", ": "),
}


def _flat(text: str) -> str:
    return " ".join(text.split())  # one line, whatever the terminal's width (typer's error box wraps)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"COLUMNS": "400", "CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_CACHE_DIR": str(tmp_path / "build"),
            "KERNELWRIGHT_ARCHIVE": str(tmp_path / "archive")}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("role", ["problem", "candidate"])
def test_eval_with_a_file_that_is_no_python_source_is_bad_input(tmp_path: Path, kind: str, role: str) -> None:
    make, says, line = BAD_FILES[kind]
    bad = make(tmp_path / f"bad_{kind}.py")
    args = [str(bad), str(RELU_CANDIDATE)] if role == "problem" else [str(PROBLEM), str(bad)]
    result = runner.invoke(app, ["eval", *args], env=_env(tmp_path))
    out = _flat(result.output)
    assert result.exit_code == EXIT_BAD_INPUT, out
    assert f"{ERROR_PREFIX} {bad}{line}" in out and f"{role} {says}" in out, out
    assert "Traceback" not in out and "None" not in out and "REJECTED" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("kind", BAD_FILES)
def test_run_with_a_problem_that_is_no_python_source_is_bad_input(tmp_path: Path, kind: str) -> None:
    make, says, line = BAD_FILES[kind]
    bad = make(tmp_path / f"bad_{kind}.py")
    result = runner.invoke(app, ["run", str(bad), "--runs-dir", str(tmp_path / "runs"), "--no-archive"],
                           env=_env(tmp_path))
    out = _flat(result.output)
    assert result.exit_code == EXIT_BAD_INPUT, out
    assert f"{ERROR_PREFIX} {bad}{line}" in out and f"problem {says}" in out, out
    assert "Traceback" not in out and "None" not in out
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing half-started


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="the problem path is not a regular file"):
        read_source(fifo, "problem")


def test_source_is_decoded_as_python_decodes_it(tmp_path: Path) -> None:
    declared = tmp_path / "declared.py"
    declared.write_bytes(b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\n")
    assert "café" in read_source(declared, "problem")  # a coding line is honoured, as by import
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbfx = 1\r\ny = 2\r\n")
    assert read_source(bom, "problem") == "x = 1\ny = 2\n"
    unknown = tmp_path / "klingon.py"
    unknown.write_bytes(b"# -*- coding: klingon -*-\nx = 1\n")
    with pytest.raises(InputFileError, match="unusable coding line: unknown encoding: klingon") as info:
        read_source(unknown, "candidate")
    assert "None" not in str(info.value)


def test_malformed_content_stays_a_problem_error_not_an_input_file_error(tmp_path: Path) -> None:
    comments = tmp_path / "only_comments.py"
    comments.write_text("# nothing here\n")
    with pytest.raises(ProblemError, match="defines no top-level class `Model`") as info:
        check_source(comments, "problem")
    assert not isinstance(info.value, InputFileError)


def test_a_missing_part_of_a_location_is_left_out_never_printed_as_none() -> None:
    assert location("f.py") == "f.py" and location("f.py", None, 3) == "f.py"
    assert location("f.py", 4) == "f.py:4" and location("f.py", 4, 2) == "f.py:4:2"
    diag = Diagnostic.from_dict({"severity": "error", "message": "Unsupported gpu architecture 'compute_999'",
                                 "file": None, "line": None, "source": "nvcc"})
    assert diag.headline() == "nvcc: error: Unsupported gpu architecture 'compute_999'"


def test_a_report_diagnostic_without_file_or_line_prints_without_none() -> None:
    from rich.console import Console

    from kernelwright.agents.mutator import diagnostics_text
    from kernelwright.cli import _print_report

    diag = {"severity": "error", "message": "Unsupported gpu architecture 'compute_999'", "file": None, "line": None,
            "column": None, "code": None, "source": "nvcc", "context": ""}
    report = {"status": "rejected", "candidate": "c.py", "problem": "p.py", "reason": "compile_error",
              "message": "compilation failed", "error": {"diagnostics": [diag]}, "trials": []}
    console = Console(record=True, width=200)
    _print_report(console, report)
    printed = console.export_text()
    assert "nvcc: error: Unsupported gpu architecture 'compute_999'" in printed and "None" not in printed
    assert diagnostics_text(report) == "nvcc: error: Unsupported gpu architecture 'compute_999'"  # what the LLM reads


@pytest.fixture
def fake_nvcc(tmp_path: Path) -> Path:
    """An nvcc that lists two targets (so the check does not depend on the installed toolkit)."""
    folder = tmp_path / "fake-cuda-bin"
    folder.mkdir()
    exe = folder / "nvcc"
    exe.write_text('#!/bin/sh\ncase "$1" in\n  --list-gpu-code) printf "sm_80\\nsm_90\\n" ;;\n'
                   '  --version) echo "Cuda compilation tools, release 0.0, V0.0.fake" ;;\n'
                   '  *) echo "nvcc fatal   : should not build" ; exit 1 ;;\nesac\n')
    exe.chmod(0o755)
    return exe


def test_unsupported_arch_asks_nvcc_for_its_targets(fake_nvcc: Path) -> None:
    assert unsupported_arch("sm_90a", str(fake_nvcc)) is None and unsupported_arch("sm_80", str(fake_nvcc)) is None
    assert unsupported_arch("sm_999", str(fake_nvcc)) == (
        "'sm_999' is not a GPU architecture this nvcc can build for (it builds for sm_80, sm_90)")
    assert "expected e.g. sm_90a" in (unsupported_arch("compute_90", str(fake_nvcc)) or "")
    assert "expected e.g. sm_90a" in (unsupported_arch("90", None) or "")  # the form is checked without any nvcc


def test_eval_with_an_arch_nvcc_cannot_build_for_is_bad_input(tmp_path: Path, fake_nvcc: Path) -> None:
    env = {**_env(tmp_path), "PATH": f"{fake_nvcc.parent}{os.pathsep}{os.environ['PATH']}"}
    result = runner.invoke(app, ["eval", str(PROBLEM), str(RELU_CANDIDATE), "--arch", "sm_999"], env=env)
    out = _flat(result.output)
    assert result.exit_code == EXIT_BAD_INPUT, out
    assert "Invalid value for '--arch': 'sm_999' is not a GPU architecture this nvcc can build for" in out, out
    assert "sm_80, sm_90" in out and "None" not in out and "REJECTED" not in out
    result = runner.invoke(app, ["eval", str(PROBLEM), str(RELU_CANDIDATE), "--arch", "hopper"], env=env)
    assert result.exit_code == EXIT_BAD_INPUT and "'hopper' is not a GPU architecture" in _flat(result.output)


def test_an_arch_from_the_config_or_environment_is_checked_too(fake_nvcc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{fake_nvcc.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ConfigError, match=r"compile.arch: 'sm_999' is not a GPU architecture this nvcc can build for"):
        load_config(env={"KERNELWRIGHT_COMPILE__ARCH": "sm_999"})
    assert load_config(env={"KERNELWRIGHT_COMPILE__ARCH": "sm_90a"}).compile.arch == "sm_90a"


def test_a_build_for_an_arch_nvcc_lacks_fails_naming_the_arch(tmp_path: Path, fake_nvcc: Path) -> None:
    compiler = NvccCompiler(cache_dir=tmp_path / "build", nvcc=str(fake_nvcc))
    with pytest.raises(CompileError) as info:  # e.g. KERNELWRIGHT_ARCH in a worker, which no config checks
        compiler.compile("__global__ void k() {}", NvccOptions(arch="sm_999"))
    assert "'sm_999' is not a GPU architecture this nvcc can build for" in str(info.value)
    assert "None" not in str(info.value)


def test_python_api_raises_the_typed_error(tmp_path: Path) -> None:
    from kernelwright.api import evaluate, optimize

    binary = _binary(tmp_path / "binary.py")
    with pytest.raises(InputFileError, match="candidate file is not Python source text") as info:
        evaluate(PROBLEM, binary)
    assert info.value.where == f"{binary}:1"
    with pytest.raises(InputFileError, match="cannot read candidate file: No such file or directory"):
        evaluate(PROBLEM, tmp_path / "missing.py")
    with pytest.raises(InputFileError, match="the problem path is a directory"):
        optimize(tmp_path, runs_dir=tmp_path / "runs", archive=None)
