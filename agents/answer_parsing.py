"""Pull a candidate file out of an LLM's answer, or say precisely what is wrong with it.

Answers come fenced or unfenced, with several code blocks (a ```cuda block and a
```python block, or a first draft and a final version), with the class misnamed,
or cut off by the token limit. Each failure is an AnswerError naming the problem; the agent asks again (a
bounded number of times) with the problem's re-ask prompt (prompts/templates/reask_<problem>.md, filled
with the error's `facts`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

from kernelwright.tools.errors import KernelwrightError

AnswerProblem = Literal["no_code", "no_modelnew", "truncated", "syntax"]

_FENCE_RE = re.compile(r"```[ \t]*([\w+.#-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_LANGS = {"python", "py", "python3", ""}
_CUDA_LANGS = {"cuda", "cu", "cpp", "c++", "c"}


class AnswerError(KernelwrightError):
    kind = "answer"

    def __init__(self, problem: AnswerProblem, message: str, **facts: object):
        super().__init__(message, details={"problem": problem})
        self.problem = problem
        self.facts = facts  # what the re-ask prompt names (a syntax error's line and error)

    @property
    def reask_template(self) -> str:
        """The prompt template that asks again for this problem."""
        return f"reask_{self.problem}"


@dataclass(frozen=True, slots=True)
class ParsedCandidate:
    source: str  # a complete candidate file defining ModelNew
    blocks_seen: int
    renamed_class: str | None = None  # e.g. the answer called it `Model` and we renamed it

    def to_dict(self) -> dict:
        return {"source": self.source, "blocks_seen": self.blocks_seen, "renamed_class": self.renamed_class}


def parse_candidate(answer: str) -> ParsedCandidate:
    """The candidate file in `answer`; raises AnswerError (no_code, no_modelnew, truncated, syntax)."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE_RE.findall(answer)]
    truncated = answer.count("```") % 2 == 1
    python_blocks = [body for lang, body in blocks if lang in _PY_LANGS]
    cuda_blocks = [body for lang, body in blocks if lang in _CUDA_LANGS]
    if not blocks:
        if "class ModelNew" in answer or "import torch" in answer:
            python_blocks = [answer]  # unfenced code
        else:
            raise AnswerError("no_code", "the answer contains no code")
    # Prefer the last block that defines ModelNew: models often revise themselves.
    chosen = next((b for b in reversed(python_blocks) if re.search(r"^class\s+ModelNew\b", b, re.M)), None)
    renamed = None
    if chosen is None:
        alt = next((b for b in reversed(python_blocks) if re.search(r"^class\s+Model\s*[(:]", b, re.M)), None)
        if alt is None:
            raise AnswerError("no_modelnew", "no code block defines `class ModelNew`")
        chosen = re.sub(r"^class\s+Model(\s*[(:])", r"class ModelNew\1", alt, count=1, flags=re.M)
        renamed = "Model"
    if cuda_blocks and not _embeds_cuda(chosen):
        chosen = _attach_cuda(chosen, cuda_blocks[-1])
    try:
        ast.parse(chosen)
    except SyntaxError as exc:
        at_end = exc.lineno is not None and exc.lineno >= len(chosen.splitlines()) - 1
        if truncated or at_end and ("EOF" in str(exc.msg) or "was never closed" in str(exc.msg)):
            raise AnswerError("truncated", "the answer was cut off before the code ended") from None
        raise AnswerError("syntax", f"the code does not parse: line {exc.lineno}: {exc.msg}", line=exc.lineno,
                          error=exc.msg) from None
    return ParsedCandidate(chosen.strip() + "\n", len(blocks), renamed)


def _embeds_cuda(python_source: str) -> bool:
    return "__global__" in python_source or "cuda_sources" in python_source


def _attach_cuda(python_source: str, cuda: str) -> str:
    """A ```cuda block next to a python block that refers to it as CUDA_SRC / cuda_src."""
    for name in ("CUDA_SRC", "cuda_src", "cuda_source", "CUDA_SOURCE", "SRC"):
        if re.search(rf"\b{name}\b", python_source) and not re.search(rf"^{name}\s*=", python_source, re.M):
            return f'{name} = r"""\n{cuda.rstrip()}\n"""\n\n' + python_source
    return python_source
