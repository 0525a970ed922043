"""`kernelwright answer | export | config show`: answer a manual run's prompt, export a run's LLM exchanges, and
show the effective settings with where each came from (registered on the main typer app)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kernelwright.cli_app import KernelwrightTyper
from kernelwright.cli_errors import EXIT_BAD_INPUT, fail
from kernelwright.inspect_cli import ConfigOpt, RunsDirOpt, _run_dir

config_app = KernelwrightTyper(no_args_is_help=True, help="The effective settings and where each came from.")


def answer_command(
    run: str = typer.Argument(..., help="run id (under --runs-dir) or run directory of a `run --manual`"),
    file: Path = typer.Argument(..., help="a file holding the answer's text ('-': standard input)"),
    prompt: int | None = typer.Option(None, "--prompt", help="the prompt's number NNN (default: the oldest waiting)"),
    runs_dir: Path | None = RunsDirOpt,
    config_file: Path | None = ConfigOpt,
) -> None:
    """Answer a prompt of a manual run (`kernelwright run --manual`); the waiting run goes on."""
    from kernelwright.tools.run_folder import RunFolder

    path = _run_dir(run, runs_dir, config_file)
    folder = RunFolder(path).manual
    text = _answer_text(file)
    prompts = folder.prompts()
    if not prompts:
        fail(f"{path}: the run has no manual prompts (was it started with `kernelwright run --manual`?)",
             EXIT_BAD_INPUT)
    if prompt is None:
        waiting = folder.pending()
        if not waiting:
            fail(f"{path}: no prompt waits for an answer (all {len(prompts)} are answered)", EXIT_BAD_INPUT)
        chosen = waiting[0]
    else:
        found = next((p for p in prompts if p.number == prompt), None)
        if found is None:
            fail(f"{path}: no prompt {prompt:03d} (prompts: {', '.join(f'{p.number:03d}' for p in prompts)})",
                 EXIT_BAD_INPUT)
        if folder.read_answer(found) is not None:
            fail(f"{folder.answer_path(found)}: prompt {prompt:03d} is already answered", EXIT_BAD_INPUT)
        chosen = found
    written = folder.write_answer(chosen, text)
    Console().print(f"answered prompt {chosen.number:03d} ({chosen.node}): {written}", soft_wrap=True)


def _answer_text(file: Path) -> str:
    if str(file) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read the answer: {getattr(exc, 'strerror', None) or exc}", EXIT_BAD_INPUT)
    if not text.strip():
        fail(f"{file}: the answer is empty", EXIT_BAD_INPUT)
    return text


def export_command(
    run: str = typer.Argument(..., help="run id (under --runs-dir) or run directory"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl: one JSON object per LLM exchange"),
    out: Path | None = typer.Option(None, "--out", help="file to write (default: standard output)"),
    runs_dir: Path | None = RunsDirOpt,
    config_file: Path | None = ConfigOpt,
) -> None:
    """Write every LLM exchange of a run (prompt, answer, model, temperature, tokens, the candidate it produced and
    that candidate's verdict and speedup), for fine-tuning and analysis."""
    from kernelwright.eval.exchanges import EXPORT_FORMATS, write_jsonl
    from kernelwright.eval.report.run_data import RunDataError

    if fmt not in EXPORT_FORMATS:
        fail(f"--format {fmt!r}: not a format export writes (formats: {', '.join(EXPORT_FORMATS)})", EXIT_BAD_INPUT)
    path = _run_dir(run, runs_dir, config_file)
    try:
        if out is None:
            _to_stdout(path)
            return
        tmp = out.with_name(f".{out.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            count = write_jsonl(path, fh)
        tmp.replace(out)
    except RunDataError as exc:
        fail(exc, EXIT_BAD_INPUT)
    except OSError as exc:
        fail(f"{out}: cannot write the export: {exc.strerror or exc}", EXIT_BAD_INPUT)
    Console().print(f"{count} exchange(s) of run {path.name} written to {out}", soft_wrap=True)  # stdout: not the export


def _to_stdout(run_dir: Path) -> None:
    """The export on stdout; a reader that stops early (`| head`) ends it quietly, as other Unix tools do."""
    import os

    from kernelwright.eval.exchanges import write_jsonl

    try:
        write_jsonl(run_dir, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit


# The CLI flags some commands set each setting with (config show names them when given as overrides).
RUN_FLAGS = {"runs_dir": "--runs-dir"}


@config_app.command("show")
def config_show_command(
    config_file: Path | None = typer.Option(None, "--config", help="TOML config file"),
    runs_dir: Path | None = typer.Option(None, help="as `run --runs-dir` would set it"),
    as_json: bool = typer.Option(False, "--json", help="print as JSON: {key: {value, source}}"),
) -> None:
    """The effective settings (defaults, the config file, KERNELWRIGHT_* variables, flags) and where each came from."""
    from kernelwright.config import ConfigError, flat_settings, load_config, setting_sources

    overrides = {"runs_dir": runs_dir}
    try:
        config = load_config(config_file, overrides=overrides)
    except ConfigError as exc:
        fail(exc, EXIT_BAD_INPUT)
    sources = setting_sources(config_file, overrides=overrides, flags=RUN_FLAGS)
    rows = {key: {"value": value, "source": sources.get(key, "default")}
            for key, value in flat_settings(config.model_dump(mode="json"))}
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("setting", "value", "source", title="kernelwright settings")
    for key, row in rows.items():
        table.add_row(key, json.dumps(row["value"], default=str), row["source"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("answer")(answer_command)
    app.command("export")(export_command)
    app.add_typer(config_app, name="config")
