"""The graph's evaluator on real hardware: builds in parallel on CPU workers, verifies on a pool of GPUs.

One `tools.evaluate.Evaluator` per GPU (its workers see only that GPU); an
evaluation takes whichever is free. `prepare` builds a candidate in a CPU-only
worker, so several builds overlap with GPU work; the GPU evaluation then loads
the cached library.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from kernelwright.tools.evaluate import EvalSettings

log = structlog.get_logger(__name__)


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
    # functional_form() traces in the reference worker's process, so the run may trace in its own meanwhile
    # (torch.export keeps global state: two exports in one process at once break each other)
    traces_out_of_process = True

    def __init__(self, problem: Path, settings: EvalSettings, gpus: list[str] | None = None):
        """`settings`: the run's harness, timing and build settings (KernelwrightConfig.eval_settings())."""
        from kernelwright.tools.evaluate import Evaluator
        from kernelwright.tools.sandbox.pool import WorkerOptions

        self.problem = Path(problem)
        self.settings = settings
        self.gpus = visible_gpus() if gpus is None else gpus
        slots = self.gpus or [None]  # no GPU: one evaluator that compiles, loads and says needs_gpu
        self._all = [Evaluator(self.problem, settings,
                               WorkerOptions(env={"CUDA_VISIBLE_DEVICES": g} if g is not None else {}))
                     for g in slots]
        self._free: queue.Queue[Any] = queue.Queue()
        for ev in self._all:
            self._free.put(ev)
        self._trace_lock = threading.Lock()

    def prepare(self, candidate: Path) -> dict[str, Any] | None:
        """Build the candidate on a CPU worker; a failed build's report (status rejected), or None when it built."""
        from kernelwright.tools.evaluate import reason_for_error
        from kernelwright.tools.precompile import build_candidates

        (outcome,) = build_candidates(self.problem, [candidate], build=self.settings.build, jobs=1)
        if outcome.ok:
            return None
        error = outcome.error or {}
        return {"status": "rejected", "stage": "build", "reason": reason_for_error(error),
                "message": error.get("message", ""), "error": error, "problem": str(self.problem),
                "candidate": str(candidate),
                "durations_s": {"build": round(outcome.seconds, 3)}}

    def evaluate(self, candidate: Path) -> dict[str, Any]:
        with self._borrow() as evaluator:
            return evaluator.evaluate(candidate).to_dict()

    def sanitize(self, candidate: Path) -> dict[str, Any]:
        """compute-sanitizer memcheck of the run's winner on a free GPU (SanitizeVerdict.to_dict())."""
        from kernelwright.tools.sanitizer import SanitizeVerdict

        if not self.gpus:
            return SanitizeVerdict("unavailable", "no CUDA GPU visible: compute-sanitizer memcheck needs one",
                                   0.0).to_dict()
        with self._borrow() as evaluator:
            return evaluator.sanitize(candidate).to_dict()

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

    def profile(self, candidate: Path) -> dict[str, Any]:
        from kernelwright.api import profile_candidate

        if not self.gpus:
            return {"available": False, "summary": "profiler unavailable: no CUDA GPU visible"}
        return profile_candidate(self.problem, candidate, self.settings.build)

    def close(self) -> None:
        for ev in self._all:
            ev.close()
