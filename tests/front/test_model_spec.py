"""A model named with its endpoint ("name@http://host/v1") keeps that endpoint wherever a model is named: a chain's
entry, a config's single `model =`, and --model on the command line (the single forms once kept "@url" in the
model's name and sent it to api.openai.com)."""

from __future__ import annotations

from pathlib import Path

from kernelwright.agents.llm import ModelSettings
from kernelwright.config import load_config


def test_a_configs_single_model_and_a_chain_both_take_their_endpoint(tmp_path: Path) -> None:
    config = tmp_path / "kw.toml"
    config.write_text('[[agents.proposers]]\nmodels = ["a@http://127.0.0.1:9001/v1", "b@http://127.0.0.1:9002/v1"]\n'
                      '[agents.critic]\nmodel = "openai:c@http://127.0.0.1:9003/v1"\n')
    proposers, critic = load_config(config, env={}).agents.model_settings(str(config))
    assert (proposers[0].model, proposers[0].base_url) == ("a", "http://127.0.0.1:9001/v1")
    assert proposers[0].fallbacks == ("b@http://127.0.0.1:9002/v1",)
    assert critic is not None and (critic.model, critic.base_url) == ("openai:c", "http://127.0.0.1:9003/v1")


def test_a_model_named_on_the_command_line_takes_its_endpoint() -> None:
    named = ModelSettings.from_spec("qwen@http://gpu-box:8000/v1", "--model")
    assert (named.model, named.base_url, named.named_by) == ("qwen", "http://gpu-box:8000/v1", "--model")
    plain = ModelSettings.from_spec("gpt-4.1", "--model")
    assert (plain.model, plain.base_url) == ("gpt-4.1", None)
