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
    result = runner.invoke(app, ["env", "--json"], env={"CUDA_VISIBLE_DEVICES": ""})  # the default: auto
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
    assert load_config(env={}).eval_settings().isolation == "auto"  # the default since it was verified on a GPU
    assert load_config(env={"KERNELWRIGHT_HARNESS__ISOLATION": "off"}).eval_settings().isolation == "off"
    assert load_config(env={"KERNELWRIGHT_HARNESS__ISOLATION": "required"}).eval_settings().isolation == "required"
    with pytest.raises(ConfigError, match="isolation"):
        load_config(env={"KERNELWRIGHT_HARNESS__ISOLATION": "sometimes"})


def test_eval_with_required_isolation_that_is_missing_stops_with_a_clear_error(
        tmp_path, monkeypatch: pytest.MonkeyPatch, build_cache) -> None:
    """A jail that reports a missing part (as a machine without namespaces would): `kernelwright eval` stops
    with the documented bad-input exit code and one line naming the setting and the part, no traceback."""
    from kernelwright.cli import EXIT_BAD_INPUT
    from kernelwright.tools.sandbox import isolation
    from support.paths import FIXTURES, RELU_CANDIDATE

    fake = tmp_path / "jail.py"
    fake.write_text("import sys\nsys.stderr.write('kernelwright isolation required but unavailable: "
                    "{\"namespaces\": \"unshare(net+mount): Operation not permitted\"}\\n')\nsys.exit(97)\n")
    monkeypatch.setattr(isolation, "JAIL_SCRIPT", fake)
    result = runner.invoke(app, ["eval", "--no-sanitize", str(FIXTURES / "problems" / "relu_affine.py"),
                                 str(RELU_CANDIDATE)],
                           env={"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_HARNESS__ISOLATION": "required",
                                "KERNELWRIGHT_CACHE_DIR": str(build_cache)})
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "harness.isolation" in result.output and "Operation not permitted" in result.output
    assert "Traceback" not in result.output
