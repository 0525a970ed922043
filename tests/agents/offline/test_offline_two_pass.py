"""Row normalisations cached in registers use two block reductions (max/mean, then the sum) instead of an
online accumulator; the conservative variant keeps the one-pass form, so both stay available to selection."""

from __future__ import annotations

import pytest

from kernelwright.agents.offline import propose
from support.offline import suite_dir


def _kernels(source: str) -> str:
    return source.split('_KW_CUDA_SRC = r"""', 1)[1].split('"""', 1)[0]


@pytest.mark.parametrize("name, two_pass, one_pass", [
    ("26_softmax_rows", "kw_exp(vals[k] - mx); s.push(vals[k], r);", "KwLse<float> a"),
    ("28_layer_norm_affine", "const float c = vals[k] - mu; d.push(c * c, r);", "KwWelford<float> a"),
])
def test_fused_uses_two_passes_over_registers_and_fused_scalar_keeps_one(name: str, two_pass: str, one_pass: str) -> None:
    by_variant = {c.variant: c for c in propose(suite_dir() / f"{name}.py")}
    # The main input shape's kernel (other shapes' kernels, "// ---- s1..", take default tunables).
    fused, scalar = (_kernels(by_variant[v].source).split("// ---- s1")[0] for v in ("fused", "fused_scalar"))
    assert two_pass in fused and one_pass not in fused
    assert fused.count("kw_block_reduce_x<") == 2
    assert one_pass in scalar and two_pass not in scalar
    assert by_variant["fused"].params[next(k for k in by_variant["fused"].params if k.endswith(".TWOPASS"))] == 1
    assert "TWOPASS=1" in by_variant["fused"].source  # the Tunables header, read back by the archive


def test_log_softmax_rows_take_the_log_of_the_second_pass_sum() -> None:
    from kernelwright.agents.offline.propose import plans_for, render, trace_all
    from kernelwright.agents.offline.space import plan_space

    traced = trace_all(suite_dir() / "18_linear_logsumexp_relu.py")  # logsumexp: not a normalisation, untouched
    plan = plans_for(traced)["fused"][0]
    assert not [d for d in plan_space(plan).dims if d.name.endswith(".TWOPASS")]
    assert "KwLse<float>" in _kernels(render(traced, [plan], plan_space(plan).defaults(), "fused"))
