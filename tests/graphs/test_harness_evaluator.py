"""The graph's real evaluator without a GPU: parallel CPU builds report compile errors; good builds go on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.config import load_config
from kernelwright.graphs.harness_evaluator import HarnessEvaluator, visible_gpus
from support.paths import FIXTURES as FIX


@pytest.mark.nvcc
def test_prepare_reports_compile_errors_and_passes_good_builds(build_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.paths import RELU_CANDIDATE

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    config = load_config(overrides={"compile.cache_dir": str(build_cache), "compile.arch": "sm_90a"})
    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", config.eval_settings())
    try:
        assert evaluator.gpus == []
        broken = evaluator.prepare(FIX / "broken" / "candidate_compile_error.py")
        assert broken is not None and (broken.status, broken.stage, broken.reason) == ("rejected", "build",
                                                                                       "compile_error")
        assert "undefined_symbol" in str(broken.error)
        assert evaluator.prepare(RELU_CANDIDATE) is None
        report = evaluator.evaluate(RELU_CANDIDATE)  # builds are cached: this only loads, then says needs_gpu
        assert report.status == "needs_gpu"
        profile = evaluator.profile(RELU_CANDIDATE)
        assert profile.summary.startswith("profiler unavailable") and not profile.available
    finally:
        evaluator.close()


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


def test_one_rejection_reason_mapping_for_errors_and_their_dicts() -> None:
    from kernelwright.tools.errors import CompileError, IntegrityError, ToolTimeout, WorkerCrash
    from kernelwright.tools.harness.evaluate import _reason_for, reason_for_error

    cases = [(IntegrityError("reference_op_called", "calls torch.softmax"), "reference_op_called"),
             (CompileError("nvcc failed", returncode=1, stderr="error"), "compile_error"),
             (ToolTimeout("no reply", timeout_s=30.0), "timeout"),
             (WorkerCrash("segfault", exitcode=-11), "crash")]
    for exc, reason in cases:
        assert _reason_for(exc) == reason == reason_for_error(exc.to_dict())
    assert reason_for_error({"kind": "load", "message": "no ModelNew"}) == "load_error"
    assert reason_for_error({}) == "load_error"


def test_sanitize_without_a_gpu_is_unavailable_not_an_error() -> None:
    from support.paths import RELU_CANDIDATE

    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(), gpus=[])
    try:
        assert isinstance(evaluator, CandidateEvaluator) and not evaluator.gpus and evaluator.traces_out_of_process
        verdict = evaluator.sanitize(RELU_CANDIDATE)
    finally:
        evaluator.close()
    assert (verdict.status, verdict.sanitized) == ("unavailable", False) and "GPU" in verdict.message


def test_builds_run_inside_the_runs_quiet_building_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() builds under QuietTiming.building, so the run's timed phases (the evaluators' quiet) never
    share the host with a build."""
    import kernelwright.tools.harness.precompile as precompile
    from support.paths import RELU_CANDIDATE

    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(), gpus=[])
    seen: list[int] = []

    class Built:
        ok, error, seconds = True, None, 0.0

    def fake_build(*args: object, **kwargs: object) -> list[Built]:
        seen.append(evaluator.quiet._building)
        return [Built()]

    monkeypatch.setattr(precompile, "build_candidates", fake_build)
    try:
        assert evaluator.prepare(RELU_CANDIDATE) is None
        assert all(ev._quiet == evaluator.quiet.timing for ev in evaluator._all)
    finally:
        evaluator.close()
    assert seen == [1]


