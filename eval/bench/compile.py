"""Compile-time benchmark: raw form vs fast load_inline vs stock load_inline, on this machine.

    python -m kernelwright.eval.bench.compile --out bench.json

Cold means a fresh, empty cache (and, for stock, a fresh build directory).
Rows that cannot run here (stock's CUDA build on a CPU-only torch) are reported
as skipped with the reason. A second section times one call of a trivial
function through each binding (fast bridge, stock pybind11, ctypes + DLPack).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kernelwright.tools.compile.inline import InlineBuilder, fast_load_inline
from kernelwright.tools.compile.inline.sources import InlineSpec
from kernelwright.tools.compile.nvcc import NvccCompiler
from kernelwright.tools.compile.raw_kernel import load_cuda, target_arch

RAW_SOURCE = r"""
#include <cuda_runtime.h>
__global__ void relu_kernel(const float* x, float* y, long n) {
  long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
extern "C" int launch_relu(const float* x, float* y, long n, cudaStream_t s) {
  relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, y, n);
  return (int)cudaGetLastError();
}
"""

# A typical KernelBench-style candidate (what LLMs write).
INLINE_CUDA = r"""
#include <torch/extension.h>
#include <cuda_runtime.h>
#include <c10/cuda/CUDAStream.h>
__global__ void relu_kernel(const float* __restrict__ x, float* __restrict__ y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] > 0.f ? x[i] : 0.f;
}
torch::Tensor relu_cuda(torch::Tensor x) {
  TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "x must be float32");
  auto xc = x.contiguous();
  auto y = torch::empty_like(xc);
  int n = xc.numel();
  const int threads = 256;
  const int blocks = (n + threads - 1) / threads;
  relu_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(xc.data_ptr<float>(), y.data_ptr<float>(), n);
  return y;
}
"""
INLINE_CPP = "torch::Tensor relu_cuda(torch::Tensor x);"

CPU_CPP = r"""
torch::Tensor ident(torch::Tensor x) { return x; }
torch::Tensor add_one(torch::Tensor x) { return x + 1; }
"""


@dataclass(frozen=True, slots=True)
class BenchRow:
    form: str  # raw | fast_inline | stock_inline | fast_inline_cpu | stock_inline_cpu
    phase: str  # cold | cached | bridge_once | ...
    seconds: float | None
    skipped: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = None if self.seconds is None else round(self.seconds, 4)
        return out


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def bench_raw(root: Path) -> list[BenchRow]:
    """The raw form's own path (raw_kernel.load_cuda: compile, cache, dlopen, bind)."""
    compiler = NvccCompiler(cache_dir=root / "raw")
    launchers = {"launch_relu": "f32*, f32*, i64"}
    cold, _ = _timed(lambda: load_cuda(RAW_SOURCE, launchers, compiler=compiler))
    cached, _ = _timed(lambda: load_cuda(RAW_SOURCE, launchers, compiler=compiler))
    return [BenchRow("raw", "cold", cold), BenchRow("raw", "cached", cached)]


def bench_fast(root: Path, can_load: bool) -> tuple[list[BenchRow], Any]:
    compiler = NvccCompiler(cache_dir=root / "fast")
    builder = InlineBuilder(compiler)
    bridge_s, bridge = _timed(builder.bridge)
    rows = [BenchRow("fast_inline", "bridge_once", bridge_s, detail={"cache_hit": bridge.cache_hit})]
    kwargs: dict[str, Any] = dict(name=f"relu_{uuid.uuid4().hex[:8]}", cpp_sources=INLINE_CPP, cuda_sources=INLINE_CUDA,
                  functions=["relu_cuda"], extra_cuda_cflags=["-O3"])
    if can_load:
        for phase in ("cold", "cached"):
            seconds, module = _timed(lambda: fast_load_inline(**kwargs, compiler=compiler))
            rows.append(BenchRow("fast_inline", phase, seconds, detail=module.build_info.to_dict()))
        x = torch.randn(1 << 20, device="cuda")
        ok = bool(torch.equal(module.relu_cuda(x), torch.relu(x)))
        rows[-1].detail["correct"] = ok
        return rows, module
    spec = InlineSpec.from_load_inline_args(kwargs["name"], INLINE_CPP, INLINE_CUDA, ["relu_cuda"],
                                            extra_cuda_cflags=["-O3"])
    for phase in ("cold", "cached"):
        seconds, built = _timed(lambda: builder.build(spec))
        rows.append(BenchRow("fast_inline", phase, seconds,
                             detail={"path": built.path, "cache_hit": built.result.cache_hit,
                                     "note": "compile only: a CPU-only torch cannot load a CUDA extension"}))
    return rows, None


