"""The sandbox worker: a separate process that imports problem or candidate code and runs it.

Started by `SandboxWorker` (pool.py) with `python -m kernelwright.tools.sandbox.worker
--fd N --role reference|candidate`. It answers framed requests on the socket fd;
its stdout/stderr go to a log file. A CUDA fault poisons only this process: the
worker replies `fatal` and exits, and the harness starts a new one.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import socket
import sys
import sysconfig
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from kernelwright.tools.errors import IntegrityError, KernelwrightError, LoadError
from kernelwright.tools.gpu_memory import poison_free_memory
from kernelwright.tools.inputs import InputSpec, Perturber, as_output_list, input_bytes, make_inputs, mutated_positions, snapshot
from kernelwright.tools.kernel_trace import CallTrace, trace_call
from kernelwright.tools.nvcc import default_cache_dir
from kernelwright.tools.problem import SourceFile, build_model, call_user, check_arity, check_source, import_file
from kernelwright.tools.sandbox.guard import HarnessGuard, plain_tensor_problem
from kernelwright.tools.sandbox.protocol import ProtocolError, recv_message, send_message
from kernelwright.tools.tensor_wire import PinnedStaging
from kernelwright.tools.timing import BenchSettings, bench, l2_flush_buffer

_MAX_TIMING_INPUT_BYTES = 4 << 30


class WorkerState:
    def __init__(self, role: str):
        self.role = role
        self.device = torch.device("cuda", 0) if torch.cuda.is_available() else None
        self.problem: SourceFile | None = None
        self.problem_module: Any = None
        self.model: Any = None  # reference Model, or the candidate's ModelNew
        self.compiled: Any = None  # torch.compile(Model), reference role only
        self.candidate_libs: set[str] = set()
        self.flush: torch.Tensor | None = None
        self.guard: HarnessGuard | None = None
        self.candidate_loaded = False
        self.staging = PinnedStaging()  # outputs leave through one page-locked buffer (see tensor_wire)

    # -- requests -----------------------------------------------------------
    def op_hello(self, req: dict) -> dict:
        info: dict[str, Any] = {"pid": os.getpid(), "torch": torch.__version__, "cuda": torch.cuda.is_available()}
        if self.device is not None:
            if req.get("warm_profiler", True):  # pay CUPTI's start-up (seconds) here, not in a timed phase
                warm = torch.ones(16, device=self.device)
                trace_call(lambda: warm + 1)
            info["device_name"] = torch.cuda.get_device_name(self.device)
            info["capability"] = list(torch.cuda.get_device_capability(self.device))
        return info

    def op_load(self, req: dict) -> dict:
        self._unload()
        self.problem = check_source(req["problem"], "problem")
        self.problem_module = import_file(self.problem, f"kw_problem_{self.problem.sha256[:12]}")
        for name in ("Model", "get_inputs", "get_init_inputs"):
            if not hasattr(self.problem_module, name):
                raise LoadError(f"problem file defines no `{name}`", where=str(self.problem.path))
        init_inputs = call_user(self.problem_module.get_init_inputs, "get_init_inputs()", self.problem)
        if not isinstance(init_inputs, (list, tuple)):
            raise LoadError(f"get_init_inputs() must return a list or tuple, got {type(init_inputs).__name__}",
                            where=str(self.problem.path))
        sample = call_user(lambda: make_inputs(self.problem_module.get_inputs, InputSpec(0), torch.device("cpu")),
                           "get_inputs()", self.problem)
        variants = getattr(self.problem_module, "get_input_variants", None)
        n_variants = len(call_user(variants, "get_input_variants()", self.problem)) if callable(variants) else 0
        reply: dict[str, Any] = {"n_inputs": len(sample), "input_bytes": input_bytes(sample),
                                 "input_meta": [_meta(v) for v in sample], "n_variants": n_variants}
        check_arity(self.problem_module.Model, len(sample), self.problem, "Model")
        if req.get("candidate"):
            reply.update(self._load_candidate(req, init_inputs, len(sample)))
        else:
            if self.device is not None:
                self.model = build_model(self.problem_module.Model, init_inputs, self.problem, "Model",
                                         seed=int(req.get("init_seed", 42)), device=self.device)
        reply["instantiated"] = self.model is not None
        return reply

    def _load_candidate(self, req: dict, init_inputs: Any, n_inputs: int) -> dict:
        candidate = check_source(req["candidate"], "candidate")
        before = _loaded_libraries()
        # load_inline calls at import or in __init__ go to the fast builder.
        with _fast_inline(bool(req.get("fast_inline", True))):
            module = import_file(candidate, f"kw_candidate_{candidate.sha256[:12]}")
            self.candidate_loaded = True
            self._check_guard("while importing the candidate")
            cls = getattr(module, "ModelNew", None)
            if cls is None:
                raise LoadError("candidate file defines no `ModelNew`", where=str(candidate.path))
            check_arity(cls, n_inputs, candidate, "ModelNew")
            if self.device is not None:
                self.model = build_model(cls, init_inputs, candidate, "ModelNew", seed=int(req.get("init_seed", 42)),
                                         device=self.device)
                self._check_guard("while constructing ModelNew")
        self.candidate_libs = _candidate_libraries(before)
        return {"candidate_libs": sorted(self.candidate_libs)}

    def op_outputs(self, req: dict) -> tuple[dict, list[bytes]]:
        model = self._require_model()
        calls, blobs = [], []
        self.staging.reset()  # the previous reply, which held views of it, has been sent
        for spec_data in req["inputs"]:
            spec = InputSpec.from_dict(spec_data)
            clock = _StageClock()
            inputs = call_user(lambda: make_inputs(self.problem_module.get_inputs, spec, self.device,
                                                   getattr(self.problem_module, "get_input_variants", None)),
                               "get_inputs()" if spec.variant < 0 else "get_input_variants()", self.problem)
            before = snapshot(inputs)
            clock.lap("inputs")
            poison = poison_free_memory(self.device, int(req.get("reserve_bytes", 0)))
            clock.lap("poison")
            with torch.no_grad():
                if req.get("trace", True):
                    result, trace = trace_call(lambda: model(*inputs))
                else:
                    result, trace = model(*inputs), CallTrace((), None, available=False, reason="not traced")
            torch.cuda.synchronize()
            clock.lap("call")
            self._check_guard("during a forward call")
            outputs = as_output_list(result)
            metas = []
            for i, out in enumerate(outputs):
                problem = plain_tensor_problem(out)
                if problem:
                    raise IntegrityError("tensor_subclass", f"output {i}: {problem}")
                meta, raw = self.staging.encode(out)
                meta["blob"] = len(blobs)
                meta["device"] = str(out.device)
                blobs.append(raw)
                metas.append(meta)
            clock.lap("encode")
            call = {"input": spec.to_dict(), "outputs": metas, "trace": trace.to_dict(),
                    "mutated_inputs": mutated_positions(before, inputs), "poisoned_bytes": poison.bytes}
            clock.lap("mutation")
            if req.get("fp64_check") and self.role == "reference":
                call["fp64_rel_l2"] = self._fp64_rel_l2(inputs, outputs)
                clock.lap("fp64")
            call["stages_s"] = clock.laps
            calls.append(call)
            del inputs, before, result, outputs
        return {"calls": calls}, blobs

    def _fp64_rel_l2(self, inputs: list, outputs: list) -> list[float | None]:
        """How far the reference in its own dtype is from itself in float64: its noise floor."""
        import copy

        try:
            model64 = copy.deepcopy(self.model).double() if isinstance(self.model, torch.nn.Module) else self.model
            inputs64 = [v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in inputs]
            with torch.no_grad():
                ref64 = as_output_list(model64(*inputs64))
        except Exception:  # some ops have no float64 kernel; the check is then skipped
            return [None] * len(outputs)
        rel = []
        for out, r64 in zip(outputs, ref64):
            if not (isinstance(r64, torch.Tensor) and out.is_floating_point() and r64.shape == out.shape):
                rel.append(None)
                continue
            denom = float(torch.linalg.vector_norm(r64.double()))
            num = float(torch.linalg.vector_norm(out.double() - r64.double()))
            rel.append(num / denom if denom > 0 else (0.0 if num == 0 else math.inf))
        return rel

    def op_time(self, req: dict) -> dict:
        model = self._require_model()
        target = model
        if req.get("target") == "compiled":
            if self.compiled is None:
                self.compiled = torch.compile(model, mode=req.get("compile_mode") or None)
            target = self.compiled
        settings = BenchSettings(**req.get("settings", {}))
        base = InputSpec.from_dict(req["input"])
        sample = make_inputs(self.problem_module.get_inputs, base, self.device)
        n_sets = 1 if settings.cuda_graph else max(1, min(int(req.get("n_sets", 3)),
                                                          _MAX_TIMING_INPUT_BYTES // max(1, input_bytes(sample))))
        sets = [sample] + [make_inputs(self.problem_module.get_inputs, InputSpec(base.seed + k, base.scale), self.device)
                           for k in range(1, n_sets)]
        perturb = Perturber(base.seed)
        state = {"i": 0}

        def before_each() -> None:
            state["i"] = (state["i"] + 1) % len(sets)
            perturb(sets[state["i"]])

        def run() -> Any:
            return target(*sets[state["i"]])

        if self.flush is None:
            self.flush = l2_flush_buffer(self.device)
        with torch.no_grad():
            stats = bench(run, settings, before_each=before_each, flush_buffer=self.flush)
        self._check_guard("during timing")
        return {"stats": stats.to_dict(), "n_input_sets": len(sets)}

    def op_functional(self, req: dict) -> dict:
        """The problem's functional form, traced on CPU (needs no GPU)."""
        from kernelwright.tools.functional import functional_form

        if self.problem is None or self.problem_module is None:
            raise KernelwrightError("load a problem before asking for its functional form")
        problem, module = self.problem, self.problem_module
        init_inputs = call_user(module.get_init_inputs, "get_init_inputs()", problem)
        cpu = torch.device("cpu")
        model = build_model(module.Model, init_inputs, problem, "Model", seed=int(req.get("init_seed", 42)), device=cpu)
        inputs = call_user(lambda: make_inputs(module.get_inputs, InputSpec(0), cpu), "get_inputs()", problem)
        form = functional_form(model, inputs, module_source=problem.text)
        return {"form": form.to_dict()}

    def op_unload(self, _: dict) -> dict:
        self._unload()
        return {}

    # -- helpers ------------------------------------------------------------
    def _require_model(self) -> Any:
        if self.model is None:
            raise KernelwrightError("nothing loaded on a GPU in this worker (load first; needs a CUDA GPU)")
        return self.model

    def _check_guard(self, when: str) -> None:
        if self.guard is None:
            return
        changed = self.guard.changed()
        if changed:
            raise IntegrityError("harness_tampering", f"candidate code replaced harness functions {when}: "
                                 + ", ".join(changed[:8]), details={"changed": changed})

    def _unload(self) -> None:
        for name in [n for n in sys.modules if n.startswith(("kw_candidate_", "kw_problem_"))]:
            del sys.modules[name]
        self.model = self.compiled = self.problem_module = None
        gc.collect()


