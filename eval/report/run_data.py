"""Read a run directory (its record, its events and its candidates, through tools.run_folder) into typed records.

Tolerant by design: a live run has no run_end yet, a killed one may end in a
half-written line, an old run may have no events at all. Whatever is missing
stays empty; nothing here raises on a partial run (only on a missing directory).
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.agents.run_state import CandidateStatus, candidate_status
from kernelwright.graphs.nodes import CRITIQUE, SCREEN
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.run_folder import CandidateFolder, CandidateMeta, RunFolder

FAILED_STATUSES: tuple[CandidateStatus, ...] = ("rejected", "error", "screened_out", "needs_gpu")


class RunDataError(KernelwrightError):
    kind = "run_data"


@dataclass
class LlmCall:
    t: float
    agent: str
    node: str
    node_run: str | None
    generation: int
    model: str
    temperature: float | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    latency_s: float
    cost_usd: float
    candidate_id: str | None  # the candidate this call proposed, critiqued or screened
    role: str  # proposal | critique | screen | malformed | failed | other
    error: str | None = None
    response: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ProviderEvent:
    """A chat model call retried, or a chain's switch to its next model (agents.model_chain; graphs.events)."""

    t: float
    kind: str  # retry | fallback
    agent: str
    generation: int
    model: str
    endpoint: str
    error: str
    to_model: str | None = None  # fallback: the model asked next
    attempt: int | None = None  # retry: the attempt that failed, of `of`
    of: int | None = None
    wait_s: float | None = None
    retry_after_s: float | None = None  # the server's Retry-After, when it sent one

    def describe(self) -> str:
        if self.kind == "fallback":
            return f"switch {self.model} -> {self.to_model} ({self.endpoint} failed: {self.error[:120]})"
        asked = f", Retry-After {self.retry_after_s:g} s" if self.retry_after_s is not None else ""
        return (f"retry {self.model}: attempt {self.attempt}/{self.of} failed, waited {self.wait_s or 0:.2f} s"
                f"{asked} ({self.error[:120]})")


@dataclass
class ToolCall:
    t: float
    tool: str
    candidate_id: str | None
    status: str | None
    reason: str | None
    seconds: float
    speedup: float | None = None
    summary: str = ""
    error: str | None = None


@dataclass
class NodeRun:
    node: str
    node_run: str
    generation: int
    t_start: float
    duration_s: float | None = None  # None: still running (or the run was killed inside it)
    error: str | None = None
    subject: str | None = None
    candidate_id: str | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # what the node recorded as failed (kind, message)
    next_generation: int | None = None  # set by the node that closed a generation (select)


@dataclass
class Candidate:
    id: str
    generation: int = 0
    agent: str = "unknown"
    model: str = ""
    temperature: float | None = None
    prompt: str = ""
    parents: list[str] = field(default_factory=list)
    repair_depth: int = 0
    status: CandidateStatus = "pending"
    reason: str | None = None
    message: str = ""
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    screen: str | None = None
    critique: str | None = None
    folder: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    llm_calls: list[LlmCall] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def source_path(self) -> Path | None:
        return CandidateFolder(self.folder).source_path if self.folder else None

    def source(self) -> str:
        path = self.source_path
        try:
            return path.read_text() if path else ""
        except OSError:
            return ""

    @property
    def verified(self) -> bool:
        return self.status == "passed" and bool(self.speedup_vs_eager)