def bench_stock(root: Path) -> tuple[BenchRow, Any]:
    from torch.utils.cpp_extension import load_inline

    if not torch.cuda.is_available():
        return BenchRow("stock_inline", "cold", None,
                        skipped="torch.cuda is not available: stock load_inline cannot build a CUDA extension "
                                "against this CPU-only torch"), None
    build_dir = root / "stock"
    build_dir.mkdir(parents=True, exist_ok=True)
    seconds, module = _timed(lambda: load_inline(
        name=f"relu_stock_{uuid.uuid4().hex[:8]}", cpp_sources=INLINE_CPP, cuda_sources=INLINE_CUDA,
        functions=["relu_cuda"], extra_cuda_cflags=["-O3"], with_cuda=True, build_directory=str(build_dir)))
    x = torch.randn(1 << 20, device="cuda")
    ok = bool(torch.equal(module.relu_cuda(x), torch.relu(x)))
    return BenchRow("stock_inline", "cold", seconds, detail={"correct": ok}), module


def bench_cpu_candidate(root: Path) -> tuple[list[BenchRow], Any, Any]:
    """A C++-only candidate both loaders can build and load anywhere (also on a CPU-only torch)."""
    from torch.utils.cpp_extension import load_inline

    compiler = NvccCompiler(cache_dir=root / "fast")  # bridge already built by bench_fast
    rows: list[BenchRow] = []
    name = f"cpu_{uuid.uuid4().hex[:8]}"
    fast = None
    for phase in ("cold", "cached"):
        seconds, fast = _timed(lambda: fast_load_inline(name, CPU_CPP, functions=["ident", "add_one"],
                                                        with_cuda=False, compiler=compiler))
        rows.append(BenchRow("fast_inline_cpu", phase, seconds, detail=fast.build_info.to_dict()))
    build_dir = root / "stock_cpu"
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        seconds, stock = _timed(lambda: load_inline(f"{name}_stock", CPU_CPP, functions=["ident", "add_one"],
                                                    with_cuda=False, build_directory=str(build_dir)))
        rows.append(BenchRow("stock_inline_cpu", "cold", seconds))
    except Exception as exc:  # stock needs ninja and a host compiler; report, don't fail the bench
        stock = None
        rows.append(BenchRow("stock_inline_cpu", "cold", None, skipped=f"{type(exc).__name__}: {exc}"[:300]))
    return rows, fast, stock


def _per_call_us(fn: Callable[[], Any], calls: int, sync: Callable[[], Any] = lambda: None) -> float:
    for _ in range(200):
        fn()
    sync()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def bench_cuda_calls(fast: Any, stock: Any, *, calls: int = 20000) -> dict[str, float]:
    """Microseconds per call of relu_cuda on a small CUDA tensor (launch-bound), fast vs stock binding."""
    if fast is None or stock is None:
        return {}
    x = torch.randn(1024, device="cuda")
    sync = torch.cuda.synchronize
    return {"cuda_relu_fast_us": round(_per_call_us(lambda: fast.relu_cuda(x), calls, sync), 3),
            "cuda_relu_stock_us": round(_per_call_us(lambda: stock.relu_cuda(x), calls, sync), 3)}


