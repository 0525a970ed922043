"""Is the archive worth it? Evaluations needed to reach a run's best, with an empty archive vs a filled one.

    python -m kernelwright.archive_ablation --out DIR [--problems 26_softmax_rows,27_log_softmax_dim1_bf16,...]
           [--generations 3] [--candidates 3] [--embedding auto|minilm|hashed] [--compile-baseline]

(The command lives in the front door, which owns complete runs; this module is the experiment, given a
function that performs one offline run.)

For a group of related problems (default: the suite's softmax family), offline (no LLM), on a GPU:
1. each problem runs with an empty archive; its best verified speedup is the target, and the number of
   evaluations until a kernel within 2% of it was verified is `n_empty`;
2. each problem runs again with an archive filled by the *other* problems' first runs (leave-one-out: its own
   kernels are not in it), and `n_filled` counts the evaluations until that target is reached.
The archive helps when n_filled < n_empty. Results: DIR/ablation.json and DIR/ablation.md.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOFTMAX_FAMILY = ("26_softmax_rows", "27_log_softmax_dim1_bf16", "14_linear_bias_softmax", "24_conv2d_channel_softmax",
                  "38_causal_masked_softmax")
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


def ablation(problems: Sequence[Path], out: Path, run: RunOne, embedding: Any) -> dict[str, Any]:
    """Both phases over `problems`; `run` returns {"run_dir", "state", "best"} for one offline run.
    Writes out/ablation.json and out/ablation.md and returns the summary."""
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.prompting import archive_run

    out.mkdir(parents=True, exist_ok=True)
    first: dict[str, dict[str, Any]] = {}
    for problem in problems:  # 1. empty archives (a fresh one each, so nothing leaks between problems)
        with KernelArchive.open_local(out / "archives" / f"empty-{problem.stem}", embedding=embedding) as empty:
            first[problem.stem] = run(problem, "empty", empty)
        print(f"[empty] {problem.stem}: best {first[problem.stem]['best']}", flush=True)
    rows = []
    for problem in problems:  # 2. leave-one-out filled archives
        with KernelArchive.open_local(out / "archives" / f"without-{problem.stem}", embedding=embedding) as filled:
            for other, done in first.items():
                if other != problem.stem:
                    archive_run(filled, done["run_dir"], done["state"].get("functional") or {},
                                run_id=f"{other}-empty", problem_name=other)
            second = run(problem, "filled", filled)
        target = first[problem.stem]["best"]
        row = {"problem": problem.stem, "target_speedup": target,
               "n_empty": evaluations_to_reach(evaluation_order(first[problem.stem]["state"]["candidates"]), target)
               if target else None,
               "n_filled": evaluations_to_reach(evaluation_order(second["state"]["candidates"]), target) if target else None,
               "best_filled": second["best"]}
        rows.append(row)
        print(f"[filled] {row}", flush=True)
    helped = [r for r in rows if r["n_empty"] and r["n_filled"] and r["n_filled"] < r["n_empty"]]
    summary = {"rows": rows, "helped": len(helped), "problems": len(rows),
               "median_n_empty": statistics.median([r["n_empty"] for r in rows if r["n_empty"]] or [0]),
               "median_n_filled": statistics.median([r["n_filled"] for r in rows if r["n_filled"]] or [0])}
    (out / "ablation.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "ablation.md").write_text(markdown(rows))
    return summary


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| problem | target (best, empty archive) | evaluations, empty | evaluations, filled | best, filled |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['problem']} | {r['target_speedup'] or 0:.2f}x | {r['n_empty']} | {r['n_filled']} | "
              f"{r['best_filled'] or 0:.2f}x |" for r in rows]
    return "\n".join(lines) + "\n"


def suite_problems(names: str) -> list[Path]:
    return [HERE / "suite" / f"{name.strip()}.py" for name in names.split(",") if name.strip()]