@dataclass
class RunData:
    run_id: str
    run_dir: Path
    info: dict[str, Any]
    status: str  # finished | failed | interrupted | running | stopped (killed) | unknown
    candidates: dict[str, Candidate]
    nodes: list[NodeRun]
    llm_calls: list[LlmCall]
    tool_calls: list[ToolCall]
    run_events: list[dict[str, Any]]
    skipped_lines: int = 0  # lines of the event log that were not JSON (a kill mid-write)
    provider_events: list[ProviderEvent] = field(default_factory=list)  # retries and model switches

    @property
    def best(self) -> Candidate | None:
        best_id = (self.info.get("best") or {}).get("id")
        if best_id in self.candidates and self.candidates[best_id].verified:
            return self.candidates[best_id]
        verified = [c for c in self.candidates.values() if c.verified]
        return max(verified, key=lambda c: c.speedup_vs_eager or 0.0) if verified else None

    @property
    def isolation(self) -> list[tuple[str, int]]:
        """The isolation candidate code ran under, as each evaluation's worker reported it (the report's
        resources.isolation, tools.sandbox.isolation.describe), with how many candidates each; most first.
        Empty when no candidate reached a worker (or the run predates the record)."""
        seen = Counter(str(line) for c in self.candidates.values()
                       if (line := (c.report.get("resources") or {}).get("isolation")))
        return seen.most_common()

    @property
    def generations(self) -> list[int]:
        """Every generation that ran, those that added no candidate included.

        A generation ran once it has candidates or once a node closed it (select records the next
        generation's number; the run record keeps the count). Node start events alone do not count: nodes
        after the last select (archive, the final routing) already carry the next generation's number.
        """
        closed = max([n.next_generation for n in self.nodes if n.next_generation is not None]
                     + [int(self.info.get("generations_done") or 0)])
        with_candidates = {c.generation for c in self.candidates.values()}
        found = with_candidates | set(range(closed))
        return sorted(found or {n.generation for n in self.nodes})

    def generation_members(self, generation: int) -> list[Candidate]:
        """The candidates a generation added."""
        return [c for c in self.candidates.values() if c.generation == generation]

    def generation_errors(self, generation: int) -> list[str]:
        """What the generation's nodes recorded as failed ('node: message'), each once, in order."""
        seen: dict[str, None] = {}
        for node in self.nodes:
            if node.generation != generation:
                continue
            for error in node.errors:
                seen.setdefault(f"{node.node}: {error.get('message') or error.get('kind') or 'error'}", None)
            if node.error:
                seen.setdefault(f"{node.node}: {node.error}", None)
        return list(seen)

    def find(self, prefix: str) -> Candidate:
        matches = [c for cid, c in self.candidates.items() if cid.startswith(prefix)]
        if len(matches) != 1:
            raise RunDataError(f"{len(matches)} candidates of run {self.run_id} match {prefix!r}", where=str(self.run_dir))
        return matches[0]

    def lineage(self, cid: str) -> list[Candidate]:
        """The candidate and its first-parent ancestors, oldest first."""
        chain: list[Candidate] = []
        seen: set[str] = set()
        current = self.candidates.get(cid)
        while current is not None and current.id not in seen:
            chain.append(current)
            seen.add(current.id)
            current = self.candidates.get(current.parents[0]) if current.parents else None
        return chain[::-1]


def run_status(info: dict[str, Any], ended: dict[str, Any] | None) -> str:
    status = str(info.get("status") or (ended or {}).get("status") or ("running" if info else "unknown"))
    if status == "running" and info.get("pid") and info.get("host") == socket.gethostname():
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return "stopped"  # killed without a chance to record its end; `--resume` continues it
        except (PermissionError, ValueError):
            pass
    return status


