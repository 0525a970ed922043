"""Depthwise convolutions (groups == in_channels, channel multiplier m >= 1) as "depthwise" pool kernels, behind
RunSettings.offline_preview (propose's conv flag): the window walk in float64 against torch's convolutions, every
fixture of tests/fixtures/depthwise (shaped like KernelBench level 1 problems 82-85, small) planned as one kernel
with the bias and the elementwise chains around the conv fused in and interpreted against the Model, the preview
off keeping the library conv, nvcc builds; on a GPU (not run where this was written): float64 comparison and the
real harness seeing the candidate's own kernel and no cuDNN."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.check import check_problem, check_traced
from kernelwright.agents.offline.depthwise import depthwise_window
from kernelwright.agents.offline.interp import pool_values
from kernelwright.agents.offline.ir import Load, PoolStep, describe
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.propose import plans_for, trace_all
from kernelwright.agents.offline.trace import trace_problem
from support.offline import cuda_of, default_and_corner_sources, failed_builds
from support.paths import FIXTURES

DEPTHWISE = FIXTURES / "depthwise"
PROBLEMS = sorted(DEPTHWISE.glob("*.py"))
IDS = [p.stem for p in PROBLEMS]
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# (input shape, multiplier, kernel, stride, padding, dilation)
WINDOWS = [
    ((2, 3, 9, 11), 1, (3, 3), (1, 1), (0, 0), (1, 1)),
    ((2, 3, 9, 11), 1, (3, 1), (2, 1), (2, 0), (2, 1)),
    ((1, 4, 10, 13), 3, (3, 5), (2, 3), (1, 2), (1, 2)),
    ((2, 2, 7, 8), 2, (7, 7), (1, 1), (5, 5), (1, 1)),  # padding over half the kernel: a conv allows it
    ((3, 5, 23), 1, (5,), (2,), (3,), (2,)),
    ((1, 2, 5, 6, 7), 2, (3, 2, 3), (1, 2, 1), (1, 0, 2), (2, 1, 1)),
]


def _shapes(in_shape: tuple[int, ...], m: int, kernel: tuple[int, ...], stride: tuple[int, ...],
            padding: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(in_shape, dtype=torch.float64)
    weight = torch.randn((in_shape[1] * m, 1, *kernel), dtype=torch.float64)
    ref = CONV[len(kernel)](x, weight, stride=stride, padding=padding, dilation=dilation, groups=in_shape[1])
    return x, weight, ref


@pytest.mark.parametrize("case", WINDOWS, ids=lambda c: f"{len(c[2])}d-m{c[1]}-k{'x'.join(map(str, c[2]))}")
def test_depthwise_window_walk_matches_torch_conv_in_float64(case: tuple) -> None:
    in_shape, m, kernel, stride, padding, dilation = case
    x, weight, ref = _shapes(*case)
    window = depthwise_window(f"conv{len(kernel)}d.default", (stride, padding, dilation, in_shape[1]), {}, in_shape,
                              tuple(weight.shape), tuple(ref.shape), ("float64",) * 3)
    assert window.pool == "depthwise" and window.multiplier == m
    out = pool_values(window, x.reshape(window.planes, *window.in_size), weight)
    assert torch.allclose(out.reshape(ref.shape), ref, rtol=1e-12, atol=1e-12)
    # the comparison can fail: the same walk one tap off (the window shifted by one along W) does not match
    shifted = dataclasses.replace(window, padding=(*window.padding[:-1], window.padding[-1] + 1))
    wrong = pool_values(shifted, x.reshape(window.planes, *window.in_size), weight)
    assert not torch.allclose(wrong.reshape(ref.shape), ref)


def test_grouped_convs_that_are_not_depthwise_are_refused() -> None:
    from kernelwright.agents.offline.depthwise import NotDepthwise

    args = ((1, 1), (0, 0), (1, 1), 2)  # 2 groups over 4 channels
    with pytest.raises(NotDepthwise, match="not depthwise"):
        depthwise_window("conv2d.default", args, {}, (1, 4, 8, 8), (4, 2, 3, 3), (1, 4, 6, 6), ("float32",) * 3)
    with pytest.raises(NotDepthwise, match="over float32/float16"):
        depthwise_window("conv2d.default", (1, 0, 1, 4), {}, (1, 4, 8, 8), (4, 1, 3, 3), (1, 4, 6, 6),
                         ("float32", "float16", "float32"))


def _depthwise(plan: Any) -> list[PoolStep]:
    return [s for s in plan.steps if isinstance(s, PoolStep) and s.window.pool == "depthwise"]


@pytest.mark.parametrize("problem", PROBLEMS, ids=IDS)
def test_depthwise_fixture_is_one_kernel_that_matches_the_model(problem: Path) -> None:
    check = check_problem(problem, scale=False, preview=True)
    assert check.passed, check.failures()
    assert check.kept_aten_ops == {"fused": [], "aten_reductions": []}, check.kept_aten_ops
    traced = trace_problem(problem)
    plan = build_plan(traced.program, preview=True)
    assert [s.kind for s in plan.steps] == ["pool"], describe(plan)  # bias and chains fused into it
    (step,) = _depthwise(plan)
    assert step.weight is not None and plan.buffers[step.weight.buffer].origin == "parameter"
    if any(b.target.endswith(".bias") for b in plan.buffers.values()):
        bias = next(n for n, b in plan.buffers.items() if b.target.endswith(".bias"))
        assert any(isinstance(e, Load) and e.layout.buffer == bias for e in step.epilogue.nodes), describe(plan)
    # with the preview off the conv stays the library call (cuDNN), as before
    assert "host" in [s.kind for s in build_plan(traced.program, preview=False).steps]


def test_interpreter_catches_a_wrong_depthwise_step() -> None:
    traced = trace_problem(DEPTHWISE / "dw2d_multiplier_bias.py")
    plan = build_plan(traced.program, preview=True)
    assert check_traced(traced, {"ok": plan}, {}).passed
    (step,) = _depthwise(plan)
    for change in ({"padding": (0, 2)}, {"dilation": (1, 2)}, {"stride": (1, 2)}):
        broken = dataclasses.replace(step, window=dataclasses.replace(step.window, **change))
        wrong = dataclasses.replace(plan, steps=(broken,))
        assert not check_traced(traced, {"broken": wrong}, {}).passed, change



def test_propose_gives_a_depthwise_kernel_only_with_the_preview() -> None:
    problem = DEPTHWISE / "dw2d_multiplier_bias.py"
    before = propose(problem, preview=False)  # the preview off: cuDNN's conv, the bias add a kernel of its own
    assert before and all("depthwise" not in cuda_of(c.source) for c in before)
    assert [s.kind if s.kind != "host" else s.target
            for s in plans_for(trace_all(problem), preview=False)["fused"][0].steps] == ["aten.conv2d.default", "elementwise"]
    candidates = propose(problem)  # the preview is on by default
    assert candidates and all(not c.kept_aten_ops for c in candidates)
    cuda = cuda_of(candidates[0].source)
    assert "depthwise pool" in cuda and "(plane / (int)2)" in cuda and "(plane % (int)8)" in cuda
    assert "acc += (float)x0 * (float)kw_cvt(p.b0[wb + i * 3 + j]);" in cuda


@pytest.mark.nvcc
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_depthwise_candidates_compile_with_nvcc(tmp_path: Path) -> None:
    """Every fixture at default tunables and at the far corner of the pool space (BLOCK 64, 4 outputs a thread)."""
    sources: dict[str, str] = {}
    for path in PROBLEMS:
        traced = trace_all(path)
        plans = plans_for(traced, preview=True)["fused"]
        assert _depthwise(plans[0]) and not plans[0].kept_aten_ops, path.name
        sources.update(default_and_corner_sources(path, traced, plans))
    failed = failed_builds(sources, tmp_path / "cache")
    assert not failed, failed
