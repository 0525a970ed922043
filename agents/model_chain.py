"""A chain of chat models used as one: retries with backoff, Retry-After, rate limits, then the next model.

Why a loop of our own, with the client's own retries off (max_retries=0 on every model of the chain): the
OpenAI client retries too, and honours Retry-After, but it cannot move on to another model when its retries are
spent, caps Retry-After at 60 s where the user cannot change it, and tells no one it retried, while every retry
and every switch must be in the run's trace. So each model's client makes one attempt per call and this chain
decides: a transient failure (429, 5xx, timeout, connection error, a cut or unreadable answer;
agents.llm_failure.call_failure) is tried again after `RetryPolicy.wait_s` (the server's Retry-After when it sent
one, capped; else exponential backoff with jitter), up to the model's `max_retries`; then, or at once for an
endpoint that refuses the key or the model (401/403/404), the next model of the chain is asked. When the last
model fails too, its error is raised unchanged: the run stops as it always did on an outage (resumable).

Each retry and switch is a LangChain custom event (RETRY_EVENT, FALLBACK_EVENT), which the run's event
handler writes to its event log; each attempt is also an ordinary chat model call with its own llm_call event.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import structlog
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from kernelwright.agents.llm import ChosenModel, make_chat_model
from kernelwright.agents.llm_failure import CHAIN_FAILED, UnreadableAnswer, call_failure, retry_after_s
from kernelwright.agents.rate_limits import ProviderLimiter, RunLimiters, estimate_tokens

log = structlog.get_logger(__name__)

RETRY_EVENT, FALLBACK_EVENT = "llm_retry", "llm_fallback"
ANSWERED_BY = "kernelwright_model"  # the reply's response_metadata key naming the model of the chain that answered


def answered_by(reply: Any, default: str) -> str:
    """The name of the model of a chain that gave `reply` (`default` for a reply from a single model)."""
    metadata = getattr(reply, "response_metadata", None)
    return str(metadata.get(ANSWERED_BY) or default) if isinstance(metadata, dict) else default


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a chain waits before trying a model again (the number of tries is each model's max_retries)."""

    backoff_s: float = 0.5  # the first wait; doubled each retry
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0  # a server's Retry-After longer than this is cut to it
    jitter: float = 0.5  # the share of a backoff drawn at random (0: none), so parallel calls do not retry together
    # a model that failed past its retries is passed over by the run's chains for this long (tried last, not
    # first), so each call of a long outage does not pay its retries again (0: always tried first)
    cooldown_s: float = 60.0

    def wait_s(self, retry: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number `retry` (0 for the first): the server's Retry-After when it sent one."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s)
        backoff = min(self.backoff_max_s, self.backoff_s * 2 ** retry)
        return backoff * (1.0 - self.jitter * rand())


class ModelCooldowns:
    """Which models of a run failed past their retries, and until when they are passed over (one per run, shared
    by its chains; thread-safe: the graph's agent calls run in parallel)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def remaining_s(self, model: ChosenModel) -> float:
        with self._lock:
            return max(0.0, self._until.get((model.name, model.endpoint), 0.0) - self._clock())

    def failed(self, model: ChosenModel, cooldown_s: float) -> None:
        with self._lock:
            self._until[(model.name, model.endpoint)] = self._clock() + cooldown_s

    def answered(self, model: ChosenModel) -> None:
        with self._lock:
            self._until.pop((model.name, model.endpoint), None)


@dataclass(frozen=True)
class ChainLink:
    model: ChosenModel
    runnable: Any  # the chat model (or its structured-output form) with the client's own retries off
    limiter: ProviderLimiter | None = None


class ModelChain(Runnable[Any, Any]):
    """Chat models tried in order as one runnable; `bind(...)` and `with_structured_output(...)` apply to each."""

    accepts_temperature = True  # agents.proposals binds the generation's temperature to it

    def __init__(self, links: Sequence[ChainLink], policy: RetryPolicy = RetryPolicy(), *,
                 sleep: Callable[[float], None] = time.sleep, cooldowns: ModelCooldowns | None = None) -> None:
        if not links:
            raise ValueError("a model chain needs at least one model")
        self.links, self.policy, self._sleep = tuple(links), policy, sleep
        self.cooldowns = cooldowns

    @property
    def model_name(self) -> str:
        """The first model's name as its endpoint knows it (what its calls report, for prices)."""
        return self.links[0].model.api_model

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return name or "ModelChain"

    def with_structured_output(self, schema: Any, **kwargs: Any) -> ModelChain:
        return ModelChain([replace(link, runnable=link.runnable.with_structured_output(schema, **kwargs))
                           for link in self.links], self.policy, sleep=self._sleep, cooldowns=self.cooldowns)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:  # noqa: A002
        return self._call_with_config(self._run, input, config, **kwargs)

    def _run(self, prompt: Any, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        child = patch_config(config, callbacks=run_manager.get_child())
        last: BaseException | None = None
        order = self._order(child)
        for index, link in enumerate(order):
            tries = link.model.settings.max_retries + 1
            for attempt in range(tries):
                try:
                    return self._attempt(link, prompt, child, kwargs)
                except Exception as exc:  # noqa: BLE001 - sorted by call_failure; anything else is re-raised
                    kind = call_failure(exc)
                    if kind is None or kind == "request":
                        raise  # a bug, or a request no model would take: not an outage
                    last = exc
                    if kind == "endpoint" or attempt + 1 == tries:
                        break
                    asked = retry_after_s(exc)
                    wait = self.policy.wait_s(attempt, asked)
                    self._emit(RETRY_EVENT, child, model=link.model.name, endpoint=link.model.endpoint,
                               attempt=attempt + 1, of=tries, wait_s=round(wait, 3), retry_after_s=asked,
                               error=_short(exc))
                    self._sleep(wait)
            if self.cooldowns is not None and self.policy.cooldown_s > 0:
                self.cooldowns.failed(link.model, self.policy.cooldown_s)
            if index + 1 < len(order):
                then = order[index + 1].model
                self._emit(FALLBACK_EVENT, child, model=link.model.name, endpoint=link.model.endpoint,
                           to_model=then.name, to_endpoint=then.endpoint, error=_short(last))
        assert last is not None
        if len(self.links) > 1:
            # what BaseException.add_note does (Python 3.11+), spelled out for 3.10
            last.__notes__ = [*getattr(last, "__notes__", ()),  # type: ignore[attr-defined]
                              f"{CHAIN_FAILED}: {', '.join(link.model.name for link in self.links)}"]
        raise last

    def _order(self, config: RunnableConfig) -> list[ChainLink]:
        """The links in chain order, those cooling down after a failure moved last (still tried if all else fails)."""
        if self.cooldowns is None:
            return list(self.links)
        cooling = {id(link): self.cooldowns.remaining_s(link.model) for link in self.links}
        ready = [link for link in self.links if not cooling[id(link)]]
        later = [link for link in self.links if cooling[id(link)]]
        for link in later if ready else ():
            self._emit(FALLBACK_EVENT, config, model=link.model.name, endpoint=link.model.endpoint,
                       to_model=ready[0].model.name, to_endpoint=ready[0].model.endpoint,
                       error=f"passed over: it failed past its retries; tried again in {cooling[id(link)]:.0f} s "
                             "(llm.cooldown_s)")
        return ready + later

    def _attempt(self, link: ChainLink, prompt: Any, config: RunnableConfig, kwargs: Mapping[str, Any]) -> Any:
        admitted = link.limiter.admit(estimate_tokens(prompt)) if link.limiter is not None else nullcontext()
        with admitted as ticket:
            try:
                out = link.runnable.invoke(prompt, config, **kwargs)
            except (ValueError, UnicodeDecodeError) as exc:  # a body that is no JSON (an HTML error page, ...)
                if call_failure(exc) != "transient":
                    raise
                raise UnreadableAnswer(link.model.name, link.model.endpoint,
                                       f"sent an answer that is not a chat completion ({type(exc).__name__})") from exc
            message = out.get("raw") if isinstance(out, dict) else out
            _check_complete(link, message)
            metadata = getattr(message, "response_metadata", None)
            if isinstance(metadata, dict):
                metadata[ANSWERED_BY] = link.model.name
            if self.cooldowns is not None:
                self.cooldowns.answered(link.model)
            if ticket is not None:
                usage = getattr(message, "usage_metadata", None) or {}
                ticket.settle(int(usage.get("total_tokens") or 0))
            return out

    def _emit(self, event: str, config: RunnableConfig, **fields: Any) -> None:
        (log.warning if event == FALLBACK_EVENT else log.info)(event, **fields)
        try:
            dispatch_custom_event(event, fields, config=config)
        except Exception as exc:  # noqa: BLE001 - a trace that cannot record must not fail the call
            log.debug("llm_event_not_recorded", event=event, error=str(exc))


def _check_complete(link: ChainLink, message: Any) -> None:
    """An OpenAI-compatible answer without a finish_reason was cut off (a stream that stopped early)."""
    metadata = getattr(message, "response_metadata", None)
    if link.model.provider is None and isinstance(metadata, dict) and metadata.get("finish_reason") is None:
        raise UnreadableAnswer(link.model.name, link.model.endpoint, "sent an answer that was cut off "
                                                                     "(no finish_reason: the stream stopped early)")


def _short(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}" if exc is not None else ""


def make_model_chain(chosen: ChosenModel, policy: RetryPolicy = RetryPolicy(), limiters: RunLimiters | None = None,
                     env: Mapping[str, str] | None = None, cooldowns: ModelCooldowns | None = None) -> ModelChain:
    """`chosen` and its fallbacks as one ModelChain; each model's limiter comes from the run's `limiters`, and
    which models are cooling down after a failure from the run's `cooldowns`."""
    links = []
    for model in (chosen, *chosen.fallbacks):
        one_try = replace(model, settings=replace(model.settings, max_retries=0))  # the chain retries, not the client
        links.append(ChainLink(model, make_chat_model(one_try, env),
                               limiters.for_provider(model.limits_key) if limiters is not None else None))
    return ModelChain(links, policy, cooldowns=cooldowns)
