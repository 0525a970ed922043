"""The float64 arbiter (tools.verify.arbiter, EvalSettings.float64_arbiter): an honest kernel whose outputs cancel
fails the fp32 reference and passes against float64; a wrong one fails both ways; an accurate reference widens
nothing. Unit rules on CPU tensors, then the harness end to end in its CPU self-test mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.judge import Float64Outputs, judge_outputs
from kernelwright.tools.sandbox.pool import WorkerOptions
from kernelwright.tools.verify.arbiter import SIGMA_SLACK, arbitrate
from kernelwright.tools.verify.compare import Tolerance, compare_output
from support.paths import FIXTURES

TOL = Tolerance(1e-4, 1e-4, 1e-3)


def _cancelling(batch: int = 128, k: int = 4096) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(reference in fp32, the same sum in another order, float64): level2/14's pattern."""
    torch.manual_seed(0)
    x, w = torch.rand(batch, k), torch.randn(k, k)
    ref = ((x @ w.T) / 2).sum(1, keepdim=True) * 1.5
    reordered = (x @ w.sum(0)).unsqueeze(1) * 0.75
    ref64 = ((x.double() @ w.double().T) / 2).sum(1, keepdim=True) * 1.5
    return ref, reordered, ref64


def test_a_reordered_sum_fails_the_fp32_reference_and_passes_against_float64() -> None:
    ref, reordered, ref64 = _cancelling()
    plain = compare_output(0, reordered, ref, TOL)
    assert plain.failure == "wrong_output"  # the premise: the fp32 reference's own rounding reaches 1e-4
    judged = arbitrate(0, reordered, ref, ref64, TOL)
    assert judged is not None and judged.passed and judged.float64_arbiter is not None
    sigma = judged.float64_arbiter["reference_rms_error"]
    assert judged.float64_arbiter["atol"] == pytest.approx(TOL.atol + SIGMA_SLACK * sigma)
    assert "float64 arbiter" in judged.message


@pytest.mark.parametrize("error", [1e-3, 3e-4])  # 3e-4: three times the rtol
def test_a_wrong_result_still_fails_against_float64(error: float) -> None:
    ref, reordered, ref64 = _cancelling()
    judged = arbitrate(0, reordered * (1 + error), ref, ref64, TOL)
    assert judged is not None and judged.failure == "wrong_output"


def test_an_accurate_reference_widens_the_tolerance_by_nothing_that_matters() -> None:
    torch.manual_seed(1)
    x = torch.randn(4096)
    ref, ref64 = torch.relu(x) * 2.0 + 1.0, torch.relu(x.double()) * 2.0 + 1.0
    judged = arbitrate(0, ref * (1 + 3e-4), ref, ref64, TOL)  # off by 3x the rtol: wrong with or without the arbiter
    assert judged is not None and judged.failure == "wrong_output"
    assert judged.float64_arbiter is not None and judged.float64_arbiter["atol"] < 1.1 * TOL.atol


def test_the_arbiter_has_no_verdict_on_infinities_and_says_so_when_there_is_no_float64_output() -> None:
    ref = torch.tensor([1.0, float("inf")])
    assert arbitrate(0, torch.tensor([1.5, float("inf")]), ref, ref.double(), TOL) is None
    out, reference = [torch.tensor([2.0, 3.0])], [torch.tensor([1.0, 3.0])]
    calls: list[int] = []

    def unavailable() -> Float64Outputs:
        calls.append(1)
        return Float64Outputs(None, "the Model does not run in float64: RuntimeError")

    (verdict,) = judge_outputs(out, reference, {}, None, unavailable)
    assert verdict["failure"] == "wrong_output" and "does not run in float64" in verdict["message"] and calls == [1]
    (passing,) = judge_outputs(reference, reference, {}, None, unavailable)
    assert passing["passed"] and calls == [1]  # asked for only when an output fails


SETTINGS = EvalSettings(compile_baseline=False, keep_standby=False, bench=BenchSettings(rep_ms=20.0, min_trials=10))


@pytest.mark.parametrize("arbiter", [False, True])
def test_the_harness_verifies_the_reordered_sum_only_with_the_arbiter_and_never_the_wrong_one(arbiter: bool) -> None:
    settings = EvalSettings(**{**SETTINGS.__dict__, "float64_arbiter": arbiter})
    with Evaluator(FIXTURES / "problems" / "cancelling_sum.py", settings, WorkerOptions(device="cpu")) as ev:
        reordered = ev.evaluate(FIXTURES / "arbiter" / "reordered.py")
        wrong = ev.evaluate(FIXTURES / "arbiter" / "off_by_1e3.py")
    assert (wrong.status, wrong.reason) == ("rejected", "wrong_output")
    if arbiter:
        assert reordered.status == "passed", (reordered.reason, reordered.message)
        judged = [o for t in reordered.trials for o in t.get("outputs", []) if o.get("float64_arbiter")]
        assert judged, "no trial was settled by the arbiter: the fixture no longer cancels enough"
        assert "float64 arbiter" in wrong.message
    else:
        assert (reordered.status, reordered.reason) == ("rejected", "wrong_output")


def test_the_setting_is_on_by_default_and_reaches_the_harness_from_the_config(tmp_path: Path) -> None:
    from kernelwright.config import load_config

    assert EvalSettings().float64_arbiter is True
    assert load_config(env={}).eval_settings().float64_arbiter is True
    assert load_config(env={"KERNELWRIGHT_HARNESS__FLOAT64_ARBITER": "0"}).eval_settings().float64_arbiter is False
