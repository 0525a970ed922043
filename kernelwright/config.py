"""kernelwright's one settings tree: loaded once per command or API call, then passed down as typed settings.

Precedence, lowest to highest:

1. defaults, owned by the typed settings of the part that uses them; each section takes its defaults from
   there: [harness] from tools.harness.evaluate.EvalSettings (and agents.context.RunSettings for `profile`),
   [timing] from tools.measure.timing.BenchSettings, [compile] from tools.compile.nvcc.BuildSettings, [agents] from
   agents.context.RunSettings and agents.llm.ModelSettings, [llm] from agents.model_chain.RetryPolicy and
   agents.rate_limits.ProviderLimits, [executor] from graphs.executors.ExecutorSettings;
2. the config file (TOML: `--config FILE`, `load_config(path)`);
3. the environment: KERNELWRIGHT_<SECTION>__<FIELD> (e.g. KERNELWRIGHT_HARNESS__N_TRIALS=8),
   KERNELWRIGHT_RUNS_DIR, KERNELWRIGHT_LOG_LEVEL, and the short forms KERNELWRIGHT_ARCH and
   KERNELWRIGHT_CACHE_DIR for compile.arch and compile.cache_dir (the SECTION__FIELD form wins over them);
4. explicit per-run values (CLI flags, API arguments): the environment never beats an explicit argument.

Only `load_config` reads the environment for these settings. The parts get them as arguments
(`eval_settings`, `build_settings`, `run_settings`, `AgentsConfig.model_settings`); a sandbox worker gets
its build settings in its own process environment (tools.compile.nvcc.BuildSettings.worker_env). KERNELWRIGHT_MODEL,
KERNELWRIGHT_ARCHIVE and KERNELWRIGHT_GPU_GATE are no config fields: agents.llm, memory.archive and
tools.measure.gpu_gate read them (the bench sets the last in each problem's process).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings, parse_model_spec
from kernelwright.agents.model_chain import RetryPolicy
from kernelwright.agents.rate_limits import ProviderLimits
from kernelwright.graphs.executors import ExecutorKind, ExecutorSettings
from kernelwright.tools.compile.nvcc import WORKER_ENV, BuildSettings, unsupported_arch
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.run_folder import DEFAULT_RUNS_DIR
from kernelwright.tools.sandbox.isolation import IsolationMode
from kernelwright.tools.verify.compare import Tolerance
from kernelwright.tools.verify.precision import ProfileName

if TYPE_CHECKING:
    from kernelwright.graphs.run import RunBudget, RunSetup

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "KERNELWRIGHT_"
ENV_SHORT_FORMS = {WORKER_ENV[field]: f"compile.{field}" for field in ("arch", "cache_dir")}  # KERNELWRIGHT_ARCH, ..._CACHE_DIR


class ConfigError(KernelwrightError):
    kind = "config"


def _default(owner: type, name: str) -> Any:
    """The default of field `name` of the settings dataclass `owner`, which owns it (the config copies none)."""
    field = next(f for f in dataclasses.fields(owner) if f.name == name)
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"{owner.__name__}.{name} has no default")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompileConfig(_Section):
    """tools.compile.nvcc.BuildSettings: how candidates' CUDA is built."""

    arch: str | None = Field(default=_default(BuildSettings, "arch"),
                             description="nvcc target, e.g. sm_90a; None = the visible GPU's")
    timeout_s: float | None = Field(default=_default(BuildSettings, "timeout_s"), gt=0,
                                    description="nvcc's limit per build of a candidate; None = 180 s for load_cuda, "
                                                "600 s for load_inline")
    cache_dir: Path | None = Field(default=_default(BuildSettings, "cache_dir"),
                                   description="cache folder (builds go in its build/); None = ~/.cache/kernelwright")
    fast_inline: bool = Field(default=_default(BuildSettings, "fast_inline"),
                              description="build load_inline candidates with the fast builder")

    @field_validator("arch")
    @classmethod
    def _buildable_arch(cls, arch: str | None) -> str | None:
        if arch is not None and (why := unsupported_arch(arch)):
            raise PydanticCustomError("gpu_arch", why)  # verbatim: a ValueError's message gets a "Value error, " prefix
        return arch


