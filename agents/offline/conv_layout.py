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
"""

from __future__ import annotations

from collections.abc import Mapping

from kernelwright.agents.offline.conv_plan import CONV_TARGETS
from kernelwright.agents.offline.ir import Buffer, HostStep, Layout, Plan

CONTIGUOUS, CHANNELS_LAST = "contiguous", "channels_last"
LAYOUTS = (CONTIGUOUS, CHANNELS_LAST)  # the default first
LAYOUT_SUFFIX = ".LAYOUT"
# 2-D and 3-D convolutions, transposed or not (channels-last has no 1-D form)
_TARGETS = frozenset(target for target, (dims, _) in CONV_TARGETS.items() if dims in (2, 3))

# Python emitted into a candidate that runs a convolution channels-last.
CHANNELS_LAST_PYTHON = '''

def _kw_cl(t):
    """t in channels-last memory (same values and shape): the layout cuDNN's tensor-core convolutions use."""
    return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
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
    """"<step>.LAYOUT" -> "channels_last" for each step `params` puts there (contiguous ones are left out)."""
    return {name: CHANNELS_LAST for name in layout_dims(plan) if params.get(name) == CHANNELS_LAST}


def channels_last_args(args: list[str]) -> list[str]:
    """The call's argument expressions with its input and weight (the first two) made channels-last."""
    return [f"_kw_cl({a})" if i < 2 else a for i, a in enumerate(args)]
