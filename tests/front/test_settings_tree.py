"""The one settings tree: each section's defaults come from the part that owns them, every field is read, and
`--config FILE` reaches every section it names ([harness], [timing], [compile], [agents], runs_dir)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.cli import EXIT_NO_LLM, EXIT_REJECTED, app
from kernelwright.config import ConfigError, KernelwrightConfig, ModelConfig, load_config
from kernelwright.graphs.executors import ExecutorSettings
from kernelwright.graphs.run import RunBudget
from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.harness.evaluate import EvalSettings
from support.paths import FIXTURES as FIX
from support.paths import RELU_CANDIDATE

runner = CliRunner()

# A value other than the default for every field of the tree; a new field must be added here (and be read).
DISTINCT: dict[str, Any] = {
    "harness.n_trials": 3, "harness.base_seed": 7, "harness.init_seed": 4242,
    "harness.tolerances": {"float32": [1e-3, 1e-3, 1e-2]}, "harness.precision": "kernelbench",
    "harness.eager_baseline": False, "harness.strict_baseline": False, "harness.compile_baseline": False,
    "harness.compile_mode": "reduce-overhead", "harness.autotune_baseline": True, "harness.call_timeout_s": 30.0,
    "harness.load_timeout_s": 31.0, "harness.host_memory_limit_gb": 2.5, "harness.sanitize": True,
    "harness.profile": False, "harness.code_check": False, "harness.isolation": "off", "harness.float64_arbiter": False,
    "timing.warmup_ms": 1.5, "timing.rep_ms": 12.5, "timing.min_trials": 9, "timing.max_total_ms": 900.0,
    "timing.flush_l2": False, "timing.cuda_graph": True, "timing.input_sets": 2,
    "compile.arch": "sm_80", "compile.timeout_s": 77.0, "compile.cache_dir": "/tmp/kw-elsewhere",
    "compile.fast_inline": False,
    "agents.proposers": [{"model": "p"}], "agents.critic": {"model": "c"}, "agents.temperatures": [0.4],
    "agents.temperature_schedule": "fixed", "agents.screen": False, "agents.crossover_rate": 0.15,
    "agents.repair_rounds": 0, "agents.offline_preview": False, "agents.offline_fill": False, "agents.offline_graphs": True,
    "agents.offline_channels_last_kept": True, "agents.eval_concurrency": 5,
    "executor.kind": "ray", "executor.address": "10.0.0.1:6379", "executor.actors": 3, "executor.retries": 5,
    "budget.cost_usd": 2.5, "budget.tokens": 1000,
    "runs_dir": "elsewhere", "log_level": "info",
    "llm.backoff_s": 0.2, "llm.backoff_max_s": 3.0, "llm.retry_after_max_s": 9.0, "llm.jitter": 0.0, "llm.cooldown_s": 5.0,
    "llm.providers": {"openai": {"requests_per_minute": 60}},
}


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out |= _leaf_fields(kind, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def _what_the_parts_get(config: KernelwrightConfig) -> tuple[Any, ...]:
    """Everything the tree hands down: the typed settings of each part (and the two top-level fields)."""
    return (config.eval_settings(), config.build_settings(), config.run_settings(),
            config.agents.model_settings("kw.toml [agents]"), config.run_setup().executor, config.runs_dir,
            config.log_level, config.run_setup().retry, config.run_setup().provider_limits, config.run_budget())


def test_each_section_takes_its_defaults_from_the_part_that_owns_them() -> None:
    config = load_config(env={})
    assert config.eval_settings() == EvalSettings()
    assert config.build_settings() == BuildSettings()
    assert config.run_settings() == RunSettings()
    assert ModelConfig(model="m").settings("x") == ModelSettings(model="m", named_by="x")
    assert config.run_setup().executor == ExecutorSettings()
    assert config.run_budget() == RunBudget()


def test_every_field_of_the_tree_reaches_a_part() -> None:
    assert set(DISTINCT) == _leaf_fields(KernelwrightConfig)
    default = _what_the_parts_get(load_config(env={}))
    unread = [key for key, value in DISTINCT.items()
              if _what_the_parts_get(load_config(env={}, overrides={key: value})) == default]
    assert not unread


def test_removed_fields_are_refused_not_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "kw.toml"
    cfg.write_text("[compile]\njobs = 4\n")  # never read before; now a clear error instead of silence
    with pytest.raises(ConfigError, match="compile.jobs"):
        load_config(cfg, env={})


def test_short_environment_forms_for_the_build_and_the_long_form_wins() -> None:
    config = load_config(env={"KERNELWRIGHT_ARCH": "sm_80", "KERNELWRIGHT_CACHE_DIR": "/c"})
    assert config.build_settings() == BuildSettings(arch="sm_80", cache_dir=Path("/c"))
    both = load_config(env={"KERNELWRIGHT_ARCH": "sm_80", "KERNELWRIGHT_COMPILE__ARCH": "sm_90a"})
    assert both.compile.arch == "sm_90a"
    assert load_config(env={"KERNELWRIGHT_ARCH": "sm_80"}, overrides={"compile.arch": "sm_90a"}).compile.arch == "sm_90a"
    with pytest.raises(ConfigError, match="compile.arch: 'hopper' is not a GPU architecture"):
        load_config(env={"KERNELWRIGHT_ARCH": "hopper"})


def test_build_settings_reach_a_worker_as_its_environment_and_back() -> None:
    settings = BuildSettings(arch="sm_80", cache_dir=Path("/tmp/kw-c"), timeout_s=77.0)
    assert BuildSettings.from_env(settings.worker_env()) == settings
    assert BuildSettings().worker_env() == {} and BuildSettings.from_env({}) == BuildSettings()


def _config_file(tmp_path: Path) -> Path:
    cfg = tmp_path / "kw.toml"
    cfg.write_text(f'runs_dir = "{tmp_path / "configured-runs"}"\n'
                   "[harness]\nn_trials = 3\ninit_seed = 4242\ncompile_baseline = false\nprofile = false\n"
                   "[timing]\nrep_ms = 12.5\ninput_sets = 2\n"
                   f'[compile]\narch = "sm_80"\ntimeout_s = 77.0\ncache_dir = "{tmp_path / "kw-cache"}"\n'
                   "fast_inline = false\n"
                   "[agents]\nrepair_rounds = 0\ncrossover_rate = 0.15\ntemperatures = [0.4]\nscreen = false\n")
    return cfg


def test_run_config_file_reaches_the_harness_timing_compile_and_agents(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`kernelwright run --config` used to hand the harness a config loaded without the file."""
    import kernelwright.graphs.harness_evaluator as harness_module

    made: list[Any] = []

    class Recorded(harness_module.HarnessEvaluator):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(harness_module, "HarnessEvaluator", Recorded)  # the local executor's (graphs.executors)
    cfg = _config_file(tmp_path)
    # The offline translator cannot trace this problem: the run stops after building its evaluator, fast.
    result = runner.invoke(app, ["run", str(FIX / "problems" / "data_dependent.py"), "--config", str(cfg),
                                 "--no-archive"],
                           env={"CUDA_VISIBLE_DEVICES": "", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.exit_code == EXIT_NO_LLM, result.output
    (evaluator,) = made
    settings = evaluator.settings
    assert (settings.n_trials, settings.init_seed, settings.compile_baseline) == (3, 4242, False)  # [harness]
    assert (settings.bench.rep_ms, settings.n_timing_sets) == (12.5, 2)  # [timing]
    build = BuildSettings(arch="sm_80", cache_dir=tmp_path / "kw-cache", timeout_s=77.0, fast_inline=False)
    assert settings.build == build  # [compile] ...
    (gpu_evaluator,) = evaluator._all
    assert build.worker_env().items() <= gpu_evaluator.options.env.items()  # ... as the workers' environment
    (run_dir,) = (tmp_path / "configured-runs").iterdir()  # runs_dir
    recorded = json.loads((run_dir / "run.json").read_text())["settings"]
    assert (recorded["repair_rounds"], recorded["crossover_rate"], recorded["temperatures"], recorded["screen"]) == (
        0, 0.15, [0.4], False)  # [agents]
    assert recorded["profile"] is False  # [harness] profile: a run profiles nothing either
    listed = runner.invoke(app, ["runs", "--config", str(cfg)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and run_dir.name in listed.output, listed.output


@pytest.fixture
def slow_nvcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An nvcc on PATH that lists sm_80, writes every build command to a file and never finishes a build."""
    folder = tmp_path / "slow-cuda-bin"
    folder.mkdir()
    # where the workers' jail lets builds write (the configured cache's build/): the spy runs inside it
    calls = tmp_path / "kw-cache" / "build" / "nvcc-calls.txt"
    calls.parent.mkdir(parents=True)
    exe = folder / "nvcc"
    exe.write_text('#!/bin/sh\ncase "$1" in\n  --list-gpu-code) printf "sm_80\\nsm_90\\n" ;;\n'
                   '  --version) echo "Cuda compilation tools, release 0.0, V0.0.slow" ;;\n'
                   f'  *) echo "$@" >> {calls} ; sleep 60 ;;\nesac\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_eval_and_the_runs_builds_use_the_config_files_compile_section(tmp_path: Path, slow_nvcc: Path) -> None:
    """[compile] reaches nvcc inside the sandbox workers: its arch in the command, its time limit, its cache."""
    from kernelwright.graphs.harness_evaluator import HarnessEvaluator

    cfg = tmp_path / "kw.toml"
    cfg.write_text(f'[compile]\narch = "sm_80"\ntimeout_s = 1\ncache_dir = "{tmp_path / "kw-cache"}"\n'
                   "[harness]\nprofile = false\n")
    problem = FIX / "problems" / "relu_affine.py"
    result = runner.invoke(app, ["eval", "--json", "--no-sanitize", "--config", str(cfg), str(problem),
                                 str(RELU_CANDIDATE)], env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.exit_code == EXIT_REJECTED, result.output
    report = json.loads(result.stdout)
    assert report["reason"] == "timeout" and "nvcc did not finish within 1 s" in report["message"], report
    assert "-gencode=arch=compute_80,code=sm_80" in slow_nvcc.read_text()
    assert (tmp_path / "kw-cache" / "build").is_dir()

    slow_nvcc.unlink()
    evaluator = HarnessEvaluator(problem, load_config(cfg, env={}).eval_settings(), gpus=[])
    try:
        failed = evaluator.prepare(RELU_CANDIDATE)  # a run's parallel CPU build
    finally:
        evaluator.close()
    assert failed is not None and "nvcc did not finish within 1 s" in failed.message, failed
    assert "-gencode=arch=compute_80,code=sm_80" in slow_nvcc.read_text()



def test_a_model_chain_and_provider_limits_from_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "kw.toml"
    cfg.write_text('[llm]\nbackoff_s = 0.1\n[llm.providers."http://h:8000/v1"]\nrequests_per_minute = 60\n'
                   '[agents.critic]\nmodels = ["openai:m-a", "m-b@http://h:8000/v1"]\nmax_retries = 4\n')
    setup = load_config(cfg, env={"KERNELWRIGHT_LLM__RETRY_AFTER_MAX_S": "7"}).run_setup()
    assert setup.critic is not None and (setup.critic.model, setup.critic.base_url) == ("openai:m-a", None)
    assert setup.critic.fallbacks == ("m-b@http://h:8000/v1",) and setup.critic.max_retries == 4
    assert (setup.retry.backoff_s, setup.retry.retry_after_max_s) == (0.1, 7.0)
    assert setup.provider_limits["http://h:8000/v1"].requests_per_minute == 60
    cfg.write_text('[agents.critic]\nmodel = "a"\nmodels = ["b"]\n')
    with pytest.raises(ConfigError, match=r"agents.critic: name a model with `model = ...` or a chain with "):
        load_config(cfg, env={})
