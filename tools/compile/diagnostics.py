"""Parse nvcc / host-compiler / ptxas / linker output into structured diagnostics.

The messages go back to an LLM, so each keeps its source context lines (the
snippet and caret nvcc prints under an error) and a location it can act on.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from kernelwright.tools.errors import location

Severity = Literal["error", "warning", "note", "remark"]

# kernel.cu(12): error: identifier "foo" is undefined      (cudafe / EDG front end)
# kernel.cu(12): warning #177-D: variable "x" was declared but never referenced
_NVCC_RE = re.compile(
    r"^(?P<file>[^\s(][^(]*?)\((?P<line>\d+)\):\s+(?P<sev>error|warning|remark|note|catastrophic error)"
    r"(?:\s+#(?P<code>[\w-]+))?:\s*(?P<msg>.*)$"
)
# kernel.cu:12:5: error: expected ';' before '}' token        (gcc / clang host pass)
_GCC_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s+(?P<sev>error|warning|note|fatal error):\s*(?P<msg>.*)$"
)
# ptxas error   : Entry function '_Z3fooPf' uses too much shared data (0x20000 bytes, 0xc000 max)
_PTXAS_RE = re.compile(r"^ptxas\s+(?P<sev>error|warning|fatal|info)\s*:\s*(?P<msg>.*)$")
# /usr/bin/ld: kernel.o: in function `f': undefined reference to `g'
_LD_RE = re.compile(r"^(?:/\S*/)?(?:ld|collect2)(?:\.\w+)?:\s*(?P<msg>.*)$")
_NVCC_FATAL_RE = re.compile(r"^nvcc (?P<sev>fatal|error)\s*:\s*(?P<msg>.*)$")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    code: str | None = None
    source: str = "nvcc"  # nvcc | host | ptxas | linker
    context: str = ""  # the snippet/caret lines printed under the message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostic:
        fields = {k: data.get(k) for k in cls.__dataclass_fields__}
        fields["context"] = fields.get("context") or ""
        fields["source"] = fields.get("source") or "nvcc"
        return cls(**fields)  # type: ignore[arg-type]

    def headline(self) -> str:
        """`file:line: severity: message` (a location part nvcc did not give is left out)."""
        return f"{location(self.file or self.source, self.line, self.column)}: {self.severity}: {self.message}"

    def render(self) -> str:
        return self.headline() + ("\n" + self.context if self.context else "")


def _norm_severity(raw: str) -> Severity:
    raw = raw.lower()
    if raw in ("catastrophic error", "fatal error", "fatal", "error"):
        return "error"
    if raw == "info":
        return "note"
    return raw  # type: ignore[return-value]


def parse_diagnostics(output: str) -> tuple[Diagnostic, ...]:
    """Every diagnostic found in compiler output, in order, with its context lines."""
    diags: list[Diagnostic] = []
    context: list[str] = []

    def flush_context() -> None:
        if diags and context:
            last = diags[-1]
            diags[-1] = Diagnostic(**{**last.to_dict(), "context": "\n".join(context).rstrip()})
        context.clear()

    for raw_line in output.splitlines():
        line = raw_line.rstrip()
        diag = _match(line)
        if diag is not None:
            flush_context()
            diags.append(diag)
        elif line.strip() and diags and not _is_summary(line):
            context.append(line)
    flush_context()
    return tuple(diags)


def _is_summary(line: str) -> bool:
    return bool(re.match(r"^\d+ errors? detected in the compilation of", line)) or line.startswith("compilation terminated")


def _match(line: str) -> Diagnostic | None:
    if m := _NVCC_RE.match(line):
        return Diagnostic(
            severity=_norm_severity(m["sev"]), message=m["msg"].strip(), file=m["file"].strip(),
            line=int(m["line"]), code=m["code"], source="nvcc",
        )
    if m := _GCC_RE.match(line):
        return Diagnostic(
            severity=_norm_severity(m["sev"]), message=m["msg"].strip(), file=m["file"].strip(),
            line=int(m["line"]), column=int(m["col"]) if m["col"] else None, source="host",
        )
    if m := _PTXAS_RE.match(line):
        if m["sev"] == "info":
            return None  # resource-usage lines are parsed separately
        return Diagnostic(severity=_norm_severity(m["sev"]), message=m["msg"].strip(), source="ptxas")
    if m := _NVCC_FATAL_RE.match(line):
        return Diagnostic(severity="error", message=m["msg"].strip(), source="nvcc")
    if m := _LD_RE.match(line):
        return Diagnostic(severity="error", message=m["msg"].strip(), source="linker")
    if "undefined reference to" in line:
        return Diagnostic(severity="error", message=line.strip(), source="linker")
    return None


# ptxas info    : Used 12 registers, used 0 barriers, 384 bytes cmem[0]
_PTXAS_FN_RE = re.compile(r"ptxas info\s*:\s*(?:Compiling|Function properties for) entry function '(?P<name>[^']+)'")
_PTXAS_USED_RE = re.compile(r"ptxas info\s*:\s*Used (?P<regs>\d+) registers")
_PTXAS_SMEM_RE = re.compile(r"(?P<smem>\d+) bytes smem")
_PTXAS_SPILL_RE = re.compile(r"(?P<stores>\d+) bytes spill stores, (?P<loads>\d+) bytes spill loads")


@dataclass(frozen=True, slots=True)
class KernelResources:
    """What ptxas reported for one entry function (-Xptxas -v)."""

    name: str
    registers: int | None = None
    shared_bytes: int | None = None
    spill_store_bytes: int = 0
    spill_load_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_resource_usage(output: str) -> tuple[KernelResources, ...]:
    """Registers, static shared memory and spills per kernel, from `ptxas -v` lines."""
    found: dict[str, dict[str, int]] = {}
    current: str | None = None
    for line in output.splitlines():
        if m := _PTXAS_FN_RE.search(line):
            current = m["name"]
            found.setdefault(current, {})
            continue
        if current is None:
            continue
        if m := _PTXAS_SPILL_RE.search(line):
            found[current]["spill_store_bytes"] = int(m["stores"])
            found[current]["spill_load_bytes"] = int(m["loads"])
        if m := _PTXAS_USED_RE.search(line):
            found[current]["registers"] = int(m["regs"])
            if s := _PTXAS_SMEM_RE.search(line):
                found[current]["shared_bytes"] = int(s["smem"])
    return tuple(KernelResources(name=name, **vals) for name, vals in found.items())
