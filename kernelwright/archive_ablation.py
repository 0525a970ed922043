"""`python -m kernelwright.archive_ablation --out DIR`: the archive ablation (eval.bench_archive_ablation) with
complete offline runs on this machine's GPU. Here, in the front door, because a run needs the public
`optimize()` and the harness evaluator, which the eval layer does not import.

With `--gpus 0,1,...` each phase is split over one child process per GPU (CUDA_VISIBLE_DEVICES), all of one
phase finishing before the next starts, since a filled archive needs every other problem's first run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernelwright.eval.bench_archive_ablation import (ROW_NORM_FAMILY, SAME_WIDTH_FAMILY, SOFTMAX_FAMILY, ablation,
                                                     first_run, markdown, report, second_run, suite_problems)
from kernelwright.eval.gpu_split import parse_gpus

FAMILIES = {"softmax": SOFTMAX_FAMILY, "row_norm": ROW_NORM_FAMILY, "same_width": SAME_WIDTH_FAMILY}


def _embedding(choice: str) -> Any:
    from kernelwright.memory.embedding import HashedEmbedding, MiniLMEmbedding, default_embedding

    return {"minilm": MiniLMEmbedding, "hashed": HashedEmbedding}.get(choice, default_embedding)()


def over_gpus(argv: Sequence[str], family: Sequence[str], gpus: Sequence[str], spawn: Any = None) -> int:
    """Both phases, each split round-robin over `gpus` as child processes of this command (same arguments,
    `--phase` and `--only` added); the first non-zero exit status of a phase, or 0."""
    from kernelwright.eval.gpu_split import round_robin, run_on_gpus, without_option

    base = without_option(argv, "--gpus", "--phase", "--only")
    for phase in ("empty", "filled"):
        groups = [(gpu, group) for gpu, group in zip(gpus, round_robin(family, len(gpus))) if group]
        argvs = [[*base, "--phase", phase, "--only", ",".join(group)] for _, group in groups]
        codes = run_on_gpus("kernelwright.archive_ablation", argvs, [gpu for gpu, _ in groups], spawn)
        if any(codes):
            print(f"phase {phase}: a child process failed (exit {[c for c in codes if c]})", file=sys.stderr)
            return next(c for c in codes if c)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluations to reach a run's best: empty vs leave-one-out archive")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="softmax",
                        help="softmax: the suite's softmax variants; row_norm: row softmax / layer norm, alone and "
                             "after a GEMM (one kernel form, so settings can carry over); same_width: five row "
                             "normalisations of one width and dtype (eval/ablation/)")
    parser.add_argument("--problems", default="", help="comma-separated suite problem names (instead of --family)")
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--start", choices=("variants", "random"), default="variants",
                        help="the offline first generation: the translator's variants, or its fused plan at random "
                             "settings (a proposer with no prior of its own)")
    parser.add_argument("--phase", choices=("all", "empty", "filled", "report"), default="all",
                        help="run one phase only (e.g. one process per GPU, with --only); 'report' runs nothing")
    parser.add_argument("--only", default="", help="with --phase empty|filled: these family members only")
    parser.add_argument("--gpus", default="", help="e.g. 0,1: split each phase over these GPUs, a process each")
    parser.add_argument("--profile", action="store_true", help="profile with ncu as a normal run does (slower; "
                                                                "the count does not use it)")
    parser.add_argument("--compile-baseline", action="store_true", help="also time torch.compile in every run")
    parser.add_argument("--embedding", choices=("auto", "minilm", "hashed"), default="auto",
                        help="auto: the packaged MiniLM when installed, else the dependency-free hashed embedding")
    args = parser.parse_args(argv)
    embedding = _embedding(args.embedding)
    print(f"archive embedding: {embedding.name()}", flush=True)

    def run(problem: Path, tag: str, archive: Any) -> dict[str, Any]:
        from kernelwright.agents.context import RunSettings
        from kernelwright.config import load_config
        from kernelwright.harness_evaluator import HarnessEvaluator
        from kernelwright.run import optimize

        # The count compares speedups against eager only; torch.compile's baseline would add a compile per run.
        config = load_config(overrides={"harness.compile_baseline": args.compile_baseline})
        result = optimize(problem, runs_dir=args.out / "runs", run_id=f"{problem.stem}-{tag}", offline=True,
                          archive=archive, evaluator=HarnessEvaluator(problem, config.eval_settings()),
                          settings=RunSettings(generations=args.generations, candidates_per_generation=args.candidates,
                                               offline_start=args.start, profile=args.profile))
        return {"run_dir": str(result.run_dir), "state": result.state, "best": result.speedup_vs_eager}

    problems = suite_problems(args.problems or ",".join(FAMILIES[args.family]))
    family = [p.stem for p in problems]
    conditions = {"start": args.start, "generations": args.generations, "candidates": args.candidates,
                  "embedding": embedding.name(), "compile_baseline": args.compile_baseline}
    mine = [p for p in problems if not args.only or p.stem in args.only.split(",")]
    gpus = parse_gpus(args.gpus)
    if args.phase == "all" and gpus:
        failed = over_gpus(sys.argv[1:] if argv is None else list(argv), family, gpus)
        summary = report(args.out, family, conditions)
        print(markdown(summary["rows"]))
        return failed
    if args.phase == "all":
        summary = ablation(problems, args.out, run, embedding, conditions)
    else:
        for problem in mine if args.phase != "report" else []:
            if args.phase == "empty":
                first_run(problem, args.out, run, embedding)
            else:
                second_run(problem, family, args.out, run, embedding)
        summary = report(args.out, family, conditions)
    print(markdown(summary["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
