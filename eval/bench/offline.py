"""Benchmark the offline translator on the suite: propose, tune briefly, verify and time with the harness.

    python -m kernelwright.eval.bench.offline --out offline_bench [--problems 07,26] [--tune-budget 5]
           [--suite-dir eval/suite] [--compile-baseline [--prewarm 8]] [--time-budget-s 480] [--gpus 0,1]

First every problem is translated (CPU) and all candidates' CUDA is built in parallel (the shared compile
cache); then, per problem, every proposed variant is evaluated by the harness (tools.harness.evaluate.Evaluator:
correctness trials, integrity checks, timing against eager, and torch.compile with --compile-baseline,
which adds its compile time, ~10-60 s a problem), and the tuner spends what is left of the budget while
the run is on schedule for --time-budget-s. The best passed candidate then goes through compute-sanitizer
memcheck before it counts as verified (memory errors: the next best is tried, else the problem is not
verified, reason out_of_bounds; a sanitizer that cannot run leaves it verified with `sanitized` false and
`sanitizer_status` saying why). A problem is a *success* only when a verified candidate is at least 0.95x eager: a slower
verified kernel is reported, never claimed. Results go to <out>/results/<problem>.json (a problem whose
file exists is skipped, so a stopped run resumes) and a summary to <out>/summary.{json,md}. A problem that
crashes is recorded and the run goes on. With --gpus the problems are dealt round-robin to one child run per
GPU (its own out folder, <out>/gpu<N>, and its own share of the cores); their rows are merged into <out>.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from kernelwright.eval.bench.gpu_split import parse_gpus, round_robin, run_on_gpus, without_option
from kernelwright.eval.suite_manifest import SUITE_DIR

SUCCESS_THRESHOLD = 0.95


def _categories(suite_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((suite_dir / "manifest.json").read_text())
        return {Path(e["file"]).stem: e.get("category", "") for e in data.get("problems", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _median_ms(stats: Any) -> float | None:
    return stats.get("median_ms") if isinstance(stats, dict) else None


def prepare(problem: Path, out: Path) -> dict[str, Any]:
    """Translate one problem (CPU); {"row": ...} when there is nothing to evaluate."""
    from kernelwright.agents.offline import OfflineUnsupported, propose
    from kernelwright.agents.offline.propose import trace_all

    try:
        traced = trace_all(problem)
        candidates = propose(problem, traced=traced)
    except OfflineUnsupported as exc:
        return {"row": {"problem": problem.stem, "verified": False, "success": False, "status": "unsupported",
                        "message": exc.message, "error": exc.to_dict()}}
    cand_dir = out / "candidates" / problem.stem
    for c in candidates:
        c.write(cand_dir / f"{c.variant}.py")
    return {"traced": traced, "candidates": candidates}


def prebuild(prepared: dict[str, dict[str, Any]], jobs: int) -> float:
    """Compile every candidate's CUDA in parallel into the cache the evaluation workers load from."""
    return prebuild_sources([c.source for prep in prepared.values() for c in prep.get("candidates", [])], jobs)


def prebuild_sources(sources: list[str], jobs: int) -> float:
    """Build the `_KW_CUDA_SRC` of each candidate source (offline and passthrough candidates name it so) in
    parallel, for the arch a worker on this GPU will ask for; seconds taken."""
    import re

    from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions
    from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
    from kernelwright.tools.harness.precompile import detect_arch

    started = time.perf_counter()
    opts = NvccOptions(arch=detect_arch())  # what load_cuda uses in a worker on this GPU
    cuda = {m.group(1) for s in sources if (m := re.search(r'_KW_CUDA_SRC = r"""(.*?)"""', s, re.S))}
    items = [(c + _ERROR_HELPER, opts) for c in sorted(cuda)]  # once each: passthrough candidates share one kernel
    NvccCompiler(jobs=jobs).compile_many(items)  # failures show up again, typed, in the evaluation
    return time.perf_counter() - started


