"""fast_load_inline: torch.utils.cpp_extension.load_inline's signature, a fraction of its build time.

A build goes down a ladder and records the rung it stopped on:

1. "light": the shim headers (headers.py) stand in for torch/extension.h; the
   .cu and the trampoline unit compile in parallel. About 5-10x faster than stock.
2. "full": the light build failed (the candidate uses an API the shim lacks), so
   the same sources are rebuilt with torch's real headers and our bindings. A
   marker remembers the failure, so a rebuild of the same sources goes straight
   to the (cached) full build. If this fails too, its CompileError is raised.
   Exception: when every light error is plainly syntactic (`expected a ";"`),
   more headers cannot help, and the light CompileError is raised at once
   instead of paying for a full-header build that fails the same way.
3. "stock": a function's signature has a type our trampolines cannot convert
   (KW_UNSUPPORTED_SIGNATURE), or the request is of a kind we do not handle
   (no `functions`, is_python_module=False, SYCL): stock load_inline builds it.
"""

from __future__ import annotations

import ctypes
import json
import re
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from torch.utils.cpp_extension import load_inline as _stock_load_inline

from kernelwright.tools.compile.inline.bridge import Bridge, load_bridge
from kernelwright.tools.compile.inline.headers import HeaderDirs, TorchPaths, prepare_header_dirs, torch_paths
from kernelwright.tools.compile.inline.sources import InlineSpec, build_options, build_sources
from kernelwright.tools.compile.nvcc import BuildSettings, CompileResult, NvccCompiler
from kernelwright.tools.compile.raw_kernel import target_arch
from kernelwright.tools.errors import CompileError, LoadError

log = structlog.get_logger(__name__)

BuildPath = Literal["light", "full", "stock"]
_UNSUPPORTED = "KW_UNSUPPORTED_SIGNATURE"
INLINE_TIMEOUT_S = 600.0  # nvcc's limit per inline build unless BuildSettings.timeout_s says otherwise


@dataclass(frozen=True, slots=True)
class InlineBuildInfo:
    """How a fast_load_inline module was built (exposed as `module.build_info`)."""

    name: str
    path: BuildPath
    artifact: str
    cache_hit: bool
    total_s: float  # whole fast_load_inline call: headers, bridge, compile, dlopen
    compile_s: float  # nvcc time of the rung that produced the artifact (0 on a cache hit)
    light_error: str | None = None  # first error of the failed light attempt, if any
    reason: str | None = None  # why the build left the light path
    bridge_build_s: float = 0.0

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class InlineBuild:
    """A built (not yet loaded) inline extension: which rung produced it and the nvcc result."""

    path: Literal["light", "full"]
    result: CompileResult
    light_error: str | None = None
    reason: str | None = None


class InlineModule(types.ModuleType):
    """What fast_load_inline returns: a module whose attributes are the bound functions."""

    build_info: InlineBuildInfo

    def __repr__(self) -> str:
        return f"<kernelwright inline module {self.__name__!r} ({self.build_info.path}) from {self.__file__!r}>"


