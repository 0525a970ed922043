"""How the work scales over the GPUs of one host: the same bench and the same agent run on 1, 2, 4, ... GPUs,
through the local executor (--gpus) and through Ray, and with 1, 2, ... bench lanes per GPU, and whether the
verdicts stayed the same.

    python -m kernelwright.eval.bench.scaling ../shared/kernelbench/level2 --max-problems 6 --gpu-counts 1,2,4 \
        --executors local,ray --out runs/scaling [--lanes-per-gpu 1,2] [--generations 1] [--translate-only] [--resume]

Each (workload, executor, GPU count, lanes per GPU) is one configuration, run as its own `kernelwright bench` or
`kernelwright run` process (`python -P -m kernelwright.cli`, the CLI's own code path) into
<out>/<workload>-<executor>-<n>gpu[-<k>lanes]/ (1 lane: no suffix, the name from before lanes):
- bench: `kernelwright bench PATHS --resume` over the problems; local: --gpus with the first n visible GPUs, and
  --lanes-per-gpu k for k > 1 (k problems at once per GPU, their timings taking turns through the GPU's gate); Ray:
  a local cluster started here with n GPUs (or the cluster at --address, which must have n GPUs).
- lanes per GPU (--lanes-per-gpu, default 1) apply to the bench with the local executor only: Ray and the agent
  run ignore them (one configuration each per GPU count, at 1 lane), and --translate-only (CPU lanes: --jobs)
  refuses them. On a single-GPU machine they are the one dimension to measure: --gpu-counts 1 --lanes-per-gpu 1,2.
- agent run (`--workloads agent-run`): `kernelwright run PROBLEM` with --population and --candidates of
  --population, its LLM the replay server (eval/fakes/replay_server.py, on --replay SCRIPT.json) or, without a
  script, the offline translator and tuner; it evaluates on n GPUs (local: one evaluator per visible GPU, Ray: one
  GPU actor per GPU) with agents.eval_concurrency = 2n evaluations in flight (2 per GPU, the default's share).
A finished configuration (its result.json) is not redone with --resume; an unfinished bench continues (its wall
time is the sum of its attempts, less any that finished nothing before failing: working_seconds); an unfinished
agent run starts again (its rate must be one run's).
The table (<out>/scaling.json, scaling.md; eval/bench/scaling_table has the definitions) is rewritten as each
configuration finishes.

Exit codes: 0 every configuration finished and every verdict agrees; 1 verdicts disagree across GPU counts, lanes
or executors (each listed); 2 bad input (a path that is no problem, more GPUs asked than visible, a results folder in
use without --resume); 4 a configuration could not run (ray missing, its cluster, or its command failed: its log
is named; --resume goes on); 130 stopped (finished configurations are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast, get_args

from kernelwright.eval.bench.gpu_split import parse_gpus
from kernelwright.eval.bench.scaling_table import (
    DEFAULT_NOISE,
    ConfigResult,
    Verdict,
    Workload,
    compare_verdicts,
    config_name,
    write_outputs,
)
from kernelwright.eval.kernelbench.problems import BenchProblem, find_problems
from kernelwright.eval.kernelbench.rows import ResultStore
from kernelwright.graphs.executors import (
    EXECUTOR_KINDS,
    ExecutorKind,
    ExecutorSettings,
    ExecutorUnavailable,
    check_executor,
)
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.run_folder import RunFolder

EXIT_OK, EXIT_DISAGREE, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 4, 130
RESULT_FILE, ATTEMPTS_FILE, LOG_FILE = "result.json", "attempts.json", "command.log"
WORKLOADS: tuple[Workload, ...] = get_args(Workload)
CONCURRENCY_ENV = "KERNELWRIGHT_AGENTS__EVAL_CONCURRENCY"
STOP_WAIT_S = 60.0  # on Ctrl-C, how long a configuration's command may take to save its work


class ScalingError(KernelwrightError):
    """The scaling benchmark cannot start as asked (its GPU counts, paths or folder): nothing ran."""

    kind = "scaling"


@dataclass(frozen=True)
class ScalingOptions:
    paths: tuple[str, ...]
    out: Path
    gpu_counts: tuple[int, ...] | None = None  # None: 1 and every power of two up to the visible count
    lanes_per_gpu: tuple[int, ...] = (1,)  # the bench on the local executor only (module docstring)
    executors: tuple[ExecutorKind, ...] = ("local",)
    workloads: tuple[Workload, ...] = ("bench",)
    address: str | None = None
    resume: bool = False
    noise: float = DEFAULT_NOISE
    max_problems: int = 0  # 0: every problem under the paths
    translate_only: bool = False
    generations: int | None = None  # None: the bench's and the run's default
    jobs: int = 1
    max_minutes: float | None = None
    config_file: Path | None = None
    population: int = 32
    agent_problem: Path | None = None  # None: the first problem
    replay: Path | None = None  # a replay script for the agent run's LLM; None: the offline translator


@dataclass(frozen=True)
class ConfigSpec:
    workload: Workload
    executor: ExecutorKind
    gpus: int
    gpu_ids: tuple[str, ...]  # the visible GPUs it uses (empty: none, --translate-only without a GPU)
    lanes: int = 1  # problems at once per GPU (`kernelwright bench --lanes-per-gpu`)
    note: str = ""

    @property
    def name(self) -> str:
        return config_name(self.workload, self.executor, self.gpus, self.lanes)


@dataclass(frozen=True)
class ScalingPlan:
    options: ScalingOptions
    problems: list[BenchProblem]
    configs: list[ConfigSpec]
    visible: list[str]
    agent_problem: Path | None = None


@dataclass
class ScalingOutcome:
    noise: float = DEFAULT_NOISE
    results: list[ConfigResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # what went wrong, one line per configuration
    pending: list[str] = field(default_factory=list)
    files: tuple[Path, ...] = ()

    @property
    def exit_code(self) -> int:
        if self.failed:
            return EXIT_FAILED
        return EXIT_DISAGREE if compare_verdicts(self.results, self.noise) else EXIT_OK


def default_gpu_counts(visible: int) -> tuple[int, ...]:
    """1 and every power of two up to `visible` (1 alone where none is visible)."""
    counts, n = [1], 2
    while n <= visible:
        counts.append(n)
        n *= 2
    return tuple(counts)


def parse_counts(text: str, what: str = "GPU counts", flag: str = "--gpu-counts") -> tuple[int, ...]:
    """A comma-separated list of positive counts, sorted, each once."""
    try:
        counts = tuple(dict.fromkeys(int(part) for part in parse_gpus(text)))
    except ValueError:
        counts = ()
    if not counts or any(n < 1 for n in counts):
        raise ScalingError(f"{text!r} is no list of {what} (expected e.g. 1,2,4)", where=flag)
    return tuple(sorted(counts))


def plan_scaling(options: ScalingOptions, visible: Callable[[], list[str]] | None = None) -> ScalingPlan:
    """Everything checked before a configuration runs; InputFileError / ScalingError / ExecutorUnavailable say
    what is wrong, and nothing is written then."""
    problems = find_problems(options.paths)
    if options.max_problems:
        problems = problems[:options.max_problems]
    seen = (visible or _visible_gpus)()
    needs_gpus = not options.translate_only
    if options.translate_only and "agent_run" in options.workloads:
        raise ScalingError("an agent run evaluates on GPUs; --translate-only takes the bench workload only",
                           where="--workloads")
    _check_lanes(options)
    counts = options.gpu_counts or default_gpu_counts(len(seen))
    if needs_gpus:
        over = [n for n in counts if n > len(seen)]
        if over:
            most = max(over)
            raise ScalingError(f"{most} GPU{'s' if most > 1 else ''} asked, {len(seen)} visible here "
                               f"({', '.join(seen) or 'none'}: CUDA_VISIBLE_DEVICES, else NVML); on a machine without "
                               "a GPU use --translate-only", where="--gpu-counts")
    if options.address and "ray" in options.executors and len(counts) != 1:
        raise ScalingError("a cluster at --address has the GPUs it has: name its GPU count alone in --gpu-counts "
                           "(or leave --address out: a local cluster is started per count)", where="--address")
    for executor in options.executors:
        check_executor(ExecutorSettings(executor, options.address if executor == "ray" else None))
    out = options.out
    if out.exists() and not out.is_dir():
        raise ScalingError("the results folder is a file", where=str(out))
    if not options.resume and out.is_dir() and any(out.iterdir()):
        raise ScalingError("this folder is not empty: pass --resume to continue its scaling benchmark (finished "
                           "configurations are not redone), or choose another --out", where=str(out))
    agent_problem = None
    if "agent_run" in options.workloads:
        agent_problem = (find_problems([options.agent_problem])[0].path if options.agent_problem is not None
                         else problems[0].path)
    if options.replay is not None:
        _check_replay(options.replay)
    configs = [ConfigSpec(workload, executor, n, tuple(seen[:n]), k, _note(workload, executor, n, k, options))
               for workload in options.workloads for executor in options.executors for n in counts
               for k in (options.lanes_per_gpu if _has_lanes(workload, executor) else (1,))]
    return ScalingPlan(options, problems, configs, seen, agent_problem)


def _has_lanes(workload: Workload, executor: ExecutorKind) -> bool:
    """Lanes per GPU are the local bench's (`kernelwright bench --lanes-per-gpu`): a Ray cluster places its own
    work, and an agent run's concurrency is agents.eval_concurrency."""
    return workload == "bench" and executor == "local"


