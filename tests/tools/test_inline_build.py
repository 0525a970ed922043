"""fast load_inline: shim builds, the full-header fallback, diagnostics, the bridge called for real.

The CUDA candidates only compile here (a CPU-only torch cannot load them); the
C++-only candidates are built, loaded and called, which exercises the bridge and
the trampolines end to end. One session cache: the bridge is built once.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kernelwright.tools.compile.inline import (
    InlineBuilder,
    fast_load_inline,
    fast_load_inline_installed,
    install_fast_load_inline,
    uninstall_fast_load_inline,
)
from kernelwright.tools.compile.inline.headers import strip_includes
from kernelwright.tools.compile.inline.loader import syntax_only
from kernelwright.tools.compile.inline.sources import InlineSpec, build_sources, link_flags
from kernelwright.tools.compile.nvcc import NvccCompiler
from kernelwright.tools.errors import CompileError

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH")

TYPICAL_CUDA = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

__global__ void relu_kernel(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

torch::Tensor relu_cuda(torch::Tensor x) {
  TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
  const at::cuda::OptionalCUDAGuard device_guard(device_of(x));
  auto y = torch::empty_like(x);
  int n = x.numel();
  const int threads = 256, blocks = (n + threads - 1) / threads;
  relu_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(x.data_ptr<float>(), y.data_ptr<float>(), n);
  return y;
}

torch::Tensor scale_cuda(torch::Tensor x, double a) {
  auto y = torch::zeros({x.numel()}, x.options().dtype(torch::kFloat32));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scale_cuda", ([&] { y.copy_(x * a); }));
  return y;
}
"""
TYPICAL_CPP = "torch::Tensor relu_cuda(torch::Tensor x);\ntorch::Tensor scale_cuda(torch::Tensor x, double a);"

CPU_CPP = r"""
#include <tuple>
#include <vector>
torch::Tensor add_one(torch::Tensor x) { return x + 1; }
torch::Tensor affine(const torch::Tensor& x, double a, int64_t b, bool negate) {
  auto y = x * a + b;
  return negate ? -y : y;
}
std::tuple<torch::Tensor, torch::Tensor> reshape_and_sum(torch::Tensor x, std::vector<int64_t> shape) {
  return {x.reshape(shape), x.sum()};
}
std::vector<torch::Tensor> split_halves(torch::Tensor x, int dim) {
  auto n = x.size(dim) / 2;
  return {x.narrow(dim, 0, n), x.narrow(dim, n, x.size(dim) - n)};
}
int64_t count(at::IntArrayRef sizes) { int64_t p = 1; for (auto s : sizes) p *= s; return p; }
double mean_of(std::vector<double> xs) { double s = 0; for (double x : xs) s += x; return xs.empty() ? 0 : s / xs.size(); }
void fill_(torch::Tensor x, float v) { x.fill_(v); }
torch::Tensor or_zeros(c10::optional<torch::Tensor> x, at::IntArrayRef sz) { return x.has_value() ? *x : torch::zeros(sz); }
torch::Tensor stack_all(std::vector<torch::Tensor> xs) { return torch::stack(xs); }
torch::Tensor identity(torch::Tensor x) { return x; }
torch::Tensor must_be_2d(torch::Tensor x) { TORCH_CHECK(x.dim() == 2, "expected 2 dims, got ", x.dim()); return x; }
torch::Tensor bad_index(torch::Tensor x, int64_t i) { TORCH_CHECK_INDEX(i < x.size(0), "index ", i, " out of range"); return x[i]; }
"""
CPU_FUNCS = ["add_one", "affine", "reshape_and_sum", "split_halves", "count", "mean_of", "fill_", "or_zeros",
             "stack_all", "identity", "must_be_2d", "bad_index"]


@pytest.fixture(scope="module")
def compiler(tmp_path_factory: pytest.TempPathFactory) -> NvccCompiler:
    return NvccCompiler(cache_dir=tmp_path_factory.mktemp("kw-inline-cache"))


