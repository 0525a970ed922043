"""A candidate against its problem's Model in float64, in process on a GPU (the offline kernels' GPU tests).

Inputs come from get_inputs() under seed 0 and both models are built under seed 42 (the harness's init seed), so
the candidate and the reference hold the same weights; the reference runs in float64 on the same inputs."""

from __future__ import annotations

from pathlib import Path

import torch

from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.verify.compare import DEFAULT_TOLERANCES


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


def assert_close_to_float64(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Every element within the harness's per-dtype tolerance of the float64 reference, the worst one named."""
    tol = DEFAULT_TOLERANCES[str(out.dtype).removeprefix("torch.")]
    assert out.shape == ref.shape, (tuple(out.shape), tuple(ref.shape))
    err = (out.double() - ref).abs()
    bound = tol.atol + tol.rtol * ref.abs()
    worst = int(torch.argmax(err - bound))
    assert bool((err <= bound).all()), (f"max err {float(err.max()):.3g}; worst at flat {worst}: got "
                                        f"{float(out.flatten()[worst]):.6g}, want {float(ref.flatten()[worst]):.6g}")