def fast_load_inline(name: str, cpp_sources: str | Sequence[str], cuda_sources: str | Sequence[str] | None = None,
                     functions: str | Sequence[str] | Mapping[str, str] | None = None,
                     extra_cflags: Sequence[str] | None = None, extra_cuda_cflags: Sequence[str] | None = None,
                     extra_ldflags: Sequence[str] | None = None, extra_include_paths: Sequence[str] | None = None,
                     build_directory: str | None = None, verbose: bool = False, with_cuda: bool | None = None,
                     is_python_module: bool = True, with_pytorch_error_handling: bool = True,
                     keep_intermediates: bool = True, use_pch: bool = False, *,
                     compiler: NvccCompiler | None = None, **ignored: Any) -> Any:
    """Drop-in for torch.utils.cpp_extension.load_inline (same arguments, same module-like result).

    Raises CompileError (diagnostics of the full-header attempt), ToolTimeout, ToolUnavailable
    or LoadError. Extra keyword `compiler` picks the NvccCompiler (and so the cache dir).
    `with_pytorch_error_handling`, `keep_intermediates` and `use_pch` are accepted and have
    no effect: C++ exceptions are always translated as torch does, and builds are cached by content.
    """
    stock_args = dict(name=name, cpp_sources=cpp_sources, cuda_sources=cuda_sources, functions=functions,
                      extra_cflags=extra_cflags, extra_cuda_cflags=extra_cuda_cflags, extra_ldflags=extra_ldflags,
                      extra_include_paths=extra_include_paths, build_directory=build_directory, verbose=verbose,
                      with_cuda=with_cuda, is_python_module=is_python_module,
                      with_pytorch_error_handling=with_pytorch_error_handling,
                      keep_intermediates=keep_intermediates, use_pch=use_pch, **ignored)
    unhandled = _unhandled_reason(functions, is_python_module, ignored)
    if unhandled:
        log.info("inline.delegated_to_stock", module=name, reason=unhandled)
        return _stock_load_inline(**stock_args)
    spec = InlineSpec.from_load_inline_args(
        name, cpp_sources, cuda_sources, functions, extra_cflags=extra_cflags, extra_cuda_cflags=extra_cuda_cflags,
        extra_ldflags=extra_ldflags, extra_include_paths=extra_include_paths, with_cuda=with_cuda,
        no_implicit_headers=bool(ignored.get("no_implicit_headers", False)))
    builder = InlineBuilder(compiler or NvccCompiler())
    return builder.load(spec, build_directory=build_directory, verbose=verbose,
                        stock=lambda: _stock_load_inline(**stock_args))


class InlineBuilder:
    """Builds and loads inline candidates with one compiler (and so one cache dir)."""

    def __init__(self, compiler: NvccCompiler, *, arch: str | None = None, timeout_s: float | None = None):
        self.compiler = compiler
        self.arch = arch or target_arch()
        self.timeout_s = timeout_s or BuildSettings.from_env().timeout_s or INLINE_TIMEOUT_S
        self.paths: TorchPaths = torch_paths()
        self.headers: HeaderDirs = prepare_header_dirs(compiler.cache_dir, self.paths)

    def bridge(self) -> Bridge:
        return load_bridge(self.compiler, self.paths, self.headers, self.arch)

    def load(self, spec: InlineSpec, *, build_directory: str | None = None, verbose: bool = False,
             stock: Callable[[], Any] | None = None) -> Any:
        started = time.perf_counter()
        bridge = self.bridge()
        built = self.build(spec)
        if built is None:
            if stock is None:
                raise LoadError("a function signature needs stock load_inline, and none was given",
                                where=f"inline module {spec.name}")
            log.info("inline.delegated_to_stock", module=spec.name, reason="unsupported signature")
            return stock()
        result = built.result
        module = self._bind(spec, result, bridge)
        module.build_info = InlineBuildInfo(
            name=spec.name, path=built.path, artifact=str(result.artifact), cache_hit=result.cache_hit,
            total_s=time.perf_counter() - started, compile_s=0.0 if result.cache_hit else result.duration_s,
            light_error=built.light_error, reason=built.reason,
            bridge_build_s=0.0 if bridge.cache_hit else bridge.build_s)
        if build_directory:
            _write_build_directory(Path(build_directory), build_sources(spec, self.paths.identity), module.build_info)
        (log.info if verbose else log.debug)("inline.loaded", **module.build_info.to_dict())
        return module

    # -- the ladder -------------------------------------------------------------
    def build(self, spec: InlineSpec) -> InlineBuild | None:
        """Compile without loading (light, else full); None means only stock load_inline can bind it."""
        sources = build_sources(spec, self.paths.identity)
        light = build_options(spec, "light", arch=self.arch, headers=self.headers, paths=self.paths,
                              timeout_s=self.timeout_s)
        full = build_options(spec, "full", arch=self.arch, headers=self.headers, paths=self.paths,
                             timeout_s=self.timeout_s)
        marker = self._marker(self.compiler.cache_key(sources, light))
        remembered = _read_marker(marker)
        if remembered.get("path") == "stock":
            return None
        light_error: str | None = remembered.get("light_error")
        reason: str | None = remembered.get("reason")
        if not remembered:
            try:
                result = self.compiler.compile(sources, light, artifact_name=spec.name)
                return InlineBuild("light", result)
            except CompileError as exc:
                light_error, reason = _first_error(exc), "light headers insufficient"
                if _UNSUPPORTED in exc.stderr:
                    _write_marker(marker, {"path": "stock", "light_error": light_error})
                    return None
                if syntax_only(exc):
                    log.info("inline.syntax_error", module=spec.name, error=light_error)
                    raise  # torch's real headers cannot fix a syntax error; skip the slow full rung
                self._warn_if_shim_broke(spec, exc)
                log.info("inline.light_failed", module=spec.name, error=light_error)
        try:
            result = self.compiler.compile(sources, full, artifact_name=spec.name)
        except CompileError as exc:
            if _UNSUPPORTED in exc.stderr:
                _write_marker(marker, {"path": "stock", "light_error": light_error})
                return None
            raise
        _write_marker(marker, {"path": "full", "light_error": light_error, "reason": reason})
        return InlineBuild("full", result, light_error, reason)

    def _bind(self, spec: InlineSpec, result: CompileResult, bridge: Bridge) -> InlineModule:
        try:
            library = ctypes.CDLL(str(result.artifact), mode=ctypes.RTLD_LOCAL)
        except OSError as exc:
            raise LoadError(f"cannot load the built extension: {exc}", where=str(result.artifact)) from exc
        module = InlineModule(spec.name)
        module.__file__ = str(result.artifact)
        module._library = library  # type: ignore[attr-defined]  # keeps the .so mapped
        for index, (fname, doc) in enumerate(spec.functions):
            symbol = spec.trampoline_symbol(index)
            try:
                address = ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
            except AttributeError:
                raise LoadError(f"trampoline {symbol} missing from the built extension", where=str(result.artifact)) from None
            setattr(module, fname.split("::")[-1], bridge.make_function(fname, int(address or 0), library, doc))
        return module

    def _marker(self, light_key: str) -> Path:
        return self.compiler.cache_dir / "inline-ladder" / light_key[:2] / f"{light_key}.json"

    def _warn_if_shim_broke(self, spec: InlineSpec, exc: CompileError) -> None:
        """An error inside the shim itself means the shim does not fit this torch: say so loudly."""
        shim = str(self.headers.shim)
        if any(d.severity == "error" and d.file and d.file.startswith(shim) for d in exc.diagnostics):
            log.warning("inline.shim_error", module=spec.name, torch=self.paths.version, error=_first_error(exc))