def load_run(run_dir: str | Path, *, messages: bool = True) -> RunData:
    """Everything recorded about one run; `messages=False` drops prompt texts (large runs)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDataError(f"no run directory {run_dir}", where=str(run_dir))
    folder = RunFolder(run_dir)
    info = folder.read_info().to_dict()
    events, bad = folder.read_events()
    candidates = _candidates_from_folders(folder)
    nodes: dict[str, NodeRun] = {}
    llm_calls: list[LlmCall] = []
    tool_calls: list[ToolCall] = []
    run_events: list[dict[str, Any]] = []
    provider_events: list[ProviderEvent] = []
    for event in events:
        kind = event.get("event")
        if kind == "node_start":
            nodes[str(event.get("node_run"))] = NodeRun(
                node=str(event.get("node")), node_run=str(event.get("node_run")), generation=int(event.get("generation") or 0),
                t_start=float(event.get("t") or 0.0), subject=event.get("subject"), candidate_id=event.get("candidate_id"))
        elif kind in ("node_end", "node_error"):
            run = nodes.get(str(event.get("node_run")))
            if run is not None:
                run.duration_s = float(event.get("duration_s") or 0.0)
                run.error = event.get("error")
                run.updates = list(event.get("candidates") or [])
                run.errors = [e for e in event.get("errors") or [] if isinstance(e, dict)]
                if isinstance(event.get("next_generation"), int):
                    run.next_generation = event["next_generation"]
                _apply_updates(candidates, run)
        elif kind == "llm_call":
            llm_calls.append(_llm_call(event, messages))
        elif kind == "tool_call":
            tool_calls.append(ToolCall(t=float(event.get("t") or 0.0), tool=str(event.get("tool")),
                                       candidate_id=event.get("candidate_id"), status=event.get("status"),
                                       reason=event.get("reason"), seconds=float(event.get("seconds") or 0.0),
                                       speedup=event.get("speedup"), summary=str(event.get("summary") or ""),
                                       error=event.get("error")))
        elif kind in ("run_start", "run_end"):
            run_events.append(event)
        elif kind in ("llm_retry", "llm_fallback"):
            provider_events.append(_provider_event(event))
    _link(candidates, list(nodes.values()), llm_calls, tool_calls)
    for cand in candidates.values():
        _apply_report(cand)
    ended = next((e for e in reversed(run_events) if e.get("event") == "run_end"), None)
    return RunData(run_id=str(info.get("run_id") or run_dir.name), run_dir=run_dir, info=info,
                   status=run_status(info, ended), candidates=candidates, nodes=list(nodes.values()),
                   llm_calls=llm_calls, tool_calls=tool_calls, run_events=run_events, skipped_lines=bad,
                   provider_events=provider_events)


def _provider_event(event: dict[str, Any]) -> ProviderEvent:
    def number(key: str) -> float | None:
        value = event.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    attempt, of = number("attempt"), number("of")
    return ProviderEvent(t=float(event.get("t") or 0.0), kind=str(event.get("event"))[len("llm_"):],
                         agent=str(event.get("agent") or "unknown"), generation=int(event.get("generation") or 0),
                         model=str(event.get("model") or "?"), endpoint=str(event.get("endpoint") or "?"),
                         error=str(event.get("error") or ""), to_model=event.get("to_model"),
                         attempt=int(attempt) if attempt is not None else None, of=int(of) if of is not None else None,
                         wait_s=number("wait_s"), retry_after_s=number("retry_after_s"))


def _candidates_from_folders(run: RunFolder) -> dict[str, Candidate]:
    out: dict[str, Candidate] = {}
    for folder in run.candidates():
        meta = folder.read_meta() or CandidateMeta()
        cid = meta.id or folder.path.name
        out[cid] = Candidate(id=cid, generation=meta.generation or 0, agent=meta.agent or "unknown",
                             model=meta.model, temperature=meta.temperature, prompt=meta.prompt,
                             parents=list(meta.parents), repair_depth=meta.repair_depth, folder=folder.path)
    return out


def _apply_updates(candidates: dict[str, Candidate], run: NodeRun) -> None:
    """A node's candidate updates, in order: the latest status wins until a report says otherwise."""
    for update in run.updates:
        cid = str(update.get("id"))
        cand = candidates.get(cid)
        if cand is None:
            cand = candidates[cid] = Candidate(id=cid, generation=run.generation)
        if update.get("status"):
            cand.status = candidate_status(update["status"])
            cand.reason = update.get("reason")
        if update.get("speedup") is not None:
            cand.speedup_vs_eager = float(update["speedup"])
        if update.get("agent") and cand.agent == "unknown":
            cand.agent = str(update["agent"])
        if update.get("parents") and not cand.parents:
            cand.parents = list(update["parents"])
        for key in ("screen", "critique"):
            if update.get(key):
                setattr(cand, key, str(update[key]))


def _apply_report(cand: Candidate) -> None:
    if cand.folder is None:
        return
    folder = CandidateFolder(cand.folder)
    report = folder.read_report()
    if report is not None and report.data:
        cand.report = report.to_dict()
        cand.status = candidate_status(report.status)
        cand.reason = report.reason
        cand.message = report.message
        cand.speedup_vs_eager = report.speedup_vs_eager
        cand.speedup_vs_compile = report.speedup_vs_compile
    profile = folder.read_profile()
    cand.profile = profile.to_dict() if profile is not None and (profile.summary or profile.data) else None


def _llm_call(event: dict[str, Any], keep_messages: bool) -> LlmCall:
    cid = event.get("candidate_id")
    error = event.get("error")
    role = "failed" if error else ("proposal" if cid else "other")
    if event.get("subject"):  # the caller named the candidate the call concerns (screen, critique, ...)
        cid, role = str(event["subject"]), ("failed" if error else str(event.get("role") or "other"))
    return LlmCall(t=float(event.get("t") or 0.0), agent=str(event.get("agent") or "unknown"),
                   node=str(event.get("node") or ""), node_run=event.get("node_run"),
                   generation=int(event.get("generation") or 0), model=str(event.get("model") or ""),
                   temperature=event.get("temperature"), input_tokens=int(event.get("input_tokens") or 0),
                   output_tokens=int(event.get("output_tokens") or 0), total_tokens=int(event.get("total_tokens") or 0),
                   latency_s=float(event.get("latency_s") or 0.0), cost_usd=float(event.get("cost_usd") or 0.0),
                   candidate_id=cid, role=role, error=error, response=str(event.get("response") or "") if keep_messages else "",
                   messages=list(event.get("messages") or []) if keep_messages else [])


