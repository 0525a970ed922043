"""The offline proposer as graph nodes: kernels without any LLM.

- offline_translate: the rule-based translator's variants (fused, scalar, ATen reductions) for the problem.
- offline_tune: the next generation's settings of the best verified variant's tunables: neighbours of the
  best setting first (local search), then random samples, never a setting already tried.

With an LLM configured, `offline_seeds` adds the translator's variants to the LLM's first population.
With a kernel archive attached, the first generation also tries the tunable settings of the most similar
verified offline kernels from earlier runs (their lineage's `params`, as their run recorded them), so related
problems start from settings that already won. Tracing the problem happens once per run process (the run
context's cache).
"""

from __future__ import annotations

import ast
import random
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from kernelwright.agents.context import KContext
from kernelwright.agents.run_state import CandidateRecord, RunState
from kernelwright.tools.run_folder import CandidateMeta, RunFolder
from kernelwright.tools.source_hash import candidate_id

if TYPE_CHECKING:
    from kernelwright.agents.offline.space import TuneSpace

log = structlog.get_logger(__name__)
AGENT = "offline"
SEED_POOL = 256  # archive records re-ranked for seeds: enough to reach past the nearest runs
_TUNABLES_RE = re.compile(r"^Tunables: (.*)\.$", re.M)


@dataclass
class OfflineSession:
    """Per-run cache of the traced problem and its plans (tracing exports the model once per input shape:
    seconds, not free). `start` begins the trace in a background thread, so it overlaps the describe
    node's own trace, which runs in the evaluator's worker process.

    `allow_tf32`: the run's precision profile admits plain TF32 math (PrecisionProfile.allows_tf32, which the
    run that builds the session asks): the translator's fp32 GEMMs and convolutions may then run as TF32."""

    traced: dict[str, Any] = field(default_factory=dict)
    allow_tf32: bool = False
    _pending: dict[str, Future[list[Any]]] = field(default_factory=dict, repr=False)

    def start(self, problem_path: str) -> None:
        if problem_path in self.traced or problem_path in self._pending:
            return
        future: Future[list[Any]] = Future()

        def trace() -> None:
            try:
                future.set_result(_trace_quietly(problem_path))
            except BaseException as exc:  # handed to whoever asks for the trace
                future.set_exception(exc)

        self._pending[problem_path] = future
        # a daemon thread: a run that ends (or fails) before it finishes is not held up by it
        threading.Thread(target=trace, name="kw-offline-trace", daemon=True).start()

    def traced_problem(self, problem_path: str) -> list[Any]:
        if problem_path not in self.traced:
            pending = self._pending.pop(problem_path, None)
            # an exception of the background trace (e.g. OfflineUnsupported) is raised here, to the caller
            self.traced[problem_path] = pending.result() if pending is not None else _trace_quietly(problem_path)
        return self.traced[problem_path]


def _trace_quietly(problem_path: str) -> list[Any]:
    """The problem traced for every input shape; a problem torch.export cannot trace is one the offline
    translator does not support (OfflineUnsupported, reported as the run's error, not a crash). Traced on
    unfilled inputs: a plan reads shapes, strides and dtypes, and level-1 inputs are GBs."""
    from kernelwright.agents.offline import OfflineUnsupported
    from kernelwright.agents.offline.propose import trace_all
    from kernelwright.agents.offline.trace import TraceFailure
    from kernelwright.tools.problem.inputs import unfilled_problem_inputs

    with warnings.catch_warnings():  # torch.export's own deprecation chatter is not the user's concern
        warnings.simplefilter("ignore", FutureWarning)
        try:
            with unfilled_problem_inputs(problem_path):
                return trace_all(problem_path)
        except TraceFailure as exc:
            raise OfflineUnsupported(f"cannot trace the problem: {exc.message}", where=problem_path) from None


def _tuning_target(state: RunState, ctx: KContext, variant: str) -> Any:
    """propose.tuning_target for the run's problem under the run's settings (the translator's kernel families, the
    precision profile's TF32, CUDA graphs, convolution outputs kept channels-last)."""
    from kernelwright.agents.offline.propose import tuning_target

    return tuning_target(ctx.offline.traced_problem(state["problem_path"]), variant,
                         preview=ctx.settings.offline_preview, allow_tf32=ctx.offline.allow_tf32,
                         graphs=ctx.settings.offline_graphs,
                         kept_layouts=ctx.settings.offline_channels_last_kept)


