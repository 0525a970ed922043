"""The reference worker: the problem's Model, its baselines, and the judge. It never imports candidate code.

The correctness reference runs under the precision profile's flags (strict fp32 by default); the eager and
torch.compile baselines run under PyTorch's defaults as this process found them (what a user runs), with
strict-fp32 eager as an extra column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.measure.problem_floor import count_work
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.problem.files import call_user
from kernelwright.tools.problem.inputs import InputSpec, as_output_list
from kernelwright.tools.problem.shape_scaling import scaled_override
from kernelwright.tools.sandbox.judge import Float64Outputs, ReferenceStore, float64_outputs, judge_outputs
from kernelwright.tools.sandbox.tensor_share import ShareError, open_shared
from kernelwright.tools.sandbox.timed_sets import TimedSets
from kernelwright.tools.sandbox.worker import WorkerBase, takes_blobs
from kernelwright.tools.verify.compare import Tolerance
from kernelwright.tools.verify.fingerprint import fingerprint
from kernelwright.tools.verify.floors import measure_copy_bandwidth, measure_write_bandwidth

KEEP_FRACTION = 0.2  # of the GPU's memory, for reference outputs kept between candidates
# baseline name -> (flag set, torch.compile mode or None for eager)
BASELINES: dict[str, tuple[str, str | None]] = {
    "eager": ("default", None), "eager_strict": ("strict", None),
    "compiled": ("default", "default"), "compiled_autotune": ("default", "max-autotune-no-cudagraphs"),
}


class ReferenceWorker(WorkerBase):
    def __init__(self, device_kind: str = "cuda"):
        super().__init__("reference", device_kind)
        self.store: ReferenceStore | None = None
        self.reference_flags = "strict"
        self.compiled: dict[str, Any] = {}

    def op_load(self, req: dict) -> dict:
        reply = self.load_problem(req)
        assert self.problem is not None
        self.reference_flags = str(req.get("reference_flags", "strict"))
        scaled = scaled_override(self.problem.text, str(self.problem.path), self.problem_module)
        reply["scaled_override"] = list(scaled) if scaled else None
        if self.device is not None:
            self.model = self.build(self.problem_module.Model, self.problem, "Model", req)
            keep = int(req.get("keep_bytes") or 0) or (int(KEEP_FRACTION * torch.cuda.get_device_properties(self.device)
                                                           .total_memory) if self.on_gpu else 1 << 30)
            self.store = ReferenceStore(self.model, self.make, self.device, keep)
        reply["instantiated"] = self.model is not None
        return reply

    def op_reference(self, req: dict) -> dict:
        """Reference results for input sets (computed once, cached): their summaries, and whether the outputs
        barely depend on the inputs (`insensitive`, over `sensitivity_of` when given)."""
        store = self._store()
        specs = [InputSpec.from_dict(d) for d in req["inputs"]]
        entries = []
        with self.flags.using(self.reference_flags):  # type: ignore[arg-type]
            for spec in specs:
                entry = call_user(lambda: store.entry(spec, trace=bool(req.get("trace", True)),  # noqa: B023 - called at once
                                                      fp64_check=bool(req.get("fp64_check", True))),
                                  f"Model.forward() on inputs ({spec.describe()})", self.problem)  # type: ignore[arg-type]
                entries.append(entry.summary())
        reply: dict[str, Any] = {"entries": entries, "kept_bytes": store.kept_bytes(),
                                 "peak_gpu_bytes": self.peak_gpu_bytes()}
        if req.get("sensitivity_of"):
            tolerances = _tolerances(req.get("tolerances"))
            reply["insensitive"] = store.insensitive([InputSpec.from_dict(d) for d in req["sensitivity_of"]], tolerances)
        return reply

    @takes_blobs
    def op_judge(self, req: dict, msg: Any) -> dict:
        """Verdicts on shared candidate outputs: against the stored reference of an input set (`input`), or
        against the reference computed now on shared inputs (`given_inputs`, for outputs produced while timing)."""
        store = self._store()
        tolerances = _tolerances(req.get("tolerances"))
        verdicts = []
        with self.flags.using(self.reference_flags):  # type: ignore[arg-type]
            for item in req["items"]:
                verdicts.append(self._judge_item(store, item, msg.blobs, tolerances,
                                                 float64_arbiter=bool(req.get("float64_arbiter", False))))
        return {"verdicts": verdicts, "peak_gpu_bytes": self.peak_gpu_bytes()}

    def _judge_item(self, store: ReferenceStore, item: dict, blobs: list[Any], tolerances: dict[str, Tolerance], *,
                    float64_arbiter: bool = False) -> dict[str, Any]:
        """`float64_arbiter` (EvalSettings.float64_arbiter): an output that fails is judged again against the
        Model in float64 on the same inputs (tools.verify.arbiter), made fresh from the seed or the shared ones."""
        started = time.perf_counter()
        try:
            outputs = [open_shared(m, blobs, self.device) for m in item["outputs"]]
            given = [_open_value(m, blobs, self.device) for m in item["given_inputs"]] if "given_inputs" in item else None
            cand_inputs = [_open_value(m, blobs, self.device) for m in item.get("candidate_inputs", [])]
        except ShareError as exc:
            raise KernelwrightError(f"the candidate's shared outputs could not be opened: {exc}") from None
        verdict: dict[str, Any] = {}
        if given is None:
            spec = InputSpec.from_dict(item["input"])
            entry = store.entry(spec, trace=False, fp64_check=False)
            reference = store.outputs(spec)
            noise = entry.fp64_rel_l2
            exact_inputs: Callable[[], list[Any]] = partial(store.make_inputs, spec)  # the reference's values, fresh
            verdict["mutated_inputs"] = [k for k, v in enumerate(cand_inputs) if isinstance(v, torch.Tensor)
                                         and k < len(entry.input_fingerprints)
                                         and fingerprint(v) != entry.input_fingerprints[k]]
        else:
            model = self.require_model()
            with torch.no_grad():
                # F821: the lambda runs at once, before the `del given` below, which ruff reads as leaving it unbound
                reference = as_output_list(call_user(lambda: model(*given), "Model.forward() on the timed inputs",  # noqa: F821
                                                     self.problem))  # type: ignore[arg-type]
            noise = None
            exact_inputs = partial(list, given)
            self.sync()
        verdict["output_count"] = [len(outputs), len(reference)]
        if len(outputs) == len(reference):
            float64 = partial(self._float64, exact_inputs, reference) if float64_arbiter else None
            verdict["outputs"] = judge_outputs(outputs, reference, tolerances, noise, float64)
        if item.get("fingerprints", True):
            verdict["fingerprints"] = [fingerprint(o) for o in outputs]
        verdict["seconds"] = round(time.perf_counter() - started, 4)
        del outputs, given, cand_inputs, reference
        return verdict

    def _float64(self, make_inputs: Callable[[], list[Any]], reference: list[torch.Tensor]) -> Float64Outputs:
        """The Model in float64 on the inputs `make_inputs` gives (the float64 arbiter's answer)."""
        return float64_outputs(self.require_model(), make_inputs(), reference, self.device or torch.device("cpu"))

    @takes_blobs
    def op_probe(self, req: dict, msg: Any) -> dict:
        """Open a probe tensor shared by the candidate worker: the fingerprint it has here (or why it failed)."""
        try:
            return {"fingerprint": fingerprint(open_shared(req["tensor"], msg.blobs, self.device))}
        except ShareError as exc:
            return {"fingerprint": None, "error": str(exc)}

    def op_time(self, req: dict) -> dict:
        """A baseline's timing: `target` names one of BASELINES (or "compiled" with an explicit compile_mode)."""
        model = self.require_model()
        target = str(req.get("target", "eager"))
        if target == "model":
            target = "eager"
        if target not in BASELINES:
            raise KernelwrightError(f"unknown baseline {target!r}")
        flag_set, mode = BASELINES[target]
        if target == "compiled" and req.get("compile_mode"):
            mode = str(req["compile_mode"])
        settings = BenchSettings(**req.get("settings", {}))

        def timed() -> Any:
            with self.flags.using(flag_set):  # type: ignore[arg-type]
                fn = model if mode is None else self._compiled(model, mode)
                sets = TimedSets.make(self, InputSpec.from_dict(req["input"]), int(req.get("n_sets", 3)), settings)
                with torch.no_grad():
                    stats, _, _ = sets.bench(fn, settings, self.flush_buffer(), self.device)
            return stats

        stats, released = self.with_room(timed)
        self.free_cached_memory()
        return {"stats": stats.to_dict(), "flags": self.flags.flags(flag_set).to_dict(),  # type: ignore[arg-type]
                "compile_mode": mode, "released_reference_bytes": released}

    def with_room(self, run: Callable[[], Any]) -> tuple[Any, int]:
        """run(), and where it runs out of GPU memory while reference outputs are kept, run() once more after dropping
        them (judging recomputes them): a baseline's input sets and its compiled graph need the room on a problem of
        many GB (level1/87 on an H100: 12 GB a call; the kept outputs, 20% of the card, left torch.compile's timing
        8 GB short beside a candidate worker). Returns run()'s result and the bytes dropped."""
        try:
            return run(), 0
        except torch.OutOfMemoryError:
            if self.store is None or not self.store.kept_bytes():
                raise
        # out of the except block: its traceback, and the tensors its frames hold, are gone
        released = self.store.release_outputs()
        self.free_cached_memory()
        return run(), released

    def op_warm(self, req: dict) -> dict:
        """Compile a torch.compile baseline ahead of its timing: one untimed call on input set `input`, under the
        flags and grad mode its timing uses, so the compiler's minutes of CPU can overlap the run's builds rather
        than sit inside a timed phase's slot (the timing then finds the compiled function, as after a warm-up)."""
        model = self.require_model()
        target = str(req.get("target", "compiled"))
        flag_set, mode = BASELINES[target]
        if mode is None:
            raise KernelwrightError(f"baseline {target!r} is eager: nothing to compile")
        mode = str(req.get("compile_mode") or mode)
        started = time.perf_counter()
        with self.flags.using(flag_set):  # type: ignore[arg-type]
            fn = self._compiled(model, mode)
            inputs = self.make(InputSpec.from_dict(req["input"]))
            with torch.no_grad():
                fn(*inputs)
            if self.on_gpu:
                torch.cuda.synchronize(self.device)
        del inputs
        self.free_cached_memory()
        return {"seconds": round(time.perf_counter() - started, 3), "compile_mode": mode}

    def op_bandwidth(self, _: dict) -> dict:
        """The card's write bandwidth (the physical floor's), its copy bandwidth (the roofline's) and its name."""
        if not self.on_gpu:
            return {"bandwidth": None}
        return {"bandwidth": measure_write_bandwidth(self.device).to_dict(),  # type: ignore[arg-type]
                "copy_gbps": measure_copy_bandwidth(self.device),  # type: ignore[arg-type]
                "device_name": torch.cuda.get_device_name(self.device)}

    def op_work(self, req: dict) -> dict:
        """Bytes and FLOPs of one reference call on input set `input` (the roofline floor's numerators)."""
        model = self.require_model()
        inputs = self.make(InputSpec.from_dict(req["input"]))
        with self.flags.using(self.reference_flags):  # type: ignore[arg-type]
            work = count_work(model, inputs)
        del inputs
        self.free_cached_memory()
        return {"work": work.to_dict(), "peak_gpu_bytes": self.peak_gpu_bytes()}

    def _compiled(self, model: Any, mode: str) -> Any:
        if mode not in self.compiled:
            self.compiled[mode] = torch.compile(model, mode=None if mode == "default" else mode)
        return self.compiled[mode]

    def _store(self) -> ReferenceStore:
        if self.store is None:
            raise KernelwrightError("nothing loaded on a GPU in this worker (load first; needs a CUDA GPU)")
        return self.store

    def _unload(self) -> None:
        self.store = None
        self.compiled = {}
        super()._unload()


def _tolerances(raw: Any) -> dict[str, Tolerance]:
    return {str(k): Tolerance(*[float(x) for x in v]) for k, v in (raw or {}).items()}


def _open_value(meta: dict, blobs: list[Any], device: torch.device | None) -> Any:
    """A shared input: a tensor (opened) or a plain value sent inline."""
    if meta.get("kind") == "value":
        return meta.get("value")
    return open_shared(meta, blobs, device)

