"""The offline kernels' GPU checks: a candidate against its problem's Model in float64, in process (inputs from
get_inputs() under seed 0, both models built under seed 42, the harness's init seed, so they hold the same
weights; the reference runs in float64 on the same inputs), and a candidate through the real harness on kernels
of its own."""

from __future__ import annotations

from pathlib import Path

import torch

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.sandbox.pool import WorkerOptions
from kernelwright.tools.verify.precision import precision_profile


def run_against_float64(problem: Path, candidate: Path, name: str, calls: int = 1) -> tuple[list[torch.Tensor], torch.Tensor]:
    """([the candidate's output on each of `calls` calls], the float64 reference) on the problem's own inputs."""
    prob = import_file(check_source(problem, "problem"), f"kw_f64_problem_{name}")
    module = import_file(check_source(candidate, "candidate"), f"kw_f64_cand_{name}")
    torch.manual_seed(0)
    inputs = [x.cuda() for x in prob.get_inputs()]
    torch.manual_seed(42)
    model = prob.Model(*prob.get_init_inputs()).cuda().eval()
    torch.manual_seed(42)
    new = module.ModelNew(*prob.get_init_inputs()).cuda().eval()
    with torch.no_grad():
        outs = [new(*inputs) for _ in range(calls)]
        ref = model.double()(*[x.double() for x in inputs])
    torch.cuda.synchronize()
    return outs, ref


def assert_close_to_float64(out: torch.Tensor, ref: torch.Tensor, profile: str = "strict") -> None:
    """Every element within the precision profile's per-dtype tolerance of the float64 reference (strict: the
    harness's defaults), the worst one named."""
    tol = precision_profile(profile).tolerances[str(out.dtype).removeprefix("torch.")]
    assert out.shape == ref.shape, (tuple(out.shape), tuple(ref.shape))
    err = (out.double() - ref).abs()
    bound = tol.atol + tol.rtol * ref.abs()
    worst = int(torch.argmax(err - bound))
    assert bool((err <= bound).all()), (f"max err {float(err.max()):.3g}; worst at flat {worst}: got "
                                        f"{float(out.flatten()[worst]):.6g}, want {float(ref.flatten()[worst]):.6g}")


# Quick timing: these tests judge verdicts and kernel usage; their speedups are printed, not benchmarks.
FAST_HARNESS = EvalSettings(call_timeout_s=120.0, compile_baseline=False,
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=3000.0))


def passes_on_its_own_kernel(problem: Path, candidate: Path, options: WorkerOptions, kernel_mark: str,
                             label: str) -> EvalReport:
    """The harness's report on `candidate`, asserted verified with a custom kernel whose name holds `kernel_mark`
    and no library kernel (the work is the candidate's, not cuBLAS's or cuDNN's); its speedup printed as `label`."""
    with Evaluator(problem, FAST_HARNESS, options) as ev:
        report = ev.evaluate(candidate)
    assert report.status == "passed", (report.reason, report.message)
    print(f"{label}: {report.speedup_vs_eager:.2f}x over eager")  # the figure, in the GPU log (-s)
    usage = report.kernel_usage or {}
    assert any(kernel_mark in k for k in usage.get("custom", ())), usage
    assert not usage.get("library"), usage
    return report
