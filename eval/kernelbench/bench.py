"""A bench end to end, for the front door: plan it (problems, lanes, models, the results folder), run it, and
write its table.

    <out>/bench.json        what the folder holds (mode, precision profile, search and harness settings, paths):
                            a resume continues the same bench
    <out>/results/<level>/<problem>.json   one row per finished problem (rows.ResultStore)
    <out>/runs/<level>-<problem>/          each problem's run folder (mode "run")
    <out>/candidates/<level>/<problem>.py  each problem's candidate (--translate-only)
    <out>/logs/<level>/<problem>.log       each problem's process output (mode "run")
    <out>/summary.md, summary.json, report.html   the table, rewritten as each problem finishes
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from kernelwright.agents.llm import ModelPlan
from kernelwright.eval.kernelbench.environment import EnvironmentFailure
from kernelwright.eval.kernelbench.full_job import RunJob, graph_solver
from kernelwright.eval.kernelbench.harness_settings import HarnessSettings
from kernelwright.eval.kernelbench.markdown import markdown
from kernelwright.eval.kernelbench.problems import BenchProblem, find_problems, natural_key
from kernelwright.eval.kernelbench.rows import BenchMode, ProblemRow, ResultStore
from kernelwright.eval.kernelbench.runner import BenchEvent, BenchRun, Lane, Solve, run_problems
from kernelwright.eval.kernelbench.search import SearchSettings, flags_text
from kernelwright.eval.kernelbench.table import BenchTable, summarise
from kernelwright.eval.kernelbench.translate_only import translate_solver
from kernelwright.graphs.executors import ExecutorSettings, check_executor
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.measure.gpu_gate import host_gate_dir

MANIFEST_FILE = "bench.json"
SUMMARY_MD, SUMMARY_JSON, PAGE_FILE = "summary.md", "summary.json", "report.html"
RUNS_DIR = "runs"
SEARCH_NOT_RECORDED = ("Search settings: not recorded (this folder's bench.json predates them, or is missing), so "
                       "the budget that made these rows is unknown")
SEARCH_TRANSLATE_ONLY = "Search: none (translate-only: the offline translator's candidate, compiled once)"


class BenchError(KernelwrightError):
    """The bench cannot start as asked (its results folder, its GPUs): the caller's input, nothing ran."""

    kind = "bench"


@dataclass(frozen=True, slots=True)
class BenchOptions:
    out: Path
    resume: bool = False
    gpus: tuple[str, ...] | None = None  # None: every visible GPU
    translate_only: bool = False
    jobs: int = 1  # --translate-only: problems translated and compiled at once
    # problems run at once on each GPU: lanes share it through its gate (tools.measure.gpu_gate), so they overlap
    # only their CPU-only and untimed work, never a timing; like --gpus, not a search setting (a resume may change it)
    lanes_per_gpu: int = 1
    # with resume: problems to measure again though they have a row (a key such as level2/15_X, or a file's stem)
    redo: tuple[str, ...] = ()

    @property
    def mode(self) -> BenchMode:
        return "translate_only" if self.translate_only else "run"