def bench_call_overhead(fast: Any, stock: Any, *, calls: int = 20000) -> dict[str, float | str]:
    """Microseconds per call of `ident(x)` (returns its input) through each binding, CPU tensor."""
    x = torch.ones(4)
    out: dict[str, float | str] = {}

    def per_call(fn: Callable[[], Any]) -> float:
        return _per_call_us(fn, calls)

    out["fast_bridge_us"] = per_call(lambda: fast.ident(x))
    out["stock_pybind_us"] = per_call(lambda: stock.ident(x)) if stock is not None else "skipped"
    # (b) ctypes + DLPack, lower bound: export, one ctypes call, re-import. No candidate code at all.
    from torch.utils.dlpack import from_dlpack, to_dlpack

    libc = ctypes.CDLL(None)
    labs = libc.labs
    labs.restype, labs.argtypes = ctypes.c_long, [ctypes.c_long]
    out["ctypes_dlpack_lower_bound_us"] = per_call(lambda: from_dlpack(to_dlpack(x)) if labs(1) else None)
    out["python_noop_call_us"] = per_call(lambda: None)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def run_bench(workdir: Path | None = None) -> dict[str, Any]:
    root = Path(workdir or tempfile.mkdtemp(prefix="kw-bench-compile-"))
    can_load = torch.cuda.is_available()
    fast_rows, fast_cuda = bench_fast(root, can_load)
    stock_row, stock_cuda = bench_stock(root)
    rows = bench_raw(root) + fast_rows + [stock_row]
    cpu_rows, fast_cpu, stock_cpu = bench_cpu_candidate(root)
    rows += cpu_rows
    overhead = {**bench_call_overhead(fast_cpu, stock_cpu), **bench_cuda_calls(fast_cuda, stock_cuda)}
    report = {
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "python": platform.python_version(), "cuda_available": can_load,
                    "device": torch.cuda.get_device_name() if can_load else None, "arch": target_arch(),
                    "nvcc": NvccCompiler().version()},
        "rows": [r.to_dict() for r in rows],
        "call_overhead_us": overhead,
        "speedup_vs_stock": _speedups(rows),
    }
    if workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return report


def _speedups(rows: list[BenchRow]) -> dict[str, float]:
    def seconds(form: str, phase: str) -> float | None:
        return next((r.seconds for r in rows if r.form == form and r.phase == phase and r.seconds), None)

    out = {}
    for fast, stock in (("fast_inline", "stock_inline"), ("fast_inline_cpu", "stock_inline_cpu")):
        f, s = seconds(fast, "cold"), seconds(stock, "cold")
        if f and s:
            out[f"{fast}_cold"] = round(s / f, 2)
    return out


def render_table(report: dict[str, Any]) -> str:
    lines = [f"{'form':<18} {'phase':<12} {'seconds':>9}  note", "-" * 72]
    for row in report["rows"]:
        secs = "-" if row["seconds"] is None else f"{row['seconds']:.3f}"
        note = row["skipped"] or row["detail"].get("path", "") or ""
        lines.append(f"{row['form']:<18} {row['phase']:<12} {secs:>9}  {note}")
    lines.append("")
    lines.append("per-call overhead (us): " + ", ".join(f"{k}={v}" for k, v in report["call_overhead_us"].items()))
    if report["speedup_vs_stock"]:
        lines.append("cold speedup vs stock: " + ", ".join(f"{k}={v}x" for k, v in report["speedup_vs_stock"].items()))
    m = report["machine"]
    lines.append(f"machine: {m['cpus']} cpus, torch {m['torch']}, device {m['device']}, arch {m['arch']}, {m['nvcc']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep caches and build dirs here")
    args = parser.parse_args(argv)
    report = run_bench(args.workdir)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(render_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
