"""Python source text for the argument values of traced ATen calls (lists, tuples, dtypes, numbers...).

Two writers need it: the functional form's generated source and the offline translator's host code.
They differ only at some leaves (an FX node's name, a layout expression, how a device is spelled), which
each passes as `leaf`; everything else is written here once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

Leaf = Callable[[Any], "str | None"]  # the caller's text for a value, or None: the common rules apply


def python_literal(value: Any, leaf: Leaf | None = None, fallback: Callable[[Any], str] = repr) -> str:
    """Source text that evaluates to `value` in a module that imported torch; `fallback` writes (or
    refuses, by raising) a value none of the rules covers."""
    if leaf is not None and (text := leaf(value)) is not None:
        return text
    if isinstance(value, (list, tuple)):
        inner = ", ".join(python_literal(v, leaf, fallback) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, (torch.dtype, torch.memory_format, torch.layout)):
        return str(value)  # torch.float32, torch.contiguous_format, torch.strided
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return f"float({str(value)!r})"  # repr would write a bare inf / nan, which is no Python literal
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return fallback(value)
