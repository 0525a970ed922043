"""`optimize_problem()`: run the agent graph on a problem, resumable from its SQLite checkpoint.

The settings come in typed (`RunSetup`); the front door builds them from its settings tree
(kernelwright.config.KernelwrightConfig.run_setup) and `kernelwright.run.optimize` is its wiring."""

from __future__ import annotations

import shlex
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from langgraph.checkpoint.sqlite import SqliteSaver

from kernelwright.agents.budget import LIMITS, exhausted
from kernelwright.agents.context import KContext, NamedModel, RunSettings
from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.agents.llm import ChosenModel, LLMUnavailable, ModelPlan, ModelSettings, choose_model, plan_models
from kernelwright.agents.llm_failure import llm_failure
from kernelwright.agents.manual import MANUAL_MODEL, ManualChatModel
from kernelwright.agents.model_chain import ModelCooldowns, RetryPolicy, make_model_chain
from kernelwright.agents.offline_proposer import OfflineSession
from kernelwright.agents.prices import ModelPrice, resolve_price
from kernelwright.agents.rate_limits import ProviderLimits, RunLimiters
from kernelwright.graphs.executors import ExecutorSettings, check_executor, open_evaluator
from kernelwright.graphs.harness_evaluator import with_gpu_facts
from kernelwright.graphs.optimize import build_optimize_graph, run_config
from kernelwright.graphs.plugins import AgentPlugin, discover_plugins
from kernelwright.graphs.state import Budget, make_initial_state
from kernelwright.graphs.tracing import observe_run
from kernelwright.tools.errors import KernelwrightError, ProblemError, ReferenceFailure
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.run_folder import DEFAULT_RUNS_DIR, RUN_FILE, ManualPrompt, RunFolder

log = structlog.get_logger(__name__)


class RunError(KernelwrightError):
    kind = "run"


class LLMRunError(RunError):
    """The run stopped because a chat model call failed (unreachable, key rejected, ...); it is resumable."""

    kind = "llm"


class RunInterrupted(RunError):
    """Ctrl-C (or another KeyboardInterrupt) stopped the run; what finished is checkpointed and `resume` continues."""

    kind = "interrupted"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    best: dict[str, Any] | None  # the best verified candidate's record (None: nothing verified)
    state: dict[str, Any]

    @property
    def best_kernel(self) -> Path | None:
        """The best verified candidate file (a drop-in `ModelNew`)."""
        return Path(self.best["source_path"]) if self.best else None

    @property
    def speedup_vs_eager(self) -> float | None:
        return (self.best or {}).get("speedup_vs_eager")

    @property
    def speedup_vs_compile(self) -> float | None:
        return (self.best or {}).get("speedup_vs_compile")

    @property
    def sanitizer(self) -> dict[str, Any] | None:
        """The best kernel's compute-sanitizer memcheck verdict (None: nothing verified to check)."""
        return self.state.get("winner_sanitizer")

    @property
    def sanitized(self) -> bool:
        """True only when memcheck ran on the best kernel and found no memory errors."""
        return bool((self.sanitizer or {}).get("sanitized"))


