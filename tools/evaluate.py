"""Evaluate a candidate against a problem: load, verify, check integrity, time.

Process layout (why): the reference Model runs in a clean reference worker that
never imports candidate code; the candidate runs in its own worker; outputs come
back as bytes and are judged here. So the candidate can neither see the
reference's outputs in its memory, nor patch the comparison, nor slow down the
baselines. Only its own timing happens in its process, guarded by HarnessGuard.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import structlog
import torch

from kernelwright.tools.compare import Tolerance, compare_output, outputs_close, outputs_identical, tolerance_for
from kernelwright.tools.errors import (IntegrityError, KernelwrightError, ReferenceFailure, ToolTimeout,
                                       ToolUnavailable, WorkerCrash)
from kernelwright.tools.inputs import InputSpec
from kernelwright.tools.integrity import check_mutation, check_traces, kernel_usage
from kernelwright.tools.kernel_trace import CallTrace, library_symbols
from kernelwright.tools.problem import check_source
from kernelwright.tools.results import EvalReport
from kernelwright.tools.sandbox.pool import WorkerOptions, WorkerSlot
from kernelwright.tools.sandbox.protocol import Message
from kernelwright.tools.tensor_wire import decode_tensor
from kernelwright.tools.timing import BenchSettings

log = structlog.get_logger(__name__)
SENSITISING_SCALES = (8.0, 64.0)


@dataclass(frozen=True)
class EvalSettings:
    n_trials: int = 5
    base_seed: int = 1000
    init_seed: int = 42
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    bench: BenchSettings = BenchSettings()
    time_candidate: bool = True
    eager_baseline: bool = True
    compile_baseline: bool = True
    compile_mode: str | None = None
    n_timing_sets: int = 3
    load_timeout_s: float = 600.0
    call_timeout_s: float = 120.0
    timing_timeout_s: float = 300.0
    compile_baseline_timeout_s: float = 900.0
    fast_inline: bool = True
    sanitize: bool = False  # compute-sanitizer memcheck pass (slow; catches out-of-bounds accesses)
    sanitize_timeout_s: float = 600.0


@dataclass
class ReferenceData:
    specs: list[InputSpec]
    outputs: list[list[torch.Tensor]]
    traces: list[CallTrace]
    mutated: list[list[int]]
    fp64_rel_l2: list[Any]
    post_timing: tuple[InputSpec, list[torch.Tensor]]
    weak_checks: list[str]


class Evaluator:
    """One problem, many candidates. Keeps a warm reference worker and a reusable candidate worker."""

    def __init__(self, problem: str | Path, settings: EvalSettings = EvalSettings(),
                 worker_options: WorkerOptions | None = None):
        self.problem = check_source(problem, "problem")
        self.settings = settings
        self.options = worker_options or WorkerOptions()
        self.ref_slot = WorkerSlot("reference", self.options, standby=False)
        self.cand_slot = WorkerSlot("candidate", self.options)
        self.cand_slot.warm()  # its start-up overlaps the reference's
        self._reference: ReferenceData | None = None
        self._baselines: dict[str, Any] | None = None
        self._gpu_identity: dict[str, Any] | None = None
        self._problem_info: dict[str, Any] | None = None
        self.reference_durations_s: dict[str, float] = {}  # where the reference side's time went (benchmarks)
        self.log = log.bind(problem=self.problem.path.name)

    # -- reference side (cached) -------------------------------------------------
    def reference(self) -> ReferenceData:
        if self._reference is None:
            self._reference = self._compute_reference()
        return self._reference

    def check_problem(self) -> dict[str, Any]:
        """Load the problem in the reference worker (works without a GPU); ReferenceFailure if it is broken."""
        if self._problem_info is None:
            worker = self.ref_slot.get()
            try:
                self._problem_info = worker.request("load", timeout_s=self.settings.load_timeout_s,
                                                    problem=str(self.problem.path), init_seed=self.settings.init_seed).header
            except KernelwrightError as exc:
                raise self._reference_failure("the problem itself fails, so no candidate can be judged", exc) from None
        return self._problem_info

    def _reference_failure(self, what: str, exc: KernelwrightError) -> ReferenceFailure:
        """Drop the (possibly broken) reference worker and blame the problem, not the candidate."""
        self.ref_slot.discard()
        self._problem_info = self._reference = None
        return ReferenceFailure(f"{what}: {exc.message}", where=exc.where or str(self.problem.path),
                                details=exc.to_dict())

    def functional_form(self) -> dict[str, Any]:
        """The problem's functional form (generated source, op list, lifted parameters), traced in the
        reference worker; falls back to the module source with the reason when tracing fails."""
        self.check_problem()
        reply = self.ref_slot.get().request("functional", timeout_s=self.settings.load_timeout_s,
                                            init_seed=self.settings.init_seed)
        return reply.header["form"]

    def _compute_reference(self) -> ReferenceData:
        s = self.settings
        t0 = time.perf_counter()
        loaded = self.check_problem()
        worker = self.ref_slot.get()
        self.reference_durations_s = {"start_and_load": round(time.perf_counter() - t0, 3)}
        specs = [InputSpec(s.base_seed + 7919 * i) for i in range(s.n_trials)]
        # Other shapes the problem declares (get_input_variants) catch kernels that hard-code sizes.
        specs += [InputSpec(s.base_seed + 13 * (v + 1), variant=v) for v in range(int(loaded.get("n_variants", 0)))]
        t1 = time.perf_counter()
        reply = self._outputs(worker, specs, fp64_check=True)
        outputs = _decode_outputs(reply)
        self.reference_durations_s["outputs"] = round(time.perf_counter() - t1, 3)
        _add_stage_seconds(self.reference_durations_s, reply.header["calls"], "outputs_")
        t1 = time.perf_counter()
        weak: list[str] = []
        if all(outputs_close(outputs[0], o, s.tolerances) for o in outputs[1:]):
            # Output barely depends on inputs: add larger inputs that do change it.
            extra = [InputSpec(s.base_seed + 31 + i, scale) for i, scale in enumerate(SENSITISING_SCALES)]
            more = self._outputs(worker, extra, fp64_check=False)
            specs += extra
            outputs += _decode_outputs(more)
            reply.header["calls"] += more.header["calls"]
            if all(outputs_close(outputs[0], o, s.tolerances) for o in outputs[1:]):
                weak.append("reference output barely depends on its inputs: a constant output could pass the tolerance")
        self.reference_durations_s["sensitivity"] = round(time.perf_counter() - t1, 3)
        post_spec = InputSpec(s.base_seed + 104729)
        post = _decode_outputs(self._outputs(worker, [post_spec], fp64_check=False))[0]
        self.reference_durations_s["total"] = round(time.perf_counter() - t0, 3)
        calls = reply.header["calls"]
        return ReferenceData(specs, outputs, [CallTrace.from_dict(c["trace"]) for c in calls],
                             [c["mutated_inputs"] for c in calls], [c.get("fp64_rel_l2") for c in calls],
                             (post_spec, post), weak)

    def baselines(self) -> dict[str, Any]:
        """Eager and torch.compile timings, measured once in the clean reference worker."""
        if self._baselines is None:
            self.reference()
            s, worker, out = self.settings, self.ref_slot.get(), {}
            for target, enabled, timeout in (("eager", s.eager_baseline, s.timing_timeout_s),
                                             ("compiled", s.compile_baseline, s.compile_baseline_timeout_s)):
                if not enabled:
                    continue
                try:
                    reply = worker.request("time", timeout_s=timeout, target="model" if target == "eager" else "compiled",
                                           input=InputSpec(s.base_seed + 555).to_dict(), n_sets=s.n_timing_sets,
                                           settings=s.bench.to_dict(), compile_mode=s.compile_mode)
                    out[target] = reply.header["stats"]
                except KernelwrightError as exc:
                    out[target] = {"error": exc.to_dict()}
                    if not worker.alive:
                        self.ref_slot.discard()
                        self._reference = self._problem_info = None
            self._baselines = out
        return self._baselines

    # -- candidate ---------------------------------------------------------------
    def evaluate(self, candidate: str | Path) -> EvalReport:
        started = time.perf_counter()
        report = EvalReport(problem=str(self.problem.path), candidate=str(candidate))
        try:
            self._evaluate(Path(candidate), report)
        except ReferenceFailure:
            self.cand_slot.discard()
            raise
        except KernelwrightError as exc:
            report.status = "rejected" if report.stage != "timing" or isinstance(exc, (IntegrityError, ToolTimeout, WorkerCrash)) else "error"
            report.reason = report.reason or _reason_for(exc)
            report.message = str(exc)
            report.error = exc.to_dict()
            if isinstance(exc, (ToolTimeout, WorkerCrash, IntegrityError)) or self.cand_slot.worker is None:
                self.cand_slot.discard()
        finally:
            report.durations_s["total"] = round(time.perf_counter() - started, 3)
            worker = self.cand_slot.worker
            if worker is not None and worker.alive:
                if report.status != "passed":
                    self.cand_slot.discard()  # failed candidate code never shares a process with the next one
                else:
                    try:
                        worker.request("unload", timeout_s=30)
                    except KernelwrightError:
                        self.cand_slot.discard()
        self.log.info("candidate_evaluated", candidate=Path(candidate).name, status=report.status,
                      reason=report.reason, speedup_vs_eager=report.speedup_vs_eager, seconds=report.durations_s["total"])
        return report

    def _evaluate(self, candidate: Path, report: EvalReport) -> None:
        s = self.settings
        check_source(candidate, "candidate")
        t0 = time.perf_counter()
        self.check_problem()
        worker = self.cand_slot.get()
        loaded = worker.request("load", timeout_s=s.load_timeout_s, problem=str(self.problem.path),
                                candidate=str(candidate), init_seed=s.init_seed, fast_inline=s.fast_inline).header
        report.candidate_libs = loaded.get("candidate_libs", [])
        report.durations_s["load"] = round(time.perf_counter() - t0, 3)
        if not loaded.get("instantiated"):
            report.status, report.stage, report.reason = "needs_gpu", "correctness", "no_gpu"
            report.message = ("compiled and loaded; verification and timing need a CUDA GPU and none is visible "
                              "here, so this kernel is NOT verified")
            return
        report.stage = "correctness"
        t1 = time.perf_counter()
        try:
            ref = self.reference()
        except ReferenceFailure:
            raise
        except KernelwrightError as exc:
            raise self._reference_failure("the reference Model failed", exc) from None
        self._verify(worker, candidate, ref, report)
        report.durations_s["verify"] = round(time.perf_counter() - t1, 3)
        if report.status != "rejected" and s.sanitize:
            self._sanitize(candidate, report)
        if report.status == "rejected" or not s.time_candidate:
            report.status = report.status if report.status == "rejected" else "passed"
            return
        report.stage = "timing"
        t2 = time.perf_counter()
        report.timing.update({k: v for k, v in self.baselines().items()})
        before = _clocks()
        reply = worker.request("time", timeout_s=s.timing_timeout_s, target="model",
                               input=InputSpec(s.base_seed + 555).to_dict(), n_sets=s.n_timing_sets, settings=s.bench.to_dict())
        report.timing["candidate"] = reply.header["stats"]
        report.durations_s["timing_bench"] = round(time.perf_counter() - t2, 3)
        self._record_gpu(report, before, _clocks())
        # Re-check on fresh inputs after timing: results cached across calls show up here.
        post_spec, post_ref = ref.post_timing
        after = self._outputs(worker, [post_spec], fp64_check=False)
        self._judge_trial(report, 0, _decode_outputs(after)[0], post_ref, "after_timing", ref)
        report.durations_s["timing"] = round(time.perf_counter() - t2, 3)
        if report.status == "rejected":
            return
        cand_ms = report.timing["candidate"]["median_ms"]
        for key, attr in (("eager", "speedup_vs_eager"), ("compiled", "speedup_vs_compile")):
            base = report.timing.get(key, {})
            if "median_ms" in base and cand_ms > 0:
                setattr(report, attr, base["median_ms"] / cand_ms)
        report.status, report.stage, report.message = "passed", "done", "verified"

    def _verify(self, worker: Any, candidate: Path, ref: ReferenceData, report: EvalReport) -> None:
        t0 = time.perf_counter()
        reply = self._outputs(worker, ref.specs, fp64_check=False)
        outs = _decode_outputs(reply)
        report.durations_s["run_trials"] = round(time.perf_counter() - t0, 3)
        calls = reply.header["calls"]
        _add_stage_seconds(report.durations_s, calls, "trials_")  # the worker's share of run_trials; the rest is transfer
        report.weak_checks += ref.weak_checks
        for i, (out, ref_out) in enumerate(zip(outs, ref.outputs)):
            self._judge_trial(report, i, out, ref_out, "trial", ref, previous=outs[:i])
            if report.status == "rejected":
                return
        self._check_constant(report, outs, ref)
        report.durations_s["judge"] = round(time.perf_counter() - t0 - report.durations_s["run_trials"], 3)
        if report.status == "rejected":
            return
        report.stage = "integrity"
        traces = [CallTrace.from_dict(c["trace"]) for c in calls]
        if not any(t.available for t in traces):
            report.weak_checks.append("kernel trace unavailable: " + (traces[0].reason if traces else "no calls"))
        custom = library_symbols(report.candidate_libs)
        rejections = check_traces(traces, ref.traces, custom) + check_mutation([c["mutated_inputs"] for c in calls], ref.mutated)
        usable = [t for t in traces if t.available]
        if usable:
            ref_names = {k.name for t in ref.traces if t.available for k in t.kernels}
            report.kernel_usage = kernel_usage(usable[0], custom, ref_names).to_dict()
        if rejections:
            first = rejections[0]
            report.status, report.reason, report.message = "rejected", first.reason, first.message
            report.error = first.to_dict()

    def _record_gpu(self, report: EvalReport, before: Any, after: Any) -> None:
        """GPU identity and clocks around the candidate's timing (NVML); a throttle is a warning."""
        from kernelwright.tools.gpu_info import gpu_facts, throttle_warning

        if self._gpu_identity is None:
            try:
                facts = gpu_facts(use_torch=False)  # the harness process itself never initialises CUDA
                self._gpu_identity = {"name": facts.name, "driver": facts.driver_version,
                                      "compute_capability": list(facts.compute_capability)}
            except ToolUnavailable as exc:
                self._gpu_identity = {"nvml": str(exc)}
        report.gpu.update(self._gpu_identity)
        if before is not None and after is not None:
            report.gpu["clocks_before"], report.gpu["clocks_after"] = before.to_dict(), after.to_dict()
            if warning := throttle_warning(before, after):
                report.weak_checks.append(f"clocks changed during timing: {warning}")

    def sanitize(self, candidate: str | Path) -> Any:
        """compute-sanitizer memcheck over one call of `candidate` (a SanitizeVerdict): run on the winner of a
        run or benchmark problem before it is reported as verified."""
        from kernelwright.tools.sanitizer import sanitize_verdict

        verdict = sanitize_verdict(str(self.problem.path), str(candidate), timeout_s=self.settings.sanitize_timeout_s,
                                   env={**os.environ, **self.options.env})
        self.log.info("candidate_sanitized", candidate=Path(candidate).name, status=verdict.status,
                      seconds=round(verdict.seconds, 1))
        return verdict

    def _sanitize(self, candidate: Path, report: EvalReport) -> None:
        verdict = self.sanitize(candidate)
        report.sanitizer = verdict.to_dict()
        if verdict.status == "out_of_bounds":
            report.status, report.reason, report.message = "rejected", "out_of_bounds", verdict.message
        elif not verdict.sanitized:
            report.weak_checks.append(f"sanitizer: {verdict.message}")

    def _judge_trial(self, report: EvalReport, i: int, out: list[torch.Tensor], ref_out: list[torch.Tensor],
                     phase: str, ref: ReferenceData, previous: list[list[torch.Tensor]] = ()) -> None:
        if len(out) != len(ref_out):
            report.status, report.reason = "rejected", "output_count"
            report.message = f"{phase} {i}: {len(out)} outputs, reference has {len(ref_out)}"
            return
        noise = ref.fp64_rel_l2[i] if phase == "trial" and i < len(ref.fp64_rel_l2) and ref.fp64_rel_l2[i] else None
        results = []
        for j, (o, r) in enumerate(zip(out, ref_out)):
            tol = tolerance_for(r.dtype, self.settings.tolerances)
            # The relative-L2 check only where the reference itself is well above its own rounding noise.
            well_conditioned = noise is None or noise[j] is None or noise[j] < tol.rel_l2 / 4
            results.append(compare_output(j, o, r, tol, check_rel_l2=well_conditioned))
        report.trials.append({"phase": phase, "index": i, "outputs": [c.to_dict() for c in results]})
        failed = next((c for c in results if not c.passed), None)
        if failed is None:
            return
        reason, message = str(failed.failure), f"{phase} {i}: {failed.message}"
        stale = any(outputs_identical(out, p) for p in previous)
        if failed.failure == "wrong_output" and (stale or phase == "after_timing"):
            reason = "result_caching"
            message += (" — the output repeats an earlier call's result" if stale else
                        " — correct before timing, wrong after it: results cached across calls")
        report.status, report.reason, report.message = "rejected", reason, message

    def _check_constant(self, report: EvalReport, outs: list[list[torch.Tensor]], ref: ReferenceData) -> None:
        """Inputs that change the reference must change the candidate's output too."""
        for i in range(1, len(outs)):
            if outputs_identical(outs[0], outs[i]) and not outputs_identical(ref.outputs[0], ref.outputs[i]):
                report.status, report.reason = "rejected", "constant_output"
                report.message = (f"trials 0 and {i} got different inputs (and different reference outputs) but the "
                                  "candidate returned bit-identical outputs: it does not depend on its inputs")
                return

    def _outputs(self, worker: Any, specs: list[InputSpec], *, fp64_check: bool) -> Message:
        """One request per input set, each under the call timeout (a hang costs one timeout, not N)."""
        merged: Message | None = None
        reserve = 2 * self._reference_output_bytes() + (1 << 20)
        for spec in specs:
            reply = worker.request("outputs", timeout_s=self.settings.call_timeout_s, inputs=[spec.to_dict()],
                                   fp64_check=fp64_check, trace=True, reserve_bytes=reserve)
            if merged is None:
                merged = reply
                continue
            offset = len(merged.blobs)
            for call in reply.header["calls"]:
                for meta in call["outputs"]:
                    meta["blob"] += offset
                merged.header["calls"].append(call)
            merged.blobs.extend(reply.blobs)
        assert merged is not None
        return merged

    def _reference_output_bytes(self) -> int:
        if self._reference is None or not self._reference.outputs:
            return 64 << 20
        return sum(t.numel() * t.element_size() for t in self._reference.outputs[0])

    def close(self) -> None:
        self.ref_slot.close()
        self.cand_slot.close()

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _clocks() -> Any:
    from kernelwright.tools.gpu_info import clock_snapshot

    try:
        return clock_snapshot()
    except ToolUnavailable:
        return None


def _add_stage_seconds(into: dict[str, float], calls: list[dict[str, Any]], prefix: str) -> None:
    """Sum the worker's per-stage seconds of each call (its "stages_s") into `into`, keys prefixed."""
    for call in calls:
        for stage, seconds in (call.get("stages_s") or {}).items():
            key = prefix + stage
            into[key] = round(into.get(key, 0.0) + float(seconds), 4)


def _decode_outputs(reply: Message) -> list[list[torch.Tensor]]:
    return [[decode_tensor(m, reply.blobs[m["blob"]]) for m in call["outputs"]] for call in reply.header["calls"]]


_REASON_BY_KIND = {"compile": "compile_error", "load": "load_error"}  # other kinds (timeout, crash, ...) are their own reason


def reason_for_error(error: Mapping[str, Any]) -> str:
    """A report's rejection reason for an error (KernelwrightError.to_dict()); integrity verdicts name their check."""
    kind = str(error.get("kind") or "load")
    if kind == "integrity" and error.get("reason"):
        return str(error["reason"])
    return _REASON_BY_KIND.get(kind, kind)


def _reason_for(exc: KernelwrightError) -> str:
    return reason_for_error({"kind": exc.kind, "reason": getattr(exc, "reason", None)})
