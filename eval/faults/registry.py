"""Every fault case, in the order the table lists them."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from kernelwright.eval.faults.archive_case import run_archive_locked
from kernelwright.eval.faults.case import FaultCase, FaultOutcome
from kernelwright.eval.faults.harness_cases import (
    QUICK,
    HarnessFault,
    cap_file_size,
    remove_disk_full_leftovers,
    run_compile_hang,
    run_harness_fault,
)
from kernelwright.eval.faults.llm_cases import (
    run_chain_outage,
    run_garbage,
    run_outage_then_resume,
    run_rate_limited_then_error,
    run_timeout,
)
from kernelwright.eval.faults.resume_case import run_orchestrator_killed
from kernelwright.eval.faults.tool_cases import run_ncu_crash

NEXT_PASSES = "rejected with its typed reason; the honest candidate evaluated next by the same Evaluator passes"
RUN_GOES_ON = "the run finishes with every candidate evaluated once"


def _harness(fault: HarnessFault) -> partial[FaultOutcome]:
    return partial(run_harness_fault, fault)


def _on_gpu(candidate: str, reason: str) -> partial[FaultOutcome]:
    """A CUDA candidate on the real GPU path, followed by an honest CUDA one."""
    return _harness(HarnessFault(candidate, (reason,), device="cuda", honest="cuda_honest.py"))


def _disk_full(scratch: Path) -> FaultOutcome:
    try:
        return run_harness_fault(HarnessFault("disk_full.py", ("error",), message_has="File too large",
                                              inject=cap_file_size),
                                 scratch)
    finally:
        remove_disk_full_leftovers()


def all_cases() -> list[FaultCase]:
    return [
        FaultCase("worker_segfault", "worker segfault", "candidate reads address 0 in forward (CPU worker)",
                  NEXT_PASSES + " (reason crash, naming SIGSEGV)", False,
                  _harness(HarnessFault("segfault.py", ("crash",), message_has="SIGSEGV"))),
        FaultCase("cuda_illegal_memory", "CUDA illegal memory access", "kernel writes 2^40 floats past its output",
                  NEXT_PASSES + " (reason crash: the CUDA error is sticky, the worker is replaced)", True,
                  _on_gpu("cuda_illegal_memory.py", "crash")),
        FaultCase("forward_hang", "kernel hang (CPU)", "candidate's forward loops forever in Python",
                  NEXT_PASSES + " (reason timeout, the watchdog kills the worker)", False,
                  _harness(HarnessFault("hang.py", ("timeout",), message_has="killed"))),
        FaultCase("kernel_hang", "kernel hang (GPU)", "a CUDA kernel spins forever",
                  NEXT_PASSES + " (reason timeout)", True,
                  _on_gpu("cuda_hang.py", "timeout")),
        FaultCase("worker_killed", "worker killed by a signal", "the worker gets SIGKILL mid-forward",
                  NEXT_PASSES + " (reason crash, naming SIGKILL)", False,
                  _harness(HarnessFault("killed_by_signal.py", ("crash",), message_has="SIGKILL"))),
        FaultCase("host_oom", "host out-of-memory in a worker", "candidate holds 3 GiB; host_memory_limit_gb=2.5",
                  NEXT_PASSES + " (reason host_memory_limit, from the PSS monitor)", False,
                  _harness(HarnessFault("host_memory_hog.py", ("host_memory_limit",),
                                        settings=replace(QUICK, host_memory_limit_gb=2.5,
                                                        min_call_timeout_s=10.0)))),
        FaultCase("gpu_oom", "GPU out-of-memory", "candidate allocates 4 TiB on the GPU",
                  NEXT_PASSES + " (reason does_not_fit)", True,
                  _on_gpu("cuda_out_of_memory.py", "does_not_fit")),
        FaultCase("disk_full", "disk full in the work dir",
                  "the candidate worker's RLIMIT_FSIZE capped at 4 MiB (prlimit); candidate writes 64 MiB",
                  NEXT_PASSES + " (reason error: the write fails with EFBIG, as with ENOSPC on a full disk)", False,
                  _disk_full),
        FaultCase("compile_hang", "compile hang", "fake nvcc first on the workers' PATH never returns from a compile; "
                  "EvalSettings.build.timeout_s=2",
                  "rejected as timeout naming nvcc; nvcc's process killed; the next candidate is evaluated", False,
                  run_compile_hang),
        FaultCase("ncu_crash", "ncu crash", "fake ncu that dies of SIGSEGV (profile_command's search_path)",
                  "comes back as ProfileUnavailable (a value the run records), not an exception", False,
                  run_ncu_crash),
        FaultCase("llm_429_500", "LLM endpoint returns 429 then 500", "replay server: 429, 500, then an answer",
                  "the client retries; " + RUN_GOES_ON, False, run_rate_limited_then_error),
        FaultCase("llm_timeout", "LLM endpoint times out", "replay server answers after 3 s; client timeout 1 s",
                  "the client retries; " + RUN_GOES_ON, False, run_timeout),
        FaultCase("llm_garbage", "LLM endpoint sends garbage", "replay server: one garbage answer, one candidate",
                  "the garbage is refused with its reason; " + RUN_GOES_ON, False, run_garbage),
        FaultCase("llm_outage", "LLM endpoint down for good", "replay server: one answer, then HTTP 503 forever",
                  "the run stops with LLMRunError and its resume command; the resume finishes, nothing evaluated twice",
                  False, run_outage_then_resume),
        FaultCase("llm_chain_outage", "a model chain's first endpoint down",
                  "two replay servers: the first HTTP 503 throughout, the second 429 with Retry-After 1 s once",
                  "the run switches to the chain's second model and finishes; the retries and the switch are events",
                  False, run_chain_outage),
        FaultCase("archive_locked", "Chroma archive locked by another process",
                  "another process holds the archive's exclusive lock for the whole run (lock timeout 1 s)",
                  "the run finishes; the archive reopens intact; its kernels stay marked unarchived", False,
                  run_archive_locked),
        FaultCase("orchestrator_killed", "orchestrator killed at a random point",
                  "the run's process gets SIGKILL after a random number of evaluations (+ up to 0.3 s)",
                  "the resume finishes with every candidate evaluated exactly once, no torn event line", False,
                  run_orchestrator_killed),
    ]
