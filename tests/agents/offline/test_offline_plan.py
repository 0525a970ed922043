"""The offline translator's plans, run by the torch interpreter on CPU, match the problem's Model:
same decomposition, broadcasting, dims and op order as the CUDA it generates (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.agents.offline.check import check_problem, small_overrides
from kernelwright.agents.offline.interp import interpret
from kernelwright.agents.offline.ir import ElementwiseStep, ReductionStep, describe
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.trace import trace_problem
from support.offline import FIXTURES, fixture_problems, suite_problems

SUITE = suite_problems()


@pytest.mark.parametrize("problem", SUITE, ids=[p.stem for p in SUITE])
def test_suite_plan_matches_model_on_cpu(problem: Path) -> None:
    check = check_problem(problem)  # scaled-down sizes; the plan logic is size-independent
    assert check.passed, check.failures()


@pytest.mark.parametrize("problem", fixture_problems(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_plan_matches_model_at_true_size(problem: Path) -> None:
    check = check_problem(problem, scale=False)
    assert check.passed, check.failures()


def test_input_variants_get_their_own_plans() -> None:
    problem = FIXTURES / "problems" / "relu_affine_shapes.py"
    for variant in range(3):
        check = check_problem(problem, scale=False, variant=variant)
        assert check.passed, (variant, check.failures())


def test_elementwise_chain_after_a_library_op_is_one_kernel() -> None:
    traced = trace_problem(FIXTURES / "problems" / "linear_softmax.py")
    plan = build_plan(traced.program)
    kinds = [s.kind if s.kind != "host" else s.target for s in plan.steps]
    # linear (cuBLAS) -> softmax(h + shift) * 2: the add is the softmax's prologue, the scale its epilogue
    assert kinds == ["aten.linear.default", "reduction"], describe(plan)
    red = plan.steps[1]
    assert isinstance(red, ReductionStep) and red.reduction == "softmax"
    assert any(getattr(e, "op", None) == "add" for e in red.prologue.nodes)
    assert any(getattr(e, "op", None) == "mul" for e in red.epilogue.nodes)


def test_normalisations_carry_their_affine_and_activation_as_epilogue() -> None:
    traced = trace_problem(FIXTURES / "offline" / "normalisations.py")
    plan = build_plan(traced.program)
    # every output comes from a custom kernel; nothing is kept as ATen
    assert not plan.kept_aten_ops and not [s for s in plan.steps if s.kind == "host"], describe(plan)
    # group norm + relu: one reduction kernel whose epilogue holds the affine and the relu
    gn = [s for s in plan.steps if isinstance(s, ReductionStep) and s.reduce == 2 * 4 * 6 and s.outer == 2 * 3]
    assert gn and any(getattr(e, "op", None) == "relu" for e in gn[0].epilogue.nodes), describe(plan)


def test_reduction_dims_become_outer_reduce_inner() -> None:
    traced = trace_problem(FIXTURES / "offline" / "reductions_any_dim.py")
    plan = build_plan(traced.program)
    geometry = {(s.reduction, s.outer, s.reduce, s.inner) for s in plan.steps if isinstance(s, ReductionStep)}
    assert ("sum", 1, 3, 5 * 7 * 11) in geometry  # dim 0
    assert ("max", 3 * 5, 7 * 11, 1) in geometry  # dims (2, 3)
    assert ("argmax", 3, 5, 7 * 11) in geometry  # middle dim
    assert ("sum", 1, 3 * 5 * 7 * 11, 1) in geometry  # everything


def test_views_and_broadcasts_are_strides_not_copies() -> None:
    traced = trace_problem(FIXTURES / "offline" / "views_broadcast.py")
    plan = build_plan(traced.program)
    strided = [e.layout for s in plan.steps if isinstance(s, ElementwiseStep) for e in s.dag.nodes
               if hasattr(e, "layout") and not e.layout.is_contiguous()]
    assert strided, describe(plan)  # the transpose / broadcast operands are read through strides
    assert any(0 in lay.strides for lay in strided)


def test_interpreter_catches_a_wrong_plan() -> None:
    """The check can fail: corrupt a constant in the plan and the comparison must notice."""
    import dataclasses

    from kernelwright.agents.offline.check import check_traced
    from kernelwright.agents.offline.ir import Const

    traced = trace_problem(FIXTURES / "problems" / "relu_affine.py")
    plan = build_plan(traced.program)
    step = plan.steps[0]
    nodes = tuple(Const(3.0, c.dtype) if isinstance(c, Const) and c.value == 2.0 else c for c in step.dag.nodes)
    broken = dataclasses.replace(plan, steps=(dataclasses.replace(step, dag=dataclasses.replace(step.dag, nodes=nodes)),))
    assert not check_traced(traced, {"broken": broken}, {}).passed
    assert check_traced(traced, {"ok": plan}, {}).passed
    assert interpret(plan, traced.model, traced.inputs)[0].shape == traced.inputs[0].shape


def test_small_overrides_shrink_sizes() -> None:
    text = "batch, channels, size = 32, 256, 64\nhidden = 4096\nkernel_size = 3\n"
    assert small_overrides(text) == {"batch": 4, "channels": 64, "hidden": 256}


@pytest.mark.parametrize("name", ["20_conv2d_relu_avgpool", "22_conv1d_gelu_residual", "23_convtranspose2d_bias_tanh"])
def test_a_conv_bias_joins_the_next_kernel_instead_of_its_own_pass(name: str) -> None:
    from kernelwright.agents.offline.ir import HostStep, Layout
    from support.offline import suite_dir

    plan = build_plan(trace_problem(suite_dir() / f"{name}.py").program)
    conv, after = plan.steps[0], plan.steps[1]
    assert isinstance(conv, HostStep) and conv.target.startswith("aten.conv") and conv.args[2] is None, describe(plan)
    bias = next(n for n, b in plan.buffers.items() if b.origin == "parameter" and b.target.endswith("bias")
                and b.target.startswith(("conv", "deconv")))
    nodes = after.prologue.nodes if hasattr(after, "prologue") else after.dag.nodes
    assert any(getattr(e, "layout", None) is not None and isinstance(e.layout, Layout) and e.layout.buffer == bias
               for e in nodes), describe(plan)
    assert len(plan.steps) == 2  # conv, then one kernel: no separate bias pass


def test_an_unbatched_conv_keeps_its_bias(tmp_path: Path) -> None:
    problem = tmp_path / "unbatched.py"
    problem.write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass Model(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(4, 6, 3)\n\n"
        "    def forward(self, x):\n        return torch.relu(self.conv(x))\n\n\n"
        "def get_inputs():\n    return [torch.randn(4, 10, 10)]\n\n\ndef get_init_inputs():\n    return []\n")
    plan = build_plan(trace_problem(problem).program)
    assert plan.steps[0].args[2] is not None, describe(plan)  # channels are dim 0 here: ATen adds it
    assert check_problem(problem, scale=False).passed
