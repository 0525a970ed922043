"""Compiling the torch.compile baseline ahead of its timing (Evaluator.prepare_reference_side), in the harness's
CPU self-test mode: the reference data and the compiled function are ready before the first candidate, the timing
then reuses the compiled function, and a baseline that cannot compile is still reported by the timing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.paths import FIXTURES

FAST = EvalSettings(keep_standby=False, strict_baseline=False, bench=BenchSettings(rep_ms=10.0, min_trials=5))


@pytest.mark.timeout(600)
def test_the_compiled_baseline_is_compiled_before_its_timing_and_reused() -> None:
    with Evaluator(FIXTURES / "problems" / "relu_affine.py", FAST, WorkerOptions(device="cpu")) as ev:
        ev.prepare_reference_side()
        assert ev._reference is not None  # the reference data is ready before any candidate
        warm_s = ev.reference_durations_s["compiled_warm"]
        assert warm_s > 0
        baselines = ev.baselines()
        assert "error" not in baselines["compiled"], baselines["compiled"]
        assert baselines["compiled"]["median_ms"] > 0 and baselines["eager"]["median_ms"] > 0
        ref_pid = ev.ref_slot.worker.pid if ev.ref_slot.worker else None
        ev.prepare_reference_side()  # once the baselines exist, nothing is compiled again
        assert ev.ref_slot.worker is not None and ev.ref_slot.worker.pid == ref_pid


def test_a_baseline_that_cannot_compile_is_left_for_the_timing_to_report() -> None:
    settings = replace(FAST, compile_mode="no-such-mode", eager_baseline=False)
    with Evaluator(FIXTURES / "problems" / "relu_affine.py", settings, WorkerOptions(device="cpu")) as ev:
        ev.prepare_reference_side()  # raises nothing: the failure is the timing's to record
        assert "compiled_warm" not in ev.reference_durations_s
        baselines = ev.baselines()
        assert "no-such-mode" in str(baselines["compiled"]["error"])
