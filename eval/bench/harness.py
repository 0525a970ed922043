"""The harness at KernelBench scale: every problem's eager reference against an honest candidate.

    python -m kernelwright.eval.bench.harness --problems ../shared/kernelbench/level1 --out bench_l1
           [--only 19,23_Softmax] [--match conv] [--candidates DIR | --prepare-only] [--time-budget-s 540]
           [--baselines-only] [--compile-baseline] [--precision strict|kernelbench] [--no-overlap] [--repeats N]

Per problem, one Evaluator (closed after): the offline translator's first variant, or a passthrough candidate
(eval/bench/passthrough_candidate.py), is verified and timed; the row holds the input size, seconds per stage, peak
host RSS and PSS of this process tree and its GPU memory (a sampler thread), the verdict, and the eager
(default and strict fp32) and torch.compile baselines where measured. Candidates are written first (each in a
memory-capped child, eval/bench/harness_prepare.py); --prepare-only stops there, so they can be made on a CPU
machine and carried over with --candidates. --baselines-only times the reference side only.

Rows go to <out>/results/<problem>.json as each problem ends; a rerun skips them (a problem the last run died
in is recorded as `killed`, not retried). <out>/summary.{json,md} is rewritten after every problem, partial
until all are done. Exit codes: 0 all done, 3 stopped by --time-budget-s (rerun to resume), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from kernelwright.eval.bench.harness_prepare import CandidateEntry, candidate_path, prepare_all, read_manifest
from kernelwright.eval.bench.harness_table import HarnessRow, Mode, final_line, read_rows, write_row, write_summary
from kernelwright.eval.bench.memory_sampler import TreeSampler
from kernelwright.tools.errors import ReferenceFailure
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.verify.precision import PROFILE_NAMES

EXIT_PARTIAL = 3


class HarnessEvaluator(Protocol):
    """What the benchmark uses of tools.harness.evaluate.Evaluator (tests pass a fake)."""

    reference_durations_s: dict[str, float]

    def check_problem(self) -> dict[str, Any]: ...
    def reference(self) -> Any: ...
    def evaluate(self, candidate: str | Path) -> Any: ...
    def baselines(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


EvaluatorFactory = Callable[[Path, EvalSettings], HarnessEvaluator]


def open_evaluator(problem: Path, settings: EvalSettings) -> HarnessEvaluator:
    """An Evaluator whose two workers are already starting (the reference one too, so that a prestarted
    evaluator's Python, torch and CUDA start-up overlaps the previous problem)."""
    ev = Evaluator(problem, settings)
    ev.warm()
    return ev


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    out: Path
    mode: Mode = "evaluate"
    candidates: Path | None = None
    compile_baseline: bool = False
    precision: str | None = None
    time_budget_s: float | None = None
    overlap: bool = True
    bench: BenchSettings = BenchSettings(rep_ms=50.0, min_trials=20, max_total_ms=1500.0)
    prepare_budget_bytes: int = 4 << 30
    prepare_jobs: int = 1
    prepare_timeout_s: float = 600.0
    prebuild: bool = True
    sample_interval_s: float = 0.05
    repeats: int = 0  # further evaluations of the candidate with the warm evaluator (the harness's own overhead)


def eval_settings(options: BenchOptions) -> tuple[EvalSettings, str | None]:
    """The harness settings and the precision profile they use."""
    precision = options.precision or "strict"
    # the candidates' folders stay readable in the jail, wherever --out and --candidates are (the home is hidden)
    shown = tuple(str(p.resolve()) for p in (options.out, options.candidates) if p is not None)
    return EvalSettings(compile_baseline=options.compile_baseline, bench=options.bench, precision=precision,
                        visible_paths=shown), precision


def discover(paths: Sequence[Path], only: str = "", match: str = "") -> list[Path]:
    """Problem files under `paths` (files, or folders of *.py), in KernelBench order (numeric prefix), filtered by
    --only (exact stems or numeric ids) and --match (case-insensitive substring of the file name)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in path.glob("*.py") if not p.name.startswith("_")]
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"bench_harness: no such problem file or folder: {path}")
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    if wanted:
        found = [p for p in found if p.stem in wanted or p.stem.split("_", 1)[0] in wanted]
    if match:
        found = [p for p in found if match.lower() in p.name.lower()]
    stems = [p.stem for p in found]
    if dupes := sorted({s for s in stems if stems.count(s) > 1}):
        raise SystemExit(f"bench_harness: two problems named {dupes[0]}: give each folder its own --out")
    return sorted(found, key=lambda p: (int(m.group()) if (m := re.match(r"\d+", p.stem)) else 1 << 30, p.stem))


def prepare_candidates(problems: Sequence[Path], options: BenchOptions, log: Callable[[str], None]) -> dict[str, CandidateEntry]:
    """Entries for every problem: from --candidates where it has one, the rest prepared into <out>/candidates."""
    given: dict[str, CandidateEntry] = {}
    if options.candidates:
        listed = read_manifest(options.candidates)
        for p in problems:
            if candidate_path(options.candidates, p.stem).exists():
                given[p.stem] = listed.get(p.stem) or CandidateEntry(p.stem, str(p.resolve()), "given",
                                                                     f"{options.candidates} (not in its manifest)")
    missing = [p for p in problems if p.stem not in given]
    if options.candidates and missing:
        log(f"{len(missing)} problem(s) have no candidate in {options.candidates}; preparing them here")
    entries = {**given}
    if missing:
        done = prepare_all(missing, options.out / "candidates", budget_bytes=options.prepare_budget_bytes,
                           timeout_s=options.prepare_timeout_s, jobs=options.prepare_jobs,
                           on_done=lambda e: log(f"[prepare] {e.problem}: {e.kind} ({e.why[:100]}) {e.seconds:.1f} s"),
                           allow_tf32=eval_settings(options)[0].profile.allows_tf32)
        entries.update({p.stem: done[p.stem] for p in missing})
    return entries


def _candidate_file(options: BenchOptions, problem: str) -> Path:
    """The --candidates folder's file where it has one (prepare_candidates took it from there), else ours."""
    if options.candidates and candidate_path(options.candidates, problem).exists():
        return candidate_path(options.candidates, problem)
    return candidate_path(options.out / "candidates", problem)


def _prebuild(files: list[Path], log: Callable[[str], None]) -> None:
    """Build every candidate's CUDA in parallel first, where there is an nvcc and a GPU to build for."""
    from kernelwright.eval.bench.offline import prebuild_sources
    from kernelwright.tools.errors import ToolUnavailable
    from kernelwright.tools.measure.gpu_info import gpu_facts

    if shutil.which("nvcc") is None:
        return
    try:
        gpu_facts(use_torch=False)
    except ToolUnavailable:
        return
    seconds = prebuild_sources([f.read_text() for f in files], os.cpu_count() or 4)
    log(f"built {len(files)} candidates' CUDA in {seconds:.1f} s")


def measure(problem: Path, candidate: Path | None, entry: CandidateEntry | None, options: BenchOptions,
            settings: EvalSettings, precision: str | None, factory: EvaluatorFactory,
            evaluator: HarnessEvaluator | None = None) -> HarnessRow:
    """One problem's row; never raises (a failure becomes the row)."""
    base: dict[str, Any] = {"problem": problem.stem, "mode": options.mode, "precision": precision,
                            "prestarted": evaluator is not None,
                            "candidate_kind": entry.kind if entry else None,
                            "candidate_variant": entry.variant if entry else None,
                            "input_bytes": entry.input_bytes if entry else None}
    started = time.perf_counter()
    with TreeSampler(interval_s=options.sample_interval_s) as sampler:
        try:
            ev = evaluator if evaluator is not None else factory(problem, settings)
            try:
                fields = _run(ev, candidate, options.mode, options.repeats)
            finally:
                ev.close()
        except ReferenceFailure as exc:
            fields = {"status": "reference_failure", "message": _first_line(exc.message), "error": exc.to_dict()}
        except Exception as exc:  # noqa: BLE001 - one broken problem never stops the run
            fields = {"status": "crash", "message": _first_line(f"{type(exc).__name__}: {exc}"),
                      "error": {"type": type(exc).__name__, "traceback": traceback.format_exc()[-4000:]}}
    if fields.get("input_bytes") is None:
        fields.pop("input_bytes", None)
    return HarnessRow(**{**base, **fields, "memory": sampler.peaks().to_dict(),
                         "seconds": round(time.perf_counter() - started, 2)})


def _run(ev: HarnessEvaluator, candidate: Path | None, mode: Mode, repeats: int = 0) -> dict[str, Any]:
    stages: dict[str, float] = {}
    t = time.perf_counter()
    info = ev.check_problem()
    stages["problem_load"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    ev.reference()  # before the candidate, so its verify stage is the candidate's alone
    stages["reference"] = round(time.perf_counter() - t, 3)
    fields: dict[str, Any] = {"input_bytes": info.get("input_bytes"), "stages_s": stages}
    if mode == "baselines":
        t = time.perf_counter()
        timing = ev.baselines()
        stages["baselines"] = round(time.perf_counter() - t, 3)
        errors = [f"{k}: {_first_line(str(v['error'].get('message', v['error'])))}" for k, v in timing.items()
                  if isinstance(v, dict) and "error" in v]
        fields.update(status="baselines" if not errors else "error", message="; ".join(errors))
    else:
        assert candidate is not None
        t = time.perf_counter()
        report = ev.evaluate(candidate)
        stages["evaluate"] = round(time.perf_counter() - t, 3)
        fields["warm_eval_s"] = [ev.evaluate(candidate).durations_s.get("total", 0.0) for _ in range(repeats)]
        timing = report.timing
        fields.update(status=report.status, reason=report.reason, message=_first_line(report.message),
                      durations_s=dict(report.durations_s), speedup_vs_eager=report.speedup_vs_eager,
                      candidate_ms=_median(timing.get("candidate")), error=report.error if report.status != "passed" else None)
    fields.update(reference_durations_s=dict(ev.reference_durations_s), eager_ms=_median(timing.get("eager")),
                  eager_strict_ms=_median(timing.get("eager_strict")), compiled_ms=_median(timing.get("compiled")))
    return fields


def _median(stats: Any) -> float | None:
    return stats.get("median_ms") if isinstance(stats, dict) else None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def run_benchmark(problems: Sequence[Path], options: BenchOptions, *, factory: EvaluatorFactory = open_evaluator,
                  log: Callable[[str], None] = print) -> tuple[dict[str, Any], bool]:
    """Measure every problem without a row yet; (summary, complete). Rows and summary are written as it goes."""
    started = time.perf_counter()
    out = options.out
    (out / "results").mkdir(parents=True, exist_ok=True)
    names = [p.stem for p in problems]
    rows = read_rows(out, names)
    for stem in names:  # a marker without a row: the last run died in this problem (OOM kill, crash)
        marker = out / "results" / f"{stem}.started"
        if stem not in rows and marker.exists():
            rows[stem] = HarnessRow(stem, options.mode, "killed", message="the previous run ended during this "
                                    "problem (killed: out of memory, or the command's time limit)")
            write_row(out, rows[stem])
            marker.unlink()
    pending = [p for p in problems if p.stem not in rows]
    settings, precision = eval_settings(options)
    summary_settings = {"mode": options.mode, "compile_baseline": options.compile_baseline, "precision": precision,
                        "bench": dataclasses.asdict(options.bench), "overlap": options.overlap}
    entries: dict[str, CandidateEntry] = {}
    files: dict[str, Path] = {}
    if options.mode == "evaluate" and pending:
        entries = prepare_candidates(pending, options, log)
        files = {k: _candidate_file(options, k) for k in entries}
        if options.prebuild:
            _prebuild(list(files.values()), log)

    def summary(partial: bool) -> dict[str, Any]:
        ordered = [rows[n] for n in names if n in rows]
        return write_summary(out, ordered, len(names), options.mode, partial=partial,
                             wall_s=time.perf_counter() - started, settings=summary_settings)

    slowest = 0.0
    upcoming: HarnessEvaluator | None = None  # the next problem's, started early
    try:
        for i, problem in enumerate(pending):
            elapsed = time.perf_counter() - started
            if options.time_budget_s is not None and elapsed + slowest > options.time_budget_s:
                log(f"time budget: {elapsed:.0f} s spent, the slowest problem took {slowest:.0f} s; stopping "
                    f"before {problem.stem} (rerun the same command to go on)")
                break
            marker = out / "results" / f"{problem.stem}.started"
            marker.write_text(str(os.getpid()))
            current, upcoming = upcoming, None
            if options.overlap and i + 1 < len(pending):
                upcoming = _open_quietly(factory, pending[i + 1], settings)
            row = measure(problem, files.get(problem.stem), entries.get(problem.stem), options, settings, precision,
                          factory, evaluator=current)
            write_row(out, row)
            marker.unlink()
            rows[problem.stem] = row
            slowest = max(slowest, row.seconds)
            summary(partial=True)
            log(f"[{i + 1}/{len(pending)}] {problem.stem}: {row.status}{' ' + row.reason if row.reason else ''} "
                f"in {row.seconds:.1f} s, peak RSS {row.memory.get('rss_bytes', 0) / 1e9:.2f} GB")
    finally:
        if upcoming is not None:  # stopped early (budget, Ctrl-C): its workers must not outlive us
            upcoming.close()
    result = summary(partial=len(rows) < len(names))
    log(final_line(result))
    return result, not result["partial"]


def _open_quietly(factory: EvaluatorFactory, problem: Path, settings: EvalSettings) -> HarnessEvaluator | None:
    """The next problem's evaluator, started now; None if that fails (its own measurement meets the error)."""
    try:
        return factory(problem, settings)
    except Exception:  # noqa: BLE001
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=Path, nargs="+", help="KernelBench problem files or folders (required)")
    parser.add_argument("--out", type=Path, default=Path("bench_harness"))
    parser.add_argument("--only", default="", help="comma-separated problem names or numeric ids (19,23_Softmax)")
    parser.add_argument("--match", default="", help="keep file names containing this (case-insensitive), e.g. conv")
    parser.add_argument("--candidates", type=Path, help="a folder of prepared candidates (--prepare-only's)")
    parser.add_argument("--prepare-only", action="store_true", help="write the candidates and their manifest, no GPU")
    parser.add_argument("--baselines-only", action="store_true", help="time eager (default, strict) only, no candidate")
    parser.add_argument("--compile-baseline", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--precision", choices=PROFILE_NAMES, help="precision profile (default strict); every table says which")
    parser.add_argument("--time-budget-s", type=float, help="start no problem that could end past this wall time")
    parser.add_argument("--no-overlap", action="store_true",
                        help="do not start the next problem's workers during the current one (slower; cleaner peaks)")
    parser.add_argument("--prepare-mem-gb", type=float, default=4.0, help="resident memory cap of a preparing child")
    parser.add_argument("--prepare-jobs", type=int, default=1, help="problems prepared at once")
    parser.add_argument("--repeats", type=int, default=0,
                        help="evaluate each candidate N more times with the warm evaluator (harness overhead)")
    args = parser.parse_args(argv)
    if not args.problems:
        parser.error("--problems is required: KernelBench problem files or folders, "
                     "e.g. --problems ../shared/kernelbench/level1")
    if args.prepare_only and (args.baselines_only or args.candidates):
        parser.error("--prepare-only writes candidates; it takes neither --baselines-only nor --candidates")
    problems = discover(args.problems, args.only, args.match)
    if not problems:
        parser.error(f"no problem matched under {', '.join(map(str, args.problems))}")
    options = BenchOptions(out=args.out, mode="baselines" if args.baselines_only else "evaluate",
                           candidates=args.candidates, compile_baseline=args.compile_baseline, precision=args.precision,
                           time_budget_s=args.time_budget_s, overlap=not args.no_overlap,
                           prepare_budget_bytes=int(args.prepare_mem_gb * (1 << 30)), prepare_jobs=args.prepare_jobs,
                           repeats=args.repeats)
    if args.prepare_only:
        entries = prepare_candidates(problems, options, print)
        kinds = [e.kind for e in entries.values()]
        print(f"prepared {len(entries)} candidates in {args.out / 'candidates'}: {kinds.count('offline')} offline, "
              f"{kinds.count('passthrough')} passthrough (manifest.json says why)")
        return 0
    _, complete = run_benchmark(problems, options)
    return 0 if complete else EXIT_PARTIAL


if __name__ == "__main__":
    sys.exit(main())
