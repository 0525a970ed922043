"""The graph's evaluator on real hardware: builds in parallel on CPU workers, verifies on a pool of GPUs.

One `tools.harness.evaluate.Evaluator` per GPU (its workers see only that GPU); an
evaluation takes whichever is free. `prepare` builds a candidate in a CPU-only
worker, so several builds overlap with GPU work; the GPU evaluation then loads
the cached library.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.agents.context import RunSettings
from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.harness.evaluate import EvalSettings, isolation_policy
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from kernelwright.tools.measure.gpu_gate import GpuGate, gate_for, holding
from kernelwright.tools.measure.gpu_info import GpuFacts
from kernelwright.tools.measure.quiet import QuietTiming
from kernelwright.tools.run_folder import CandidateProfile
from kernelwright.tools.sandbox.isolation import CAP_SYS_ADMIN, IsolationPolicy, tool_jail

log = structlog.get_logger(__name__)
WARM_JOIN_S = 30.0  # at close, how long a reference warm-up may take to let go of its killed workers


def visible_gpus() -> list[str]:
    """GPU indices this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU NVML sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return []


class HarnessEvaluator:
    """The CandidateEvaluator of real runs (agents.evaluator)."""

    # functional_form() traces in the reference worker's process, so the run may trace in its own meanwhile
    # (torch.export keeps global state: two exports in one process at once break each other)
    traces_out_of_process = True

    def __init__(self, problem: Path, settings: EvalSettings, gpus: list[str] | None = None):
        """`settings`: the run's harness, timing and build settings (KernelwrightConfig.eval_settings())."""
        from kernelwright.tools.harness.evaluate import Evaluator
        from kernelwright.tools.sandbox.pool import WorkerOptions

        self.problem = Path(problem)
        self.settings = settings
        self.gpus = visible_gpus() if gpus is None else gpus
        slots: list[str | None] = [*self.gpus] or [None]  # no GPU: one evaluator that compiles, loads and says needs_gpu
        self.quiet = QuietTiming()  # this run's builds wait while a candidate or baseline is timed
        # each GPU's gate where lanes of a bench share GPUs (tools.measure.gpu_gate): other processes' timings
        # keep this run's builds and GPU work out, and this run's timings keep theirs out
        self.gates: dict[str, GpuGate] = {g: gate for g in self.gpus if (gate := gate_for(g)) is not None}
        self._all = [Evaluator(self.problem, settings,
                               WorkerOptions(env={"CUDA_VISIBLE_DEVICES": g} if g is not None else {},
                                             gate=self.gates.get(g) if g is not None else None),
                               quiet=self.quiet.timing)
                     for g in slots]
        self._free: queue.Queue[Any] = queue.Queue()
        for ev in self._all:
            self._free.put(ev)
        self._trace_lock = threading.Lock()
        self._warm_lock = threading.Lock()
        self._warm_started = False
        self._warm_threads: list[threading.Thread] = []

    def prepare(self, candidate: Path) -> EvalReport | None:
        """Build the candidate on a CPU worker; a failed build's report (status rejected), or None when it built."""
        from kernelwright.tools.harness.evaluate import reason_for_error
        from kernelwright.tools.harness.precompile import build_candidate

        self._warm_reference_sides()
        with self._building():
            outcome = build_candidate(self.problem, candidate, self.settings)
        if outcome.ok:
            return None
        error = outcome.error or {}
        return EvalReport(problem=str(self.problem), candidate=str(candidate), status="rejected", stage="build",
                          reason=reason_for_error(error), message=error.get("message", ""), error=error,
                          durations_s={"build": round(outcome.seconds, 3)})

    def _warm_reference_sides(self) -> None:
        """Once, when the first build starts: each GPU's reference data and compiled baselines, in the background.
        The first builds take seconds of nvcc and torch.compile takes seconds more; done at once they overlap.
        A warm-up holds its Evaluator (evaluate() waits for it) and counts as a build, so no timing runs
        beside the compiler's CPU load."""
        with self._warm_lock:
            if not self.gpus or self._warm_started:
                return
            self._warm_started = True

        def warm() -> None:
            with self._borrow() as evaluator:
                # the first Evaluator's reference worker also traces the functional form: never both at once
                with self._trace_lock if evaluator is self._all[0] else nullcontext(), self._building():
                    evaluator.prepare_reference_side()

        for _ in self._all:
            thread = threading.Thread(target=warm, name="kw-warm-reference", daemon=True)
            self._warm_threads.append(thread)
            thread.start()

    @contextmanager
    def _building(self) -> Iterator[None]:
        """A build (nvcc, torch.compile's warm-up: seconds of CPU): out of this run's timings (QuietTiming), then
        out of every lane's timing on each of this run's GPUs (their gates shared, taken in one order, so two runs
        taking several never wait for each other in a circle)."""
        with self.quiet.building(), ExitStack() as stack:
            for gpu in sorted(self.gates):
                stack.enter_context(self.gates[gpu].shared())
            yield

    def evaluate(self, candidate: Path) -> EvalReport:
        with self._borrow() as evaluator:
            return evaluator.evaluate(candidate)

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        """compute-sanitizer memcheck of the run's winner on a free GPU."""
        if not self.gpus:
            return SanitizeVerdict("unavailable", "no CUDA GPU visible: compute-sanitizer memcheck needs one", 0.0)
        with self._borrow() as evaluator:
            verdict: SanitizeVerdict = evaluator.sanitize(candidate)
            return verdict

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        """A free per-GPU Evaluator, given back when done."""
        evaluator = self._free.get()
        try:
            yield evaluator
        finally:
            self._free.put(evaluator)

    def functional_form(self) -> dict[str, Any]:
        with self._trace_lock:
            return self._all[0].functional_form()

    def profile(self, candidate: Path) -> CandidateProfile:
        if not self.gpus:
            return CandidateProfile.unavailable("no CUDA GPU visible")
        gate = self.gates.get(self.gpus[0])  # ncu's process sees this run's GPUs: it runs on the first
        with holding(gate, "exclusive"):  # ncu times kernels: a timed phase
            return CandidateProfile.from_dict(profile_candidate(
                self.problem, candidate, self.settings.build,
                isolation_policy(self.settings, Path(self.problem), Path(candidate).resolve().parent)))

    def close(self) -> None:
        for ev in self._all:
            ev.close()  # a warm-up still talking to its workers fails at once and lets go
        for thread in self._warm_threads:
            thread.join(timeout=WARM_JOIN_S)
        if self._warm_threads:
            for ev in self._all:
                ev.close()  # whatever a warm-up started again between the two
        if self.quiet.waited_s:
            log.info("timing_waited_for_builds", problem=self.problem.name, seconds=round(self.quiet.waited_s, 2))
        if any(gate.waited_s for gate in self.gates.values()):  # what sharing GPUs with other lanes cost this run
            log.info("gpu_gate_waited", problem=self.problem.name,
                     timing_s=round(sum(g.waited_exclusive_s for g in self.gates.values()), 2),
                     other_s=round(sum(g.waited_shared_s for g in self.gates.values()), 2))


