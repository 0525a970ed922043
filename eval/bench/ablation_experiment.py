"""Is the archive worth it? Evaluations needed to reach a run's best, with an empty archive vs a filled one.

    python -m kernelwright.eval.bench.archive_ablation --out DIR
           [--problems 26_softmax_rows,27_log_softmax_dim1_bf16,...] [--generations 3] [--candidates 3]
           [--start variants|random] [--embedding auto|minilm|hashed]
           [--family softmax|row_norm] [--gpus 0,1] [--phase all|empty|filled|report [--only NAMES]]
           [--profile] [--compile-baseline]

(The command, eval/bench/archive_ablation.py, performs the offline runs; this module is the experiment, given
a function that performs one.)

For a group of related problems (default: the suite's softmax family), offline (no LLM), on a GPU:
1. each problem runs with an empty archive; its best verified speedup is the target, and the number of
   evaluations until a kernel within 2% of it was verified is `n_empty`;
2. each problem runs again with an archive filled by the *other* problems' first runs (leave-one-out: its own
   kernels are not in it), and `n_filled` counts the evaluations until that target is reached.
The archive helps when n_filled < n_empty. Results: DIR/ablation.json and DIR/ablation.md.

`--start random` measures retrieval against a proposer with no prior of its own (the first generation is the
fused plan at random settings, the same draw in both phases); the default start is the translator's
hand-set variants, which often win at the first evaluation and then leave the archive nothing to shorten.
Phases can run as separate processes, e.g. one per GPU: each writes DIR/first|second/<problem>.json.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kernelwright.eval.bench.offline import speedup_text
from kernelwright.eval.suite_manifest import SUITE_DIR

EVAL_DIR = SUITE_DIR.parent  # 'folder/name' problems (e.g. ablation/...) are relative to eval/
SOFTMAX_FAMILY = ("26_softmax_rows", "27_log_softmax_dim1_bf16", "14_linear_bias_softmax", "24_conv2d_channel_softmax",
                  "38_causal_masked_softmax")
# Row normalisations of one width and dtype (eval/ablation/, written for this experiment): one row kernel
# with the same tunables, so what won on one is a good guess for the others.
SAME_WIDTH_FAMILY = ("ablation/row_softmax_temperature", "ablation/row_log_softmax", "ablation/row_softmax_bias",
                     "ablation/row_layer_norm", "ablation/row_layer_norm_gelu")
# Row normalisations that share one kernel form (and so its tunables): alone and after a GEMM.
ROW_NORM_FAMILY = ("26_softmax_rows", "28_layer_norm_affine", "14_linear_bias_softmax", "25_linear_residual_layernorm",
                   "17_linear_layernorm_gelu_bf16")
TOLERANCE = 0.02


def evaluation_order(candidates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluated candidates in the order the run proposed them (generation, then proposal order)."""
    done = [r for r in candidates.values() if r.get("status") not in (None, "pending", "screened_out")]
    return sorted(done, key=lambda r: r.get("generation", 0))  # dicts keep proposal order within a generation


def evaluations_to_reach(ordered: Sequence[dict[str, Any]], target: float, tolerance: float = TOLERANCE) -> int | None:
    """1-based count of evaluations until a verified kernel within `tolerance` of `target`; None if never."""
    for n, record in enumerate(ordered, 1):
        speed = record.get("speedup_vs_eager")
        if record.get("status") == "passed" and speed and speed >= target * (1 - tolerance):
            return n
    return None


RunOne = Callable[[Path, str, Any], dict[str, Any]]  # (problem, "empty" | "filled", archive) -> run summary


