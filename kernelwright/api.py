"""The public Python API: optimise a problem or module, evaluate a candidate kernel against a problem.

Quiet by default: only warnings and errors reach stderr. `log_level="info"` (or "debug") shows
kernelwright's progress lines for that call, as KERNELWRIGHT_LOG_LEVEL does when the program has not
configured structlog itself (then its configuration decides); see logging_setup.api_logging.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.config import KernelwrightConfig, load_config
from kernelwright.graphs.harness_evaluator import profile_candidate
from kernelwright.logging_setup import api_logging
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator, isolation_policy
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import verdict_update
from kernelwright.tools.problem.files import check_source, read_source
from kernelwright.tools.problem.from_module import stop_if_reloading_script, write_problem_from_module

log = structlog.get_logger(__name__)


def problem_from_module(module: Any, example_inputs: Sequence[Any], *, init_args: Sequence[Any] = (),
                        init_kwargs: dict[str, Any] | None = None, directory: str | Path | None = None) -> Path:
    """Write a KernelBench-style problem file for an nn.Module (class or instance) and example inputs.

    The class may live in the running script itself, with or without an `if __name__ == "__main__":`
    guard: each worker re-runs the script up to its first kernelwright call to get the class."""
    stop_if_reloading_script()
    directory = Path(directory or tempfile.mkdtemp(prefix="kw-problem-"))
    return write_problem_from_module(module, example_inputs, directory, init_args=init_args, init_kwargs=init_kwargs)


def evaluate(problem: str | Path, candidate: str | Path, *, config: KernelwrightConfig | None = None,
             profile: bool | None = None, sanitize: bool = True, log_level: str | None = None) -> EvalReport:
    """Verify and time one candidate file against one problem file (see `kernelwright eval`).

    `sanitize`: a candidate that passes is the caller's winner, so compute-sanitizer memcheck runs on it
    before it is reported verified (unless `harness.sanitize` already ran it before timing); memory errors
    reject it (reason out_of_bounds), a sanitizer that cannot run leaves `report.sanitizer` saying why.
    A problem or candidate path that is no Python source file (missing, a directory, binary, empty) raises
    InputFileError; a malformed problem raises ProblemError; a malformed candidate is a rejected report.
    `log_level`: see the module's docstring."""
    stop_if_reloading_script()
    asked = _checked_level(log_level)
    config = config or load_config()
    check_source(problem, "problem")
    read_source(candidate, "candidate")  # a path that is no source file is bad input, not a rejected kernel
    with api_logging(asked, config.log_level):
        return _evaluate(problem, candidate, config, profile, sanitize)


def _evaluate(problem: str | Path, candidate: str | Path, config: KernelwrightConfig, profile: bool | None,
              sanitize: bool) -> EvalReport:
    settings = _jailed(config.eval_settings(), config.runs_dir, Path(candidate))
    with Evaluator(problem, settings) as evaluator:
        report = evaluator.evaluate(candidate)
        if sanitize and report.passed and report.sanitizer is None:
            for key, value in verdict_update(evaluator.sanitize(candidate).to_dict()).items():
                setattr(report, key, value)
    if report.passed and (config.harness.profile if profile is None else profile):
        report.profile = profile_candidate(problem, candidate, settings.build,
                                           isolation_policy(settings, Path(problem)))
    return report


def _jailed(settings: EvalSettings, runs_dir: Path, candidate: Path) -> EvalSettings:
    """The candidate's code sees neither the runs folder nor the archive, only its own folder (wherever it is)."""
    from kernelwright.memory.location import default_archive_path

    return replace(settings, private_paths=(*settings.private_paths, str(runs_dir), str(default_archive_path())),
                   visible_paths=(*settings.visible_paths, str(candidate.resolve().parent)))


def optimize(problem_or_module: Any, *, example_inputs: Sequence[Any] | None = None, init_args: Sequence[Any] = (),
             log_level: str | None = None, config: KernelwrightConfig | None = None, **options: Any) -> Any:
    """Optimise a problem file, or an nn.Module (class or instance) with `example_inputs`; see kernelwright.run.optimize.

    Returns a RunResult: `best_kernel` (the verified file), `speedup_vs_eager`,
    `speedup_vs_compile`, `sanitized` (compute-sanitizer memcheck passed it; `sanitizer` is the verdict),
    `run_dir`, and the full final `state`. `log_level`: see the module's docstring. `config`: the settings
    (default: load_config(), the defaults and the environment).
    """
    from kernelwright.run import optimize as run_optimize

    stop_if_reloading_script()
    asked = _checked_level(log_level)
    config = config or load_config()
    if isinstance(problem_or_module, (str, Path)):
        problem = Path(problem_or_module)
    else:
        if example_inputs is None:
            raise TypeError("optimize(module) needs example_inputs: the inputs its forward takes")
        problem = problem_from_module(problem_or_module, example_inputs, init_args=init_args)
    with api_logging(asked, config.log_level):
        return run_optimize(problem, config=config, **options)


def _checked_level(level: str | None) -> str | None:
    """A `log_level` argument, checked and lower-cased by the config (a bad one is a ConfigError)."""
    return None if level is None else load_config(env={}, overrides={"log_level": level}).log_level