def offline_candidates(state: RunState, ctx: KContext) -> dict[str, Any]:
    """The first generation as pending candidates; an unsupported problem becomes an error record.

    "variants" start: the translator's variants, then archive seeds. "random" start: archive seeds first,
    then the fused plan at random settings, `candidates_per_generation` in all."""
    from kernelwright.agents.offline import OfflineUnsupported, propose

    generation = state.get("generation", 0)
    known = state.get("candidates") or {}
    records: dict[str, CandidateRecord] = {}

    def keep(record: CandidateRecord) -> None:
        if record["id"] not in known and record["id"] not in records:
            records[record["id"]] = record

    try:
        traced = ctx.offline.traced_problem(state["problem_path"])
        generated = [] if ctx.settings.offline_start == "random" else propose(
            state["problem_path"], traced=traced, preview=ctx.settings.offline_preview,
            allow_tf32=ctx.offline.allow_tf32)
    except OfflineUnsupported as exc:
        log.warning("offline_unsupported", problem=state["problem_path"], error=exc.message)
        return {"errors": [{"node": AGENT, "generation": generation, **exc.to_dict()}]}
    for cand in generated:
        keep(_store(ctx, cand.source, generation, cand.variant, cand.params, list(cand.kept_aten_ops), parents=[]))
    for record in archived_candidates(state, ctx):
        keep(record)
    free = ctx.settings.candidates_per_generation - len(records)
    if ctx.settings.offline_start == "random":
        for record in random_candidates(state, ctx, free):
            keep(record)
    elif ctx.settings.offline_fill:
        for record in neighbour_candidates(state, ctx, free, taken={*known, *records}):
            keep(record)
    return {"candidates": records}


def neighbour_candidates(state: RunState, ctx: KContext, count: int, taken: set[str]) -> list[CandidateRecord]:
    """Up to `count` candidates of the fused plan near its defaults: every staged switch on at once
    (TuneSpace.switched_on), then one tunable step at a time (TuneSpace.neighbours_up_first), none whose code is
    taken."""
    def settings(space: TuneSpace) -> list[dict[str, Any]]:
        defaults = space.defaults()
        return [s for s in (space.switched_on(defaults),) if s] + space.neighbours_up_first(defaults)

    return _fused_plan_candidates(state, ctx, "fused_neighbour", settings, count, taken)


def random_candidates(state: RunState, ctx: KContext, count: int) -> list[CandidateRecord]:
    """`count` distinct settings of the fused plan, drawn with a seed of the problem (not the run), so two
    runs of one problem draw the same sequence and differ only by what else they start from."""
    rng = random.Random(f"{ctx.settings.seed}:{Path(state['problem_path']).name}:start")
    return _fused_plan_candidates(state, ctx, "fused_sampled",
                                  lambda space: (space.sample(rng) for _ in range(8 * count)), count, set())


def _fused_plan_candidates(state: RunState, ctx: KContext, variant: str,
                           settings: Callable[[TuneSpace], Iterable[dict[str, Any]]], count: int,
                           taken: set[str]) -> list[CandidateRecord]:
    """Up to `count` candidates of the fused plan (as `variant`) at the settings `settings` yields from its space,
    in that order, none whose source is in `taken` (which each one joins)."""
    if count <= 0:
        return []
    target = _tuning_target(state, ctx, "fused")
    if target is None:
        return []
    target = replace(target, variant=variant)
    out: list[CandidateRecord] = []
    for params in settings(target.space):
        if len(out) >= count:
            break
        source = target.render(params)
        if candidate_id(source) in taken:
            continue
        record = _store(ctx, source, state.get("generation", 0), target.variant, params,
                        list(target.plans[0].kept_aten_ops), parents=[])
        taken.add(record["id"])
        out.append(record)
    return out


def archived_settings(record: Any) -> dict[str, Any]:
    """The tunable settings an archived offline kernel was generated with: its lineage's `params`; for a record
    archived before lineages carried them, its docstring's 'Tunables:' line (`parse_tunables`)."""
    if record.lineage.params is not None:
        return dict(record.lineage.params)
    return parse_tunables(record.kernel_source)


def parse_tunables(kernel_source: str) -> dict[str, Any]:
    """The settings an offline kernel was generated with, from its docstring's 'Tunables: k=v, ...' line: the
    fallback for archive records written before the settings were stored as data."""
    match = _TUNABLES_RE.search(kernel_source)
    if match is None or match.group(1).strip() == "defaults":
        return {}
    out: dict[str, Any] = {}
    for item in match.group(1).split(", "):
        key, _, text = item.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = text.strip()
    return out


def transfer_settings(archived: dict[str, Any], dims: dict[str, Any]) -> dict[str, Any]:
    """An archived kernel's settings that apply to this plan's tunables. A name matches exactly, else by what
    follows the step prefix ("k1.TPR" from a GEMM + softmax kernel sets "k0.TPR" of a softmax alone) when
    no exact name covers that tunable; a value outside this plan's choices is dropped."""
    out = {k: v for k, v in archived.items() if k in dims and v in dims[k]["choices"]}
    for key, value in archived.items():
        if key in dims:
            continue
        suffix = key.partition(".")[2]
        for name, dim in dims.items():
            if name not in out and suffix and name.partition(".")[2] == suffix and value in dim["choices"]:
                out[name] = value
    return out


