"""Steps over channels-last inputs, iterated in those inputs' storage order.

A convolution output kept channels-last (conv_layout.CHANNELS_LAST_KEPT) holds element (n, c, s...) at
n*C*S + s_linear*C + c. A kernel whose threads walk the logical (N, C, *spatial) order reads it C elements apart.
Each function here gives the step iterating (N, *spatial, C) instead, so neighbouring threads read neighbouring
channels:
- an elementwise step, whose outputs are then written in that order: their channels-last storage
  (ElementwiseStep.writes_channels_last);
- a pool, one thread per output in (N, *out spatial, C) order, writing its outputs channels-last the same way
  (PoolStep.writes_channels_last);
- a reduction (its threads walk the linear index (o * reduce + r) * inner + i), with outer, reduce and inner
  derived again: a min over channels (level2/32) becomes rows along stored channels, an instance norm's rows over
  H x W (level2/17) columns over neighbouring channels.

A reduction takes that order only where it leaves the meaning alone:
- the reduced dims still form one block (size-1 dims aside), so outer/reduce/inner exist;
- a reduction whose result depends on the order inside that block (an arg-min's index, a scan) keeps that order;
- a reduction with one value per output position enumerates those positions in their old order, so its outputs
  and epilogue stay as they were; a normalisation (one value per input element) writes its outputs at the new
  linear index, which is their channels-last storage (ReductionStep.writes_channels_last), and its epilogue is
  permuted alike. So does a reduction whose positions come in another order (a mean over depth, level2/13) where
  its output keeps the reduced dims (size 1): the new order of its positions is that output's channels-last
  storage.
"""

from __future__ import annotations

from dataclasses import replace
from math import prod

from kernelwright.agents.offline.ir import SCANS, ElementwiseStep, PoolStep, ReductionStep
from kernelwright.agents.offline.layout_remap import channels_last_perm, permuted_dag

# Reductions whose result depends on the order of the reduced elements (an index into them, a prefix).
ORDER_SENSITIVE = frozenset({"argmax", "argmin", "max_with_index", "min_with_index", *SCANS})


def reduced_dims(shape: tuple[int, ...], outer: int, reduce: int) -> frozenset[int] | None:
    """The dims of `shape` (size-1 dims left out) that make up `reduce` after `outer`; None where outer and reduce
    are not products of whole dims."""
    dims = [d for d in range(len(shape)) if shape[d] > 1]
    size, start = 1, 0
    while size < outer and start < len(dims):
        size *= shape[dims[start]]
        start += 1
    if size != outer:
        return None
    size, stop = 1, start
    while size < reduce and stop < len(dims):
        size *= shape[dims[stop]]
        stop += 1
    return frozenset(dims[start:stop]) if size == reduce else None


def reduction_channels_last_order(step: ReductionStep) -> ReductionStep | None:
    """`step` iterating its 4-D or 5-D prologue in channels-last order (see the module's docstring); None where
    that order would change what it computes, or nothing is reduced."""
    shape = step.prologue.shape
    if len(shape) not in (4, 5) or step.writes_channels_last:
        return None
    reduced = reduced_dims(shape, step.outer, step.reduce)
    if not reduced:
        return None
    perm = channels_last_perm(len(shape))
    order = [d for d in perm if shape[d] > 1]
    flags = [d in reduced for d in order]
    first = flags.index(True)
    block = order[first:first + len(reduced)]
    if set(block) != reduced:
        return None  # the reduced dims are not one block in channels-last order
    if step.reduction in ORDER_SENSITIVE and block != sorted(block):
        return None
    positions = [d for d in order if d not in reduced]
    # one output per input element, or per position with the reduced dims kept (size 1): writable channels-last
    whole = step.epilogue.shape == shape if step.is_normalisation \
        else step.epilogue.shape == tuple(1 if d in reduced else n for d, n in enumerate(shape))
    if step.is_normalisation and not whole:
        return None
    in_order = positions == sorted(positions)
    if not step.is_normalisation and not in_order and not whole:
        return None  # its output positions would come in another order, and no layout of the output holds them
    outer = prod(shape[d] for d in order[:first])
    inner = prod(shape[d] for d in order[first + len(block):])
    moved = replace(step, outer=outer, inner=inner, prologue=permuted_dag(step.prologue, perm))
    if step.is_normalisation or not in_order:
        return replace(moved, epilogue=permuted_dag(step.epilogue, perm), writes_channels_last=True)
    return moved


def elementwise_channels_last_order(step: ElementwiseStep) -> ElementwiseStep:
    """`step` iterating its (N, C, *spatial) shape as (N, *spatial, C): every load's layout permuted the same way,
    so each output, written at the iteration's linear index, is that buffer's channels-last storage."""
    return replace(step, dag=permuted_dag(step.dag, channels_last_perm(len(step.dag.shape))),
                   writes_channels_last=True)


def pool_channels_last_order(step: PoolStep) -> PoolStep | None:
    """`step` with one thread per output in (N, *spatial, C) order and its epilogue permuted alike, so it reads
    neighbouring channels together and writes its outputs channels-last; None for a pool that is not over the
    spatial dims of an (N, C, *spatial) input (a depthwise one, a 1-D one) or already so."""
    w, shape = step.window, step.prologue.shape
    if step.writes_channels_last or step.weight is not None or w.multiplier != 1 or len(shape) not in (4, 5) \
            or w.spatial_dims != len(shape) - 2 or w.planes != shape[0] * shape[1] \
            or step.epilogue.shape != (shape[0], shape[1], *w.out_size):
        return None
    return replace(step, epilogue=permuted_dag(step.epilogue, channels_last_perm(len(shape))),
                   writes_channels_last=True)
