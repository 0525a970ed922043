"""Build many candidates at once on CPU workers, before any GPU time is spent on them.

Each candidate is imported in its own CPU-only sandbox worker (CUDA hidden), which
runs its load_cuda / load_inline builds into the shared content-addressed cache;
the GPU evaluation that follows then loads cached libraries. Builds run in
parallel under a job limit; a failure comes back in place with its diagnostics. A candidate the static
pre-check refuses (tools.verify.code_check) comes back failed at once: no worker imports it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.tools.compile.nvcc import DEFAULT_ARCH, BuildSettings, arch_for_capability
from kernelwright.tools.errors import InputFileError, KernelwrightError, ToolUnavailable
from kernelwright.tools.harness.evaluate import EvalSettings, isolation_policy
from kernelwright.tools.problem.files import read_source
from kernelwright.tools.sandbox.pool import SandboxWorker, WorkerOptions
from kernelwright.tools.verify.code_check import forbidden_code_error

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    candidate: str
    ok: bool
    seconds: float
    error: dict[str, Any] | None = None
    libraries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_arch() -> str:
    """The visible GPU's nvcc target via NVML (no CUDA context here), else the default."""
    from kernelwright.tools.measure.gpu_info import gpu_facts

    try:
        return arch_for_capability(*gpu_facts(use_torch=False).compute_capability)
    except (ToolUnavailable, TypeError):
        return DEFAULT_ARCH


_DEFAULTS = EvalSettings()  # what a caller that passes no settings gets: the same as an Evaluator's


def build_candidates(problem: str | Path, candidates: Sequence[str | Path], *, build: BuildSettings = BuildSettings(),
                     jobs: int | None = None, options: WorkerOptions | None = None,
                     timeout_s: float = 600.0, code_check: bool = _DEFAULTS.code_check) -> list[BuildOutcome]:
    """Import every candidate in a CPU-only worker (building its CUDA); outcomes in input order. `code_check`:
    the static pre-check first (EvalSettings.code_check). `options`: the workers' (their jail: the run's
    isolation_policy); without them, the default settings' jail with the problem's and candidates' folders readable."""
    options = options or WorkerOptions(isolation=isolation_policy(
        _DEFAULTS, Path(problem), *{Path(c).resolve().parent for c in candidates}))
    # A CPU worker sees no GPU to ask, so the arch is settled here (the GPU evaluation must find the same build).
    settled = replace(build, arch=build.arch or detect_arch())
    cpu_options = replace(options, env={**settled.worker_env(), **options.env, "CUDA_VISIBLE_DEVICES": ""})
    # Each worker runs nvcc itself; two builds per core keeps the machine busy without thrashing.
    jobs = jobs or max(1, (os.cpu_count() or 2) // 2)

    trusted = _problem_text(problem) if code_check else None  # its own statements a candidate carries pass

    def build_one(candidate: str | Path) -> BuildOutcome:
        started = time.perf_counter()
        try:
            text = read_source(candidate, "candidate") if code_check else None
        except InputFileError:
            text = None  # not a readable source: the worker's load says so, as it does without the check
        if text is not None and (refused := forbidden_code_error(text, candidate, trusted)) is not None:
            return BuildOutcome(str(candidate), False, time.perf_counter() - started, error=refused.to_dict())
        worker = SandboxWorker("candidate", cpu_options)
        try:
            worker.start()
            reply = worker.request("load", timeout_s=timeout_s, problem=str(problem), candidate=str(candidate),
                                   fast_inline=build.fast_inline)
            return BuildOutcome(str(candidate), True, time.perf_counter() - started,
                                libraries=list(reply.header.get("candidate_libs", [])))
        except KernelwrightError as exc:
            return BuildOutcome(str(candidate), False, time.perf_counter() - started, error=exc.to_dict())
        finally:
            worker.close()

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(build_one, candidates))
    log.info("candidates_built", total=len(outcomes), ok=sum(o.ok for o in outcomes), jobs=jobs)
    return outcomes


def build_candidate(problem: str | Path, candidate: str | Path, settings: EvalSettings) -> BuildOutcome:
    """One candidate built as an evaluation with `settings` would build it: their build settings, their static
    pre-check, and their jail (the problem's and the candidate's folders readable)."""
    jail = isolation_policy(settings, Path(problem), Path(candidate).resolve().parent)
    (outcome,) = build_candidates(problem, [candidate], build=settings.build, jobs=1, code_check=settings.code_check,
                                  options=WorkerOptions(isolation=jail))
    return outcome


def _problem_text(problem: str | Path) -> str | None:
    try:
        return read_source(problem, "problem")
    except InputFileError:
        return None  # the worker's load names what is wrong with it; nothing of it is trusted meanwhile