def _check_lanes(options: ScalingOptions) -> None:
    if options.lanes_per_gpu == (1,):
        return
    if options.translate_only:
        raise ScalingError("--translate-only runs on CPU lanes (--jobs), so lanes per GPU would change no work",
                           where="--lanes-per-gpu")
    if not any(_has_lanes(w, e) for w in options.workloads for e in options.executors):
        raise ScalingError("lanes per GPU apply to the bench with the local executor only, and that pair is not "
                           "asked (--workloads bench --executors local)", where="--lanes-per-gpu")


def _check_replay(script: Path) -> None:
    from kernelwright.eval.fakes.replay_server import load_script

    try:
        if not load_script(script):
            raise ValueError("it holds no answer")
    except (OSError, ValueError, TypeError) as exc:  # TypeError: an entry with other fields than a ReplayRule's
        raise ScalingError(f"not a replay script (a JSON list of answers, as eval/fakes/replay_server.py reads "
                           f"them: {{\"answer\": ..., \"when\": ..., \"repeat\": ...}}): {exc}",
                           where=str(script)) from None


def _note(workload: Workload, executor: ExecutorKind, n: int, lanes: int, options: ScalingOptions) -> str:
    if options.translate_only:
        cpus = "the Ray cluster's CPUs" if executor == "ray" else f"{options.jobs} CPU lane(s) (--jobs)"
        return f"translate-only: runs on {cpus}; the GPU count changes no work"
    if workload == "agent_run":
        where = "one GPU actor per GPU" if executor == "ray" else "one evaluator per GPU"
        return f"{where}, {2 * n} evaluations in flight"
    if lanes > 1:
        return f"{lanes} problems per GPU at a time, their timings taking turns (GPU gate)"
    return "one problem per GPU at a time"


