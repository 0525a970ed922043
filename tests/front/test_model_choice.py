"""A model the user names is used or the run stops before any work (exit 5) saying why; offline only when none is
named."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.agents.evaluator import EvaluatorDefaults
from kernelwright.agents.llm import (
    DEFAULT_MODEL,
    OPENAI_URL,
    ChosenModel,
    LLMUnavailable,
    ModelPlan,
    ModelSettings,
    choose_model,
    make_chat_model,
    plan_models,
)
from kernelwright.cli import EXIT_NO_LLM, app
from kernelwright.cli_errors import ERROR_PREFIX
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.run import optimize
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "relu_affine.py"
LLM_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL", "ANTHROPIC_API_KEY")
runner = CliRunner()


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def without_providers_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """langchain (the providers extra) not installed, whatever this machine has."""
    monkeypatch.setitem(sys.modules, "langchain", None)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)


def fake_init_chat_model(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The providers extra installed, its init_chat_model failing as langchain's does (package missing, unknown
    provider)."""
    def init_chat_model(*args: object, **kwargs: object) -> None:
        raise error

    chat_models = types.ModuleType("langchain.chat_models")
    chat_models.init_chat_model = init_chat_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain", types.ModuleType("langchain"))
    monkeypatch.setitem(sys.modules, "langchain.chat_models", chat_models)