def _unhandled_reason(functions: object, is_python_module: bool, ignored: Mapping[str, Any]) -> str | None:
    if not functions:
        return "no functions listed (the sources bind themselves with pybind11)"
    if not is_python_module:
        return "is_python_module=False"
    if ignored.get("sycl_sources") or ignored.get("with_sycl"):
        return "SYCL sources"
    return None


# Errors that more declarations cannot fix. Anything naming a missing identifier, member,
# type or overload (what the light shim can cause) is not here.
_SYNTAX = re.compile(r"^(expected (a|an) |expected '[^']+' before |unrecognized token|missing closing quote|"
                     r"unterminated |missing terminating|stray )")
_HEADER_HINT = re.compile(r"undefined|not declared|has no member|does not name a type|no instance of|incomplete type|"
                          r"no matching|not a (class|namespace|template)|no suitable|cannot open source file|"
                          r"no such file|storage class or type specifier|explicit type is missing")


def syntax_only(exc: CompileError) -> bool:
    """True when every error is plainly syntactic (so the full-header rung would fail the same way)."""
    errors = [d for d in exc.diagnostics if d.severity == "error" and d.source in ("nvcc", "host")]
    if not errors or len(errors) != sum(d.severity == "error" for d in exc.diagnostics):
        return False
    return all(_SYNTAX.match(d.message) and not _HEADER_HINT.search(d.message) for d in errors)


def _first_error(exc: CompileError) -> str:
    for diag in exc.diagnostics:
        if diag.severity == "error":
            return diag.render().splitlines()[0]
    return exc.message


def _read_marker(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_marker(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _write_build_directory(directory: Path, sources: Mapping[str, str], info: InlineBuildInfo) -> None:
    """Mirror stock's build dir for inspection: the generated sources and where the artifact is."""
    directory.mkdir(parents=True, exist_ok=True)
    for fname, text in sources.items():
        (directory / fname).write_text(text)
    (directory / "kernelwright_build.json").write_text(json.dumps(info.to_dict(), indent=2))
