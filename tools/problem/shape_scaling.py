"""An unseen input size for a problem whose get_inputs() scales with a module-level constant.

Why: a candidate that is right only on the sizes the harness happens to use (sizes hard-coded, or a
branch on the evaluation's shapes) passes every trial at those sizes. KernelBench problems size their
inputs with module constants (`batch_size = 16`, often through derived ones such as
`input_shape = (batch_size, 3, 224, 224)`), so re-running the problem file with one constant changed
gives the same problem at another size; the candidate must be right there too.

A constant qualifies when it is a plain int assigned at the top of the file, the Model class's code does
not read it, get_init_inputs() (the model's construction) does not change with it, and get_inputs() then
returns tensors of the same ranks with other shapes. Names with "batch" in them are tried first; the new
value is half the old. The re-run module is used for its get_inputs() only: the reference Model and the
candidate's ModelNew stay the ones built from the original files.
"""

from __future__ import annotations

import ast
import hashlib
import types
from collections.abc import Sequence
from typing import Any

import torch

from kernelwright.tools.problem.inputs import input_shapes

Overrides = Sequence[tuple[str, int]]


def rescaled_module(source: str, filename: str, overrides: Overrides) -> types.ModuleType:
    """The problem file executed again with its top-level `NAME = <int>` assignments set to new values."""
    tree = ast.parse(source, filename=filename)
    wanted = dict(overrides)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in wanted):
            node.value = ast.copy_location(ast.Constant(wanted[node.targets[0].id]), node.value)
    tag = hashlib.sha256(repr(sorted(wanted.items())).encode()).hexdigest()[:8]
    module = types.ModuleType(f"kw_problem_rescaled_{tag}")
    module.__file__ = filename
    exec(compile(tree, filename, "exec"), module.__dict__)  # noqa: S102 - the problem file, as the worker imports it
    return module


def scaled_override(source: str, filename: str, module: types.ModuleType) -> tuple[str, int] | None:
    """(name, new value) of a constant that changes the problem's input size, or None when none does."""
    if callable(getattr(module, "get_input_variants", None)):
        return None  # the problem declares its other shapes itself
    try:
        tree = ast.parse(source)
        base_shapes = input_shapes(module.get_inputs)
        base_init = _describe(module.get_init_inputs())
    except Exception:  # noqa: BLE001 - inputs that cannot be described: no scaled trial
        return None
    read_by_model = {n.id for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name == "Model"
                     for n in ast.walk(cls) if isinstance(n, ast.Name)}  # docstrings that say "batch_size" do not count
    assigned = [node.targets[0].id for node in tree.body
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)]
    names = [n for n in dict.fromkeys(assigned)
             if type(getattr(module, n, None)) is int and getattr(module, n) >= 2 and n not in read_by_model]
    names.sort(key=lambda n: "batch" not in n.lower())
    for name in names:
        new = getattr(module, name) // 2
        try:
            other = rescaled_module(source, filename, [(name, new)])
            if _describe(other.get_init_inputs()) != base_init:
                continue
            shapes = input_shapes(other.get_inputs)
        except Exception:  # noqa: BLE001 - this constant cannot change alone
            continue
        if _same_ranks_other_sizes(base_shapes, shapes):
            return name, new
    return None


def _same_ranks_other_sizes(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> bool:
    if len(base) != len(other):
        return False
    changed = False
    for a, b in zip(base, other):
        if a["type"] != b["type"]:
            return False
        if a["type"] == "tensor":
            if len(a["shape"]) != len(b["shape"]) or a["dtype"] != b["dtype"]:
                return False
            changed = changed or a["shape"] != b["shape"]
        elif a != b:
            return False
    return changed


def _describe(value: Any) -> Any:
    """A comparable description of get_init_inputs() (tensors by dtype and shape)."""
    if isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype), tuple(value.shape))
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _describe(v)) for k, v in value.items()))
    return repr(value)
