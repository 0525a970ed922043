"""The roofline floor of a problem: the least time any kernel could take for it on a given card.

floor = max(bytes that must move / the card's measured copy bandwidth, FLOPs / the card's peak rate for the
problem's dtype). Bytes: the inputs read once, the outputs written once, the Module's parameters and buffers
read once. FLOPs: torch.utils.flop_counter on one reference call (it counts matrix multiplications,
convolutions and attention; elementwise math is not counted, which leaves those problems memory-bound, as they
are). It depends on the problem and the card, not the candidate: the harness computes it once per problem, and
a verified kernel's time over it (`floor_ratio`) says how much headroom is left.

Unlike tools.verify.floors (a safe lower bound that rejects impossible timings), this floor is an estimate
for the table: it ignores the L2 cache, so a kernel on small inputs can beat it (a ratio below 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from kernelwright.tools.measure.gpu_info import PeakFlops
from kernelwright.tools.problem.inputs import as_output_list
from kernelwright.tools.verify.floors import output_bytes

FloorBound = Literal["memory", "compute"]


@dataclass(frozen=True, slots=True)
class ProblemWork:
    """What one reference call must do, whatever kernel does it."""

    input_bytes: int  # tensor inputs, each storage once
    output_bytes: int  # outputs that are not an input returned
    parameter_bytes: int  # the Module's parameters and buffers, each storage once
    flops: float | None  # None: counting failed (flop_note says why)
    dtype: str  # the floating dtype holding most of the inputs and parameters: it picks the peak rate
    flop_note: str = ""

    @property
    def bytes_moved(self) -> int:
        return self.input_bytes + self.output_bytes + self.parameter_bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemWork:
        flops = data.get("flops")
        return cls(int(data["input_bytes"]), int(data["output_bytes"]), int(data["parameter_bytes"]),
                   None if flops is None else float(flops), str(data.get("dtype") or "float32"),
                   str(data.get("flop_note") or ""))


def _storage_bytes(tensors: list[torch.Tensor]) -> tuple[int, dict[torch.dtype, int]]:
    """Bytes of the tensors' own elements, a storage shared by several counted once; and bytes per dtype."""
    seen: set[int] = set()
    total = 0
    by_dtype: dict[torch.dtype, int] = {}
    for t in tensors:
        if t.numel() == 0:
            continue
        key = t.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        size = min(t.numel() * t.element_size(), t.untyped_storage().nbytes())
        total += size
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + size
    return total, by_dtype


def count_work(model: Any, inputs: list[Any]) -> ProblemWork:
    """Bytes and FLOPs of `model(*inputs)`, counted by running it once (no grad) under FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    tensors = [v for v in inputs if isinstance(v, torch.Tensor)]
    params = ([*model.parameters(), *model.buffers()] if isinstance(model, torch.nn.Module) else [])
    in_bytes, in_dtypes = _storage_bytes(tensors)
    param_bytes, param_dtypes = _storage_bytes([p.detach() for p in params])
    floating: dict[torch.dtype, int] = {}
    for src in (in_dtypes, param_dtypes):
        for d, n in src.items():
            if d.is_floating_point:
                floating[d] = floating.get(d, 0) + n
    dtype = str(max(floating, key=lambda d: floating[d])).removeprefix("torch.") if floating else "float32"
    flops: float | None
    note = ""
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            outputs = model(*inputs)
        flops = float(counter.get_total_flops())
        if flops == 0:
            note = "no matrix multiplication, convolution or attention: FLOPs not counted (memory-bound)"
    except Exception as exc:  # noqa: BLE001 - any failure of the counter means no FLOP floor, said
        with torch.no_grad():
            outputs = model(*inputs)
        flops, note = None, f"FLOP counting failed ({type(exc).__name__}: {str(exc)[:160]}): no FLOP floor"
    return ProblemWork(in_bytes, output_bytes(as_output_list(outputs), inputs), param_bytes, flops, dtype, note)


def compute_peak(peaks: PeakFlops | None, dtype: str, *, tf32_allowed: bool) -> tuple[float, str] | None:
    """The fastest rate (TFLOP/s) at which math of `dtype` can run at the accuracy the judge asks, and its name.

    fp32 under the strict profile: fp32 FMA on the CUDA cores, or the 3xTF32 split on tensor cores (a third of
    the TF32 rate, fp32-accurate), whichever is faster; with TF32 allowed (kernelbench profile), TF32 tensor
    cores. bf16/fp16: their tensor-core rate; fp64: the fp64 tensor-core rate, else fp64 FMA."""
    if peaks is None:
        return None
    options: list[tuple[float | None, str]]
    if dtype == "float32":
        tf32 = peaks.tf32_tensor_tflops
        options = ([(tf32, "tf32 tensor cores")] if tf32_allowed else
                   [(peaks.fp32_tflops, "fp32 FMA"), (tf32 / 3 if tf32 else None, "3xTF32 tensor cores")])
    elif dtype == "bfloat16":
        options = [(peaks.bf16_tensor_tflops, "bf16 tensor cores")]
    elif dtype == "float16":
        options = [(peaks.fp16_tensor_tflops, "fp16 tensor cores")]
    elif dtype == "float64":
        options = [(peaks.fp64_tensor_tflops, "fp64 tensor cores"), (peaks.fp64_tflops, "fp64 FMA")]
    else:
        return None
    known = [(rate, name) for rate, name in options if rate]
    return max(known) if known else None


@dataclass(frozen=True, slots=True)
class ProblemFloor:
    floor_ms: float
    bound: FloorBound
    memory_ms: float
    compute_ms: float | None  # None: no FLOP floor (note says why)
    bytes_moved: int
    flops: float | None
    copy_gbps: float
    peak_tflops: float | None
    peak_rate: str  # which rate: "fp32 FMA", "3xTF32 tensor cores", "bf16 tensor cores", ...
    peak_source: str  # where the peak comes from (the datasheet entry)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def problem_floor(work: ProblemWork, copy_gbps: float, peaks: PeakFlops | None, *, tf32_allowed: bool = False,
                  card: str = "") -> ProblemFloor:
    """The roofline floor of `work` on a card of measured copy bandwidth `copy_gbps` and datasheet `peaks`."""
    memory_ms = work.bytes_moved / (copy_gbps * 1e9) * 1e3
    notes = [work.flop_note] if work.flop_note else []
    rate = compute_peak(peaks, work.dtype, tf32_allowed=tf32_allowed)
    compute_ms: float | None = None
    if rate is None:
        notes.append(f"unknown card {card!r}: no FLOP floor" if peaks is None
                     else f"no peak rate for {work.dtype} on this card: no FLOP floor")
    elif work.flops is not None:
        compute_ms = work.flops / (rate[0] * 1e12) * 1e3
    compute_wins = compute_ms is not None and compute_ms > memory_ms
    return ProblemFloor(compute_ms if compute_wins and compute_ms is not None else memory_ms,
                        "compute" if compute_wins else "memory", memory_ms, compute_ms, work.bytes_moved, work.flops,
                        copy_gbps, rate[0] if rate else None, rate[1] if rate else "",
                        peaks.source if peaks else "unknown", "; ".join(notes))