@dataclass(frozen=True, slots=True)
class BenchManifest:
    mode: BenchMode
    precision: str
    paths: tuple[str, ...]
    started: str = ""
    # The settings every row of a full bench is made with; None for --translate-only (no search), and for a
    # manifest written before they were recorded (unknown: such a folder resumes without the comparison).
    search: SearchSettings | None = None
    # How every row is judged and timed (harness_settings); None as for search, and for a manifest from before them.
    harness: HarnessSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["harness"] = self.harness.to_dict() if self.harness is not None else None
        return data

    @classmethod
    def read(cls, out: Path) -> BenchManifest | None:
        try:
            data = json.loads((out / MANIFEST_FILE).read_text())
            return cls(data["mode"], data["precision"], tuple(data.get("paths") or ()), data.get("started", ""),
                       _read_search(data.get("search")), HarnessSettings.from_dict(data.get("harness")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def search_text(self) -> str:
        """The table's line on the search settings (under the precision line)."""
        if self.mode == "translate_only":
            return SEARCH_TRANSLATE_ONLY
        return self.search.describe() if self.search is not None else SEARCH_NOT_RECORDED


def _read_search(data: Any) -> SearchSettings | None:
    """A manifest's search settings; None (unknown) where it has none or they are unreadable."""
    try:
        return SearchSettings.from_dict(data) if isinstance(data, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def search_line(out: Path) -> str:
    """The search settings of the bench in `out`, as its table states them."""
    return _search_text(BenchManifest.read(out))


def _search_text(manifest: BenchManifest | None) -> str:
    return manifest.search_text() if manifest is not None else SEARCH_NOT_RECORDED


@dataclass(frozen=True)
class BenchPlan:
    paths: tuple[str, ...]  # as the user named them
    problems: list[BenchProblem]
    lanes: list[Lane]
    options: BenchOptions
    job: RunJob
    models: str  # which models the runs use, or why offline (nothing for --translate-only)
    finished: int  # problems with a row already (skipped)
    search: SearchSettings | None = None  # what every row is made with (None for --translate-only)
    harness: HarnessSettings | None = None  # how every row is judged and timed (None for --translate-only)
    redo: tuple[str, ...] = ()  # problems whose old row recorded the environment's failure: run again
    again: tuple[str, ...] = ()  # problems the user asked to measure again (--redo): their rows stay until replaced

    def start_line(self) -> str:
        """What the bench is about to do: '25 problems (0 finished before, redoing 25 problems that failed for
        the environment) on gpu0; results in runs/kb/level3'."""
        before = f"{self.finished} finished before"
        if self.redo:
            before += f", redoing {len(self.redo)} problem{'s' if len(self.redo) != 1 else ''} that failed for the " \
                      "environment"
        if self.again:
            before += f", measuring {len(self.again)} again as asked"
        # several lanes on one host: which CPUs each has (whole physical cores: gpu_split.cpu_shares)
        cores = len(self.lanes) > 1 and all(lane.cores for lane in self.lanes)
        lanes = ", ".join(lane.name + (f" (CPUs {_cpu_list(lane.cores or ())})" if cores else "") for lane in self.lanes)
        return f"{len(self.problems)} problems ({before}) on {lanes}; results in {self.options.out}"

    @property
    def store(self) -> ResultStore:
        return ResultStore(self.options.out)


def _cpu_list(cpus: Sequence[int]) -> str:
    """CPUs as the kernel writes them: 0-3,8-11."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and cpu == runs[-1][-1] + 1:
            runs[-1].append(cpu)
        else:
            runs.append([cpu])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def plan_bench(paths: Sequence[str | Path], options: BenchOptions, job: RunJob,
               visible: Callable[[], list[str]] | None = None) -> BenchPlan:
    """Everything checked before a problem runs: the paths, the results folder, the GPUs and the models.
    InputFileError / BenchError / LLMUnavailable say what is wrong; nothing is written then."""
    if options.redo and not options.resume:
        raise BenchError("--redo measures problems of the bench in --out again: pass --resume too", where=str(options.out))
    problems = find_problems(paths)
    out = options.out
    if out.exists() and not out.is_dir():
        raise BenchError("the results folder is a file", where=str(out))
    manifest = BenchManifest.read(out)
    store = ResultStore(out)
    if not options.resume and (manifest is not None or store.rows()):
        raise BenchError("this folder holds a bench already: pass --resume to continue it (finished problems are "
                         "not redone), or choose another --out", where=str(out))
    if manifest is not None and (manifest.mode, manifest.precision) != (options.mode, job.precision):
        raise BenchError(f"this folder holds a {_mode_text(manifest.mode)} bench under the {manifest.precision} "
                         f"precision profile; --resume continues it only with the same mode and profile (asked: "
                         f"{_mode_text(options.mode)}, {job.precision}); choose another --out", where=str(out))
    job = replace(job, setup=replace(job.setup, runs_dir=out / RUNS_DIR))
    if job.setup.executor.kind == "ray":
        lanes, executor = _cluster_lanes(job.setup.executor, options.translate_only)
        job = replace(job, setup=replace(job.setup, executor=executor))
    else:
        lanes = _lanes(options, visible)
    models, search, harness = "", None, None
    if not options.translate_only:
        model_plan = _model_plan(job)
        models = model_plan.describe()
        search = SearchSettings.of(job.setup.run_settings, job.budget, model_plan, job.archive)
        harness = HarnessSettings.of(job.setup.eval_settings)
        if manifest is not None:
            _check_same_settings(search, harness, manifest, out)
    finished = store.finished()
    keys = {p.key for p in problems}
    redo = tuple(sorted(row.key for row in store.failed_for_environment() if row.key in keys))
    again = _asked_again(options, problems)
    return BenchPlan(tuple(str(p) for p in paths), problems, lanes, options, job, models,
                     sum(1 for p in problems if p.key in finished and p.key not in again), search, harness, redo, again)


def _asked_again(options: BenchOptions, problems: Sequence[BenchProblem]) -> tuple[str, ...]:
    """The keys `--redo` names: each name a problem's key (level2/15_X) or its file's stem, among the paths given."""
    keys: list[str] = []
    for name in options.redo:
        matches = [p.key for p in problems if name in (p.key, p.path.stem, p.path.name)]
        if not matches:
            raise BenchError("--redo names no problem among the paths given (name one as level2/15_X or by its "
                             "file's stem)", where=name)
        if len(matches) > 1:
            raise BenchError(f"--redo names {len(matches)} problems ({', '.join(matches)}): name one by its key",
                             where=name)
        keys.append(matches[0])
    return tuple(dict.fromkeys(keys))


def _check_same_settings(search: SearchSettings, harness: HarnessSettings, manifest: BenchManifest,
                         out: Path) -> None:
    """One table, one budget, one judge and one timer: a resume with other search or harness settings would mix rows
    made under both. Every difference of both kinds is named in one error (settings a manifest predates: unknown)."""
    parts = []
    if manifest.search is not None and (differences := search.differences(manifest.search)):
        parts.append("was made with other search settings, and one table must not mix them: "
                     + "; ".join(d.text() for d in differences) + ". --resume continues it only with the same "
                     f"settings (flags: {flags_text(manifest.search)}, and the same --config)")
    if manifest.harness is not None and (differences := harness.differences(manifest.harness)):
        parts.append("was judged and timed with other harness settings, and one table must not mix them: "
                     + "; ".join(d.text() for d in differences) + ". --resume continues it only with the same "
                     "settings (the config file's [harness] and [timing], or their KERNELWRIGHT_HARNESS__* / "
                     "KERNELWRIGHT_TIMING__* variables)")
    if parts:
        raise BenchError("this folder's bench " + "; and it ".join(parts) + "; or choose another --out for the new "
                         "settings", where=str(out))


def _mode_text(mode: BenchMode) -> str:
    return "translate-only" if mode == "translate_only" else "full (agent graph)"


def _model_plan(job: RunJob) -> ModelPlan:
    from kernelwright.graphs.run import choose_models

    return choose_models(job.setup, models=job.models, critic_model=job.critic_model)  # LLMUnavailable: stop now


def _lanes(options: BenchOptions, visible: Callable[[], list[str]] | None) -> list[Lane]:
    from kernelwright.eval.bench.gpu_split import cpu_shares

    if options.translate_only:
        return [Lane(f"cpu{i}") for i in range(max(1, options.jobs))]
    seen = (visible or _visible_gpus)()
    gpus = list(options.gpus) if options.gpus is not None else seen
    if options.gpus is not None:
        missing = [g for g in gpus if g not in seen]
        if missing:
            raise BenchError(f"GPU {', '.join(missing)} not visible here (visible: {', '.join(seen) or 'none'}); "
                             "on a machine without a GPU use --translate-only", where="--gpus")
    if not gpus:
        return [Lane("cpu")]  # no GPU: each run compiles and stops, as `kernelwright run` does there
    k = max(1, options.lanes_per_gpu)
    slots = [(g, f"gpu{g}" if k == 1 else f"gpu{g}.{i + 1}") for g in gpus for i in range(k)]
    # lanes sharing a GPU take turns through its gate; one lane per GPU runs as before (the gate is not yet proven
    # on a GPU: it stays out of the default path until a multi-lane bench has been measured there)
    gate_dir = str(host_gate_dir()) if k > 1 else None
    return [Lane(name, g, tuple(cores) if cores else None, gate_dir=gate_dir)
            for (g, name), cores in zip(slots, cpu_shares(len(slots)))]


def _cluster_lanes(executor: ExecutorSettings, translate_only: bool) -> tuple[list[Lane], ExecutorSettings]:
    check_executor(executor)  # no ray: ExecutorUnavailable, before anything is written
    from kernelwright.eval.kernelbench.cluster import cluster_lanes

    return cluster_lanes(executor, translate_only=translate_only)


def _visible_gpus() -> list[str]:
    from kernelwright.graphs.harness_evaluator import visible_gpus

    return visible_gpus()


@dataclass(frozen=True)
class BenchOutcome:
    run: BenchRun
    table: BenchTable
    files: tuple[Path, ...]  # summary.md, summary.json, report.html

    @property
    def environment(self) -> EnvironmentFailure | None:
        """The machine's failure that stopped the bench before every problem had its row."""
        return self.run.environment


def run_bench(plan: BenchPlan, *, on_event: Callable[[BenchEvent], None] | None = None,
              stop: threading.Event | None = None) -> BenchOutcome:
    """Solve every problem of `plan` without a finished row; the table is rewritten as each one finishes.
    A failure of the environment stops it early (BenchOutcome.environment), with the table of what finished."""
    options, job = plan.options, plan.job
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    for key in plan.redo:
        plan.store.remove(key)  # a wrong verdict, not a result: the table must not count it while it is redone
    manifest = BenchManifest.read(out)
    if manifest is None:
        manifest = BenchManifest(options.mode, job.precision, plan.paths, time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 plan.search, plan.harness)
        (out / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2))
    elif not set(plan.paths) <= set(manifest.paths):  # a resume that adds paths (the next level): the folder holds them all
        data = json.loads((out / MANIFEST_FILE).read_text())  # the rest as written: an old one gains no fields
        data["paths"] = list(dict.fromkeys(manifest.paths + plan.paths))
        (out / MANIFEST_FILE).write_text(json.dumps(data, indent=2))
    solve = _translate_solver(plan) if options.translate_only else graph_solver(job, out)
    lock = threading.Lock()

    def event(e: BenchEvent) -> None:
        if e.kind == "finished":
            with lock:
                write_summary(out)  # a stopped bench still has its table
        if on_event is not None:
            on_event(e)

    try:
        result = run_problems(plan.problems, plan.store, solve, plan.lanes, mode=options.mode, precision=job.precision,
                              stop=stop, on_event=event, again=frozenset(plan.again))
    finally:
        close = getattr(solve, "close", None)  # the graph solver's waiting problem processes
        if close is not None:
            close()
    table, files = write_summary(out)
    return BenchOutcome(result, table, files)


def _translate_solver(plan: BenchPlan) -> Solve:
    job = plan.job
    make = translate_solver
    if job.setup.executor.kind == "ray":
        from kernelwright.eval.kernelbench.cluster import ray_translate_solver

        make = ray_translate_solver
    return make(plan.options.out, job.setup.eval_settings, lanes=len(plan.lanes), precision=job.precision,
                preview=job.setup.run_settings.offline_preview)


def title_for(table: BenchTable) -> str:
    levels = sorted({r.level for r in table.rows}, key=natural_key)
    return "kernelwright bench: " + ", ".join(levels) if levels else "kernelwright bench"


def rebuild_summary(out: Path) -> tuple[BenchTable, tuple[Path, ...]]:
    """`--summary DIR`: the table again from DIR's result files; BenchError where DIR holds none."""
    if not out.is_dir():
        raise BenchError("no such results folder", where=str(out))
    if not ResultStore(out).rows():
        raise BenchError("no bench results here (expected results/<level>/<problem>.json, as `kernelwright bench "
                         "--out` writes them)", where=str(out))
    return write_summary(out)


@dataclass(frozen=True)
class CombinedSummary:
    table: BenchTable
    files: tuple[Path, ...]
    search: str  # combined_search_line's: each folder's levels and settings


def combine_summaries(folders: Sequence[Path], out: Path) -> CombinedSummary:
    """`--summary DIR --summary DIR2 ... --out NEW`: one table of the rows of several benches (e.g. one folder per
    level, each made with its own settings), written to NEW, whose search line names each folder's settings and the
    levels it holds. BenchError where a folder holds no rows, two hold the same problem, or NEW holds a bench (its
    own table would be overwritten). Each folder's rows and manifest are read once."""
    owner: dict[str, Path] = {}
    benches: list[tuple[Path, BenchManifest | None, list[ProblemRow]]] = []
    for folder in folders:
        if not folder.is_dir():
            raise BenchError("no such results folder", where=str(folder))
        found = ResultStore(folder).rows()
        if not found:
            raise BenchError("no bench results here (expected results/<level>/<problem>.json)", where=str(folder))
        for row in found:
            if row.key in owner:
                raise BenchError(f"{row.key} has a row in two of the folders ({owner[row.key]} and {folder}): a "
                                 "combined table takes each problem from one bench", where=str(folder))
            owner[row.key] = folder
        benches.append((folder, BenchManifest.read(folder), found))
    if len({m.mode for _, m, _ in benches if m is not None}) > 1:
        raise BenchError("the folders hold benches of both modes (translate-only and measured): their rows do not "
                         "make one table", where=", ".join(str(f) for f in folders))
    if out.resolve() in {f.resolve() for f in folders} or ResultStore(out).rows() or BenchManifest.read(out):
        raise BenchError("--out of a combined table must be a folder of its own, not a bench (its table would be "
                         "overwritten)", where=str(out))
    out.mkdir(parents=True, exist_ok=True)
    table = summarise([row for _, _, rows in benches for row in rows])
    search = combined_search_line(benches)
    data = {"benches": {str(f): (m.to_dict() if m else None) for f, m, _ in benches}, "search": search,
            **table.to_dict()}
    return CombinedSummary(table, _write_tables(out, table, title_for(table), search, data), search)


def combined_search_line(benches: Sequence[tuple[Path, BenchManifest | None, Sequence[ProblemRow]]]) -> str:
    """The search settings of several benches (folder, manifest, rows), each with the levels its rows hold and its
    folder, and for each after the first the settings that differ from the first's (the one-line description
    leaves most out)."""
    first_folder, first_manifest, _ = benches[0]
    first = first_manifest.search if first_manifest is not None else None
    parts = []
    for folder, manifest, rows in benches:
        levels = ", ".join(sorted({r.level for r in rows}, key=natural_key))
        part = f"{levels} ({folder}): {_search_text(manifest)}"
        search = manifest.search if manifest is not None else None
        if first is not None and search is not None and search is not first:
            differences = search.differences(first)
            if differences:
                part += " (unlike " + str(first_folder) + ": " + ", ".join(
                    f"{d.name} {d.asked} (there {d.recorded})" for d in differences) + ")"
        parts.append(part)
    return "; ".join(parts)


def write_summary(out: Path) -> tuple[BenchTable, tuple[Path, ...]]:
    """The table of every row in <out>/results: summary.md, summary.json and report.html."""
    table = summarise(ResultStore(out).rows())
    title = title_for(table)
    manifest = BenchManifest.read(out)
    search = search_line(out)
    data = {"bench": manifest.to_dict() if manifest else None, "search": search, **table.to_dict()}
    return table, _write_tables(out, table, title, search, data)


def _write_tables(out: Path, table: BenchTable, title: str, search: str, data: dict[str, Any]) -> tuple[Path, ...]:
    """summary.md, summary.json (`data`) and report.html in `out`, each replaced whole."""
    from kernelwright.eval.report.bench_page import render_bench_page

    files = (out / SUMMARY_MD, out / SUMMARY_JSON, out / PAGE_FILE)
    _replace(files[0], markdown(table, title, search))
    _replace(files[1], json.dumps(data, indent=2, default=str))
    _replace(files[2], render_bench_page(table, title, out, search))
    return files


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
