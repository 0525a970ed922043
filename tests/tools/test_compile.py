"""The nvcc tool with the real compiler: cache, parallel builds, diagnostics, timeouts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernelwright.tools.compile.diagnostics import parse_diagnostics, parse_resource_usage
from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions, arch_flags, arch_for_capability
from kernelwright.tools.errors import CompileError, ToolTimeout, ToolUnavailable

KERNEL = r"""
extern "C" __global__ void scale(float* x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a;
}
"""


@pytest.fixture()
def compiler(tmp_path: Path) -> NvccCompiler:
    return NvccCompiler(cache_dir=tmp_path / "cache", jobs=2)


@pytest.mark.nvcc
def test_builds_shared_library_then_hits_cache(compiler: NvccCompiler) -> None:
    cold = compiler.compile(KERNEL, NvccOptions(arch="sm_90a"))
    assert cold.artifact.exists() and not cold.cache_hit
    assert any(r.name == "scale" and r.registers for r in cold.resources)
    started = time.perf_counter()
    warm = compiler.compile(KERNEL, NvccOptions(arch="sm_90a"))
    assert warm.cache_hit and warm.artifact == cold.artifact
    assert time.perf_counter() - started < 0.5


@pytest.mark.nvcc
def test_cache_key_depends_on_flags_and_arch(compiler: NvccCompiler) -> None:
    a = compiler.cache_key({"k.cu": KERNEL}, NvccOptions(arch="sm_90a"))
    assert a != compiler.cache_key({"k.cu": KERNEL}, NvccOptions(arch="sm_80"))
    assert a != compiler.cache_key({"k.cu": KERNEL}, NvccOptions(arch="sm_90a", fast_math=True))
    assert a != compiler.cache_key({"k.cu": KERNEL + " "}, NvccOptions(arch="sm_90a"))
    assert a == compiler.cache_key({"k.cu": KERNEL}, NvccOptions(arch="sm_90a"))


@pytest.mark.nvcc
def test_compile_error_carries_located_diagnostics(compiler: NvccCompiler) -> None:
    source = "#include <cuda_runtime.h>\n__global__ void k(float* y) {\n  y[0] = not_declared;\n}\n"
    with pytest.raises(CompileError) as info:
        compiler.compile(source)
    err = info.value
    assert err.returncode != 0
    first = [d for d in err.diagnostics if d.severity == "error"][0]
    assert first.line == 3 and "not_declared" in first.message
    assert "not_declared" in err.to_dict()["diagnostics"][0]["message"]


@pytest.mark.nvcc
def test_compile_many_runs_in_parallel_and_returns_failures_in_place(compiler: NvccCompiler) -> None:
    good = [KERNEL.replace("scale", f"scale{i}") for i in range(3)]
    items = [(g, NvccOptions()) for g in good] + [("__global__ void k() { nope; }", NvccOptions())]
    results = compiler.compile_many(items)
    assert [type(r).__name__ for r in results] == ["CompileResult"] * 3 + ["CompileError"]


@pytest.mark.nvcc
def test_multi_file_build_links_one_library(compiler: NvccCompiler) -> None:
    sources = {
        "kernels.cu": KERNEL + 'extern "C" void launch(float* x, int n) { scale<<<(n + 255) / 256, 256>>>(x, 2.f, n); }\n',
        "host.cpp": 'extern "C" void launch(float* x, int n);\nextern "C" int entry(float* x) { launch(x, 4); return 0; }\n',
    }
    result = compiler.compile(sources)
    assert result.artifact.suffix == ".so" and result.artifact.stat().st_size > 0


@pytest.mark.nvcc
def test_timeout_kills_the_build(compiler: NvccCompiler) -> None:
    with pytest.raises(ToolTimeout):
        compiler.compile(KERNEL + "// timeout variant\n", NvccOptions(timeout_s=0.05))


def test_missing_nvcc_is_a_typed_error(tmp_path: Path) -> None:
    compiler = NvccCompiler(cache_dir=tmp_path, nvcc=None)
    compiler.nvcc = None
    with pytest.raises(ToolUnavailable):
        compiler.compile(KERNEL)


def test_arch_flags() -> None:
    assert arch_flags("sm_90a") == ["-gencode=arch=compute_90a,code=sm_90a"]
    assert arch_for_capability(9, 0) == "sm_90a" and arch_for_capability(8, 0) == "sm_80"
    with pytest.raises(CompileError):
        arch_flags("hopper")


def test_parse_diagnostics_of_every_tool() -> None:
    output = "\n".join([
        'k.cu(12): error #20: identifier "foo" is undefined',
        "      foo();",
        "      ^",
        "k.cu(3): warning #177-D: variable \"x\" was declared but never referenced",
        "host.cpp:7:5: error: expected ';' before '}' token",
        "ptxas error   : Entry function '_Z1kv' uses too much shared data (0x20000 bytes, 0xc000 max)",
        "/usr/bin/ld: k.o: in function `f': undefined reference to `g'",
        "nvcc fatal   : Unsupported gpu architecture 'compute_99'",
        "1 error detected in the compilation of \"k.cu\".",
    ])
    diags = parse_diagnostics(output)
    assert [(d.source, d.severity) for d in diags] == [
        ("nvcc", "error"), ("nvcc", "warning"), ("host", "error"), ("ptxas", "error"), ("linker", "error"), ("nvcc", "error")]
    assert diags[0].line == 12 and diags[0].code == "20" and "foo();" in diags[0].context
    assert diags[2].column == 5


def test_parse_resource_usage() -> None:
    text = "\n".join([
        "ptxas info    : Compiling entry function '_Z5scalePfi' for 'sm_90a'",
        "ptxas info    : Function properties for _Z5scalePfi",
        "    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads",
        "ptxas info    : Used 12 registers, used 0 barriers, 1024 bytes smem, 372 bytes cmem[0]",
    ])
    (res,) = parse_resource_usage(text)
    assert (res.name, res.registers, res.shared_bytes, res.spill_store_bytes, res.spill_load_bytes) == (
        "_Z5scalePfi", 12, 1024, 8, 4)
