"""The fault-injection suite's CPU cases, each on the real code it targets: the fault is contained, the reason
reported is the typed one, and no work is lost. The GPU cases run with `python -m kernelwright.eval.faults` on
the GPU machine (test_faults_gpu below)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernelwright.eval.faults.__main__ import NOT_RUN_NO_GPU, main
from kernelwright.eval.faults.case import FaultCase, FaultOutcome
from kernelwright.eval.faults.harness_cases import processes_running
from kernelwright.eval.faults.registry import all_cases

CASES = {c.name: c for c in all_cases()}
CPU = [c for c in CASES.values() if not c.needs_gpu]
GPU = [c for c in CASES.values() if c.needs_gpu]
# the reason each case must report (a substring of FaultOutcome.reason)
REASONS = {"worker_segfault": "crash", "forward_hang": "timeout", "worker_killed": "crash",
           "host_oom": "host_memory_limit", "disk_full": "error", "compile_hang": "timeout",
           "ncu_crash": "ProfileUnavailable: ncu exited with status -11", "llm_429_500": "retried",
           "llm_timeout": "retried", "llm_garbage": "AnswerError: no_code", "llm_outage": "LLMRunError",
           "llm_chain_outage": "switched first -> second",
           "archive_locked": "archive_store_failed: ArchiveUnavailable", "orchestrator_killed": "SIGKILL, resumed",
           "cuda_illegal_memory": "crash", "kernel_hang": "timeout", "gpu_oom": "does_not_fit"}


def test_every_case_of_the_issue_is_registered_once() -> None:
    assert set(REASONS) == set(CASES) and len(CASES) == len(all_cases())
    assert {c.name for c in GPU} == {"cuda_illegal_memory", "kernel_hang", "gpu_oom"}


# cases that start sandbox workers (a torch import each) take 5-15 s apiece
WORKER_CASES = {"worker_segfault", "forward_hang", "worker_killed", "host_oom", "disk_full", "compile_hang"}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.slow] if c.name in WORKER_CASES else [])
                                  for c in CPU], ids=[c.name for c in CPU])
def test_cpu_fault_is_contained_and_loses_nothing(case: FaultCase, tmp_path: Path) -> None:
    outcome = case.run(tmp_path)
    assert outcome.contained, outcome
    assert REASONS[case.name] in outcome.reason, outcome
    assert outcome.work_lost == 0, outcome


@pytest.mark.gpu
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", GPU, ids=[c.name for c in GPU])
def test_gpu_fault_is_contained_and_loses_nothing(case: FaultCase, tmp_path: Path) -> None:
    outcome = case.run(tmp_path)
    assert outcome.contained and REASONS[case.name] in outcome.reason and outcome.work_lost == 0, outcome


def test_a_hung_tool_left_running_is_found() -> None:
    """What the compile-hang case relies on to say that no nvcc was left behind."""
    marker = "3599.424242427"
    sleeper = subprocess.Popen(["sleep", marker])
    try:
        deadline = time.monotonic() + 10
        while not processes_running(marker) and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has exec'd sleep
        assert processes_running(marker) == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert processes_running(marker) == []


def _case(name: str, contained: bool) -> FaultCase:
    return FaultCase(name, f"fault {name}", "scripted", "scripted", False,
                     lambda scratch: FaultOutcome(contained, "some_reason", 0 if contained else 2, "why"))


def test_json_marks_gpu_cases_not_run_without_a_gpu(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("kernelwright.eval.faults.__main__.gpu_available", lambda: False)
    assert main(["--json", "--only", "ncu_crash", "gpu_oom"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gpu_oom"]["ran"] is False and rows["gpu_oom"]["not_run"] == NOT_RUN_NO_GPU
    assert rows["ncu_crash"]["ran"] and rows["ncu_crash"]["outcome"]["contained"] is True


def test_a_case_not_contained_fails_the_command_and_shows_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], cases=[_case("fine", True), _case("leaky", False)]) == 1
    out = capsys.readouterr().out
    assert "fault leaky" in out and "NO" in out and "fault fine" in out


def test_a_case_that_raises_is_reported_not_contained(capsys: pytest.CaptureFixture[str]) -> None:
    def explode(scratch: Path) -> FaultOutcome:
        raise RuntimeError("the fault escaped")

    assert main(["--json"], cases=[FaultCase("boom", "boom", "x", "x", False, explode)]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["outcome"]["contained"] is False and row["outcome"]["reason"] == "escaped: RuntimeError"


def test_module_entry_lists_the_cases(tmp_path: Path) -> None:
    # run from tmp_path: a source checkout's front-door folder kernelwright/ in the working directory would shadow
    listed = subprocess.run([sys.executable, "-m", "kernelwright.eval.faults", "--list"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in CASES)


def test_an_unknown_case_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--only", "nope"])
    assert info.value.code == 2 and "no fault case nope (see --list)" in capsys.readouterr().err
