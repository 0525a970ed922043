"""Pull a candidate file out of an LLM's answer, or say precisely what is wrong with it.

Answers come fenced or unfenced, with several code blocks (a ```cuda block and a
```python block, or a first draft and a final version), with the class misnamed,
or cut off by the token limit. Each failure is an AnswerError with a `kind` and a
repair message the agent can send back (a bounded number of times).
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

    def __init__(self, problem: AnswerProblem, message: str, *, repair: str):
        super().__init__(message, details={"problem": problem})
        self.problem = problem
        self.repair = repair


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
            raise AnswerError("no_code", "the answer contains no code",
                              repair="Reply with the complete candidate file in one ```python block defining class ModelNew.")
    # Prefer the last block that defines ModelNew: models often revise themselves.
    chosen = next((b for b in reversed(python_blocks) if re.search(r"^class\s+ModelNew\b", b, re.M)), None)
    renamed = None
    if chosen is None:
        alt = next((b for b in reversed(python_blocks) if re.search(r"^class\s+Model\s*[(:]", b, re.M)), None)
        if alt is None:
            raise AnswerError("no_modelnew", "no code block defines `class ModelNew`",
                              repair="The file must define `class ModelNew(nn.Module)` with the same constructor and "
                                     "forward signature as Model. Reply with the whole file in one ```python block.")
        chosen = re.sub(r"^class\s+Model(\s*[(:])", r"class ModelNew\1", alt, count=1, flags=re.M)
        renamed = "Model"
    if cuda_blocks and not _embeds_cuda(chosen):
        chosen = _attach_cuda(chosen, cuda_blocks[-1])
    try:
        ast.parse(chosen)
    except SyntaxError as exc:
        at_end = exc.lineno is not None and exc.lineno >= len(chosen.splitlines()) - 1
        if truncated or at_end and ("EOF" in str(exc.msg) or "was never closed" in str(exc.msg)):
            raise AnswerError("truncated", "the answer was cut off before the code ended",
                              repair="Your previous answer was cut off. Reply again with the complete file, shorter: "
                                     "omit explanations.") from None
        raise AnswerError("syntax", f"the code does not parse: line {exc.lineno}: {exc.msg}",
                          repair=f"Your code has a Python syntax error at line {exc.lineno}: {exc.msg}. "
                                 "Reply with the corrected complete file.") from None
    return ParsedCandidate(chosen.strip() + "\n", len(blocks), renamed)


def _embeds_cuda(python_source: str) -> bool:
    return "__global__" in python_source or "cuda_sources" in python_source


def _attach_cuda(python_source: str, cuda: str) -> str:
    """A ```cuda block next to a python block that refers to it as CUDA_SRC / cuda_src."""
    for name in ("CUDA_SRC", "cuda_src", "cuda_source", "CUDA_SOURCE", "SRC"):
        if re.search(rf"\b{name}\b", python_source) and not re.search(rf"^{name}\s*=", python_source, re.M):
            return f'{name} = r"""\n{cuda.rstrip()}\n"""\n\n' + python_source
    return python_source
