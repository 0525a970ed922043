"""Launch-bound timings under host load: how much a busy CPU next to the timing process moves a small network's time.

    python -m kernelwright.eval.bench.launch_noise PROBLEM.py --out FILE.json [--rounds 5]

Why: on an H100 two batch-2 ResNet18 candidates differing only in the first convolution's mode timed 1.81 ms and
2.61 ms in one run, and eager's strict timing had p20 1.87 ms against a median of 2.48 ms (session 20, three bench
lanes). Such a call is dozens of short kernel launches, so its time is the host's. The bench now gives each lane whole physical cores
(eval.bench.gpu_split.cpu_shares); this probe says whether that is the part that matters.

The process pins itself to one CPU and times the problem's eager forward (tools.measure.timing.bench, as the
harness times baselines) `--rounds` times under each condition, while spinning processes keep other CPUs busy:
`idle` (none), `sibling` (the timing CPU's SMT siblings: what a lane got from contiguous logical core shares) and
`other_cores` (every CPU of the other physical cores: what lanes on whole cores leave). The JSON has each round's
median and spread; the table printed compares each condition's median with idle's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kernelwright.eval.bench.gpu_split import physical_cores, smt_siblings


def conditions(cpu: int, cpus: Sequence[int], siblings: Callable[[int], Sequence[int]]) -> dict[str, list[int]]:
    """The CPUs each condition keeps busy, for a timing pinned to `cpu` among `cpus`."""
    cores = physical_cores(cpus, siblings)
    own = next(core for core in cores if cpu in core)
    return {"idle": [], "sibling": [c for c in own if c != cpu],
            "other_cores": sorted(c for core in cores if core is not own for c in core)}


def _spin(cpu: int) -> None:
    os.sched_setaffinity(0, [cpu])
    while True:
        pass


@contextmanager
def spinning(cpus: Sequence[int]) -> Iterator[list[Any]]:
    """One busy process pinned to each CPU for the duration of the block."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_spin, args=(cpu,), daemon=True) for cpu in cpus]
    for proc in procs:
        proc.start()
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.join(timeout=10)


def _eager_call(problem: Path) -> Callable[[], object]:
    """The problem's eager forward on the GPU, its file checked and imported as the harness does (ProblemError)."""
    import torch

    from kernelwright.tools.problem.files import check_source, import_file

    module = import_file(check_source(problem, "problem"), "kw_launch_noise_problem")
    model = module.Model(*module.get_init_inputs()).cuda().eval()
    inputs = [x.cuda() if isinstance(x, torch.Tensor) else x for x in module.get_inputs()]

    def call() -> object:
        with torch.no_grad():
            return model(*inputs)

    return call


def summarise(rounds: dict[str, list[float]]) -> dict[str, Any]:
    """Per condition: each round's median (ms), their median and spread, and that median over idle's."""
    idle = statistics.median(rounds["idle"]) if rounds.get("idle") else None
    out: dict[str, Any] = {}
    for name, medians in rounds.items():
        mid = statistics.median(medians)
        out[name] = {"round_medians_ms": medians, "median_ms": mid, "spread": (max(medians) - min(medians)) / mid,
                     "over_idle": mid / idle if idle else None}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernelwright.eval.bench.launch_noise", description=__doc__.split("\n")[0])
    parser.add_argument("problem", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.problem.is_file():
        print(f"error: no problem file at {args.problem}", file=sys.stderr)
        return 2
    from kernelwright.tools.errors import ProblemError
    from kernelwright.tools.measure.timing import BenchSettings, bench

    try:
        call = _eager_call(args.problem)
    except ProblemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[0]
    os.sched_setaffinity(0, [cpu])
    plan = conditions(cpu, cpus, smt_siblings)
    rounds: dict[str, list[float]] = {}
    for name, busy in plan.items():
        with spinning(busy):
            rounds[name] = [bench(call, BenchSettings()).median_ms for _ in range(args.rounds)]
    summary = summarise(rounds)
    result = {"problem": str(args.problem), "timing_cpu": cpu, "busy_cpus": plan, "conditions": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, row in summary.items():
        print(f"{name:12s} median {row['median_ms']:.3f} ms  spread {row['spread']:.0%}  over idle {row['over_idle']:.2f}x"
              f"  busy CPUs {plan[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
