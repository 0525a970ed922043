"""Candidate extraction from LLM answers: every malformed shape gets a named problem and a repair message."""

from __future__ import annotations

import pytest

from kernelwright.agents.answer_parsing import AnswerError, parse_candidate

GOOD = "import torch\nimport torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n"


def test_fenced_answer_with_prose() -> None:
    parsed = parse_candidate(f"Here is the kernel:\n```python\n{GOOD}```\nIt is fast.")
    assert parsed.source == GOOD and parsed.blocks_seen == 1


def test_last_block_defining_modelnew_wins() -> None:
    draft = GOOD.replace("return x", "return x * 0")
    parsed = parse_candidate(f"Draft:\n```python\n{draft}```\nFinal:\n```python\n{GOOD}```\n```bash\npython run.py\n```")
    assert "return x\n" in parsed.source and "x * 0" not in parsed.source


def test_unfenced_code_is_accepted() -> None:
    assert parse_candidate(GOOD).source == GOOD


def test_class_named_model_is_renamed() -> None:
    parsed = parse_candidate("```python\n" + GOOD.replace("ModelNew", "Model") + "```")
    assert "class ModelNew(nn.Module)" in parsed.source and parsed.renamed_class == "Model"


def test_separate_cuda_block_is_attached() -> None:
    py = GOOD.replace("import torch.nn as nn\n", "import torch.nn as nn\nfrom kernelwright.tools.raw_kernel import load_cuda\n"
                      "lib = load_cuda(CUDA_SRC, {'k': 'f32*'})\n")
    parsed = parse_candidate(f"```cuda\n__global__ void k(float* x) {{}}\n```\n```python\n{py}```")
    assert parsed.source.startswith('CUDA_SRC = r"""') and "__global__ void k" in parsed.source


@pytest.mark.parametrize("answer,problem", [
    ("I cannot help with that.", "no_code"),
    ("```python\nimport torch\n\ndef f(x):\n    return x\n```", "no_modelnew"),
    ("```python\nimport torch\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return (x +", "truncated"),
    ("```python\nclass ModelNew:\n    def forward(self, x)\n        return x\n```", "syntax"),
])
def test_malformed_answers_are_named_with_a_reask_prompt(answer: str, problem: str) -> None:
    from kernelwright.prompts.library import PromptLibrary

    with pytest.raises(AnswerError) as info:
        parse_candidate(answer)
    assert info.value.problem == problem and info.value.to_dict()["details"]["problem"] == problem
    reask = PromptLibrary().get(info.value.reask_template).render(**info.value.facts).user
    assert "Reply" in reask and (problem != "syntax" or "syntax error at line 2: expected ':'" in reask)