@contextmanager
def _checkpointer(run_dir: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(RunFolder(run_dir).checkpoints_path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@dataclass(frozen=True)
class RunBudget:
    """Limits beyond the generation count; 0 means no limit. The run stops cleanly at any of them."""

    candidates: int = 200
    wall_s: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class RunSetup:
    """What a run takes from the settings tree: the harness's settings, the search's, where runs go, and the
    configured models (each ModelSettings says where it was named, for messages), used when no argument names one;
    `executor`: where builds and evaluations run (graphs.executors: this machine, or a Ray cluster); `retry`: the
    waits between a model's retries; `provider_limits`: requests/tokens per minute and concurrent requests per
    provider (ChosenModel.limits_key), shared by all the run's calls."""

    eval_settings: EvalSettings = EvalSettings()
    run_settings: RunSettings = RunSettings()
    runs_dir: Path = DEFAULT_RUNS_DIR
    proposers: tuple[ModelSettings, ...] = ()
    critic: ModelSettings | None = None
    executor: ExecutorSettings = ExecutorSettings()
    retry: RetryPolicy = RetryPolicy()
    provider_limits: Mapping[str, ProviderLimits] = field(default_factory=dict)


def optimize_problem(problem: str | Path, setup: RunSetup, *, resume: str | None = None, run_id: str | None = None,
                     model: ModelSettings = ModelSettings(), models: Sequence[ModelSettings] = (),
                     critic_model: ModelSettings | None = None, llm: Any = None,
                     evaluator: CandidateEvaluator | None = None, budget: RunBudget = RunBudget(),
                     on_update: Callable[[str, dict[str, Any]], None] | None = None,
                     plugins: Sequence[AgentPlugin] | None = None, offline: bool | None = None,
                     archive: Any = None, on_models: Callable[[ModelPlan], None] | None = None,
                     manual: bool = False,
                     on_manual_prompt: Callable[[ManualPrompt, Path, str], None] | None = None) -> RunResult:
    """Optimise `problem`; with `resume=RUN_ID` continue that run (under setup.runs_dir) from its last checkpoint.

    `setup` gives what no argument does: the harness's settings, the RunSettings, `runs_dir` and the
    configured models (its proposers and critic, when no argument names one).
    `models` (several) form an ensemble that takes turns proposing; otherwise `model`,
    or an explicit langchain `llm`. `plugins` default to those installed under the
    `kernelwright.agents` entry-point group. A failure inside the run raises RunError
    naming the run; everything evaluated so far is checkpointed and `resume` continues.
    `offline`: None uses the offline translator and tuner when no model is named and no LLM
    endpoint is configured (and its kernels as seeds with an LLM); True uses it alone; False
    requires an LLM. A model that is named (here, or by KERNELWRIGHT_MODEL) but cannot be
    used raises LLMUnavailable before anything runs. A resumed run keeps the models it
    recorded unless `model`/`models`/`critic_model` name others. `on_models` gets the
    chosen ModelPlan before any work.
    `archive`: a memory.archive.KernelArchive, a path to one, or True for the default
    path; its verified kernels become prompt examples and this run's kernels join it.
    An archive that cannot be opened means a run without one (with a warning).
    `manual`: every prompt goes to RUN_DIR/manual/ and waits for `kernelwright answer` (agents.manual; no API
    key needed); `on_manual_prompt(prompt, path, answer_command)` is told of each one that waits. A manual run
    resumes manual. Resuming a run that a budget stopped, with a larger budget, continues it.
    """
    problem = check_source(problem, "problem").path
    runs_dir, settings = setup.runs_dir, setup.run_settings
    run_id = resume or run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    run_dir = runs_dir / run_id
    if evaluator is None:
        check_executor(setup.executor)  # a missing package is reported before anything is written
    if resume and not RunFolder(run_dir).checkpoints_path.exists():
        raise RunError(f"no run {resume!r} to resume under {runs_dir}", where=str(run_dir))
    manual = manual or bool(resume and RunFolder(run_dir).read_info().data.get("manual"))
    manual_llm = None
    if manual:
        manual_llm = ManualChatModel(run_dir=run_dir, run_id=run_id, on_prompt=None,
                                     runs_dir=None if Path(runs_dir) == DEFAULT_RUNS_DIR else Path(runs_dir))
        llm = manual_llm
    plan = choose_models(setup, model=model, models=models, critic_model=critic_model, llm=llm, offline=offline,
                         recorded=_recorded_plan(run_dir, run_id) if resume and not manual else None)
    limiters = RunLimiters(setup.provider_limits)  # one per provider, shared by every call of this run
    cooldowns = ModelCooldowns()  # models that failed past their retries, passed over by every chain of this run
    ensemble = tuple(NamedModel(m.name, make_model_chain(m, setup.retry, limiters, cooldowns=cooldowns),
                                *_price_of(m).pair, chain_prices={f.name: _price_of(f).pair for f in m.fallbacks})
                     for m in plan.proposers)
    critic_llm = make_model_chain(plan.critic, setup.retry, limiters, cooldowns=cooldowns) if plan.critic else None
    log.info("models_chosen", plan=plan.describe())
    if on_models is not None:
        on_models(plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    recorder = observe_run(run_dir, run_id)  # the event log (+ LangSmith when configured)
    owned = evaluator is None
    evaluator = evaluator or open_evaluator(problem, _jailed(setup.eval_settings, runs_dir, run_dir, archive),
                                           setup.executor)
    # an evaluator whose GPUs are elsewhere (graphs.ray_executor) says what they are; else NVML here
    remote_facts = getattr(evaluator, "gpu_facts", None)
    settings = with_gpu_facts(settings, evaluator.gpus, remote_facts() if callable(remote_facts) else None)
    opened_archive = _open_archive(archive)
    if manual_llm is not None:
        manual_llm.on_prompt = _manual_prompt_told(recorder, on_manual_prompt)
    ctx = KContext(llm=llm, evaluator=recorder.wrap(evaluator), run_dir=run_dir, settings=settings, ensemble=ensemble,
                   model_name=MANUAL_MODEL if manual else model.model or ("scripted" if llm is not None else "default"),
                   critic_llm=critic_llm, archive=opened_archive,
                   # the precision profile decides whether the offline translator may use plain TF32
                   offline=OfflineSession(allow_tf32=setup.eval_settings.profile.allows_tf32)
                   if offline is not False else None)
    by_reported_name = _prices_by_reported_name(plan)
    graph_config = {**run_config(settings, run_id),
                    **recorder.graph_config(ctx, extra_prices={name: p.pair for name, p in by_reported_name.items()})}
    node = "start"
    failed_in: tuple[str, ...] = ()
    try:
        with recorder, _checkpointer(run_dir) as saver:
            graph = build_optimize_graph(checkpointer=saver,
                                         plugins=discover_plugins() if plugins is None else plugins)
            start = None if resume else make_initial_state(
                run_id, str(problem), Budget(generations=settings.generations, candidates=budget.candidates,
                                             wall_s=budget.wall_s, tokens=budget.tokens, cost_usd=budget.cost_usd))
            if not resume:
                _write_run_json(run_dir, run_id, problem, settings, budget)
            else:
                _extend_budget(graph, graph_config, budget, settings, run_dir)
            RunFolder(run_dir).update_info(llm=plan.to_dict(), models=_model_names(ctx), manual=manual,
                                           prices=_recorded_prices(by_reported_name, manual))  # what a resume keeps
            try:
                # durability="sync": a step's checkpoint is on disk before the next step starts: a kill loses no step.
                for chunk in graph.stream(start, context=ctx, config=graph_config, stream_mode="updates", durability="sync"):
                    for node, update in chunk.items():
                        log.info("node_done", run_id=run_id, node=node)
                        if on_update is not None:
                            on_update(node, update or {})
            except Exception:
                failed_in = _pending_nodes(graph, graph_config)
                raise
            state = graph.get_state(graph_config).values
            recorder.finish(state)
    except (ReferenceFailure, ProblemError):
        raise  # the problem itself is bad input, whatever node found out
    except KeyboardInterrupt:
        resume_with = resume_command(problem, run_id, runs_dir)
        raise RunInterrupted(f"run {run_id} interrupted after node {node!r}. Everything evaluated so far is saved; "
                             f"continue with `{resume_with}`", where=str(run_dir),
                             details={"run_id": run_id, "resume_command": resume_with}) from None
    except Exception as exc:  # noqa: BLE001 - any failure inside a node: name the run and how to go on
        raise _stopped(exc, plan, run_id, run_dir, resume_command(problem, run_id, runs_dir), node, failed_in) from exc
    finally:
        if manual_llm is not None:
            manual_llm.cancel()  # a prompt still waiting (another task's) stops waiting
        if owned:
            evaluator.close()
        if opened_archive is not None and opened_archive is not archive:
            opened_archive.close()
    best = state.get("candidates", {}).get(state.get("best_id") or "")
    return RunResult(run_id, run_dir, best, state)


def _manual_prompt_told(recorder: Any, told: Callable[[ManualPrompt, Path, str], None] | None
                        ) -> Callable[[ManualPrompt, Path, str], None]:
    """A waiting prompt goes into the event log (`kernelwright trace --follow` shows it) and to the caller."""
    def on_prompt(prompt: ManualPrompt, path: Path, command: str) -> None:
        recorder.log.emit("manual_prompt", number=prompt.number, node=prompt.node, path=str(path), command=command)
        if told is not None:
            told(prompt, path, command)
    return on_prompt


def _prices_by_reported_name(plan: ModelPlan) -> dict[str, ModelPrice]:
    """Every model's price (each model of a fallback chain too), by the names its calls may report: the name its
    endpoint knows, and without a `provider:` prefix (what a provider's client reports)."""
    out: dict[str, ModelPrice] = {}
    for chosen in plan.all_models():
        for link in (chosen, *chosen.fallbacks):
            price = _price_of(link)
            for name in (link.api_model, link.api_model.rsplit(":", 1)[-1]):
                out.setdefault(name, price)
    return out


def _price_of(chosen: ChosenModel) -> ModelPrice:
    """A model's (in, out) USD per Mtok: its configured prices, else the default table's (agents.prices)."""
    return resolve_price(chosen.api_model, chosen.settings.price_in_per_mtok, chosen.settings.price_out_per_mtok)


def _recorded_prices(by_name: dict[str, ModelPrice], manual: bool) -> dict[str, Any]:
    """Each model's prices and their source, by the name its calls report (the spend table's model column)."""
    out = {name: price.to_dict() for name, price in by_name.items()}
    if manual:
        out[MANUAL_MODEL] = ModelPrice().to_dict()
    return out


def _extend_budget(graph: Any, config: dict[str, Any], budget: RunBudget, settings: RunSettings,
                   run_dir: Path) -> None:
    """A resumed run that a spending limit stopped (cost, tokens, candidates, minutes) goes on when this resume
    raises that limit and the new budget leaves room."""
    state = graph.get_state(config)
    values = state.values or {}
    reason = values.get("stop_reason") or ""
    if not reason or state.next:  # not stopped by a budget, or stopped mid-way (the stream continues it)
        return
    limits = Budget(generations=settings.generations, candidates=budget.candidates, wall_s=budget.wall_s,
                    tokens=budget.tokens, cost_usd=budget.cost_usd)
    # Only a spending limit, raised: a run that finished its generations (or stopped for want of a GPU) stays done.
    key = next((k for k, name in LIMITS if reason.startswith(name + ":")), None)
    if key is None or key == "generations":
        return
    raised: dict[str, float] = {"candidates": budget.candidates, "wall_s": budget.wall_s, "tokens": budget.tokens,
                                "cost_usd": budget.cost_usd}
    new, old = raised.get(key, 0.0), float((values.get("budget") or {}).get(key) or 0)
    if new and new <= old:  # not raised (0: no limit at all is raised)
        return
    if exhausted(limits, values.get("spent")):
        return
    from kernelwright.graphs.nodes import SELECT

    # As if select had just run with the new limits: archive (a no-op for archived kernels), then next_step routes
    # on, with the run's context (routing needs it, so the update cannot route past archive itself).
    graph.update_state(config, {"budget": limits, "stop_reason": None, "winner_checked": False}, as_node=SELECT)
    RunFolder(run_dir).update_info(budget=asdict(budget), status="running", stop_reason=None)
    log.info("run_budget_extended", was=reason, budget=asdict(budget))


def _jailed(settings: EvalSettings, runs_dir: Path, run_dir: Path, archive: Any) -> EvalSettings:
    """Candidate code of this run sees none of the runs folder but this run's candidates, and no archive."""
    from kernelwright.memory.location import default_archive_path

    candidates = RunFolder(run_dir).candidates_path
    candidates.mkdir(parents=True, exist_ok=True)  # shown to the workers, which start before the first candidate
    hidden = [str(runs_dir), str(default_archive_path())]
    if isinstance(archive, (str, Path)):
        hidden.append(str(archive))
    return replace(settings, private_paths=(*settings.private_paths, *hidden),
                   visible_paths=(*settings.visible_paths, str(candidates)))


def _open_archive(archive: Any) -> Any:
    path: str | Path | None
    if archive is None or archive is False:
        return None
    if archive is True:
        path = None  # the default archive
    elif isinstance(archive, (str, Path)):
        path = archive
    else:
        return archive  # an open KernelArchive: the caller owns it
    try:
        from kernelwright.memory.archive import KernelArchive

        return KernelArchive.open_local(path)
    except Exception as exc:  # noqa: BLE001 - a damaged archive means a run without examples, never a failed run
        log.warning("archive_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None


def resume_command(problem: Path, run_id: str, runs_dir: str | Path) -> str:
    """The command that continues run `run_id` (the models it recorded come back with it)."""
    command = f"kernelwright run {shlex.quote(str(problem))} --resume {shlex.quote(run_id)}"
    return command if Path(runs_dir) == DEFAULT_RUNS_DIR else f"{command} --runs-dir {shlex.quote(str(runs_dir))}"


def _stopped(exc: Exception, plan: ModelPlan, run_id: str, run_dir: Path, resume: str, last_done: str,
             failed_in: tuple[str, ...]) -> RunError:
    """Why the run stopped, where, and the command that continues it; an LLM's failure is an LLMRunError."""
    node = failed_in[0] if len(set(failed_in)) == 1 else None
    at = f"in node {node!r}" if node else f"after node {last_done!r}"
    details = {"run_id": run_id, "node": node or last_done, "resume_command": resume}
    failure = llm_failure(exc, plan)
    if failure is not None:
        return LLMRunError(f"run {run_id} stopped {at}: {failure}. Everything evaluated so far is saved; once the "
                           f"LLM answers, continue with `{resume}`", where=str(run_dir), details=details)
    cause = str(exc).strip().rstrip(".")
    return RunError(f"run {run_id} stopped {at}: {type(exc).__name__}: {cause}. Everything evaluated so far is "
                    f"saved; continue with `{resume}`", where=str(run_dir), details=details)


def _pending_nodes(graph: Any, config: dict[str, Any]) -> tuple[str, ...]:
    """The nodes the last checkpoint was about to run: where a failure happened."""
    try:
        return tuple(graph.get_state(config).next)
    except Exception:  # noqa: BLE001 - only sharpens the message
        return ()


def choose_models(setup: RunSetup, *, model: ModelSettings = ModelSettings(), models: Sequence[ModelSettings] = (),
                  critic_model: ModelSettings | None = None, llm: Any = None, offline: bool | None = None,
                  recorded: ModelPlan | None = None) -> ModelPlan:
    """The models a run with these arguments uses (the arguments' models, else the setup's), or why it runs
    offline; LLMUnavailable for a named model that cannot be used. `recorded`: a resumed run's plan."""
    requested = [_named_by(m, "models=" if models else "model=") for m in (models or [model])]
    if setup.proposers and not any(m.names_a_model for m in requested):
        requested = list(setup.proposers)
    critic = _named_by(critic_model, "critic_model=") if critic_model else setup.critic
    return _plan_models(llm, offline, requested, critic, recorded)


def _plan_models(llm: Any, offline: bool | None, requested: Sequence[ModelSettings], critic: ModelSettings | None,
                 recorded: ModelPlan | None) -> ModelPlan:
    if llm is not None:
        chosen_critic = choose_model(critic) if critic is not None and critic.names_a_model else None
        return ModelPlan(critic=chosen_critic, caller_supplied=True)
    if offline is True:
        return ModelPlan(why_offline="offline=True")
    plan = plan_models(requested, critic, recorded=recorded)
    if offline is False and not plan.proposers:
        raise LLMUnavailable(f"offline=False needs an LLM, and there is none ({plan.why_offline})", where="llm")
    return plan


def _recorded_plan(run_dir: Path, run_id: str) -> ModelPlan | None:
    """The models a run recorded in its run record (None for runs from before it recorded them)."""
    data = RunFolder(run_dir).read_info().llm
    return ModelPlan.from_dict(data, f"run {run_id}'s {RUN_FILE}") if data is not None else None


def _named_by(settings: ModelSettings, argument: str) -> ModelSettings:
    if settings.named_by or not settings.names_a_model:
        return settings
    return replace(settings, named_by=f"optimize({argument}...)")


def _model_names(ctx: KContext) -> list[str]:
    return [m.name for m in ctx.proposal_models()] or ["offline translator + tuner"]


def _write_run_json(run_dir: Path, run_id: str, problem: Path, settings: RunSettings, budget: RunBudget) -> None:
    # Merged, atomically, with what the event recorder keeps there (status, outcome).
    RunFolder(run_dir).update_info(run_id=run_id, problem=str(problem), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                   settings=asdict(settings), budget=asdict(budget), kernelwright=_version())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kernelwright")
    except PackageNotFoundError:
        return "unknown"