def _visible_gpus() -> list[str]:
    from kernelwright.graphs.harness_evaluator import visible_gpus

    return visible_gpus()


# --- one configuration ------------------------------------------------------------------------------------------

def cli_command(*args: str) -> list[str]:
    """A `kernelwright` command, run as the installed CLI runs it (-P: a checkout's kernelwright/ folder in the
    working directory must not shadow the package, as eval.bench.gpu_split does)."""
    return [sys.executable, "-P", "-m", "kernelwright.cli", *args]


def bench_command(plan: ScalingPlan, spec: ConfigSpec, folder: Path, address: str | None) -> list[str]:
    o = plan.options
    args = ["bench", *(str(p.path) for p in plan.problems), "--out", str(folder), "--resume",
            "--executor", spec.executor]
    if spec.executor == "ray" and address:
        args += ["--address", address]
    if spec.executor == "local" and not o.translate_only:
        args += ["--gpus", ",".join(spec.gpu_ids)]
    if spec.lanes > 1:  # 1 lane: the command as before lanes (a resumed configuration's log stays comparable)
        args += ["--lanes-per-gpu", str(spec.lanes)]
    if o.translate_only:
        args += ["--translate-only", "--jobs", str(o.jobs)]
    return cli_command(*args, *_shared_args(o))


def _shared_args(o: ScalingOptions) -> list[str]:
    """The options the bench and the agent run both pass on."""
    args: list[str] = []
    if o.generations is not None:
        args += ["--generations", str(o.generations)]
    if o.max_minutes is not None:
        args += ["--max-minutes", str(o.max_minutes)]
    if o.config_file is not None:
        args += ["--config", str(o.config_file)]
    return args


def agent_command(plan: ScalingPlan, spec: ConfigSpec, folder: Path, address: str | None,
                  model: str | None) -> list[str]:
    o = plan.options
    args = ["run", str(plan.agent_problem), "--runs-dir", str(folder / "runs"), "--population", str(o.population),
            "--candidates", str(o.population), "--max-candidates", "0", "--no-archive", "--executor", spec.executor]
    if spec.executor == "ray" and address:
        args += ["--address", address]
    if model:
        args += ["--model", model]
    return cli_command(*args, *_shared_args(o))


