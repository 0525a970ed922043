"""Split reductions' VEC tunable (agents/offline/codegen_reduce.py `_split`): the part kernel reads the prologue's
in-order operands four elements at a time (one 16-byte load each for fp32, two in flight), instead of one element
per load. KernelBench's losses (full reductions of two 4 GB operands) ran at 1.25x-1.44x of the DRAM floor with
scalar loads, torch.compile 1.3x-1.6x faster. Off by default, the first tunable of its step (the fill tries it);
offered only where a load walks its buffer in order with a 4-aligned offset and rows are a multiple of 4 long; the
launcher falls back to scalar loads for a misaligned pointer. The loop's coverage is checked in host C++, the kernels
compile with nvcc for sm_90a on CPU, and on a GPU the real harness verifies them beside the defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_reduce import VEC_WIDTH, _vector_loop, split_vector_loads
from kernelwright.agents.offline.ir import ReductionStep
from kernelwright.agents.offline.propose import plans_for, trace_all, tuning_target
from kernelwright.tools.compile.nvcc import NvccCompiler
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from support.offline import FIXTURES, build_options_of, cuda_of

LOSSES = FIXTURES / "offline" / "losses.py"
VECTOR_OFFSETS = FIXTURES / "offline" / "vector_offsets.py"


def _rendered(problem: Path) -> tuple[str, str, list[str]]:
    """The fused plan at its defaults, and with every VEC tunable on; the VEC tunables' names."""
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    defaults = target.space.defaults()
    vec = [name for name in defaults if name.endswith(".VEC") and name.split(".")[0] in _split_steps(problem)]
    return target.render(defaults), target.render({**defaults, **{name: VEC_WIDTH for name in vec}}), vec


def _split_steps(problem: Path) -> set[str]:
    plan = plans_for(trace_all(problem))["fused"][0]
    return {s.name for s in plan.steps if isinstance(s, ReductionStep) and split_vector_loads(s)}


def test_split_reductions_with_in_order_loads_offer_vec_first_and_off() -> None:
    target = tuning_target(trace_all(LOSSES), "fused")
    assert target is not None
    plan = plans_for(trace_all(LOSSES))["fused"][0]
    reductions = [s for s in plan.steps if isinstance(s, ReductionStep)]
    names = [d.name for d in target.space.dims]
    offered = {n.split(".")[0] for n in names if n.endswith(".VEC") and n.split(".")[0] in {s.name for s in reductions}}
    assert offered and offered == _split_steps(LOSSES)  # mse, smooth L1, cosine, KL, huber, hinge: split with VEC
    for step in offered:
        assert names.index(f"{step}.VEC") + 1 == names.index(f"{step}.SPLIT")  # before its SPLIT: moved up first
        assert target.space.defaults()[f"{step}.VEC"] == 1
    assert not [s for s in reductions if s.is_normalisation and split_vector_loads(s)]  # softmaxes re-read rows


def test_one_buffer_read_at_two_offsets_gets_a_vector_for_each() -> None:
    """x.chunk(2, dim=0)'s halves are one buffer at offsets 0 and n: the elementwise kernel's vector path loads each
    into its own register (cuda_common.vector_name, which the split reduction's vector prologue names its loads by
    too; before it, both reads took the second half). The product's sum is a split reduction with VEC offered."""
    target = tuning_target(trace_all(VECTOR_OFFSETS), "fused")
    assert target is not None
    defaults = target.space.defaults()
    source = cuda_of(target.render({**defaults, **{n: VEC_WIDTH for n in defaults if n.endswith(".VEC")}}))
    assert re.search(r"in_b0 = \*reinterpret_cast<[^;]*>\(p\.b0 \+ base \+ \(int\)0\);", source), source
    assert re.search(r"in_b0_65536 = \*reinterpret_cast<[^;]*>\(p\.b0 \+ base \+ \(int\)65536\);", source)
    assert "kw_cvt(in_b0.v[j])" in source and "kw_cvt(in_b0_65536.v[j])" in source
    assert len(re.findall(r"_pro4\(const P_\w+&", source)) == 1  # the sum's split, vectorised


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")
@pytest.mark.parametrize("reduce, chunk, tpr", [(4096, 1024, 32), (40000, 4448, 64), (64, 8, 4), (16, 16, 8),
                                                 (400, 36, 2)])
