"""Header-only libraries for candidate builds: CUTLASS's headers come from the nvidia-cutlass wheel, load_cuda
adds their include path and flags only when a source names them, and a missing or unknown library is a clear
typed error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kernelwright.tools.compile import header_libraries
from kernelwright.tools.compile.header_libraries import CUTLASS_NVCC_FLAGS, build_options, cutlass_include_dir
from kernelwright.tools.compile.raw_kernel import load_cuda
from kernelwright.tools.errors import CompileError, LoadError, ToolUnavailable


class _Capture:
    """A compiler that records the options it was asked to build with, then stops the load."""

    def __init__(self) -> None:
        self.opts: Any = None

    def compile(self, source: str, opts: Any) -> Any:
        self.opts = opts
        raise CompileError("stopped after capturing the options", returncode=1, stderr="")


def test_the_cutlass_headers_come_from_the_installed_wheel() -> None:
    include = cutlass_include_dir()
    assert (include / "cutlass" / "gemm" / "device" / "gemm_universal.h").is_file()
    assert (include / "cute" / "tensor.hpp").is_file()
    assert build_options(["cutlass", "cutlass"]) == ((str(include),), CUTLASS_NVCC_FLAGS)


def test_load_cuda_adds_a_named_librarys_include_path_and_flags_and_nothing_otherwise() -> None:
    with_cutlass, plain = _Capture(), _Capture()
    with pytest.raises(CompileError):
        load_cuda("// gemm", {}, headers=("cutlass",), compiler=with_cutlass)  # type: ignore[arg-type]
    with pytest.raises(CompileError):
        load_cuda("// relu", {}, extra_flags=("-DX=1",), compiler=plain)  # type: ignore[arg-type]
    assert with_cutlass.opts.include_dirs == (str(cutlass_include_dir()),)
    assert with_cutlass.opts.extra_flags == CUTLASS_NVCC_FLAGS
    # a source that names no library builds exactly as before (same options, so the same cache key)
    assert plain.opts.include_dirs == () and plain.opts.extra_flags == ("-DX=1",)


def test_an_unknown_library_is_a_load_error_naming_it() -> None:
    with pytest.raises(LoadError, match=r"unknown header library 'thrust'; known: cutlass"):
        load_cuda("// x", {}, headers=("thrust",), compiler=_Capture())  # type: ignore[arg-type]


def test_missing_cutlass_headers_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cutlass_include_dir.cache_clear()
    monkeypatch.setattr(header_libraries.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(ToolUnavailable, match=r"CUTLASS headers not found .*pip install nvidia-cutlass") as err:
            load_cuda("// gemm", {}, headers=("cutlass",), compiler=_Capture())  # type: ignore[arg-type]
        assert err.value.where == "cutlass headers"
    finally:
        monkeypatch.undo()
        cutlass_include_dir.cache_clear()
    assert cutlass_include_dir().is_dir()
