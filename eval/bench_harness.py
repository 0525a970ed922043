"""Benchmark the harness itself: evaluation overhead per candidate with a warm worker.

    python -m kernelwright.eval.bench_harness --out harness.json [--repeats 5]

Evaluates the bundled raw relu candidate against a tiny problem several times
with one Evaluator (warm reference and candidate workers) and reports the
wall-clock seconds of each phase, plus how repeatable the candidate's timing is.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from kernelwright.tools.evaluate import EvalSettings, Evaluator

HERE = Path(__file__).resolve().parent
PROBLEM = HERE / "problems" / "tiny_relu.py"
CANDIDATE = HERE.parent / "examples" / "relu" / "candidate_raw.py"  # in a source checkout; else pass --candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_harness.json"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--problem", type=Path, default=PROBLEM)
    parser.add_argument("--candidate", type=Path, default=CANDIDATE)
    args = parser.parse_args(argv)
    settings = EvalSettings(compile_baseline=False)
    rows = []
    started = time.perf_counter()
    with Evaluator(args.problem, settings) as ev:
        first = ev.evaluate(args.candidate)  # cold: worker start, reference, baselines, CUPTI warm-up
        cold_s = time.perf_counter() - started
        for _ in range(args.repeats):
            report = ev.evaluate(args.candidate)
            rows.append({"status": report.status, **report.durations_s,
                         "candidate_median_ms": report.timing.get("candidate", {}).get("median_ms")})
    totals = [r["total"] for r in rows]
    medians = [r["candidate_median_ms"] for r in rows if r["candidate_median_ms"]]
    result = {
        "gpu": first.gpu.get("name"), "first_status": first.status, "cold_first_eval_s": round(cold_s, 3),
        "warm_eval_s_median": statistics.median(totals), "warm_eval_s_max": max(totals), "rows": rows,
        "candidate_median_ms_spread_pct": (100.0 * (max(medians) - min(medians)) / min(medians)) if medians else None,
    }
    args.out.write_text(json.dumps(result, indent=2))
    print(f"GPU: {result['gpu']}  first eval (cold): {cold_s:.2f} s  status: {first.status}")
    print(f"{'run':>4} {'status':>8} {'load':>6} {'verify':>7} {'timing':>7} {'total':>7} {'median_ms':>10}")
    for i, r in enumerate(rows):
        print(f"{i:>4} {r['status']:>8} {r.get('load', 0):>6.2f} {r.get('verify', 0):>7.2f} {r.get('timing', 0):>7.2f} "
              f"{r['total']:>7.2f} {r['candidate_median_ms'] or 0:>10.4f}")
    print(f"warm evaluation overhead: median {result['warm_eval_s_median']:.2f} s (target <= 3 s); "
          f"timing spread {result['candidate_median_ms_spread_pct'] or 0:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
