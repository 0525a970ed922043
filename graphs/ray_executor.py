"""The Ray executor's evaluator: builds as Ray CPU tasks, evaluations on Ray GPU actors (one GPU each).

What runs where: the driver (this process) runs the graph and alone writes the checkpoint and the run folder;
a CPU task imports a candidate in a CPU-only sandbox worker (nvcc) and returns the build's outcome; a GPU actor
owns one `tools.harness.evaluate.Evaluator` (its reference worker and warm candidate worker stay up across
candidates) and returns each candidate's report. So a speedup is always against baselines the same actor
measured on the same GPU, and each report records the node and the GPU that measured it.

Files travel with the work (`Bundle`): a node need not share the driver's filesystem. An actor that dies (its
node lost, its process killed) is replaced and the evaluation tried again on the new one, at most
`ExecutorSettings.retries` times; Ray itself never re-runs an actor's call (max_task_retries=0), so an
evaluation is counted once: the driver keeps the first report of each candidate and answers a repeated
request from it. (An actor that dies after finishing a candidate but before its reply arrives had its work
lost with it: that candidate runs again, and only the report that arrives is recorded.)
"""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from kernelwright.graphs.executors import ExecutorSettings, ExecutorUnavailable, require_ray
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from kernelwright.tools.run_folder import CandidateProfile

log = structlog.get_logger(__name__)
BUNDLE_LIMIT_BYTES = 32 << 20  # a candidate folder's files travel whole; past this the folder is no candidate's

# An actor's evaluator: made inside the actor from the problem's local path and the run's settings. Anything
# with the tools Evaluator's evaluate / functional_form / prepare_reference_side / sanitize / close.
EvaluatorFactory = Callable[[Path, EvalSettings], Any]


@dataclass(frozen=True)
class Bundle:
    """A file, or a candidate's folder (its files, not its subfolders), as bytes that travel to another node."""

    folder: str  # the folder's name where it is placed
    files: dict[str, bytes]
    main: str  # the file the work is about

    @classmethod
    def of_file(cls, path: Path, *, with_folder: bool = False) -> Bundle:
        path = Path(path).resolve()
        siblings = [p for p in path.parent.iterdir() if p.is_file()] if with_folder else [path]
        files = {p.name: p.read_bytes() for p in siblings if p.stat().st_size <= BUNDLE_LIMIT_BYTES}
        files[path.name] = path.read_bytes()
        return cls(path.parent.name, files, path.name)

    def place(self, root: Path) -> Path:
        """Write the files under root/<folder>/; the main file's path there."""
        folder = root / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        return folder / self.main


