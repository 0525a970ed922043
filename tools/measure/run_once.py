"""Run a candidate's forward a few times in this process: the target for ncu and compute-sanitizer.

    python -m kernelwright.tools.measure.run_once PROBLEM CANDIDATE [--calls N] [--seed S]

External tools wrap this process (they must see the kernels), so it loads the
candidate itself; it prints nothing but errors and exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import sys

import torch

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.problem.files import call_user, check_source, import_file
from kernelwright.tools.problem.inputs import InputSpec, make_inputs
from kernelwright.tools.problem.model_build import build_model, weight_bytes, weight_place


def run(problem_path: str, candidate_path: str, calls: int, seed: int, init_seed: int) -> None:
    if not torch.cuda.is_available():
        raise KernelwrightError("run_once needs a CUDA GPU")
    device = torch.device("cuda", 0)
    problem = check_source(problem_path, "problem")
    candidate = check_source(candidate_path, "candidate")
    pmod = import_file(problem, "kw_problem")
    from kernelwright.tools.compile.inline.patch import fast_load_inline_installed

    with fast_load_inline_installed():
        cmod = import_file(candidate, "kw_candidate")
    init_inputs = call_user(pmod.get_init_inputs, "get_init_inputs()", problem)
    place = weight_place(weight_bytes(pmod.Model, init_inputs), device)  # as the harness built it
    model = build_model(cmod.ModelNew, init_inputs, candidate, "ModelNew", seed=init_seed, device=device, place=place)
    inputs = make_inputs(pmod.get_inputs, InputSpec(seed), device)
    with torch.no_grad():
        for _ in range(calls):
            model(*inputs)
    torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problem")
    parser.add_argument("candidate")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--init-seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        run(args.problem, args.candidate, args.calls, args.seed, args.init_seed)
    except KernelwrightError as exc:
        print(f"run_once: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