class TimingConfig(_Section):
    """tools.measure.timing.BenchSettings, and how many input sets the harness rotates while timing."""

    warmup_ms: float = _default(BenchSettings, "warmup_ms")
    rep_ms: float = _default(BenchSettings, "rep_ms")
    min_trials: int = Field(default=_default(BenchSettings, "min_trials"), ge=1)
    max_total_ms: float = _default(BenchSettings, "max_total_ms")
    flush_l2: bool = _default(BenchSettings, "flush_l2")
    cuda_graph: bool = _default(BenchSettings, "cuda_graph")
    input_sets: int = Field(default=_default(EvalSettings, "n_timing_sets"), ge=1,
                            description="input sets rotated during timing")


class HarnessConfig(_Section):
    """tools.harness.evaluate.EvalSettings: how a candidate is verified; `profile` is also RunSettings.profile."""

    n_trials: int = Field(default=_default(EvalSettings, "n_trials"), ge=1,
                          description="correctness trials, each with fresh seeded inputs")
    base_seed: int = _default(EvalSettings, "base_seed")
    init_seed: int = _default(EvalSettings, "init_seed")
    tolerances: dict[str, tuple[float, float, float]] = Field(
        default_factory=dict, description="dtype -> (atol, rtol, rel_l2), overriding the defaults")
    precision: ProfileName = Field(
        default=_default(EvalSettings, "precision"),
        description="strict: fp32 reference with TF32 off, fp32 atol=rtol=1e-4; kernelbench: reference under "
                    "PyTorch defaults and atol=rtol=1e-2, as KernelBench's evaluator (tables say which)")
    eager_baseline: bool = _default(EvalSettings, "eager_baseline")
    strict_baseline: bool = Field(default=_default(EvalSettings, "strict_baseline"),
                                  description="also time eager with TF32 off (an extra column)")
    compile_baseline: bool = _default(EvalSettings, "compile_baseline")
    compile_mode: str | None = _default(EvalSettings, "compile_mode")
    autotune_baseline: bool = Field(default=_default(EvalSettings, "autotune_baseline"),
                                    description="also time torch.compile(mode='max-autotune-no-cudagraphs')")
    call_timeout_s: float = Field(default=_default(EvalSettings, "call_timeout_s"), gt=0,
                                  description="upper bound of a call's watchdog, which otherwise scales with the "
                                              "reference's call: max(10 s, 100x)")
    load_timeout_s: float = _default(EvalSettings, "load_timeout_s")
    host_memory_limit_gb: float | None = Field(default=_default(EvalSettings, "host_memory_limit_gb"), gt=0,
                                               description="host memory (PSS) of one evaluation's workers together; "
                                                           "past it the worker is stopped")
    sanitize: bool = Field(default=_default(EvalSettings, "sanitize"),
                           description="compute-sanitizer memcheck on every candidate that passes correctness, before "
                                       "timing (slow); winners are memchecked whatever this says")
    float64_arbiter: bool = Field(
        default=_default(EvalSettings, "float64_arbiter"),
        description="judge an output that fails again against the Model run in float64, atol widened by 10x the fp32 "
                    "reference's own rms error there (for problems whose outputs cancel; tools/verify/arbiter.py)")
    code_check: bool = Field(default=_default(EvalSettings, "code_check"),
                             description="the static pre-check of candidate Python (imports and calls outside an "
                                         "allow-list: forbidden_code) before any worker loads it; statements the "
                                         "candidate carries verbatim from its problem are trusted")
    isolation: IsolationMode = Field(
        default=_default(EvalSettings, "isolation"),
        description="the sandbox around candidate code (docs/SANDBOX.md): auto (default) = the strongest this "
                    "machine allows, saying what is missing, off = none, required = refuse to evaluate without the "
                    "full isolation")
    profile: bool = Field(default=_default(RunSettings, "profile"),
                          description="Nsight Compute metrics of a passed candidate (eval) or of each generation's "
                                      "best (run)")


