"""kernelwright's one configuration object.

Precedence, lowest to highest: defaults < config file (TOML) < environment
(KERNELWRIGHT_<SECTION>__<FIELD>, e.g. KERNELWRIGHT_HARNESS__N_TRIALS=8) <
explicit per-run values (CLI flags, API arguments). The environment never beats
an explicit argument.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from kernelwright.tools.compare import Tolerance
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.evaluate import EvalSettings
from kernelwright.tools.nvcc import unsupported_arch
from kernelwright.tools.precision import ProfileName
from kernelwright.tools.timing import BenchSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "KERNELWRIGHT_"


class ConfigError(KernelwrightError):
    kind = "config"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompileConfig(_Section):
    arch: str | None = Field(None, description="nvcc target, e.g. sm_90a; None = the visible GPU's")
    jobs: int | None = Field(None, ge=1, description="parallel nvcc builds; None = CPU count")
    timeout_s: float = Field(180.0, gt=0)
    cache_dir: Path | None = Field(None, description="build cache; None = ~/.cache/kernelwright/build")
    fast_inline: bool = Field(True, description="build load_inline candidates with the fast builder")

    @field_validator("arch")
    @classmethod
    def _buildable_arch(cls, arch: str | None) -> str | None:
        if arch is not None and (why := unsupported_arch(arch)):
            raise PydanticCustomError("gpu_arch", why)  # verbatim: a ValueError's message gets a "Value error, " prefix
        return arch


class TimingConfig(_Section):
    warmup_ms: float = 25.0
    rep_ms: float = 200.0
    min_trials: int = Field(100, ge=1)
    max_total_ms: float = 8000.0
    flush_l2: bool = True
    cuda_graph: bool = False
    input_sets: int = Field(3, ge=1, description="input sets rotated during timing")


class HarnessConfig(_Section):
    n_trials: int = Field(5, ge=1, description="correctness trials, each with fresh seeded inputs")
    base_seed: int = 1000
    init_seed: int = 42
    tolerances: dict[str, tuple[float, float, float]] = Field(
        default_factory=dict, description="dtype -> (atol, rtol, rel_l2), overriding the defaults")
    precision: ProfileName = Field(
        "strict", description="strict: fp32 reference with TF32 off, fp32 atol=rtol=1e-4; kernelbench: reference under "
                              "PyTorch defaults and atol=rtol=1e-2, as KernelBench's evaluator (tables say which)")
    eager_baseline: bool = True
    strict_baseline: bool = Field(True, description="also time eager with TF32 off (an extra column)")
    compile_baseline: bool = True
    compile_mode: str | None = None
    autotune_baseline: bool = Field(False, description="also time torch.compile(mode='max-autotune-no-cudagraphs')")
    call_timeout_s: float = Field(600.0, gt=0, description="upper bound of a call's watchdog, which otherwise scales "
                                                            "with the reference's call: max(10 s, 100x)")
    load_timeout_s: float = 600.0
    host_memory_limit_gb: float | None = Field(8.0, gt=0, description="host memory (PSS) of one evaluation's workers "
                                                                       "together; past it the worker is stopped")
    sanitize: bool = Field(False, description="compute-sanitizer memcheck on every candidate that passes correctness, "
                                               "before timing (slow); winners are memchecked whatever this says")
    profile: bool = True


class ModelConfig(_Section):
    """One chat model: an OpenAI-compatible name (OPENAI_BASE_URL / OPENAI_API_KEY) or provider:model."""

    model: str
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    base_url: str | None = None
    price_in_per_mtok: float = Field(0.0, ge=0.0, description="USD per million prompt tokens, for the cost budget")
    price_out_per_mtok: float = Field(0.0, ge=0.0, description="USD per million completion tokens")


class AgentsConfig(_Section):
    """Models per agent. `proposers` (translator, mutator, repairer) form an ensemble that takes turns."""

    proposers: list[ModelConfig] = Field(default_factory=list)
    critic: ModelConfig | None = None
    temperatures: tuple[float, ...] = (0.2, 0.7, 1.0)  # the proposers' temperature steps, annealed by generation
    temperature_schedule: Literal["fixed", "anneal"] = "anneal"
    screen: bool = True
    crossover_rate: float = Field(0.3, ge=0.0, le=1.0)
    repair_rounds: int = Field(2, ge=0)


class KernelwrightConfig(_Section):
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    compile: CompileConfig = Field(default_factory=CompileConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    runs_dir: Path = Path("runs")
    # The Python API's console log level (KERNELWRIGHT_LOG_LEVEL; the CLI has --log-level). None: warnings and
    # errors only, and a structlog setup of the calling program is left as it is.
    log_level: Literal["debug", "info", "warning", "error", "critical"] | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def eval_settings(self) -> EvalSettings:
        h, t = self.harness, self.timing
        return EvalSettings(
            n_trials=h.n_trials, base_seed=h.base_seed, init_seed=h.init_seed,
            tolerances={k: Tolerance(*v) for k, v in h.tolerances.items()},
            bench=BenchSettings(warmup_ms=t.warmup_ms, rep_ms=t.rep_ms, min_trials=t.min_trials,
                                max_total_ms=t.max_total_ms, flush_l2=t.flush_l2, cuda_graph=t.cuda_graph),
            precision=h.precision, eager_baseline=h.eager_baseline, strict_baseline=h.strict_baseline,
            compile_baseline=h.compile_baseline, compile_mode=h.compile_mode, autotune_baseline=h.autotune_baseline,
            n_timing_sets=t.input_sets, load_timeout_s=h.load_timeout_s, call_timeout_s=h.call_timeout_s,
            host_memory_limit_gb=h.host_memory_limit_gb, fast_inline=self.compile.fast_inline, sanitize=h.sanitize,
        )

    def worker_env(self) -> dict[str, str]:
        """Variables the sandbox workers need to build like the harness does."""
        env = {}
        if self.compile.arch:
            env["KERNELWRIGHT_ARCH"] = self.compile.arch
        if self.compile.cache_dir:
            env["KERNELWRIGHT_CACHE_DIR"] = str(self.compile.cache_dir)
        return env


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
        return KernelwrightConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}", where=str(path) if path else "config") from None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    top_level = {"runs_dir", "log_level"}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        # SECTION__FIELD or a top-level field; other KERNELWRIGHT_* variables (ARCH, CACHE_DIR, ARCHIVE,
        # MODEL, ...) belong to the parts that read them directly.
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
