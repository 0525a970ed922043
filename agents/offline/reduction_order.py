"""A reduction over a channels-last input, iterated in that input's storage order.

A reduction's threads walk its prologue's logical shape: the linear index (o * reduce + r) * inner + i. Over a
convolution output kept channels-last (conv_layout.CHANNELS_LAST_KEPT) that order strides by the channel count:
a min over channels (level2/32) reads every element from another sector, an instance norm's rows over H x W
(level2/17) step C elements at a time. Iterating the shape as (N, *spatial, C) instead, with outer, reduce and
inner derived again, walks the storage in order: the min over channels becomes rows along stored channels, the
instance norm's sums columns over neighbouring channels.

That order is taken only where it leaves the reduction's meaning alone:
- the reduced dims still form one block (size-1 dims aside), so outer/reduce/inner exist;
- a reduction whose result depends on the order inside that block (an arg-min's index, a scan) keeps that order;
- a reduction with one value per output position enumerates those positions in their old order, so its outputs
  and epilogue stay as they were; a normalisation (one value per input element) writes its outputs at the new
  linear index, which is their channels-last storage (ReductionStep.writes_channels_last), and its epilogue is
  permuted alike.
"""

from __future__ import annotations

from dataclasses import replace
from math import prod

from kernelwright.agents.offline.ir import SCANS, ReductionStep
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
    if not step.is_normalisation and positions != sorted(positions):
        return None  # its output positions would come in another order
    if step.is_normalisation and step.epilogue.shape != shape:
        return None
    outer = prod(shape[d] for d in order[:first])
    inner = prod(shape[d] for d in order[first + len(block):])
    moved = replace(step, outer=outer, inner=inner, prologue=permuted_dag(step.prologue, perm))
    if step.is_normalisation:
        return replace(moved, epilogue=permuted_dag(step.epilogue, perm), writes_channels_last=True)
    return moved