class ModelConfig(_Section):
    """One chat model (agents.llm.ModelSettings), or a chain of them: an OpenAI-compatible name (OPENAI_BASE_URL /
    OPENAI_API_KEY) or provider:model, each optionally `@http://host/v1` (its endpoint). `models`: a fallback chain,
    tried in order when a model fails past its retries (agents.model_chain)."""

    model: str | None = None
    models: list[str] = Field(default_factory=list, description='a fallback chain: ["provider:model-a", '
                                                                 '"model-b@http://host/v1"]; the first is the model')
    temperature: float = Field(default=_default(ModelSettings, "temperature"), ge=0.0, le=2.0)
    base_url: str | None = _default(ModelSettings, "base_url")
    max_retries: int = Field(default=_default(ModelSettings, "max_retries"), ge=0,
                             description="retries of each model of the chain on 429, 5xx, timeouts, cut or "
                                         "unreadable answers, before the next model")
    timeout_s: float = Field(default=_default(ModelSettings, "timeout_s"), gt=0, description="per request")
    price_in_per_mtok: float = Field(default=_default(ModelSettings, "price_in_per_mtok"), ge=0.0,
                                     description="USD per million prompt tokens, for the cost budget")
    price_out_per_mtok: float = Field(default=_default(ModelSettings, "price_out_per_mtok"), ge=0.0,
                                      description="USD per million completion tokens")

    @model_validator(mode="after")
    def _one_way_to_name(self) -> ModelConfig:
        if (self.model is None) == (not self.models):
            raise PydanticCustomError("model_or_models", "name a model with `model = ...` or a chain with "
                                      "`models = [...]` (one of the two)")
        return self

    def settings(self, named_by: str) -> ModelSettings:
        # `model = "name@http://host/v1"` names its endpoint as a chain's entry does
        model, base_url = parse_model_spec(self.model if self.model is not None else self.models[0])
        return ModelSettings(model=model, temperature=self.temperature, base_url=base_url or self.base_url,
                             max_retries=self.max_retries, timeout_s=self.timeout_s,
                             price_in_per_mtok=self.price_in_per_mtok, price_out_per_mtok=self.price_out_per_mtok,
                             named_by=named_by, fallbacks=tuple(self.models[1:]))


class AgentsConfig(_Section):
    """Models per agent, and agents.context.RunSettings' search settings. `proposers` (translator, mutator,
    repairer) form an ensemble that takes turns."""

    proposers: list[ModelConfig] = Field(default_factory=list)
    critic: ModelConfig | None = None
    temperatures: tuple[float, ...] = _default(RunSettings, "temperatures")  # the proposers' steps, by generation
    temperature_schedule: Literal["fixed", "anneal"] = _default(RunSettings, "temperature_schedule")
    screen: bool = _default(RunSettings, "screen")
    crossover_rate: float = Field(default=_default(RunSettings, "crossover_rate"), ge=0.0, le=1.0)
    repair_rounds: int = Field(default=_default(RunSettings, "repair_rounds"), ge=0)
    offline_preview: bool = _default(RunSettings, "offline_preview")  # KERNELWRIGHT_AGENTS__OFFLINE_PREVIEW
    offline_fill: bool = _default(RunSettings, "offline_fill")  # first-generation slots: the defaults' neighbours
    offline_graphs: bool = _default(RunSettings, "offline_graphs")  # a CUDA graph per forward, as a tunable
    # a convolution's output kept channels-last for the kernels after it (LAYOUT "channels_last_kept")
    offline_channels_last_kept: bool = _default(RunSettings, "offline_channels_last_kept")
    # evaluations in flight in one run: with several GPUs (local or Ray), at least one per GPU keeps each busy
    eval_concurrency: int = Field(default=_default(RunSettings, "eval_concurrency"), ge=1)

    def model_settings(self, named_by: str) -> tuple[list[ModelSettings], ModelSettings | None]:
        """The proposers and the critic, each saying it was named by `named_by` (the file, for messages)."""
        return ([m.settings(named_by) for m in self.proposers],
                self.critic.settings(named_by) if self.critic else None)


class ProviderLimitsConfig(_Section):
    """agents.rate_limits.ProviderLimits of one provider; 0 = no limit."""

    requests_per_minute: float = Field(default=_default(ProviderLimits, "requests_per_minute"), ge=0.0)
    tokens_per_minute: float = Field(default=_default(ProviderLimits, "tokens_per_minute"), ge=0.0,
                                     description="estimated from the prompt (4 characters a token), corrected with "
                                                 "the usage each answer reports")
    max_concurrent: int = Field(default=_default(ProviderLimits, "max_concurrent"), ge=0)


