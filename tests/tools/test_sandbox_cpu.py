"""Sandbox workers on a machine without a GPU: loading, crash and hang containment, secrets.

These run the real worker processes; only the GPU phases are out of reach here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.tools.errors import ReferenceFailure
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.sandbox.pool import SandboxWorker, WorkerOptions
from support.paths import FIXTURES as FIX
from support.paths import RELU_CANDIDATE

PROBLEM = FIX / "problems" / "relu_affine.py"
QUICK = EvalSettings(load_timeout_s=20.0, call_timeout_s=10.0)


@pytest.fixture()
def options(build_cache: Path) -> WorkerOptions:
    return WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a",
                              "CUDA_VISIBLE_DEVICES": ""})


def test_get_inputs_raising_is_a_problem_failure_naming_the_line(options: WorkerOptions) -> None:
    with Evaluator(FIX / "broken" / "get_inputs_raises.py", QUICK, options) as ev:
        with pytest.raises(ReferenceFailure) as info:
            ev.evaluate(RELU_CANDIDATE)
    assert "get_inputs()" in str(info.value) and "get_inputs_raises.py:11" in str(info.value)


def test_wrong_arity_is_a_problem_failure(options: WorkerOptions) -> None:
    with Evaluator(FIX / "broken" / "wrong_arity.py", QUICK, options) as ev:
        with pytest.raises(ReferenceFailure, match="takes 2 inputs but get_inputs\\(\\) returns 1"):
            ev.evaluate(RELU_CANDIDATE)


def test_candidate_with_wrong_arity_is_rejected(options: WorkerOptions, tmp_path: Path) -> None:
    bad = tmp_path / "two_inputs.py"
    bad.write_text("import torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x, y):\n        return x\n")
    with Evaluator(PROBLEM, QUICK, options) as ev:
        report = ev.evaluate(bad)
    assert report.status == "rejected" and "ModelNew.forward takes 2 inputs" in report.message


@pytest.mark.timeout(120)
def test_hang_is_killed_by_the_watchdog_and_the_next_candidate_runs(options: WorkerOptions) -> None:
    with Evaluator(PROBLEM, QUICK, options) as ev:
        hung = ev.evaluate(FIX / "broken" / "candidate_hangs_on_import.py")
        assert hung.status == "rejected" and hung.reason == "timeout"
        assert "killed" in hung.message
        after = ev.evaluate(RELU_CANDIDATE)
    assert after.status == "needs_gpu", after.message


def test_segfault_is_contained_as_a_crash(options: WorkerOptions) -> None:
    with Evaluator(PROBLEM, QUICK, options) as ev:
        crashed = ev.evaluate(FIX / "broken" / "candidate_segfaults_on_import.py")
        assert crashed.status == "rejected" and crashed.reason == "crash"
        assert "SIGSEGV" in crashed.message
        after = ev.evaluate(RELU_CANDIDATE)
    assert after.status == "needs_gpu"


def test_workers_get_no_secrets(options: WorkerOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-should-not-leak")
    monkeypatch.setenv("HF_TOKEN", "hf-should-not-leak")
    with Evaluator(PROBLEM, QUICK, options) as ev:
        report = ev.evaluate(FIX / "broken" / "candidate_reads_secrets.py")
    assert report.reason == "load_error"
    assert "visible secrets: []" in report.message


@pytest.mark.nvcc
def test_compile_error_comes_back_with_diagnostics(options: WorkerOptions) -> None:
    with Evaluator(PROBLEM, QUICK, options) as ev:
        report = ev.evaluate(FIX / "broken" / "candidate_compile_error.py")
    assert report.status == "rejected" and report.reason == "compile_error"
    diags = report.error["diagnostics"]
    assert any(d["severity"] == "error" and "undefined_symbol" in d["message"] and d["line"] == 4 for d in diags)


@pytest.mark.nvcc
def test_without_gpu_a_candidate_compiles_then_needs_gpu(options: WorkerOptions) -> None:
    with Evaluator(PROBLEM, QUICK, options) as ev:
        report = ev.evaluate(RELU_CANDIDATE)
    assert report.status == "needs_gpu" and report.reason == "no_gpu"
    assert report.candidate_libs and report.candidate_libs[0].endswith(".so")
    assert "need a CUDA GPU" in report.message


def test_worker_start_and_clean_shutdown(options: WorkerOptions) -> None:
    worker = SandboxWorker("candidate", options)
    info = worker.start()
    assert info["ok"] and info["cuda"] is False and worker.alive
    worker.close()
    assert not worker.alive


def test_a_kernelwright_folder_in_the_working_directory_does_not_shadow_the_package(
        options: WorkerOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source checkout's front-door folder `kernelwright/` (no tools/ inside) must not be what workers import."""
    (tmp_path / "kernelwright" / "tools").mkdir(parents=True)
    (tmp_path / "kernelwright" / "__init__.py").write_text("")
    (tmp_path / "kernelwright" / "tools" / "__init__.py").write_text("raise ImportError('the shadow package was imported')")
    monkeypatch.chdir(tmp_path)
    worker = SandboxWorker("candidate", options)
    try:
        assert worker.start()["ok"]
    finally:
        worker.close()
