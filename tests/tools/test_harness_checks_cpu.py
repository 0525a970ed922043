"""The harness's checks end to end in its CPU self-test mode (workers on the CPU, outputs passed as bytes):
every new check rejects its cheating fixture for its reason, the honest fixture passes. The same checks
run on the GPU with CUDA fixtures in test_gpu_harness.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator, ReferenceData, reason_for_error
from kernelwright.tools.harness.precompile import build_candidates
from kernelwright.tools.harness.verdicts import timing_gap_message
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.problem.inputs import InputSpec
from kernelwright.tools.sandbox.pool import WorkerOptions
from kernelwright.tools.verify.floors import WriteBandwidth, output_bytes
from support.paths import FIXTURES

CPU_CHEATS = sorted((FIXTURES / "cpu_cheats").glob("*.py"))
FAST = EvalSettings(compile_baseline=False, keep_standby=False, code_check=True,
                    bench=BenchSettings(rep_ms=20.0, min_trials=10))


def _expect(path: Path) -> tuple[str, str]:
    text = path.read_text()
    problem = re.search(r"^# problem: (\S+)", text, re.M)
    expect = re.search(r"^# expect: (\S+)", text, re.M)
    assert problem and expect, path
    return problem.group(1), expect.group(1)


@pytest.fixture(scope="module")
def evaluator():
    settings = EvalSettings(**{**FAST.__dict__, "host_memory_limit_gb": 2.5})
    with Evaluator(FIXTURES / "problems" / "relu_affine_batched.py", settings, WorkerOptions(device="cpu")) as ev:
        yield ev


@pytest.mark.parametrize("fixture", CPU_CHEATS, ids=[p.stem for p in CPU_CHEATS])
def test_each_check_rejects_its_fixture_and_the_honest_one_passes(fixture: Path, evaluator: Evaluator) -> None:
    _, expected = _expect(fixture)
    report = evaluator.evaluate(fixture)
    if expected == "passed":
        assert report.status == "passed", (report.reason, report.message)
        phases = {t["phase"] for t in report.trials}
        assert {"trial", "unseen_size", "timed_call", "refilled_inputs", "first_call"} <= phases, phases
        assert report.precision == "strict" and "eager_strict" in report.timing
    else:
        assert report.status == "rejected", report.to_dict()
        assert report.reason in expected.split("|"), (report.reason, report.message)
        assert report.speedup_vs_eager is None


def _forbidden_candidate(tmp_path: Path) -> tuple[Path, Path]:
    """A candidate that, once imported, leaves a marker file and fails with a message of its own."""
    marker = tmp_path / "imported.marker"
    candidate = tmp_path / "shells_out.py"
    candidate.write_text(f"""import torch
import torch.nn as nn

open({str(marker)!r}, "w").write("imported")
raise RuntimeError("the candidate was imported")
import subprocess


class ModelNew(nn.Module):
    def forward(self, x):
        subprocess.run(["true"])
        return torch.clamp_min(x, 0) * 2.0 + 1.0
""")
    return candidate, marker


def test_forbidden_code_is_rejected_before_any_worker_imports_it(evaluator: Evaluator, tmp_path: Path) -> None:
    candidate, marker = _forbidden_candidate(tmp_path)
    report = evaluator.evaluate(candidate)
    assert (report.status, report.reason, report.stage) == ("rejected", "forbidden_code", "load"), report.to_dict()
    assert report.message.startswith("line 4: open() for writing (mode 'w') is not allowed in a candidate")
    assert report.message.endswith("; and 1 more (line 6)"), report.message
    assert report.error and report.error["where"] == f"{candidate}:4"
    assert [f["line"] for f in report.error["details"]["findings"]] == [4, 6]
    assert not marker.exists()  # its module-level code never ran
    outcome, = build_candidates(FIXTURES / "problems" / "relu_affine_batched.py", [candidate], timeout_s=30,
                                code_check=True)
    assert not outcome.ok and outcome.error and reason_for_error(outcome.error) == "forbidden_code"
    assert outcome.seconds < 5 and not marker.exists()  # refused before a build worker started
    assert evaluator.evaluate(FIXTURES / "cpu_cheats" / "honest.py").status == "passed"  # the evaluator goes on


def test_with_the_pre_check_off_the_same_file_is_imported(tmp_path: Path) -> None:
    """The rejection above is the pre-check's doing: without it the worker imports the file (the sandbox, not
    this check, then decides what its code may do)."""
    candidate, _ = _forbidden_candidate(tmp_path)
    settings = EvalSettings(**{**FAST.__dict__, "code_check": False})
    with Evaluator(FIXTURES / "problems" / "relu_affine_batched.py", settings, WorkerOptions(device="cpu")) as ev:
        report = ev.evaluate(candidate)
    assert report.reason == "load_error", report.to_dict()
    assert "imported" in report.message or "open" in report.message, report.message


def test_the_reference_knows_its_unseen_size_and_keeps_no_tensor_in_the_harness(evaluator: Evaluator) -> None:
    ref = evaluator.reference()
    assert ref.scaled is not None and ref.scaled.overrides == (("batch_size", 32),)
    entry = ref.entries[ref.scaled]
    assert entry["outputs"][0]["shape"] == [32, 1024]
    assert all(isinstance(e["fingerprints"][0], str) for e in ref.entries.values())


def test_watchdog_scales_with_the_reference_call() -> None:
    ev = Evaluator.__new__(Evaluator)
    ev.settings = EvalSettings(call_timeout_s=600.0)
    ref = ReferenceData([InputSpec(1)], {InputSpec(1): {"call_s": 0.002, "inputs_s": 0.001}}, [])
    assert ev._call_timeout(ref) == 10.0  # max(10 s, 100x a 2 ms call)
    slow = ReferenceData([InputSpec(1)], {InputSpec(1): {"call_s": 0.5, "inputs_s": 0.1}}, [])
    assert ev._call_timeout(slow) == pytest.approx(50.4)
    huge = ReferenceData([InputSpec(1)], {InputSpec(1): {"call_s": 20.0, "inputs_s": 0.1}}, [])
    assert ev._call_timeout(huge) == 600.0
    assert ev._call_timeout(None) == 600.0


def test_timing_gap_flags_cached_timed_calls_only() -> None:
    assert timing_gap_message([1.0, 1.1, 0.9], 0.01) is not None  # 1 ms first calls vs 10 us timed
    assert timing_gap_message([0.012, 0.011, 0.013], 0.010) is None  # launch jitter, not a cache
    assert timing_gap_message([], 0.01) is None


def test_physical_floor_counts_only_what_must_reach_memory() -> None:
    bw = WriteBandwidth(gbps=3000.0, l2_bytes=50 << 20, probe_bytes=1 << 30)
    assert bw.floor_ms(40 << 20) == 0.0  # fits the L2: no floor
    floor = bw.floor_ms(256 << 20)
    assert floor == pytest.approx((206 << 20) / (3000e9 * 1.5) * 1e3)
    x = torch.randn(4, 8)
    expanded = torch.randn(1, 8).expand(4, 8)
    assert output_bytes([x * 2, expanded], [x]) == 4 * 8 * 4 + 8 * 4
    assert output_bytes([x], [x]) == 0  # an input returned as it is wrote nothing