def test_nothing_named_and_no_endpoint_is_the_offline_translator_and_says_why() -> None:
    assert choose_model(ModelSettings(), env={}) is None
    plan = plan_models([ModelSettings()], env={})
    assert plan.proposers == () and "no model named" in plan.why_offline and "OPENAI_API_KEY" in plan.why_offline
    key_only = choose_model(ModelSettings(), env={"OPENAI_API_KEY": "k"})
    assert key_only.name == DEFAULT_MODEL and key_only.endpoint == OPENAI_URL and key_only.key_env == "OPENAI_API_KEY"
    local = choose_model(ModelSettings(model="m"), env={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
    assert local.endpoint == "http://127.0.0.1:1/v1" and local.key_env is None  # a local endpoint needs no key


def test_a_named_openai_model_without_key_or_endpoint_says_which_variables_to_set() -> None:
    with pytest.raises(LLMUnavailable) as info:
        choose_model(ModelSettings(model="gpt-4.1", named_by="--model"), env={})
    assert info.value.kind == "llm" and info.value.where == "--model"
    assert info.value.message == ("model 'gpt-4.1' cannot be used: set OPENAI_API_KEY for https://api.openai.com/v1, "
                                  "or OPENAI_BASE_URL for another OpenAI-compatible endpoint (a local one needs no "
                                  "key). Nothing was run.")
    with pytest.raises(LLMUnavailable) as from_env:  # the variable names a model as much as a flag does
        plan_models([ModelSettings()], env={"KERNELWRIGHT_MODEL": "gpt-4.1"})
    assert from_env.value.where == "KERNELWRIGHT_MODEL"


def test_a_provider_model_without_the_extra_names_the_pip_command_and_the_key(without_providers_extra: None) -> None:
    with pytest.raises(LLMUnavailable) as info:
        choose_model(ModelSettings(model="anthropic:claude-x", named_by="--model"), env={})
    assert "install the providers extra (pip install 'kernelwright[providers]')" in info.value.message
    assert "set ANTHROPIC_API_KEY" in info.value.message
    with pytest.raises(LLMUnavailable, match=r"install the providers extra") as keyed:
        choose_model(ModelSettings(model="anthropic:claude-x"), env={"ANTHROPIC_API_KEY": "k"})
    assert "ANTHROPIC_API_KEY" not in keyed.value.message


def test_a_missing_provider_package_or_an_unknown_provider_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_init_chat_model(monkeypatch, ImportError("Initializing ChatAnthropic requires the langchain-anthropic "
                                                  "package. Please install it with `pip install langchain-anthropic`"))
    with pytest.raises(LLMUnavailable, match=r"its provider's package is missing: .*pip install langchain-anthropic"):
        make_chat_model(ModelSettings(model="anthropic:claude-x"), env={"ANTHROPIC_API_KEY": "k"})
    fake_init_chat_model(monkeypatch, ValueError("Unable to infer model provider for model='foo:bar'.\n\n"
                                                 "Supported providers: anthropic, openai"))
    with pytest.raises(LLMUnavailable) as info:
        make_chat_model(ModelSettings(model="foo:bar"), env={})
    assert "init_chat_model knows no provider 'foo' (Supported providers: anthropic, openai)" in info.value.message
    assert "written openai:NAME" in info.value.message


def test_openai_prefix_stays_on_the_openai_client_without_the_extra(without_providers_extra: None) -> None:
    with ReplayServer([ReplayRule("hello")]) as server:
        llm = make_chat_model(ModelSettings(model="openai:qwen2.5-coder:32b"), env={"OPENAI_BASE_URL": server.base_url})
        assert llm.invoke("hi").content == "hello"
    assert server.requests[0]["model"] == "qwen2.5-coder:32b"


def test_a_resumed_run_keeps_its_recorded_models_unless_others_are_named() -> None:
    recorded = ModelPlan((ChosenModel(ModelSettings(model="m", base_url="http://h/v1"), key_env="OPENAI_API_KEY"),))
    recorded = ModelPlan.from_dict(json.loads(json.dumps(recorded.to_dict())), "run r1's run.json")
    kept = plan_models([ModelSettings()], env={"OPENAI_API_KEY": "k"}, recorded=recorded)
    assert [(m.name, m.endpoint) for m in kept.proposers] == [("m", "http://h/v1")]
    with pytest.raises(LLMUnavailable) as info:  # the key it ran with is gone: stop, never go offline
        plan_models([ModelSettings()], env={}, recorded=recorded)
    assert info.value.where == "run r1's run.json" and "set OPENAI_API_KEY" in info.value.message
    named = plan_models([ModelSettings(model="other", base_url="http://o/v1")], env={}, recorded=recorded)
    assert [m.name for m in named.proposers] == ["other"]
    offline = plan_models([ModelSettings()], env={"OPENAI_API_KEY": "k"}, recorded=ModelPlan())
    assert offline.proposers == () and "resumed run was offline" in offline.why_offline
    with pytest.raises(LLMUnavailable, match=r"optimize\(llm=...\)"):
        plan_models([ModelSettings()], env={}, recorded=ModelPlan(caller_supplied=True))


def test_a_critic_without_any_proposer_model_is_an_error_not_ignored() -> None:
    with pytest.raises(LLMUnavailable, match="no proposer model is configured"):
        plan_models([ModelSettings()], ModelSettings(model="c", base_url="http://h/v1", named_by="--critic-model"),
                    env={})


def test_api_optimize_with_an_unusable_model_raises_before_any_work(tmp_path: Path, no_llm_env: None) -> None:
    class NoEvaluator(EvaluatorDefaults):
        def evaluate(self, candidate: Path) -> EvalReport:
            raise AssertionError("nothing may be evaluated")

        def sanitize(self, candidate: Path) -> SanitizeVerdict:
            raise AssertionError("nothing may be evaluated")

    with pytest.raises(LLMUnavailable) as info:
        optimize(PROBLEM, runs_dir=tmp_path, model=ModelSettings(model="gpt-4.1"), evaluator=NoEvaluator())
    assert info.value.where == "optimize(model=...)" and "OPENAI_API_KEY" in info.value.message
    assert not list(tmp_path.iterdir())  # no run directory: nothing ran


def test_cli_named_model_without_key_exits_5_before_any_work(tmp_path: Path, no_llm_env: None) -> None:
    result = runner.invoke(app, ["run", str(PROBLEM), "--runs-dir", str(tmp_path), "--model", "gpt-4.1"])
    assert result.exit_code == EXIT_NO_LLM, result.output
    text = " ".join(result.output.split())
    assert text == (f"{ERROR_PREFIX} --model: model 'gpt-4.1' cannot be used: set OPENAI_API_KEY for https://api.openai.com/v1, "
                    "or OPENAI_BASE_URL for another OpenAI-compatible endpoint (a local one needs no key). Nothing "
                    "was run.")
    assert not list(tmp_path.iterdir())


def test_cli_provider_model_without_the_extra_exits_5_naming_the_pip_command(tmp_path: Path, no_llm_env: None,
                                                                              without_providers_extra: None) -> None:
    result = runner.invoke(app, ["run", str(PROBLEM), "--runs-dir", str(tmp_path), "--model", "anthropic:claude-x"])
    assert result.exit_code == EXIT_NO_LLM, result.output
    text = " ".join(result.output.split())
    assert "model 'anthropic:claude-x' cannot be used" in text
    assert "pip install 'kernelwright[providers]'" in text and "set ANTHROPIC_API_KEY" in text  # brackets printed
    assert "offline" not in text and not list(tmp_path.iterdir())


def test_cli_config_file_model_is_named_with_its_file(tmp_path: Path, no_llm_env: None) -> None:
    config = tmp_path / "kw.toml"
    config.write_text('[[agents.proposers]]\nmodel = "gpt-4.1"\n')
    result = runner.invoke(app, ["run", str(PROBLEM), "--runs-dir", str(tmp_path / "runs"), "--config", str(config)])
    assert result.exit_code == EXIT_NO_LLM, result.output
    assert f"{config} [agents]: model 'gpt-4.1' cannot be used" in " ".join(result.output.split())
