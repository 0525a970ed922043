"""fp32 attention: a wide head is decomposed (two GEMMs, a softmax kernel of the candidate's own), a narrow head
or half precision keeps the fused library kernel (agents/offline/attention.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from kernelwright.agents.offline.attention import DECOMPOSE_FROM_HEAD_DIM
from kernelwright.agents.offline.check import check_problem
from kernelwright.agents.offline.ir import ReductionStep, describe
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.trace import trace_problem
from support.offline import FIXTURES

WIDE = FIXTURES / "offline" / "wide_attention.py"


def _targets(path: Path) -> list[str]:
    traced = trace_problem(path)
    return [str(n.target) for n in traced.graph.nodes if n.op == "call_function"]


def _attention_problem(tmp_path: Path, head_dim: int, dtype: str = "torch.float32", extra: str = "") -> Path:
    path = tmp_path / f"attention_{head_dim}_{dtype.rsplit('.', 1)[-1]}.py"
    path.write_text(
        "import torch\nimport torch.nn as nn\n\n"
        "class Model(nn.Module):\n"
        "    def forward(self, q, k, v):\n"
        f"        return torch.nn.functional.scaled_dot_product_attention(q, k, v{extra}).relu()\n\n"
        f"def get_inputs():\n    return [torch.randn(1, 2, 8, {head_dim}, dtype={dtype}) for _ in range(3)]\n\n"
        "def get_init_inputs():\n    return []\n")
    return path


def test_a_wide_fp32_head_becomes_two_gemms_and_a_softmax_kernel() -> None:
    targets = _targets(WIDE)
    assert "aten.scaled_dot_product_attention.default" not in targets, targets
    assert targets.count("aten.matmul.default") == 4, targets  # Q K^T and P V, for each of the two attentions
    plan = build_plan(trace_problem(WIDE).program)
    softmaxes = [s for s in plan.steps if isinstance(s, ReductionStep) and s.reduction == "softmax"]
    assert len(softmaxes) == 2, describe(plan)
    check = check_problem(WIDE, scale=False)  # the plan, interpreted on CPU, matches the Model (mask, scale)
    assert check.passed, check.failures()


def test_a_narrow_head_half_precision_dropout_and_causal_keep_the_fused_kernel(tmp_path: Path) -> None:
    sdpa = "aten.scaled_dot_product_attention.default"
    assert sdpa in _targets(_attention_problem(tmp_path, DECOMPOSE_FROM_HEAD_DIM // 2))
    assert sdpa in _targets(_attention_problem(tmp_path, DECOMPOSE_FROM_HEAD_DIM, "torch.bfloat16"))
    assert sdpa in _targets(_attention_problem(tmp_path, DECOMPOSE_FROM_HEAD_DIM, extra=", is_causal=True"))
    assert sdpa not in _targets(_attention_problem(tmp_path, DECOMPOSE_FROM_HEAD_DIM))


def test_the_decomposition_matches_the_library_kernel() -> None:
    from kernelwright.agents.offline.attention import decompose_wide_fp32_attention
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 256, dtype=torch.float64) for _ in range(3))
    mask = torch.randn(5, 5, dtype=torch.float64)
    q32, k32, v32, m32 = (t.float() for t in (q, k, v, mask))
    got = decompose_wide_fp32_attention(q32, k32, v32, attn_mask=m32, scale=0.3)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
