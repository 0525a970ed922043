"""Memory layout of a library convolution: PyTorch's contiguous (channels-first) tensors, or channels-last.

cuDNN's tensor-core convolutions work on channels-last data; given channels-first tensors they often pick
slower kernels or transpose internally. torch.compile's inductor converts a graph's convolutions to
channels-last (its layout optimisation), which is much of why it beat eager on KernelBench's transposed
convolutions on an H100 (level2/5_ConvTranspose2d_Subtract_Tanh: eager 9.24 ms, torch.compile 3.56 ms, both
with cuDNN's TF32). A library conv step may do the same: its input and weight go to channels-last before the
call (one pass over the input; the weight is small) and its output comes back contiguous for the kernels
after it (one pass over the output). Whether that pays depends on the shape, so it is a tunable,
"<step>.LAYOUT", "contiguous" by default, which the tuner may change; the translator's `fused_channels_last`
variant (asked for by name: propose.CHANNELS_LAST_VARIANT) sets every such step to channels-last. Measured on an
H100 it lost to contiguous on every level-2 problem tried, so the first generation no longer includes it.

A third choice, "channels_last_kept" (behind RunSettings.offline_channels_last_kept, off until an H100 measures
it), drops that pass back: the output stays channels-last (HostStep.keeps_channels_last) and every later read of
it goes through a layout re-expressed over channels-last storage (layout_remap), as inductor keeps a convolution's
output channels-last for the fused kernel after it. Offered only where every read of the output can be so
re-expressed, by a step whose kernel reads through layouts (elementwise, reduction, pool) or on the host, and where
nothing else writes it and it is not the Model's state (forward may return it: a channels-last tensor of the same
values, as torch.compile returns). An elementwise step that reads such an output then runs
in channels-last order and keeps its own outputs channels-last too (follow_channels_last), so a network's
convolutions and the activations and residual adds between them stay in one layout. A pool that reads it runs
in channels-last order too, and a reduction walks its storage in order where that leaves the result alone
(storage_order: a min over channels as rows along the stored channels, an instance norm as columns over
neighbouring channels, writing channels-last).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from kernelwright.agents.offline.conv_plan import CONV_TARGETS
from kernelwright.agents.offline.ir import (
    Buffer,
    ConvStep,
    Dag,
    ElementwiseStep,
    GemmStep,
    HostStep,
    Layout,
    Load,
    Plan,
    PoolStep,
    RecurrentStep,
    ReductionStep,
    Step,
    map_args,
    map_loads,
)
from kernelwright.agents.offline.layout_remap import remap_channels_last
from kernelwright.agents.offline.storage_order import (
    elementwise_channels_last_order,
    pool_channels_last_order,
    reduction_channels_last_order,
)

CONTIGUOUS, CHANNELS_LAST, CHANNELS_LAST_KEPT = "contiguous", "channels_last", "channels_last_kept"
LAYOUTS = (CONTIGUOUS, CHANNELS_LAST)  # the default first
# Where the kept output is offered: right after the default, so the fill's up-first move tries it first.
KEPT_LAYOUTS = (CONTIGUOUS, CHANNELS_LAST_KEPT, CHANNELS_LAST)
LAYOUT_SUFFIX = ".LAYOUT"
# 2-D and 3-D convolutions, transposed or not (channels-last has no 1-D form)
_TARGETS = frozenset(target for target, (dims, _) in CONV_TARGETS.items() if dims in (2, 3))

# Python emitted into a candidate that runs a convolution channels-last.
CHANNELS_LAST_PYTHON = '''

def _kw_cl(t):
    """t in channels-last memory (same values and shape): the layout cuDNN's tensor-core convolutions use. At
    storage offset 0: the steps after a kept output read it through torch.as_strided, whose offset is absolute."""
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    out = t.contiguous(memory_format=fmt)
    return out if out.storage_offset() == 0 else out.clone(memory_format=fmt)
'''


def layout_dim(step: HostStep, buffers: Mapping[str, Buffer]) -> str | None:
    """The step's "<step>.LAYOUT" tunable's name, where it has one: a plain 2-D or 3-D library convolution
    (transposed or not, grouped or not: cuDNN has channels-last kernels for grouped and depthwise ones too, and
    RegNet's grouped convolutions ran no faster in TF32 than in fp32 channels-first) with one output."""
    if step.target not in _TARGETS or step.kwargs or len(step.outputs) != 1 or len(step.args) < 2:
        return None
    x, w = step.args[0], step.args[1]
    if not (isinstance(x, Layout) and isinstance(w, Layout)) or len(x.shape) not in (4, 5) or len(w.shape) != len(x.shape):
        return None
    if any(isinstance(a, Layout) for a in step.args[3:]):
        return None  # tensors past the bias: not a plain convolution
    if buffers[x.buffer].dtype != buffers[w.buffer].dtype:
        return None
    return step.name + LAYOUT_SUFFIX


def layout_dims(plan: Plan) -> list[str]:
    """The plan's layout tunables, in step order."""
    return [name for step in plan.steps if isinstance(step, HostStep)
            and (name := layout_dim(step, plan.buffers)) is not None]


def conv_layouts(plan: Plan, params: Mapping[str, object]) -> dict[str, str]:
    """"<step>.LAYOUT" -> "channels_last" for each step `params` puts there or keeps there (its operands go
    channels-last either way; contiguous ones are left out)."""
    return {name: CHANNELS_LAST for name in layout_dims(plan)
            if params.get(name) in (CHANNELS_LAST, CHANNELS_LAST_KEPT)}


def layout_choices(plan: Plan, step: HostStep) -> tuple[str, ...]:
    """The choices of the step's LAYOUT tunable: with the kept output where the plan allows it
    (Plan.channels_last_kept) and this step's output can stay channels-last (kept_plan)."""
    if plan.channels_last_kept and kept_plan(plan, step.name) is not None:
        return KEPT_LAYOUTS
    return LAYOUTS


def with_kept_layouts(plan: Plan, params: Mapping[str, object]) -> Plan:
    """`plan` with the output of each step whose LAYOUT `params` sets to "channels_last_kept" kept channels-last
    (kept_plan), and the elementwise steps after them following (follow_channels_last). A plan without
    Plan.channels_last_kept (an archived setting reaching a run with the setting off), or a step where it is not
    possible, keeps the contiguous output; its operands still go channels-last, as for "channels_last"
    (conv_layouts)."""
    if not plan.channels_last_kept:
        return plan
    for step in plan.steps:
        if isinstance(step, HostStep) and (name := layout_dim(step, plan.buffers)) \
                and params.get(name) == CHANNELS_LAST_KEPT:
            plan = kept_plan(plan, step.name) or plan
    return follow_channels_last(plan)


class _NotKept(Exception):
    """A read or write of the output that a channels-last output cannot serve."""


def kept_plan(plan: Plan, step_name: str) -> Plan | None:
    """The plan with host step `step_name`'s output kept channels-last and every read of it re-expressed over
    that storage; None where that is not possible (the module's docstring says when)."""
    index = next((i for i, s in enumerate(plan.steps) if s.name == step_name), None)
    if index is None:
        return None
    step = plan.steps[index]
    if not isinstance(step, HostStep) or layout_dim(step, plan.buffers) is None or step.keeps_channels_last:
        return None
    out = step.outputs[0]
    if out is None:
        return None
    return _stored_channels_last(plan, index, [out], replace(step, keeps_channels_last=True))


def follow_channels_last(plan: Plan) -> Plan:
    """Each elementwise step that reads an output kept channels-last runs in channels-last order and keeps its
    own outputs so (ElementwiseStep.writes_channels_last), where they can be (as a kept convolution's): its reads
    of that output and its writes are then both in storage order, and a convolution after it (ResNet's conv, ReLU,
    conv) gets channels-last operands with no copy. So does a host op over kept outputs (a concatenation): its
    result is taken channels-last. A pool over them runs in channels-last order and keeps its outputs so; a
    reduction iterates in storage order where storage_order allows, its outputs kept channels-last where it
    writes in that order (a normalisation, or a reduction keeping its reduced dims)."""
    kept = {s.outputs[0] for s in plan.steps if isinstance(s, HostStep) and s.keeps_channels_last}
    for index in range(len(plan.steps)):
        step = plan.steps[index]
        if not kept:
            return plan
        if isinstance(step, ElementwiseStep) and len(step.dag.shape) in (4, 5) and not step.writes_channels_last \
                and any(b in kept for b in _dag_buffers(step.dag)):
            outs = _outputs_shaped(plan, step, step.dag.shape)
            if outs is None:
                continue
            writer: Step = elementwise_channels_last_order(step)
        elif isinstance(step, ReductionStep) and any(b in kept for b in _dag_buffers(step.prologue)):
            # a reduction over kept outputs walks their storage in order (storage_order)
            reordered = reduction_channels_last_order(step)
            if reordered is None:
                continue
            if not reordered.writes_channels_last:  # its outputs and epilogue are as they were
                plan = replace(plan, steps=(*plan.steps[:index], reordered, *plan.steps[index + 1:]))
                continue
            outs = _outputs_shaped(plan, step, step.epilogue.shape)
            if outs is None:
                continue
            writer = reordered
        elif isinstance(step, PoolStep) and any(b in kept for b in _dag_buffers(step.prologue)) \
                and (pool := pool_channels_last_order(step)) is not None:
            outs = _outputs_shaped(plan, step, step.epilogue.shape)
            if outs is None:
                continue
            writer = pool
        elif isinstance(step, HostStep) and not step.keeps_channels_last and len(step.outputs) == 1 \
                and step.outputs[0] is not None and len(plan.buffers[step.outputs[0]].shape) in (4, 5) \
                and any(b in kept for b in _arg_buffers(step)):
            # a host op over kept outputs (DenseNet's concatenation): its result taken channels-last, which
            # torch's own ops mostly give for channels-last operands (else _kw_cl copies it once)
            outs = [step.outputs[0]]
            writer = replace(step, keeps_channels_last=True)
        else:
            continue
        moved = _stored_channels_last(plan, index, outs, writer)
        if moved is not None:
            plan = moved
            kept.update(outs)
    return plan


def _outputs_shaped(plan: Plan, step: ElementwiseStep | ReductionStep | PoolStep,
                    shape: tuple[int, ...]) -> list[str] | None:
    """The buffers `step` writes, each once, where all of them have the shape it iterates (so writing them in its
    channels-last order is their channels-last storage); None where one does not."""
    outs = list(dict.fromkeys(o.buffer for o in step.outputs))
    return None if any(plan.buffers[b].shape != shape for b in outs) else outs


def _stored_channels_last(plan: Plan, index: int, outs: list[str], writer: Step) -> Plan | None:
    """The plan with step `index` replaced by `writer` (which stores `outs` channels-last) and every other step's
    reads of `outs`, and forward's outputs that are views of them, re-expressed over that storage; None where one
    cannot be, another step writes one of them, or forward leaves one as state. An output forward returns is then
    a channels-last tensor of the same shape and values, as torch.compile returns a convolution network's."""
    if any(v.buffer in outs for _, v in plan.state_updates):
        return None  # the Model's state keeps its layout

    def remap(layout: Layout) -> Layout:
        if layout.buffer not in outs:
            return layout
        moved = remap_channels_last(layout, plan.buffers[layout.buffer].shape)
        if moved is None:
            raise _NotKept
        return moved

    try:
        steps = tuple(writer if i == index else _reads_remapped(s, outs, remap) for i, s in enumerate(plan.steps))
        outputs = tuple(remap(o) if isinstance(o, Layout) else o for o in plan.outputs)
    except _NotKept:
        return None
    return replace(plan, steps=steps, outputs=outputs)


def _arg_buffers(step: HostStep) -> set[str]:
    found: set[str] = set()

    def note(value: Any) -> Any:
        if isinstance(value, Layout):
            found.add(value.buffer)
        return value

    map_args(note, (step.args, tuple(v for _, v in step.kwargs)))
    return found


def _dag_buffers(dag: Dag) -> set[str]:
    return {e.layout.buffer for e in dag.nodes if isinstance(e, Load)}


def _reads_remapped(step: Step, outs: list[str], remap: Callable[[Layout], Layout]) -> Step:
    """`step` with its reads of `outs` through `remap`; _NotKept where it writes one or reads one in a kernel that
    does not read through layouts."""
    if any(_writes(step, out) for out in outs):
        raise _NotKept
    if isinstance(step, ElementwiseStep):
        return replace(step, dag=map_loads(step.dag, remap))
    if isinstance(step, ReductionStep):
        return replace(step, prologue=map_loads(step.prologue, remap), epilogue=map_loads(step.epilogue, remap))
    if isinstance(step, PoolStep):
        if step.weight is not None and step.weight.buffer in outs:
            raise _NotKept
        return replace(step, prologue=map_loads(step.prologue, remap), epilogue=map_loads(step.epilogue, remap))
    if isinstance(step, HostStep):  # as_strided views over the channels-last storage (codegen_host)
        return replace(step, args=_args(step.args, remap),
                       kwargs=tuple((k, _args(v, remap)) for k, v in step.kwargs))
    if isinstance(step, (GemmStep, ConvStep, RecurrentStep)):  # their kernels read fixed layouts
        if any(layout.buffer in outs for layout in _step_layouts(step)):
            raise _NotKept
        return step
    raise _NotKept


def _writes(step: Step, out: str) -> bool:
    if isinstance(step, (HostStep, RecurrentStep)):
        return out in step.outputs
    return any(o.buffer == out for o in step.outputs)


def _args(value: Any, remap: Callable[[Layout], Layout]) -> Any:
    return map_args(lambda v: remap(v) if isinstance(v, Layout) else v, value)


def _step_layouts(step: GemmStep | ConvStep | RecurrentStep) -> list[Layout]:
    if isinstance(step, GemmStep):
        return [step.a, step.b]
    if isinstance(step, ConvStep):
        return [layout for layout in (step.input, step.weight, step.bias) if layout is not None]
    return [step.input, *step.hx, *step.params]


def channels_last_args(args: list[str]) -> list[str]:
    """The call's argument expressions with its input and weight (the first two) made channels-last."""
    return [f"_kw_cl({a})" if i < 2 else a for i, a in enumerate(args)]
