"""`kernelwright runs | trace | report`: look inside recorded runs (registered on the main typer app)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from kernelwright.cli_errors import EXIT_BAD_INPUT, fail
from kernelwright.cli_tables import Column, fitted_table
from kernelwright.tools.run_folder import HTML_REPORT_FILE, RunFolder

RunsDirOpt = typer.Option(None, help="where run directories are (default: the config's runs_dir, ./runs)")
ConfigOpt = typer.Option(None, "--config", help="TOML config file (for its runs_dir)")


def _runs_dir(runs_dir: Path | None, config_file: Path | None) -> Path:
    """--runs-dir, else the config's runs_dir (the file's, KERNELWRIGHT_RUNS_DIR, or the default)."""
    from kernelwright.config import ConfigError, load_config

    try:
        return load_config(config_file, overrides={"runs_dir": runs_dir}).runs_dir
    except ConfigError as exc:
        fail(exc, EXIT_BAD_INPUT)


def _run_dir(run: str, runs_dir: Path | None, config_file: Path | None) -> Path:
    """RUN is a run id under --runs-dir, or a path to a run directory."""
    path = Path(run)
    if RunFolder(path).is_run():
        return path
    runs_dir = _runs_dir(runs_dir, config_file)
    candidate = runs_dir / run
    if candidate.is_dir():
        return candidate
    fail(f"no run {run!r} (neither a run directory nor a run id under {runs_dir})", EXIT_BAD_INPUT)


def runs_command(runs_dir: Path | None = RunsDirOpt, config_file: Path | None = ConfigOpt) -> None:
    """List runs: id, problem, start, generations, candidates, best speedup, whether memcheck passed it, LLM tokens
    and cost (USD), status."""
    from kernelwright.eval.report.run_data import list_runs

    runs_dir = _runs_dir(runs_dir, config_file)
    rows = list_runs(runs_dir)
    console = Console()
    if not rows:
        console.print(f"no runs under {runs_dir}")
        return
    # Ids stay whole (they are for copying), the problem's name is cut; a narrow terminal loses the start time
    # first (a run id begins with it), then the counts, then memcheck's verdict; tokens before them all, USD with the
    # candidate count.
    columns = [Column("run"), Column("problem", flexible=True), Column("started", drop=1),
               Column("generations", short="gens", drop=3), Column("candidates", short="cands", drop=2),
               Column("best"), Column("sanitized", drop=4)]
    cells = [[r.run_id, r.problem, _when(r.started), str(r.generations), str(r.candidates),
              f"{r.best_speedup:.2f}x" if r.best_speedup else "-",
              "-" if r.sanitized is None else ("yes" if r.sanitized else "no")] for r in rows]
    if any(r.tokens or r.cost_usd for r in rows):  # LLM spend, when any run used an LLM
        columns += [Column("tokens", drop=-1), Column("USD", drop=2)]
        cells = [[*c, f"{r.tokens:,}" if r.tokens else "-", f"{r.cost_usd:.4f}" if r.cost_usd else "-"]
                 for c, r in zip(cells, rows)]
    table = fitted_table([*columns, Column("status")], [[*c, r.status] for c, r in zip(cells, rows)], console.width,
                         title=f"runs in {runs_dir}")
    console.print(table)


def _when(started: str) -> str:
    """The run record's start time to the minute ('2025-06-12 10:15'), or as written when it is not ISO 8601."""
    try:
        return dt.datetime.fromisoformat(started).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return started


def trace_command(
    run: str = typer.Argument(..., help="run id (under --runs-dir) or run directory"),
    agent: str | None = typer.Option(None, help="only candidates made by, or steps of, this agent "
                                                "(translator, mutator, crossover, repair, critic, ...)"),
    candidate: str | None = typer.Option(None, help="only this candidate (id prefix), with its lineage"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep redrawing while the run is live"),
    limit: int = typer.Option(50, min=1, help="candidates shown per generation"),
    interval: float = typer.Option(1.0, min=0.1, help="seconds between redraws with --follow"),
    max_seconds: float | None = typer.Option(None, help="stop following after this long"),
    runs_dir: Path | None = RunsDirOpt,
    config_file: Path | None = ConfigOpt,
) -> None:
    """Show a run as a tree: generations -> candidates -> agent steps (LLM and tool calls)."""
    from kernelwright.eval.report.run_data import RunDataError, load_run
    from kernelwright.trace_view import build_tree
    from kernelwright.trace_view import follow as follow_run

    path = _run_dir(run, runs_dir, config_file)
    console = Console()
    try:
        if follow:
            follow_run(path, console, interval_s=interval, max_s=max_seconds, agent=agent, candidate=candidate,
                       limit=limit)
        else:
            console.print(build_tree(load_run(path, messages=False), agent=agent, candidate=candidate, limit=limit))
    except RunDataError as exc:
        fail(exc, EXIT_BAD_INPUT)


def report_command(
    run: str = typer.Argument(..., help="run id (under --runs-dir) or run directory"),
    output: Path | None = typer.Option(None, "-o", "--output", help=f"HTML file (default: RUN_DIR/{HTML_REPORT_FILE})"),
    runs_dir: Path | None = RunsDirOpt,
    config_file: Path | None = ConfigOpt,
) -> None:
    """Write one self-contained HTML report (works offline): progress, lineage, roofline, failures, winner, spend."""
    from kernelwright.eval.report import write_report

    path = _run_dir(run, runs_dir, config_file)
    out = write_report(path, output)
    Console().print(f"report: {out}")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_command)
    app.command("trace")(trace_command)
    app.command("report")(report_command)
