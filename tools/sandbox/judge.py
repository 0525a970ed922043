"""The judge, inside the reference worker: reference results per input set, and verdicts on candidate outputs.

Why here: the reference worker never imports candidate code, so it can hold the reference's outputs and
judge a candidate's outputs (opened by CUDA IPC from the candidate's worker) on the GPU, without either
side's tensors passing through host memory. Reference outputs stay on the GPU while they fit a budget;
past it they are dropped and recomputed from the seed when a candidate is judged (one reference call).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from kernelwright.tools.problem.inputs import InputSpec, as_output_list, input_bytes
from kernelwright.tools.verify.arbiter import arbitrate
from kernelwright.tools.verify.compare import Tolerance, compare_output, outputs_close, tolerance_for
from kernelwright.tools.verify.fingerprint import fingerprint, strided_sample
from kernelwright.tools.verify.kernel_trace import CallTrace, trace_call

MakeInputs = Callable[[InputSpec], list[Any]]


@dataclass
class ReferenceEntry:
    """What the judge knows about the reference on one input set."""

    spec: InputSpec
    output_meta: list[dict[str, Any]]
    fingerprints: list[str]
    samples: list[torch.Tensor]
    input_fingerprints: list[str | None]  # after the reference's call (what an unmutated input must match)
    mutated: list[int]  # inputs the reference itself changes in place
    trace: dict[str, Any]
    fp64_rel_l2: list[float | None] | None
    call_s: float
    inputs_s: float
    notes: list[str] = field(default_factory=list)
    outputs: list[torch.Tensor] | None = None  # kept on the GPU while within the budget

    def summary(self) -> dict[str, Any]:
        return {"input": self.spec.to_dict(), "outputs": self.output_meta, "fingerprints": self.fingerprints,
                "mutated_inputs": self.mutated, "trace": self.trace, "fp64_rel_l2": self.fp64_rel_l2,
                "call_s": round(self.call_s, 5), "inputs_s": round(self.inputs_s, 5), "notes": self.notes,
                "kept_on_device": self.outputs is not None}

    @property
    def output_bytes(self) -> int:
        return sum(int(m["bytes"]) for m in self.output_meta)


class ReferenceStore:
    """Reference results by input set, computed on demand; outputs kept on the device within `budget_bytes`."""

    def __init__(self, model: Any, make_inputs: MakeInputs, device: torch.device, budget_bytes: int):
        self.model = model
        self.make_inputs = make_inputs
        self.device = device
        self.budget_bytes = budget_bytes
        self.entries: dict[InputSpec, ReferenceEntry] = {}

    def kept_bytes(self) -> int:
        return sum(e.output_bytes for e in self.entries.values() if e.outputs is not None)

    def release_outputs(self) -> int:
        """Drop every kept output (outputs() recomputes them on demand), for a timing that needs the room; the
        bytes released."""
        released = self.kept_bytes()
        for entry in self.entries.values():
            entry.outputs = None
        return released

    def entry(self, spec: InputSpec, *, trace: bool, fp64_check: bool) -> ReferenceEntry:
        if spec not in self.entries:
            self.entries[spec] = self._compute(spec, trace=trace, fp64_check=fp64_check)
        return self.entries[spec]

    def outputs(self, spec: InputSpec) -> list[torch.Tensor]:
        """The reference's outputs on `spec`: kept ones, or recomputed (the same values: same seed, same device)."""
        entry = self.entry(spec, trace=False, fp64_check=False)
        if entry.outputs is not None:
            return entry.outputs
        inputs = self.make_inputs(spec)
        with torch.no_grad():
            outputs = [o for o in as_output_list(self.model(*inputs))]
        _sync(self.device)
        return outputs

    def _compute(self, spec: InputSpec, *, trace: bool, fp64_check: bool) -> ReferenceEntry:
        t0 = time.perf_counter()
        inputs = self.make_inputs(spec)
        _sync(self.device)
        t1 = time.perf_counter()
        before = [fingerprint(v) if isinstance(v, torch.Tensor) else None for v in inputs]
        with torch.no_grad():
            if trace and self.device.type == "cuda":
                result, call_trace = trace_call(lambda: self.model(*inputs))
            else:
                result = self.model(*inputs)
                call_trace = CallTrace((), None, available=False, reason="not traced")
        _sync(self.device)
        t2 = time.perf_counter()
        outputs = as_output_list(result)
        for i, out in enumerate(outputs):
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the reference Model's output {i} is a {type(out).__name__}, not a tensor")
        after = [fingerprint(v) if isinstance(v, torch.Tensor) else None for v in inputs]
        notes: list[str] = []
        noise = None
        if fp64_check:
            noise, note = _fp64_rel_l2(self.model, inputs, outputs, self.device)
            if note:
                notes.append(note)
        entry = ReferenceEntry(
            spec, [{"dtype": str(o.dtype).removeprefix("torch."), "shape": list(o.shape),
                    "bytes": o.numel() * o.element_size()} for o in outputs],
            [fingerprint(o) for o in outputs], [strided_sample(o) for o in outputs], after,
            [i for i, (b, a) in enumerate(zip(before, after)) if b != a], call_trace.to_dict(), noise,
            call_s=t2 - t1, inputs_s=t1 - t0, notes=notes)
        if self.kept_bytes() + entry.output_bytes <= self.budget_bytes:
            entry.outputs = outputs
        return entry

    def insensitive(self, specs: Sequence[InputSpec], tolerances: dict[str, Tolerance]) -> bool:
        """Would the first input set's reference output pass as every other's? (strided samples)"""
        first = self.entries[specs[0]].samples
        return all(outputs_close(first, self.entries[s].samples, tolerances) for s in specs[1:])


