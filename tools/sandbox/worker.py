"""The sandbox worker: a separate process that imports problem or candidate code and runs it.

Started by `SandboxWorker` (pool.py) with `python -m kernelwright.tools.sandbox.worker --fd N
--role reference|candidate [--device cuda|cpu]`. It answers framed requests on the socket fd; its
stdout/stderr go to a log file. A CUDA fault poisons only this process: the worker replies `fatal` and
exits, and the harness starts a new one. The role's operations live in reference_worker.py (the
reference and the judge: never imports candidate code) and candidate_worker.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import sys
import traceback
from typing import Any

import torch

from kernelwright.tools.errors import DoesNotFit, KernelwrightError, LoadError
from kernelwright.tools.measure.gpu_gate import hold_fd_shared
from kernelwright.tools.measure.timing import BenchSettings, bench, l2_flush_buffer
from kernelwright.tools.problem.files import SourceFile, call_user, check_arity, check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, input_bytes, input_shapes, make_inputs, unfilled_problem_inputs
from kernelwright.tools.problem.model_build import WeightPlace, build_model, is_large, weight_bytes, weight_place
from kernelwright.tools.problem.shape_scaling import rescaled_module
from kernelwright.tools.sandbox.isolation import install_socket_guard, jail_state
from kernelwright.tools.sandbox.protocol import ProtocolError, recv_message, send_message
from kernelwright.tools.verify.kernel_trace import trace_call
from kernelwright.tools.verify.precision import FlagSwitch


class WorkerBase:
    """What both roles share: the device, the problem module, the model, and seeded inputs."""

    def __init__(self, role: str, device_kind: str = "cuda"):
        self.role = role
        # PyTorch's defaults as this process has them, captured before anything changes a flag
        self.flags = FlagSwitch()
        if device_kind == "cpu":
            self.device: torch.device | None = torch.device("cpu")  # the harness's self-test mode
        else:
            self.device = torch.device("cuda", 0) if torch.cuda.is_available() else None
        self.problem: SourceFile | None = None
        self.problem_module: Any = None
        self.model: Any = None  # reference Model, or the candidate's ModelNew
        self.candidate_loaded = False
        self._rescaled: dict[tuple[tuple[str, int], ...], Any] = {}
        self._weight_bytes: int | None = None  # the reference Model's, which decides where models are built
        self._flush: torch.Tensor | None = None
        self.gate_fd: int | None = None  # the GPU's gate (pool.WorkerOptions.gate), held around 'hello' only

    @property
    def gpu(self) -> torch.device | None:
        """The CUDA device this worker runs on; None in CPU self-test mode or without a GPU."""
        return self.device if self.device is not None and self.device.type == "cuda" else None

    @property
    def on_gpu(self) -> bool:
        return self.gpu is not None

    # -- requests -----------------------------------------------------------
    def op_hello(self, req: dict) -> dict:
        # CUDA's and CUPTI's start-up is GPU work: not beside another lane's timing. The descriptor is closed
        # after, so the candidate code this process may run later cannot hold the gate through it.
        fd, self.gate_fd = self.gate_fd, None
        with hold_fd_shared(fd):
            return self._hello(req)

    def _hello(self, req: dict) -> dict:
        info: dict[str, Any] = {"pid": os.getpid(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                                "device": str(self.device) if self.device is not None else None,
                                "default_flags": self.flags.defaults.to_dict(), "isolation": jail_state()}
        if self.on_gpu:
            warm = torch.ones(16, device=self.device)
            if req.get("warm_profiler", True):  # pay CUPTI's start-up (seconds) here, not in a timed phase
                trace_call(lambda: warm + 1)
            # one tiny timing run too: whatever threads the CUDA runtime starts on first use exist before any
            # candidate runs, so the background-work check sees only threads a candidate started
            bench(lambda: warm + 1, BenchSettings(warmup_ms=0.1, rep_ms=0.1, min_trials=2, max_trials=2, flush_l2=False))
            info["device_name"] = torch.cuda.get_device_name(self.device)
            info["capability"] = list(torch.cuda.get_device_capability(self.device))
            info["memory_total_bytes"] = torch.cuda.get_device_properties(self.device).total_memory
        torch.ones(1 << 16).sum()  # start the intra-op thread pool now, not inside a candidate's first call
        return info

    def load_problem(self, req: dict) -> dict[str, Any]:
        """Import the problem and describe its inputs (shapes only: nothing of their size is allocated)."""
        self._unload()
        self.problem = check_source(req["problem"], "problem")
        self.problem_module = import_file(self.problem, f"kw_problem_{self.problem.sha256[:12]}")
        for name in ("Model", "get_inputs", "get_init_inputs"):
            if not hasattr(self.problem_module, name):
                raise LoadError(f"problem file defines no `{name}`", where=str(self.problem.path))
        init_inputs = self.init_inputs()
        sample = call_user(lambda: input_shapes(self.problem_module.get_inputs), "get_inputs()", self.problem)
        variants = getattr(self.problem_module, "get_input_variants", None)
        n_variants = len(call_user(variants, "get_input_variants()", self.problem)) if callable(variants) else 0
        check_arity(self.problem_module.Model, len(sample), self.problem, "Model")
        self._init_inputs = init_inputs
        self._weight_bytes = weight_bytes(self.problem_module.Model, init_inputs)
        return {"n_inputs": len(sample), "input_bytes": sum(int(v.get("bytes", 0)) for v in sample),
                "input_meta": sample, "n_variants": n_variants}

    def init_inputs(self) -> Any:
        assert self.problem is not None
        init = call_user(self.problem_module.get_init_inputs, "get_init_inputs()", self.problem)
        if not isinstance(init, (list, tuple)):
            raise LoadError(f"get_init_inputs() must return a list or tuple, got {type(init).__name__}",
                            where=str(self.problem.path))
        return init

    def build(self, cls: Any, source: SourceFile, what: str, req: dict) -> Any:
        return build_model(cls, self._init_inputs, source, what, seed=int(req.get("init_seed", 42)), device=self.device,
                           place=self.weight_place)

    @property
    def weight_place(self) -> WeightPlace:
        """Where this problem's Model and candidates are built (the same in both workers: see model_build)."""
        return weight_place(self._weight_bytes, self.device)

    def op_functional(self, req: dict) -> dict:
        """The problem's functional form, traced on CPU (needs no GPU) on unfilled inputs: the trace reads their
        shapes only, and drawing level-1 inputs (GBs) on the CPU would cost seconds and their size in memory."""
        from kernelwright.tools.problem.functional import functional_form

        if self.problem is None or self.problem_module is None:
            raise KernelwrightError("load a problem before asking for its functional form")
        problem, module = self.problem, self.problem_module
        cpu = torch.device("cpu")
        # a large Model is traced with uninitialised weights: the form reads shapes, and its weights would not fit
        model = build_model(module.Model, self.init_inputs(), problem, "Model", seed=int(req.get("init_seed", 42)),
                            device=cpu, place="uninitialised" if is_large(self._weight_bytes) else "host")
        with unfilled_problem_inputs(problem.path):
            inputs = call_user(lambda: make_inputs(module.get_inputs, InputSpec(0), cpu), "get_inputs()", problem)
        form = functional_form(model, inputs, module_source=problem.text)
        return {"form": form.to_dict()}

    def op_unload(self, _: dict) -> dict:
        self._unload()
        return {}

    # -- helpers ------------------------------------------------------------
    def make(self, spec: InputSpec) -> list[Any]:
        """The seeded input set `spec` names, on this worker's device (identical in both workers)."""
        assert self.problem is not None and self.device is not None
        module = self.problem_module
        if spec.overrides:
            key = spec.overrides
            if key not in self._rescaled:
                self._rescaled[key] = rescaled_module(self.problem.text, str(self.problem.path), list(key))
            module = self._rescaled[key]
        what = "get_inputs()" if spec.variant < 0 else "get_input_variants()"
        return call_user(lambda: make_inputs(module.get_inputs, spec, self.device,
                                             getattr(module, "get_input_variants", None)), what, self.problem)

    def require_model(self) -> Any:
        if self.model is None:
            raise KernelwrightError("nothing loaded on a GPU in this worker (load first; needs a CUDA GPU)")
        return self.model

    def sync(self) -> None:
        if self.on_gpu:
            torch.cuda.synchronize(self.device)

    def flush_buffer(self) -> torch.Tensor | None:
        gpu = self.gpu
        if gpu is not None and self._flush is None:
            self._flush = l2_flush_buffer(gpu)
        return self._flush

    def peak_gpu_bytes(self) -> int | None:
        """The most GPU memory this worker's allocator has held (replies carry it for the benchmarks)."""
        return int(torch.cuda.max_memory_reserved(self.device)) if self.on_gpu else None

    def free_cached_memory(self) -> None:
        gc.collect()
        if self.on_gpu:
            torch.cuda.empty_cache()

    def after_error(self) -> None:
        """A failed request leaves nothing held (an out-of-memory error must not make the next one fail too)."""
        self.free_cached_memory()

    def _unload(self) -> None:
        for name in [n for n in sys.modules if n.startswith(("kw_candidate_", "kw_problem_"))]:
            del sys.modules[name]
        self.model = self.problem_module = None
        self._rescaled.clear()
        self.free_cached_memory()


