"""The raw candidate form: CUDA source plus a launcher spec, built without torch headers.

A candidate writes plain CUDA with `extern "C"` launcher functions that take
device pointers and scalars and end with a `cudaStream_t`; it declares each
launcher's parameters in a short spec string. nvcc builds it in about a second
(no torch headers) and ctypes calls it:

    lib = load_cuda(CUDA_SRC, {"launch_relu": "f32*, f32*, i64"})
    lib.launch_relu(x, y, x.numel())       # current stream appended; CUDA errors raise

Spec types: pointers f32* f16* bf16* f64* i64* i32* i16* i8* u8* bool* (a contiguous
CUDA tensor of that dtype), scalars i64 i32 f32 f64 bool.

A source that includes a header-only library names it, and the build gets its include path and flags
(tools.compile.header_libraries owns where they are):

    lib = load_cuda(CUDA_SRC, {"launch_gemm": "f32*, f32*, f32*, i64"}, headers=("cutlass",))
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from kernelwright.tools.compile.header_libraries import build_options
from kernelwright.tools.compile.nvcc import DEFAULT_ARCH, BuildSettings, NvccCompiler, NvccOptions, arch_for_capability
from kernelwright.tools.errors import LoadError

_POINTER_DTYPES: dict[str, torch.dtype] = {
    "f32*": torch.float32, "f16*": torch.float16, "bf16*": torch.bfloat16, "f64*": torch.float64,
    "i64*": torch.int64, "i32*": torch.int32, "i16*": torch.int16, "i8*": torch.int8, "u8*": torch.uint8,
    "bool*": torch.bool,
}
_SCALARS: dict[str, Any] = {
    "i64": ctypes.c_int64, "i32": ctypes.c_int32, "f32": ctypes.c_float, "f64": ctypes.c_double, "bool": ctypes.c_bool,
}
_ERROR_HELPER = '\n#include <cuda_runtime.h>\nextern "C" const char* kw_cuda_error_string(int e) { return cudaGetErrorString((cudaError_t)e); }\n'


def parse_spec(spec: str, *, where: str) -> tuple[str, ...]:
    kinds = tuple(p.strip().replace(" ", "") for p in spec.split(",") if p.strip())
    for kind in kinds:
        if kind not in _POINTER_DTYPES and kind not in _SCALARS:
            raise LoadError(f"unknown parameter type {kind!r} in launcher spec {spec!r}; "
                            f"use one of {sorted(_POINTER_DTYPES) + sorted(_SCALARS)}", where=where)
    return kinds


@dataclass(frozen=True, slots=True)
class Launcher:
    """One `extern "C"` launcher; calling it checks argument types and the returned CUDA error."""

    name: str
    kinds: tuple[str, ...]
    fn: Any
    error_string: Any

    def __call__(self, *args: Any) -> None:
        if len(args) != len(self.kinds):
            raise TypeError(f"{self.name} takes {len(self.kinds)} arguments ({', '.join(self.kinds)}), got {len(args)}")
        converted = [self._convert(i, kind, arg) for i, (kind, arg) in enumerate(zip(self.kinds, args))]
        device = next((a.device.index for a in args if isinstance(a, torch.Tensor)), None)
        code = self.fn(*converted, _current_stream(device))
        if code != 0:
            message = self.error_string(code).decode(errors="replace")
            raise RuntimeError(f"{self.name}: CUDA error {code}: {message}")

    def _convert(self, index: int, kind: str, arg: Any) -> Any:
        if kind in _POINTER_DTYPES:
            if not isinstance(arg, torch.Tensor):
                raise TypeError(f"{self.name} argument {index}: expected a tensor for {kind}, got {type(arg).__name__}")
            want = _POINTER_DTYPES[kind]
            if arg.dtype != want or not arg.is_cuda or not arg.is_contiguous():
                raise TypeError(f"{self.name} argument {index}: needs a contiguous CUDA {want} tensor, "
                                f"got {arg.dtype} on {arg.device} (contiguous={arg.is_contiguous()})")
            return ctypes.c_void_p(arg.data_ptr())
        return _SCALARS[kind](arg)


def _current_stream(device: int | None) -> int:
    """The current CUDA stream's raw handle. The private getter is what torch's own compiled code calls per
    launch (a few hundred ns); torch.cuda.current_stream() builds a Stream object (microseconds), which a
    short kernel's timing would include."""
    if _RAW_STREAM is not None:
        return _RAW_STREAM(torch.cuda.current_device() if device is None else device)
    return torch.cuda.current_stream(device).cuda_stream


_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)


class RawLibrary:
    """The loaded shared library with one attribute per declared launcher."""

    def __init__(self, path: Path, launchers: Mapping[str, tuple[str, ...]]):
        self.path = path
        self._cdll = ctypes.CDLL(str(path))
        err = self._cdll.kw_cuda_error_string
        err.restype, err.argtypes = ctypes.c_char_p, [ctypes.c_int]
        for name, kinds in launchers.items():
            try:
                fn = getattr(self._cdll, name)
            except AttributeError:
                raise LoadError(f"launcher {name!r} is not exported; declare it extern \"C\"", where=str(path)) from None
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p if k in _POINTER_DTYPES else _SCALARS[k] for k in kinds] + [ctypes.c_void_p]
            setattr(self, name, Launcher(name, kinds, fn, err))


def target_arch() -> str:
    """The arch to build for inside a worker: the harness's choice (BuildSettings.arch), else the visible GPU's."""
    if arch := BuildSettings.from_env().arch:
        return arch
    if torch.cuda.is_available():
        return arch_for_capability(*torch.cuda.get_device_capability())
    return DEFAULT_ARCH


def load_cuda(source: str, launchers: Mapping[str, str], *, extra_flags: tuple[str, ...] = (),
              compiler: NvccCompiler | None = None, headers: Sequence[str] = ()) -> RawLibrary:
    """Build `source` (cached by content) and bind its launchers. `headers` names the header-only libraries the
    source includes ("cutlass"). Raises CompileError, LoadError, or ToolUnavailable (a named library is missing)."""
    specs = {name: parse_spec(spec, where=f"launcher {name}") for name, spec in launchers.items()}
    compiler = compiler or NvccCompiler()
    try:
        include_dirs, library_flags = build_options(tuple(headers))
    except ValueError as exc:
        raise LoadError(str(exc), where="load_cuda headers") from None
    opts = NvccOptions(arch=target_arch(), extra_flags=library_flags + tuple(extra_flags), include_dirs=include_dirs)
    if timeout_s := BuildSettings.from_env().timeout_s:
        opts = replace(opts, timeout_s=timeout_s)
    result = compiler.compile(source + _ERROR_HELPER, opts)
    return RawLibrary(result.artifact, specs)
