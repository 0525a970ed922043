"""Integrity policies over what a candidate's calls ran on the GPU (kernel traces).

Each rule returns a named rejection; names are stable so tests, reports and
the evolution loop can count them: no_kernel_launched, host_computation,
no_custom_kernel, reference_op_called, side_stream_escape, input_mutation.
docs/KERNEL_POLICY.md says in words what these rules allow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kernelwright.tools.verify.kernel_trace import CallTrace, KernelClass, classify

REFERENCE_SHARE_LIMIT = 0.5  # at most half the candidate's GPU time may be the reference's own (non-library) kernels
HOST_COPY_SLACK_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class KernelTime:
    """One kernel (by its full name) of a traced call: its class, GPU time summed over its launches, its share."""

    name: str
    cls: KernelClass
    total_us: float
    share: float  # of the call's kernel time
    calls: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class KernelUsage:
    """What the candidate launched, by class, with GPU-time shares (from its first traced call).

    `kernels` breaks the time down per kernel, longest first; reports written before it existed lack the key,
    so readers use `kernel_times()` rather than indexing it."""

    custom: tuple[str, ...]
    library: tuple[str, ...]
    framework: tuple[str, ...]
    library_time_share: float
    framework_time_share: float
    reference_kernel_share: float
    kernels: tuple[KernelTime, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kernel_times(usage: dict[str, Any] | None) -> list[KernelTime]:
    """The per-kernel breakdown of a report's `kernel_usage` dict; empty for reports that predate it."""
    out = []
    for k in (usage or {}).get("kernels") or []:
        if isinstance(k, dict) and k.get("name"):
            out.append(KernelTime(str(k["name"]), k.get("cls", "framework"), float(k.get("total_us") or 0.0),
                                  float(k.get("share") or 0.0), int(k.get("calls") or 0)))
    return out


def kernel_usage(trace: CallTrace, custom_names: set[str], reference_names: set[str]) -> KernelUsage:
    groups: dict[str, list[str]] = {"custom": [], "library": [], "framework": []}
    time_by: dict[str, float] = {"custom": 0.0, "library": 0.0, "framework": 0.0}
    per_kernel: dict[str, tuple[KernelClass, float, int]] = {}
    shared_time = 0.0
    for k in trace.kernels:
        cls = classify(k.name, custom_names)
        groups[cls].append(k.name)
        took = k.end_us - k.start_us
        time_by[cls] += took
        _, spent, calls = per_kernel.get(k.name, (cls, 0.0, 0))
        per_kernel[k.name] = (cls, spent + took, calls + 1)
        if cls == "framework" and k.name in reference_names:
            shared_time += took
    total = sum(time_by.values()) or 1.0
    uniq = {key: tuple(dict.fromkeys(v)) for key, v in groups.items()}
    kernels = tuple(sorted((KernelTime(name, cls, round(spent, 3), spent / total, calls)
                            for name, (cls, spent, calls) in per_kernel.items()), key=lambda t: -t.total_us))
    return KernelUsage(uniq["custom"], uniq["library"], uniq["framework"], time_by["library"] / total,
                       time_by["framework"] / total, shared_time / total, kernels)


def check_traces(candidate: Sequence[CallTrace], reference: Sequence[CallTrace], custom_names: set[str]) -> list[Rejection]:
    """Apply the launch policies to every traced candidate call."""
    usable = [t for t in candidate if t.available]
    if not usable:
        return []
    ref_names = {k.name for t in reference if t.available for k in t.kernels}
    ref_dth = max((t.device_to_host_bytes() for t in reference if t.available), default=0)
    ref_launches = next((launch_counts(t) for t in reference if t.available and t.kernels), Counter())
    rejections: list[Rejection] = []
    for i, trace in enumerate(usable):
        dth = trace.device_to_host_bytes()
        if dth > ref_dth + HOST_COPY_SLACK_BYTES:
            rejections.append(Rejection("host_computation", f"call {i} copied {dth} bytes device->host (the reference "
                                        f"copies {ref_dth}): work was done on the host", {"bytes": dth}))
            break
        if not trace.kernels:
            rejections.append(Rejection("no_kernel_launched", f"call {i} launched no GPU kernel: the output was not "
                                        "computed by a kernel (returned from memory or computed elsewhere)"))
            break
        usage = kernel_usage(trace, custom_names, ref_names)
        if not usage.custom:
            shared = sorted(set(usage.framework) & ref_names)
            reason = "reference_op_called" if shared else "no_custom_kernel"
            rejections.append(Rejection(reason, f"call {i} ran no kernel of the candidate's own; it ran "
                                        f"{len(usage.framework)} PyTorch and {len(usage.library)} library kernels"
                                        + (f", including the reference's own {shared[:3]}" if shared else ""),
                                        {"framework": list(usage.framework)[:20], "library": list(usage.library)[:20]}))
            break
        if usage.reference_kernel_share > REFERENCE_SHARE_LIMIT:
            rejections.append(Rejection("reference_op_called", f"call {i}: {usage.reference_kernel_share:.0%} of GPU "
                                        "time is spent in the reference's own PyTorch kernels",
                                        {"share": usage.reference_kernel_share}))
            break
        if ref_launches and all(launch_counts(trace)[name] >= n for name, n in ref_launches.items()):
            # Every launch of the reference is still there (library GEMMs and convolutions included, which the
            # share rule above does not count): the candidate's own kernels replaced none of its work, only
            # added to it. Counts, not names, so a partial fusion that leaves one of several launches passes.
            rejections.append(Rejection("reference_op_called", f"call {i} ran every kernel the reference runs "
                                        f"({sum(ref_launches.values())} launches, e.g. {_short(next(iter(ref_launches)))}) "
                                        "and its own kernels besides: they replaced none of the reference's work",
                                        {"reference_kernels": [_short(n) for n in list(ref_launches)[:10]]}))
            break
        escaped = trace.escaped()
        if escaped:
            rejections.append(Rejection("side_stream_escape", f"call {i}: {len(escaped)} GPU operation(s) were still "
                                        "running after the call returned on its stream (work on a side stream or an "
                                        "unjoined async copy would escape the timed region)",
                                        {"activities": [a.name[:120] for a in escaped[:5]],
                                         "streams": sorted({a.stream for a in escaped})}))
            break
    return rejections


def launch_counts(trace: CallTrace) -> Counter[str]:
    """How many times the call launched each kernel (by name)."""
    return Counter(k.name for k in trace.kernels)


def _short(name: str) -> str:
    return name if len(name) <= 80 else name[:77] + "..."


def check_mutation(candidate_mutated: Sequence[Sequence[int]], reference_mutated: Sequence[Sequence[int]]) -> list[Rejection]:
    allowed = set().union(*map(set, reference_mutated)) if reference_mutated else set()
    for i, positions in enumerate(candidate_mutated):
        extra = sorted(set(positions) - allowed)
        if extra:
            return [Rejection("input_mutation", f"call {i} modified input(s) {extra} in place; the reference does not",
                              {"inputs": extra})]
    return []
