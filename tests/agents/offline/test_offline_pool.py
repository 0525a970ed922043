"""Pooling in the offline translator: avg_pool2d / max_pool2d (their 1-D forms, and with RunSettings.offline_preview
their 3-D forms) become pool kernels with the
elementwise chain before them fused in as a prologue and the one after as an epilogue, checked on CPU against the
Model in many window configurations; unsupported pooling stays ATen with a note; the candidates compile with nvcc;
on a GPU, suite problems 20 and 44 pass the real harness without an ATen pool kernel."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.check import check_problem, check_traced
from kernelwright.agents.offline.interp import interpret
from kernelwright.agents.offline.ir import PoolStep, describe
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.propose import plans_for, render, trace_all
from kernelwright.agents.offline.space import plan_space
from kernelwright.agents.offline.trace import trace_problem
from support.offline import FIXTURES, cuda_of, default_and_corner_sources, failed_builds, suite_dir

PROBLEM = '''import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.randn({channels}) * 0.3)
        self.scale = nn.Parameter(torch.rand({channels}) + 0.5)

    def forward(self, x):
        return {expr}


def get_inputs():
    return [torch.randn({shape}, dtype=torch.{dtype})]


def get_init_inputs():
    return []
'''
# name: (forward expression of x, input shape, dtype)
CASES = {
    "avg_2x2": ("F.avg_pool2d(x, 2)", (2, 3, 8, 8), "float32"),
    "avg_pad_count_pad": ("F.avg_pool2d(x, 3, stride=2, padding=1)", (2, 3, 9, 11), "float32"),
    "avg_pad_no_count_pad": ("F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)", (2, 3, 9, 11),
                             "float32"),
    "avg_rect_stride_ne_kernel": ("F.avg_pool2d(x, (3, 2), stride=(1, 3))", (2, 3, 9, 11), "float32"),
    "avg_ceil_no_count_pad": ("F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)",
                              (1, 2, 10, 7), "float32"),
    "avg_ceil_count_pad": ("F.avg_pool2d(x, 2, stride=3, padding=1, ceil_mode=True)", (1, 2, 10, 7), "float32"),
    "avg_divisor_override": ("F.avg_pool2d(x, 3, stride=2, padding=1, divisor_override=4)", (1, 2, 9, 9), "float32"),
    "max_pad": ("F.max_pool2d(x, 3, stride=2, padding=1)", (2, 3, 9, 11), "float32"),
    "max_overlapping": ("F.max_pool2d(x, 3, stride=1)", (1, 4, 7, 5), "float32"),
    "max_dilation_ceil": ("F.max_pool2d(x, (2, 3), stride=2, padding=1, dilation=(2, 1), ceil_mode=True)",
                          (2, 2, 11, 8), "float32"),
    "max_unbatched": ("F.max_pool2d(x, 2)", (3, 7, 9), "float32"),
    "max_large_window": ("F.max_pool2d(x, 9, stride=4, padding=4)", (1, 2, 21, 19), "float32"),
    "prologue_channel_affine": ("F.max_pool2d(torch.relu((x - self.shift.view(1, -1, 1, 1)) * self.scale.view(1, -1, 1, 1)), 2)",
                                (2, 3, 8, 10), "float32"),
    "epilogue": ("torch.tanh(F.avg_pool2d(x.relu(), 2, stride=1)) * 2.0 + self.shift.view(1, -1, 1, 1)", (2, 3, 6, 7),
                 "float32"),
    "transposed_input": ("F.avg_pool2d(x.transpose(2, 3) * 0.5, (2, 3), padding=(1, 0))", (2, 3, 6, 9), "float32"),
    "bf16_prologue_epilogue": ("F.avg_pool2d(torch.relu(x) * 1.5, 3, stride=2, padding=1) + 1.0", (2, 3, 9, 11),
                               "bfloat16"),
    "fp16_max": ("F.max_pool2d(x * 0.7, 2, stride=1, padding=1)", (2, 3, 7, 7), "float16"),
    "fp64_avg": ("F.avg_pool2d(x, 2, count_include_pad=False, padding=1)", (2, 3, 5, 7), "float64"),
    "max_1d": ("F.max_pool1d(x.relu(), 3, stride=2, padding=1)", (2, 4, 17), "float32"),
    "avg_1d": ("F.avg_pool1d(x, 4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)", (2, 4, 17),
               "float32"),
}


def _problem(tmp_path: Path, name: str, expr: str, shape: tuple[int, ...], dtype: str = "float32") -> Path:
    channels = shape[1] if len(shape) > 1 else 1
    path = tmp_path / f"{name}.py"
    path.write_text(PROBLEM.format(expr=expr, shape=shape, dtype=dtype, channels=channels))
    return path


def _pools(plan) -> list[PoolStep]:
    return [s for s in plan.steps if isinstance(s, PoolStep)]


@pytest.mark.parametrize("name", CASES)
def test_pool_plan_matches_model_on_cpu(name: str, tmp_path: Path) -> None:
    expr, shape, dtype = CASES[name]
    path = _problem(tmp_path, name, expr, shape, dtype)
    check = check_problem(path, scale=False)
    assert check.passed, check.failures()
    plan = build_plan(trace_problem(path).program)
    assert not plan.kept_aten_ops and not [s for s in plan.steps if s.kind == "host"], describe(plan)
    # the elementwise chains before and after the pool live inside the pool kernel: one kernel in all
    assert [s.kind for s in plan.steps] == ["pool"], describe(plan)


def test_suite_pools_are_fused_kernels_not_aten() -> None:
    for stem, prologue_ops in (("20_conv2d_relu_avgpool", {"relu", "mul"}), ("44_conv_bn_relu_pool", {"rsqrt", "relu"})):
        check = check_problem(suite_dir() / f"{stem}.py")
        assert check.passed, (stem, check.failures())
        assert check.kept_aten_ops == {"fused": [], "aten_reductions": []}, check.kept_aten_ops
        plan = build_plan(trace_problem(suite_dir() / f"{stem}.py", overrides={"batch": 2, "size": 16}).program)
        assert [s.kind if s.kind != "host" else s.target for s in plan.steps] == ["aten.conv2d.default", "pool"], \
            describe(plan)
        (pool,) = _pools(plan)
        assert prologue_ops <= {getattr(e, "op", None) for e in pool.prologue.nodes}, describe(plan)
        # the pool reads the conv's output directly: the pre-pool tensor is never written
        assert {b for b, buf in plan.buffers.items() if buf.origin == "step"} == {plan.steps[0].outputs[0],
                                                                                pool.outputs[0].buffer}


def test_interpreter_catches_a_wrong_window(tmp_path: Path) -> None:
    """The CPU check is sensitive to the window details the CUDA is written from (divisor, padding)."""
    path = _problem(tmp_path, "wrong", *CASES["avg_pad_no_count_pad"])
    traced = trace_problem(path)
    plan = build_plan(traced.program)
    assert check_traced(traced, {"ok": plan}, {}).passed
    pool = _pools(plan)[0]
    for change in ({"count_include_pad": True}, {"divisor_override": 5}, {"pool": "max"}):
        broken = dataclasses.replace(pool, window=dataclasses.replace(pool.window, **change))
        wrong = dataclasses.replace(plan, steps=tuple(broken if s is pool else s for s in plan.steps))
        assert not check_traced(traced, {"broken": wrong}, {}).passed, change


def test_max_pool_propagates_nan_like_aten(tmp_path: Path) -> None:
    path = _problem(tmp_path, "nan", *CASES["max_pad"])
    traced = trace_problem(path)
    x = traced.inputs[0].clone()
    x[0, 1, 4, 5] = float("nan")
    x[1, 2, 0, 0] = float("nan")
    out = interpret(build_plan(traced.program), traced.model, [x])[0]
    ref = traced.model(x)
    assert torch.equal(torch.isnan(out), torch.isnan(ref)) and torch.isnan(ref).any()
    assert torch.allclose(torch.nan_to_num(out), torch.nan_to_num(ref))


UNSUPPORTED = {
    "max_pool2d_with_indices": ("F.max_pool2d(x.relu(), 2, return_indices=True)[0] + 1.0", (1, 2, 6, 6),
                                "returns indices"),
    "adaptive_avg_pool2d": ("F.adaptive_avg_pool2d(x.relu(), 3) * 2.0", (1, 2, 6, 6), "adaptive_avg pooling"),
    "integer_max_pool": ("F.max_pool2d((x * 4).relu().long(), 2) + 1", (1, 2, 6, 6), "over int64"),
}


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_pooling_is_kept_as_aten_with_a_note(name: str, tmp_path: Path) -> None:
    expr, shape, reason = UNSUPPORTED[name]
    path = _problem(tmp_path, name, expr, shape)
    check = check_problem(path, scale=False)
    assert check.passed, check.failures()
    plan = build_plan(trace_problem(path).program)
    assert len(plan.kept_aten_ops) == 1 and "pool" in plan.kept_aten_ops[0], describe(plan)
    assert any(reason in note and "kept as ATen" in note for note in plan.notes), plan.notes
    candidates = propose(path)  # the elementwise ops around it are still custom kernels
    assert candidates and all(c.kept_aten_ops == plan.kept_aten_ops for c in candidates)


def test_pool_cuda_specialises_on_the_window(tmp_path: Path) -> None:
    def source(name: str, **params) -> str:
        path = _problem(tmp_path, name, *CASES[name])
        traced = trace_all(path)
        plans = plans_for(traced)["fused"]
        return render(traced, plans, {**plan_space(plans[0]).defaults(), **params}, "fused")

    plain = source("avg_2x2")
    assert "row_in" not in plain and "< 8u" not in plain  # windows inside the input: no bounds checks
    assert "acc / (float)4;" in plain  # constant divisor
    padded = source("avg_pad_no_count_pad")
    assert "row_in" in padded and "const int divisor =" in padded
    # per-channel prologue values are loaded once per output, outside the window loop
    affine = source("prologue_channel_affine", **{"k0.OPT": 4, "k0.BLOCK": 64})
    hoisted = affine[affine.index("const int l0"):affine.index("for (int i = 0;")]
    assert hoisted.count("[((l0 /") == 2, hoisted
    assert "#define KW_k0_OPT 4" in affine and "#define KW_k0_BLOCK 64" in affine
    assert "#pragma unroll 1" in source("max_large_window")  # 81-element windows are not unrolled whole


def test_pool_tunables_are_in_the_plan_space(tmp_path: Path) -> None:
    path = _problem(tmp_path, "space", *CASES["max_pad"])
    space = plan_space(build_plan(trace_problem(path).program)).to_dict()
    assert space["k0.BLOCK"]["default"] in space["k0.BLOCK"]["choices"]
    assert space["k0.OPT"] == {"choices": [1, 2, 4], "default": 1}


# 3-D pools (RunSettings.offline_preview): name -> (forward expression of x, input shape, dtype)
CASES_3D = {
    "max3d_plain": ("F.max_pool3d(x, 2)", (2, 3, 6, 8, 8), "float32"),
    "max3d_pad_dilation_ceil": ("F.max_pool3d(x.relu(), 3, stride=2, padding=1, dilation=(2, 1, 3), ceil_mode=True)",
                                (1, 2, 9, 8, 11), "float32"),
    "max3d_kernelbench_43": ("F.max_pool3d(x, 3, stride=2, padding=1, dilation=3)", (2, 2, 12, 12, 12), "float32"),
    "avg3d_count_pad": ("F.avg_pool3d(x, 3, stride=2, padding=1) * 2.0", (2, 3, 7, 9, 10), "float32"),
    "avg3d_no_count_pad_ceil": ("F.avg_pool3d(x, (2, 3, 3), stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True, "
                                "count_include_pad=False)", (1, 2, 7, 6, 9), "float32"),
    "avg3d_divisor_override": ("F.avg_pool3d(x, (3, 2, 2), stride=2, padding=1, divisor_override=5)", (1, 2, 7, 7, 7),
                               "float32"),
    "max3d_bf16_epilogue": ("torch.tanh(F.max_pool3d(x * 1.5, 2, stride=1, padding=1)) + 1.0", (2, 3, 5, 6, 7),
                            "bfloat16"),
    "avg3d_fp64": ("F.avg_pool3d(x, 2, stride=1, padding=1, count_include_pad=False)", (2, 3, 5, 6, 7), "float64"),
    "max3d_unbatched": ("F.max_pool3d(x, 2, stride=1, padding=1)", (3, 5, 6, 7), "float32"),
}


@pytest.mark.parametrize("name", CASES_3D)
def test_3d_pool_plan_matches_model_on_cpu_with_the_preview(name: str, tmp_path: Path) -> None:
    path = _problem(tmp_path, name, *CASES_3D[name])
    check = check_problem(path, scale=False, preview=True)
    assert check.passed, check.failures()
    assert check.kept_aten_ops == {"fused": [], "aten_reductions": []}, check.kept_aten_ops
    program = trace_problem(path).program
    plan = build_plan(program, preview=True)
    assert [s.kind for s in plan.steps] == ["pool"], describe(plan)
    (pool,) = _pools(plan)
    assert pool.window.spatial_dims == 3 and len(pool.window.kernel) == 3, describe(plan)
    # with the preview off the pool stays the ATen call, as before
    assert any("3-D pooling" in note for note in build_plan(program, preview=False).notes)


def test_3d_pooling_is_a_preview_of_propose(tmp_path: Path) -> None:
    fixture = FIXTURES / "offline" / "pooling3d.py"
    before = propose(fixture, preview=False)
    assert before and all(set(c.kept_aten_ops) == {"aten.max_pool3d.default", "aten.avg_pool3d.default"}
                          for c in before)
    after = propose(fixture)  # the preview is on by default
    assert after and all(not c.kept_aten_ops for c in after)
    cuda = cuda_of(after[0].source)
    assert cuda.count("for (int c = 0;") == 8 and "depth_in" in cuda  # a depth loop in every kernel, checked
    assert "(min(de, 7) - max(id0, 0))" in cuda  # count_include_pad=False clips the divisor along depth too
    assert check_problem(fixture, scale=False, preview=True).passed


def test_interpreter_catches_a_wrong_3d_window(tmp_path: Path) -> None:
    path = _problem(tmp_path, "wrong3d", *CASES_3D["avg3d_no_count_pad_ceil"])
    traced = trace_problem(path)
    plan = build_plan(traced.program, preview=True)
    assert check_traced(traced, {"ok": plan}, {}).passed
    pool = _pools(plan)[0]
    for change in ({"count_include_pad": True}, {"padding": (1, 0, 1)}, {"stride": (1, 1, 2)}, {"pool": "max"}):
        broken = dataclasses.replace(pool, window=dataclasses.replace(pool.window, **change))
        wrong = dataclasses.replace(plan, steps=tuple(broken if s is pool else s for s in plan.steps))
        assert not check_traced(traced, {"broken": wrong}, {}).passed, change



@pytest.mark.nvcc
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pool_candidates_compile_with_nvcc(tmp_path: Path) -> None:
    """Suite 20 and 44, the pooling fixtures and every CPU case (3-D ones with the preview on), at default
    tunables and at the far corner of the pool space (BLOCK 64, 4 outputs a thread)."""
    problems = [suite_dir() / "20_conv2d_relu_avgpool.py", suite_dir() / "44_conv_bn_relu_pool.py",
                FIXTURES / "offline" / "pooling.py", FIXTURES / "offline" / "pooling3d.py"]
    problems += [_problem(tmp_path, name, *case) for name, case in {**CASES, **CASES_3D}.items()]
    sources: dict[str, str] = {}
    for path in problems:
        traced = trace_all(path)
        plans = plans_for(traced, preview=True)["fused"]  # the preview: 3-D pools too
        assert not plans[0].kept_aten_ops, (path.name, plans[0].kept_aten_ops)
        sources.update(default_and_corner_sources(path, traced, plans))
    failed = failed_builds(sources, tmp_path / "cache")
    assert not failed, failed


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("problem", [suite_dir() / "20_conv2d_relu_avgpool.py", suite_dir() / "44_conv_bn_relu_pool.py",
                                     FIXTURES / "offline" / "pooling.py", FIXTURES / "offline" / "pooling3d.py"],
                         ids=lambda p: p.stem)
def test_pool_candidates_pass_the_real_harness(problem: Path, build_cache: Path, tmp_path: Path) -> None:
    """On a GPU: every variant is verified and timed; the only PyTorch-side kernels left are cuDNN's conv (a
    library kernel), so the harness no longer rejects problem 20 as reference_op_called. 3-D pools: the preview's."""
    from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
    from kernelwright.tools.measure.timing import BenchSettings
    from kernelwright.tools.sandbox.pool import WorkerOptions

    settings = EvalSettings(call_timeout_s=60.0, compile_baseline=False,
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))
    options = WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})
    candidates = propose(problem, preview=problem.stem == "pooling3d")
    assert candidates and all(not c.kept_aten_ops for c in candidates)
    with Evaluator(problem, settings, options) as ev:
        for cand in candidates:
            report = ev.evaluate(cand.write(tmp_path / f"{cand.variant}.py"))
            assert report.status == "passed", (cand.variant, report.reason, report.message)
            usage = report.kernel_usage or {}
            assert usage.get("custom"), usage
            assert not [k for k in usage.get("framework", ()) if "pool" in k.lower()], usage
            assert report.speedup_vs_eager is not None and report.speedup_vs_eager > 0
