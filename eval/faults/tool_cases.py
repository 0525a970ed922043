"""Faults of the external tools: ncu crashing while it profiles (a fake ncu that dies of SIGSEGV)."""

from __future__ import annotations

import sys
from pathlib import Path

from kernelwright.eval.faults.case import FaultOutcome
from kernelwright.eval.faults.harness_cases import fake_tool
from kernelwright.tools.measure.ncu import ProfileUnavailable, profile_command

_CRASHING_NCU = ('case "$*" in *--version*) echo "Version 2025.3.1.0 (build 1)"; exit 0;; esac\n'
                 'echo "==PROF== Connected to process $$"\nkill -SEGV $$\n')


def run_ncu_crash(scratch: Path) -> FaultOutcome:
    """The profiler's crash must come back as a value (ProfileUnavailable, which a run records and goes on), not as
    an exception that stops the run."""
    fake_tool(scratch / "bin", "ncu", _CRASHING_NCU)
    try:
        result = profile_command([sys.executable, "-c", "pass"], kernel_regex=None, timeout_s=30.0, env=None,
                                 search_path=str(scratch / "bin"))
    except Exception as exc:  # noqa: BLE001 - an exception here would stop the run's profiling node
        return FaultOutcome(False, type(exc).__name__, 1, str(exc)[:300])
    ok = isinstance(result, ProfileUnavailable) and "-11" in result.reason
    said = str(getattr(result, "reason", ""))
    reason = f"{type(result).__name__}: {said.split(':')[0]}"  # ncu's own output (a pid) goes to the detail
    return FaultOutcome(ok, reason, 0, f"the crash comes back as a value the run records: {said[:160]}")