@dataclass(frozen=True)
class Float64Outputs:
    """The Model's outputs in float64 (None per output without a float64 counterpart), or why there are none:
    `fits` False when the float64 copy would not fit the device, True when the Model itself does not run in it."""

    outputs: list[torch.Tensor | None] | None
    why: str | None = None
    fits: bool = True


def judge_outputs(candidate: list[torch.Tensor], reference: list[torch.Tensor], tolerances: dict[str, Tolerance],
                  noise: list[float | None] | None,
                  float64: Callable[[], Float64Outputs] | None = None) -> list[dict[str, Any]]:
    """One comparison per output (compare_output's record). `float64` (the float64 arbiter, when on): the Model's
    outputs in float64 on the same inputs, asked for at most once, on the first floating output that fails; that
    output is then judged against them (tools.verify.arbiter)."""
    results = []
    exact: Float64Outputs | None = None
    for j, (o, r) in enumerate(zip(candidate, reference)):
        tol = tolerance_for(r.dtype, tolerances)
        # The relative-L2 check only where the reference itself is well above its own rounding noise.
        level = noise[j] if noise is not None and j < len(noise) else None
        well_conditioned = level is None or level < tol.rel_l2 / 4
        verdict = compare_output(j, o, r, tol, check_rel_l2=well_conditioned)
        if float64 is not None and verdict.failure == "wrong_output" and r.is_floating_point():
            exact = exact or float64()
            r64 = exact.outputs[j] if exact.outputs is not None and j < len(exact.outputs) else None
            arbitrated = arbitrate(j, o, r, r64, tol, check_rel_l2=well_conditioned) if r64 is not None else None
            verdict = arbitrated or replace(verdict, message=f"{verdict.message}; the float64 arbiter had no verdict"
                                            + (f" ({exact.why})" if exact.why else ""))
        results.append(verdict.to_dict())
    return results


def float64_outputs(model: Any, inputs: list[Any], outputs: list[torch.Tensor],
                    device: torch.device) -> Float64Outputs:
    """The Model run in float64 (a copy; floating inputs cast) on `inputs`: one entry per output of `outputs`
    (None where it has no float64 counterpart), or none and why when the copy would not fit the device or fails."""
    params = sum(p.numel() * p.element_size() for p in model.parameters()) if isinstance(model, torch.nn.Module) else 0
    need = 2 * 3 * (params + input_bytes(inputs) + sum(o.numel() * o.element_size() for o in outputs))
    if device.type == "cuda" and need > torch.cuda.mem_get_info(device)[0]:
        return Float64Outputs(None, f"about {need / 2**30:.1f} GiB would not fit the GPU", fits=False)
    try:
        model64 = copy.deepcopy(model).double() if isinstance(model, torch.nn.Module) else model
        inputs64 = [v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in inputs]
        with torch.no_grad():
            ref64 = as_output_list(model64(*inputs64))
    except torch.OutOfMemoryError:
        return Float64Outputs(None, "out of GPU memory", fits=False)
    except Exception as exc:  # some ops have no float64 kernel
        return Float64Outputs(None, f"the Model does not run in float64: {type(exc).__name__}")
    return Float64Outputs([r64 if isinstance(r64, torch.Tensor) and out.is_floating_point() and r64.shape == out.shape
                           else None for out, r64 in zip(outputs, ref64)])


def _fp64_rel_l2(model: Any, inputs: list[Any], outputs: list[torch.Tensor],
                 device: torch.device) -> tuple[list[float | None] | None, str | None]:
    """How far the reference in its own dtype is from itself in float64: its noise floor. Skipped (None, why)
    when the float64 copy would not fit the device."""
    exact = float64_outputs(model, inputs, outputs, device)
    if exact.outputs is None:
        return (None, f"float64 noise check skipped: {exact.why}") if not exact.fits else ([None] * len(outputs), None)
    rel: list[float | None] = []
    for out, r64 in zip(outputs, exact.outputs):
        if r64 is None:
            rel.append(None)
            continue
        denom = float(torch.linalg.vector_norm(r64.double()))
        num = float(torch.linalg.vector_norm(out.double() - r64.double()))
        rel.append(num / denom if denom > 0 else (0.0 if num == 0 else math.inf))
    return rel, None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