def profile_candidate(problem: str | Path, candidate: str | Path, build: BuildSettings,
                      isolation: IsolationPolicy | None = None) -> dict[str, Any]:
    """Nsight Compute metrics of the candidate's kernels, or why they could not be read (with a "summary");
    `isolation`: the jail ncu and the candidate start in (tools.harness.evaluate.isolation_policy)."""
    import sys

    from kernelwright.tools.measure.gpu_info import gpu_facts
    from kernelwright.tools.measure.ncu import profile_command
    from kernelwright.tools.procenv import scrubbed_env

    try:
        facts = gpu_facts(use_torch=False)  # keep CUDA out of the harness process
    except Exception:  # noqa: BLE001 - facts only sharpen the roofline; profiling goes on without them
        facts = None
    cmd = [sys.executable, "-m", "kernelwright.tools.measure.run_once", str(problem), str(candidate), "--calls", "2"]
    result = profile_command(cmd, kernel_regex=None, timeout_s=600.0, env=scrubbed_env(**build.worker_env()),
                             launch_count=20, facts=facts,
                             jail=tool_jail(isolation, keep_caps=(CAP_SYS_ADMIN,)))  # ncu's counters need it
    out = result.to_dict()
    out["summary"] = result.summary()
    return out


def with_gpu_facts(settings: RunSettings, gpus: Sequence[str], facts: GpuFacts | None = None) -> RunSettings:
    """The prompts' GPU facts and the archive's architecture, read through NVML for the first of `gpus`, or
    `facts` (a tools.measure.gpu_info.GpuFacts) where the evaluator's GPUs are elsewhere (a Ray cluster's);
    settings unchanged when they name a GPU already, or there is none."""
    if settings.gpu_description != RunSettings.gpu_description or not gpus:
        return settings
    from kernelwright.tools.measure.gpu_info import gpu_facts

    if facts is None:
        try:
            facts = gpu_facts(int(gpus[0]) if str(gpus[0]).isdigit() else 0, use_torch=False)
        except Exception as exc:  # noqa: BLE001 - facts sharpen prompts; without them the run goes on
            log.info("gpu_facts_unavailable", error=str(exc))
            return settings
    f = facts
    major, minor = f.compute_capability
    parts = [f"{f.name}, compute capability {major}.{minor} (sm_{major}{minor})"]
    if f.sm_count:
        parts.append(f"{f.sm_count} SMs")
    if f.peak_dram_bandwidth_gbps:
        parts.append(f"{f.peak_dram_bandwidth_gbps / 1000:.2f} TB/s DRAM bandwidth")
    if f.l2_bytes:
        parts.append(f"{f.l2_bytes / 2**20:.0f} MiB L2")
    parts.append(f"{f.memory_total_bytes / 2**30:.0f} GiB memory")
    return replace(settings, gpu_description=", ".join(parts), gpu_arch=f"sm_{major}{minor}")