def _link(candidates: dict[str, Candidate], nodes: list[NodeRun], llm_calls: list[LlmCall],
          tool_calls: list[ToolCall]) -> None:
    """Attach LLM and tool calls to the candidates they concern.

    Proposals carry their candidate's id; calls whose caller named a subject carry that; a critique
    concerns the node's subject; in event logs written before subjects were recorded, a screen node's LLM
    calls follow, in order, its candidates screened by a model (verdicts not marked "(static)").
    """
    by_run = {n.node_run: n for n in nodes}
    screened: dict[str, list[str]] = {
        n.node_run: [str(u["id"]) for u in n.updates if u.get("screen") and "(static)" not in str(u["screen"])]
        for n in nodes if n.node == SCREEN}
    for call in llm_calls:
        node = by_run.get(call.node_run or "")
        if call.candidate_id is None and node is not None:
            if node.node == CRITIQUE and node.subject:
                call.candidate_id, call.role = node.subject, "critique"
            elif node.node == SCREEN and screened.get(node.node_run):
                call.candidate_id, call.role = screened[node.node_run].pop(0), "screen"
            elif call.agent in ("translator", "mutator", "repair") and not call.error:
                call.role = "malformed"  # no candidate in the reply: asked again, or recorded as an error
        cand = _resolve(candidates, call.candidate_id)
        if cand is not None:
            call.candidate_id = cand.id
            if call.role == "proposal" and cand.agent not in ("unknown", call.agent):
                call.agent = cand.agent  # crossover answers come from the mutate node
            cand.llm_calls.append(call)
    for tool in tool_calls:
        cand = _resolve(candidates, tool.candidate_id)
        if cand is not None:
            tool.candidate_id = cand.id
            cand.tool_calls.append(tool)


def _resolve(candidates: dict[str, Candidate], cid: str | None) -> Candidate | None:
    if not cid:
        return None
    if cid in candidates:
        return candidates[cid]
    matches = [c for key, c in candidates.items() if key.startswith(cid)]  # a folder name (16 chars)
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    problem: str
    started: str
    generations: int
    candidates: int
    best_speedup: float | None
    status: str
    sanitized: bool | None = None  # the best kernel passed memcheck (None: not recorded, e.g. a run still going)
    tokens: int = 0  # LLM tokens and their cost (USD): the run record's totals, else its LLM calls' so far
    cost_usd: float = 0.0


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """One line per run directory (newest first), from the run records and the candidates' reports only."""
    root = Path(runs_dir)
    out: list[RunSummary] = []
    for run_dir in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True) if root.is_dir() else []:
        run = RunFolder(run_dir)
        info = run.read_info()
        folders = run.candidates()
        if not info.data and not folders:
            continue
        best = info.best.get("speedup_vs_eager")
        gens = info.generations_done
        if best is None or gens is None:
            speedups, generations = [], []
            for folder in folders:
                report = folder.read_report()
                if report is not None and report.status == "passed" and report.speedup_vs_eager:
                    speedups.append(report.speedup_vs_eager)
                meta = folder.read_meta()
                generations.append((meta.generation or 0) if meta is not None else 0)
            best = best if best is not None else max(speedups, default=None)
            gens = gens if gens is not None else (max(generations) + 1 if generations else 0)
        out.append(RunSummary(run_id=str(info.run_id or run_dir.name), problem=Path(str(info.problem or "?")).name,
                              started=info.started, generations=int(gens), candidates=len(folders),
                              best_speedup=best, status=run_status(info.to_dict(), None),
                              sanitized=info.best.get("sanitized"), **_spent(run, info.to_dict())))
    return out


def _spent(run: RunFolder, info: dict[str, Any]) -> dict[str, Any]:
    """Tokens and USD: the finished run's record, else the sum of the LLM calls logged so far (running, failed)."""
    spent = info.get("spent")
    if isinstance(spent, dict) and info.get("status") == "finished":
        return {"tokens": int(spent.get("tokens") or 0), "cost_usd": float(spent.get("cost_usd") or 0.0)}
    calls = [e for e in run.read_events()[0] if e.get("event") == "llm_call"]
    return {"tokens": sum(int(e.get("total_tokens") or 0) for e in calls),
            "cost_usd": sum(float(e.get("cost_usd") or 0.0) for e in calls)}