def test_the_vector_loop_pushes_every_element_of_each_chunk_once_in_order(tmp_path: Path, reduce: int, chunk: int,
                                                                           tpr: int) -> None:
    """_vector_loop's text with a prologue that returns each element's own linear index, run in host C++ for two
    rows, every part (chunks of `chunk`, a multiple of 4) and every thread: each thread pushes its elements in
    increasing order, each element's value is its index, and every element of every row is pushed once."""
    loop = _vector_loop(reduce, "long long", "long long", "t", tpr, "v")
    program = tmp_path / "loop.cpp"
    program.write_text(f"""#include <cstdio>
#include <vector>
struct {{ unsigned x; }} threadIdx;
struct P {{}};
static void kw_t_pro4(const P&, long long base, long long out[4]) {{ for (int j = 0; j < 4; ++j) out[j] = base + j; }}
struct Acc {{
    long long last = -1; bool ordered = true; std::vector<long long> got;
    void push(long long v, long long r) {{ if (r <= last) ordered = false; last = r; got.push_back(v); }}
}};
int main() {{
    P p;
    std::vector<int> seen(2 * {reduce}, 0);
    bool ok = true;
    for (long long row = 0; row < 2; ++row)
        for (long long start = 0; start < {reduce}; start += {chunk})
            for (unsigned t = 0; t < {tpr}; ++t) {{
                threadIdx.x = t;
                long long stop = start + {chunk} < {reduce} ? start + {chunk} : {reduce};
                Acc a;
{loop.replace("#pragma unroll", "")}
                ok = ok && a.ordered;
                for (long long v : a.got) {{
                    if (v < row * {reduce} + start || v >= row * {reduce} + stop) ok = false;
                    else seen[v] += 1;
                }}
            }}
    for (int c : seen) if (c != 1) ok = false;
    std::printf(ok ? "ok" : "bad");
    return 0;
}}
""")
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "loop"), str(program)], check=True, capture_output=True)
    assert subprocess.run([str(tmp_path / "loop")], check=True, capture_output=True, text=True).stdout == "ok"


@pytest.mark.nvcc
def test_the_vector_kernels_compile_for_sm_90a(tmp_path: Path) -> None:
    default, vec, names = _rendered(LOSSES)
    assert names and "_part<true>" in vec and "_part<true>" not in default
    assert vec.count("_pro4(const P_") == len(names)  # one vector prologue per VEC step
    compiler = NvccCompiler(cache_dir=tmp_path / "cache", jobs=1)
    (result,) = compiler.compile_many([(cuda_of(vec) + _ERROR_HELPER, build_options_of(vec, "sm_90a"))])
    assert not isinstance(result, Exception), result
    assert result.artifact.exists()


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_vector_loads_and_times_them(tmp_path: Path, build_cache: Path) -> None:
    from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
    from kernelwright.tools.measure.timing import BenchSettings
    from kernelwright.tools.sandbox.pool import WorkerOptions

    default, vec, _ = _rendered(LOSSES)
    settings = EvalSettings(call_timeout_s=60.0, compile_baseline=False,
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))
    reports = {}
    with Evaluator(LOSSES, settings, WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})) as ev:
        for name, source in (("default", default), ("VEC", vec)):
            path = tmp_path / f"{name}.py"
            path.write_text(source)
            reports[name] = ev.evaluate(path)
            print(f"losses {name}: {reports[name].status} {reports[name].reason} {reports[name].speedup_vs_eager}")
    assert reports["VEC"].status == "passed", (reports["VEC"].reason, reports["VEC"].message)
