"""Library convolutions run channels-last: the tunable, the fused_channels_last variant and the emitted calls."""

from __future__ import annotations

import pytest

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.conv_layout import LAYOUTS, layout_dims
from kernelwright.agents.offline.propose import CHANNELS_LAST_VARIANT, VARIANTS, plans_for, trace_all
from kernelwright.agents.offline.space import plan_space
from support.offline import suite_dir


def _forward(source: str) -> str:
    return source.split("class ModelNew", 1)[1]


def test_a_conv_problem_gets_the_layout_tunable_and_a_channels_last_variant() -> None:
    problem = suite_dir() / "44_conv_bn_relu_pool.py"
    plan = plans_for(trace_all(problem))["fused"][0]
    names = layout_dims(plan)
    assert len(names) == 1
    dims = {d.name: d for d in plan_space(plan).dims}
    assert (dims[names[0]].choices, dims[names[0]].default) == (LAYOUTS, "contiguous")
    assert "fused_channels_last" not in {c.variant for c in propose(problem)}  # asked for by name only
    by_variant = {c.variant: c for c in propose(problem, variants=(*VARIANTS, CHANNELS_LAST_VARIANT))}
    assert {"fused", "fused_channels_last"} <= set(by_variant)
    fused, last = _forward(by_variant["fused"].source), _forward(by_variant["fused_channels_last"].source)
    assert "_kw_cl(" not in fused and "def _kw_cl(" not in by_variant["fused"].source
    assert "def _kw_cl(" in by_variant["fused_channels_last"].source
    # the split helper (the strict default for this conv) takes the layout; the output comes back contiguous
    assert "_kw_conv_tf32x3(torch.ops.aten.conv2d.default, " in last and "cl=True).contiguous()" in last
    assert by_variant["fused_channels_last"].params[names[0]] == "channels_last"


def test_the_plain_fp32_call_takes_channels_last_operands() -> None:
    from kernelwright.agents.offline.propose import render

    traced = trace_all(suite_dir() / "44_conv_bn_relu_pool.py")
    plan = plans_for(traced)["fused"][0]
    space = plan_space(plan)
    params = {**space.defaults(), **{n: "channels_last" for n in layout_dims(plan)},
              **{d.name: "fp32" for d in space.dims if d.name.endswith(".GEMM")}}
    assert "torch.ops.aten.conv2d.default(_kw_cl(" in _forward(render(traced, [plan], params, "tuned"))


@pytest.mark.parametrize("name", ["12_linear_relu_scale", "01_gelu_tanh"])
def test_problems_without_convolutions_get_no_channels_last_variant(name: str) -> None:
    path = suite_dir() / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{name} is not in the suite")
    assert "fused_channels_last" not in {c.variant for c in propose(path, variants=(*VARIANTS, CHANNELS_LAST_VARIANT))}
