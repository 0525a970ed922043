"""In-context examples for the translator's and mutator's prompts, from the kernel archive when one is attached."""

from __future__ import annotations

from typing import Any

from kernelwright.agents.context import KContext


def examples_block(state: Any, ctx: KContext) -> str:
    """Past verified kernels for similar problems as prompt text; '' without an archive (or when it cannot answer)."""
    if ctx.archive is None:
        return ""
    from kernelwright.memory.prompting import examples_for_prompt  # chromadb only when an archive is in use

    return examples_for_prompt(ctx.archive, state.get("functional") or {}, gpu_arch=ctx.settings.gpu_arch,
                               k=ctx.settings.archive_examples)