@pytest.fixture(scope="module")
def cpu_module(compiler: NvccCompiler):
    return fast_load_inline("kw_cpu_ops", CPU_CPP, functions=CPU_FUNCS, with_cuda=False, compiler=compiler)


# ---- pure Python: no compiler needed -------------------------------------------------------------
def test_sources_mirror_stock_layout_and_keep_user_line_numbers() -> None:
    spec = InlineSpec.from_load_inline_args("m", TYPICAL_CPP, TYPICAL_CUDA, {"relu_cuda": "doc", "scale_cuda": "d"})
    sources = build_sources(spec, "torch X")
    assert set(sources) == {"main.cpp", "cuda.cu"}
    cu = sources["cuda.cu"].splitlines()
    assert "#include <torch/types.h>" in cu and "#include <cuda_runtime.h>" in cu
    first_user = cu.index('#line 1 "cuda.cu"') + 1
    assert cu[first_user:first_user + len(TYPICAL_CUDA.splitlines())] == TYPICAL_CUDA.splitlines()
    main = sources["main.cpp"]
    assert main.index("#include <torch/extension.h>") < main.index('#line 1 "main.cpp"') < main.index("relu_cuda(")
    assert "kw_inline_fn_0_relu_cuda" in main and "kw_inline::invoke(&scale_cuda" in main


def test_flags_follow_stock_semantics() -> None:
    spec = InlineSpec.from_load_inline_args("m", "", None, ["f"], extra_ldflags=["-lcublas", "-Wl,-rpath,/x", "-fopenmp"],
                                            with_cuda=False)
    flags = link_flags(spec, _fake_paths())
    assert "-lcublas" in flags and ["-Xlinker", "-rpath,/x"] == flags[flags.index("-rpath,/x") - 1:flags.index("-rpath,/x") + 1]
    assert "--cudart=none" in flags and ["-Xcompiler", "-fopenmp"] == flags[-2:]
    assert spec.with_cuda is False
    assert InlineSpec.from_load_inline_args("m", "", "x", ["f"]).with_cuda is True


def test_strip_includes_keeps_lines_and_light_headers() -> None:
    text = "#pragma once\n#include <ATen/Context.h>\n#include <ATen/core/Tensor.h>\n#include <ATen/ops/add_ops.h>\nint x;\n"
    out = strip_includes(text).splitlines()
    assert len(out) == 5 and out[1].startswith("// kw-dropped") and out[2] == "#include <ATen/core/Tensor.h>"
    assert strip_includes(text, ("ATen/Context.h",)).splitlines()[3] == "#include <ATen/ops/add_ops.h>"


def test_syntax_only_classifier() -> None:
    from kernelwright.tools.compile.diagnostics import Diagnostic

    def err(message: str) -> CompileError:
        return CompileError("x", returncode=1, stderr="", diagnostics=(Diagnostic("error", message, "cuda.cu", 3),))

    assert syntax_only(err('expected a ";"'))
    assert not syntax_only(err('identifier "device_of" is undefined'))
    assert not syntax_only(err("'einsum' is not a member of 'torch'"))


def test_install_and_restore_load_inline(compiler: NvccCompiler) -> None:
    import torch.utils.cpp_extension as ext

    original = ext.load_inline
    with fast_load_inline_installed(compiler) as installation:
        assert ext.load_inline is installation.installed and ext.load_inline is not original
    assert ext.load_inline is original
    installation = install_fast_load_inline(compiler)
    uninstall_fast_load_inline(installation)
    assert ext.load_inline is original


