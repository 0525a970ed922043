"""The one error hierarchy of kernelwright.

Every failure a tool can meet is one of these; none is signalled by returning
None. Each carries what a user (or an LLM) needs to act: what failed and where.
`to_dict()` is JSON-safe so errors can become graph state and report rows.
"""

from __future__ import annotations

from typing import Any


class KernelwrightError(Exception):
    """Base of every error kernelwright raises on purpose."""

    kind = "error"

    def __init__(self, message: str, *, where: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "type": type(self).__name__, "message": self.message}
        if self.where:
            out["where"] = self.where
        if self.details:
            out["details"] = _json_safe(self.details)
        return out


class ProblemError(KernelwrightError):
    """A problem or candidate file is malformed (syntax, missing names, bad get_inputs)."""

    kind = "load"


class InputFileError(ProblemError):
    """A problem or candidate path is not a Python source file at all: missing, a directory, unreadable, not
    text, or empty. The caller's mistake (bad input), never a verdict on a kernel."""


class LoadError(ProblemError):
    """A candidate or problem could not be imported or instantiated."""


class ReferenceFailure(ProblemError):
    """The problem itself is broken at run time (get_inputs raises, Model fails): no candidate is to blame."""


class CompileError(KernelwrightError):
    """nvcc (or the host compiler / linker) rejected the source."""

    kind = "compile"

    def __init__(self, message: str, *, returncode: int, stderr: str, diagnostics: tuple = (), where: str | None = None):
        super().__init__(message, where=where, details={"returncode": returncode})
        self.returncode = returncode
        self.stderr = stderr
        self.diagnostics = tuple(diagnostics)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["stderr"] = self.stderr[-8000:]
        out["diagnostics"] = [d.to_dict() for d in self.diagnostics]
        return out


class CorrectnessError(KernelwrightError):
    """The candidate ran but its outputs do not match the reference."""

    kind = "correctness"


class ReasonedError(KernelwrightError):
    """An error whose `reason` names the check that stopped the candidate (a report's rejection reason)."""

    def __init__(self, reason: str, message: str, *, where: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message, where=where, details=details)
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["reason"] = self.reason
        return out


class IntegrityError(ReasonedError):
    """The candidate tried (or happened) to game the harness; `reason` names the check."""

    kind = "integrity"


class BenchmarkError(KernelwrightError):
    """Timing could not be done or its figures are not trustworthy."""

    kind = "benchmark"


class ToolUnavailable(KernelwrightError):
    """A needed tool or device is missing: nvcc, ncu, a CUDA GPU, NVML."""

    kind = "unavailable"


class ToolTimeout(KernelwrightError):
    """A tool or a candidate ran past its time limit and was stopped."""

    kind = "timeout"

    def __init__(self, message: str, *, timeout_s: float, where: str | None = None):
        super().__init__(message, where=where, details={"timeout_s": timeout_s})
        self.timeout_s = timeout_s


class WorkerCrash(KernelwrightError):
    """A sandbox worker died (segfault, illegal address, killed)."""

    kind = "crash"

    def __init__(self, message: str, *, exitcode: int | None, log_tail: str = "", where: str | None = None):
        super().__init__(message, where=where, details={"exitcode": exitcode, "log_tail": log_tail[-4000:]})
        self.exitcode = exitcode
        self.log_tail = log_tail


class DoesNotFit(KernelwrightError):
    """The problem's tensors (inputs, reference and candidate outputs of one input set) do not fit the GPU."""

    kind = "does_not_fit"


class ResourceLimit(ReasonedError):
    """A worker went past a resource limit the harness enforces (host memory); it was stopped. `reason`
    names the limit (e.g. host_memory_limit)."""

    kind = "resource_limit"


class IsolationUnavailable(KernelwrightError):
    """`harness.isolation = "required"` and part of the sandbox's isolation is missing on this machine."""

    kind = "isolation_unavailable"


ERROR_TYPES: dict[str, type[KernelwrightError]] = {
    cls.__name__: cls
    for cls in (
        KernelwrightError, ProblemError, InputFileError, LoadError, ReferenceFailure, CompileError, CorrectnessError,
        IntegrityError, BenchmarkError, ToolUnavailable, ToolTimeout, WorkerCrash, DoesNotFit, ResourceLimit,
        ReasonedError, IsolationUnavailable,
    )
}


def location(file: str | object, line: int | None = None, column: int | None = None) -> str:
    """`file:line:column` for an error's `where`; a part that is not known is left out, never printed as None."""
    where = str(file)
    if line is not None:
        where += f":{line}" + (f":{column}" if column is not None else "")
    return where


def error_from_dict(data: dict[str, Any]) -> KernelwrightError:
    """Rebuild an error sent across a process boundary (the worker protocol)."""
    cls = ERROR_TYPES.get(str(data.get("type")), KernelwrightError)
    message = str(data.get("message", "unknown error"))
    where = data.get("where")
    details = data.get("details") or {}
    if cls is CompileError:
        from kernelwright.tools.compile.diagnostics import Diagnostic

        diags = tuple(Diagnostic.from_dict(d) for d in data.get("diagnostics", []))
        return CompileError(message, returncode=int(details.get("returncode", -1)), stderr=str(data.get("stderr", "")),
                            diagnostics=diags, where=where)
    if issubclass(cls, ReasonedError):
        return cls(str(data.get("reason", "unknown")), message, where=where, details=details)
    if cls is ToolTimeout:
        return ToolTimeout(message, timeout_s=float(details.get("timeout_s", 0.0)), where=where)
    if cls is WorkerCrash:
        return WorkerCrash(message, exitcode=details.get("exitcode"), log_tail=str(details.get("log_tail", "")), where=where)
    return cls(message, where=where, details=details)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
