"""`python -m kernelwright.eval.bench.archive_ablation --out DIR`: the archive ablation (eval.bench.ablation_experiment)
with complete offline runs of the optimisation graph on this machine's GPU, through the harness evaluator.

Each run is the graph with the offline translator and tuner only (no LLM, no plugins), recorded in its run
folder (events.jsonl, run.json) like any run, but not checkpointed: a stopped ablation keeps its finished
runs (DIR/first, DIR/second) and runs the others again. Harness settings are their owners' defaults
(tools.harness.evaluate.EvalSettings), with torch.compile's baseline only under --compile-baseline: the eval layer does
not read kernelwright's config, so no config file or KERNELWRIGHT_<SECTION>__<FIELD> variable reaches them (the
build workers still read KERNELWRIGHT_ARCH / KERNELWRIGHT_CACHE_DIR from the environment they inherit).

With `--gpus 0,1,...` each phase is split over one child process per GPU (CUDA_VISIBLE_DEVICES), all of one
phase finishing before the next starts, since a filled archive needs every other problem's first run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernelwright.agents.context import KContext, RunSettings
from kernelwright.eval.bench.ablation_experiment import (
    ROW_NORM_FAMILY,
    SAME_WIDTH_FAMILY,
    SOFTMAX_FAMILY,
    ablation,
    first_run,
    markdown,
    report,
    second_run,
    suite_problems,
)
from kernelwright.eval.bench.gpu_split import parse_gpus
from kernelwright.tools.harness.evaluate import EvalSettings

MODULE = "kernelwright.eval.bench.archive_ablation"  # what `--gpus` starts once per GPU
FAMILIES = {"softmax": SOFTMAX_FAMILY, "row_norm": ROW_NORM_FAMILY, "same_width": SAME_WIDTH_FAMILY}


def ablation_harness(compile_baseline: bool = False) -> EvalSettings:
    """The harness settings of every ablation run: the owners' defaults (tools.harness.evaluate.EvalSettings, its build
    settings tools.compile.nvcc.BuildSettings), not a config file's. The count compares speedups against eager only, so
    torch.compile's baseline (a compile per run) only when asked."""
    return EvalSettings(compile_baseline=compile_baseline)


def offline_run(problem: Path, run_dir: Path, settings: RunSettings, archive: Any,
                harness: EvalSettings) -> dict[str, Any]:
    """One complete offline run of the optimisation graph with `archive`: {"run_dir", "state", "best"}."""
    from kernelwright.agents.offline_proposer import OfflineSession
    from kernelwright.graphs.events import EventRecorder
    from kernelwright.graphs.harness_evaluator import HarnessEvaluator, with_gpu_facts
    from kernelwright.graphs.optimize import build_optimize_graph, run_config
    from kernelwright.graphs.state import Budget, make_initial_state

    evaluator = HarnessEvaluator(problem, harness)
    recorder = EventRecorder(run_dir, run_dir.name)
    try:
        ctx = KContext(llm=None, evaluator=recorder.wrap(evaluator), run_dir=run_dir,
                       settings=with_gpu_facts(settings, evaluator.gpus),
                       offline=OfflineSession(allow_tf32=harness.profile.allows_tf32), archive=archive)
        start = make_initial_state(run_dir.name, str(problem), Budget(generations=settings.generations))
        with recorder:
            state = build_optimize_graph(plugins=()).invoke(
                start, context=ctx, config={**run_config(settings, run_dir.name), **recorder.graph_config(ctx)})
            recorder.finish(state)
    finally:
        evaluator.close()
    best = (state.get("candidates") or {}).get(state.get("best_id") or "") or {}
    return {"run_dir": str(run_dir), "state": state, "best": best.get("speedup_vs_eager")}


def _embedding(choice: str) -> Any:
    from kernelwright.memory.embedding import HashedEmbedding, MiniLMEmbedding, default_embedding

    return {"minilm": MiniLMEmbedding, "hashed": HashedEmbedding}.get(choice, default_embedding)()


def over_gpus(argv: Sequence[str], family: Sequence[str], gpus: Sequence[str], spawn: Any = None) -> int:
    """Both phases, each split round-robin over `gpus` as child processes of this command (same arguments,
    `--phase` and `--only` added); the first non-zero exit status of a phase, or 0."""
    from kernelwright.eval.bench.gpu_split import round_robin, run_on_gpus, without_option

    base = without_option(argv, "--gpus", "--phase", "--only")
    for phase in ("empty", "filled"):
        groups = [(gpu, group) for gpu, group in zip(gpus, round_robin(family, len(gpus))) if group]
        argvs = [[*base, "--phase", phase, "--only", ",".join(group)] for _, group in groups]
        codes = run_on_gpus(MODULE, argvs, [gpu for gpu, _ in groups], spawn)
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

    harness = ablation_harness(compile_baseline=args.compile_baseline)
    settings = RunSettings(generations=args.generations, candidates_per_generation=args.candidates,
                           offline_start=args.start, profile=args.profile)

    def run(problem: Path, tag: str, archive: Any) -> dict[str, Any]:
        return offline_run(problem, args.out / "runs" / f"{problem.stem}-{tag}", settings, archive, harness)

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
