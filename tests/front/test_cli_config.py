"""The front door: CLI exit codes and output, configuration precedence, logging sinks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from kernelwright.cli import EXIT_BAD_INPUT, EXIT_NEEDS_GPU, EXIT_NO_LLM, app
from kernelwright.config import ConfigError, load_config
from kernelwright.logging_setup import configure_logging
from support.paths import FIXTURES as FIX
from support.paths import RELU_CANDIDATE

runner = CliRunner()


def _no_gpu_env(build_cache: Path) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a",
            "KERNELWRIGHT_ARCHIVE": str(build_cache.parent / "kw-archive")}


@pytest.mark.nvcc
def test_eval_without_gpu_compiles_then_says_verification_needs_a_gpu(build_cache: Path) -> None:
    result = runner.invoke(app, ["eval", str(FIX / "problems" / "relu_affine.py"), str(RELU_CANDIDATE)],
                           env=_no_gpu_env(build_cache))
    assert result.exit_code == EXIT_NEEDS_GPU, result.output
    assert "NEEDS_GPU" in result.output and "CUDA GPU" in result.output


@pytest.mark.nvcc
def test_eval_json_is_machine_readable(build_cache: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "events.jsonl"
    result = runner.invoke(app, ["eval", "--json", "--log-file", str(log_file), str(FIX / "problems" / "relu_affine.py"),
                                 str(FIX / "broken" / "candidate_compile_error.py")], env=_no_gpu_env(build_cache))
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["reason"] == "compile_error"
    assert report["error"]["diagnostics"][0]["line"] == 4
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(e["event"] == "candidate_evaluated" and e["reason"] == "compile_error" for e in events)


def test_eval_with_malformed_problem_names_file_and_line(build_cache: Path) -> None:
    result = runner.invoke(app, ["eval", str(FIX / "broken" / "syntax_error.py"), str(RELU_CANDIDATE)],
                           env=_no_gpu_env(build_cache))
    assert result.exit_code == EXIT_BAD_INPUT
    assert "syntax_error.py:5" in result.output


def test_env_reports_without_a_gpu() -> None:
    result = runner.invoke(app, ["env", "--json"], env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "torch" in json.dumps(data)


def test_config_precedence_defaults_file_env_explicit(tmp_path: Path) -> None:
    assert load_config(env={}).harness.n_trials == 5
    cfg_file = tmp_path / "kw.toml"
    cfg_file.write_text("[harness]\nn_trials = 7\ncall_timeout_s = 30\n[compile]\narch = 'sm_80'\n")
    assert load_config(cfg_file, env={}).harness.n_trials == 7
    env = {"KERNELWRIGHT_HARNESS__N_TRIALS": "9"}
    from_env = load_config(cfg_file, env=env)
    assert from_env.harness.n_trials == 9 and from_env.harness.call_timeout_s == 30.0
    explicit = load_config(cfg_file, env=env, overrides={"harness.n_trials": 11, "compile.arch": None})
    assert explicit.harness.n_trials == 11 and explicit.compile.arch == "sm_80"
    settings = explicit.eval_settings()
    assert settings.n_trials == 11 and settings.call_timeout_s == 30.0


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[harness]\nn_trials = 0\nbogus = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert "harness.n_trials" in str(info.value) and "harness.bogus" in str(info.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[harness\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(broken, env={})


def test_logging_writes_json_lines_and_console(tmp_path: Path) -> None:
    console = io.StringIO()
    path = tmp_path / "run" / "events.jsonl"
    configure_logging(level="info", json_path=path, stream=console)
    try:
        structlog.get_logger("t").bind(run_id="r1").info("candidate_done", speedup=1.5)
        structlog.get_logger("t").debug("hidden")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{**lines[0], "event": "candidate_done", "run_id": "r1", "speedup": 1.5, "level": "info"}]
    assert "timestamp" in lines[0] and "candidate_done" in console.getvalue() and "hidden" not in console.getvalue()


@pytest.mark.nvcc
def test_run_without_an_llm_goes_offline_compiles_then_needs_a_gpu(tmp_path: Path, build_cache: Path) -> None:
    result = runner.invoke(app, ["run", str(FIX / "problems" / "relu_affine.py"), "--runs-dir", str(tmp_path),
                                 "--generations", "1"],
                           env={**_no_gpu_env(build_cache), "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.exit_code == EXIT_NEEDS_GPU, result.output
    assert "No LLM configured" in result.output and "offline translator" in result.output
    assert "nothing is verified" in result.output
    (run_dir,) = tmp_path.iterdir()
    metas = [json.loads(p.read_text()) for p in run_dir.glob("candidates/*/meta.json")]
    assert metas and all(m["agent"] == "offline" and m["variant"] for m in metas)
    reports = [json.loads(p.read_text()) for p in run_dir.glob("candidates/*/report.json")]
    assert len(reports) == len(metas) and {r["status"] for r in reports} == {"needs_gpu"}


def test_run_without_an_llm_on_a_problem_the_offline_translator_cannot_trace_says_so(tmp_path: Path,
                                                                                    build_cache: Path) -> None:
    """Data-dependent control flow defeats torch.export: no candidate, a named reason, an exit code of its
    own, one generation (it used to raise out of the translate node)."""
    result = runner.invoke(app, ["run", str(FIX / "problems" / "data_dependent.py"), "--runs-dir", str(tmp_path)],
                           env={**_no_gpu_env(build_cache), "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.exit_code == EXIT_NO_LLM, result.output
    text = " ".join(result.output.split())
    assert "nothing to propose" in text and "cannot trace the problem" in text and "OPENAI_API_KEY" in text
    (run_dir,) = tmp_path.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["generations_done"] == 1 and not list(run_dir.glob("candidates/*"))


@pytest.mark.nvcc
def test_run_end_to_end_over_http_compiles_then_needs_a_gpu(tmp_path: Path, build_cache: Path) -> None:
    from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
    from support.paths import RELU_CANDIDATE

    answer = "```python\n" + RELU_CANDIDATE.read_text() + "```"
    with ReplayServer([ReplayRule(answer, repeat=True)]) as server:
        result = runner.invoke(app, ["run", str(FIX / "problems" / "relu_affine.py"), "--runs-dir", str(tmp_path),
                                     "--generations", "1", "--candidates", "1", "--model", "replay", "--no-screen"],
                               env={**_no_gpu_env(build_cache), "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "t"})
    assert result.exit_code == EXIT_NEEDS_GPU, result.output
    assert "nothing is verified" in result.output
    (run_dir,) = tmp_path.iterdir()
    agents = sorted(json.loads(p.read_text())["agent"] for p in run_dir.glob("candidates/*/meta.json"))
    assert agents[-1] == "translator" and set(agents[:-1]) == {"offline"}  # the LLM's kernel + offline seeds
    assert f"proposed {len(agents)}" in result.output and f"unverified (no GPU) {len(agents)}" in result.output
    reports = list(run_dir.glob("candidates/*/report.json"))
    assert len(reports) == len(agents) and {json.loads(r.read_text())["status"] for r in reports} == {"needs_gpu"}
    assert (run_dir / "checkpoints.sqlite").exists() and (run_dir / "run.json").exists()


def test_agents_config_section_validates_models_and_prices(tmp_path: Path) -> None:
    cfg = tmp_path / "kw.toml"
    cfg.write_text('[agents]\ntemperatures = [0.1, 0.9]\n[[agents.proposers]]\nmodel = "a"\nprice_in_per_mtok = 2.5\n'
                   '[[agents.proposers]]\nmodel = "openai:b"\n[agents.critic]\nmodel = "c"\ntemperature = 0.0\n')
    config = load_config(cfg)
    assert [m.model for m in config.agents.proposers] == ["a", "openai:b"]
    assert config.agents.proposers[0].price_in_per_mtok == 2.5 and config.agents.critic.temperature == 0.0
    assert config.agents.temperatures == (0.1, 0.9)
    cfg.write_text('[agents]\ncrossover_rate = 3\n')
    with pytest.raises(ConfigError, match="agents.crossover_rate"):
        load_config(cfg)


def test_tool_variables_are_not_config_sections_and_the_build_ones_are_short_forms() -> None:
    env = {"KERNELWRIGHT_ARCHIVE": "/x", "KERNELWRIGHT_ARCH": "sm_90a", "KERNELWRIGHT_MODEL": "m",
           "KERNELWRIGHT_HARNESS__N_TRIALS": "7", "KERNELWRIGHT_LOG_LEVEL": "debug"}
    config = load_config(env=env)
    assert config.harness.n_trials == 7 and config.log_level == "debug" and config.compile.arch == "sm_90a"


def test_the_run_summary_says_when_the_best_kernel_is_slower_than_eager_and_never_prints_a_missing_speedup() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from kernelwright.cli import _print_run_result

    def summary(best: dict) -> str:
        console = Console(record=True, width=200)
        _print_run_result(console, SimpleNamespace(best=best, run_id="r1", run_dir="runs/r1", sanitizer=None,
                                                   state={"stop_reason": "generations: 2 of 2", "generation": 2}))
        return console.export_text()

    slow = summary({"source_path": "k.py", "speedup_vs_eager": 0.62, "speedup_vs_compile": None})
    assert "0.62x vs eager" in slow and "n/a (not measured) vs torch.compile" in slow
    assert "slower than PyTorch eager" in slow and "0.00x" not in slow
    assert "sanitized: no (memcheck not run)" in slow  # a best without a verdict is never called sanitized
    fast = summary({"source_path": "k.py", "speedup_vs_eager": 2.5, "speedup_vs_compile": 1.1})
    assert "2.50x vs eager, 1.10x vs torch.compile" in fast and "slower" not in fast
    assert "finished: 2 generations (0 to 1)" in fast  # numbered as trace and the report number them