class _StageClock:
    """Seconds spent in each stage of a correctness call (reported so harness overhead can be measured)."""

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
    from kernelwright.tools.inline.patch import fast_load_inline_installed

    return fast_load_inline_installed()


def _meta(value: Any) -> dict:
    if isinstance(value, torch.Tensor):
        return {"type": "tensor", "dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape)}
    return {"type": type(value).__name__, "value": repr(value)[:80]}


def _loaded_libraries() -> set[str]:
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if ".so" in line and line.split()[-1].startswith("/")}


def _candidate_libraries(before: set[str]) -> set[str]:
    """Shared libraries the candidate brought in: new since its import began, or built into a kernel cache
    (a reused worker has a repeated candidate's library loaded already)."""
    caches = (str(default_cache_dir()), os.path.join(os.path.expanduser("~"), ".cache", "torch_extensions"),
              os.environ.get("TORCH_EXTENSIONS_DIR") or "//none")
    python_dirs = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
    skip = (os.path.dirname(torch.__file__), "/usr/local/cuda", "/usr/lib", "/lib", *python_dirs)
    loaded = _loaded_libraries()
    new = {lib for lib in loaded - before if not lib.startswith(skip) and "/nvidia/" not in lib}
    return new | {lib for lib in loaded if lib.startswith(caches)}