def seed_order(hits: list[Any]) -> list[Any]:
    """Archive hits in the order their settings are tried: the fastest kernel of each earlier run, runs by
    similarity, then each run's second fastest, and so on. The archive keeps every verified kernel of a run,
    slow settings too, and one run's winner may not fit this problem's shapes (a cached row that fit one
    width spills at another), so the first seeds come from different runs rather than all from the nearest."""
    runs: dict[str, list[Any]] = {}
    for hit in sorted(hits, key=lambda h: -h.similarity):
        runs.setdefault(hit.record.run_id or hit.record.id, []).append(hit)
    ranked = [sorted(group, key=lambda h: -(h.record.speedup_vs_eager or 0.0)) for group in runs.values()]
    return [group[i] for i in range(max((len(g) for g in ranked), default=0)) for group in ranked if i < len(group)]


def archived_candidates(state: RunState, ctx: KContext) -> list[CandidateRecord]:
    """Candidates at the tunable settings of similar verified offline kernels in the archive (best first)."""
    if ctx.archive is None or not state.get("functional"):
        return []
    from kernelwright.memory.prompting import retrieve_examples

    # Two kernels a run, from a wide pool: every kernel of a run shares its problem's similarity, so plain
    # top-k would be the nearest one or two runs only, and a farther run's winner would never be tried.
    hits = retrieve_examples(ctx.archive, state["functional"], k=4 * ctx.settings.candidates_per_generation,
                             gpu_arch=ctx.settings.gpu_arch, diversity=0.0, pool=SEED_POOL, per_run=2)
    hits = seed_order(hits)
    target = _tuning_target(state, ctx, "fused")
    if target is None:
        return []
    dims = target.space.to_dict()
    out: list[CandidateRecord] = []
    seen: set[str] = set()
    for hit in hits:
        if hit.record.lineage.agent != AGENT:
            continue
        settings = transfer_settings(archived_settings(hit.record), dims)
        if not settings:
            continue  # nothing of that kernel's settings applies to this problem's plan
        params = {**target.space.defaults(), **settings}
        record = _store(ctx, target.render(params), state.get("generation", 0), target.variant, params,
                        list(target.plans[0].kept_aten_ops), parents=[], seeded_from=hit.record.id)
        if record["id"] not in seen:
            seen.add(record["id"])
            out.append(record)
        if len(out) >= ctx.settings.candidates_per_generation:
            break
    log.info("offline_archive_seeds", hits=len(hits), seeds=len(out))
    return out


def offline_tune(state: RunState, ctx: KContext) -> dict[str, Any]:
    """New settings of the best verified offline candidate's tunables (local search, then random samples)."""
    known = state.get("candidates") or {}
    passed = [r for r in known.values() if r.get("status") == "passed" and r.get("agent") == AGENT
              and r.get("speedup_vs_eager") and r.get("variant")]
    if not passed:
        return offline_candidates(state, ctx) if not known else {}
    best = max(passed, key=lambda r: r["speedup_vs_eager"])  # type: ignore[arg-type, return-value]
    target = _tuning_target(state, ctx, best["variant"])
    if target is None or target.space.size() <= 1:
        return {}
    space = target.space
    generation = state.get("generation", 0)
    rng = random.Random(f"{ctx.settings.seed}:{state.get('run_id')}:{generation}")
    start = {**space.defaults(), **{k: v for k, v in (best.get("params") or {}).items() if k in space.to_dict()}}
    neighbours = space.neighbours(start)
    rng.shuffle(neighbours)
    settings = neighbours + [space.sample(rng) for _ in range(4 * ctx.settings.candidates_per_generation)]
    records: dict[str, CandidateRecord] = {}
    for params in settings:
        if len(records) >= ctx.settings.candidates_per_generation:
            break
        source = target.render(params)
        cid = candidate_id(source)
        if cid in known or cid in records:
            continue  # this setting (or one that writes the same code) was tried
        records[cid] = _store(ctx, source, generation, target.variant, params, list(target.plans[0].kept_aten_ops),
                              parents=[best["id"]])
    return {"candidates": records}


def _store(ctx: KContext, source: str, generation: int, variant: str, params: dict[str, Any], kept: list[str],
           parents: list[str], seeded_from: str | None = None) -> CandidateRecord:
    meta = CandidateMeta(agent=AGENT, generation=generation, model=AGENT, temperature=0.0, prompt="offline",
                         parents=tuple(parents), variant=variant, params=params, kept_aten_ops=tuple(kept),
                         seeded_from=seeded_from)
    cid, folder = RunFolder(ctx.run_dir).store_candidate(source, meta)
    return CandidateRecord(id=cid, generation=generation, parents=parents, agent=AGENT, model=AGENT,
                           temperature=0.0, prompt="offline", source_path=str(folder.source_path), status="pending",
                           variant=variant, params=params)
