"""Which chat models a run uses, or why it cannot use the one asked for; the models themselves, made only when asked.

Any OpenAI-compatible endpoint works: OPENAI_API_KEY, OPENAI_BASE_URL and a model
name (KERNELWRIGHT_MODEL or the per-agent setting). `provider:model` names go
through langchain's init_chat_model (`openai:NAME` stays on the OpenAI client).
Nothing named and no endpoint configured means no model: the run proposes with the
offline translator. A model that is named but cannot be used is never swapped for
the offline translator: `LLMUnavailable` says what is missing and how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from kernelwright.tools.errors import ToolUnavailable

DEFAULT_MODEL = "gpt-4o-mini"
MODEL_ENV, KEY_ENV, URL_ENV = "KERNELWRIGHT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"
OPENAI_URL = "https://api.openai.com/v1"
PROVIDERS_EXTRA = "pip install 'kernelwright[providers]'"
CONNECT_TIMEOUT_S = 10.0  # an endpoint that takes no connection fails in seconds, not after the whole read timeout
# The API key variable of common init_chat_model providers, checked before a run starts (others are not checked:
# their package reports what it misses when the model is made).
PROVIDER_KEYS = {"anthropic": "ANTHROPIC_API_KEY", "google_genai": "GOOGLE_API_KEY",
                 "mistralai": "MISTRAL_API_KEY", "groq": "GROQ_API_KEY", "deepseek": "DEEPSEEK_API_KEY",
                 "xai": "XAI_API_KEY", "fireworks": "FIREWORKS_API_KEY", "together": "TOGETHER_API_KEY",
                 "cohere": "COHERE_API_KEY"}
NO_LLM = f"no model named, and neither {KEY_ENV} nor {URL_ENV} is set"
NO_LLM_FIX = f"set {KEY_ENV} (and {URL_ENV} for another OpenAI-compatible endpoint) or name a model"


class LLMUnavailable(ToolUnavailable):
    """A model the run needs cannot be used: none configured, a missing key or package, an unknown provider."""

    kind = "llm"


@dataclass(frozen=True, slots=True)
class ModelSettings:
    model: str | None = None  # "gpt-4.1" (OpenAI-compatible) or "provider:model" (init_chat_model)
    temperature: float = 0.7
    max_tokens: int | None = 8192
    timeout_s: float = 300.0
    max_retries: int = 2  # retries of a failed request (connection, timeout, 429, 5xx): max_retries + 1 attempts
    base_url: str | None = None
    api_key: str | None = None
    price_in_per_mtok: float = 0.0  # USD per million prompt tokens, for the cost budget (0: not counted)
    price_out_per_mtok: float = 0.0
    named_by: str = ""  # where the name came from ("--model", a config file, ...), for messages
    # the models tried, in order, once this one fails past its retries: "[provider:]model[@http://host/v1]" each
    fallbacks: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: str, named_by: str) -> ModelSettings:
        """A model named as "[provider:]model[@http://host/v1]" (--model, a config's `model =`)."""
        model, base_url = parse_model_spec(spec)
        return cls(model=model, base_url=base_url, named_by=named_by)

    @property
    def names_a_model(self) -> bool:
        """The caller asked for a model (a name, an endpoint or a key), not just the defaults."""
        return bool(self.model or self.base_url or self.api_key)


@dataclass(frozen=True, slots=True)
class ChosenModel:
    """A model checked to be usable: its name and endpoint filled in; `key_env` is the variable its key came from."""

    settings: ModelSettings
    key_env: str | None = None
    fallbacks: tuple[ChosenModel, ...] = field(default=(), compare=False)  # settings.fallbacks, each checked

    @property
    def name(self) -> str:
        return str(self.settings.model)

    @property
    def provider(self) -> str | None:
        """The init_chat_model provider, or None for the OpenAI client (an OpenAI-compatible endpoint)."""
        return _provider(self.settings)[0]

    @property
    def api_model(self) -> str:
        """The name the endpoint gets (`openai:gpt-4.1` asks for `gpt-4.1`)."""
        return _provider(self.settings)[1]

    @property
    def endpoint(self) -> str:
        if self.provider is None:
            return self.settings.base_url or OPENAI_URL
        return f"provider {self.provider}" + (f" at {self.settings.base_url}" if self.settings.base_url else "")

    @property
    def limits_key(self) -> str:
        """The name its provider's rate limits go by: the provider of provider:model, "openai" for the OpenAI API,
        else the endpoint's URL."""
        if self.provider is not None:
            return self.provider
        url = (self.settings.base_url or OPENAI_URL).rstrip("/")
        return "openai" if url == OPENAI_URL else url

    def describe(self) -> str:
        by = f", from {self.settings.named_by}" if self.settings.named_by else ""
        then = "".join(f" -> {m.name} ({m.endpoint})" for m in self.fallbacks)
        return f"{self.name} ({self.endpoint}{by}){then}"

    def to_dict(self) -> dict[str, Any]:
        """What the run record keeps to use the same model on resume (never the key itself)."""
        data = {k: v for k, v in asdict(self.settings).items() if k not in ("api_key", "named_by")}
        return {**data, "key_env": self.key_env}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], named_by: str) -> ChosenModel:
        known = {f.name for f in fields(ModelSettings)} - {"api_key", "named_by"}
        values = {k: v for k, v in data.items() if k in known}
        values["fallbacks"] = tuple(values.get("fallbacks") or ())
        return cls(ModelSettings(**values, named_by=named_by), data.get("key_env"))


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """The models a run uses: proposers (taking turns) and the critic; no proposers means the offline translator."""

    proposers: tuple[ChosenModel, ...] = ()
    critic: ChosenModel | None = None
    caller_supplied: bool = False  # optimize(llm=...): a chat model object, not settings
    why_offline: str = field(default="", compare=False)

    def describe(self) -> str:
        if self.caller_supplied:
            return "a chat model passed to optimize(llm=...)"
        if not self.proposers:
            return "offline translator + tuner" + (f" ({self.why_offline})" if self.why_offline else "")
        text = "models: " + ", ".join(m.describe() for m in self.proposers)
        return text + (f"; critic: {self.critic.describe()}" if self.critic else "")

    def all_models(self) -> tuple[ChosenModel, ...]:
        return self.proposers + ((self.critic,) if self.critic else ())

    def to_dict(self) -> dict[str, Any]:
        return {"proposers": [m.to_dict() for m in self.proposers],
                "critic": self.critic.to_dict() if self.critic else None, "caller_supplied": self.caller_supplied}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], named_by: str) -> ModelPlan:
        critic = data.get("critic")
        return cls(tuple(ChosenModel.from_dict(m, named_by) for m in data.get("proposers") or ()),
                   ChosenModel.from_dict(critic, named_by) if critic else None, bool(data.get("caller_supplied")))


