"""What went wrong when a chat model call failed: which model, at which endpoint, what failed, after how many attempts.

Provider clients raise their own types (openai's APIError family, langchain-core's ModelError family that
provider packages map theirs to); this turns any of them into one sentence a user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kernelwright.agents.llm import CONNECT_TIMEOUT_S, ChosenModel, ModelPlan

_RETRIED_STATUS = (408, 409, 429)  # retried by the OpenAI client, as are connection errors, timeouts and 5xx


def llm_failure(exc: BaseException, plan: ModelPlan) -> str | None:
    """One sentence on a failed chat model call found in `exc`'s chain; None when the failure is not one."""
    err = next((e for e in _chain(exc) if _is_model_error(e)), None)
    if err is None:
        return None
    model = _which_model(err, plan)
    endpoint = model.endpoint if model else _request_url(err) or "its endpoint"
    who = f"the LLM {model.name!r} at {endpoint}" if model else f"the LLM at {endpoint}"
    status = getattr(err, "status_code", None)
    retried = getattr(err, "is_retryable", None)
    if retried is None:
        retried = status is None or status in _RETRIED_STATUS or status >= 500
    attempts = (model.settings.max_retries + 1 if model else None) if retried else 1
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}" if attempts else "after the client's retries"
    return f"{who} {_what_failed(err, status, model)} ({tries})"


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
    models = plan.all_models()
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