# ---- nvcc: builds ----------------------------------------------------------------------------------
@pytest.mark.nvcc
@needs_nvcc
def test_typical_candidate_builds_light_and_exports_trampolines(compiler: NvccCompiler) -> None:
    builder = InlineBuilder(compiler)
    spec = InlineSpec.from_load_inline_args("kw_typical", TYPICAL_CPP, TYPICAL_CUDA, ["relu_cuda", "scale_cuda"],
                                            extra_cuda_cflags=["-O3", "-arch=sm_80"])
    started = time.perf_counter()
    built = builder.build(spec)
    cold_s = time.perf_counter() - started
    assert built is not None and built.path == "light", built
    nm = subprocess.run(["nm", "-D", "--defined-only", str(built.result.artifact)], capture_output=True, text=True,
                        check=True).stdout
    assert "kw_inline_fn_0_relu_cuda" in nm and "kw_inline_fn_1_scale_cuda" in nm
    assert "pybind11" not in nm and "PyInit" not in nm
    started = time.perf_counter()
    again = builder.build(spec)
    cached_s = time.perf_counter() - started
    assert again is not None and again.result.cache_hit and again.result.artifact == built.result.artifact
    assert cached_s < 0.5, cached_s
    sys.stderr.write(f"[inline] typical candidate: cold {cold_s:.2f}s, cached {cached_s * 1000:.1f}ms\n")


@pytest.mark.gpu
@pytest.mark.nvcc
@needs_nvcc
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_typical_candidate_runs_on_gpu(compiler: NvccCompiler) -> None:
    m = fast_load_inline("kw_typical", TYPICAL_CPP, TYPICAL_CUDA, ["relu_cuda", "scale_cuda"], compiler=compiler,
                         extra_cuda_cflags=["-O3", "-arch=sm_80"])
    x = torch.randn(10_000, device="cuda")
    torch.testing.assert_close(m.relu_cuda(x), torch.relu(x))
    torch.testing.assert_close(m.scale_cuda(x, 2.0), x * 2)
    with pytest.raises(RuntimeError, match="must be a CUDA tensor"):
        m.relu_cuda(x.cpu())


@pytest.mark.nvcc
@needs_nvcc
def test_syntax_error_points_at_the_users_line(compiler: NvccCompiler) -> None:
    bad = TYPICAL_CUDA.replace("int n = x.numel();", "int n = x.numel() +;")
    line = bad.splitlines().index("  int n = x.numel() +;") + 1
    with pytest.raises(CompileError) as info:
        fast_load_inline("kw_syntax", TYPICAL_CPP, bad, ["relu_cuda", "scale_cuda"], compiler=compiler)
    errors = [d for d in info.value.diagnostics if d.severity == "error"]
    assert errors and errors[0].file.endswith("cuda.cu") and errors[0].line == line, errors


# ---- nvcc: the bridge, called for real on CPU -----------------------------------------------------------
@pytest.mark.nvcc
@needs_nvcc
def test_cpu_candidate_calls_through_the_bridge(cpu_module) -> None:
    m = cpu_module
    assert m.build_info.path == "light"
    x = torch.arange(6, dtype=torch.float32)
    torch.testing.assert_close(m.add_one(x), x + 1)
    torch.testing.assert_close(m.affine(x, 2.5, 3, True), -(x * 2.5 + 3))
    torch.testing.assert_close(m.affine(x, 2, 0, False), x * 2)  # an int where a double is expected
    torch.testing.assert_close(m.affine(x, 1.0, True, 0), x + 1)  # bool as int, int as bool (as pybind11 does)
    shaped, total = m.reshape_and_sum(x, [2, 3])
    assert shaped.shape == (2, 3) and total.item() == 15.0
    assert isinstance(m.split_halves(x.view(2, 3), 1), list) and m.split_halves(x, 0)[1].tolist() == [3.0, 4.0, 5.0]
    assert m.count(torch.Size([2, 3, 4])) == 24 and m.count(()) == 1
    assert m.mean_of([1, 2.0, 3.5]) == pytest.approx(6.5 / 3) and m.mean_of([]) == 0.0
    y = torch.zeros(3)
    assert m.fill_(y, 7.0) is None and y.tolist() == [7.0, 7.0, 7.0]
    assert m.or_zeros(None, [2, 2]).shape == (2, 2) and m.or_zeros(y, []) is not None
    assert m.stack_all([y, y + 1]).shape == (2, 3)


