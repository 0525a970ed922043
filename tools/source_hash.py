"""Identity of a candidate by its normalised source: comments, docstring-free blank lines and
layout do not make a new kernel. Used for deduplication in the population and the archive."""

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
    return " ".join(_normalise_strings(t) for t in tokens if t.type not in skip)


def candidate_id(source: str) -> str:
    """sha256 of the normalised source (hex)."""
    return hashlib.sha256(normalised_source(source).encode()).hexdigest()