def bench_result(spec: ConfigSpec, folder: Path, wall_s: float, attempts: int) -> ConfigResult:
    rows = ResultStore(folder).rows()
    return ConfigResult("bench", spec.executor, spec.gpus, round(wall_s, 2), len(rows),
                        tuple(sorted({r.gpu_name for r in rows if r.gpu_name})),
                        {r.key: Verdict(r.status, r.speedup_vs_eager) for r in rows}, attempts, spec.note,
                        str(folder), lanes=spec.lanes)


def agent_result(spec: ConfigSpec, folder: Path, wall_s: float, attempts: int) -> ConfigResult:
    verdicts: dict[str, Verdict] = {}
    cards: set[str] = set()
    runs = folder / "runs"
    for run_folder in (RunFolder(d) for d in sorted(runs.iterdir())) if runs.is_dir() else ():
        for candidate in run_folder.candidates() if run_folder.is_run() else []:
            report = candidate.read_report()
            if report is None:
                continue
            verdicts[candidate.path.name] = Verdict(report.status, report.speedup_vs_eager)
            if report.gpu.get("name"):
                cards.add(str(report.gpu["name"]))
    return ConfigResult("agent_run", spec.executor, spec.gpus, round(wall_s, 2), len(verdicts), tuple(sorted(cards)),
                        verdicts, attempts, spec.note, str(folder))


@contextmanager
def ray_cluster(spec: ConfigSpec, address: str | None) -> Iterator[str]:
    """The address of a Ray cluster with the configuration's GPUs: --address's (checked to have them), else one
    started here on the first n visible GPUs and ended after. The command that joins it takes this process's
    environment as it is inside this context."""
    import ray

    from kernelwright.graphs.ray_executor import connect

    if address:
        connect(ExecutorSettings("ray", address))  # ExecutorUnavailable where it does not answer
        try:
            gpus = int(ray.cluster_resources().get("GPU", 0))
        finally:
            ray.shutdown()
        if gpus != spec.gpus:
            raise ScalingError(f"the cluster at {address} has {gpus} GPU(s), and --gpu-counts asks {spec.gpus}",
                               where="--address")
        yield address
        return
    # Ray hands its actors these GPUs; ray.init also sets RAY_AUTH_MODE here (token authentication of a local
    # cluster, Ray >= 2.59), which the joining command must inherit to present the token
    changes = {"CUDA_VISIBLE_DEVICES": ",".join(spec.gpu_ids)}
    before = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        ray.init(num_gpus=len(spec.gpu_ids), include_dashboard=False, log_to_driver=False)
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def replay_model(script: Path | None) -> Iterator[str | None]:
    """The --model of an agent run whose LLM is the replay server (a fresh one: its answers are used in order)."""
    if script is None:
        yield None
        return
    from kernelwright.eval.fakes.replay_server import ReplayServer, load_script

    with ReplayServer(load_script(script)) as server:
        yield f"replay@{server.base_url}"


Launch = Callable[[list[str], dict[str, str], Path], int]


def launch(command: list[str], env: dict[str, str], log: Path) -> int:
    """Run `command` with its output in `log`; its exit status. On Ctrl-C (which reaches the command too: one
    process group) it gets STOP_WAIT_S to save its work, as `kernelwright bench` does, before it is killed."""
    with log.open("a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise


def run_config(plan: ScalingPlan, spec: ConfigSpec, launch_command: Launch = launch) -> ConfigResult | str:
    """One configuration; its result, or why it did not finish (a line naming its log)."""
    folder = plan.options.out / spec.name
    if spec.workload == "agent_run" and folder.exists():
        shutil.rmtree(folder)  # an unfinished run starts again: its rate must be one run's
    folder.mkdir(parents=True, exist_ok=True)
    attempts = _read_attempts(folder)
    make_result = bench_result if spec.workload == "bench" else agent_result
    items_before = make_result(spec, folder, 0.0, 0).items
    cluster = ray_cluster(spec, plan.options.address) if spec.executor == "ray" else nullcontext(None)
    model = replay_model(plan.options.replay) if spec.workload == "agent_run" else nullcontext(None)
    with cluster as address, model as llm:
        env = dict(os.environ)
        if spec.executor == "local" and spec.gpu_ids:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(spec.gpu_ids)
        if spec.workload == "agent_run":
            env[CONCURRENCY_ENV] = str(2 * spec.gpus)
        command = (bench_command(plan, spec, folder, address) if spec.workload == "bench"
                   else agent_command(plan, spec, folder, address, llm))
        started = time.perf_counter()
        try:
            rc = launch_command(command, env, folder / LOG_FILE)
        except KeyboardInterrupt:
            _write_attempts(folder, [*attempts, {"seconds": round(time.perf_counter() - started, 2), "rc": "stopped",
                                                 "items_before": items_before,
                                                 "items_after": make_result(spec, folder, 0.0, 0).items}])
            raise
        seconds = time.perf_counter() - started
    items = make_result(spec, folder, seconds, 1).items
    attempts = [*attempts, {"seconds": round(seconds, 2), "rc": rc, "items_before": items_before,
                            "items_after": items, "command": command}]
    _write_attempts(folder, attempts)
    result = replace(make_result(spec, folder, working_seconds(attempts), len(attempts)), command=shlex.join(command))
    if rc != 0:
        return f"{spec.name}: its command exited with status {rc} (log: {folder / LOG_FILE})"
    if spec.workload == "bench" and result.items < len(plan.problems):
        return (f"{spec.name}: {result.items} of {len(plan.problems)} problems have a row (log: {folder / LOG_FILE})")
    (folder / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2))
    return result