def evaluator_for(problem: Path, compile_baseline: bool, out: Path | None = None) -> Any:
    """`out`: where the candidates are written, readable in the jail wherever it is (the home is hidden)."""
    from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
    from kernelwright.tools.measure.timing import BenchSettings

    settings = EvalSettings(compile_baseline=compile_baseline,
                            bench=BenchSettings(rep_ms=100.0, min_trials=50, max_total_ms=3000.0),
                            visible_paths=(str(out.resolve()),) if out is not None else ())
    return Evaluator(problem, settings)


def run_problem(problem: Path, out: Path, prep: dict[str, Any], *, tune_budget: int,
                compile_baseline: bool, evaluator: Any = None) -> dict[str, Any]:
    from kernelwright.agents.offline.tune import tune

    started = time.perf_counter()
    candidates = prep["candidates"]
    row: dict[str, Any] = {"problem": problem.stem, "verified": False, "success": False,
                           "variants": [c.variant for c in candidates], "kept_aten_ops": list(candidates[0].kept_aten_ops)}
    with evaluator or evaluator_for(problem, compile_baseline, out) as ev:
        result = tune(problem, lambda p: ev.evaluate(p).to_dict(), budget=max(tune_budget, len(candidates)),
                      out_dir=out / "candidates" / problem.stem / "tuned", traced=prep["traced"], candidates=candidates)
        row.update(outcome(result, lambda p: ev.sanitize(p).to_dict()))
        baselines = ev.baselines() if row["verified"] else {}
        row["reference_durations_s"] = dict(ev.reference_durations_s)
    row.update(eager_ms=_median_ms(baselines.get("eager")), compiled_ms=_median_ms(baselines.get("compiled")))
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def outcome(result: Any, sanitize: Any) -> dict[str, Any]:
    """A problem's row from its tuning history: the best passed trial counts as verified only once memcheck
    (graphs.sanitizing, the run's rule) has not rejected it; on memory errors the next best is tried."""
    from kernelwright.agents.offline.tune import TuneTrial
    from kernelwright.graphs.sanitizing import sanitize_in_order
    from kernelwright.tools.harness.sanitizer import OUT_OF_BOUNDS

    ranked = sorted((t for t in result.history if t.passed), key=TuneTrial.score, reverse=True)
    check = sanitize_in_order([(t.path, Path(t.path)) for t in ranked], sanitize)
    rejected = set(check.rejected)
    # The winner's verdict; with no winner, the best kernel's (memory errors), so the row says why.
    verdict = check.verdicts[check.winner] if check.winner else next(iter(check.verdicts.values()), {})
    row: dict[str, Any] = {
        "verified": False, "success": False, "status": "verified" if check.winner else "not_verified",
        "evaluations": result.evaluations,
        "trials": [{"variant": t.variant, "phase": t.phase, "status": "rejected" if t.path in rejected else t.status,
                    "reason": OUT_OF_BOUNDS if t.path in rejected else t.reason, "speedup_vs_eager": t.speedup_vs_eager}
                   for t in result.history],
        "sanitized": bool(verdict.get("sanitized")), "sanitizer_status": verdict.get("status"),
        "sanitizer_message": verdict.get("message") or "", "sanitizer_rejected": [Path(p).name for p in check.rejected]}
    best = next((t for t in ranked if t.path == check.winner), None)
    if best is None:
        if rejected:
            row["reason"] = OUT_OF_BOUNDS
        return row
    row.update(verified=True, best_variant=best.variant, best_params=best.params, best_ms=best.median_ms,
               speedup_vs_eager=best.speedup_vs_eager, speedup_vs_compile=best.speedup_vs_compile, best_path=best.path,
               success=best.speedup_vs_eager is not None and best.speedup_vs_eager >= SUCCESS_THRESHOLD)
    return row


