"""`kernelwright trace`: a run as a rich tree, generations -> candidates -> agent steps.

Each candidate line says who made it (agent, model, temperature), what became
of it (status, reason, speedup) and where it came from (parents); its steps are
the LLM calls that proposed, screened or critiqued it and the evaluator calls
that judged it, in time order.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from kernelwright.agents.run_state import CandidateStatus
from kernelwright.eval.report.run_data import Candidate, LlmCall, RunData, ToolCall, load_run
from kernelwright.graphs.generations import generation_label
from kernelwright.graphs.nodes import EVALUATE_ONE

STATUS_STYLE: dict[CandidateStatus, str] = {"passed": "green", "rejected": "red", "error": "magenta", "screened_out": "yellow",
                "needs_gpu": "cyan", "pending": "dim"}
STATUS_ICON: dict[CandidateStatus, str] = {"passed": "✓", "rejected": "✗", "error": "!", "screened_out": "⊘", "needs_gpu": "?", "pending": "…"}
LIVE_STATUSES = ("running", "unknown")


def speedup_text(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def build_tree(run: RunData, *, agent: str | None = None, candidate: str | None = None, limit: int = 50) -> Tree:
    """The whole run, or only candidates of `agent` (made by it or touched by its calls) / matching `candidate`."""
    tree = Tree(_run_label(run))
    chosen = run.find(candidate) if candidate else None
    if chosen is not None:
        lineage = run.lineage(chosen.id)
        tree.add(Text("lineage: " + " → ".join(f"{c.short} ({c.agent}, {speedup_text(c.speedup_vs_eager)})"
                                                for c in lineage), style="dim"))
    for gen in run.generations:
        members = [c for c in run.candidates.values() if c.generation == gen]
        if chosen is not None:
            members = [c for c in members if c.id == chosen.id]
        if agent:
            members = [c for c in members if c.agent == agent or any(s.agent == agent for s in c.llm_calls)]
        unlinked = [c for c in run.llm_calls if c.generation == gen and c.candidate_id is None
                    and (not agent or c.agent == agent)] if chosen is None else []
        provider = [e for e in run.provider_events if e.generation == gen
                    and (not agent or e.agent == agent)] if chosen is None else []
        if not members and not unlinked and not provider:
            continue
        branch = tree.add(_generation_label(run, gen))
        members.sort(key=lambda c: (not c.verified, -(c.speedup_vs_eager or 0.0), c.id))
        for cand in members[:limit]:
            _add_candidate(branch, cand, agent)
        if len(members) > limit:
            branch.add(Text(f"… {len(members) - limit} more candidates (raise --limit)", style="dim"))
        for call in unlinked:
            branch.add(_llm_label(call))
        for event in provider:
            branch.add(Text.assemble(("provider ", "yellow"), f"{event.agent}: {event.describe()}"))
    if not run.candidates:
        tree.add(Text("no candidates yet", style="dim"))
    _add_waiting_prompts(tree, run)
    return tree


def _add_waiting_prompts(tree: Tree, run: RunData) -> None:
    """A manual run's prompts that wait for `kernelwright answer` (agents.manual), with the command that answers."""
    from kernelwright.agents.manual import answer_command
    from kernelwright.tools.run_folder import RunFolder

    folder = RunFolder(run.run_dir).manual
    for prompt in folder.pending():
        tree.add(Text.assemble(("waiting for an answer: ", "bold yellow"),
                               f"prompt {prompt.number:03d} ({prompt.node}) {folder.prompt_md(prompt)}; answer with "
                               f"`{answer_command(run.run_id, prompt)}`"))


def _run_label(run: RunData) -> Text:
    best = run.best
    tokens = sum(c.total_tokens for c in run.llm_calls)
    cost = sum(c.cost_usd for c in run.llm_calls)
    label = Text.assemble(("run ", "bold"), (run.run_id, "bold cyan"), f"  {Path(str(run.info.get('problem', '?'))).name}  ",
                          (run.status, "green" if run.status == "finished" else "yellow"))
    label.append(f"  best {speedup_text(best.speedup_vs_eager) if best else '-'}"
                 + (f" ({best.short}, {best.agent})" if best else "")
                 + f" | {len(run.candidates)} candidates | {tokens} tokens" + (f" | ${cost:.4f}" if cost else ""))
    retries = sum(e.kind == "retry" for e in run.provider_events)
    switches = sum(e.kind == "fallback" for e in run.provider_events)
    if retries or switches:
        label.append(f" | {retries} LLM retr{'y' if retries == 1 else 'ies'}, "
                     f"{switches} model switch{'' if switches == 1 else 'es'}", style="yellow")
    stop = run.info.get("stop_reason")
    if stop:
        label.append(f" | stopped: {stop}", style="dim")
    return label