def _save(path: Path, problem: Path, done: dict[str, Any]) -> dict[str, Any]:
    """What the report and the other problems' filled archives need of one run, kept on disk so the two
    phases can run in separate processes (one per GPU) and a stopped ablation keeps its finished runs."""
    state = done.get("state") or {}
    record = {"problem": problem.stem, "run_dir": str(done["run_dir"]), "best": done.get("best"),
              "candidates": state.get("candidates") or {}, "functional": state.get("functional") or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    return record


def first_run(problem: Path, out: Path, run: RunOne, embedding: Any) -> dict[str, Any]:
    """Phase 1: the problem with an empty archive of its own (nothing leaks between problems)."""
    from kernelwright.memory.archive import KernelArchive

    with KernelArchive.open_local(out / "archives" / f"empty-{problem.stem}", embedding=embedding) as empty:
        record = _save(out / "first" / f"{problem.stem}.json", problem, run(problem, "empty", empty))
    print(f"[empty] {problem.stem}: best {record['best']}", flush=True)
    return record


def second_run(problem: Path, family: Sequence[str], out: Path, run: RunOne, embedding: Any) -> dict[str, Any]:
    """Phase 2: the problem again, its archive filled with the phase-1 kernels of the *other* family members."""
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.prompting import archive_run

    with KernelArchive.open_local(out / "archives" / f"without-{problem.stem}", embedding=embedding) as filled:
        for other in family:
            done = out / "first" / f"{other}.json"
            if other != problem.stem and done.exists():
                first = json.loads(done.read_text())
                archive_run(filled, first["run_dir"], first["functional"], run_id=f"{other}-empty", problem_name=other)
        record = _save(out / "second" / f"{problem.stem}.json", problem, run(problem, "filled", filled))
    print(f"[filled] {problem.stem}: best {record['best']}", flush=True)
    return record


def report(out: Path, family: Sequence[str], conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    """Rows for the family members with both phases done; writes out/ablation.json and out/ablation.md."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in family:
        first_path, second_path = out / "first" / f"{name}.json", out / "second" / f"{name}.json"
        if not (first_path.exists() and second_path.exists()):
            continue
        first, second = json.loads(first_path.read_text()), json.loads(second_path.read_text())
        target = first["best"]
        rows.append({"problem": name, "target_speedup": target,
                     "n_empty": evaluations_to_reach(evaluation_order(first["candidates"]), target) if target else None,
                     "n_filled": evaluations_to_reach(evaluation_order(second["candidates"]), target) if target else None,
                     "best_filled": second["best"]})
    helped = [r for r in rows if r["n_empty"] and r["n_filled"] and r["n_filled"] < r["n_empty"]]
    hurt = [r for r in rows if r["n_empty"] and (not r["n_filled"] or r["n_filled"] > r["n_empty"])]
    counted = [r for r in rows if r["n_empty"]]
    summary = {"conditions": conditions or {}, "rows": rows, "helped": len(helped), "hurt": len(hurt),
               "problems": len(rows), "median_n_empty": median_count([r["n_empty"] for r in counted]),
               "median_n_filled": median_count([r["n_filled"] for r in counted])}
    (out / "ablation.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "ablation.md").write_text(markdown(rows) + summary_line(summary))
    return summary


def median_count(counts: Sequence[int | None]) -> float | None:
    """Median evaluations to the target, a run that never reached it (None) counting as more than any;
    None when that middle falls on such a run (or there are no runs)."""
    if not counts:
        return None
    middle = statistics.median([math.inf if c is None else c for c in counts])
    return None if math.isinf(middle) else middle


def summary_line(summary: dict[str, Any]) -> str:
    def count(value: float | None) -> str:
        return "not reached" if value is None else f"{value:g}"

    return (f"\nThe filled archive helped {summary['helped']} of {summary['problems']} problems and hurt "
            f"{summary['hurt']}; median evaluations to the target: empty {count(summary['median_n_empty'])}, "
            f"filled {count(summary['median_n_filled'])} (a run that never reached it counts as more than any).\n")


def ablation(problems: Sequence[Path], out: Path, run: RunOne, embedding: Any,
             conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both phases over `problems` in this process; `run` returns {"run_dir", "state", "best"} for one
    offline run. Writes out/ablation.json and out/ablation.md and returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    family = [p.stem for p in problems]
    for problem in problems:
        first_run(problem, out, run, embedding)
    for problem in problems:
        second_run(problem, family, out, run, embedding)
    return report(out, family, conditions)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| problem | target (best, empty archive) | evaluations, empty | evaluations, filled | best, filled |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['problem']} | {speedup_text(r['target_speedup'])} | {r['n_empty'] or '-'} | "
              f"{r['n_filled'] or '-'} | {speedup_text(r['best_filled'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def suite_problems(names: str) -> list[Path]:
    """Problem files by name: 'NN_name' in eval/suite, 'folder/name' relative to eval/ (e.g. ablation/...)."""
    return [EVAL_DIR / f"{name}.py" if "/" in name else SUITE_DIR / f"{name}.py"
            for name in (n.strip() for n in names.split(",")) if name]
