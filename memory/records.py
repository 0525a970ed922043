"""What the kernel archive stores: one `ArchiveRecord` per verified (or at least evaluated) kernel.

A record is built from a finished run candidate's folder (its source, metadata, report and profile, read
through tools.run_folder) plus the problem's functional form. Everything here is plain data: JSON-safe
`to_dict()` / `from_dict()` so records travel through Chroma documents and JSONL exports alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.harness.results import Status, status_of
from kernelwright.tools.run_folder import LINEAGE_KEY, CandidateFolder, CandidateProfile, lineage_of
from kernelwright.tools.source_hash import candidate_id

SCHEMA_VERSION = 1


class RecordError(KernelwrightError):
    """A record (or the run files it is built from) is malformed."""

    kind = "archive"


@dataclass(frozen=True, slots=True)
class SigTensor:
    shape: tuple[int, ...] | None
    dtype: str | None

    def render(self) -> str:
        if self.shape is None:
            return "?"
        return f"{self.dtype or '?'}[{', '.join(map(str, self.shape))}]"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SigTensor:
        shape = data.get("shape")
        return cls(tuple(int(s) for s in shape) if shape is not None else None, data.get("dtype"))


@dataclass(frozen=True, slots=True)
class SigOp:
    target: str  # aten.softmax.int
    outputs: tuple[SigTensor, ...] = ()

    @property
    def short(self) -> str:
        """'aten.softmax.int' -> 'softmax': the word a person (and the text embedding) knows."""
        parts = self.target.split(".")
        return parts[1] if len(parts) >= 3 and parts[0] in ("aten", "prims") else self.target


@dataclass(frozen=True, slots=True)
class ProblemSignature:
    """The shape of a problem for retrieval: its ops in order, with the tensors going in and out."""

    ops: tuple[SigOp, ...] = ()
    inputs: tuple[SigTensor, ...] = ()
    params: tuple[SigTensor, ...] = ()  # parameters, buffers and constants lifted to arguments
    outputs: tuple[SigTensor, ...] = ()
    name: str = ""  # the problem's file stem, a hint for people, not part of the key

    @classmethod
    def from_functional(cls, form: Any, name: str = "") -> ProblemSignature:
        """From a `tools.problem.functional.FunctionalForm` or its `to_dict()`."""
        data = form.to_dict() if hasattr(form, "to_dict") else dict(form)
        ops = tuple(SigOp(str(o["target"]), tuple(SigTensor.from_dict(t) for t in o.get("outputs", ())))
                    for o in data.get("ops", ()))
        inputs: list[SigTensor] = []
        params: list[SigTensor] = []
        for arg in data.get("args", ()):
            (inputs if arg.get("kind") == "input" else params).append(SigTensor.from_dict(arg.get("spec") or {}))
        outputs = tuple(SigTensor.from_dict(t) for t in data.get("outputs", ()))
        return cls(ops, tuple(inputs), tuple(params), outputs, name)

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op.target for op in self.ops))

    def op_set(self) -> frozenset[str]:
        return frozenset(op.target for op in self.ops)

    def dtypes(self) -> frozenset[str]:
        return frozenset(t.dtype for t in (*self.inputs, *self.params, *self.outputs) if t.dtype)

    def key(self) -> str:
        """Same ops, shapes and dtypes -> same key (the name does not count)."""
        payload = self.to_dict()
        payload.pop("name", None)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def text(self, max_ops: int = 24) -> str:
        """A short description for the text embedding: op words first, then tensors (kept short: the
        query is embedded at retrieval time and its cost grows with its length)."""
        counts = Counter(op.short for op in self.ops)
        words = [f"{op} x{n}" if n > 1 else op for op, n in counts.most_common(max_ops)]
        parts = [f"ops: {', '.join(words) or 'untraced'}"]
        if self.inputs:
            parts.append("inputs: " + " ".join(t.render() for t in self.inputs[:6]))
        if self.params:
            parts.append("weights: " + " ".join(t.render() for t in self.params[:6]))
        if self.outputs:
            parts.append("outputs: " + " ".join(t.render() for t in self.outputs[:4]))
        if self.name:
            parts.append(f"problem: {self.name}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        def tensors(ts: tuple[SigTensor, ...]) -> list[dict[str, Any]]:
            return [{"shape": list(t.shape) if t.shape is not None else None, "dtype": t.dtype} for t in ts]

        return {"ops": [{"target": o.target, "outputs": tensors(o.outputs)} for o in self.ops],
                "inputs": tensors(self.inputs), "params": tensors(self.params), "outputs": tensors(self.outputs),
                "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProblemSignature:
        def tensors(items: Any) -> tuple[SigTensor, ...]:
            return tuple(SigTensor.from_dict(t) for t in items or ())

        ops = tuple(SigOp(str(o["target"]), tensors(o.get("outputs"))) for o in data.get("ops", ()))
        return cls(ops, tensors(data.get("inputs")), tensors(data.get("params")), tensors(data.get("outputs")),
                   str(data.get("name", "")))


@dataclass(frozen=True, slots=True)
class Lineage:
    """How a kernel was made: the candidate's metadata in its run folder (tools.run_folder.CandidateMeta)."""

    parents: tuple[str, ...] = ()
    agent: str = ""
    prompt: str = ""  # template tag, e.g. translator@v1
    model: str = ""
    generation: int | None = None
    temperature: float | None = None
    params: dict[str, Any] | None = None  # the offline translator's tunable settings (None: not recorded)


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    id: str  # candidate_id(kernel_source): the normalised-source hash, the dedup key
    signature: ProblemSignature
    functional_source: str
    kernel_source: str
    status: Status  # the harness's verdict; only "passed" is verified
    gpu_name: str | None = None
    compute_capability: str | None = None  # "9.0"
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    correctness: dict[str, Any] = field(default_factory=dict)  # trials, max_abs_err, weak checks
    timing: dict[str, Any] = field(default_factory=dict)  # median_ms per side
    profile_summary: str = ""
    lineage: Lineage = field(default_factory=Lineage)
    run_id: str = ""
    created_at: float = field(default_factory=time.time)  # seconds since the epoch

    @property
    def verified(self) -> bool:
        return self.status == "passed"

    @property
    def gpu_arch(self) -> str | None:
        """'9.0' -> 'sm_90', the word nvcc and people use."""
        return arch_of(self.compute_capability)

    def techniques(self) -> tuple[str, ...]:
        return kernel_techniques(self.kernel_source)

    @property
    def memcheck_failed(self) -> bool:
        """compute-sanitizer found memory errors: whatever else passed, the kernel is not correct."""
        return self.correctness.get("sanitizer") == "out_of_bounds"

    def evidence_rank(self) -> tuple[int, int, int, float, float]:
        """Orders two records of one kernel: a memcheck failure first (it outranks an earlier pass that had no
        memcheck), then verified, then more checks, then faster."""
        trials = int(self.correctness.get("trials", 0) or 0)
        return (int(self.memcheck_failed), int(self.verified), trials, self.speedup_vs_eager or 0.0, self.created_at)

    def to_dict(self) -> dict[str, Any]:
        lin = self.lineage
        return {"schema": SCHEMA_VERSION, "id": self.id, "signature": self.signature.to_dict(),
                "functional_source": self.functional_source, "kernel_source": self.kernel_source,
                "status": self.status, "gpu_name": self.gpu_name, "compute_capability": self.compute_capability,
                "speedup_vs_eager": self.speedup_vs_eager, "speedup_vs_compile": self.speedup_vs_compile,
                "correctness": self.correctness, "timing": self.timing, "profile_summary": self.profile_summary,
                "lineage": {LINEAGE_KEY: list(lin.parents), "agent": lin.agent, "prompt": lin.prompt,
                            "model": lin.model, "generation": lin.generation, "temperature": lin.temperature,
                            "params": lin.params},
                "run_id": self.run_id, "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, verify: bool = True) -> ArchiveRecord:
        """`verify` re-hashes the source against the id (always for imports; the archive's own
        reads skip it on the retrieval path, where it cost ~0.5 ms a record)."""
        try:
            lin = data.get("lineage") or {}
            record = cls(
                id=str(data["id"]), signature=ProblemSignature.from_dict(data.get("signature") or {}),
                functional_source=str(data.get("functional_source", "")), kernel_source=str(data["kernel_source"]),
                status=status_of(data.get("status")), gpu_name=data.get("gpu_name"),
                compute_capability=data.get("compute_capability"),
                speedup_vs_eager=_float_or_none(data.get("speedup_vs_eager")),
                speedup_vs_compile=_float_or_none(data.get("speedup_vs_compile")),
                correctness=dict(data.get("correctness") or {}), timing=dict(data.get("timing") or {}),
                profile_summary=str(data.get("profile_summary") or ""),
                lineage=Lineage(lineage_of(lin), str(lin.get("agent") or ""),
                                str(lin.get("prompt") or ""), str(lin.get("model") or ""), lin.get("generation"),
                                _float_or_none(lin.get("temperature")),
                                dict(lin["params"]) if isinstance(lin.get("params"), Mapping) else None),
                run_id=str(data.get("run_id", "")), created_at=float(data.get("created_at") or 0.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"malformed archive record: {type(exc).__name__}: {exc}") from None
        if verify and record.id != candidate_id(record.kernel_source):
            raise RecordError("record id is not the hash of its kernel source", where=record.id[:16])
        return record


# Technique markers: how two kernels for one problem differ in idea (used for diversity and
# shown to the LLM). Plain substrings/regexes over the kernel source, cheap and explainable.
_TECHNIQUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(rx)) for name, rx in (
    ("shared_memory", r"__shared__"),
    ("warp_shuffle", r"__shfl_\w*sync"),
    ("vectorized_access", r"\b(float4|float2|half2|__half2|int4|__nv_bfloat162)\b"),
    ("tensor_cores", r"\b(wmma::|mma\.sync|nvcuda::wmma|wgmma)"),
    ("cublas", r"\bcublas\w*\("),
    ("atomics", r"\batomic(Add|Max|Min|CAS|Exch)\b"),
    ("async_copy", r"(cp\.async|__pipeline_memcpy_async|cuda::memcpy_async)"),
    ("cooperative_groups", r"cooperative_groups"),
    ("loop_unroll", r"#pragma\s+unroll"),
    ("launch_bounds", r"__launch_bounds__"),
    ("grid_stride_loop", r"blockDim\.x\s*\*\s*gridDim\.x|gridDim\.x\s*\*\s*blockDim\.x"),
    ("half_precision", r"\b(__half|half|__nv_bfloat16)\b"),
    ("fast_math", r"\b(__expf|__logf|__fdividef|rsqrtf|__frcp_rn)\b"),
    ("fused_multi_op", r"__global__[\s\S]*__global__"),  # more than one kernel in the source
))