def does_not_fit(exc: BaseException, what: str, inputs: list[Any] | None = None) -> DoesNotFit:
    details: dict[str, Any] = {"error": str(exc).splitlines()[0][:300]}
    if inputs is not None:
        details["input_bytes"] = input_bytes(inputs)
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        details.update(free_bytes=free, total_bytes=total)
    return DoesNotFit(f"{what} ran out of GPU memory: {details['error']}", details=details)


def _is_fatal(exc: BaseException) -> bool:
    """CUDA errors are sticky: after one, this process's context is unusable."""
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(exc, accelerator_error):
        return True
    text = str(exc)
    return "CUDA error" in text or "cudaError" in text or "CUBLAS_STATUS" in text


def serve(sock: socket.socket, role: str, device_kind: str = "cuda", gate_fd: int | None = None) -> None:
    from kernelwright.tools.sandbox.candidate_worker import CandidateWorker
    from kernelwright.tools.sandbox.reference_worker import ReferenceWorker

    state: WorkerBase = ReferenceWorker(device_kind) if role == "reference" else CandidateWorker(device_kind)
    state.gate_fd = gate_fd
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
            result = handler(msg.header, msg) if getattr(handler, "takes_blobs", False) else handler(msg.header)
            header, blobs = result if isinstance(result, tuple) else (result, [])
            send_message(sock, {"ok": True, **header}, blobs)
            continue
        except KernelwrightError as exc:
            err = exc.to_dict()
        except torch.OutOfMemoryError as exc:
            err = does_not_fit(exc, f"the {role} worker ('{op}')").to_dict()
        except Exception as exc:  # candidate or problem code failing in an unexpected place
            fatal = _is_fatal(exc)
            err = {"kind": "crash" if fatal else "runtime", "type": "WorkerCrash" if fatal else "KernelwrightError",
                   "message": f"{type(exc).__name__}: {exc}", "details": {"traceback": traceback.format_exc()[-6000:]}}
        if not fatal:
            state.after_error()
        send_message(sock, {"ok": False, "error": err, "fatal": fatal, "tainted": state.candidate_loaded})
        if fatal:
            return


def takes_blobs(fn: Any) -> Any:
    """Marks an op that reads the request's blobs (shared tensors) as well as its header."""
    fn.takes_blobs = True
    return fn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="kernelwright sandbox worker (started by the harness)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--role", choices=("reference", "candidate"), required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--gate-fd", type=int, default=None)  # the GPU's gate, for 'hello' (tools.measure.gpu_gate)
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    if os.environ.get("KERNELWRIGHT_SOCKET_GUARD") == "1":
        install_socket_guard()  # no network namespace here: the weaker fallback (see tools.sandbox.isolation)
    try:
        serve(sock, args.role, args.device, args.gate_fd)
    finally:
        sock.close()
        sys.stdout.flush()
        os._exit(0)  # skip atexit/CUDA teardown of possibly corrupted state


if __name__ == "__main__":
    main()
