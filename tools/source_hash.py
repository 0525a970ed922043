"""Identity of a candidate by its normalised source: comments, docstrings (string statements), blank lines and
layout do not make a new kernel. Used for deduplication in the population and the archive. Docstrings count as
comments because generated candidates name their variant and tunables in one: two settings or variants that write
the same code are one kernel, measured once (session 18 found 31 of 241 level-1 evaluations were such repeats)."""

from __future__ import annotations

import hashlib
import io
import re
import tokenize

_C_COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


def _normalise_strings(token: tokenize.TokenInfo) -> str:
    text = token.string
    if token.type == tokenize.STRING and ("__global__" in text or "#include" in text):
        text = _C_COMMENT_RE.sub("", text)  # CUDA source inside a Python string: drop C comments
        text = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    return text


def normalised_source(source: str) -> str:
    """Python tokens without comments and layout; embedded CUDA without comments and extra spaces."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(line.strip() for line in source.splitlines() if line.strip())
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
            tokenize.ENDMARKER}
    kept = [t for t in tokens if t.type not in (tokenize.COMMENT, tokenize.NL)]
    docstrings = {i for i, t in enumerate(kept) if _is_string_statement(kept, i)}
    return " ".join(_normalise_strings(t) for i, t in enumerate(kept) if t.type not in skip and i not in docstrings)


_STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def _is_string_statement(tokens: list[tokenize.TokenInfo], i: int) -> bool:
    """Whether tokens[i] is a string that is a whole statement (a docstring; comments and NL already removed):
    it starts a statement and a NEWLINE (or the end) follows it."""
    if tokens[i].type != tokenize.STRING:
        return False
    starts = i == 0 or tokens[i - 1].type in _STATEMENT_START
    ends = i + 1 == len(tokens) or tokens[i + 1].type in (tokenize.NEWLINE, tokenize.ENDMARKER)
    return starts and ends


def candidate_id(source: str) -> str:
    """sha256 of the normalised source (hex)."""
    return hashlib.sha256(normalised_source(source).encode()).hexdigest()