class LLMConfig(_Section):
    """How chat model calls are retried (agents.model_chain.RetryPolicy; the number of retries is each model's
    max_retries) and each provider's limits, shared by all calls of a run. `providers` is keyed by the provider of
    provider:model names (anthropic, ...), "openai" for api.openai.com, or an endpoint's URL."""

    backoff_s: float = Field(default=_default(RetryPolicy, "backoff_s"), ge=0.0,
                             description="the first wait before a retry, doubled each retry (with jitter)")
    backoff_max_s: float = Field(default=_default(RetryPolicy, "backoff_max_s"), ge=0.0)
    retry_after_max_s: float = Field(default=_default(RetryPolicy, "retry_after_max_s"), ge=0.0,
                                     description="a server's Retry-After is honoured up to this many seconds")
    jitter: float = Field(default=_default(RetryPolicy, "jitter"), ge=0.0, le=1.0)
    cooldown_s: float = Field(default=_default(RetryPolicy, "cooldown_s"), ge=0.0,
                              description="a model that failed past its retries is tried last by the run's chains "
                                          "for this long (0: always first)")
    providers: dict[str, ProviderLimitsConfig] = Field(default_factory=dict)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(backoff_s=self.backoff_s, backoff_max_s=self.backoff_max_s,
                           retry_after_max_s=self.retry_after_max_s, jitter=self.jitter, cooldown_s=self.cooldown_s)

    def provider_limits(self) -> dict[str, ProviderLimits]:
        return {name: ProviderLimits(**limits.model_dump()) for name, limits in self.providers.items()}


class ExecutorConfig(_Section):
    """graphs.executors.ExecutorSettings: where builds and evaluations run (local: this machine's GPUs; ray: a Ray
    cluster, `pip install kernelwright[ray]`)."""

    kind: ExecutorKind = Field(default=_default(ExecutorSettings, "kind"),
                               description="local (sandbox workers here) or ray (CPU tasks build, GPU actors evaluate)")
    address: str | None = Field(default=_default(ExecutorSettings, "address"),
                                description="ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); None: "
                                            "RAY_ADDRESS, else Ray started on this machine")
    actors: int = Field(default=_default(ExecutorSettings, "actors"), ge=0,
                        description="ray: GPU actors a run evaluates on (0: one per GPU of the cluster)")
    retries: int = Field(default=_default(ExecutorSettings, "retries"), ge=0,
                         description="ray: tries again of an evaluation whose actor died, each on a fresh actor")

    def settings(self) -> ExecutorSettings:
        return ExecutorSettings(kind=self.kind, address=self.address, actors=self.actors, retries=self.retries)


class BudgetConfig(_Section):
    """A run's limits on LLM spending (graphs.run.RunBudget, whose defaults these are: 0, no limit; importing it
    here would load the graph's packages with every config); `run --max-cost-usd` and `--max-tokens` replace them."""

    cost_usd: float = Field(default=0.0, ge=0.0, description="stop the run once its LLM calls cost this much (USD)")
    tokens: int = Field(default=0, ge=0, description="stop the run after this many LLM tokens")