def _is_fatal(exc: BaseException) -> bool:
    """CUDA errors are sticky: after one, this process's context is unusable."""
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    text = str(exc)
    return "CUDA error" in text or "cudaError" in text or "CUBLAS_STATUS" in text


def serve(sock: socket.socket, role: str) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False  # references in true fp32; tolerances assume it
    torch.backends.cudnn.allow_tf32 = False
    state = WorkerState(role)
    if role == "candidate":
        state.guard = HarnessGuard.capture()
    while True:
        try:
            msg = recv_message(sock)
        except ProtocolError:
            return
        op = str(msg.header.get("op"))
        handler = getattr(state, f"op_{op}", None)
        fatal = False
        try:
            if op == "shutdown":
                send_message(sock, {"ok": True})
                return
            if handler is None:
                raise KernelwrightError(f"unknown worker op {op!r}")
            result = handler(msg.header)
            header, blobs = result if isinstance(result, tuple) else (result, [])
            send_message(sock, {"ok": True, **header}, blobs)
            continue
        except KernelwrightError as exc:
            err = exc.to_dict()
        except Exception as exc:  # candidate or problem code failing in an unexpected place
            fatal = _is_fatal(exc)
            err = {"kind": "crash" if fatal else "runtime", "type": "WorkerCrash" if fatal else "KernelwrightError",
                   "message": f"{type(exc).__name__}: {exc}", "details": {"traceback": traceback.format_exc()[-6000:]}}
        send_message(sock, {"ok": False, "error": err, "fatal": fatal,
                            "tainted": state.candidate_loaded})
        if fatal:
            return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="kernelwright sandbox worker (started by the harness)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--role", choices=("reference", "candidate"), required=True)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    try:
        serve(sock, args.role)
    finally:
        sock.close()
        sys.stdout.flush()
        os._exit(0)  # skip atexit/CUDA teardown of possibly corrupted state


if __name__ == "__main__":
    main()
