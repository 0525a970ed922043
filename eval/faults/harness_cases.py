"""Faults inside an evaluation: a hostile candidate (or an injected fault) goes through the real Evaluator and
its sandbox workers, then an honest candidate goes through the same Evaluator. Contained: the faulty one is
rejected with its typed reason, and the honest one after it gets its normal verdict (the evaluator went on)."""

from __future__ import annotations

import os
import random
import resource
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from kernelwright.eval.faults.case import FaultOutcome
from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.pool import WorkerOptions

HERE = Path(__file__).resolve().parent
CANDIDATES = HERE / "candidates"
PROBLEM = HERE.parent / "problems" / "tiny_relu.py"
# The runtime walls are under test, so the static pre-check (EvalSettings.code_check, where this version has it)
# is off: it would refuse the hostile candidates (ctypes, os.kill, open for writing) before any worker ran them.
_NO_STATIC_CHECK: dict[str, Any] = {"code_check": False} if "code_check" in {f.name for f in fields(EvalSettings)} else {}
# Quick settings: the faults, not the timing, are under test. The watchdog's floor is short so a hang costs seconds.
QUICK = EvalSettings(compile_baseline=False, keep_standby=False, bench=BenchSettings(rep_ms=20.0, min_trials=10),
                     min_call_timeout_s=3.0, load_timeout_s=60.0, host_memory_limit_gb=None, **_NO_STATIC_CHECK)
DISK_LIMIT_BYTES = 4 << 20  # the worker's file-size cap in the disk-full case


@dataclass(frozen=True)
class HarnessFault:
    candidate: str  # a file under candidates/
    reasons: tuple[str, ...]  # the typed rejection reasons that count as right
    message_has: str = ""  # a word the rejection's message must carry (the signal's name, ...)
    settings: EvalSettings = QUICK
    device: Literal["cuda", "cpu"] = "cpu"  # "cpu": the harness's CPU self-test mode; "cuda": the real GPU path
    env: dict[str, str] = field(default_factory=dict)  # the workers' extra environment
    honest: str = "honest.py"
    honest_status: str = "passed"
    inject: Callable[[Evaluator], None] | None = None  # applied to the started candidate worker before the fault


def run_harness_fault(fault: HarnessFault, scratch: Path) -> FaultOutcome:
    env = {"KERNELWRIGHT_CACHE_DIR": str(scratch / "build-cache"), **fault.env}
    with Evaluator(PROBLEM, fault.settings, WorkerOptions(env=env, device=fault.device)) as ev:
        if fault.inject is not None:
            fault.inject(ev)
        bad = ev.evaluate(CANDIDATES / fault.candidate)
        after = ev.evaluate(CANDIDATES / fault.honest)
    return judge(fault, bad, after)


def judge(fault: HarnessFault, bad: EvalReport, after: EvalReport) -> FaultOutcome:
    reason = bad.reason or bad.status
    right = bad.status == "rejected" and reason in fault.reasons and fault.message_has in (bad.message or "")
    went_on = after.status == fault.honest_status
    problems = [] if right else [f"expected rejected/{'|'.join(fault.reasons)}"
                                 + (f" naming {fault.message_has}" if fault.message_has else "")
                                 + f", got {bad.status}/{reason}: {(bad.message or '')[:160]}"]
    if not went_on:
        problems.append(f"the honest candidate after it got {after.status}/{after.reason}: {(after.message or '')[:160]}")
    detail = "; ".join(problems) or f"{(bad.message or '').splitlines()[0][:200]}; next candidate: {after.status}"
    return FaultOutcome(contained=right and went_on, reason=reason, work_lost=0 if went_on else 1, detail=detail)


def cap_file_size(ev: Evaluator) -> None:
    """The injected disk-full: the candidate worker's RLIMIT_FSIZE, set from outside (prlimit) once it runs, so a
    write past a few MiB fails as on a full disk; no hook in the worker."""
    pid = ev.cand_slot.get().pid
    if pid is None:
        raise RuntimeError("the candidate worker did not start")
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (DISK_LIMIT_BYTES, DISK_LIMIT_BYTES))


def remove_disk_full_leftovers() -> None:
    """The disk-full candidate's partly written files (its worker was stopped before it could remove them)."""
    import tempfile

    for path in Path(tempfile.gettempdir()).glob("kw-fault-disk-full-*.bin"):
        path.unlink(missing_ok=True)


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script `name` in `folder` (the caller puts `folder` first on a PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


def hanging_nvcc(folder: Path, marker: str) -> Path:
    """An nvcc that answers its queries but never finishes a compile: it sleeps `marker` seconds (a number unique to
    the case, so its process can be found afterwards; a sandboxed worker may have no writable place to note it)."""
    body = ('case "$*" in\n'
            '  *--version*) echo "Cuda compilation tools, release 12.8, V12.8.93"; exit 0;;\n'
            '  *--list-gpu-code*) printf "sm_80\\nsm_90\\nsm_90a\\n"; exit 0;;\n'
            f'esac\nexec sleep {marker}\n')
    return fake_tool(folder, "nvcc", body)


def processes_running(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line has `marker`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes()
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"):
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return found


def run_compile_hang(scratch: Path) -> FaultOutcome:
    """nvcc never returns from a compile: the build's timeout (EvalSettings.build.timeout_s) must kill it and its
    process group, reject the candidate as a timeout, and leave the evaluator serving the next one."""
    marker = f"3599.{random.randrange(10**8, 10**9)}"
    fake_dir = scratch / "bin"
    hanging_nvcc(fake_dir, marker)
    fault = HarnessFault("compile_hang.py", ("timeout",), message_has="nvcc did not finish", device="cuda",
                         settings=replace(QUICK, build=BuildSettings(arch="sm_90a", timeout_s=2.0), load_timeout_s=30.0),
                         env={"PATH": f"{fake_dir}{os.pathsep}{os.environ.get('PATH', '')}", "CUDA_VISIBLE_DEVICES": ""},
                         honest_status="needs_gpu")  # no GPU visible to the workers: the honest one then needs one
    outcome = run_harness_fault(fault, scratch)
    left = processes_running(marker)
    if left:
        return replace(outcome, contained=False, detail=f"the hung nvcc still runs after the timeout: pids {left}")
    return replace(outcome, detail=f"{outcome.detail}; no nvcc left running")