class KernelwrightConfig(_Section):
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    compile: CompileConfig = Field(default_factory=CompileConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    runs_dir: Path = Field(default=DEFAULT_RUNS_DIR, description="where run directories go (run, runs, trace, report)")
    # The Python API's console log level (KERNELWRIGHT_LOG_LEVEL; the CLI has --log-level). None: warnings and
    # errors only, and a structlog setup of the calling program is left as it is.
    log_level: Literal["debug", "info", "warning", "error", "critical"] | None = None
    _source: str | None = PrivateAttr(None)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def source(self) -> str:
        """Where the settings came from, for messages: the file, or "the config"."""
        return self._source or "the config"

    def build_settings(self) -> BuildSettings:
        c = self.compile
        return BuildSettings(arch=c.arch, cache_dir=c.cache_dir, timeout_s=c.timeout_s, fast_inline=c.fast_inline)

    def eval_settings(self) -> EvalSettings:
        h, t = self.harness, self.timing
        return EvalSettings(
            n_trials=h.n_trials, base_seed=h.base_seed, init_seed=h.init_seed,
            tolerances={k: Tolerance(*v) for k, v in h.tolerances.items()},
            bench=BenchSettings(warmup_ms=t.warmup_ms, rep_ms=t.rep_ms, min_trials=t.min_trials,
                                max_total_ms=t.max_total_ms, flush_l2=t.flush_l2, cuda_graph=t.cuda_graph),
            build=self.build_settings(),
            precision=h.precision, eager_baseline=h.eager_baseline, strict_baseline=h.strict_baseline,
            compile_baseline=h.compile_baseline, compile_mode=h.compile_mode, autotune_baseline=h.autotune_baseline,
            n_timing_sets=t.input_sets, load_timeout_s=h.load_timeout_s, call_timeout_s=h.call_timeout_s,
            host_memory_limit_gb=h.host_memory_limit_gb, sanitize=h.sanitize, code_check=h.code_check,
            isolation=h.isolation, float64_arbiter=h.float64_arbiter,
        )

    def run_setup(self, *, runs_dir: str | Path | None = None, settings: RunSettings | None = None) -> RunSetup:
        """What a run of the agent graph takes from these settings; `runs_dir` and `settings` (explicit
        arguments) replace the config's."""
        from kernelwright.graphs.run import RunSetup  # the graph's imports (langgraph) only when a run is made

        proposers, critic = self.agents.model_settings(f"{self.source} [agents]")
        return RunSetup(eval_settings=self.eval_settings(), run_settings=settings or self.run_settings(),
                        runs_dir=self.runs_dir if runs_dir is None else Path(runs_dir), proposers=tuple(proposers),
                        critic=critic, executor=self.executor.settings(), retry=self.llm.retry_policy(),
                        provider_limits=self.llm.provider_limits())

    def run_budget(self, **explicit: Any) -> RunBudget:
        """A run's RunBudget: [budget]'s LLM limits; `explicit` (the other limits, e.g. candidates) as given."""
        from kernelwright.graphs.run import RunBudget

        return RunBudget(**{"cost_usd": self.budget.cost_usd, "tokens": self.budget.tokens, **explicit})

    def run_settings(self, **explicit: Any) -> RunSettings:
        """A run's RunSettings from [agents] (and [harness] profile); `explicit` (CLI flags, e.g. generations) wins."""
        a = self.agents
        return RunSettings(**{"temperatures": a.temperatures, "temperature_schedule": a.temperature_schedule,
                              "screen": a.screen, "crossover_rate": a.crossover_rate,
                              "repair_rounds": a.repair_rounds, "offline_preview": a.offline_preview,
                              "offline_fill": a.offline_fill, "offline_graphs": a.offline_graphs,
                              "offline_channels_last_kept": a.offline_channels_last_kept,
                              "eval_concurrency": a.eval_concurrency,
                              "profile": self.harness.profile, **explicit})


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> KernelwrightConfig:
    """Merge defaults, the file, the environment and explicit overrides ({"harness.n_trials": 8} or nested)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file: {exc}", where=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", where=str(path)) from None
    _merge(data, _from_env(os.environ if env is None else env))
    for key, value in (overrides or {}).items():
        if value is not None:
            _merge(data, _nest(key.split("."), value))
    try:
        config = KernelwrightConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}", where=str(path) if path else "config") from None
    config._source = str(path) if path is not None else None
    return config


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in ENV_SHORT_FORMS.items():  # first, so that the SECTION__FIELD form wins
        if env.get(name):
            _merge(out, _nest(key.split("."), env[name]))
    top_level = {"runs_dir", "log_level"}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        # SECTION__FIELD or a top-level field; other KERNELWRIGHT_* variables (ARCHIVE, MODEL, ...) belong to
        # the parts that read them directly.
        if len(parts) >= 2 or parts[0] in top_level:
            _merge(out, _nest(parts, value))
    return out


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(parts):
        node = {part: node}
    return node


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def setting_sources(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                    overrides: Mapping[str, Any] | None = None, flags: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """Where each setting that is not its default came from, by dotted key: the config file's path, the
    environment variable's name, or the CLI flag (`flags` names the flag of each override key). The same layers,
    in the same order, as load_config; a key absent here has its default."""
    sources: dict[str, str] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError):
            data = {}  # load_config reports it
        sources.update({key: str(path) for key in _flat_keys(data)})
    env = os.environ if env is None else env
    for name in [*ENV_SHORT_FORMS, *(n for n in env if n not in ENV_SHORT_FORMS)]:
        if env.get(name) and (layer := _from_env({name: env[name]})):
            sources.update({key: name for key in _flat_keys(layer)})
    for key, value in (overrides or {}).items():
        if value is not None:
            sources.update({k: (flags or {}).get(key, "argument") for k in _flat_keys(_nest(key.split("."), value))})
    return sources


def flat_settings(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested settings mapping (an empty table is a leaf)."""
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            items += flat_settings(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _flat_keys(data: Mapping[str, Any]) -> list[str]:
    return [key for key, _ in flat_settings(data)]
