"""Views as layouts: replay a view op on a meta tensor with the source layout's strides.

torch itself decides the result's shape, strides and offset (or that no view
exists, e.g. `view` of a transposed tensor), so the plan's layouts are exactly
what eager PyTorch would produce.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelwright.agents.offline.ir import Buffer, Layout
from kernelwright.agents.offline.ops import TORCH_DTYPE

VIEW_OPS = {"view", "_unsafe_view", "reshape", "unsqueeze", "squeeze", "permute", "transpose", "t", "expand",
            "select", "slice", "narrow", "split", "split_with_sizes", "chunk", "unbind", "unflatten", "flatten",
            "expand_as", "view_as", "movedim", "swapaxes", "diagonal", "numpy_T", "mT", "unfold"}


def view_layouts(target: Any, layout: Layout, buffer: Buffer, args: tuple, kwargs: dict) -> Layout | list[Layout] | None:
    """The layout(s) `target(view of layout, *args)` gives, or None when it would have to copy."""
    root = torch.empty(max(buffer.numel, 1), dtype=TORCH_DTYPE[buffer.dtype], device="meta")
    src = root.as_strided(layout.shape, layout.strides, layout.offset)
    try:
        out = target(src, *(_meta(a) for a in args), **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return None
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    result = []
    for t in outs:
        if t is not src and t._base is None:
            return None  # reshape copied: not a view of this buffer
        result.append(Layout(layout.buffer, tuple(t.shape), tuple(t.stride()), int(t.storage_offset())))
    return result if isinstance(out, (list, tuple)) else result[0]


def _meta(a: Any) -> Any:
    if isinstance(a, Layout):
        raise TypeError("a tensor argument to a view op")
    return a