def choose_model(settings: ModelSettings, env: Mapping[str, str] | None = None, *,
                 key_env: str | None = None) -> ChosenModel | None:
    """The model `settings` ask for, completed from the environment; None when nothing is asked for.

    `key_env`: the variable a recorded model's key came from; it must be set again. Raises LLMUnavailable
    (what is missing, how to fix it) when a model is asked for and cannot be used.
    """
    env = os.environ if env is None else env
    chosen = _choose_one(settings, env, key_env)
    if chosen is None or not settings.fallbacks:
        return chosen
    fallbacks = []
    for spec in settings.fallbacks:
        model, base_url = parse_model_spec(spec)
        then = choose_model(replace(settings, model=model, base_url=base_url, api_key=None, fallbacks=()), env)
        if then is not None:
            fallbacks.append(then)
    return replace(chosen, fallbacks=tuple(fallbacks))


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """(model name, endpoint URL or None) of "[provider:]model[@http(s)://host/v1]", the syntax of model chains."""
    name, at, url = spec.strip().rpartition("@")
    if at and url.startswith(("http://", "https://")) and name:
        return name, url
    return spec.strip(), None


def _choose_one(settings: ModelSettings, env: Mapping[str, str], key_env: str | None) -> ChosenModel | None:
    if settings.model is None and env.get(MODEL_ENV):
        settings = replace(settings, model=env[MODEL_ENV], named_by=settings.named_by or MODEL_ENV)
    provider = _provider(settings)[0]
    if provider is None:
        return _choose_openai_compatible(settings, env, key_env)
    fixes = []
    try:
        from langchain.chat_models import init_chat_model  # noqa: F401 - only checking the extra is installed
    except ImportError:
        fixes.append(f"install the providers extra ({PROVIDERS_EXTRA})")
    key_var = PROVIDER_KEYS.get(provider)
    if key_var and not (settings.api_key or env.get(key_var)):
        fixes.append(f"set {key_var}")
    if fixes:
        raise _unusable(settings, "; ".join(fixes))
    return ChosenModel(settings, key_var if key_var and not settings.api_key else None)


def _choose_openai_compatible(settings: ModelSettings, env: Mapping[str, str],
                              key_env: str | None) -> ChosenModel | None:
    base_url = settings.base_url or env.get(URL_ENV) or None
    env_key = None if settings.api_key else (KEY_ENV if env.get(KEY_ENV) else None)
    has_key = bool(settings.api_key or env_key)
    if settings.model is None and not has_key and base_url is None:
        return None
    chosen = ChosenModel(replace(settings, model=settings.model or DEFAULT_MODEL, base_url=base_url or OPENAI_URL),
                         env_key)
    if not has_key and key_env:
        raise _unusable(chosen.settings, f"set {key_env} (its endpoint {chosen.endpoint} was used with a key)")
    if not has_key and base_url is None:
        raise _unusable(chosen.settings, f"set {KEY_ENV} for {OPENAI_URL}, or {URL_ENV} for another "
                                         "OpenAI-compatible endpoint (a local one needs no key)")
    return chosen


