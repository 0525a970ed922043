"""The prebuilt Python bridge: compiled once per (torch, Python) into the nvcc cache, then imported.

Every fast-loaded candidate shares it: the candidate's own .so holds only
`extern "C"` trampolines and no Python or pybind11 code, so its build skips
both. The bridge links libtorch_python for THPVariable_Wrap/Unpack and torch's
own C++->Python exception translation.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from importlib import resources
from types import ModuleType

import structlog

from kernelwright.tools.compile.inline.headers import HeaderDirs, TorchPaths
from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions
from kernelwright.tools.errors import LoadError

log = structlog.get_logger(__name__)

BRIDGE_MODULE = "kernelwright_inline_bridge"  # must match PyInit_<name> in bridge.cpp
BRIDGE_ABI_VERSION = 1  # KW_INLINE_ABI_VERSION in kw_abi.h


@dataclass(frozen=True, slots=True)
class Bridge:
    """The imported bridge module and how it was obtained."""

    module: ModuleType
    artifact: str
    cache_hit: bool
    build_s: float

    def make_function(self, name: str, address: int, owner: object, doc: str) -> object:
        return self.module.make_function(name, address, owner, doc)


def bridge_options(paths: TorchPaths, headers: HeaderDirs, arch: str) -> NvccOptions:
    return NvccOptions(
        arch=arch, opt_level=2, std="c++17",
        extra_flags=(
            *(arg for inc in paths.include_dirs for arg in ("-isystem", inc)),
            "-isystem", paths.python_include, f"-D_GLIBCXX_USE_CXX11_ABI={paths.cxx11_abi}",
        ),
        include_dirs=headers.full(),
        link_flags=(f"-L{paths.lib_dir}", "-ltorch_python", "-ltorch", "-ltorch_cpu", "-lc10",
                    "-Xlinker", f"-rpath,{paths.lib_dir}", "--cudart=none"),
        output="shared", resource_usage=False, timeout_s=600.0,
    )


def load_bridge(compiler: NvccCompiler, paths: TorchPaths, headers: HeaderDirs, arch: str) -> Bridge:
    """Build (first time; ~10-40 s) or fetch from the cache, then import. Raises CompileError or LoadError."""
    source = resources.files("kernelwright.tools.compile.inline").joinpath("bridge.cpp").read_text()
    source = f"// {paths.identity}\n" + source
    result = compiler.compile({"kw_bridge.cpp": source}, bridge_options(paths, headers, arch),
                              artifact_name=BRIDGE_MODULE)
    if not result.cache_hit:
        log.info("inline.bridge_built", artifact=str(result.artifact), seconds=round(result.duration_s, 2))
    module = _import_extension(str(result.artifact))
    version = module.abi_version()
    if version != BRIDGE_ABI_VERSION:
        raise LoadError(f"inline bridge speaks ABI {version}, loader expects {BRIDGE_ABI_VERSION}",
                        where=str(result.artifact))
    return Bridge(module, str(result.artifact), result.cache_hit, result.duration_s)


def _import_extension(path: str) -> ModuleType:
    # Python's import system is the one place a process keeps loaded extensions;
    # reuse the module if this very file was imported before.
    existing = sys.modules.get(BRIDGE_MODULE)
    if existing is not None and getattr(existing, "__file__", None) == path:
        return existing
    loader = importlib.machinery.ExtensionFileLoader(BRIDGE_MODULE, path)
    spec = importlib.util.spec_from_file_location(BRIDGE_MODULE, path, loader=loader)
    if spec is None:
        raise LoadError("cannot make an import spec for the inline bridge", where=path)
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as exc:
        raise LoadError(f"cannot import the inline bridge: {exc}", where=path) from exc
    sys.modules[BRIDGE_MODULE] = module
    return module
