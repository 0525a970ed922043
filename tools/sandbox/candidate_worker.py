"""The candidate worker: imports the candidate, runs its calls, times it, and shares its outputs with the judge.

Every call's outputs (and the inputs it got) are shared with the judge by reference (CUDA IPC) and held
here until the harness says `release`. Around every call the worker checks that the candidate left no
thread or child process running and did not replace harness functions; after timing it keeps the last
timed output and its inputs so an output produced while timing is judged too.
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch

from kernelwright.tools.errors import IntegrityError, LoadError
from kernelwright.tools.measure.timing import BenchSettings, time_one_call
from kernelwright.tools.problem.files import check_arity, check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, as_output_list, refill
from kernelwright.tools.sandbox.background import Activity, left_running
from kernelwright.tools.sandbox.guard import HarnessGuard, plain_tensor_problem
from kernelwright.tools.sandbox.libraries import candidate_libraries, loaded_libraries
from kernelwright.tools.sandbox.tensor_share import ShareError, share_tensor
from kernelwright.tools.sandbox.timed_sets import TimedSets
from kernelwright.tools.sandbox.worker import WorkerBase, does_not_fit
from kernelwright.tools.verify.fingerprint import fingerprint
from kernelwright.tools.verify.floors import output_bytes
from kernelwright.tools.verify.gpu_memory import poison_free_memory
from kernelwright.tools.verify.kernel_trace import CallTrace, trace_call

_EXTRA_TRIALS = 8  # up to this many more timed trials, drawn at random: the judged last call is not countable


class CandidateWorker(WorkerBase):
    def __init__(self, device_kind: str = "cuda"):
        super().__init__("candidate", device_kind)
        self.guard = HarnessGuard.capture()
        self.candidate_libs: set[str] = set()
        self.held: list[Any] = []  # tensors the judge has open; alive until `release`
        self.timed: TimedSets | None = None  # the timing run's input sets, kept for the post-timing checks
        self.rng = random.SystemRandom()
        self.via_host = False  # outputs as bytes: set when the harness found CUDA IPC not working here

    # -- load ---------------------------------------------------------------
    def op_load(self, req: dict) -> dict:
        reply = self.load_problem(req)
        # The candidate runs under the profile's flags for its whole life (strict fp32 by default).
        self.flags.flags(str(req.get("flags", "strict"))).apply()  # type: ignore[arg-type]
        reply.update(self._load_candidate(req, int(reply["n_inputs"])))
        reply["instantiated"] = self.model is not None
        return reply

    def _load_candidate(self, req: dict, n_inputs: int) -> dict:
        candidate = check_source(req["candidate"], "candidate")
        before_libs, before = loaded_libraries(), Activity.now()
        with _fast_inline(bool(req.get("fast_inline", True))):
            module = import_file(candidate, f"kw_candidate_{candidate.sha256[:12]}")
            self.candidate_loaded = True
            self._check_guard("while importing the candidate")
            cls = getattr(module, "ModelNew", None)
            if cls is None:
                raise LoadError("candidate file defines no `ModelNew`", where=str(candidate.path))
            check_arity(cls, n_inputs, candidate, "ModelNew")
            if self.device is not None:
                self.model = self.build(cls, candidate, "ModelNew", req)
                self._check_guard("while constructing ModelNew")
        self._check_background(before, "importing and constructing the candidate", count_native=False)
        self.candidate_libs = candidate_libraries(before_libs)
        return {"candidate_libs": sorted(self.candidate_libs)}

    # -- judged calls ---------------------------------------------------------
    def op_outputs(self, req: dict) -> tuple[dict, list[Any]]:
        """One call on the seeded input set `input`; its outputs and inputs shared with the judge."""
        self._release()
        spec = InputSpec.from_dict(req["input"])
        started = time.perf_counter()
        inputs = self.make(spec)
        self.sync()
        inputs_s = time.perf_counter() - started
        call, blobs = self._judged_call(inputs, req)
        call["input"] = spec.to_dict()
        call["stages_s"]["inputs"] = round(inputs_s, 4)
        return {"call": call}, blobs

    def op_recheck(self, req: dict) -> tuple[dict, list[Any]]:
        """After timing: the last timed input objects (same addresses, same version counters) refilled with
        other values, and one judged call on them. A result cached by object, pointer or version is stale."""
        self._release()
        if self.timed is None:
            raise IntegrityError("harness_state", "recheck without a timing run")
        target = self.timed.last
        if len(self.timed.sets) > 1:
            refill(target, self.timed.sets[(self.timed.last_index + 1) % len(self.timed.sets)])
        else:
            refill(target, self._make_for_check(InputSpec.from_dict(req["input"])))
        call, blobs = self._judged_call(target, req)
        call["refilled"] = True
        return {"call": call}, blobs

    def _judged_call(self, inputs: list[Any], req: dict) -> tuple[dict, list[Any]]:
        model = self.require_model()
        clock = _StageClock()
        poison = None
        gpu = self.gpu
        if gpu is not None:
            poison = poison_free_memory(gpu, _affordable(int(req.get("reserve_bytes", 0)), gpu))
        clock.lap("poison")
        before = Activity.now()
        with torch.no_grad():
            if req.get("trace", True) and self.on_gpu:
                result, trace = trace_call(lambda: model(*inputs))
            else:
                result, trace = model(*inputs), CallTrace((), None, available=False, reason="not traced")
        self.sync()
        clock.lap("call")
        self._check_guard("during a forward call")
        # Native threads count only in timing: the profiler and the CUDA runtime start some on first use.
        self._check_background(before, "the forward call", count_native=False)
        outputs = self._checked_outputs(result)
        blobs: list[Any] = []
        call = {"outputs": [self._share(o, blobs) for o in outputs], "inputs": [self._share_input(v, blobs) for v in inputs],
                "trace": trace.to_dict(), "poisoned_bytes": poison.bytes if poison else 0,
                "output_bytes": output_bytes(outputs, inputs), "call_s": clock.laps["call"]}
        clock.lap("share")
        call["stages_s"] = clock.laps
        self.held = [*outputs, *inputs]
        return call, blobs

    # -- timing -------------------------------------------------------------
    def op_time(self, req: dict) -> tuple[dict, list[Any]]:
        """Time the candidate; the last timed call's output and inputs, and those of `samples` timed calls drawn
        at random, are shared with the judge."""
        model = self.require_model()
        self._release(drop_timed=True)
        settings = BenchSettings(**req.get("settings", {}))
        self.timed = TimedSets.make(self, InputSpec.from_dict(req["input"]), int(req.get("n_sets", 3)), settings)
        before = Activity.now()
        with torch.no_grad():
            stats, last, sampled = self.timed.bench(model, settings, self.flush_buffer(), self.device,
                                                    extra_trials=self.rng.randrange(_EXTRA_TRIALS + 1),
                                                    samples=int(req.get("samples", 2)), rng=self.rng)
        self.sync()
        self._check_guard("during timing")
        self._check_background(before, "timing", count_native=True)
        outputs = self._checked_outputs(last)
        blobs: list[Any] = []
        inputs = self.timed.last
        judged = [(inputs, outputs)] + [(i, self._checked_outputs(o)) for i, o in sampled]
        reply = {"stats": stats.to_dict(), "n_input_sets": len(self.timed.sets),
                 "judged": [{"outputs": [self._share(o, blobs) for o in outs],
                             "inputs": [self._share_input(v, blobs) for v in ins]} for ins, outs in judged],
                 "output_bytes": output_bytes(outputs, inputs)}
        self.held = [t for ins, outs in judged for t in (*outs, *ins)]
        return reply, blobs

    def op_fresh(self, req: dict) -> tuple[dict, list[Any]]:
        """Single timed calls, each on a never-seen input set (new objects at new addresses, new values):
        a candidate that caches results is slow here and fast in the timed loop. The last call is judged."""
        model = self.require_model()
        self._release(drop_timed=True)
        times: list[float] = []
        inputs: list[Any] | None = None
        outputs: Any = None
        for spec_data in req["inputs"]:
            if inputs is not None and not self._room_for(inputs):
                inputs = outputs = None  # a huge problem: the next set may reuse these addresses
            fresh = self._make_for_check(InputSpec.from_dict(spec_data))  # made while the previous set is alive
            result: list[Any] = []
            with torch.no_grad():
                times.append(time_one_call(lambda: result.append(model(*fresh)), flush_buffer=self.flush_buffer(),  # noqa: B023 - called at once
                                           device=self.device))
            inputs, outputs = fresh, result[0]
        self._check_guard("during fresh calls")
        checked = self._checked_outputs(outputs)
        blobs: list[Any] = []
        reply = {"times_ms": times, "outputs": [self._share(o, blobs) for o in checked]}
        self.held = [*checked, *(inputs or [])]
        return reply, blobs

    def op_probe(self, req: dict) -> tuple[dict, list[Any]]:
        """A known tensor shared the way outputs are, so the harness can check that the judge can open it."""
        self._release()
        self.via_host = bool(req.get("via_host", False))
        probe = torch.arange(4096, dtype=torch.float32, device=self.device) * 0.5
        blobs: list[Any] = []
        meta = self._share(probe, blobs)
        self.held = [probe]
        return {"tensor": meta, "fingerprint": fingerprint(probe)}, blobs

    def op_release(self, req: dict) -> dict:
        self._release(drop_timed=bool(req.get("timing_sets", True)))
        return {"peak_gpu_bytes": self.peak_gpu_bytes()}

    # -- helpers ------------------------------------------------------------
    def _make_for_check(self, spec: InputSpec) -> list[Any]:
        """Inputs for a post-timing check; running out of memory here is the harness's, not the candidate's."""
        try:
            return self.make(spec)
        except torch.OutOfMemoryError as exc:
            error = does_not_fit(exc, "making a post-timing check's inputs")
            error.details["stage"] = "check_inputs"
            raise error from None

    def _room_for(self, inputs: list[Any]) -> bool:
        if not self.on_gpu:
            return True
        need = sum(v.numel() * v.element_size() for v in inputs if isinstance(v, torch.Tensor))
        return torch.cuda.mem_get_info(self.device)[0] > 3 * need

    def _release(self, drop_timed: bool = False) -> None:
        self.held = []
        if drop_timed:
            self.timed = None
        if self.on_gpu:
            torch.cuda.ipc_collect()  # blocks the judge had open return to the pool

    def after_error(self) -> None:
        self._release(drop_timed=True)
        super().after_error()

    def _checked_outputs(self, result: Any) -> list[torch.Tensor]:
        outputs = as_output_list(result)
        for i, out in enumerate(outputs):
            problem = plain_tensor_problem(out)
            if problem:
                raise IntegrityError("tensor_subclass", f"output {i}: {problem}")
            if self.device is not None and out.device.type != self.device.type:
                raise IntegrityError("host_computation", f"output {i} is on {out.device}, not on the GPU: "
                                     "it was computed or left on the host")
        return outputs

    def _share(self, t: torch.Tensor, blobs: list[Any]) -> dict[str, Any]:
        try:
            return share_tensor(t, blobs, via_host=self.via_host)
        except ShareError:  # memory PyTorch's allocator did not give out: share a copy that it did
            copy = t.clone()
            self.held.append(copy)
            return share_tensor(copy, blobs, via_host=self.via_host)

    def _share_input(self, value: Any, blobs: list[Any]) -> dict[str, Any]:
        if isinstance(value, torch.Tensor):
            return self._share(value, blobs)
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"kind": "value", "value": value}
        return {"kind": "value", "value": None, "opaque": type(value).__name__}

    def _check_guard(self, when: str) -> None:
        changed = self.guard.changed()
        if changed:
            raise IntegrityError("harness_tampering", f"candidate code replaced harness functions {when}: "
                                 + ", ".join(changed[:8]), details={"changed": changed})

    def _check_background(self, before: Activity, what: str, *, count_native: bool) -> None:
        left = left_running(before, Activity.now())
        reason = left.reason(count_native=count_native)
        if reason:
            raise IntegrityError(reason, f"{what} left {left.describe()} running after it returned: work in the "
                                 "background escapes the timer and the judge", details={"left": left.describe()})

    def _unload(self) -> None:
        self._release(drop_timed=True)
        super()._unload()


def _affordable(reserve: int, device: Any) -> int:
    """The poison headroom asked for, less whatever would not leave room for the call itself."""
    if reserve <= 0:
        return 0
    free, _ = torch.cuda.mem_get_info(device)
    return max(0, min(reserve, free // 2))


class _StageClock:
    """Seconds spent in each stage of a judged call (reported so harness overhead can be measured)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(self.laps.get(stage, 0.0) + now - self._last, 4)
        self._last = now


def _fast_inline(enabled: bool) -> Any:
    """Candidates' load_inline calls go to the fast builder while the candidate imports."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext()
    from kernelwright.tools.compile.inline.patch import fast_load_inline_installed

    return fast_load_inline_installed()
