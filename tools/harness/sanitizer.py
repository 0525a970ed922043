"""Optional compute-sanitizer (memcheck) pass over a candidate: out-of-bounds and misaligned accesses.

The caching allocator is turned off for the run (PYTORCH_NO_CUDA_MEMORY_CACHING=1):
pooled blocks are larger than the tensors in them, so an overrun inside a block
would otherwise go unseen.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kernelwright.tools.errors import KernelwrightError, ToolTimeout, ToolUnavailable
from kernelwright.tools.procenv import scrubbed_env
from kernelwright.tools.sandbox.isolation import IsolationPolicy, jailed

_SUMMARY_RE = re.compile(r"ERROR SUMMARY:\s*(\d+) error")
_ERROR_RE = re.compile(r"^=+\s+(Invalid __global__ (?:read|write).*|Misaligned.*|Out-of-range.*|Program hit .*)$", re.M)


@dataclass(frozen=True, slots=True)
class SanitizerReport:
    tool: str
    errors: int
    first_errors: tuple[str, ...]
    exit_code: int
    output_tail: str

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.exit_code == 0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["clean"] = self.clean
        return out


def find_compute_sanitizer() -> str:
    candidates = [shutil.which("compute-sanitizer"), "/usr/local/cuda/bin/compute-sanitizer",
                  *sorted(glob.glob("/usr/local/cuda*/compute-sanitizer/compute-sanitizer"))]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise ToolUnavailable("compute-sanitizer not found (it ships with the CUDA toolkit)", where="sanitizer")


def sanitize(problem: str, candidate: str, *, tool: str = "memcheck", timeout_s: float = 600.0,
             env: dict[str, str] | None = None, isolation: IsolationPolicy | None = None) -> SanitizerReport:
    """`isolation`: the jail compute-sanitizer and the candidate's process start in (None: none)."""
    exe = find_compute_sanitizer()
    cmd = [exe, "--tool", tool, "--error-exitcode", "86", "--print-limit", "20",
           sys.executable, "-m", "kernelwright.tools.measure.run_once", problem, candidate, "--calls", "1"]
    child_env = scrubbed_env(env, PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    with jailed(cmd, isolation, child_env) as cmd:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                                start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ToolTimeout(f"compute-sanitizer did not finish within {timeout_s:.0f} s", timeout_s=timeout_s,
                              where="sanitizer") from None
    m = _SUMMARY_RE.search(output)
    errors = int(m.group(1)) if m else (0 if proc.returncode == 0 else -1)
    if "Device not supported" in output or "Unable to find" in output and errors <= 0:
        raise ToolUnavailable("compute-sanitizer cannot run on this device: " + output.strip()[-300:], where="sanitizer")
    first = tuple(e.strip() for e in _ERROR_RE.findall(output))[:5]
    return SanitizerReport(tool, errors, first, proc.returncode, output[-4000:])


SanitizeStatus = Literal["clean", "out_of_bounds", "unavailable", "timeout", "error"]
OUT_OF_BOUNDS: SanitizeStatus = "out_of_bounds"  # the one status that rejects a kernel; also its rejection reason


def verdict_update(verdict: dict[str, Any]) -> dict[str, Any]:
    """The report fields a verdict (SanitizeVerdict.to_dict()) changes: `sanitizer` always; memory errors also
    reject the kernel. A sanitizer that could not run leaves it verified, and `sanitizer` says why."""
    update: dict[str, Any] = {"sanitizer": dict(verdict)}
    if verdict.get("status") == OUT_OF_BOUNDS:
        update.update(status="rejected", reason=OUT_OF_BOUNDS, message=str(verdict.get("message") or ""))
    return update


@dataclass(frozen=True, slots=True)
class SanitizeVerdict:
    """The winner's memcheck pass as reports show it: `sanitized` is True only when memcheck ran and found
    nothing; `status` says what happened otherwise (errors found, tool missing, timed out)."""

    status: SanitizeStatus
    message: str
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def sanitized(self) -> bool:
        return self.status == "clean"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "sanitized": self.sanitized, "message": self.message,
                "seconds": round(self.seconds, 3), "report": self.report}


def sanitize_verdict(problem: str, candidate: str, *, timeout_s: float = 600.0,
                     env: dict[str, str] | None = None, isolation: IsolationPolicy | None = None) -> SanitizeVerdict:
    """Run memcheck over one call of the candidate and name the outcome; never raises for a tool problem."""
    started = time.perf_counter()
    try:
        result = sanitize(problem, candidate, timeout_s=timeout_s, env=env, isolation=isolation)
    except ToolUnavailable as exc:
        return SanitizeVerdict("unavailable", exc.message, time.perf_counter() - started)
    except ToolTimeout as exc:
        return SanitizeVerdict("timeout", exc.message, time.perf_counter() - started)
    except (KernelwrightError, OSError) as exc:
        return SanitizeVerdict("error", str(exc), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if result.clean:
        return SanitizeVerdict("clean", "compute-sanitizer memcheck found no memory errors", seconds, result.to_dict())
    if result.errors > 0:
        return SanitizeVerdict(OUT_OF_BOUNDS, f"compute-sanitizer found {result.errors} memory error(s): "
                               + "; ".join(result.first_errors[:2]), seconds, result.to_dict())
    return SanitizeVerdict("error", f"the candidate failed under compute-sanitizer (exit code {result.exit_code}): "
                           + result.output_tail.strip()[-300:], seconds, result.to_dict())
