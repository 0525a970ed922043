"""Detect candidate code that patches the harness inside its worker process.

Before a candidate is imported the worker records the identity of every
function the harness relies on (comparison, events, synchronisation, profiler,
tensor export, its own modules). After import and after every call it checks
them again; any change is tampering. Judging happens in another process anyway;
this guards the figures that must be measured in the candidate's process (time).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import torch

_WATCHED_MODULE_PREFIX = "kernelwright.tools"


def _targets() -> dict[str, object]:
    import json
    import os
    import socket
    import threading
    import time

    import torch.profiler

    cuda = torch.cuda
    t = torch.Tensor
    named: dict[str, object] = {
        "torch.allclose": torch.allclose, "torch.equal": torch.equal, "torch.isclose": torch.isclose,
        "torch.testing.assert_close": torch.testing.assert_close,
        "torch.cuda.synchronize": cuda.synchronize, "torch.cuda.Event": cuda.Event,
        "torch.cuda.Event.record": cuda.Event.record, "torch.cuda.Event.elapsed_time": cuda.Event.elapsed_time,
        "torch.cuda.Event.synchronize": cuda.Event.synchronize, "torch.cuda.current_stream": cuda.current_stream,
        "torch.cuda.Stream": cuda.Stream, "torch.cuda.CUDAGraph": cuda.CUDAGraph, "torch.cuda.graph": cuda.graph,
        "torch.cuda.memory_snapshot": cuda.memory_snapshot, "torch.cuda._sleep": cuda._sleep,
        "torch.profiler.profile": torch.profiler.profile, "torch.Tensor": torch.Tensor,
        "time.perf_counter": time.perf_counter, "time.monotonic": time.monotonic,
        "json.dumps": json.dumps, "socket.socket.sendall": socket.socket.sendall,
        # what the background-work check and the output sharing rely on
        "threading.enumerate": threading.enumerate, "os.listdir": os.listdir,
        "torch.UntypedStorage._share_cuda_": torch.UntypedStorage._share_cuda_,
        "torch.cuda.ipc_collect": cuda.ipc_collect, "torch.cuda.mem_get_info": cuda.mem_get_info,
    }
    for attr in ("cpu", "to", "contiguous", "view", "reshape", "numpy", "clone", "copy_", "fill_", "zero_",
                 "detach", "__eq__", "__ne__", "__sub__", "abs", "isnan", "data_ptr", "numel", "tolist", "equal",
                 "untyped_storage", "stride", "storage_offset"):
        named[f"torch.Tensor.{attr}"] = getattr(t, attr)
    named["torch.Tensor.__torch_function__"] = t.__dict__.get("__torch_function__", t.__torch_function__)
    return named


def _module_functions() -> dict[str, object]:
    """Every function and class defined in the harness's own tool modules, and their methods."""
    found: dict[str, object] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(_WATCHED_MODULE_PREFIX) or not isinstance(module, types.ModuleType):
            continue
        found[f"sys.modules[{name}]"] = module
        for attr, value in list(vars(module).items()):
            if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == name:
                found[f"{name}:{attr}"] = value
                if isinstance(value, type):
                    for meth, fn in vars(value).items():
                        if isinstance(fn, types.FunctionType):
                            found[f"{name}:{attr}.{meth}"] = fn
    return found


def _resolve(key: str) -> object:
    """The object a module-function key names right now (whatever replaced it)."""
    if key.startswith("sys.modules["):
        return sys.modules.get(key[len("sys.modules["):-1], _MISSING)
    module_name, _, path = key.partition(":")
    obj: object = sys.modules.get(module_name, _MISSING)
    for part in path.split("."):
        obj = vars(obj).get(part, _MISSING) if hasattr(obj, "__dict__") else _MISSING
    return obj


_MISSING = object()


@dataclass
class HarnessGuard:
    """Identity snapshot of harness functions; `changed()` lists what differs now."""

    snapshot: dict[str, int]
    objects: dict[str, object]  # keep the originals alive so ids stay unique

    @classmethod
    def capture(cls) -> HarnessGuard:
        objects = {**_targets(), **_module_functions()}
        return cls({k: id(v) for k, v in objects.items()}, objects)

    def changed(self) -> list[str]:
        targets = _targets()
        moved = []
        for key, obj_id in self.snapshot.items():
            now = targets.get(key, _MISSING) if key in targets else _resolve(key)
            if now is _MISSING or id(now) != obj_id:
                moved.append(key.replace(":", "."))
        return sorted(moved)


def plain_tensor_problem(value: object) -> str | None:
    """Outputs must be plain tensors: a subclass could fake comparisons or exports."""
    if type(value) is not torch.Tensor:
        return f"output is a {type(value).__module__}.{type(value).__qualname__}, not a plain torch.Tensor"
    return None
