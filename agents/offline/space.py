"""Tunables of a generated candidate: each step's #define'd constants, as a searchable space.

Parameters are named "<step>.<NAME>" (k3.TPR, k1.VEC); a candidate's source is regenerated
from the plan for each setting, so every point of the space is a complete candidate file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernelwright.agents.offline.codegen_conv import conv_dims
from kernelwright.agents.offline.codegen_gemm import gemm_dims
from kernelwright.agents.offline.codegen_pool import POOL_DEFAULTS
from kernelwright.agents.offline.codegen_recurrent import IMPLS, RECURRENT_DEFAULTS
from kernelwright.agents.offline.codegen_reduce import (
    TWO_PASS_KINDS,
    cluster_size,
    default_cy,
    default_rpb,
    default_split,
    default_tpr,
    normalisation_split,
    vec_offered,
)
from kernelwright.agents.offline.conv_layout import CHANNELS_LAST_KEPT, LAYOUTS, layout_choices, layout_dim
from kernelwright.agents.offline.cuda_common import is_linear
from kernelwright.agents.offline.gemm_split import FP32, default_mode, gemm_kind, mode_choices
from kernelwright.agents.offline.graph_launch import GRAPH_DIM
from kernelwright.agents.offline.ir import (
    SCANS,
    Buffer,
    ConvStep,
    ElementwiseStep,
    GemmStep,
    HostStep,
    Load,
    Plan,
    PoolStep,
    RecurrentStep,
    ReductionStep,
)
from kernelwright.agents.offline.reduce_vectors import VEC_WIDTH

# Tunables whose first choice is "off" and whose next switches a staged code path on (a row scan's STAGE, a long
# reduction's VEC, a CUDA graph of the whole forward where offline_graphs offers launch.GRAPH): the fill tries them
# all at once first (TuneSpace.switched_on). VEC left this list for a session after an H100 measured it slower
# (session 19: fixtures losses and long_rows 2.53x -> 1.35x and 1.36x -> 1.00x over eager), when its write loops
# stored vectors element by element; with scalar write loops it measured faster on both (session 20: 1.38x -> 2.45x
# and 1.38x -> 1.53x), so it is back. A 3-D strided transposed conv's ZI (the zero-inserted fprop in place of the
# strided dgrad) is one too: which of the two is faster has not been measured.
SWITCHES = ("STAGE", "VEC", "GRAPH", "ZI")
# A convolution's LAYOUT whose second choice keeps its output channels-last (offline_channels_last_kept) switches the
# same way: one candidate then keeps every convolution's output channels-last, so a network's convolutions hand
# each other channels-last tensors with no copy between them (conv_layout), as inductor runs a whole network.
_ELEMENT_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


@dataclass(frozen=True, slots=True)
class TuneDim:
    name: str
    choices: tuple[Any, ...]
    default: Any


@dataclass(frozen=True, slots=True)
class TuneSpace:
    dims: tuple[TuneDim, ...]

    def defaults(self) -> dict[str, Any]:
        return {d.name: d.default for d in self.dims}

    def size(self) -> int:
        n = 1
        for d in self.dims:
            n *= len(d.choices)
        return n

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {d.name: rng.choice(d.choices) for d in self.dims}

    def neighbours(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Settings one step away: one dim moved to an adjacent choice, dim by dim (down, then up)."""
        return [moved for d in self.dims for step in (-1, 1) if (moved := _moved(params, d, step)) is not None]

    def neighbours_up_first(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The same settings, every dim moved up a choice first (a choice list puts the likeliest alternative
        to its default next, e.g. GEMM tiles), then every dim moved down."""
        return [moved for step in (1, -1) for d in self.dims if (moved := _moved(params, d, step)) is not None]

    def switched_on(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """`params` with every SWITCHES tunable moved up from its first choice (off) at once, or None where none
        is there to move. One candidate then tries a staged code path in every step that offers it, where moving
        them one at a time would spend a slot per step."""
        moved = dict(params)
        for d in self.dims:
            if _is_switch(d) and params.get(d.name, d.default) == d.choices[0]:
                moved[d.name] = d.choices[1]
        return moved if moved != dict(params) else None

    def to_dict(self) -> dict[str, Any]:
        return {d.name: {"choices": list(d.choices), "default": d.default} for d in self.dims}


def _is_switch(d: TuneDim) -> bool:
    """A SWITCHES tunable, or a LAYOUT whose next choice keeps the output channels-last."""
    return len(d.choices) > 1 and (d.name.rsplit(".", 1)[-1] in SWITCHES or d.choices[1] == CHANNELS_LAST_KEPT)


def _moved(params: Mapping[str, Any], d: TuneDim, step: int) -> dict[str, Any] | None:
    """`params` with dim `d` moved `step` choices from its value (its default where unset or off the list);
    None past either end."""
    current = params.get(d.name, d.default)
    pos = (d.choices.index(current) if current in d.choices else d.choices.index(d.default)) + step
    return {**params, d.name: d.choices[pos]} if 0 <= pos < len(d.choices) else None


def _vec_choices(step: ElementwiseStep, buffers: Mapping[str, Buffer]) -> tuple[int, ...]:
    sizes = [_ELEMENT_BYTES.get(e.dtype, 1) for e in step.dag.nodes if isinstance(e, Load) and is_linear(e.layout)]
    sizes += [_ELEMENT_BYTES.get(buffers[o.buffer].dtype, 1) for o in step.outputs]
    widest = max(sizes, default=4)
    return tuple(v for v in (1, 2, 4, 8) if v * widest <= 16)


def plan_space(plan: Plan) -> TuneSpace:
    dims: list[TuneDim] = []
    for step in plan.steps:
        if isinstance(step, GemmStep):
            dims += [TuneDim(name, choices, default)
                     for name, choices, default in gemm_dims(step, plan.buffers, plan.allow_tf32)]
        elif isinstance(step, ConvStep):
            dims += [TuneDim(name, choices, default)
                     for name, choices, default in conv_dims(step, plan.buffers, plan.allow_tf32)]
        elif isinstance(step, HostStep):
            if kind := gemm_kind(step, plan.buffers):
                dims.append(TuneDim(f"{step.name}.GEMM", mode_choices(plan.allow_tf32, kind),
                                    default_mode(step, kind, plan.buffers, allow_tf32=plan.allow_tf32)))
            if layout := layout_dim(step, plan.buffers):
                dims.append(TuneDim(layout, layout_choices(plan, step), LAYOUTS[0]))
        elif isinstance(step, ElementwiseStep):
            vecs = _vec_choices(step, plan.buffers)
            dims += [TuneDim(f"{step.name}.BLOCK", (128, 256, 512, 1024), 256),
                     TuneDim(f"{step.name}.VEC", vecs, max(vecs)),
                     TuneDim(f"{step.name}.BPS", (2, 4, 8, 16, 32), 8)]
        elif isinstance(step, ReductionStep):
            if vec_offered(step):  # first of the step's, off (a switch: the fill tries it with the other staged paths)
                dims.append(TuneDim(f"{step.name}.VEC", (1, VEC_WIDTH), 1))
            if step.reduction in SCANS:
                if step.inner == 1:  # STAGE first: the fill's first neighbour (off until KernelBench's scans measure it)
                    dims += [TuneDim(f"{step.name}.STAGE", (0, 1), 0),
                             TuneDim(f"{step.name}.TPR", (128, 256, 512, 1024), 256),
                             TuneDim(f"{step.name}.ITEMS", (4, 8, 16), 8)]
            elif step.inner != 1:
                dims.append(TuneDim(f"{step.name}.CY", (1, 2, 4, 8, 16, 32), default_cy(step)))
            elif default_split(step):
                base = default_split(step)
                choices = tuple(sorted({max(2, base // 4), max(2, base // 2), base, base * 2}))
                dims.append(TuneDim(f"{step.name}.SPLIT", choices, base))
            else:
                limit = max(32, 1 << max(0, (step.reduce - 1).bit_length()))
                tprs = tuple(t for t in (32, 64, 128, 256, 512, 1024) if t <= limit) or (32,)
                dims.append(TuneDim(f"{step.name}.TPR", tprs, min(default_tpr(step.reduce), tprs[-1])))
                dims.append(TuneDim(f"{step.name}.RPB", (1, 2, 4, 8), default_rpb(step.reduce)))
                if cluster := cluster_size(step):
                    dims.append(TuneDim(f"{step.name}.CLUSTER", (0, cluster), 0))
                if split := normalisation_split(step):
                    dims.append(TuneDim(f"{step.name}.SPLIT", (0, split), 0))
                if step.is_normalisation:
                    dims.append(TuneDim(f"{step.name}.CACHE", (1, 0), 1))
                    if step.reduction in TWO_PASS_KINDS:
                        dims.append(TuneDim(f"{step.name}.TWOPASS", (1, 0), 1))
        elif isinstance(step, PoolStep):
            dims += [TuneDim(f"{step.name}.BLOCK", (64, 128, 256, 512), POOL_DEFAULTS["BLOCK"]),
                     TuneDim(f"{step.name}.OPT", (1, 2, 4), POOL_DEFAULTS["OPT"])]
        elif isinstance(step, RecurrentStep):
            dims += [TuneDim(f"{step.name}.IMPL", IMPLS, RECURRENT_DEFAULTS["IMPL"]),
                     TuneDim(f"{step.name}.THREADS", (128, 256, 512), RECURRENT_DEFAULTS["THREADS"])]
    if plan.graph_launch:  # last: the steps' dims keep their order, and so the fill its neighbours
        dims.append(TuneDim(GRAPH_DIM, (0, 1), 0))
    return TuneSpace(tuple(dims))


def params_by_step(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The tunables of each step, keyed by step name, without the "<step>." prefix (step names have no dot:
    <prefix>k<n>, <prefix>h<n>)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        step, dot, name = key.partition(".")
        if dot:
            out.setdefault(step, {})[name] = value
    return out


def conservative(space: TuneSpace) -> dict[str, Any]:
    """The simplest code paths: scalar loads, no register caching (so one-pass accumulators), block-per-row
    reductions, one output a thread, plain GEMMs."""
    out = space.defaults()
    for d in space.dims:
        if d.name.endswith((".VEC", ".OPT")):
            out[d.name] = 1
        elif d.name.endswith((".CACHE", ".TWOPASS")):
            out[d.name] = 0
        elif d.name.endswith(".GEMM"):
            out[d.name] = FP32  # the library's own fp32 GEMM
    return out
