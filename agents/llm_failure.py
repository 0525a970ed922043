"""What went wrong when a chat model call failed: which model, at which endpoint, what failed, after how many attempts.

Provider clients raise their own types (openai's APIError family, langchain-core's ModelError family that
provider packages map theirs to); this turns any of them into one sentence a user can act on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from kernelwright.agents.llm import CONNECT_TIMEOUT_S, ChosenModel, ModelPlan

_RETRIED_STATUS = (408, 409, 429)  # retried, as are connection errors, timeouts and 5xx
_WRONG_ENDPOINT_STATUS = (401, 403, 404)  # this endpoint, key or model is wrong: another model of a chain may work

CHAIN_FAILED = "every model of the chain failed"  # the note a model chain adds to the last error it raises
CallFailure = Literal["transient", "endpoint", "request"]


class UnreadableAnswer(Exception):
    """A model's answer could not be read: cut off (a stream that stopped early) or not a chat completion at all."""

    def __init__(self, model: str, endpoint: str, problem: str) -> None:
        super().__init__(f"{problem} (model {model!r} at {endpoint})")
        self.model, self.endpoint, self.problem = model, endpoint, problem


def call_failure(exc: BaseException) -> CallFailure | None:
    """How a failed chat model call should be handled: "transient" (429, 5xx, timeouts, connection errors, a cut or
    unreadable answer: try again, then another model), "endpoint" (401/403/404: this endpoint will not answer, go to
    the next model), "request" (another 4xx: the request itself is refused, no model would take it), or None (not
    a model call's failure: a bug, never retried)."""
    if isinstance(exc, UnreadableAnswer):
        return "transient"
    err = next((e for e in _chain(exc) if _is_model_error(e)), None)
    if err is None:
        return "transient" if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)) else None
    status = getattr(err, "status_code", None)
    if status is None or status in _RETRIED_STATUS or status >= 500:
        return "transient"
    return "endpoint" if status in _WRONG_ENDPOINT_STATUS else "request"


def retry_after_s(exc: BaseException, now: float | None = None) -> float | None:
    """The wait a failed call's answer asked for (Retry-After in seconds or as an HTTP date, or retry-after-ms)."""
    for err in _chain(exc):
        headers = getattr(getattr(err, "response", None), "headers", None)
        if not headers:
            continue
        try:
            if headers.get("retry-after-ms"):
                return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
            value = headers.get("retry-after")
            if not value:
                return None
            try:
                return max(0.0, float(value))
            except ValueError:
                when = parsedate_to_datetime(value).timestamp()
                return max(0.0, when - (time.time() if now is None else now))
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # a header no one can read: the usual backoff
    return None


def llm_failure(exc: BaseException, plan: ModelPlan) -> str | None:
    """One sentence on a failed chat model call found in `exc`'s chain; None when the failure is not one."""
    err = next((e for e in _chain(exc) if _is_model_error(e)), None)
    if err is None:
        return None
    model = _which_model(err, plan)
    endpoint = model.endpoint if model else _request_url(err) or "its endpoint"
    who = f"the LLM {model.name!r} at {endpoint}" if model else f"the LLM at {endpoint}"
    if isinstance(err, UnreadableAnswer):
        return f"{who} {err.problem}{_chain_note(err)}"
    status = getattr(err, "status_code", None)
    retried = getattr(err, "is_retryable", None)
    if retried is None:
        retried = status is None or status in _RETRIED_STATUS or status >= 500
    attempts = (model.settings.max_retries + 1 if model else None) if retried else 1
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}" if attempts else "after the client's retries"
    return f"{who} {_what_failed(err, status, model)} ({tries}){_chain_note(err)}"


def _chain_note(err: BaseException) -> str:
    """"; every model of the chain failed: a, b" when a model chain (agents.model_chain) gave up on all of them."""
    note = next((n for n in getattr(err, "__notes__", ()) if n.startswith(CHAIN_FAILED)), None)
    return f"; {note}" if note else ""


def _what_failed(err: BaseException, status: int | None, model: ChosenModel | None) -> str:
    names = {type(e).__name__ for e in _chain(err)} | {c.__name__ for c in type(err).__mro__}
    if status is None:
        if "ConnectTimeout" in names:
            limit = min(CONNECT_TIMEOUT_S, model.settings.timeout_s) if model else CONNECT_TIMEOUT_S
            return f"could not be reached: no connection within {limit:g} s"
        if names & {"ModelTimeoutError", "APITimeoutError"}:
            timeout = f" within {model.settings.timeout_s:g} s" if model else ""
            return f"did not answer{timeout}"
        return f"could not be reached: {_root_cause(err)}"
    said = _server_message(err)
    said = f", {said}" if said else ""
    if status == 401:
        key = f"; check {model.key_env}" if model and model.key_env else ""
        return f"rejected the API key: HTTP 401{said}{key}"
    if status == 403:
        return f"refused access: HTTP 403{said}"
    if status == 404:
        name = f"model {model.api_model!r}" if model else "that model"
        return f"does not serve {name}, or the URL is wrong: HTTP 404{said}"
    if status == 429:
        return f"is rate-limiting the requests: HTTP 429{said}"
    if status >= 500:
        return f"failed with a server error: HTTP {status}{said}"
    return f"rejected the request: HTTP {status}{said}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_model_error(err: BaseException) -> bool:
    if isinstance(err, UnreadableAnswer):
        return True
    from langchain_core import exceptions

    model_error = getattr(exceptions, "ModelError", None)  # langchain-core >= 1.1 maps providers' errors to it
    if model_error is not None and isinstance(err, model_error):
        return True
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on it
        return False
    return isinstance(err, openai.APIError)


def _which_model(err: BaseException, plan: ModelPlan) -> ChosenModel | None:
    models = tuple(m for chosen in plan.all_models() for m in (chosen, *chosen.fallbacks))
    if isinstance(err, UnreadableAnswer):
        return next((m for m in models if m.name == err.model and m.endpoint == err.endpoint), None)
    url = _request_url(err) or ""
    asked = _requested_model(err)
    matches = [m for m in models if (asked is None or m.api_model == asked)
               and (not url or m.provider is not None or url.startswith(m.endpoint.rstrip("/")))]
    if len({(m.name, m.endpoint) for m in matches}) == 1:
        return matches[0]
    return models[0] if len(models) == 1 and not url else None


def _request_url(err: BaseException) -> str | None:
    request = getattr(err, "request", None)
    return str(request.url) if request is not None and getattr(request, "url", None) else None


def _requested_model(err: BaseException) -> str | None:
    request = getattr(err, "request", None)
    try:
        return json.loads(request.content).get("model")  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - no readable JSON body: match by endpoint alone
        return None


def _server_message(err: BaseException) -> str:
    body: Any = getattr(err, "body", None)
    text = body.get("message") if isinstance(body, dict) else None
    text = str(text or getattr(err, "message", "") or "").strip().rstrip(".")
    return text[:200]


def _root_cause(err: BaseException) -> str:
    *_, root = _chain(err)
    text = getattr(root, "strerror", None) or str(root) or type(root).__name__
    return str(text).rstrip(".").lower() if isinstance(root, OSError) else str(text).rstrip(".")
