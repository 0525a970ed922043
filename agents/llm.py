"""Chat models for the agents, from explicit settings or the environment, created only when asked.

Any OpenAI-compatible endpoint works: OPENAI_API_KEY, OPENAI_BASE_URL and a model
name (KERNELWRIGHT_MODEL or the per-agent setting). `provider:model` names go
through langchain's init_chat_model. With no key and no base URL there is no
model: the caller uses the offline proposer and says so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernelwright.tools.errors import ToolUnavailable

DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class ModelSettings:
    model: str | None = None  # "gpt-4.1" (OpenAI-compatible) or "provider:model" (init_chat_model)
    temperature: float = 0.7
    max_tokens: int | None = 8192
    timeout_s: float = 300.0
    max_retries: int = 2
    base_url: str | None = None
    api_key: str | None = None
    price_in_per_mtok: float = 0.0  # USD per million prompt tokens, for the cost budget (0: not counted)
    price_out_per_mtok: float = 0.0


def llm_configured(settings: ModelSettings, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if settings.model and ":" in settings.model:
        return True
    return bool(settings.api_key or env.get("OPENAI_API_KEY") or settings.base_url or env.get("OPENAI_BASE_URL"))


def make_chat_model(settings: ModelSettings, env: Mapping[str, str] | None = None) -> Any:
    """A langchain chat model; ToolUnavailable when no LLM is configured (use the offline proposer)."""
    env = os.environ if env is None else env
    if not llm_configured(settings, env):
        raise ToolUnavailable("no LLM configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for another "
                              "OpenAI-compatible endpoint) or a provider:model name", where="llm")
    model = settings.model or env.get("KERNELWRIGHT_MODEL") or DEFAULT_MODEL
    if ":" in model and not settings.base_url:
        try:
            from langchain.chat_models import init_chat_model
        except ImportError:
            raise ToolUnavailable(f"{model!r} needs langchain's init_chat_model: pip install 'kernelwright[providers]'",
                                  where="llm") from None

        return init_chat_model(model, temperature=settings.temperature, max_tokens=settings.max_tokens,
                               timeout=settings.timeout_s, max_retries=settings.max_retries)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model, temperature=settings.temperature, max_tokens=settings.max_tokens, timeout=settings.timeout_s,
        max_retries=settings.max_retries, base_url=settings.base_url or env.get("OPENAI_BASE_URL"),
        # Local endpoints often need no key; the client insists on one.
        api_key=settings.api_key or env.get("OPENAI_API_KEY") or "not-needed",
    )
