"""What every command prints when it fails and in its --help: one error line format, no `<bool>` on flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from kernelwright.cli import EXIT_BAD_INPUT, app
from kernelwright.cli_errors import ERROR_PREFIX
from support.paths import ROOT

runner = CliRunner(env={"COLUMNS": "200"})


def _failures(tmp_path: Path) -> dict[str, list[str]]:
    bad_config = tmp_path / "kw.toml"
    bad_config.write_text("[harness]\nn_trials = 'many'\n")
    return {"eval": ["eval", str(tmp_path / "missing.py"), str(tmp_path / "candidate.py")],
            "eval --json": ["eval", "--json", str(tmp_path / "missing.py"), str(tmp_path / "candidate.py")],
            "eval config": ["eval", "--config", str(bad_config), str(tmp_path / "p.py"), str(tmp_path / "c.py")],
            "run config": ["run", str(tmp_path / "p.py"), "--config", str(bad_config)],
            "trace": ["trace", "nope", "--runs-dir", str(tmp_path)],
            "report": ["report", "nope", "--runs-dir", str(tmp_path)],
            "archive list": ["archive", "list", "--path", str(tmp_path / "no-archive")],
            "archive show": ["archive", "show", "abcdef", "--path", str(tmp_path / "no-archive")]}


@pytest.mark.parametrize("case", ["eval", "eval --json", "eval config", "run config", "trace", "report",
                                  "archive list", "archive show"])
def test_every_failure_prints_one_error_line_on_stderr(tmp_path: Path, case: str) -> None:
    """These printed 'error: ...' (some on stdout) while typer's own usage errors say 'Error'."""
    result = runner.invoke(app, _failures(tmp_path)[case])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX + " ")]
    assert len(errors) == 1 and len(errors[0]) > len(ERROR_PREFIX) + 5, result.output
    assert "error:" not in result.output and "Traceback" not in result.output
    assert result.stdout == ""  # stdout stays clean: `--json` output can be piped


def test_an_error_message_prints_as_written_not_as_rich_markup(tmp_path: Path) -> None:
    result = runner.invoke(app, ["trace", "[bold]run[/bold]", "--runs-dir", str(tmp_path)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "Error: no run '[bold]run[/bold]'" in result.stderr, result.stderr


def test_only_cli_errors_writes_error_lines() -> None:
    """One owner of the line: no other front-door module spells an error prefix or prints to stderr itself."""
    offenders = []
    for path in sorted((ROOT / "kernelwright").glob("*.py")):
        if path.name == "cli_errors.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"(?i)\berror:", node.value):
                offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
        if "stderr=True" in source:
            offenders.append(f"{path.name}: prints to stderr itself")
    assert not offenders, offenders


def _command_paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        paths += _command_paths(sub, (*path, name))
    return paths


def test_no_help_shows_a_type_next_to_a_flag() -> None:
    """Typer's rich help printed `--json <bool>` (and `--help <bool>`), as if a flag took a value."""
    paths = _command_paths(typer.main.get_command(app))
    assert ("run",) in paths and ("archive", "list") in paths and len(paths) >= 13
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "--help" in result.output, (path, result.output)
    run_help = runner.invoke(app, ["run", "--help"]).output
    assert re.search(r"--generations\s+<int range>", run_help)  # options that take a value keep their type
    assert re.search(r"--screen\s+--no-screen\s+the critic screens", run_help)
    assert re.search(r"--json\s+print the full report as JSON", runner.invoke(app, ["eval", "--help"]).output)
