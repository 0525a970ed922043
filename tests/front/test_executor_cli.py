"""Choosing the executor: [executor] in the config and its environment variables, `--executor/--address` on `run`
and `bench`, and without the ray package a one-line typed error naming the install command (exit 4, nothing
written, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.cli_errors import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_ERROR
from kernelwright.config import ConfigError, load_config
from kernelwright.graphs.executors import ExecutorSettings
from support.blocked_import import without
from support.paths import FIXTURES as FIX

PROBLEM = FIX / "problems" / "relu_affine.py"
NO_RAY_MESSAGE = ("executor: the Ray executor needs the ray package, which is not installed here: pip install "
                  "'kernelwright[ray]' (or choose the local executor: --executor local)")

_WITHOUT_RAY = without("ray") + """
from kernelwright.cli import app
app(sys.argv[1:])
"""


def test_the_executor_comes_from_the_config_file_then_the_environment(tmp_path: Path) -> None:
    assert load_config(env={}).run_setup().executor == ExecutorSettings()  # local by default
    path = tmp_path / "kw.toml"
    path.write_text('[executor]\nkind = "ray"\naddress = "10.0.0.1:6379"\nretries = 4\n')
    assert load_config(path, env={}).run_setup().executor == ExecutorSettings("ray", "10.0.0.1:6379", retries=4)
    env = {"KERNELWRIGHT_EXECUTOR__ADDRESS": "auto", "KERNELWRIGHT_EXECUTOR__ACTORS": "2"}
    assert load_config(path, env=env).run_setup().executor == ExecutorSettings("ray", "auto", actors=2, retries=4)
    explicit = load_config(path, env=env, overrides={"executor.kind": "local"})
    assert explicit.run_setup().executor.kind == "local"  # a flag beats the file and the environment


def test_an_unknown_executor_is_bad_input_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="executor.kind: Input should be 'local' or 'ray'"):
        load_config(env={"KERNELWRIGHT_EXECUTOR__KIND": "dask"})
    result = CliRunner().invoke(app, ["run", str(PROBLEM), "--executor", "dask", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "executor.kind: Input should be 'local' or 'ray'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [
    ["run", str(PROBLEM), "--executor", "ray", "--address", "127.0.0.1:1", "--no-archive"],
    ["bench", str(PROBLEM), "--executor", "ray", "--translate-only"],
])
def test_without_ray_the_ray_executor_is_a_typed_error_naming_the_install(tmp_path: Path, command: list[str]) -> None:
    where = ["--runs-dir", str(tmp_path / "runs")] if command[0] == "run" else ["--out", str(tmp_path / "bench")]
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_RAY, *command, *where], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "CUDA_VISIBLE_DEVICES": "",
                                                          "OPENAI_API_KEY": "", "KERNELWRIGHT_MODEL": ""})
    assert proc.returncode == EXIT_ERROR, proc.stdout + proc.stderr
    assert proc.stderr.count(ERROR_PREFIX) == 1 and NO_RAY_MESSAGE in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "bench").exists()  # nothing written


def test_a_cluster_address_that_answers_nothing_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    import ray  # noqa: F401 - the Ray executor is installed here: the address is what is wrong

    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(PROBLEM), "--executor", "ray", "--address", "127.0.0.1:1",
                                      "--no-archive", "--runs-dir", str(runs)], env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.exit_code == EXIT_ERROR, result.output
    assert "Error: executor.address: no Ray cluster answers at 127.0.0.1:1" in " ".join(result.output.split())
    assert "ray start --head" in result.output and "Traceback" not in result.output
    assert not runs.exists()
