"""In-context examples for the translator's and mutator's prompts, from the kernel archive when one is attached."""

from __future__ import annotations

from typing import Any

import structlog

from kernelwright.graphs.context import KContext

log = structlog.get_logger(__name__)


def examples_block(state: Any, ctx: KContext) -> str:
    """Past verified kernels for similar problems as prompt text; '' without an archive or on any archive fault."""
    if ctx.archive is None:
        return ""
    try:
        return ctx.archive.examples_for_prompt(state.get("functional") or {}, state.get("problem_path", ""))
    except Exception as exc:  # noqa: BLE001 - a damaged archive means no examples, never a failed run
        log.warning("archive_examples_unavailable", error=f"{type(exc).__name__}: {exc}")
        return ""
