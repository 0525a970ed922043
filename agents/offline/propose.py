"""propose(): problem file -> generated candidates (raw-form CUDA + ModelNew), deterministically.

Variants, so that selection can keep the fastest verified one and never lose to eager:
- fused: every supported elementwise chain, reduction, normalisation and pool is a custom kernel;
- fused_scalar: the same plan with the simplest code paths (no vector loads, no register caching);
- aten_reductions: reductions stay ATen (cuDNN/ATen softmax, norms, sums), only elementwise
  chains (the epilogues after library ops included) and pools are fused kernels;
- fused_channels_last (only when asked for, see CHANNELS_LAST_VARIANT): fused, with its library convolutions run
  channels-last (conv_layout), where it has any.
A variant that writes the same code as an earlier one (tools.source_hash.candidate_id: the header docstring naming the
variant does not count) is left out, so the run's first generation measures distinct kernels.

A pure matrix-multiplication problem (gemm_plan) gets a plan whose GEMMs are kernels of the candidate's own
(codegen_gemm: CUTLASS tensor cores, or a matrix-vector kernel); it has one variant (fused_scalar is the same).
With `preview=True` (RunSettings.offline_preview, on by default since it passed on an H100), a problem whose only work
is one convolution (conv_plan) likewise gets its own CUTLASS implicit-GEMM kernel (codegen_conv), and 3-D pools
and depthwise convolutions (depthwise.py) become pool kernels (codegen_pool) wherever they are.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.agents.context import RunSettings
from kernelwright.agents.offline.codegen_conv import conv_kernel
from kernelwright.agents.offline.codegen_elementwise import StepKernel, elementwise_kernel
from kernelwright.agents.offline.codegen_gemm import gemm_kernel
from kernelwright.agents.offline.codegen_host import HostEmitError, candidate_source
from kernelwright.agents.offline.codegen_pool import pool_kernel
from kernelwright.agents.offline.codegen_recurrent import recurrent_kernel
from kernelwright.agents.offline.codegen_reduce import reduction_kernel
from kernelwright.agents.offline.conv_layout import CHANNELS_LAST, conv_layouts, layout_dims, with_kept_layouts
from kernelwright.agents.offline.conv_plan import conv_plan, pointwise_as_matmul
from kernelwright.agents.offline.cuda_common import PRELUDE
from kernelwright.agents.offline.gemm_plan import gemm_plan
from kernelwright.agents.offline.gemm_split import SPLIT_CUDA, gemm_modes, uses_split
from kernelwright.agents.offline.graph_launch import GRAPH_DIM, graph_offered
from kernelwright.agents.offline.ir import (
    ConvStep,
    ElementwiseStep,
    GemmStep,
    Plan,
    PoolStep,
    RecurrentStep,
    ReductionStep,
    describe,
)
from kernelwright.agents.offline.planner import PlanningError, build_plan
from kernelwright.agents.offline.space import TuneSpace, conservative, params_by_step, plan_space
from kernelwright.agents.offline.trace import TracedProblem, TraceFailure, n_variants, trace_problem
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.source_hash import candidate_id

log = structlog.get_logger(__name__)

VARIANTS = ("fused", "fused_scalar", "aten_reductions")  # what a run's first generation measures
# Asked for by name only: on an H100 (session 14) it lost to `fused` on all nine level-2 convolution problems it
# was measured on (1.3-2.2x slower: the layout moves cost more than cuDNN gains), and each extra candidate costs a
# problem seconds. The <step>.LAYOUT tunable stays in the tune space, so the tuner can still try it.
CHANNELS_LAST_VARIANT = "fused_channels_last"


class OfflineUnsupported(KernelwrightError):
    """The offline translator produced no candidate: which ops, and why."""

    kind = "offline_unsupported"

    def __init__(self, message: str, *, ops: tuple[str, ...] = (), where: str | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message, where=where, details={"ops": list(ops), **(details or {})})
        self.ops = ops


@dataclass(frozen=True)
class GeneratedCandidate:
    problem: str
    variant: str
    source: str
    params: dict[str, Any]
    space: TuneSpace
    kept_aten_ops: tuple[str, ...]
    notes: tuple[str, ...] = ()
    plan_summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem, "variant": self.variant, "params": dict(self.params),
                "space": self.space.to_dict(), "kept_aten_ops": list(self.kept_aten_ops), "notes": list(self.notes),
                "plan": self.plan_summary}

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.source)
        return path


def kernels_for(plan: Plan, params: Mapping[str, Any]) -> list[StepKernel]:
    per_step = params_by_step(params)  # one pass: a lookup per step was quadratic in the plan's size
    out = []
    for step in plan.steps:
        if isinstance(step, GemmStep):
            out.append(gemm_kernel(step, plan.buffers, per_step.get(step.name, {}), plan.allow_tf32))
        elif isinstance(step, ConvStep):
            out.append(conv_kernel(step, plan.buffers, per_step.get(step.name, {}), plan.allow_tf32))
        elif isinstance(step, ElementwiseStep):
            out.append(elementwise_kernel(step, plan.buffers, per_step.get(step.name, {})))
        elif isinstance(step, ReductionStep):
            out.append(reduction_kernel(step, plan.buffers, per_step.get(step.name, {})))
        elif isinstance(step, PoolStep):
            out.append(pool_kernel(step, plan.buffers, per_step.get(step.name, {})))
        elif isinstance(step, RecurrentStep) and (kernel := recurrent_kernel(step, per_step.get(step.name, {}))):
            out.append(kernel)
    return out


def render(traced: Sequence[TracedProblem], plans: Sequence[Plan], params: Mapping[str, Any], variant: str) -> str:
    """The candidate file: the first plan (get_inputs' shapes) takes `params`; other shapes use defaults."""
    plans = [with_kept_layouts(plan, params) if i == 0 else plan for i, plan in enumerate(plans)]
    shapes = [(plan, kernels_for(plan, params if i == 0 else {})) for i, plan in enumerate(plans)]
    modes = [gemm_modes(plan, params if i == 0 else {}) | conv_layouts(plan, params if i == 0 else {})
             for i, plan in enumerate(plans)]
    # GEMM kernels of one configuration have one source, whichever shapes and steps use them: written once
    cuda = PRELUDE + "".join(dict.fromkeys(k.source for _, kernels in shapes for k in kernels))
    if uses_split(modes):
        cuda += SPLIT_CUDA
    main = plans[0]
    kept = ", ".join(main.kept_aten_ops) or "none"
    header = (f'"""Generated by kernelwright\'s offline translator from {traced[0].path.name} (variant: {variant}).\n\n'
              f"Custom kernels: {len(shapes[0][1])}"
              + (f" (and {len(plans) - 1} more input shape(s))" if len(plans) > 1 else "")
              + f"; ATen ops kept on the host: {kept}.\n"
              f"Tunables: {', '.join(f'{k}={v}' for k, v in sorted(params.items())) or 'defaults'}.\n\"\"\"")
    constants: dict[str, Any] = {}
    for t in traced:
        constants.update(dict(t.program.constants))
    return candidate_source(shapes, problem_source=traced[0].source.text, forward_params=traced[0].forward_params,
                            constants=constants, header=header, cuda_source=cuda, gemm_modes=modes,
                            graph=bool(params.get(GRAPH_DIM)))


def plans_for(traced: Sequence[TracedProblem], *, preview: bool = RunSettings.offline_preview,
              allow_tf32: bool = False, graphs: bool = RunSettings.offline_graphs,
              kept_layouts: bool = RunSettings.offline_channels_last_kept) -> dict[str, list[Plan]]:
    """Per variant, one plan per traced input shape (aten_reductions only when it differs from fused).
    `preview` (RunSettings.offline_preview): a pure convolution problem gets its own implicit-GEMM kernel (a
    pointwise one a GEMM: conv_plan.pointwise_as_matmul), and 3-D pools and depthwise convolutions get pool kernels
    (codegen_pool). `allow_tf32` (the run's PrecisionProfile.allows_tf32): every plan admits plain TF32 for its fp32
    GEMMs (Plan.allow_tf32). `graphs` (RunSettings.offline_graphs): plans a CUDA graph can replay get the tunable
    launch.GRAPH (Plan.graph_launch, graph_launch.graph_offered). `kept_layouts`
    (RunSettings.offline_channels_last_kept): a convolution's LAYOUT may keep its output channels-last
    (Plan.channels_last_kept, conv_layout.kept_plan)."""
    fused = [build_plan(t.program, prefix=_prefix(i), attributes=frozenset(t.attributes), preview=preview)
             for i, t in enumerate(traced)]
    # a pure matrix-multiplication problem (with `preview`, pointwise convolutions count as matmuls): GEMMs of the
    # candidate's own
    gemms = [gemm_plan(pointwise_as_matmul(p) if preview else p) for p in fused]
    convs = [conv_plan(p) for p in fused] if preview else []  # a pure convolution problem, when asked for
    if all(g is not None for g in gemms):
        fused = [g for g in gemms if g is not None]
    elif convs and all(c is not None for c in convs):
        fused = [c for c in convs if c is not None]
    plans = {"fused": fused}
    if any(isinstance(s, ReductionStep) for p in fused for s in p.steps):
        plans["aten_reductions"] = [build_plan(t.program, fuse_reductions=False, prefix=_prefix(i),
                                               attributes=frozenset(t.attributes), preview=preview)
                                    for i, t in enumerate(traced)]
    if allow_tf32:
        plans = {variant: [replace(p, allow_tf32=True) for p in shape_plans] for variant, shape_plans in plans.items()}
    if graphs:
        plans = {variant: [replace(p, graph_launch=graph_offered(p)) for p in shape_plans]
                 for variant, shape_plans in plans.items()}
    if kept_layouts:
        plans = {variant: [replace(p, channels_last_kept=True) for p in shape_plans]
                 for variant, shape_plans in plans.items()}
    return plans


@dataclass(frozen=True)
class TuningTarget:
    """What tuning a verified variant searches: its plans (one per input shape), their tunables, and the
    variant name the tuned candidates get."""

    traced: Sequence[TracedProblem]
    plans: list[Plan]
    space: TuneSpace
    variant: str

    def render(self, params: Mapping[str, Any]) -> str:
        return render(self.traced, self.plans, params, self.variant)


def tuning_target(traced: Sequence[TracedProblem], best_variant: str, *, preview: bool = RunSettings.offline_preview,
                  allow_tf32: bool = False, graphs: bool = RunSettings.offline_graphs,
                  kept_layouts: bool = RunSettings.offline_channels_last_kept) -> TuningTarget | None:
    """The plan behind `best_variant` (aten_reductions, tuned or not, keeps its ATen reductions; everything
    else tunes the fused plan), or None when that plan does not exist for this problem. `preview`, `allow_tf32`,
    `graphs`, `kept_layouts`: as plans_for takes them."""
    plan_key = "aten_reductions" if best_variant.startswith("aten_reductions") else "fused"
    plans = plans_for(traced, preview=preview, allow_tf32=allow_tf32, graphs=graphs,
                      kept_layouts=kept_layouts).get(plan_key)
    if not plans:
        return None
    return TuningTarget(traced, plans, plan_space(plans[0]), f"{plan_key}_tuned")


def _prefix(shape_index: int) -> str:
    return "" if shape_index == 0 else f"s{shape_index}"


def trace_all(problem_path: str | Path, *, lazy_weights: bool | None = None) -> list[TracedProblem]:
    """get_inputs() and every get_input_variants() entry (a candidate must serve all the harness calls)."""
    first = trace_problem(problem_path, lazy_weights=lazy_weights)
    return [first] + [trace_problem(problem_path, variant=v, lazy_weights=lazy_weights)
                      for v in range(n_variants(first.module))]


def propose(problem_path: str | Path, form: Any = None, params: Mapping[str, Any] | None = None, *,
            variants: tuple[str, ...] = VARIANTS, traced: Sequence[TracedProblem] | None = None,
            lazy_weights: bool | None = None, preview: bool = RunSettings.offline_preview,
            allow_tf32: bool = False) -> list[GeneratedCandidate]:
    """Candidates for the problem, one per variant that has a custom kernel; OfflineUnsupported when none.
    `lazy_weights`: trace a Model built without initialising its weights (the same candidate, for a Model
    too large to build in memory; None: decided by its size, see trace_problem). `preview`: the kernel
    families behind RunSettings.offline_preview too (on by default; plans_for says which; off: as before).
    `allow_tf32`: the run's precision profile admits plain TF32 (PrecisionProfile.allows_tf32): fp32 GEMMs and
    convolutions default to it (gemm_split); off, the candidates are those of the strict profile.

    `form` (tools.problem.functional.FunctionalForm) is accepted for the caller's convenience: when it says the
    problem could not be traced, that reason is carried into the report. `params` override tunables of the
    fused variant (names from its TuneSpace)."""
    where = str(problem_path)
    try:
        traced = list(traced or trace_all(problem_path, lazy_weights=lazy_weights))
    except TraceFailure as exc:
        reason = exc.message + (f" (functional form: {form.fallback_reason})" if getattr(form, "fallback_reason", None) else "")
        raise OfflineUnsupported(reason, where=where) from None
    try:
        plans = plans_for(traced, preview=preview, allow_tf32=allow_tf32)
    except PlanningError as exc:
        raise OfflineUnsupported(f"cannot plan: {exc}", where=where) from None
    except Exception as exc:  # a translator bug must not stop the run: report it with its traceback
        raise OfflineUnsupported(f"internal error while planning: {type(exc).__name__}: {exc}", where=where,
                                 details={"traceback": traceback.format_exc()[-4000:]}) from None
    out: list[GeneratedCandidate] = []
    seen: set[str] = set()
    problems: list[str] = []
    for variant in variants:
        shape_plans = plans.get("aten_reductions" if variant == "aten_reductions" else "fused")
        if shape_plans is None or not all(p.custom_steps for p in shape_plans):
            continue
        plan = shape_plans[0]
        if variant == "fused_scalar" and all(isinstance(s, (GemmStep, ConvStep)) for p in shape_plans for s in p.custom_steps):
            continue  # a GEMM or conv kernel has no simpler code path: the same kernel under another name
        space = plan_space(plan)
        if variant == CHANNELS_LAST_VARIANT and not layout_dims(plan):
            continue  # no convolution whose layout could change: the fused candidate again
        chosen = {**space.defaults(), **(params or {})} if variant == "fused" else (
            conservative(space) if variant == "fused_scalar" else space.defaults())
        if variant == CHANNELS_LAST_VARIANT:
            chosen |= {name: CHANNELS_LAST for name in layout_dims(plan)}
        try:
            source = render(traced, shape_plans, chosen, variant)
        except HostEmitError as exc:
            problems.append(f"{variant}: {exc}")
            continue
        except Exception as exc:
            problems.append(f"{variant}: internal error: {type(exc).__name__}: {exc}")
            log.warning("offline_render_failed", problem=where, variant=variant, error=str(exc))
            continue
        if (cid := candidate_id(source)) in seen:
            continue  # the same code as an earlier variant's (e.g. fused_scalar where nothing has a vector path)
        seen.add(cid)
        out.append(GeneratedCandidate(where, variant, source, chosen, space, plan.kept_aten_ops, plan.notes,
                                      plan.summary()))
    if not out:
        plan = plans["fused"][0]
        if not plan.custom_steps:
            ops = tuple(s.target for s in plan.steps if s.kind == "host")
            raise OfflineUnsupported("nothing to generate: every op is a library call or kept ATen op, so a candidate "
                                     "would launch no kernel of its own", ops=ops, where=where,
                                     details={"plan": describe(plan)})
        raise OfflineUnsupported("; ".join(problems) or "no variant could be written", where=where)
    return out


def render_params(traced: Sequence[TracedProblem], plans: Sequence[Plan], params: Mapping[str, Any],
                  variant: str = "tuned") -> str:
    """One source for a given setting (the tuner's inner call)."""
    return render(traced, plans, params, variant)
