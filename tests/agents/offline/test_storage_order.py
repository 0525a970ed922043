"""A reduction over a channels-last input iterated in storage order (storage_order): on every block of reduced
dims of a 4-D and a 5-D shape and every kind of reduction, the interpreter's result over channels-last storage
equals the contiguous step's wherever the reorder is offered, and it is refused exactly where it would change
the result's order or meaning."""

from __future__ import annotations

from math import prod

import pytest
import torch

from kernelwright.agents.offline.interp import run_step
from kernelwright.agents.offline.ir import (
    NORMALISATIONS,
    Buffer,
    Dag,
    Layout,
    Load,
    Plan,
    ReductionStep,
    Special,
    StepOutput,
    contiguous_strides,
)
from kernelwright.agents.offline.layout_remap import remap_channels_last
from kernelwright.agents.offline.storage_order import ORDER_SENSITIVE, reduced_dims, reduction_channels_last_order

SHAPES = [(2, 3, 4, 5), (2, 3, 2, 4, 5)]
KINDS = ["sum", "max", "argmax", "min_with_index", "logsumexp", "var", "softmax", "layer_norm", "cumsum"]


def _blocks(rank: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(rank) for b in range(a + 1, rank + 1)]


def _plan(shape: tuple[int, ...], a: int, b: int, kind: str) -> tuple[Plan, ReductionStep]:
    """A plan of one `kind` reduction over dims a..b-1 of an input stored contiguous."""
    prologue = Dag(shape, (Load(Layout("x", shape, contiguous_strides(shape)), "float32"),))
    if kind in NORMALISATIONS:
        out_shape, special, dtype = shape, "z", "float32"
    else:
        out_shape = (*shape[:a], *(1,) * (b - a), *shape[b:])
        special, dtype = ("index", "int64") if kind == "argmax" else ("value", "float32")
    step = ReductionStep("k0", kind, prod(shape[:a]), prod(shape[a:b]), prod(shape[b:]), prologue,  # type: ignore[arg-type]
                         Dag(out_shape, (Special(special, dtype),)), (StepOutput(0, "y"),),
                         attrs=(("eps", 1e-5), ("correction", 1.0)))
    buffers = {"x": Buffer("x", shape, "float32", "input"), "y": Buffer("y", out_shape, dtype, "step")}
    return Plan(buffers, ("x",), (step,), (Layout("y", out_shape, contiguous_strides(out_shape)),)), step


def _run(plan: Plan, step: ReductionStep, x: torch.Tensor) -> torch.Tensor:
    mem = {"x": x}
    run_step(plan, step, mem)
    return mem["y"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=["4d", "5d"])
def test_a_reordered_reduction_over_channels_last_storage_gives_the_contiguous_result(
        shape: tuple[int, ...], kind: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape)
    stored = x.contiguous(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    offered = []
    for a, b in _blocks(len(shape)):
        plan, step = _plan(shape, a, b, kind)
        expected = _run(plan, step, x)
        load = step.prologue.nodes[0]
        assert isinstance(load, Load)
        moved = remap_channels_last(load.layout, shape)
        assert moved is not None
        over_stored = ReductionStep(**{**{f: getattr(step, f) for f in step.__slots__},  # type: ignore[arg-type]
                                       "prologue": Dag(shape, (Load(moved, "float32"),))})
        reordered = reduction_channels_last_order(over_stored)
        perm_order = [0, *range(2, len(shape)), 1]
        block = [d for d in perm_order if a <= d < b]
        positions = [d for d in perm_order if not a <= d < b]
        one_block = perm_order.index(block[0]) + len(block) - 1 == perm_order.index(block[-1])
        # the outputs keep the reduced dims (size 1), so positions in another order are written channels-last
        should = one_block and (kind not in ORDER_SENSITIVE or block == sorted(block))
        assert (reordered is not None) == should, (a, b)
        if reordered is None:
            continue
        offered.append((a, b))
        assert reordered.writes_channels_last == (kind in NORMALISATIONS or positions != sorted(positions))
        got = _run(plan, reordered, stored)
        assert got.shape == expected.shape
        if kind in ("argmax", "min_with_index") and got.dtype == torch.int64:
            assert torch.equal(got, expected), (a, b)
        else:
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=f"dims {a}..{b - 1}")
    assert (1, 2) in offered  # over channels alone: every kind
    if kind not in ORDER_SENSITIVE:
        assert (1, len(shape)) in offered  # channels and space together, in another order


def test_a_reduction_over_channels_becomes_rows_along_stored_channels_and_an_instance_norm_columns() -> None:
    shape = (2, 8, 4, 5)
    for (a, b), kind, expected in (((1, 2), "min_with_index", (2 * 4 * 5, 8, 1)),
                                   ((2, 4), "layer_norm", (2, 4 * 5, 8))):
        _, step = _plan(shape, a, b, kind)
        reordered = reduction_channels_last_order(step)
        assert reordered is not None
        assert (reordered.outer, reordered.reduce, reordered.inner) == expected


def test_reduced_dims_leave_out_size_one_dims_and_refuse_sizes_that_split_a_dim() -> None:
    assert reduced_dims((2, 1, 3, 4), 2, 3) == frozenset({2})
    assert reduced_dims((2, 3, 4, 5), 6, 20) == frozenset({2, 3})
    assert reduced_dims((2, 3, 4, 5), 4, 3) is None  # outer 4 is no product of leading dims
    assert reduced_dims((2, 3, 4, 5), 2, 1) == frozenset()


def test_a_reduction_that_drops_its_reduced_dims_keeps_its_positions_in_order_or_is_not_reordered() -> None:
    """A mean over depth of (N, C, D, H, W) without keepdim: channels-last order would enumerate (N, H, W, C),
    which no layout of a (N, C, H, W) output written by the same index holds here, so it stays as it is; over
    channels (positions N, H, W in order) it becomes rows."""
    shape = (2, 3, 4, 5, 6)
    for (a, b), expected in (((2, 3), False), ((1, 2), True)):
        _, step = _plan(shape, a, b, "sum")
        dropped = Dag(tuple(n for d, n in enumerate(shape) if not a <= d < b), step.epilogue.nodes)
        reordered = reduction_channels_last_order(ReductionStep(
            **{**{f: getattr(step, f) for f in step.__slots__}, "epilogue": dropped}))  # type: ignore[arg-type]
        assert (reordered is not None) == expected
        assert reordered is None or not reordered.writes_channels_last
