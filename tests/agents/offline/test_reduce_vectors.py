"""Reductions' VEC tunable (agents/offline/reduce_vectors.py, used by codegen_reduce): the loops that stream long rows
(split reductions and normalisations, uncached normalisation rows, long plain rows) read the prologue's in-order
operands four elements at a time (one 16-byte load each for fp32, two in flight), instead of one element per load.
KernelBench's losses and long-row normalisations ran at 1.25x-2.9x of the DRAM floor with scalar loads. Off by
default, the first tunable of its step, and one of the switches the fill turns on at once. On an H100 (session 19)
every VEC on was slower than the defaults on both fixtures here (losses 2.53x -> 1.35x over eager, long rows 1.36x ->
1.00x) while its write loops stored vectors element by element; with scalar write loops (session 20) it was faster
(1.38x -> 2.45x, 1.38x -> 1.53x). Offered only where a load walks its buffer in order with
a 4-aligned offset and rows are a multiple of 4 long; the launcher falls back to scalar loads for a misaligned
pointer. The loop's coverage is checked in host C++, the kernels compile with nvcc for sm_90a on CPU, and on a GPU
the real harness verifies them beside the defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_reduce import vec_offered
from kernelwright.agents.offline.ir import ReductionStep
from kernelwright.agents.offline.propose import plans_for, trace_all, tuning_target
from kernelwright.agents.offline.reduce_vectors import VEC_WIDTH, vector_loop
from support.offline import FIXTURES, assert_builds_for_sm_90a, cuda_of, harness_failures

LOSSES = FIXTURES / "offline" / "losses.py"
LONG_ROWS = FIXTURES / "offline" / "long_rows.py"
VECTOR_OFFSETS = FIXTURES / "offline" / "vector_offsets.py"


def _rendered(problem: Path) -> tuple[str, str, list[str]]:
    """The fused plan at its defaults, and with every VEC tunable on; the VEC tunables' names."""
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    defaults = target.space.defaults()
    vec = [name for name in defaults if name.endswith(".VEC") and name.split(".")[0] in _vec_steps(problem)]
    return target.render(defaults), target.render({**defaults, **{name: VEC_WIDTH for name in vec}}), vec


def _vec_steps(problem: Path) -> set[str]:
    plan = plans_for(trace_all(problem))["fused"][0]
    return {s.name for s in plan.steps if isinstance(s, ReductionStep) and vec_offered(s)}


@pytest.mark.parametrize("problem", [LOSSES, LONG_ROWS], ids=lambda p: p.stem)
def test_long_reductions_with_in_order_loads_offer_vec_first_and_off(problem: Path) -> None:
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    names = [d.name for d in target.space.dims]
    offered = {n.split(".")[0] for n in names if n.endswith(".VEC") and not n.startswith(tuple(_elementwise(problem)))}
    assert offered and offered == _vec_steps(problem)
    for step in offered:
        own = [n for n in names if n.startswith(step + ".")]
        assert own[0] == f"{step}.VEC" and target.space.defaults()[own[0]] == 1  # first of its step's, and off
    switched = target.space.switched_on(target.space.defaults())  # a switch: the fill's first slot turns every VEC on
    assert switched is not None and {n for n, v in switched.items() if v != target.space.defaults()[n]} == {
        f"{step}.VEC" for step in offered}


def test_vec_is_offered_where_a_loop_streams_in_order_loads() -> None:
    steps = {s.name: s for s in plans_for(trace_all(LOSSES))["fused"][0].steps if isinstance(s, ReductionStep)}
    kinds = {name: (s.reduction, s.outer, s.reduce, vec_offered(s)) for name, s in steps.items()}
    assert any(k[0] == "sum" and k[1] == 1 and k[3] for k in kinds.values()), kinds  # a full reduction (split)
    assert any(k[0] in ("softmax", "log_softmax") and k[3] for k in kinds.values()), kinds  # uncached 40000-long rows
    short = {s.name: vec_offered(s) for s in plans_for(trace_all(FIXTURES / "offline" / "normalisations.py"))["fused"][0]
             .steps if isinstance(s, ReductionStep) and s.reduce <= 4096}
    assert short and not any(short.values())  # rows cached in registers or short: nothing streams them


@pytest.mark.parametrize("problem", [LOSSES, LONG_ROWS], ids=lambda p: p.stem)
def test_with_vec_on_only_the_accumulating_loops_load_vectors_and_every_write_stays_scalar(problem: Path) -> None:
    """A thread's four consecutive values stored one by one made each warp store span 512 bytes: with VEC on, a
    normalisation's write loop (its own kernel for a split row, or the row kernel's second loop) stays the default
    scalar loop, and the vector prologue feeds accumulators only."""
    _, vec, names = _rendered(problem)
    source = cuda_of(vec)
    assert names and re.search(r"a\.push\(v, \(?(long long\)?)?r\)?;", source)
    uses = [line for line in source.splitlines() if re.search(r"\bx[01]\[j\]", line)]
    assert uses and all("a.push(" in line and "_epi(" not in line for line in uses), uses
    if problem == LONG_ROWS:
        assert "kw_k0_epi(p, row * (int)70000 + r" in source  # the write: one element per store


def _elementwise(problem: Path) -> set[str]:
    plan = plans_for(trace_all(problem))["fused"][0]
    return {s.name + "." for s in plan.steps if not isinstance(s, ReductionStep)}


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
    """vector_loop's text with a prologue that returns each element's own linear index, run in host C++ for two
    rows, every part (chunks of `chunk`, a multiple of 4) and every thread: each thread pushes its elements in
    increasing order, each element's value is its index, and every element of every row is pushed once."""
    loop = vector_loop("long long", "start + 4 * (long long)threadIdx.x", "stop", str(tpr), f"row * (long long){reduce}",
                       "long long", "t", "a.push(v, r);")
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
@pytest.mark.parametrize("problem", [LOSSES, LONG_ROWS], ids=lambda p: p.stem)
def test_the_vector_kernels_compile_for_sm_90a(tmp_path: Path, problem: Path) -> None:
    default, vec, names = _rendered(problem)
    assert names and "<true><<<" in vec and "<true><<<" not in default
    assert vec.count("_pro4(const P_") == len(names)  # one vector prologue per VEC step
    assert_builds_for_sm_90a(vec, tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_vector_loads_and_times_them(tmp_path: Path, build_cache: Path) -> None:
    failed = []
    for problem in (LOSSES, LONG_ROWS):
        default, vec, _ = _rendered(problem)
        failed += harness_failures(problem, {"default": default, "VEC": vec}, tmp_path, build_cache)
    assert not failed, failed
