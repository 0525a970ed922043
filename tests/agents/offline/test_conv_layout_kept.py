"""A convolution's output kept channels-last (LAYOUT "channels_last_kept", behind
RunSettings.offline_channels_last_kept): the layout arithmetic against torch's own views, the plans the
interpreter runs against the Model (KernelBench's conv chains and conv networks, scaled down), the candidate's
code, and on a GPU the harness's verdict beside the contiguous output."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from kernelwright.agents.context import RunSettings
from kernelwright.agents.offline.check import check_traced, small_overrides
from kernelwright.agents.offline.conv_layout import (
    CHANNELS_LAST,
    CHANNELS_LAST_KEPT,
    CHANNELS_LAST_PYTHON,
    CONTIGUOUS,
    KEPT_LAYOUTS,
    LAYOUTS,
    kept_plan,
    layout_dims,
    with_kept_layouts,
)
from kernelwright.agents.offline.ir import (
    ElementwiseStep,
    HostStep,
    Layout,
    PoolStep,
    ReductionStep,
    contiguous_strides,
)
from kernelwright.agents.offline.layout_remap import channels_last_strides, remap_channels_last
from kernelwright.agents.offline.propose import plans_for, trace_all, tuning_target
from kernelwright.agents.offline.space import plan_space
from kernelwright.agents.offline.trace import trace_problem
from kernelwright.tools.problem.files import read_source
from support.offline import assert_builds_for_sm_90a, harness_failures, suite_dir
from support.paths import KERNELBENCH

# Views a plan reads a conv output through: (name, view of a contiguous x, re-expressible channels-last?)
VIEWS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], bool]] = [
    ("identity", lambda x: x, True),
    ("channel slice", lambda x: x[:, 1:3], True),
    ("one channel", lambda x: x[:, 2:3], True),
    ("spatial slice", lambda x: x[:, :, 1:, :-1], True),
    ("strided spatial", lambda x: x[..., ::2], True),
    ("batch item", lambda x: x[1:2], True),
    ("permuted", lambda x: x.permute(0, 2, 3, 1) if x.dim() == 4 else x.permute(0, 2, 3, 4, 1), True),
    ("transposed", lambda x: x.transpose(-1, -2), True),
    ("spatial flattened", lambda x: x.flatten(2), True),
    ("spatial flattened, tokens first", lambda x: x.flatten(2).transpose(1, 2), True),
    ("channel broadcast", lambda x: x[:, :1].expand(x.shape), True),
    ("channels with rows", lambda x: x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:]), False),
    ("all flattened", lambda x: x.reshape(x.shape[0], -1), False),
    ("whole tensor", lambda x: x.reshape(-1), False),
]


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 2, 3, 5), (1, 6, 1, 7)])
@pytest.mark.parametrize("name,make,expected", VIEWS, ids=[v[0] for v in VIEWS])
def test_a_remapped_layout_reads_the_same_values_from_channels_last_storage(
        shape: tuple[int, ...], name: str, make: Callable[[torch.Tensor], torch.Tensor], expected: bool) -> None:
    x = torch.arange(torch.Size(shape).numel(), dtype=torch.float32).reshape(shape)
    stored = x.contiguous(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    assert stored.stride() == channels_last_strides(shape) or 1 in shape  # torch's own strides (size-1 dims aside)
    view = make(x)
    layout = Layout("b", tuple(view.shape), tuple(view.stride()), view.storage_offset())
    moved = remap_channels_last(layout, shape)
    if moved is None:
        # refused only where it must be: a view that mixes channels with another dim, on a tensor with more
        # than one channel and more than one element in that other dim
        assert not expected and shape[1] > 1
        return
    assert torch.equal(torch.as_strided(stored, moved.shape, moved.strides, moved.offset), view), name
    assert expected or shape[1] == 1 or 1 in shape[2:], f"{name} was expected to be refused"


def test_two_view_dims_that_together_carry_into_the_next_buffer_dim_are_refused() -> None:
    """Each dim alone stays inside W, their sum does not: no digit-wise re-expression exists."""
    layout = Layout("b", (3, 3), (1, 1), 0)  # x[i + j] along W of a (2, 2, 2, 4) buffer: reaches W index 4
    assert remap_channels_last(layout, (2, 2, 2, 4)) is None
    assert remap_channels_last(Layout("b", (2, 2), (1, 1), 0), (2, 2, 2, 4)) is not None


def test_a_kept_output_starts_its_storage_so_absolute_strided_reads_find_it() -> None:
    """The steps after a kept output read it through torch.as_strided (an absolute storage offset): the candidate's
    _kw_cl gives it at offset 0 even where the op returned a channels-last view further into a storage."""
    helpers: dict[str, object] = {"torch": torch}
    exec(CHANNELS_LAST_PYTHON, helpers)
    make_kept = helpers["_kw_cl"]
    assert callable(make_kept)
    view = torch.arange(4 * 3 * 5 * 6, dtype=torch.float32).reshape(4, 3, 5, 6) \
        .contiguous(memory_format=torch.channels_last)[1:3]
    assert view.storage_offset() > 0 and view.is_contiguous(memory_format=torch.channels_last)
    kept = make_kept(view)
    assert kept.storage_offset() == 0
    read = torch.as_strided(kept, view.shape, channels_last_strides(tuple(view.shape)), 0)
    assert torch.equal(read, view)


def _kb(level: str, stem: str) -> Path:
    path = KERNELBENCH / level / f"{stem}.py"
    if not path.exists():
        pytest.skip(f"KernelBench is not at {KERNELBENCH} (KERNELBENCH_DIR names a copy)")
    return path


# Conv chains of level 2 whose convolution feeds each kind of step (elementwise, channel reduction, norm, softmax,
# 2-D and 3-D pools, a 3-D transposed conv) and level-3 networks whose convolutions feed each other, residual adds and concatenations.
KERNELBENCH_CHAINS = [("level2", "32_Conv2d_Scaling_Min"), ("level2", "4_Conv2d_Mish_Mish"),
                      ("level2", "17_Conv2d_InstanceNorm_Divide"), ("level2", "85_Conv2d_GroupNorm_Scale_MaxPool_Clamp"),
                      ("level2", "34_ConvTranspose3d_LayerNorm_GELU_Scaling"), ("level3", "8_ResNetBasicBlock"),
                      ("level3", "17_SqueezeNetFireModule"), ("level3", "14_DenseNet121DenseBlock"),
                      ("level2", "35_Conv2d_Subtract_HardSwish_MaxPool_Mish"),
                      ("level2", "50_ConvTranspose3d_Scaling_AvgPool_BiasAdd_Scaling"),
                      ("level2", "49_ConvTranspose3d_Softmax_Sigmoid"), ("level3", "45_UNetSoftmax")]


@pytest.mark.parametrize("level,stem", KERNELBENCH_CHAINS, ids=[s for _, s in KERNELBENCH_CHAINS])
def test_every_convolution_of_a_kernelbench_chain_may_keep_its_output_and_the_plan_still_matches_the_model(
        level: str, stem: str) -> None:
    path = _kb(level, stem)
    overrides = small_overrides(read_source(path, "problem"))
    traced = trace_problem(path, overrides=overrides)
    plan = plans_for([traced], kept_layouts=True, allow_tf32=True)["fused"][0]
    dims = layout_dims(plan)
    space = {d.name: d for d in plan_space(plan).dims}
    assert dims and all(space[d].choices == KEPT_LAYOUTS for d in dims)
    kept = with_kept_layouts(plan, {d: CHANNELS_LAST_KEPT for d in dims})
    convs = [s for s in kept.steps if isinstance(s, HostStep) and f"{s.name}.LAYOUT" in dims]
    assert len(convs) == len(dims) and all(s.keeps_channels_last for s in convs)
    assert kept != plan
    check = check_traced(traced, {"kept": kept, "contiguous": plan}, overrides)
    assert check.passed, check.results


def test_the_setting_off_offers_no_kept_output_and_renders_what_it_did_before() -> None:
    traced = trace_all(suite_dir() / "20_conv2d_relu_avgpool.py")
    off, on = (plans_for(traced, allow_tf32=True, kept_layouts=k)["fused"][0] for k in (False, True))
    assert not off.channels_last_kept and RunSettings.offline_channels_last_kept is False
    (dim,) = layout_dims(off)
    assert {d.name: d.choices for d in plan_space(off).dims}[dim] == LAYOUTS
    target = tuning_target(traced, "fused", allow_tf32=True, kept_layouts=True)
    assert target is not None and target.plans[0].channels_last_kept
    # a kept setting reaching a plan without the setting keeps the output contiguous (operands still go
    # channels-last, as "channels_last" does)
    assert with_kept_layouts(off, {dim: CHANNELS_LAST_KEPT}) == off
    assert with_kept_layouts(on, {dim: CHANNELS_LAST_KEPT}) != on
    space = plan_space(on)
    switched = space.switched_on(space.defaults())
    assert switched is not None and switched[dim] == CHANNELS_LAST_KEPT  # the fill's first candidate
    plain = target.render(space.defaults())
    kept_source = target.render({**space.defaults(), dim: CHANNELS_LAST_KEPT})
    round_trip = target.render({**space.defaults(), dim: CHANNELS_LAST})
    conv_out = next(s for s in on.steps if isinstance(s, HostStep) and s.name == dim.split(".")[0]).outputs[0]
    assert f"{conv_out} = _kw_cl(" in kept_source and f"{conv_out} = _kw_cl(" not in round_trip
    assert ".contiguous()" in round_trip.split("class ModelNew", 1)[1]
    assert plain != kept_source != round_trip
    for source in (plain, kept_source, round_trip):
        ast.parse(source)
    assert {d.name: d.default for d in space.dims}[dim] == CONTIGUOUS


def test_an_output_forward_returns_is_returned_channels_last_with_the_same_values() -> None:
    """A conv chain whose activation writes forward's output: the activation follows the kept convolution and the
    candidate returns its output through channels-last strides."""
    path = _kb("level2", "4_Conv2d_Mish_Mish")
    overrides = small_overrides(read_source(path, "problem"))
    traced = trace_problem(path, overrides=overrides)
    plan = plans_for([traced], allow_tf32=True, kept_layouts=True)["fused"][0]
    (dim,) = layout_dims(plan)
    kept = with_kept_layouts(plan, {dim: CHANNELS_LAST_KEPT})
    (activation,) = [s for s in kept.steps if isinstance(s, ElementwiseStep)]
    assert activation.writes_channels_last
    (out,) = kept.outputs
    assert isinstance(out, Layout) and out.strides == channels_last_strides(out.shape)
    assert check_traced(traced, {"kept": kept}, overrides).passed
    # the Model's state keeps its layout: a plan whose conv output is written back as state keeps it contiguous
    conv = next(s for s in plan.steps if s.name == dim.split(".")[0])
    assert isinstance(conv, HostStep) and conv.outputs[0] is not None
    shape = plan.buffers[conv.outputs[0]].shape
    stateful = replace(plan, state_updates=(("x", Layout(conv.outputs[0], shape, contiguous_strides(shape))),))
    assert kept_plan(stateful, conv.name) is None and kept_plan(plan, conv.name) is not None


def test_activations_between_convolutions_follow_them_so_a_network_stays_channels_last() -> None:
    """ResNet's basic block: every activation and the residual add run in channels-last order, so each
    convolution gets channels-last operands from the step before it (no copy in the candidate)."""
    path = _kb("level3", "8_ResNetBasicBlock")
    traced = trace_all(path)
    target = tuning_target(traced, "fused", allow_tf32=True, kept_layouts=True)
    assert target is not None
    plan = target.plans[0]
    dims = layout_dims(plan)
    kept = with_kept_layouts(plan, {d: CHANNELS_LAST_KEPT for d in dims})
    activations = [s for s in kept.steps if isinstance(s, ElementwiseStep)]
    assert activations and all(s.writes_channels_last for s in activations)
    source = target.render({**target.space.defaults(), **{d: CHANNELS_LAST_KEPT for d in dims}})
    forward = source.split("class ModelNew", 1)[1]
    assert ".contiguous()" not in "".join(line for line in forward.splitlines() if "_kw_cl(" in line)
    assert forward.count("_kw_cl(") >= 2 * len(dims)  # each convolution's operands and its output


def test_a_concatenation_of_kept_outputs_is_taken_channels_last_and_what_reads_it_follows() -> None:
    """DenseNet's dense block: each layer concatenates the block's features; the concatenation's result is taken
    channels-last, and the batch norm and ReLU reading it follow."""
    path = _kb("level3", "14_DenseNet121DenseBlock")
    overrides = small_overrides(read_source(path, "problem"))
    traced = trace_problem(path, overrides=overrides)
    plan = plans_for([traced], allow_tf32=True, kept_layouts=True)["fused"][0]
    dims = layout_dims(plan)
    kept = with_kept_layouts(plan, {d: CHANNELS_LAST_KEPT for d in dims})
    cats = [s for s in kept.steps if isinstance(s, HostStep) and "cat" in s.target]
    assert cats and all(s.keeps_channels_last for s in cats)
    followers = [s for s in kept.steps if isinstance(s, ElementwiseStep) and s.writes_channels_last]
    assert len(followers) >= len(dims) - 1
    assert check_traced(traced, {"kept": kept}, overrides).passed


@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_kept_candidates_build_with_nvcc(tmp_path: Path) -> None:
    """The kernels after a kept convolution read through strided layouts: their CUDA builds for sm_90a, a conv
    chain's (a min over channels as rows, an instance norm as columns that write channels-last, a 3-D pool in
    channels-last order) and a network's (SqueezeNet's 2-D max pools)."""
    for level, stem in (("level2", "32_Conv2d_Scaling_Min"), ("level2", "17_Conv2d_InstanceNorm_Divide"),
                        ("level2", "50_ConvTranspose3d_Scaling_AvgPool_BiasAdd_Scaling"),
                        ("level3", "17_SqueezeNetFireModule")):
        target = tuning_target(trace_all(_kb(level, stem)), "fused", allow_tf32=True, kept_layouts=True)
        assert target is not None
        kept = {d: CHANNELS_LAST_KEPT for d in layout_dims(target.plans[0])}
        assert_builds_for_sm_90a(target.render({**target.space.defaults(), **kept}), tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_kept_outputs_beside_contiguous_ones_and_times_both(tmp_path: Path,
                                                                                build_cache: Path) -> None:
    """level2/4 (a conv, then activations that follow it), level2/32 (a conv, then a min over channels: rows
    along the stored channels), level2/17 (an instance norm: columns over neighbouring channels) and level3/18 (SqueezeNet: convolutions, activations and concatenations, torch.compile's
    largest lead on level 3), each with its convolutions' outputs contiguous, round-tripped and kept, under the
    kernelbench profile; speedups over eager print (run with -s)."""
    failed = []
    for level, stem in (("level2", "4_Conv2d_Mish_Mish"), ("level2", "32_Conv2d_Scaling_Min"),
                        ("level2", "17_Conv2d_InstanceNorm_Divide"), ("level3", "18_SqueezeNet")):
        path = _kb(level, stem)
        # the kernelbench profile: where torch.compile's channels-last convolutions lead (eval/BENCHMARKS.md)
        target = tuning_target(trace_all(path), "fused", allow_tf32=True, kept_layouts=True)
        assert target is not None
        defaults = target.space.defaults()
        dims = layout_dims(target.plans[0])
        sources = {f"{stem} {label}": target.render({**defaults, **{d: layout for d in dims}})
                   for label, layout in (("contiguous", CONTIGUOUS), ("channels_last", CHANNELS_LAST),
                                         ("kept", CHANNELS_LAST_KEPT))}
        failed += harness_failures(path, sources, tmp_path, build_cache, precision="kernelbench")
    assert not failed, failed


FOLLOWERS = [("level2", "35_Conv2d_Subtract_HardSwish_MaxPool_Mish", "pool"),
             ("level2", "50_ConvTranspose3d_Scaling_AvgPool_BiasAdd_Scaling", "pool"),
             ("level2", "32_Conv2d_Scaling_Min", "rows"), ("level2", "17_Conv2d_InstanceNorm_Divide", "normalisation"),
             ("level2", "49_ConvTranspose3d_Softmax_Sigmoid", "normalisation")]


@pytest.mark.parametrize("level,stem,kind", FOLLOWERS, ids=[s for _, s, _ in FOLLOWERS])
def test_pools_and_reductions_over_a_kept_output_walk_its_storage_in_order(level: str, stem: str, kind: str) -> None:
    """The step after the kept convolution iterates channels fastest (storage_order): a pool or a normalisation
    then writes channels-last, a min over channels becomes rows along the stored channels."""
    traced = trace_all(_kb(level, stem))
    plan = plans_for(traced, allow_tf32=True, kept_layouts=True)["fused"][0]
    kept = with_kept_layouts(plan, {d: CHANNELS_LAST_KEPT for d in layout_dims(plan)})
    (follower,) = [s for s in kept.steps if isinstance(s, (PoolStep, ReductionStep))]
    if kind == "rows":
        assert isinstance(follower, ReductionStep) and follower.inner == 1 and not follower.writes_channels_last
    else:
        assert follower.writes_channels_last
