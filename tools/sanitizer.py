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
from dataclasses import asdict, dataclass

from kernelwright.tools.errors import ToolTimeout, ToolUnavailable
from kernelwright.tools.procenv import scrubbed_env

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
             env: dict[str, str] | None = None) -> SanitizerReport:
    exe = find_compute_sanitizer()
    cmd = [exe, "--tool", tool, "--error-exitcode", "86", "--print-limit", "20",
           sys.executable, "-m", "kernelwright.tools.run_once", problem, candidate, "--calls", "1"]
    child_env = scrubbed_env(env, PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                            start_new_session=True)
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