def node_identity() -> dict[str, Any]:
    """Where this process runs, for a report's `gpu` record: host, Ray node and the GPU Ray gave it."""
    out: dict[str, Any] = {"node": socket.gethostname()}
    try:
        import ray

        out["ray_node_id"] = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside a Ray worker: the host alone
        pass
    out["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return out


def harness_on_this_gpu(problem: Path, settings: EvalSettings) -> Any:
    """The default actor evaluator: the harness on the GPU Ray assigned to this actor."""
    from kernelwright.tools.harness.evaluate import Evaluator
    from kernelwright.tools.measure.gpu_gate import gate_for
    from kernelwright.tools.sandbox.pool import WorkerOptions

    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    # actors sharing a GPU (fractional GPUs) keep their timings apart where the node names a gate directory
    return Evaluator(problem, settings, WorkerOptions(env={"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {},
                                                      gate=gate_for(gpu)))


class EvalActor:
    """The body of a GPU actor: one problem, one Evaluator, kept warm across candidates."""

    def __init__(self, problem: Bundle, settings: EvalSettings, factory: EvaluatorFactory):
        self.root = Path(tempfile.mkdtemp(prefix="kw-ray-"))
        self.problem = problem.place(self.root / "problem")
        # The driver's run folder is not on this node; the staged candidates are what the jail shows.
        self.settings = replace(settings, visible_paths=(str(self.root),))
        self.evaluator = factory(self.problem, self.settings)
        self.where = node_identity()

    def identity(self) -> dict[str, Any]:
        return {**self.where, "pid": os.getpid()}

    def arch(self) -> str:
        from kernelwright.tools.harness.precompile import detect_arch

        return detect_arch()

    def gpu_facts(self) -> Any:
        """This actor's GPU (tools.measure.gpu_info.GpuFacts), or None where NVML has none."""
        from kernelwright.tools.measure.gpu_info import gpu_facts

        try:
            return gpu_facts(use_torch=False)
        except Exception:  # noqa: BLE001 - no driver, no GPU: the prompts go without its facts
            return None

    def warm(self) -> None:
        prepare = getattr(self.evaluator, "prepare_reference_side", None)
        if prepare is not None:
            prepare()

    def functional_form(self) -> dict[str, Any]:
        form: dict[str, Any] = self.evaluator.functional_form()
        return form

    def evaluate(self, candidate: Bundle) -> dict[str, Any]:
        report: EvalReport = self.evaluator.evaluate(candidate.place(self.root / "candidates"))
        report.gpu.update(self.where)
        return report.to_dict()

    def sanitize(self, candidate: Bundle) -> SanitizeVerdict:
        verdict: SanitizeVerdict = self.evaluator.sanitize(candidate.place(self.root / "candidates"))
        return verdict

    def profile(self, candidate: Bundle) -> dict[str, Any]:
        from kernelwright.graphs.harness_evaluator import profile_candidate
        from kernelwright.tools.harness.evaluate import isolation_policy

        path = candidate.place(self.root / "candidates")
        return profile_candidate(self.problem, path, self.settings.build,
                                 isolation_policy(self.settings, self.problem, path.parent))

    def close(self) -> None:
        self.evaluator.close()


def build_in_task(problem: Bundle, candidate: Bundle, settings: EvalSettings) -> dict[str, Any]:
    """A Ray CPU task: import the candidate in a CPU-only sandbox worker (nvcc); the BuildOutcome as a dict."""
    from kernelwright.tools.harness.precompile import build_candidate

    with tempfile.TemporaryDirectory(prefix="kw-ray-build-") as root:
        problem_path = problem.place(Path(root) / "problem")
        outcome = build_candidate(problem_path, candidate.place(Path(root) / "candidates"), settings)
    out = outcome.to_dict()
    out["where"] = node_identity()
    return out


def connect(settings: ExecutorSettings) -> bool:
    """Join the cluster (or start Ray here); True when this call started the connection (the caller ends it)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=settings.address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExecutorUnavailable(f"cannot join the Ray cluster at {settings.address or 'RAY_ADDRESS/local'}: "
                                  f"{exc}", where="executor.address") from None
    return True


class RayEvaluator:
    """The CandidateEvaluator (agents.evaluator) of a run on a Ray cluster."""

    traces_out_of_process = True

    def __init__(self, problem: Path, settings: EvalSettings, executor: ExecutorSettings,
                 factory: EvaluatorFactory = harness_on_this_gpu):
        self._ray = require_ray()
        self._owns_connection = connect(executor)
        self.problem = Path(problem)
        self.executor = executor
        self._bundle = Bundle.of_file(self.problem)
        gpus_in_cluster = int(self._ray.cluster_resources().get("GPU", 0))
        self._gpu_each = 1 if gpus_in_cluster else 0  # no GPU anywhere: one actor that builds and says needs_gpu
        # one per GPU (more would wait for a GPU forever), fewer where `actors` says so
        count = min(executor.actors or gpus_in_cluster, gpus_in_cluster) if gpus_in_cluster else 1
        self._actor_class = self._ray.remote(num_gpus=self._gpu_each, num_cpus=0, max_restarts=0,
                                             max_task_retries=0)(EvalActor)
        self._build_task = self._ray.remote(num_cpus=1, max_retries=2)(build_in_task)  # a build is idempotent
        self.settings = settings
        self._factory = factory
        self.gpus: tuple[str, ...] = tuple(str(i) for i in range(count)) if self._gpu_each else ()
        self._lock = threading.Lock()
        self._free: queue.Queue[Any] = queue.Queue()
        self._actors: list[Any] = []
        for _ in range(count):
            self._free.put(self._start_actor())
        if settings.build.arch is None and self._gpu_each:
            # The CPU tasks build for the GPU the actors evaluate on (a CPU node has no GPU to ask).
            with self._borrow() as actor:
                self.settings = replace(settings, build=replace(settings.build,
                                                                arch=self._ray.get(actor.arch.remote())))
        self._reports: dict[str, EvalReport] = {}  # candidate id -> its first report: an evaluation counts once
        self.attempts: dict[str, int] = {}  # candidate id -> evaluations started (retries after an actor died)

    @property
    def actors(self) -> list[Any]:
        """The live actors (tests kill one to see the run go on)."""
        with self._lock:
            return list(self._actors)

    def _start_actor(self) -> Any:
        actor = self._actor_class.remote(self._bundle, self.settings, self._factory)
        actor.warm.remote()  # the reference side and baselines, before its first candidate (calls run in order)
        with self._lock:
            self._actors.append(actor)
        return actor

    def _replace(self, dead: Any) -> Any:
        with self._lock:
            if dead in self._actors:
                self._actors.remove(dead)
        try:
            self._ray.kill(dead, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        return self._start_actor()

    @contextmanager
    def _borrow(self) -> Iterator[Any]:
        actor = self._free.get()
        try:
            yield actor
        finally:
            self._free.put(actor)

    def _on_actor(self, call: Callable[[Any], Any], what: str) -> Any:
        """`call(actor)`'s result from a free actor; an actor that dies is replaced and the call tried on the
        new one, at most `retries` times (then RayExecutorError)."""
        from ray.exceptions import RayActorError, RayTaskError

        last: Exception | None = None
        for attempt in range(self.executor.retries + 1):
            actor = self._free.get()
            try:
                result = self._ray.get(call(actor))
            except RayActorError as exc:
                last = exc
                log.warning("ray_actor_lost", what=what, attempt=attempt + 1, error=str(exc)[:300])
                actor = self._replace(actor)
                if exc.actor_init_failed:  # its evaluator raised while starting: another actor would raise the same
                    raise RayExecutorError(f"{what}: the evaluator could not start on a Ray actor: {exc}",
                                           where="executor") from None
                continue
            except RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, Exception) else exc
                raise cause from None  # the evaluator's own error (a broken problem, ...), as the local run raises it
            finally:
                self._free.put(actor)
            return result
        raise RayExecutorError(f"{what}: {self.executor.retries + 1} attempts, each on an actor that died "
                               f"(last: {last})", where="executor")

    def functional_form(self) -> dict[str, Any]:
        form: dict[str, Any] = self._on_actor(lambda a: a.functional_form.remote(), "functional form")
        return form

    def gpu_facts(self) -> Any:
        """The actors' GPU (tools.measure.gpu_info.GpuFacts) for the prompts and the archive: the driver may have
        none, or another one. None without a GPU."""
        return self._on_actor(lambda a: a.gpu_facts.remote(), "GPU facts") if self._gpu_each else None

    def prepare(self, candidate: Path) -> EvalReport | None:
        from kernelwright.tools.harness.evaluate import reason_for_error

        outcome = self._ray.get(self._build_task.remote(self._bundle, Bundle.of_file(candidate, with_folder=True),
                                                        self.settings))
        if outcome["ok"]:
            return None
        error = outcome.get("error") or {}
        return EvalReport(problem=str(self.problem), candidate=str(candidate), status="rejected", stage="build",
                          reason=reason_for_error(error), message=error.get("message", ""), error=error,
                          durations_s={"build": round(outcome["seconds"], 3)}, gpu=dict(outcome.get("where") or {}))

    def evaluate(self, candidate: Path) -> EvalReport:
        key = candidate_id(candidate)
        with self._lock:
            if key in self._reports:
                return self._reports[key]
        bundle = Bundle.of_file(candidate, with_folder=True)

        def call(actor: Any) -> Any:
            with self._lock:
                self.attempts[key] = self.attempts.get(key, 0) + 1
            return actor.evaluate.remote(bundle)

        data = self._on_actor(call, f"evaluation of {candidate}")
        report = EvalReport(**{**data, "problem": str(self.problem), "candidate": str(candidate)})
        with self._lock:
            return self._reports.setdefault(key, report)  # a concurrent duplicate keeps the first

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        if not self._gpu_each:
            return SanitizeVerdict("unavailable", "no GPU in the Ray cluster: compute-sanitizer memcheck needs one", 0.0)
        bundle = Bundle.of_file(candidate, with_folder=True)
        verdict: SanitizeVerdict = self._on_actor(lambda a: a.sanitize.remote(bundle), f"memcheck of {candidate}")
        return verdict

    def profile(self, candidate: Path) -> CandidateProfile:
        if not self._gpu_each:
            return CandidateProfile.unavailable("no GPU in the Ray cluster")
        bundle = Bundle.of_file(candidate, with_folder=True)
        return CandidateProfile.from_dict(self._on_actor(lambda a: a.profile.remote(bundle), f"profile of {candidate}"))

    def close(self) -> None:
        for actor in self.actors:
            try:
                self._ray.get(actor.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - a dead actor has nothing to close
                pass
            self._ray.kill(actor, no_restart=True)
        with self._lock:
            self._actors.clear()
        if self._owns_connection:
            self._ray.shutdown()


class RayExecutorError(ExecutorUnavailable):
    """Work that every actor tried died under (retries spent): the run stops, resumable."""


def candidate_id(candidate: Path) -> str:
    """A candidate's identity for counting its evaluation once: its resolved path (unique within a run)."""
    return str(Path(candidate).resolve())