def prewarm_compile(problems: list[Path], parallel: int) -> Any:
    """Start compiling every problem's torch.compile baseline in `parallel` throwaway reference workers.

    Why: the baseline's compile (10-60 s of CPU a problem) otherwise runs one problem at a time inside the
    measured loop. Inductor's on-disk caches are shared, so the real baseline, compiled again in the
    evaluation's own reference worker, becomes a cache hit. Returns a future; wait for it before timing
    anything, so no compile competes with a measurement."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="kw-prewarm")
    futures = [pool.submit(_compile_once, p) for p in problems]
    pool.shutdown(wait=False)
    return futures


def _compile_once(problem: Path) -> tuple[str, float, str | None]:
    from kernelwright.tools.measure.timing import BenchSettings
    from kernelwright.tools.problem.inputs import InputSpec
    from kernelwright.tools.sandbox.pool import SandboxWorker, WorkerOptions

    started = time.perf_counter()
    worker = SandboxWorker("reference", WorkerOptions())
    try:
        worker.start()
        worker.request("load", timeout_s=600, problem=str(problem), init_seed=42)
        tiny = BenchSettings(warmup_ms=1.0, rep_ms=1.0, min_trials=1, max_trials=2, min_slow_trials=1, flush_l2=False)
        worker.request("time", timeout_s=900, target="compiled", input=InputSpec(1555).to_dict(), n_sets=1,
                       settings=tiny.to_dict(), compile_mode=None)
        return problem.stem, time.perf_counter() - started, None
    except Exception as exc:  # the real baseline will report it properly
        return problem.stem, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    finally:
        worker.close()


def _start_evaluator(problem: Path, compile_baseline: bool, out: Path | None = None) -> Any:
    """An Evaluator whose workers are started and problem loaded (no GPU work beyond building the Model)."""
    try:
        ev = evaluator_for(problem, compile_baseline, out)
    except Exception:  # noqa: BLE001 - run_problem meets the same error again and records it
        return None
    try:
        ev.check_problem()
    except Exception:  # noqa: BLE001 - likewise
        pass
    return ev


def summarise(rows: list[dict[str, Any]], categories: dict[str, str]) -> dict[str, Any]:
    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    verified = [r for r in rows if r.get("verified")]
    success = [r for r in rows if r.get("success")]
    fused = [r for r in rows if categories.get(r["problem"]) == "fused_chain"]
    # What a user gets: the offline kernel where it succeeded, eager (1.0x) elsewhere.
    effective = [r["speedup_vs_eager"] if r.get("success") else 1.0 for r in rows]
    return {
        "precision": "strict", "n": len(rows), "verified": len(verified), "success": len(success),
        "median_speedup_vs_eager_verified": med([r["speedup_vs_eager"] for r in verified if r.get("speedup_vs_eager")]),
        "median_speedup_vs_eager_success": med([r["speedup_vs_eager"] for r in success]),
        "median_speedup_vs_eager_effective_all": med(effective),
        "median_speedup_vs_compile_verified": med([r["speedup_vs_compile"] for r in verified if r.get("speedup_vs_compile")]),
        "median_speedup_vs_compile_success": med([r["speedup_vs_compile"] for r in success if r.get("speedup_vs_compile")]),
        "fused_chain_n": len(fused),
        "median_speedup_vs_eager_fused_chain_verified": med([r["speedup_vs_eager"] for r in fused
                                                             if r.get("verified") and r.get("speedup_vs_eager")]),
        "slower_than_threshold": [r["problem"] for r in verified if not r.get("success")],
        "not_verified": [r["problem"] for r in rows if not r.get("verified")],
        "sanitized": sum(bool(r.get("sanitized")) for r in verified),
        "verified_not_sanitized": [r["problem"] for r in verified if not r.get("sanitized")],
    }


def speedup_text(speedup: Any) -> str:
    """'1.23x', or '-' where there is no figure (nothing verified, or not measured): never a made-up 0.00x."""
    return f"{speedup:.2f}x" if isinstance(speedup, (int, float)) else "-"


def sanitized_cell(row: dict[str, Any]) -> str:
    """'yes', 'no (status)', or '-' for a row measured before memcheck was run on winners (or with nothing to run)."""
    if "sanitized" not in row or not (row["sanitized"] or row.get("sanitizer_status")):
        return "-"
    return "yes" if row["sanitized"] else f"no ({row.get('sanitizer_status')})"


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any], categories: dict[str, str]) -> str:
    from kernelwright.tools.verify.precision import precision_profile

    lines = [precision_profile(summary.get("precision", "strict")).label() + ".", "","| problem | category | status | success | sanitized | vs eager | vs compile | variant | kept ATen ops |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['problem']} | {categories.get(r['problem'], '')} | {r.get('status', '?')} | "
                     f"{'yes' if r.get('success') else 'no'} | {sanitized_cell(r)} | {speedup_text(r.get('speedup_vs_eager'))} | "
                     f"{speedup_text(r.get('speedup_vs_compile'))} | {r.get('best_variant', '-')} | "
                     f"{', '.join(r.get('kept_aten_ops', [])) or '-'} |")
    lines += ["", "```json", json.dumps(summary, indent=2), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("offline_bench"))
    parser.add_argument("--suite-dir", type=Path, default=SUITE_DIR)
    parser.add_argument("--problems", default="", help="comma-separated name fragments (e.g. 07,softmax)")
    parser.add_argument("--tune-budget", type=int, default=5, help="evaluations per problem (variants included)")
    parser.add_argument("--compile-baseline", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--time-budget-s", type=float, default=480.0,
                        help="tune only while the run is on schedule for this wall time; else variants only")
    parser.add_argument("--jobs", type=int, default=0, help="parallel nvcc builds (default: all cores)")
    parser.add_argument("--gpus", default="", help="e.g. 0,1: one child run per GPU, problems dealt round-robin")
    parser.add_argument("--prewarm", type=int, default=0,
                        help="with --compile-baseline: compile the baselines in N parallel workers first")
    args = parser.parse_args(argv)
    problems = sorted(p for p in args.suite_dir.glob("*.py") if p.name[:1].isdigit())
    if args.problems:
        wanted = [w.strip() for w in args.problems.split(",") if w.strip()]
        problems = [p for p in problems if any(w in p.stem for w in wanted)]
    categories = _categories(args.suite_dir)
    results_dir = args.out / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = {p.stem: json.loads((results_dir / f"{p.stem}.json").read_text()) for p in problems
            if (results_dir / f"{p.stem}.json").exists()}
    pending = [p for p in problems if p.stem not in done]
    if gpus := parse_gpus(args.gpus):
        return _over_gpus(list(sys.argv[1:] if argv is None else argv), args.out, problems, pending, categories, gpus,
                          started)
    prewarm = prewarm_compile(pending, args.prewarm) if args.compile_baseline and args.prewarm > 0 else []
    prepared: dict[str, dict[str, Any]] = {}
    for i, problem in enumerate(pending):
        try:
            prepared[problem.stem] = prepare(problem, args.out)
        except Exception as exc:  # one broken problem never stops the run
            prepared[problem.stem] = {"row": _crash(problem, exc)}
        print(f"[translate {i + 1}/{len(pending)}] {problem.stem}: "
              f"{len(prepared[problem.stem].get('candidates', []))} candidate(s)", flush=True)
    build_s = prebuild(prepared, args.jobs or (os.cpu_count() or 4))
    print(f"built all candidates in {build_s:.0f} s; translation + build {time.perf_counter() - started:.0f} s", flush=True)
    if prewarm:
        warmed = [f.result() for f in prewarm]
        failed = [f"{name}: {err}" for name, _, err in warmed if err]
        print(f"torch.compile baselines prewarmed: {len(warmed) - len(failed)}/{len(warmed)}, slowest "
              f"{max(s for _, s, _ in warmed):.0f} s; wall {time.perf_counter() - started:.0f} s"
              + (f"; failed: {failed[:3]}" if failed else ""), flush=True)
    from concurrent.futures import ThreadPoolExecutor

    starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kw-next-evaluator")
    evaluable = [p for p in pending if "row" not in prepared[p.stem]]
    upcoming = {p.stem: starter.submit(_start_evaluator, p, args.compile_baseline, args.out) for p in evaluable[:1]}
    following = {p.stem: q for p, q in zip(evaluable, evaluable[1:])}
    rows = []
    for i, problem in enumerate(problems):
        path = results_dir / f"{problem.stem}.json"
        if problem.stem in done:
            rows.append(done[problem.stem])
            print(f"[{i + 1}/{len(problems)}] {problem.stem}: done before, skipped", flush=True)
            continue
        prep = prepared[problem.stem]
        on_schedule = time.perf_counter() - started < args.time_budget_s * (i + 0.5) / max(len(problems), 1)
        if "row" in prep:
            row = prep["row"]
        else:
            # The next problem's workers start (and load it) while this one is measured: no GPU work but
            # building its Model, and it takes worker start-up out of the serial path.
            if (after := following.get(problem.stem)) is not None:
                upcoming[after.stem] = starter.submit(_start_evaluator, after, args.compile_baseline, args.out)
            try:
                evaluator = upcoming.pop(problem.stem).result() if problem.stem in upcoming else None
                row = run_problem(problem, args.out, prep, tune_budget=args.tune_budget if on_schedule else 0,
                                  compile_baseline=args.compile_baseline, evaluator=evaluator)
            except Exception as exc:  # one broken problem never stops the run
                row = _crash(problem, exc)
        path.write_text(json.dumps(row, indent=2, default=str))
        rows.append(row)
        _write_summary(args.out, rows, categories, started, partial=True)  # a stopped run still has its table
        prepared.pop(problem.stem, None)  # frees its traced models and inputs
        print(f"[{i + 1}/{len(problems)}] {problem.stem}: {row.get('status')} "
              f"vs eager {row.get('speedup_vs_eager') or 0:.2f}x ({row.get('best_variant', '-')}), "
              f"sanitized {sanitized_cell(row)} "
              f"in {row.get('seconds', 0)} s; total {time.perf_counter() - started:.0f} s", flush=True)
    for future in upcoming.values():  # nothing should be left; close whatever is
        if (ev := future.result()) is not None:
            ev.close()
    starter.shutdown()
    summary = _write_summary(args.out, rows, categories, started, partial=False)
    print(json.dumps(summary, indent=2))
    return 0


def _over_gpus(argv: list[str], out: Path, problems: list[Path], pending: list[Path], categories: dict[str, str],
               gpus: list[str], started: float) -> int:
    """The pending problems as one child run per GPU, then every row (earlier ones included) in out's table."""
    groups = [(gpu, group) for gpu, group in zip(gpus, round_robin([p.stem for p in pending], len(gpus))) if group]
    base = without_option(argv, "--gpus", "--out", "--problems")
    codes = run_on_gpus("kernelwright.eval.bench.offline",
                        [[*base, "--out", str(out / f"gpu{gpu}"), "--problems", ",".join(group)] for gpu, group in groups],
                        [gpu for gpu, _ in groups])
    owner = {stem: gpu for gpu, group in groups for stem in group}
    rows = []
    for problem in problems:
        path = out / "results" / f"{problem.stem}.json"
        child = out / f"gpu{owner.get(problem.stem)}" / "results" / f"{problem.stem}.json"
        if problem.stem in owner and child.exists():
            row = {**json.loads(child.read_text()), "gpu_index": owner[problem.stem]}
            path.write_text(json.dumps(row, indent=2, default=str))
            rows.append(row)
        elif path.exists():  # measured by an earlier run
            rows.append(json.loads(path.read_text()))
    summary = _write_summary(out, rows, categories, started, partial=len(rows) < len(problems))
    print(json.dumps(summary, indent=2))
    failed = [c for c in codes if c]
    return failed[0] if failed else 0


def _write_summary(out: Path, rows: list[dict[str, Any]], categories: dict[str, str], started: float, *,
                   partial: bool) -> dict[str, Any]:
    summary = summarise(rows, categories)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    summary["partial"] = partial  # True while the run is still going (or was stopped before the end)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2, default=str))
    (out / "summary.md").write_text(markdown(rows, summary, categories))
    return summary


def _crash(problem: Path, exc: Exception) -> dict[str, Any]:
    return {"problem": problem.stem, "status": "crash", "verified": False, "success": False,
            "message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}


if __name__ == "__main__":
    raise SystemExit(main())
