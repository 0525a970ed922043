"""An LLM outage names the endpoint, what failed, the attempts and the exact resume command; a resume keeps the
run's models or stops saying why (exit 5), never finishing offline. The real langchain-openai client throughout."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import LLMUnavailable, ModelPlan, ModelSettings, choose_model, make_chat_model
from kernelwright.agents.llm_failure import llm_failure
from kernelwright.cli import EXIT_NO_LLM, app
from kernelwright.cli_errors import ERROR_PREFIX
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.run import LLMRunError, RunError, optimize
from support.graph_fakes import answer
from support.graph_run import LoggingEvaluator
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "relu_affine.py"
SETTINGS = RunSettings(generations=1, candidates_per_generation=1, screen=False, profile=False, critic=False,
                       offline_seeds=False)
runner = CliRunner()


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def failure_of(settings: ModelSettings, env: dict[str, str]) -> str | None:
    chosen = choose_model(settings, env)
    with pytest.raises(Exception) as info:
        make_chat_model(chosen, env).invoke("write a kernel")
    return llm_failure(info.value, ModelPlan((chosen,)))


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_what_failed_where_and_how_many_attempts() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert failure_of(ModelSettings(model="m", base_url=url, max_retries=1), {}) == (
        f"the LLM 'm' at {url} could not be reached: connection refused (2 attempts)")
    with ReplayServer([ReplayRule("overloaded", repeat=True, status=503)]) as server:
        text = failure_of(ModelSettings(model="m", base_url=server.base_url, max_retries=1), {})
    assert len(server.requests) == 2  # the count the message gives is the count made
    assert text == f"the LLM 'm' at {server.base_url} failed with a server error: HTTP 503, overloaded (2 attempts)"
    with ReplayServer([ReplayRule("bad key", repeat=True, status=401)]) as server:
        text = failure_of(ModelSettings(model="m", max_retries=2),
                          {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": server.base_url})
    assert len(server.requests) == 1  # a rejected key is not retried
    assert text == (f"the LLM 'm' at {server.base_url} rejected the API key: HTTP 401, bad key; check OPENAI_API_KEY "
                    "(1 attempt)")
    assert llm_failure(RuntimeError("not a model call"), ModelPlan()) is None


def test_a_failure_that_is_not_the_llm_keeps_its_type_and_reads_cleanly(tmp_path: Path) -> None:
    class Exploding:
        def invoke(self, messages: Any) -> Any:
            raise RuntimeError("model exploded.")

    with pytest.raises(RunError) as info:
        optimize(PROBLEM, runs_dir=tmp_path, run_id="x1", settings=SETTINGS, llm=Exploding(),
                 evaluator=LoggingEvaluator(tmp_path / "log", None))
    assert not isinstance(info.value, LLMRunError)
    assert info.value.message.startswith("run x1 stopped in node 'translate': RuntimeError: model exploded. Everything")
    assert ".." not in info.value.message


def test_outage_then_resume_without_the_variables_stops_then_resume_with_them_finishes_on_the_recorded_model(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    port, log = closed_port(), tmp_path / "evaluated.log"
    url = f"http://127.0.0.1:{port}/v1"
    no_llm_env.setenv("OPENAI_API_KEY", "sk-secret-123")
    no_llm_env.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(LLMRunError) as info:
        optimize(PROBLEM, runs_dir=tmp_path, run_id="o1", settings=SETTINGS, evaluator=LoggingEvaluator(log, None),
                 model=ModelSettings(model="m", max_retries=0))
    assert info.value.message == (
        f"run o1 stopped in node 'translate': the LLM 'm' at {url} could not be reached: connection refused "
        f"(1 attempt). Everything evaluated so far is saved; once the LLM answers, continue with "
        f"`kernelwright run {PROBLEM} --resume o1 --runs-dir {tmp_path}`")
    assert info.value.details["resume_command"] in info.value.message
    recorded = json.loads((tmp_path / "o1" / "run.json").read_text())
    assert recorded["models"] == ["m"] and recorded["llm"]["proposers"][0]["base_url"] == url
    assert "sk-secret-123" not in (tmp_path / "o1" / "run.json").read_text()  # the variable's name, never the key

    no_llm_env.delenv("OPENAI_API_KEY")
    no_llm_env.delenv("OPENAI_BASE_URL")
    with pytest.raises(LLMUnavailable) as stopped:  # used to finish the run offline without a word
        optimize(PROBLEM, runs_dir=tmp_path, resume="o1", settings=SETTINGS, evaluator=LoggingEvaluator(log, None))
    assert stopped.value.where == "run o1's run.json"
    assert stopped.value.message == (f"model 'm' cannot be used: set OPENAI_API_KEY (its endpoint {url} was used with "
                                     "a key). Nothing was run.")
    assert not log.exists()

    no_llm_env.setenv("OPENAI_API_KEY", "k")  # the key back, no base URL: the recorded endpoint is used
    with ReplayServer([ReplayRule(answer(1.4))], port=port) as server:
        result = optimize(PROBLEM, runs_dir=tmp_path, resume="o1", settings=SETTINGS,
                          evaluator=LoggingEvaluator(log, None))
    assert [r["model"] for r in server.requests] == ["m"]
    assert result.best["speedup_vs_eager"] == 1.4 and result.best["agent"] == "translator"


def test_cli_outage_message_and_exit_code_then_resume_without_the_variables(tmp_path: Path, build_cache: Path,
                                                                            no_llm_env: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    env = {"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a"}
    args = ["run", str(PROBLEM), "--runs-dir", str(tmp_path), "--no-archive"]
    result = runner.invoke(app, [*args, "--generations", "1", "--candidates", "1", "--no-screen", "--model", "gpt-4.1"],
                           env={**env, "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": url})
    assert result.exit_code == EXIT_NO_LLM, result.output
    (run_dir,) = tmp_path.iterdir()
    text = " ".join(result.output.split())
    assert f"gpt-4.1 ({url}, from --model)" in text  # which model the run uses, said before it starts
    assert (f"run {run_dir.name} stopped in node 'translate': the LLM 'gpt-4.1' at {url} could not be reached: "
            f"connection refused (3 attempts). Everything evaluated so far is saved; once the LLM answers, continue "
            f"with `kernelwright run {PROBLEM} --resume {run_dir.name} --runs-dir {tmp_path}`") in text
    events = (run_dir / "events.jsonl").read_text()

    resumed = runner.invoke(app, [*args, "--resume", run_dir.name], env=env)
    assert resumed.exit_code == EXIT_NO_LLM, resumed.output
    assert " ".join(resumed.output.split()) == (
        f"{ERROR_PREFIX} run {run_dir.name}'s run.json: model 'gpt-4.1' cannot be used: set OPENAI_API_KEY (its endpoint "
        f"{url} was used with a key). Nothing was run.")
    assert (run_dir / "events.jsonl").read_text() == events  # nothing ran