def plan_models(proposers: Sequence[ModelSettings], critic: ModelSettings | None = None, *,
                env: Mapping[str, str] | None = None, recorded: ModelPlan | None = None) -> ModelPlan:
    """The one answer to "which models will this run use, or why not".

    Named models must be usable (else LLMUnavailable); with nothing named and no endpoint configured the plan
    is offline. `recorded` (a resumed run's plan) is kept unless proposers or the critic are named explicitly.
    """
    env = os.environ if env is None else env
    explicit = [m for m in proposers if m.names_a_model]
    if recorded is not None and not explicit:
        if recorded.caller_supplied:
            raise LLMUnavailable("this run used a chat model passed as optimize(llm=...): pass it again to resume, "
                                 "or name a model", where="resume")
        chosen = tuple(_recheck(m, env) for m in recorded.proposers)
    else:
        chosen = tuple(m for m in (choose_model(s, env) for s in proposers) if m is not None)
    if critic is not None and critic.names_a_model:
        critic_choice = choose_model(critic, env)
    else:
        critic_choice = _recheck(recorded.critic, env) if recorded is not None and recorded.critic else None
    if critic_choice is not None and not chosen:
        raise _unusable(critic_choice.settings, "a critic reviews an LLM's candidates, and no proposer model is "
                                                "configured: name one (--model) too")
    why = "" if chosen else ("the resumed run was offline; name a model to use one" if recorded is not None
                             and not explicit else NO_LLM)
    return ModelPlan(chosen, critic_choice, why_offline=why)


def _recheck(recorded: ChosenModel, env: Mapping[str, str]) -> ChosenModel:
    chosen = choose_model(recorded.settings, env, key_env=recorded.key_env)
    if chosen is None:  # only a hand-edited run record names a model without a name
        raise LLMUnavailable("a recorded model has no name", where=recorded.settings.named_by)
    return chosen


def make_chat_model(settings: ModelSettings | ChosenModel, env: Mapping[str, str] | None = None) -> Any:
    """A langchain chat model; LLMUnavailable (a ToolUnavailable) when none is configured or it cannot be made."""
    env = os.environ if env is None else env
    chosen = settings if isinstance(settings, ChosenModel) else choose_model(settings, env)
    if chosen is None:
        raise LLMUnavailable(f"no LLM configured ({NO_LLM}): {NO_LLM_FIX}", where="llm")
    s = chosen.settings
    if chosen.provider is not None:
        from langchain.chat_models import init_chat_model

        extra = {"base_url": s.base_url} if s.base_url else {}
        try:
            return init_chat_model(s.model, temperature=s.temperature, max_tokens=s.max_tokens, timeout=s.timeout_s,
                                   max_retries=s.max_retries, **({"api_key": s.api_key} if s.api_key else {}), **extra)
        except ImportError as exc:  # the provider's own package, e.g. langchain-anthropic
            raise _unusable(s, f"its provider's package is missing: {exc}") from None
        except ValueError as exc:  # an unknown provider, or settings its class refuses
            raise _unusable(s, _init_chat_model_refusal(str(chosen.provider), str(exc))) from None
    import openai
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # the constructor's keywords are the fields' aliases: max_completion_tokens sets `max_tokens`
    return ChatOpenAI(
        model=chosen.api_model, temperature=s.temperature, max_completion_tokens=s.max_tokens,
        max_retries=s.max_retries,
        timeout=openai.Timeout(s.timeout_s, connect=min(CONNECT_TIMEOUT_S, s.timeout_s)), base_url=s.base_url,
        # Local endpoints often need no key; the client insists on one.
        api_key=SecretStr(s.api_key or env.get(KEY_ENV) or "not-needed"),
    )


def _provider(settings: ModelSettings) -> tuple[str | None, str]:
    """(init_chat_model provider or None for the OpenAI client, the model name the endpoint gets)."""
    name = settings.model or DEFAULT_MODEL
    prefix, colon, rest = name.partition(":")
    if not colon or (settings.base_url and prefix != "openai"):  # a name with a colon on an explicit endpoint
        return None, name
    return (None, rest) if prefix == "openai" else (prefix, name)


def _init_chat_model_refusal(provider: str, message: str) -> str:
    if "provider" not in message:
        return f"init_chat_model refused it: {message.strip()}"
    known = next((line for line in message.splitlines() if line.startswith("Supported providers")), "")
    known = f" ({known})" if known else ""
    return (f"init_chat_model knows no provider {provider!r}{known}; a model of an OpenAI-compatible server whose "
            "name has a colon is written openai:NAME")


def _unusable(settings: ModelSettings, fix: str) -> LLMUnavailable:
    return LLMUnavailable(f"model {settings.model!r} cannot be used: {fix}. Nothing was run.",
                          where=settings.named_by or "llm", details={"model": settings.model})