@pytest.mark.nvcc
@needs_nvcc
def test_bridge_errors_match_torch(cpu_module) -> None:
    m = cpu_module
    with pytest.raises(RuntimeError, match="expected 2 dims, got 1"):
        m.must_be_2d(torch.ones(3))
    with pytest.raises(IndexError, match="index 5 out of range"):
        m.bad_index(torch.ones(3), 5)
    with pytest.raises(TypeError, match="argument 2: expected float, got str"):
        m.affine(torch.ones(1), "a", 1, True)
    with pytest.raises(TypeError, match="takes 4 positional argument"):
        m.affine(torch.ones(1))
    with pytest.raises(TypeError, match="keyword"):
        m.add_one(x=torch.ones(1))
    with pytest.raises(TypeError, match="out of range"):
        m.split_halves(torch.ones(4), 2**40)


@pytest.mark.nvcc
@needs_nvcc
def test_bridge_keeps_lifetimes_and_leaks_nothing(cpu_module) -> None:
    m = cpu_module
    x = torch.ones(8)
    out = m.identity(x)
    assert out is x  # torch hands back the same Python object for the same tensor
    before = sys.getrefcount(x)
    for _ in range(1000):
        m.identity(x)
        m.reshape_and_sum(x, [2, 4])
    assert sys.getrefcount(x) == before
    fn = m.add_one
    del m
    gc.collect()
    assert fn(torch.zeros(2)).tolist() == [1.0, 1.0]  # the function keeps its library loaded
    kept = fn(torch.zeros(1))
    del fn
    gc.collect()
    assert kept.tolist() == [1.0]


@pytest.mark.nvcc
@needs_nvcc
def test_cached_reload_is_fast(compiler: NvccCompiler, cpu_module) -> None:
    started = time.perf_counter()
    again = fast_load_inline("kw_cpu_ops", CPU_CPP, functions=CPU_FUNCS, with_cuda=False, compiler=compiler)
    elapsed = time.perf_counter() - started
    assert again.build_info.cache_hit and elapsed < 0.5, elapsed


@pytest.mark.nvcc
@pytest.mark.slow
@needs_nvcc
def test_missing_api_falls_back_to_full_headers(compiler: NvccCompiler, tmp_path: Path) -> None:
    source = "torch::Tensor mm(torch::Tensor a, torch::Tensor b) { return torch::einsum(\"ij,jk->ik\", {a, b}); }"
    with fast_load_inline_installed(compiler):
        from torch.utils.cpp_extension import load_inline  # what a candidate does, inside the patch

        m = load_inline(name="kw_einsum", cpp_sources=source, functions=["mm"], build_directory=str(tmp_path))
    assert m.build_info.path == "full" and "einsum" in (m.build_info.light_error or "")
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    torch.testing.assert_close(m.mm(a, b), a @ b)
    assert (tmp_path / "main.cpp").is_file() and (tmp_path / "kernelwright_build.json").is_file()
    started = time.perf_counter()
    again = fast_load_inline("kw_einsum", source, functions=["mm"], compiler=compiler)
    assert again.build_info.path == "full" and again.build_info.cache_hit
    assert time.perf_counter() - started < 0.5  # the ladder marker skips the failing light rung


@pytest.mark.nvcc
@needs_nvcc
def test_unsupported_signature_is_handed_to_stock(compiler: NvccCompiler, tmp_path: Path) -> None:
    source = "torch::Tensor to_dtype(torch::Tensor x, at::ScalarType t) { return x.to(t); }"
    m = fast_load_inline("kw_dtype_arg", source, functions=["to_dtype"], compiler=compiler,
                         build_directory=str(tmp_path))
    assert not hasattr(m, "build_info")  # stock's own pybind11 module
    assert m.to_dtype(torch.ones(2), torch.float64).dtype == torch.float64


def _fake_paths():
    from kernelwright.tools.compile.inline.headers import TorchPaths

    return TorchPaths(version="x", include_dirs=("/t/include", "/t/include/api"), lib_dir="/t/lib",
                      python_include="/py", cxx11_abi=1, has_cuda_macros=False, has_cuda_libs=False)