def working_seconds(attempts: Sequence[dict[str, Any]]) -> float:
    """A configuration's wall time: its attempts' seconds, less those of an attempt that finished nothing and was
    not the last (it failed at its start: a cluster that did not answer, a Ctrl-C before the first row)."""
    return sum(float(a["seconds"]) for i, a in enumerate(attempts)
               if i == len(attempts) - 1 or int(a.get("items_after", 1)) > int(a.get("items_before", 0)))


def _read_attempts(folder: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads((folder / ATTEMPTS_FILE).read_text())
        return data if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def _write_attempts(folder: Path, attempts: list[dict[str, Any]]) -> None:
    (folder / ATTEMPTS_FILE).write_text(json.dumps(attempts, indent=2))


def finished_result(plan: ScalingPlan, spec: ConfigSpec) -> ConfigResult | None:
    """The configuration's result from an earlier call; None where it has none, or (a bench) where the problems
    asked now are not the ones it ran: its bench then resumes and adds them."""
    try:
        result = ConfigResult.from_dict(json.loads((plan.options.out / spec.name / RESULT_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if spec.workload == "bench" and set(result.verdicts) != {p.key for p in plan.problems}:
        return None
    return result


def run_scaling(plan: ScalingPlan, launch_command: Launch = launch,
                say: Callable[[str], None] = print) -> ScalingOutcome:
    """Every configuration of `plan` without a result; the table is rewritten after each."""
    plan.options.out.mkdir(parents=True, exist_ok=True)
    outcome = ScalingOutcome(plan.options.noise)
    done: dict[str, ConfigResult] = {}
    for spec in plan.configs:
        if (result := finished_result(plan, spec)) is not None:
            say(f"{spec.name}: finished before ({result.items} items in {result.wall_s:.1f} s)")
            done[spec.name] = result
            continue
        say(f"{spec.name}: running")
        try:
            got = run_config(plan, spec, launch_command)
        except KeyboardInterrupt:
            outcome.results = list(done.values())
            outcome.files = _write(plan, outcome)
            raise
        if isinstance(got, str):
            outcome.failed.append(got)
            say(got)
        else:
            done[spec.name] = got
            say(f"{spec.name}: {got.items} items in {got.wall_s:.1f} s")
        outcome.results = list(done.values())
        outcome.files = _write(plan, outcome)
    return outcome


def _write(plan: ScalingPlan, outcome: ScalingOutcome) -> tuple[Path, ...]:
    finished = {r.name for r in outcome.results}
    outcome.pending = [s.name for s in plan.configs if s.name not in finished]
    return write_outputs(plan.options.out, outcome.results, plan.options.noise, outcome.pending)


# --- the command ----------------------------------------------------------------------------------------------

def _choices(text: str, allowed: Sequence[str], flag: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().replace("-", "_") for p in text.split(",") if p.strip()))
    wrong = [n for n in names if n not in allowed]
    if not names or wrong:
        raise ScalingError(f"{text!r}: expected a comma-separated list of {', '.join(allowed)}", where=flag)
    return names


def parse_options(argv: Sequence[str] | None = None) -> ScalingOptions:
    parser = argparse.ArgumentParser(prog="python -m kernelwright.eval.bench.scaling",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("paths", nargs="+", help="KernelBench-format problem files or folders (as `kernelwright bench`)")
    parser.add_argument("--out", type=Path, default=Path("scaling"), help="results folder (one subfolder per "
                                                                            "configuration, scaling.json, scaling.md)")
    parser.add_argument("--gpu-counts", help="e.g. 1,2,4 (default: 1 and every power of two up to the visible GPUs)")
    parser.add_argument("--lanes-per-gpu", default="1",
                        help="e.g. 1,2: the bench's problems at once per GPU (`kernelwright bench --lanes-per-gpu`), "
                             "one configuration per count; the bench with the local executor only: Ray and the agent "
                             "run ignore it (default 1)")
    parser.add_argument("--executors", "--executor", default="local", help="local, ray or local,ray")
    parser.add_argument("--address", help="--executor ray: a running cluster to use (its GPU count alone in "
                                          "--gpu-counts); default: a local cluster started per GPU count")
    parser.add_argument("--workloads", default=None, help="bench, agent-run or bench,agent-run (default: bench, "
                                                          "and agent-run unless --translate-only)")
    parser.add_argument("--resume", action="store_true", help="continue the benchmark in --out: finished "
                                                              "configurations are not redone")
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE,
                        help="verdict check: speedups agree within this share of the reference (default 0.1)")
    parser.add_argument("--max-problems", type=int, default=0, help="the first N problems only (0: all)")
    parser.add_argument("--translate-only", action="store_true", help="the bench's --translate-only (no GPU needed)")
    parser.add_argument("--generations", type=int, help="generations per problem and per agent run")
    parser.add_argument("--jobs", type=int, default=1, help="--translate-only: problems translated at once")
    parser.add_argument("--max-minutes", type=float, help="per problem and per agent run: the budget in minutes")
    parser.add_argument("--config", type=Path, dest="config_file", help="TOML config file for every command")
    parser.add_argument("--population", type=int, default=32, help="agent run: population and candidates per "
                                                                  "generation (default 32)")
    parser.add_argument("--agent-problem", type=Path, help="agent run: its problem (default: the first problem)")
    parser.add_argument("--replay", type=Path, help="agent run: a replay script for its LLM (JSON, "
                                                    "eval/fakes/replay_server.py); default: the offline translator")
    args = parser.parse_args(argv)
    translate_only = bool(args.translate_only)
    workloads = _choices(args.workloads or ("bench" if translate_only else "bench,agent_run"), WORKLOADS,
                         "--workloads")
    if args.noise < 0 or args.max_problems < 0 or args.population < 1 or args.jobs < 1:
        raise ScalingError("--noise and --max-problems take no negative value, --population and --jobs at least 1")
    return ScalingOptions(tuple(args.paths), args.out, parse_counts(args.gpu_counts) if args.gpu_counts else None,
                          parse_counts(args.lanes_per_gpu, "lanes per GPU", "--lanes-per-gpu"),
                          cast("tuple[ExecutorKind, ...]", _choices(args.executors, EXECUTOR_KINDS, "--executors")),
                          cast("tuple[Workload, ...]", workloads), args.address, args.resume, args.noise,
                          args.max_problems,
                          translate_only, args.generations, args.jobs, args.max_minutes, args.config_file,
                          args.population, args.agent_problem, args.replay)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        plan = plan_scaling(parse_options(argv))
    except ExecutorUnavailable as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KernelwrightError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    names = ", ".join(s.name for s in plan.configs)
    gpus = f"{len(plan.visible)} visible GPU(s) ({', '.join(plan.visible) or 'none'})"
    print(f"{len(plan.problems)} problems, {gpus}; configurations: {names}; results in {plan.options.out}")
    try:
        outcome = run_scaling(plan)
    except KeyboardInterrupt:
        print(f"Error: stopped; finished configurations are kept in {plan.options.out}: continue with --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except ExecutorUnavailable as exc:  # the cluster at --address stopped answering
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KernelwrightError as exc:  # a cluster at --address without the GPUs asked, found once joined
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(Path(outcome.files[1]).read_text() if outcome.files else "")
    for line in outcome.failed:
        print(f"Error: {line}; continue with --resume", file=sys.stderr)
    if outcome.exit_code == EXIT_DISAGREE:
        disagreements = compare_verdicts(outcome.results, outcome.noise)
        print(f"Error: the verdicts disagree in {len(disagreements)} place(s), listed above", file=sys.stderr)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
