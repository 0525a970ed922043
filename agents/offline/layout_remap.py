"""Strided views of a buffer re-expressed over the same values stored channels-last.

A Layout addresses its buffer as if the buffer were contiguous in its logical shape (N, C, *spatial). When a
convolution's output stays channels-last (conv_layout.CHANNELS_LAST_KEPT), the same values sit at other offsets:
element (n, c, s...) at n*C*S + s_linear*C + c. `remap_channels_last` gives the layout that reads those values
there, or None where no single strided layout can (a view that flattens channels with a spatial dim, say): the
caller then keeps the contiguous output.

The rule: write the layout's offset and each of its dims in the buffer's digits (the logical coordinates of a
contiguous index). Where no dim's walk carries from one buffer dim into the next, the contiguous index is a sum of
digits times contiguous strides, so replacing those strides by channels-last ones is again a strided layout. A dim
may walk two neighbouring buffer dims as one (a view that merges H and W) only where they are also neighbours, in
that order, channels-last: the spatial dims are, channels and batch are not.
"""

from __future__ import annotations

from math import prod

from kernelwright.agents.offline.ir import Dag, Layout, contiguous_strides, map_loads


def channels_last_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The strides of a 4-D or 5-D tensor of `shape` in channels-last memory (torch.channels_last(_3d))."""
    n, c, *spatial = shape
    spatial_strides = contiguous_strides(tuple(spatial))
    return (c * prod(spatial), 1, *(s * c for s in spatial_strides))


def remap_channels_last(layout: Layout, shape: tuple[int, ...]) -> Layout | None:
    """`layout` (over a buffer contiguous in `shape`) over the same buffer stored channels-last; None where the
    view cannot be one strided layout there (see the module's docstring)."""
    if len(shape) not in (4, 5) or any(s <= 0 for s in shape):
        return None
    if layout.numel == 0:  # reads nothing: any strides do
        return Layout(layout.buffer, layout.shape, (0,) * len(layout.shape), 0)
    old, new = contiguous_strides(shape), channels_last_strides(shape)
    if not 0 <= layout.offset < prod(shape):
        return None
    digits = [(layout.offset // old[d]) % shape[d] for d in range(len(shape))]
    reach = list(digits)  # the largest digit any element of the view reaches, per buffer dim
    strides: list[int] = []
    for size, stride in zip(layout.shape, layout.strides):
        if size == 1 or stride == 0:
            strides.append(0)
            continue
        if stride < 0:
            return None
        mapped = _walk(stride, size, shape, old, new, digits, reach)
        if mapped is None:
            return None
        strides.append(mapped)
    if any(r >= b for r, b in zip(reach, shape)):
        return None  # two dims of the view together carry into the next buffer dim
    offset = sum(d * s for d, s in zip(digits, new))
    return Layout(layout.buffer, layout.shape, tuple(strides), offset)


def _walk(stride: int, size: int, shape: tuple[int, ...], old: tuple[int, ...], new: tuple[int, ...],
          digits: list[int], reach: list[int]) -> int | None:
    """The channels-last stride of one view dim (`size` steps of `stride` in contiguous order), adding its span to
    `reach`; None where it carries across buffer dims that are not neighbours channels-last."""
    # the outermost dim (of more than one element) the step fits in
    d = next((i for i, s in enumerate(old) if s <= stride and shape[i] > 1), None)
    if d is None or stride % old[d]:
        return None
    step = stride // old[d]
    if step * (size - 1) + digits[d] < shape[d]:
        reach[d] += step * (size - 1)
        return step * new[d]
    # It runs past dim d: only as a whole-dim walk (step 1 from digit 0) into the dim outside it, where that dim
    # is d's outer neighbour channels-last too (new[d - 1] == new[d] * shape[d]), and so on outwards.
    walked, inner = size, d
    while True:
        if step != 1 or digits[inner] != 0 or walked % shape[inner] or inner == 0 or \
                new[inner - 1] != new[inner] * shape[inner]:
            return None
        reach[inner] += shape[inner] - 1
        walked //= shape[inner]
        inner -= 1
        if walked - 1 + digits[inner] < shape[inner]:
            reach[inner] += walked - 1
            return new[d]


def channels_last_perm(rank: int) -> tuple[int, ...]:
    """The dims of an (N, C, *spatial) shape in channels-last storage order: (N, *spatial, C)."""
    return (0, *range(2, rank), 1)


def permuted_dag(dag: Dag, perm: tuple[int, ...]) -> Dag:
    """`dag` iterated in the dim order `perm`: its shape and every load's layout permuted alike, so node values
    are the same at each logical coordinate and only the linear iteration order changes."""
    def permuted(layout: Layout) -> Layout:
        return Layout(layout.buffer, tuple(layout.shape[p] for p in perm), tuple(layout.strides[p] for p in perm),
                      layout.offset)

    return map_loads(dag, permuted, tuple(dag.shape[p] for p in perm))