def kernel_techniques(source: str) -> tuple[str, ...]:
    return tuple(name for name, rx in _TECHNIQUES if rx.search(source))


def arch_of(compute_capability: str | None) -> str | None:
    if not compute_capability:
        return None
    return "sm_" + compute_capability.replace(".", "")


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def record_from_candidate(folder: str | Path, functional: Any, *, run_id: str = "", functional_source: str | None = None,
                          problem_name: str = "") -> ArchiveRecord:
    """Build a record from a run's candidate folder (`RUN_DIR/candidates/<id16>/`, tools.run_folder).

    `functional` is the problem's FunctionalForm (or its to_dict(), as kept in the run state). The profile
    summary is the profiler's (the folder's profile), else the one the harness's report carries.
    """
    files = CandidateFolder(Path(folder))
    try:
        source = files.read_source()
    except OSError as exc:
        raise RecordError(f"cannot read candidate files: {exc}", where=str(files.path)) from None
    meta, report = files.read_meta(), files.read_report()
    if meta is None or report is None:
        missing = files.meta_path if meta is None else files.report_path
        raise RecordError(f"cannot read candidate files: {missing.name} is missing or not a JSON object",
                          where=str(files.path))
    data = functional.to_dict() if hasattr(functional, "to_dict") else dict(functional or {})
    gpu = report.gpu
    cc = gpu.get("compute_capability")
    errs = [o.get("max_abs_err") for t in report.trials for o in t.get("outputs", ())
            if o.get("max_abs_err") is not None]
    correctness = {"trials": len(report.trials), "max_abs_err": max(errs) if errs else None,
                   "weak_checks": report.weak_checks, "stage": report.stage, "reason": report.reason,
                   "sanitizer": (report.sanitizer or {}).get("status")}
    timing = {side: stats["median_ms"] for side, stats in report.timing.items()
              if isinstance(stats, dict) and "median_ms" in stats}
    profile = files.read_profile() or (CandidateProfile.from_dict(report.profile) if report.profile else None)
    return ArchiveRecord(
        id=candidate_id(source), signature=ProblemSignature.from_functional(data, problem_name),
        functional_source=functional_source if functional_source is not None else str(data.get("source", "")),
        kernel_source=source, status=status_of(report.status), gpu_name=gpu.get("name"),
        compute_capability=".".join(map(str, cc)) if isinstance(cc, (list, tuple)) else cc,
        speedup_vs_eager=report.speedup_vs_eager, speedup_vs_compile=report.speedup_vs_compile,
        correctness=correctness, timing=timing, profile_summary=_profile_summary(profile),
        lineage=Lineage(meta.parents, meta.agent, meta.prompt, meta.model, meta.generation, meta.temperature,
                        dict(meta.params) if meta.params is not None else None),
        run_id=run_id)


def _profile_summary(profile: CandidateProfile | None, limit: int = 600) -> str:
    """The profile's one line (or its first kernels' timings); "" when there is none or the profiler could not
    measure (its 'unavailable' line says nothing about the kernel)."""
    if profile is None or not profile.available:
        return ""
    if profile.summary:
        return profile.summary[:limit]
    parts = []
    for k in profile.kernels[:4]:
        name = str(k.get("name", "?"))[:60]
        dur = k.get("duration_ns")
        parts.append(f"{name}: {dur / 1e3:.1f} us" if isinstance(dur, (int, float)) else name)
    return "; ".join(parts)[:limit]
