"""The `kernelwright` command line (typer + rich)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kernelwright import bench_cli, exchange_cli, inspect_cli
from kernelwright.agents.context import RunSettings
from kernelwright.archive_cli import archive_app
from kernelwright.cli_app import KernelwrightTyper
from kernelwright.cli_errors import (
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_GPU,
    EXIT_NO_LLM,
    EXIT_PASSED,
    EXIT_REJECTED,
    fail,
)
from kernelwright.config import ConfigError, load_config
from kernelwright.executor_options import ADDRESS_HELP, EXECUTOR_HELP, executor_overrides
from kernelwright.logging_setup import configure_logging
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.harness.results import Status

app = KernelwrightTyper(add_completion=False, no_args_is_help=True,
                        help="kernelwright: write, verify, profile and evolve CUDA kernels for PyTorch code.")

app.add_typer(archive_app, name="archive")


def _check_arch(arch: str | None) -> str | None:
    """An arch nvcc cannot build for is a bad --arch value (exit 2), not a rejected candidate."""
    from kernelwright.tools.compile.nvcc import unsupported_arch

    if arch is not None and (why := unsupported_arch(arch)):
        raise typer.BadParameter(why)
    return arch


@app.command("eval")
def eval_command(
    problem: Path = typer.Argument(..., help="KernelBench-style problem file (class Model, get_inputs, get_init_inputs)"),
    candidate: Path = typer.Argument(..., help="candidate file defining class ModelNew"),
    as_json: bool = typer.Option(False, "--json", help="print the full report as JSON"),
    config_file: Path | None = typer.Option(None, "--config", help="TOML config file"),
    trials: int | None = typer.Option(None, help="correctness trials (fresh inputs each)"),
    compile_baseline: bool | None = typer.Option(None, "--compile-baseline/--no-compile-baseline",
                                                 help="also time torch.compile"),
    profile: bool | None = typer.Option(None, "--profile/--no-profile", help="Nsight Compute metrics"),
    sanitize: bool = typer.Option(True, "--sanitize/--no-sanitize",
                                  help="compute-sanitizer memcheck of a candidate that passes (default on: it is your "
                                       "winner); --no-sanitize skips it, also over harness.sanitize"),
    arch: str | None = typer.Option(None, help="nvcc target, e.g. sm_90a (default: the GPU's)",
                                    callback=_check_arch),
    precision: str | None = typer.Option(None, help="precision profile: strict (fp32 reference, TF32 off; default) or "
                                                    "kernelbench (PyTorch defaults, atol=rtol=1e-2, as KernelBench)"),
    log_level: str = typer.Option("warning", help="console log level"),
    log_file: Path | None = typer.Option(None, help="also write every event as JSON lines to this file"),
) -> None:
    """Verify a candidate kernel against its problem, time it against eager and torch.compile, profile it."""
    from kernelwright.api import evaluate

    console = Console(stderr=as_json)  # the report goes to stdout; with --json only JSON does
    configure_logging(level=log_level, json_path=log_file)
    try:
        config = load_config(config_file, overrides={
            "harness.n_trials": trials, "harness.compile_baseline": compile_baseline,
            "harness.sanitize": None if sanitize else False, "harness.profile": profile, "compile.arch": arch,
            "harness.precision": precision})
        report = evaluate(problem, candidate, config=config, sanitize=sanitize)
    except (ConfigError, KernelwrightError) as exc:
        fail(exc, EXIT_BAD_INPUT)
    data = report.to_dict()
    data["sanitized"] = bool((data.get("sanitizer") or {}).get("sanitized"))  # memcheck ran and found nothing
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        _print_report(console, data)
    exit_codes: dict[Status, int] = {"passed": EXIT_PASSED, "rejected": EXIT_REJECTED, "needs_gpu": EXIT_NEEDS_GPU}
    code = exit_codes.get(report.status, EXIT_ERROR)
    raise typer.Exit(code)


@app.command("run")
def run_command(
    problem: Path = typer.Argument(..., help="KernelBench-style problem file"),
    model: list[str] = typer.Option([], help="chat model (OpenAI-compatible name, or provider:model; @http://host/v1 names its endpoint); repeat for an "
                                             "ensemble that takes turns proposing"),
    critic_model: str | None = typer.Option(None, help="chat model for the critic (default: the first model)"),
    generations: int = typer.Option(RunSettings.generations, min=1, help="generations of propose -> evaluate -> select"),
    population: int = typer.Option(RunSettings.population, min=1, help="elite kept between generations"),
    candidates: int = typer.Option(RunSettings.candidates_per_generation, min=1,
                                   help="candidates proposed per generation"),
    max_candidates: int = typer.Option(200, min=0, help="stop after this many evaluated candidates (0: no limit)"),
    max_tokens: int | None = typer.Option(None, min=0, help="stop after this many LLM tokens (0: no limit; default: "
                                                            "the config's budget.tokens)"),
    max_cost: float | None = typer.Option(None, "--max-cost-usd", "--max-cost", min=0.0,
                                          help="stop once the LLM calls cost this much in USD (0: no limit; default: "
                                               "the config's budget.cost_usd); prices from the config, else the "
                                               "default price table; resume with a larger one to go on"),
    max_minutes: float = typer.Option(0.0, min=0.0, help="stop after this much agent and evaluation time (0: no limit)"),
    repairs: int | None = typer.Option(None, min=0, help="diagnostic repairs of a rejected candidate (default: the "
                                                         "config's agents.repair_rounds)"),
    screen: bool | None = typer.Option(None, "--screen/--no-screen", help="the critic screens candidates before compiling"),
    resume: str | None = typer.Option(None, help="continue the run with this id from its checkpoint, with the models it "
                                                 "recorded (--model replaces them)"),
    runs_dir: Path | None = typer.Option(None, help="where run directories go (default: the config's runs_dir, "
                                                    "./runs)"),
    config_file: Path | None = typer.Option(None, "--config", help="TOML config file ([agents] models and prices, "
                                                                   "[harness], [timing], [compile], runs_dir)"),
    archive: Path | None = typer.Option(None, help="kernel archive directory (default: $KERNELWRIGHT_ARCHIVE or "
                                                   "~/.cache/kernelwright/archive)"),
    use_archive: bool = typer.Option(True, "--archive-on/--no-archive",
                                     help="retrieve past kernels as examples and store this run's verified kernels"),
    executor: str | None = typer.Option(None, help=EXECUTOR_HELP),
    address: str | None = typer.Option(None, help=ADDRESS_HELP),
    manual: bool = typer.Option(False, "--manual", help="no model: each prompt is written to RUN_DIR/manual/ and the "
                                                        "run waits for `kernelwright answer RUN FILE` (no API key)"),
    log_level: str = typer.Option("warning", help="console log level"),
) -> None:
    """Optimise a problem with the agent graph; prints live progress and the best verified kernel."""
    from rich.live import Live

    from kernelwright.agents.llm import ModelPlan, ModelSettings
    from kernelwright.graphs.nodes import SELECT
    from kernelwright.progress import RunProgress
    from kernelwright.run import optimize

    console = Console()
    configure_logging(level=log_level)
    try:
        config = load_config(config_file, overrides={"agents.repair_rounds": repairs, "agents.screen": screen,
                                                     "runs_dir": runs_dir, "budget.cost_usd": max_cost,
                                                     "budget.tokens": max_tokens,
                                                     **executor_overrides(executor, address)})
    except ConfigError as exc:
        fail(exc, EXIT_BAD_INPUT)
    settings = config.run_settings(generations=generations, population=population, candidates_per_generation=candidates)
    # No --model: the config's [agents] models (optimize asks the config), else the environment's.
    proposers = [ModelSettings.from_spec(m, "--model") for m in model]
    critic = ModelSettings.from_spec(critic_model, "--critic-model") if critic_model else None
    budget = config.run_budget(candidates=max_candidates, wall_s=max_minutes * 60)
    progress = RunProgress()
    live = Live(progress.table(f"kernelwright run {problem.name}"), console=console, refresh_per_second=4,
                transient=False) if console.is_terminal else None

    def on_update(node: str, update: dict[str, Any]) -> None:
        progress.apply(node, update)
        if live is not None:
            live.update(progress.table(f"kernelwright run {problem.name}"))
        elif node == SELECT:
            console.print(progress.line())

    def on_manual_prompt(prompt: Any, path: Path, command: str) -> None:
        message = f"waiting for an answer to prompt {prompt.number:03d} ({prompt.node}): {path}; answer with `{command}`"
        if live is not None:
            progress.waiting = message
            live.update(progress.table(f"kernelwright run {problem.name}"))
        else:
            console.print(escape(message), soft_wrap=True)

    def on_models(plan: ModelPlan) -> None:
        if manual:
            console.print("manual mode: each prompt waits in the run folder's manual/ for `kernelwright answer`")
        elif plan.proposers:
            console.print(escape(plan.describe()))
        else:
            console.print(escape(f"No LLM configured ({plan.why_offline}): proposing with the offline translator "
                                 "and tuner."))
        if live is not None:
            live.start()

    try:
        result = optimize(problem, config=config, resume=resume, settings=settings, budget=budget,
                          models=proposers, critic_model=critic, on_update=on_update, on_models=on_models,
                          archive=(archive or True) if use_archive else None, manual=manual,
                          on_manual_prompt=on_manual_prompt)
    except KernelwrightError as exc:
        fail(exc, EXIT_NO_LLM if exc.kind == "llm" else EXIT_BAD_INPUT if exc.kind in ("problem", "load", "reference")
             else EXIT_INTERRUPTED if exc.kind == "interrupted" else EXIT_ERROR)
    finally:
        if live is not None:
            live.stop()
    _print_run_result(console, result, problem)


# The flag that raises each spending limit (agents.budget.LIMITS' names, as a stop reason begins); a run that ran
# its generations is done
BUDGET_FLAGS = {"evaluated candidates": "--max-candidates",
                "wall time (s)": "--max-minutes", "LLM tokens": "--max-tokens", "LLM cost (USD)": "--max-cost-usd"}


def _budget_resume(result: Any, problem: Path | None, reason: str) -> str:
    """'; continue with a larger budget: `kernelwright run ... --resume ID --max-cost-usd N`' for a budget's stop."""
    from kernelwright.graphs.run import resume_command

    flag = next((f for name, f in BUDGET_FLAGS.items() if reason.startswith(name + ":")), None)
    problem = problem or (Path(result.state["problem_path"]) if result.state.get("problem_path") else None)
    if flag is None or problem is None:
        return ""
    runs_dir = Path(result.run_dir).parent
    return f"; continue with a larger budget: `{resume_command(problem, result.run_id, runs_dir)} {flag} N`"


