"""scrubbed_env: the environment handed to child processes."""

from __future__ import annotations

from kernelwright.tools.procenv import scrubbed_env


def test_an_override_named_base_is_an_override_not_the_base_environment() -> None:
    # worker settings arrive as scrubbed_env(**options.env); a variable called "base" must not replace the base
    env = scrubbed_env({"PATH": "/bin"}, **{"base": "x", "KW_FLAG": "1"})
    assert env["base"] == "x" and env["KW_FLAG"] == "1" and env["PATH"] == "/bin"


def test_secrets_stay_behind() -> None:
    env = scrubbed_env({"PATH": "/bin", "OPENAI_API_KEY": "sk-test"})
    assert "OPENAI_API_KEY" not in env and env["PATH"] == "/bin"