def _generation_label(run: RunData, gen: int) -> Text:
    members = [c for c in run.candidates.values() if c.generation == gen]
    verified = [c for c in members if c.verified]
    best = max((c.speedup_vs_eager or 0.0 for c in verified), default=0.0)
    nodes = [n for n in run.nodes if n.generation == gen]
    node_s = sum(n.duration_s or 0.0 for n in nodes if n.node != EVALUATE_ONE)
    eval_s = sum(t.seconds for c in members for t in c.tool_calls)
    return Text.assemble((generation_label(gen), "bold"), f": {len(members)} candidates, {len(verified)} verified, "
                         f"best {speedup_text(best)} | agents {node_s:.2f} s, evaluation {eval_s:.2f} s")


def _add_candidate(branch: Tree, cand: Candidate, agent: str | None) -> None:
    style = STATUS_STYLE.get(cand.status, "white")
    label = Text.assemble((f"{STATUS_ICON.get(cand.status, '·')} ", style), (cand.short, "bold"),
                          f"  {cand.agent}", (f"  {cand.model}" if cand.model else ""),
                          (f"  t={cand.temperature:g}" if cand.temperature is not None else ""),
                          "  ", (cand.status, style))
    if cand.reason and cand.status != "passed":
        label.append(f" ({cand.reason})", style=style)
    if cand.verified:
        label.append(f"  {speedup_text(cand.speedup_vs_eager)}", style="bold green")
    if cand.parents:
        label.append("  ← " + ", ".join(p[:12] for p in cand.parents), style="dim")
    if cand.repair_depth:
        label.append(f"  repair {cand.repair_depth}", style="dim")
    node = branch.add(label)
    steps: list[LlmCall | ToolCall] = [c for c in cand.llm_calls if not agent or cand.agent == agent or c.agent == agent]
    if not agent or cand.agent == agent:
        steps += cand.tool_calls
    for step in sorted(steps, key=lambda s: s.t):
        node.add(_llm_label(step) if isinstance(step, LlmCall) else _tool_label(step))
    if cand.screen and (not agent or agent in (cand.agent, "critic")):
        node.add(Text(f"screen: {cand.screen}", style="dim"))
    if cand.critique and (not agent or agent in (cand.agent, "critic")):
        node.add(Text(f"critique: {cand.critique}", style="dim"))


def _llm_label(call: LlmCall) -> Text:
    text = Text.assemble(("llm ", "blue"), f"{call.role} by {call.agent}", (f" ({call.model}", "dim"),
                         (f", t={call.temperature:g})" if call.temperature is not None else ")", "dim"),
                         f"  {call.input_tokens} in / {call.output_tokens} out tokens, {call.latency_s:.2f} s")
    if call.cost_usd:
        text.append(f", ${call.cost_usd:.4f}")
    if call.error:
        text.append(f"  {call.error[:120]}", style="red")
    return text


def _tool_label(call: ToolCall) -> Text:
    text = Text.assemble(("tool ", "magenta"), call.tool, f": {call.status or '?'}")
    if call.reason:
        text.append(f" ({call.reason})")
    if call.speedup:
        text.append(f" {speedup_text(call.speedup)}", style="green")
    text.append(f" in {call.seconds:.2f} s")
    if call.summary:
        text.append(f"  {call.summary[:120]}", style="dim")
    if call.error:
        text.append(f"  {call.error[:120]}", style="red")
    return text


def follow(run_dir: Path, console: Console, *, interval_s: float = 1.0, max_s: float | None = None,
           agent: str | None = None, candidate: str | None = None, limit: int = 50) -> RunData:
    """Re-read and redraw the run until it ends (or `max_s` passes); returns the last state read."""
    started = time.monotonic()
    run = load_run(run_dir, messages=False)
    with Live(build_tree(run, agent=agent, candidate=candidate, limit=limit), console=console,
              refresh_per_second=4, transient=False) as live:
        while run.status in LIVE_STATUSES and (max_s is None or time.monotonic() - started < max_s):
            time.sleep(interval_s)
            run = load_run(run_dir, messages=False)
            live.update(build_tree(run, agent=agent, candidate=candidate, limit=limit))
    return run


def agents_in(run: RunData) -> Iterable[str]:
    return sorted({c.agent for c in run.candidates.values()} | {c.agent for c in run.llm_calls})
