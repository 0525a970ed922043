"""Evaluate a candidate against a problem: load, verify, check integrity, time, and judge what was timed.

Process layout (why): the reference worker runs the problem's Model and never imports candidate code; it
also holds the reference outputs and judges, on the GPU, the outputs the candidate worker shares with it
by CUDA IPC. So no output ever passes through host memory, the candidate can neither see nor patch the
comparison, and it cannot slow down the baselines. Only its own timing happens in its process, guarded
by HarnessGuard, and outputs produced while timing are judged as well.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.errors import (
    DoesNotFit,
    IntegrityError,
    IsolationUnavailable,
    KernelwrightError,
    ReferenceFailure,
    ResourceLimit,
    ToolTimeout,
    ToolUnavailable,
    WorkerCrash,
)
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.verdicts import TrialJudge, timing_gap_message
from kernelwright.tools.measure.gpu_gate import holding
from kernelwright.tools.measure.gpu_info import datasheet_peaks
from kernelwright.tools.measure.problem_floor import ProblemFloor, ProblemWork, problem_floor
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.inputs import InputSpec
from kernelwright.tools.sandbox.isolation import IsolationPolicy, check_mode, describe, missing
from kernelwright.tools.sandbox.pool import HostMemoryWatch, SandboxWorker, WorkerOptions, WorkerSlot
from kernelwright.tools.sandbox.protocol import Message
from kernelwright.tools.verify.code_check import REASON as FORBIDDEN_CODE
from kernelwright.tools.verify.code_check import forbidden_code_error
from kernelwright.tools.verify.compare import Tolerance
from kernelwright.tools.verify.floors import WriteBandwidth
from kernelwright.tools.verify.integrity import check_mutation, check_traces, kernel_usage
from kernelwright.tools.verify.kernel_trace import CallTrace, library_symbols
from kernelwright.tools.verify.precision import PrecisionProfile, precision_profile

log = structlog.get_logger(__name__)
SENSITISING_SCALES = (8.0, 64.0)
FRESH_SEED_OFFSET = 777_001
RECHECK_SEED_OFFSET = 424_243


@dataclass(frozen=True)
class EvalSettings:
    n_trials: int = 5
    base_seed: int = 1000
    init_seed: int = 42
    precision: str = "strict"  # tools.verify.precision profile: "strict" (default) or "kernelbench"
    tolerances: dict[str, Tolerance] = field(default_factory=dict)  # overrides on top of the profile's
    bench: BenchSettings = BenchSettings()
    build: BuildSettings = BuildSettings()  # how the candidate's CUDA is built (its worker gets them)
    time_candidate: bool = True
    eager_baseline: bool = True
    strict_baseline: bool = True  # eager with TF32 off, an extra column
    compile_baseline: bool = True
    compile_mode: str | None = None
    autotune_baseline: bool = False  # torch.compile(mode="max-autotune-no-cudagraphs"), an extra column
    n_timing_sets: int = 3
    load_timeout_s: float = 600.0
    # A call's watchdog: max(min_call_timeout_s, call_timeout_factor x the reference's call) (plus input
    # generation), never above call_timeout_s; call_timeout_s alone until the reference has been timed.
    call_timeout_s: float = 600.0
    min_call_timeout_s: float = 10.0
    call_timeout_factor: float = 100.0
    timing_timeout_s: float = 300.0
    compile_baseline_timeout_s: float = 900.0
    sanitize: bool = False  # compute-sanitizer memcheck of every passing candidate (slow; winners are sanitized anyway)
    sanitize_timeout_s: float = 600.0
    unseen_shape: bool = True  # verify at one other input size when get_inputs() scales
    judge_timing: bool = True  # judge outputs produced while timing, refilled inputs, and first calls
    # An output that fails is judged again against the Model in float64, atol widened by the fp32 reference's own
    # rms error there (tools.verify.arbiter): for problems whose outputs cancel. On since it verified KernelBench's
    # level2/14 (8192 GEMM outputs summed per row) on an H100, which no candidate passed without it.
    float64_arbiter: bool = True
    fresh_calls: int = 3
    timed_samples: int = 2  # timed calls drawn at random whose outputs are judged too (besides the last)
    host_memory_limit_gb: float | None = 8.0  # the evaluation's workers together (PSS)
    keep_standby: bool = True  # a spare candidate worker always started: a hang costs no start-up
    # the static pre-check (tools.verify.code_check) before any worker loads a candidate; the problem's own
    # statements a candidate carries verbatim are trusted, only what it adds is checked
    code_check: bool = True
    # the workers' jail (tools.sandbox.isolation): "auto" (strongest available), "off", "required"
    isolation: str = "auto"  # verified on a GPU (tests/tools/test_gpu_isolation.py, docs/SANDBOX.md)
    private_paths: tuple[str, ...] = ()  # hidden from candidate code besides home and .env (runs, archive)
    visible_paths: tuple[str, ...] = ()  # readable again inside those (the current run's folder)

    @property
    def profile(self) -> PrecisionProfile:
        return precision_profile(self.precision)

    def tolerance_table(self) -> dict[str, Tolerance]:
        return {**self.profile.tolerances, **self.tolerances}


@dataclass
class ReferenceData:
    """What the harness knows of the reference (summaries; the tensors stay in the reference worker)."""

    specs: list[InputSpec]
    entries: dict[InputSpec, dict[str, Any]]
    weak_checks: list[str]
    scaled: InputSpec | None = None

    @property
    def traces(self) -> list[CallTrace]:
        return [CallTrace.from_dict(self.entries[s]["trace"]) for s in self.specs]

    @property
    def mutated(self) -> list[list[int]]:
        return [list(self.entries[s]["mutated_inputs"]) for s in self.specs]

    @property
    def call_s(self) -> float:
        return max((float(e["call_s"]) for e in self.entries.values()), default=0.0)

    @property
    def inputs_s(self) -> float:
        return max((float(e["inputs_s"]) for e in self.entries.values()), default=0.0)

    @property
    def output_bytes(self) -> int:
        return max((sum(int(m["bytes"]) for m in e["outputs"]) for e in self.entries.values()), default=0)


def isolation_policy(settings: EvalSettings, problem: Path, *show: str | Path,
                     base: IsolationPolicy | None = None) -> IsolationPolicy:
    """The jail for processes that run this problem's candidates: the settings' on top of `base` (a caller's
    explicit "off"/"required" wins over the settings' mode); the problem's folder and `show` stay readable."""
    base = base or IsolationPolicy()
    mode = base.mode if base.mode != "auto" else check_mode(settings.isolation)
    return replace(base, mode=mode, hide=(*base.hide, *settings.private_paths),
                   show=(*base.show, str(Path(problem).resolve().parent), *map(str, show), *settings.visible_paths))


class Evaluator:
    """One problem, many candidates. Keeps a warm reference worker (the judge) and a reusable candidate worker."""

    def __init__(self, problem: str | Path, settings: EvalSettings = EvalSettings(),
                 worker_options: WorkerOptions | None = None,
                 quiet: Callable[[], AbstractContextManager[Any]] | None = None):
        """`quiet`: a context every timed phase (the baselines', the candidate's) runs in, so the caller can keep
        its CPU-heavy work out of them (tools.measure.quiet.QuietTiming.timing)."""
        self.problem = check_source(problem, "problem")
        self._quiet = quiet or nullcontext
        self.settings = settings
        settings.profile  # noqa: B018 - an unknown profile fails here, not mid-evaluation
        options = worker_options or WorkerOptions()
        # The build settings travel to the workers explicitly; a variable the caller sets itself goes on top.
        self.options = replace(options, env={**settings.build.worker_env(), **options.env},
                               isolation=self._policy(options.isolation))
        self.ref_slot = WorkerSlot("reference", self.options, standby=False)
        self.cand_slot = WorkerSlot("candidate", self.options, keep_standby=settings.keep_standby)
        self.cand_slot.warm()  # its start-up overlaps the reference's
        limit = settings.host_memory_limit_gb
        self.memory = HostMemoryWatch([self.ref_slot, self.cand_slot], int(limit * 2**30) if limit else None)
        self._reference: ReferenceData | None = None
        self._baselines: dict[str, Any] | None = None
        self._bandwidth: WriteBandwidth | None | bool = False  # False: not measured yet
        self._copy_gbps: float | None = None  # measured with the write bandwidth (the roofline's yardstick)
        self._device_name = ""
        self._roofline: ProblemFloor | None | bool = False  # False: not computed yet
        self._via_host: bool | None = None  # outputs as bytes instead of CUDA IPC (decided by a probe)
        self._transport_note = ""
        self._weaker_warned = False  # the jail's fallback is logged once per evaluator, not per worker
        self._gpu_identity: dict[str, Any] | None = None
        self._problem_info: dict[str, Any] | None = None
        self.reference_durations_s: dict[str, float] = {}  # where the reference side's time went (benchmarks)
        self.peak_gpu_bytes: dict[str, int] = {}
        self.log = log.bind(problem=self.problem.path.name)

    @contextmanager
    def _timed_phase(self) -> Iterator[None]:
        """Where a baseline or the candidate is timed: in the caller's quiet context first (its own builds are held
        back), then holding the GPU's gate exclusive (no other lane on this GPU runs GPU work or builds meanwhile;
        tools.measure.gpu_gate). The timing's own requests pass through the gate: it is reentrant per thread."""
        with self._quiet(), holding(self.options.gate, "exclusive"):
            yield

    def _policy(self, base: IsolationPolicy) -> IsolationPolicy:
        return isolation_policy(self.settings, self.problem.path, base=base)

    def _warn_if_weaker(self, state: dict[str, Any] | None) -> None:
        """`auto` fell back (no namespaces where unshare is not permitted, no pids cgroup, ...): say so once."""
        if self._weaker_warned or self.options.isolation.mode != "auto":
            return
        gone = missing(state) if state else {"jail": "the worker did not report one"}
        if gone:
            self._weaker_warned = True
            self.log.warning("isolation_weaker_than_full", missing=gone, in_force=describe(state, "auto"))

    @property
    def isolation(self) -> str:
        """The isolation in force for candidate code, in words (from the candidate worker's own report)."""
        worker = self.cand_slot.worker or self.cand_slot.standby
        state = worker.info.get("isolation") if worker is not None else None
        return describe(state, self.options.isolation.mode)

    # -- talking to workers -------------------------------------------------------
    def _ask(self, worker: SandboxWorker, op: str, *, timeout_s: float, **payload: Any) -> Message:
        reply = worker.request(op, timeout_s=timeout_s, on_wait=self.memory.guard(worker), **payload)
        peak = reply.header.get("peak_gpu_bytes")
        if isinstance(peak, int):
            self.peak_gpu_bytes[worker.role] = max(self.peak_gpu_bytes.get(worker.role, 0), peak)
        return reply

    def warm(self) -> None:
        """Start the workers now (a benchmark overlaps the next problem's start-up with this one)."""
        self.ref_slot.warm()

    # -- reference side (cached) -------------------------------------------------
    def check_problem(self) -> dict[str, Any]:
        """Load the problem in the reference worker (works without a GPU); ReferenceFailure if it is broken."""
        if self._problem_info is None:
            worker = self.ref_slot.get()
            try:
                self._problem_info = self._ask(worker, "load", timeout_s=self.settings.load_timeout_s,
                                               problem=str(self.problem.path), init_seed=self.settings.init_seed,
                                               reference_flags=self.settings.profile.reference_flags).header
            except KernelwrightError as exc:
                raise self._reference_failure("the problem itself fails, so no candidate can be judged", exc) from None
        return self._problem_info

    def _reference_failure(self, what: str, exc: KernelwrightError) -> KernelwrightError:
        """Drop the (possibly broken) reference worker and blame the problem, not the candidate."""
        self.ref_slot.discard()
        self._problem_info = self._reference = None
        if isinstance(exc, (DoesNotFit, ResourceLimit)):
            exc.details["role"] = "reference"
            return exc
        return ReferenceFailure(f"{what}: {exc.message}", where=exc.where or str(self.problem.path),
                                details=exc.to_dict())

    def functional_form(self) -> dict[str, Any]:
        """The problem's functional form (generated source, op list, lifted parameters), traced in the
        reference worker; falls back to the module source with the reason when tracing fails."""
        self.check_problem()
        reply = self._ask(self.ref_slot.get(), "functional", timeout_s=self.settings.load_timeout_s,
                          init_seed=self.settings.init_seed)
        return reply.header["form"]

    def reference(self) -> ReferenceData:
        if self._reference is None:
            try:
                self._reference = self._compute_reference()
            except ReferenceFailure:
                raise
            except KernelwrightError as exc:
                raise self._reference_failure("the reference Model failed", exc) from None
        return self._reference

    def _reference_entries(self, specs: list[InputSpec], *, fp64_check: bool, trace: bool = True,
                           sensitivity_of: list[InputSpec] | None = None) -> Message:
        return self._ask(self.ref_slot.get(), "reference", timeout_s=self.settings.call_timeout_s * max(1, len(specs)),
                         inputs=[s.to_dict() for s in specs], fp64_check=fp64_check, trace=trace,
                         tolerances=self._tolerance_payload(),
                         sensitivity_of=[s.to_dict() for s in sensitivity_of] if sensitivity_of else None)

    def _compute_reference(self) -> ReferenceData:
        s = self.settings
        t0 = time.perf_counter()
        loaded = self.check_problem()
        self.reference_durations_s = {"start_and_load": round(time.perf_counter() - t0, 3)}
        specs = [InputSpec(s.base_seed + 7919 * i) for i in range(s.n_trials)]
        # Other shapes the problem declares (get_input_variants) catch kernels that hard-code sizes.
        specs += [InputSpec(s.base_seed + 13 * (v + 1), variant=v) for v in range(int(loaded.get("n_variants", 0)))]
        t1 = time.perf_counter()
        base = specs[:s.n_trials]
        reply = self._reference_entries(specs, fp64_check=True, sensitivity_of=base)
        entries = {spec: e for spec, e in zip(specs, reply.header["entries"])}
        self.reference_durations_s["outputs"] = round(time.perf_counter() - t1, 3)
        weak: list[str] = [n for e in entries.values() for n in e.get("notes", [])]
        t1 = time.perf_counter()
        if reply.header.get("insensitive"):
            # Output barely depends on inputs: add larger inputs that do change it.
            extra = [InputSpec(s.base_seed + 31 + i, scale) for i, scale in enumerate(SENSITISING_SCALES)]
            more = self._reference_entries(extra, fp64_check=False, sensitivity_of=base + extra)
            specs += extra
            entries.update(zip(extra, more.header["entries"]))
            if more.header.get("insensitive"):
                weak.append("reference output barely depends on its inputs: a constant output could pass the tolerance")
        self.reference_durations_s["sensitivity"] = round(time.perf_counter() - t1, 3)
        scaled = None
        override = loaded.get("scaled_override")
        if s.unseen_shape and override:
            scaled = InputSpec(s.base_seed + 271_828, overrides=((str(override[0]), int(override[1])),))
            try:
                entries[scaled] = self._reference_entries([scaled], fp64_check=False, trace=False).header["entries"][0]
            except KernelwrightError as exc:  # the problem does not run at that size: no unseen-size trial
                weak.append(f"unseen-size trial skipped: the reference fails at {scaled.describe()}: {exc.message[:200]}")
                scaled = None
                self.ref_slot.get()  # a reference worker that died on it is replaced
        self.reference_durations_s["total"] = round(time.perf_counter() - t0, 3)
        self.reference_durations_s["reference_call_s"] = round(max(float(e["call_s"]) for e in entries.values()), 5)
        return ReferenceData(specs, entries, weak, scaled)

    def baselines(self) -> dict[str, Any]:
        """Eager (PyTorch defaults), eager with TF32 off, and torch.compile timings, measured once in the clean
        reference worker."""
        if self._baselines is None:
            ref = self.reference()
            s, out = self.settings, {}
            wanted = (("eager", s.eager_baseline, s.timing_timeout_s), ("eager_strict", s.strict_baseline, s.timing_timeout_s),
                      ("compiled", s.compile_baseline, s.compile_baseline_timeout_s),
                      ("compiled_autotune", s.autotune_baseline, s.compile_baseline_timeout_s))
            for target, enabled, timeout in wanted:
                if not enabled:
                    continue
                worker = self.ref_slot.get()
                try:
                    with self._timed_phase():
                        reply = self._ask(worker, "time", timeout_s=max(timeout, self._timing_timeout(ref.call_s)),
                                          target=target, input=self._timing_input().to_dict(),
                                          n_sets=s.n_timing_sets, settings=s.bench.to_dict(),
                                          compile_mode=s.compile_mode if target == "compiled" else None)
                    out[target] = {**reply.header["stats"], "flags": reply.header.get("flags")}
                    if reply.header.get("released_reference_bytes"):  # it needed the kept outputs' room (with_room)
                        out[target]["released_reference_bytes"] = reply.header["released_reference_bytes"]
                except KernelwrightError as exc:
                    out[target] = {"error": exc.to_dict()}
                    if not worker.alive:
                        self.ref_slot.discard()
                        self._reference = self._problem_info = None
                        self.reference()
            self._baselines = out
        return self._baselines

    def _timing_input(self) -> InputSpec:
        """The input set every timing draws its sets from: the baselines' and each candidate's (the same inputs)."""
        return InputSpec(self.settings.base_seed + 555)

    def prepare_reference_side(self) -> None:
        """Ahead of the first candidate: the reference's data, and the torch.compile baselines compiled (untimed),
        so the caller can overlap them with its builds. Failures are left for evaluate() to meet and report."""
        try:
            ref = self.reference()
        except KernelwrightError:
            return
        s = self.settings
        wanted = (("compiled", s.compile_baseline), ("compiled_autotune", s.autotune_baseline))
        for target, enabled in wanted:
            if not enabled or self._baselines is not None:
                continue
            try:
                reply = self._ask(self.ref_slot.get(), "warm", target=target,
                                  timeout_s=max(s.compile_baseline_timeout_s, self._timing_timeout(ref.call_s)),
                                  input=self._timing_input().to_dict(),
                                  compile_mode=s.compile_mode if target == "compiled" else None)
                self.reference_durations_s[f"{target}_warm"] = float(reply.header.get("seconds") or 0.0)
            except KernelwrightError as exc:  # the timing meets it again and records it in the baselines
                self.log.info("baseline_warm_failed", target=target, error=exc.message[:300])
                if not self.ref_slot.worker or not self.ref_slot.worker.alive:
                    self.ref_slot.discard()
                    self._reference = self._problem_info = None
                return

    def bandwidth(self) -> WriteBandwidth | None:
        """The card's measured write bandwidth (the physical floor's yardstick), once per evaluator."""
        if self._bandwidth is False:
            reply = self._ask(self.ref_slot.get(), "bandwidth", timeout_s=60)
            data = reply.header.get("bandwidth")
            self._bandwidth = WriteBandwidth.from_dict(data) if data else None
            self._copy_gbps = float(reply.header["copy_gbps"]) if reply.header.get("copy_gbps") else None
            self._device_name = str(reply.header.get("device_name") or "")
        return self._bandwidth  # type: ignore[return-value]

    def roofline(self) -> ProblemFloor | None:
        """The problem's roofline floor on this card (tools.measure.problem_floor), once per evaluator: it depends
        on the problem and the card, not on the candidate. None without a GPU or when the count failed."""
        if self._roofline is False:
            self._roofline = None
            if self.bandwidth() is not None and self._copy_gbps:
                worker = self.ref_slot.get()
                try:
                    reply = self._ask(worker, "work", timeout_s=self._call_timeout(self._reference) + 60,
                                      input=self._timing_input().to_dict())
                    self._roofline = problem_floor(
                        ProblemWork.from_dict(reply.header["work"]), self._copy_gbps,
                        datasheet_peaks(self._device_name), card=self._device_name,
                        tf32_allowed=self.settings.profile.reference_flags == "default")
                except KernelwrightError as exc:  # the table loses a column, the candidate loses nothing
                    self.log.warning("roofline_unavailable", error=exc.message[:300])
                    if not worker.alive:
                        self.ref_slot.discard()
                        self._reference = self._problem_info = None
        return self._roofline  # type: ignore[return-value]

    # -- watchdogs ---------------------------------------------------------------
    def _call_timeout(self, ref: ReferenceData | None) -> float:
        s = self.settings
        if ref is None:
            return s.call_timeout_s
        # input generation and poisoning happen in the same request: they scale with the inputs' own time
        return min(s.call_timeout_s, max(s.min_call_timeout_s, s.call_timeout_factor * ref.call_s + 4 * ref.inputs_s))

    def _timing_timeout(self, call_s: float) -> float:
        s = self.settings
        budget = 3 * s.bench.max_total_ms / 1e3 + 5 * s.bench.warmup_ms / 1e3
        ref = self._reference
        inputs = (ref.inputs_s * (s.n_timing_sets + 2)) if ref else 0.0
        return min(s.timing_timeout_s, max(30.0, budget + 60 * call_s + 4 * inputs))

    # -- candidate ---------------------------------------------------------------
    def evaluate(self, candidate: str | Path) -> EvalReport:
        started = time.perf_counter()
        report = EvalReport(problem=str(self.problem.path), candidate=str(candidate), precision=self.settings.precision)
        try:
            self._evaluate(Path(candidate), report)
        except ReferenceFailure:
            self.cand_slot.discard()
            raise
        except IsolationUnavailable:
            raise  # the machine cannot give the required sandbox: no verdict on any candidate
        except KernelwrightError as exc:
            self._record_error(report, exc)
        finally:
            report.durations_s["total"] = round(time.perf_counter() - started, 3)
            report.resources = {**report.resources, "gpu_peak_bytes": dict(self.peak_gpu_bytes),
                                "host_peak_pss_bytes": self.memory.peak_pss_bytes,
                                "host_peak_rss_bytes": self.memory.peak_rss_bytes}
            worker = self.cand_slot.worker
            if worker is not None and worker.alive and report.reason != FORBIDDEN_CODE:  # never sent to it
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

    def _record_error(self, report: EvalReport, exc: KernelwrightError) -> None:
        on_reference = exc.details.get("role") == "reference"
        if isinstance(exc, (DoesNotFit, ResourceLimit)) and on_reference:
            report.status = "error"  # the problem is too big for this machine: no verdict on the candidate
        elif report.stage != "timing" or isinstance(exc, (IntegrityError, ToolTimeout, WorkerCrash, DoesNotFit, ResourceLimit)):
            report.status = "rejected"
        else:
            report.status = "error"
        report.reason = report.reason or _reason_for(exc)
        report.message = str(exc)
        report.error = exc.to_dict()
        if isinstance(exc, (ToolTimeout, WorkerCrash, IntegrityError, ResourceLimit)) or self.cand_slot.worker is None:
            self.cand_slot.discard()

    def _evaluate(self, candidate: Path, report: EvalReport) -> None:
        s = self.settings
        source = check_source(candidate, "candidate")
        if s.code_check and (refused := forbidden_code_error(source.text, source.path, self.problem.text)) is not None:
            report.status, report.reason, report.message = "rejected", refused.reason, refused.message
            report.error = refused.to_dict()
            return  # no worker ever imports it
        t0 = time.perf_counter()
        self.check_problem()
        worker = self.cand_slot.get()
        report.resources["isolation"] = describe(worker.info.get("isolation"), self.options.isolation.mode)
        self._warn_if_weaker(worker.info.get("isolation"))
        loaded = self._ask(worker, "load", timeout_s=s.load_timeout_s, problem=str(self.problem.path),
                           candidate=str(candidate), init_seed=s.init_seed, fast_inline=s.build.fast_inline,
                           flags=s.profile.reference_flags).header
        report.candidate_libs = loaded.get("candidate_libs", [])
        self._choose_transport(worker, report)
        report.durations_s["load"] = round(time.perf_counter() - t0, 3)
        if not loaded.get("instantiated"):
            report.status, report.stage, report.reason = "needs_gpu", "correctness", "no_gpu"
            report.message = ("compiled and loaded; verification and timing need a CUDA GPU and none is visible "
                              "here, so this kernel is NOT verified")
            return
        report.stage = "correctness"
        t1 = time.perf_counter()
        ref = self.reference()
        judge = TrialJudge(report, ref)
        self._verify(worker, ref, judge, report)
        report.durations_s["verify"] = round(time.perf_counter() - t1, 3)
        if report.status != "rejected" and s.sanitize:
            self._sanitize(candidate, report)
        if report.status == "rejected" or not s.time_candidate:
            report.status = report.status if report.status == "rejected" else "passed"
            return
        report.stage = "timing"
        self._time(worker, ref, judge, report)
        if report.status == "rejected":
            return
        cand_ms = report.timing["candidate"]["median_ms"]
        for key, attr in (("eager", "speedup_vs_eager"), ("compiled", "speedup_vs_compile"),
                          ("eager_strict", "speedup_vs_eager_strict")):
            base = report.timing.get(key, {})
            if "median_ms" in base and cand_ms > 0:
                setattr(report, attr, base["median_ms"] / cand_ms)
        report.status, report.stage, report.message = "passed", "done", "verified"

    def _choose_transport(self, worker: SandboxWorker, report: EvalReport) -> None:
        """Outputs go to the judge by CUDA IPC where it works between these two processes; where it does not
        (a platform without it), as bytes through the harness, which costs host memory and time: said."""
        if self._via_host is None:
            reply = self._ask(worker, "probe", timeout_s=60)
            check = self._ask(self.ref_slot.get(), "probe", timeout_s=60, blobs=reply.blobs, tensor=reply.header["tensor"])
            self._via_host = check.header.get("fingerprint") != reply.header["fingerprint"]
            self._transport_note = check.header.get("error") or "the judge saw other contents"
            self._release(worker)
        if self._via_host:
            self._ask(worker, "probe", timeout_s=60, via_host=True)
            self._release(worker)
            report.weak_checks.append(f"CUDA IPC unavailable ({self._transport_note[:120]}): outputs travel as "
                                      "bytes through host memory")

    # -- correctness ---------------------------------------------------------------
    def _verify(self, worker: SandboxWorker, ref: ReferenceData, judge: TrialJudge, report: EvalReport) -> None:
        t0 = time.perf_counter()
        report.weak_checks += ref.weak_checks
        traces: list[CallTrace] = []
        mutated: list[list[int]] = []
        for i, spec in enumerate(ref.specs):
            call, verdict = self._judged_call(worker, "outputs", ref, input=spec.to_dict())
            judge.calls.append(call)
            traces.append(CallTrace.from_dict(call["trace"]))
            mutated.append(list(verdict.get("mutated_inputs", [])))
            _add_stage_seconds(report.durations_s, [call], "trials_")
            if not judge.trial(i, verdict, "trial", spec):
                return
        judge.constant_outputs()
        report.durations_s["run_trials"] = round(time.perf_counter() - t0, 3)
        if report.status == "rejected":
            return
        report.stage = "integrity"
        if not any(t.available for t in traces):
            report.weak_checks.append("kernel trace unavailable: " + (traces[0].reason if traces else "no calls"))
        custom = library_symbols(report.candidate_libs)
        rejections = check_traces(traces, ref.traces, custom) + check_mutation(mutated, ref.mutated)
        usable = [t for t in traces if t.available]
        if usable:
            ref_names = {k.name for t in ref.traces if t.available for k in t.kernels}
            report.kernel_usage = kernel_usage(usable[0], custom, ref_names).to_dict()
        if rejections:
            first = rejections[0]
            report.status, report.reason, report.message = "rejected", first.reason, first.message
            report.error = first.to_dict()
            return
        if ref.scaled is not None:
            self._unseen_size(worker, ref, judge, report)

    def _unseen_size(self, worker: SandboxWorker, ref: ReferenceData, judge: TrialJudge, report: EvalReport) -> None:
        """Correctness at another input size (the problem's constants changed): kernel policies are not applied
        there (a candidate may fall back to a library at sizes it was not built for), wrong answers are."""
        spec = ref.scaled
        assert spec is not None
        try:
            _, verdict = self._judged_call(worker, "outputs", ref, input=spec.to_dict())
        except KernelwrightError as exc:
            if isinstance(exc, (ResourceLimit, DoesNotFit)) or exc.details.get("role") == "reference":
                raise
            self.cand_slot.discard()
            report.status, report.reason = "rejected", "shape_specialised"
            report.message = (f"at an unseen input size ({spec.describe()}) the candidate failed: {exc.message[:300]}; "
                              "it is right only at the sizes it was evaluated at")
            report.error = exc.to_dict()
            return
        judge.trial(len(ref.specs), verdict, "unseen_size", spec)

    def _judged_call(self, worker: SandboxWorker, op: str, ref: ReferenceData, **payload: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """One candidate call (op outputs or recheck), judged: (the call's record, the judge's verdict)."""
        reserve = 2 * ref.output_bytes + (1 << 20)
        reply = self._ask(worker, op, timeout_s=self._call_timeout(ref), reserve_bytes=reserve, trace=True,
                          **payload)
        call = reply.header["call"]
        item: dict[str, Any] = {"outputs": call["outputs"]}
        if call.get("refilled"):
            item["given_inputs"] = call["inputs"]
        else:
            item["input"] = call["input"]
            item["candidate_inputs"] = call["inputs"]
        verdict = self._judge([item], reply.blobs)[0]
        self._release(worker, timing_sets=op != "recheck")
        return call, verdict

    def _judge(self, items: list[dict[str, Any]], blobs: list[Any]) -> list[dict[str, Any]]:
        try:
            reply = self._ask(self.ref_slot.get(), "judge", timeout_s=self._call_timeout(self._reference) * 2 + 30,
                              blobs=blobs, items=items, tolerances=self._tolerance_payload(),
                              float64_arbiter=self.settings.float64_arbiter)
        except KernelwrightError as exc:
            exc.details["role"] = "reference"
            if not isinstance(exc, (DoesNotFit, ResourceLimit)) and self.ref_slot.worker is not None \
                    and not self.ref_slot.worker.alive:
                self.ref_slot.discard()
                self._reference = self._problem_info = None
            raise
        return list(reply.header["verdicts"])

    def _release(self, worker: SandboxWorker, *, timing_sets: bool = True) -> None:
        self._ask(worker, "release", timeout_s=30, timing_sets=timing_sets)

    def _tolerance_payload(self) -> dict[str, list[float]]:
        return {k: [t.atol, t.rtol, t.rel_l2] for k, t in self.settings.tolerance_table().items()}

    # -- timing ------------------------------------------------------------------
    def _time(self, worker: SandboxWorker, ref: ReferenceData, judge: TrialJudge, report: EvalReport) -> None:
        s = self.settings
        t2 = time.perf_counter()
        report.timing.update({k: v for k, v in self.baselines().items()})
        before = _clocks()
        cand_call_s = max([float(t.get("call_s", 0.0)) for t in judge.calls] or [ref.call_s])
        with self._timed_phase():
            reply = self._ask(worker, "time", timeout_s=self._timing_timeout(max(cand_call_s, ref.call_s)),
                              input=self._timing_input().to_dict(), n_sets=s.n_timing_sets,
                              settings=s.bench.to_dict(), samples=s.timed_samples if s.judge_timing else 0)
        report.timing["candidate"] = reply.header["stats"]
        report.durations_s["timing_bench"] = round(time.perf_counter() - t2, 3)
        self._record_gpu(report, before, _clocks())
        median_ms = float(reply.header["stats"]["median_ms"])
        if s.judge_timing and not self._judge_timed(worker, ref, judge, report, reply):
            return
        self._check_floor(report, int(reply.header.get("output_bytes", 0)), median_ms)
        report.durations_s["timing"] = round(time.perf_counter() - t2, 3)

    def _judge_timed(self, worker: SandboxWorker, ref: ReferenceData, judge: TrialJudge, report: EvalReport,
                     timed: Message) -> bool:
        """Outputs produced while timing must be right too: the last timed call's and a few random ones' (on
        their perturbed inputs), a call on the same input objects refilled with new values, and first calls on never-seen inputs,
        which must not be much slower than the timed median. False when the candidate was rejected."""
        s = self.settings
        items = [{"given_inputs": c["inputs"], "outputs": c["outputs"], "fingerprints": False}
                 for c in timed.header["judged"]]
        verdicts = self._judge(items, timed.blobs)
        self._release(worker, timing_sets=False)
        for k, verdict in enumerate(verdicts):
            if not judge.trial(k, verdict, "timed_call", None):
                return False
        spec = InputSpec(s.base_seed + RECHECK_SEED_OFFSET)
        try:
            call, verdict = self._judged_call(worker, "recheck", ref, input=spec.to_dict())
        except DoesNotFit as exc:
            return self._check_skipped(report, exc, "refilled-inputs check")
        if not judge.trial(0, verdict, "refilled_inputs", None):
            return False
        rejections = check_traces([CallTrace.from_dict(call["trace"])], ref.traces, library_symbols(report.candidate_libs))
        if rejections:
            judge.caching(f"after timing, on its refilled input objects: {rejections[0].message}")
            return False
        if s.fresh_calls <= 0:
            return True
        fresh = [InputSpec(s.base_seed + FRESH_SEED_OFFSET + k) for k in range(s.fresh_calls)]
        try:
            reply = self._ask(worker, "fresh", timeout_s=self._call_timeout(ref) * len(fresh) + 30,
                              inputs=[f.to_dict() for f in fresh])
        except DoesNotFit as exc:
            return self._check_skipped(report, exc, "first-call check")
        verdict = self._judge([{"input": fresh[-1].to_dict(), "outputs": reply.header["outputs"],
                                "fingerprints": False}], reply.blobs)[0]
        self._release(worker)
        if not judge.trial(0, verdict, "first_call", fresh[-1]):
            return False
        times = [float(t) for t in reply.header["times_ms"]]
        report.timing["first_calls_ms"] = times
        if timed.header["stats"].get("method") == "host_clock":
            # CPU self-test mode: no cache flush between timed calls, so first calls on cold memory are slower
            report.weak_checks.append("first-call timing gap not checked: host-clock timing (CPU self-test mode)")
            return True
        message = timing_gap_message(times, float(timed.header["stats"]["median_ms"]))
        if message:
            judge.caching(message)
            return False
        return True

    def _check_skipped(self, report: EvalReport, exc: DoesNotFit, what: str) -> bool:
        """A post-timing check whose own inputs do not fit the GPU is skipped and said; out of memory inside the
        candidate's call stays the candidate's verdict."""
        if exc.details.get("stage") != "check_inputs":
            raise exc
        report.weak_checks.append(f"{what} skipped: its inputs do not fit the GPU ({exc.message[:160]})")
        return True

    def _check_floor(self, report: EvalReport, output_bytes: int, median_ms: float) -> None:
        bandwidth = self.bandwidth()
        if bandwidth is None or output_bytes <= 0:
            return
        floor_ms = bandwidth.floor_ms(output_bytes)
        report.floor = {"output_bytes": output_bytes, "floor_ms": floor_ms, "write_gbps": round(bandwidth.gbps, 1),
                        "l2_bytes": bandwidth.l2_bytes, "median_ms": median_ms}
        if median_ms >= floor_ms and (roof := self.roofline()) is not None:
            report.floor.update(roofline_fields(roof, median_ms))
        if median_ms < floor_ms:
            report.status, report.reason = "rejected", "below_physical_floor"
            report.message = (f"timed at {median_ms * 1e3:.1f} us, below the physical floor of {floor_ms * 1e3:.1f} us: "
                              f"{output_bytes / 1e6:.1f} MB of output cannot be written faster on this card (measured "
                              f"{bandwidth.gbps:.0f} GB/s, floor taken at {1.5:.1f}x that): the timer did not see "
                              "the work (it escaped the timed stream, or the clock was fooled)")

    def _record_gpu(self, report: EvalReport, before: Any, after: Any) -> None:
        """GPU identity, the host it is in, and clocks around the candidate's timing (NVML); a throttle is a
        warning. (On a Ray cluster the actor adds its Ray node and GPU: graphs.ray_executor.)"""
        from kernelwright.tools.measure.gpu_info import gpu_facts, throttle_warning

        if self._gpu_identity is None:
            try:
                facts = gpu_facts(use_torch=False)  # the harness process itself never initialises CUDA
                self._gpu_identity = {"name": facts.name, "driver": facts.driver_version,
                                      "compute_capability": list(facts.compute_capability)}
            except ToolUnavailable as exc:
                self._gpu_identity = {"nvml": str(exc)}
        report.gpu.update(self._gpu_identity)
        report.gpu.setdefault("node", socket.gethostname())  # which machine measured it, when runs span several
        if before is not None and after is not None:
            report.gpu["clocks_before"], report.gpu["clocks_after"] = before.to_dict(), after.to_dict()
            if warning := throttle_warning(before, after):
                report.weak_checks.append(f"clocks changed during timing: {warning}")

    def sanitize(self, candidate: str | Path) -> Any:
        """compute-sanitizer memcheck over one call of `candidate` (a SanitizeVerdict): run on the winner of a
        run or benchmark problem before it is reported as verified."""
        from kernelwright.tools.harness.sanitizer import sanitize_verdict

        policy = self.options.isolation
        policy = replace(policy, show=(*policy.show, str(Path(candidate).resolve().parent)))
        with holding(self.options.gate, "shared"):  # untimed GPU work: never beside another lane's timing
            verdict = sanitize_verdict(str(self.problem.path), str(candidate), timeout_s=self.settings.sanitize_timeout_s,
                                       env={**os.environ, **self.options.env}, isolation=policy)
        self.log.info("candidate_sanitized", candidate=Path(candidate).name, status=verdict.status,
                      seconds=round(verdict.seconds, 1))
        return verdict

    def _sanitize(self, candidate: Path, report: EvalReport) -> None:
        from kernelwright.tools.harness.sanitizer import OUT_OF_BOUNDS, verdict_update

        verdict = self.sanitize(candidate)
        for key, value in verdict_update(verdict.to_dict()).items():
            setattr(report, key, value)
        if not verdict.sanitized and verdict.status != OUT_OF_BOUNDS:
            report.weak_checks.append(f"sanitizer: {verdict.message}")

    def close(self) -> None:
        self.ref_slot.close()
        self.cand_slot.close()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def roofline_fields(roof: ProblemFloor, median_ms: float) -> dict[str, Any]:
    """What a report's `floor` gains from the problem's roofline: the floor, its bound, the timed median over it."""
    return {"roofline_ms": roof.floor_ms, "roofline_bound": roof.bound,
            "floor_ratio": median_ms / roof.floor_ms if roof.floor_ms > 0 else None, "roofline": roof.to_dict()}


def _clocks() -> Any:
    from kernelwright.tools.measure.gpu_info import clock_snapshot

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


_REASON_BY_KIND = {"compile": "compile_error", "load": "load_error"}  # other kinds (timeout, crash, ...) are their own reason


def reason_for_error(error: Mapping[str, Any]) -> str:
    """A report's rejection reason for an error (KernelwrightError.to_dict()); integrity verdicts name their check."""
    kind = str(error.get("kind") or "load")
    if kind in ("integrity", "resource_limit") and error.get("reason"):
        return str(error["reason"])
    return _REASON_BY_KIND.get(kind, kind)


def _reason_for(exc: KernelwrightError) -> str:
    return reason_for_error({"kind": exc.kind, "reason": getattr(exc, "reason", None)})