def _print_run_result(console: Console, result: Any, problem: Path | None = None) -> None:
    from kernelwright.graphs.generations import generation_label, generations_label, last_finished
    from kernelwright.graphs.sanitizing import memcheck_rejected, sanitized_text

    best = result.best
    console.print(f"run {result.run_id} in {result.run_dir}")
    reason = result.state.get("stop_reason") or ""
    finished = int(result.state.get("generation") or 0)  # after select: how many generations ran
    if reason.startswith("generations"):
        console.print(f"finished: {generations_label(finished)}")
    elif reason.startswith(("no CUDA GPU", "nothing to propose")):
        last = last_finished(finished)
        console.print(f"stopped after {generation_label(last) if last is not None else 'the start'}: {reason}")
        if reason.startswith("nothing to propose"):
            raise typer.Exit(EXIT_NO_LLM)
    elif reason:
        console.print(escape(f"stopped early: budget reached ({reason}){_budget_resume(result, problem, reason)}"),
                      soft_wrap=True)
    rejected = memcheck_rejected(result.state.get("candidates") or {})
    if rejected:
        console.print(f"{len(rejected)} verified candidate(s) rejected by compute-sanitizer memcheck (out_of_bounds)")
    if best:
        eager, compiled = best.get("speedup_vs_eager"), best.get("speedup_vs_compile")
        console.print(f"best: {best['source_path']}  {_times(eager)} vs eager, {_times(compiled)} vs torch.compile "
                      "(verified on the GPU)")
        console.print(f"sanitized: {sanitized_text(result.sanitizer)}")
        if eager is not None and eager < 1.0:
            console.print("it is verified but slower than PyTorch eager: for this problem, keep the original module")
        return
    statuses = [r.get("status") for r in result.state.get("candidates", {}).values()]
    if "needs_gpu" in statuses:
        console.print(f"{statuses.count('needs_gpu')} candidate(s) compiled; verification and timing need a CUDA "
                      "GPU and none is visible here, so nothing is verified")
        raise typer.Exit(EXIT_NEEDS_GPU)
    console.print("no verified kernel yet")


