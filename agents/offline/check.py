"""CPU check of a translation: run each plan with the torch interpreter and compare to the problem's Model.

Sizes are scaled down (module-level size globals) so a whole suite runs on a CI CPU in seconds; the plan
logic (grouping, layouts, broadcasting, dims, formulas) is the same at every size.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kernelwright.agents.context import RunSettings
from kernelwright.agents.offline.interp import interpret
from kernelwright.agents.offline.ir import Plan
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.trace import TracedProblem, trace_problem
from kernelwright.tools.problem.files import read_source
from kernelwright.tools.verify.compare import compare_output, tolerance_for

BATCH_NAMES = {"batch", "batch_size", "tokens", "rows", "m", "b", "n_batch", "num_tokens"}


@dataclass
class PlanCheck:
    problem: str
    overrides: dict[str, Any]
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> per-output comparisons
    kept_aten_ops: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(all(c["passed"] for c in cs) for cs in self.results.values())

    def failures(self) -> list[str]:
        return [f"{v}: {c['message']}" for v, cs in self.results.items() for c in cs if not c["passed"]]


def size_globals(source: str) -> dict[str, int]:
    """Module-level int constants (`rows, cols = 4096, 8192` or `dim = 64`)."""
    out: dict[str, int] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs: list[tuple[ast.expr, ast.expr]] = []
        if isinstance(target, ast.Name):
            pairs = [(target, value)]
        elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            pairs = list(zip(target.elts, value.elts))
        for t, v in pairs:
            if isinstance(t, ast.Name) and isinstance(v, ast.Constant) and type(v.value) is int:
                out[t.id] = v.value
    return out


def small_overrides(source: str, *, batch: int = 4, floor: int = 64, divisor: int = 16) -> dict[str, Any]:
    """Smaller sizes: batch-like names to `batch`, other sizes >= `floor` divided (never below `floor`)."""
    out: dict[str, Any] = {}
    for name, value in size_globals(source).items():
        if name.lower() in BATCH_NAMES and value > batch:
            out[name] = batch
        elif value > floor:
            out[name] = max(floor, value // divisor)
    return out


def check_traced(traced: TracedProblem, plans: dict[str, Plan], overrides: dict[str, Any]) -> PlanCheck:
    check = PlanCheck(str(traced.path), overrides)
    with torch.no_grad():
        ref = traced.model(*traced.inputs)
    refs = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    for variant, plan in plans.items():
        outs = interpret(plan, traced.model, traced.inputs, dict(traced.program.constants))
        comparisons = []
        for i, (o, r) in enumerate(zip(outs, refs)):
            comparisons.append(compare_output(i, o.detach().contiguous(), r.detach().contiguous(),
                                              tolerance_for(r.dtype)).to_dict())
        if len(outs) != len(refs):
            comparisons.append({"passed": False, "message": f"{len(outs)} outputs, reference has {len(refs)}"})
        check.results[variant] = comparisons
        check.kept_aten_ops[variant] = list(plan.kept_aten_ops)
    return check


def check_problem(path: str | Path, *, scale: bool = True, variant: int = -1,
                  preview: bool = RunSettings.offline_preview) -> PlanCheck:
    """Trace (scaled down unless `scale` is False), plan both ways, interpret, compare with Model. `preview`:
    plan as RunSettings.offline_preview does (3-D pools, depthwise convs)."""
    overrides = small_overrides(read_source(path, "problem")) if scale else {}
    traced = trace_problem(path, overrides=overrides, variant=variant)
    attributes = frozenset(traced.attributes)
    plans = {"fused": build_plan(traced.program, attributes=attributes, preview=preview),
             "aten_reductions": build_plan(traced.program, fuse_reductions=False, attributes=attributes,
                                           preview=preview)}
    return check_traced(traced, plans, overrides)