def test_the_first_build_warms_each_gpus_reference_side_and_close_lets_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() starts one background warm-up per GPU evaluator (reference data, compiled baselines), under
    QuietTiming.building and holding that evaluator; close() waits for it, and no worker outlives the run."""
    import kernelwright.tools.harness.evaluate as evaluate
    import kernelwright.tools.harness.precompile as precompile
    from support.paths import RELU_CANDIDATE

    class Built:
        ok, error, seconds = True, None, 0.0

    monkeypatch.setattr(precompile, "build_candidates", lambda *a, **k: [Built()])
    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(),
                                 gpus=["0", "1"])
    warmed: list[tuple[int, bool]] = []

    def fake_warm(self: evaluate.Evaluator) -> None:
        warmed.append((id(self), evaluator.quiet._building > 0))

    monkeypatch.setattr(evaluate.Evaluator, "prepare_reference_side", fake_warm)
    try:
        assert evaluator.prepare(RELU_CANDIDATE) is None
        assert evaluator.prepare(RELU_CANDIDATE) is None  # the second build starts no second warm-up
    finally:
        evaluator.close()
    assert all(not t.is_alive() for t in evaluator._warm_threads) and len(evaluator._warm_threads) == 2
    assert sorted(w[0] for w in warmed) == sorted(id(ev) for ev in evaluator._all)  # each evaluator once
    assert all(building for _, building in warmed)
    assert all(not ev.ref_slot.pids() for ev in evaluator._all)


def test_no_gpu_no_warm_up() -> None:
    from support.paths import RELU_CANDIDATE

    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(), gpus=[])
    try:
        evaluator._warm_reference_sides()
    finally:
        evaluator.close()
    assert evaluator._warm_threads == [] and RELU_CANDIDATE.exists()


def test_where_lanes_share_gpus_builds_hold_every_gate_shared_and_profiling_holds_one_exclusive(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a gate directory (a bench's lanes): each GPU's Evaluator gets that GPU's gate; a build and each
    reference warm-up hold every GPU's gate shared (no other lane times meanwhile); ncu's profile, which times
    kernels, holds its GPU's (the first) exclusive."""
    import os

    import kernelwright.graphs.harness_evaluator as harness_evaluator
    import kernelwright.tools.harness.evaluate as evaluate
    import kernelwright.tools.harness.precompile as precompile
    from kernelwright.tools.measure.gpu_gate import GATE_ENV
    from support.gate_children import held_by
    from support.paths import RELU_CANDIDATE

    monkeypatch.setenv(GATE_ENV, str(tmp_path))
    seen: dict[str, dict[str, set[str]]] = {}

    def note(what: str) -> None:
        seen[what] = {g: set(held_by(tmp_path / f"gpu{g}.lock", os.getpid())) for g in ("0", "1")}

    class Built:
        ok, error, seconds = True, None, 0.0

    def fake_build(*args: object, **kwargs: object) -> list[Built]:
        note("build")
        return [Built()]

    def fake_profile(*args: object, **kwargs: object) -> dict[str, str]:
        note("profile")
        return {"summary": "profiled"}

    monkeypatch.setattr(precompile, "build_candidates", fake_build)
    monkeypatch.setattr(evaluate.Evaluator, "prepare_reference_side",
                        lambda self: note("warm" + self.options.env["CUDA_VISIBLE_DEVICES"]))
    monkeypatch.setattr(harness_evaluator, "profile_candidate", fake_profile)
    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(),
                                 gpus=["0", "1"])
    try:
        assert [ev.options.gate for ev in evaluator._all] == [evaluator.gates["0"], evaluator.gates["1"]]
        assert evaluator.gates["0"].path == tmp_path / "gpu0.lock"
        assert evaluator.prepare(RELU_CANDIDATE) is None
        for thread in evaluator._warm_threads:
            thread.join(30)
        assert evaluator.profile(RELU_CANDIDATE).summary == "profiled"
    finally:
        evaluator.close()
    for step in ("build", "warm0", "warm1"):
        assert seen[step] == {"0": {"READ"}, "1": {"READ"}}, step
    assert seen["profile"] == {"0": {"WRITE"}, "1": set()}


def test_without_a_gate_directory_no_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelwright.tools.measure.gpu_gate import GATE_ENV

    monkeypatch.delenv(GATE_ENV, raising=False)
    evaluator = HarnessEvaluator(FIX / "problems" / "relu_affine.py", load_config(env={}).eval_settings(), gpus=["0"])
    try:
        assert evaluator.gates == {} and evaluator._all[0].options.gate is None
    finally:
        evaluator.close()