def _times(speedup: float | None) -> str:
    return f"{speedup:.2f}x" if speedup else "n/a (not measured)"


@app.command("env")
def env_command(as_json: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
    """GPU, driver, clocks, CUDA and torch versions, nvcc and ncu availability, the sandbox's isolation."""
    from kernelwright.tools.measure.gpu_info import environment_report

    report = environment_report()
    report["isolation"] = _isolation_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    table = Table(title="kernelwright environment", show_header=False)
    for key, value in _flatten(report):
        table.add_row(key, str(value))
    Console().print(table)


def _isolation_report() -> dict[str, Any]:
    """What a candidate's worker would run in here (tried for real), under the configured harness.isolation."""
    from kernelwright.tools.sandbox.isolation import describe, probe

    try:
        mode = load_config().harness.isolation
    except ConfigError as exc:
        return {"setting": "unknown (the configuration does not load)", "in_force": str(exc)}
    state = probe() if mode != "off" else None
    return {"setting": mode, "in_force": describe(state, mode)}


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        rows: list[tuple[str, Any]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}{key}.")
        return rows
    return [(prefix.rstrip("."), data)]


def _print_report(console: Console, r: dict[str, Any]) -> None:
    from kernelwright.graphs.sanitizing import sanitized_text
    from kernelwright.tools.compile.diagnostics import Diagnostic

    styles: dict[Status, str] = {"passed": "green", "rejected": "red", "needs_gpu": "yellow"}
    status_style = styles.get(r["status"], "magenta")
    console.print(f"[bold {status_style}]{r['status'].upper()}[/]  {Path(r['candidate']).name} vs {Path(r['problem']).name}"
                  f"  (precision profile: {r.get('precision', 'strict')})")
    if r["reason"]:
        console.print(f"  reason: [bold]{r['reason']}[/]  {r['message']}")
    if r.get("error") and r["error"].get("diagnostics"):
        for diag in r["error"]["diagnostics"][:5]:
            console.print(f"  {Diagnostic.from_dict(diag).headline()}", markup=False, highlight=False)
    if r["trials"]:
        worst = max((o["max_abs_err"] for t in r["trials"] for o in t["outputs"]), default=0.0)
        console.print(f"  correctness: {len(r['trials'])} trials, max abs err {worst:.3g}")
    timing = r.get("timing") or {}
    if timing:
        table = Table("what", "median ms", "p20", "p80", "trials",
                      caption="eager and compiled under PyTorch's defaults; eager_strict with TF32 off")
        for name in ("candidate", "eager", "compiled", "eager_strict", "compiled_autotune"):
            stats = timing.get(name)
            if stats and "median_ms" in stats:
                table.add_row(name, f"{stats['median_ms']:.4f}", f"{stats['p20_ms']:.4f}", f"{stats['p80_ms']:.4f}",
                              str(stats["n_trials"]))
            elif stats:
                table.add_row(name, "failed: " + str(stats.get("error", {}).get("message", ""))[:60], "", "", "")
        console.print(table)
    for label, key in (("speedup vs eager", "speedup_vs_eager"), ("speedup vs torch.compile", "speedup_vs_compile"),
                       ("speedup vs eager (TF32 off)", "speedup_vs_eager_strict")):
        if r.get(key):
            console.print(f"  {label}: [bold]{r[key]:.2f}x[/]")
    if (r.get("resources") or {}).get("isolation"):
        console.print(f"  isolation: {r['resources']['isolation']}", markup=False, highlight=False)
    if r["status"] == "passed" or r.get("sanitizer"):
        console.print(f"  sanitized: {sanitized_text(r.get('sanitizer'))}")
    for note in r.get("weak_checks", []):
        console.print(f"  [yellow]note:[/] {note}")
    if r.get("profile"):
        console.print("  profile: " + str(r["profile"].get("summary", "")))


inspect_cli.register(app)  # runs, trace, report
exchange_cli.register(app)  # answer, export, config show
bench_cli.register(app)  # bench


def main() -> None:
    app()


if __name__ == "__main__":
    main()
