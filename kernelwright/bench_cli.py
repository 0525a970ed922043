"""`kernelwright bench PATH...`: KernelBench-format problems through the main job, and the field's table
(registered on the main typer app; the work is eval.kernelbench's, this module wires settings and output)."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernelwright.agents.context import RunSettings
from kernelwright.cli_errors import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NEEDS_GPU, EXIT_NO_LLM, fail
from kernelwright.executor_options import ADDRESS_HELP, EXECUTOR_HELP, executor_overrides
from kernelwright.tools.errors import KernelwrightError


def bench_command(
    paths: list[Path] | None = typer.Argument(None, help="KernelBench-format problem files or folders, e.g. "
                                                         "../shared/kernelbench/level2 (a folder without .py files of "
                                                         "its own: its levelN subfolders)"),
    out: Path = typer.Option(Path("bench"), help="results folder: one row per problem, each run, the table"),
    resume: bool = typer.Option(False, "--resume", help="continue the bench in --out: finished problems are not redone"),
    redo: list[str] = typer.Option([], "--redo", help="with --resume: measure this problem again though it has a row "
                                                      "(its key, e.g. level2/15_ConvTranspose3d_BatchNorm_Subtract, or "
                                                      "its file's stem; repeatable); its old row stays until the new "
                                                      "one replaces it"),
    summary: list[Path] = typer.Option([], "--summary", help="rebuild and print the table of this results folder "
                                                             "(runs nothing); repeated, one table of several "
                                                             "folders' rows (e.g. a folder per level), written to "
                                                             "--out, a folder of its own"),
    gpus: str | None = typer.Option(None, help="GPUs to deal the problems over, e.g. 0,1 (default: every visible GPU)"),
    lanes_per_gpu: int = typer.Option(1, min=1, help="problems run at once on each GPU, each on its own share of the "
                                                     "cores: they overlap start-up, builds and checks, while every "
                                                     "timing still has its GPU to itself (the others' GPU work and "
                                                     "builds wait for it); may change on --resume"),
    translate_only: bool = typer.Option(False, "--translate-only",
                                        help="no GPU needed: translate (offline translator) and compile each problem, "
                                             "and say why a problem got no candidate"),
    jobs: int = typer.Option(1, min=1, help="--translate-only: problems translated and compiled at once"),
    precision: str | None = typer.Option(None, help="precision profile: strict (default) or kernelbench (as "
                                                    "KernelBench's evaluator: compare with published tables)"),
    model: list[str] = typer.Option([], help="chat model(s) for the agents (default: the config's, else offline)"),
    critic_model: str | None = typer.Option(None, help="chat model for the critic (default: the first model)"),
    generations: int = typer.Option(RunSettings.generations, min=1, help="generations per problem"),
    candidates: int = typer.Option(RunSettings.candidates_per_generation, min=1,
                                   help="candidates proposed per generation"),
    population: int = typer.Option(RunSettings.population, min=1, help="elite kept between generations"),
    max_candidates: int = typer.Option(200, min=0, help="per problem: evaluated candidates (0: no limit)"),
    max_minutes: float = typer.Option(30.0, min=0.0, help="per problem: agent and evaluation time (0: no limit)"),
    max_tokens: int = typer.Option(0, min=0, help="per problem: LLM tokens (0: no limit)"),
    max_cost: float = typer.Option(0.0, min=0.0, help="per problem: LLM cost in USD (0: no limit; needs prices)"),
    timeout_minutes: float | None = typer.Option(None, min=0.0,
                                                 help="per problem: kill its run past this (default: 2x --max-minutes "
                                                      "+ 10; 0: never)"),
    archive: Path | None = typer.Option(None, help="kernel archive the runs learn from and fill (default: none, so "
                                                   "the table measures the system, not remembered kernels)"),
    config_file: Path | None = typer.Option(None, "--config", help="TOML config file (its agents, harness, timing "
                                                                   "and compile sections)"),
    executor: str | None = typer.Option(None, help=EXECUTOR_HELP + "; with ray the problems spread over the "
                                                                    "cluster's GPUs (--translate-only: its CPUs)"),
    address: str | None = typer.Option(None, help=ADDRESS_HELP),
    log_level: str = typer.Option("warning", help="console log level"),
) -> None:
    """Benchmark KernelBench-format problems with the agent graph and write the KernelBench table.

    Per level and overall: problems, candidate, compiled, correct, fast_p, speedups over eager and torch.compile,
    time and spend (offline translator by default, the LLM agents when a model is configured)."""
    from kernelwright.logging_setup import configure_logging

    console = Console()
    configure_logging(level=log_level)
    if summary:
        if paths:
            fail("--summary DIR rebuilds the table of a results folder; it takes no problem paths", EXIT_BAD_INPUT)
        _summary(console, summary, out)
        return
    options, job = _options(paths or [], out, resume, gpus, translate_only, jobs, precision, model, critic_model,
                            generations, candidates, population, max_candidates, max_minutes, max_tokens, max_cost,
                            timeout_minutes, archive, config_file, executor, address, lanes_per_gpu, redo)
    _run(console, paths or [], options, job)


def _options(paths: list[Path], out: Path, resume: bool, gpus: str | None, translate_only: bool, jobs: int,
             precision: str | None, model: list[str], critic_model: str | None, generations: int, candidates: int,
             population: int, max_candidates: int, max_minutes: float, max_tokens: int, max_cost: float,
             timeout_minutes: float | None, archive: Path | None, config_file: Path | None, executor: str | None,
             address: str | None, lanes_per_gpu: int = 1, redo: list[str] | None = None) -> tuple[Any, Any]:
    from kernelwright.agents.llm import ModelSettings
    from kernelwright.config import ConfigError, load_config
    from kernelwright.eval.bench.gpu_split import parse_gpus
    from kernelwright.eval.kernelbench.bench import BenchOptions
    from kernelwright.eval.kernelbench.full_job import RunJob
    from kernelwright.graphs.run import RunBudget

    try:
        config = load_config(config_file, overrides={"harness.precision": precision,
                                                     **executor_overrides(executor, address)})
    except ConfigError as exc:
        fail(exc, EXIT_BAD_INPUT)
    if gpus is not None and not parse_gpus(gpus):
        fail(f"--gpus {gpus!r} names no GPU (expected e.g. 0,1)", EXIT_BAD_INPUT)
    settings = config.run_settings(generations=generations, population=population, candidates_per_generation=candidates)
    timeout_s = (max_minutes * 2 + 10) * 60 if timeout_minutes is None and max_minutes else (timeout_minutes or 0) * 60
    job = RunJob(config.run_setup(settings=settings),
                 RunBudget(candidates=max_candidates, wall_s=max_minutes * 60, tokens=max_tokens, cost_usd=max_cost),
                 models=tuple(ModelSettings.from_spec(m, "--model") for m in model),
                 critic_model=ModelSettings.from_spec(critic_model, "--critic-model") if critic_model else None,
                 archive=archive, timeout_s=timeout_s or None)
    options = BenchOptions(out, resume=resume, gpus=tuple(dict.fromkeys(parse_gpus(gpus))) if gpus is not None else None,
                           translate_only=translate_only, jobs=jobs, lanes_per_gpu=lanes_per_gpu,
                           redo=tuple(redo or ()))
    return options, job


def _run(console: Console, paths: list[Path], options: Any, job: Any) -> None:
    from rich.live import Live

    from kernelwright.bench_progress import BenchProgress
    from kernelwright.eval.kernelbench.bench import plan_bench, run_bench, search_line

    try:
        plan = plan_bench(paths, options, job)
    except KernelwrightError as exc:
        fail(exc, EXIT_NO_LLM if exc.kind == "llm" else EXIT_ERROR if exc.kind == "executor" else EXIT_BAD_INPUT)
    console.print(escape(plan.start_line()), soft_wrap=True)
    console.print(escape("translate-only: offline translator and nvcc, nothing verified" if options.translate_only
                         else f"{plan.models}; per problem: {_budget_text(job)}"))
    progress = BenchProgress(total=len(plan.problems))
    title = f"kernelwright bench ({options.out})"
    live = Live(progress.table(title), console=console, refresh_per_second=2) if console.is_terminal else None
    lock = threading.Lock()
    measured: set[str] = set()  # problems finished in this call (a stop's resume command still names the --redo rest)

    def on_event(event: Any) -> None:
        with lock:
            if event.kind == "finished":
                measured.add(event.problem.key)
            progress.apply(event)
            if live is not None:
                live.update(progress.table(title))
            elif event.kind == "finished":
                console.print(escape(progress.last), soft_wrap=True)

    if live is not None:
        live.start()
    try:
        outcome = run_bench(plan, on_event=on_event)
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        resume = _resume_command(paths, options.out, [k for k in plan.again if k not in measured])
        fail(f"stopped: {progress.done} of {len(plan.problems)} problems are finished and saved in {options.out}; "
             f"continue with `{resume}`", EXIT_INTERRUPTED)
    finally:
        if live is not None:
            live.stop()
    print_table(console, outcome.table, search_line(options.out))
    console.print(escape("table: " + ", ".join(str(f) for f in outcome.files)), soft_wrap=True)
    if outcome.environment is not None:
        rest = [k for k in plan.again if k not in measured]
        fail(f"{outcome.environment}. Once fixed, continue with `{_resume_command(paths, options.out, rest)}`", EXIT_ERROR)
    if stopped := [r.key for r in outcome.table.rows if r.failure == "llm"]:
        fail(f"{len(stopped)} problem(s) stopped by the LLM ({', '.join(stopped[:3])}); once it answers, continue "
             "with --resume (their runs go on from their checkpoints)", EXIT_NO_LLM)
    if not options.translate_only and all(lane.gpu is None and not lane.on_cluster for lane in plan.lanes):
        console.print("no GPU visible, so nothing was verified; on a machine without a GPU, --translate-only "
                      "translates and compiles without starting each problem's run")
        raise typer.Exit(EXIT_NEEDS_GPU)


def _resume_command(paths: list[Path], out: Path, again: list[str] | None = None) -> str:
    """The command that goes on: `again`, the --redo problems not yet measured again."""
    redo = "".join(f" --redo {shlex.quote(k)}" for k in again or ())
    return f"kernelwright bench {' '.join(shlex.quote(str(p)) for p in paths)} --out {shlex.quote(str(out))} --resume{redo}"


def _budget_text(job: Any) -> str:
    b = job.budget
    parts = [f"{b.candidates} evaluations" if b.candidates else "", f"{b.wall_s / 60:g} min" if b.wall_s else "",
             f"{b.tokens} tokens" if b.tokens else "", f"${b.cost_usd:g}" if b.cost_usd else "",
             f"killed after {job.timeout_s / 60:g} min" if job.timeout_s else ""]
    return ", ".join(p for p in parts if p) or "no limits"


def _summary(console: Console, folders: list[Path], out: Path) -> None:
    """One folder: its table rebuilt in place; several: their rows in one table, written to `out`."""
    from kernelwright.eval.kernelbench.bench import combine_summaries, rebuild_summary, search_line

    try:
        if len(folders) == 1:
            table, files = rebuild_summary(folders[0])
            search = search_line(folders[0])
        else:
            combined = combine_summaries(folders, out)
            table, files, search = combined.table, combined.files, combined.search
    except KernelwrightError as exc:
        fail(exc, EXIT_BAD_INPUT)
    print_table(console, table, search)
    console.print(escape("table: " + ", ".join(str(f) for f in files)), soft_wrap=True)


def print_table(console: Console, bench: Any, search: str | None = None) -> None:
    """The table's per-level parts, as summary.md has them; `search`: the line on the search settings."""
    from kernelwright.eval.kernelbench.markdown import (
        baseline_text,
        no_gpu_note,
        outcome_rows,
        precision_text,
        speedup_rows,
        spend_rows,
    )

    console.print(escape(precision_text(bench)), soft_wrap=True)
    if search:
        console.print(escape(search), soft_wrap=True)
    console.print(escape(no_gpu_note(bench) if bench.without_gpu else baseline_text(bench)), soft_wrap=True)
    # Levels as columns, figures as rows: four levels and the total fit a narrow terminal.
    parts = [outcome_rows(bench)] + ([] if bench.without_gpu else [speedup_rows(bench)]) + [spend_rows(bench)]
    levels = [str(row[0]) for row in parts[0][1]]
    table = Table("", *levels, title="kernelwright bench")
    for headers, rows in parts:
        for i, figure in enumerate(headers[1:], start=1):
            table.add_row(escape(figure), *(escape(str(row[i])) for row in rows))
        table.add_section()
    console.print(table)
    failed = [r for r in bench.rows if r.status in ("failed", "no_candidate", "not_compiled")]
    for row in failed[:20]:
        console.print(escape(f"  {row.key}: {row.status}{f' ({row.failure})' if row.failure else ''}: {row.reason}"),
                      soft_wrap=True)
    if len(failed) > 20:
        console.print(f"  ... and {len(failed) - 20} more (summary.md lists every problem)")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
