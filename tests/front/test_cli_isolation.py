"""`kernelwright env` and the [harness] isolation setting: what the sandbox gives is stated, never assumed."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.config import ConfigError, load_config
from kernelwright.tools.sandbox.isolation import probe

runner = CliRunner()


def test_env_states_the_isolation_in_force() -> None:
    result = runner.invoke(app, ["env", "--json"], env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.exit_code == 0, result.output
    iso = json.loads(result.stdout)["isolation"]
    assert iso["setting"] == "auto"
    state = probe()
    if sys.platform.startswith("linux") and {"net", "mount"} <= set(state.get("namespaces") or []):
        assert iso["in_force"].startswith("namespaces: net+mount; file system: read-only")
    else:
        assert "namespaces: none" in iso["in_force"]  # said plainly where the platform lacks them


def test_env_with_isolation_off_says_so() -> None:
    result = runner.invoke(app, ["env", "--json"], env={"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_HARNESS__ISOLATION": "off"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["isolation"]["in_force"].startswith("off")


def test_isolation_setting_reaches_the_harness_and_rejects_unknown_values() -> None:
    assert load_config(env={}).eval_settings().isolation == "auto"
    assert load_config(env={"KERNELWRIGHT_HARNESS__ISOLATION": "required"}).eval_settings().isolation == "required"
    with pytest.raises(ConfigError, match="isolation"):
        load_config(env={"KERNELWRIGHT_HARNESS__ISOLATION": "sometimes"})
