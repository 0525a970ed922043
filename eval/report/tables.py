"""The report's tables: spend per agent, time per node, candidates. All cells escaped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from kernelwright.agents.prices import ModelPrice
from kernelwright.eval.report.run_data import Candidate, RunData
from kernelwright.eval.report.svg import esc
from kernelwright.graphs.event_callbacks import NODE_AGENTS

TOP_CANDIDATES = 100


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], css: str = "data", numeric_from: int = 1) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i >= numeric_from else ""}>{esc(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


@dataclass
class AgentSpend:
    calls: int = 0
    failed_calls: int = 0
    candidates: int = 0
    verified: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    llm_s: float = 0.0
    node_s: float = 0.0


def agent_spend(run: RunData) -> dict[str, AgentSpend]:
    spend: dict[str, AgentSpend] = defaultdict(AgentSpend)
    for call in run.llm_calls:
        row = spend[call.agent]
        row.calls += 1
        row.failed_calls += bool(call.error)
        row.input_tokens += call.input_tokens
        row.output_tokens += call.output_tokens
        row.total_tokens += call.total_tokens
        row.cost_usd += call.cost_usd
        row.llm_s += call.latency_s
    for cand in run.candidates.values():
        spend[cand.agent].candidates += 1
        spend[cand.agent].verified += cand.verified
    for node in run.nodes:
        agent = NODE_AGENTS.get(node.node)
        if agent:
            spend[agent].node_s += node.duration_s or 0.0
    return dict(spend)


def spend_table(run: RunData) -> str:
    rows = []
    spend = agent_spend(run)
    for agent, s in sorted(spend.items(), key=lambda kv: -kv[1].total_tokens):
        rows.append([agent, s.calls, s.failed_calls, s.candidates, s.verified, s.input_tokens, s.output_tokens,
                     s.total_tokens, f"{s.cost_usd:.4f}", f"{s.llm_s:.2f}", f"{s.node_s:.2f}"])
    tools: dict[str, list[float]] = defaultdict(list)
    for call in run.tool_calls:
        tools[call.tool].append(call.seconds)
    for tool, secs in sorted(tools.items()):
        rows.append([f"harness: {tool}", len(secs), "", "", "", "", "", "", "", "", f"{sum(secs):.2f}"])
    total = [sum(s.calls for s in spend.values()), sum(s.input_tokens for s in spend.values()),
             sum(s.output_tokens for s in spend.values()), sum(s.total_tokens for s in spend.values()),
             sum(s.cost_usd for s in spend.values())]
    rows.append(["total", total[0], "", len(run.candidates), sum(c.verified for c in run.candidates.values()),
                 total[1], total[2], total[3], f"{total[4]:.4f}", f"{sum(s.llm_s for s in spend.values()):.2f}", ""])
    return table(["agent", "LLM calls", "failed calls", "candidates", "verified", "input tokens", "output tokens",
                  "total tokens", "cost (USD)", "LLM time (s)", "node / tool time (s)"], rows, css="data spend")


@dataclass
class ModelSpend:
    requests: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


def model_spend(run: RunData) -> dict[tuple[str, str], ModelSpend]:
    """Spend per (agent, model), from the run's LLM calls (tokens as the endpoint reported them)."""
    spend: dict[tuple[str, str], ModelSpend] = defaultdict(ModelSpend)
    for call in run.llm_calls:
        row = spend[(call.agent, call.model)]
        row.requests += 1
        row.failed += bool(call.error)
        row.input_tokens += call.input_tokens
        row.output_tokens += call.output_tokens
        row.cost_usd += call.cost_usd
    return dict(spend)


def price_label(run: RunData, model: str) -> str:
    """The model's price as the run recorded it, a default table price marked as such."""
    recorded = (run.info.get("prices") or {}).get(model)
    return ModelPrice.from_dict(recorded).label() if isinstance(recorded, dict) else "not recorded"


def model_spend_table(run: RunData) -> str:
    spend = model_spend(run)
    rows: list[list[object]] = [[agent, model, s.requests, s.failed, s.input_tokens, s.output_tokens,
                                 f"{s.cost_usd:.4f}", price_label(run, model)]
                                for (agent, model), s in sorted(spend.items(), key=lambda kv: (-kv[1].cost_usd, kv[0]))]
    rows.append(["total", "", sum(s.requests for s in spend.values()), sum(s.failed for s in spend.values()),
                 sum(s.input_tokens for s in spend.values()), sum(s.output_tokens for s in spend.values()),
                 f"{sum(s.cost_usd for s in spend.values()):.4f}", ""])
    return table(["agent", "model", "requests", "failed", "tokens in", "tokens out", "USD", "price"], rows,
                 css="data spend-models", numeric_from=2)


def node_table(run: RunData) -> str:
    times: dict[str, list[float]] = defaultdict(list)
    for node in run.nodes:
        if node.duration_s is not None:
            times[node.node].append(node.duration_s)
    rows = [[name, len(v), f"{sum(v):.3f}", f"{sum(v) / len(v):.3f}", f"{max(v):.3f}"]
            for name, v in sorted(times.items(), key=lambda kv: -sum(kv[1]))]
    return table(["node", "runs", "total (s)", "mean (s)", "max (s)"], rows, css="data nodes")


def _candidate_row(c: Candidate) -> list[object]:
    return [c.short, c.generation, c.agent, c.model, "" if c.temperature is None else f"{c.temperature:g}", c.status,
            c.reason or "", f"{c.speedup_vs_eager:.3f}" if c.speedup_vs_eager else "",
            f"{c.speedup_vs_compile:.3f}" if c.speedup_vs_compile else "", " ".join(p[:12] for p in c.parents),
            *_candidate_spend(c)]


def _candidate_spend(c: Candidate) -> list[object]:
    """What the LLM calls that proposed, screened or critiqued the candidate used: tokens and USD."""
    tokens, cost = sum(call.total_tokens for call in c.llm_calls), sum(call.cost_usd for call in c.llm_calls)
    return [f"{tokens:,}" if tokens else "", f"{cost:.4f}" if cost else ""]


CANDIDATE_HEADERS = ["id", "gen", "agent", "model", "temp", "status", "reason", "x eager", "x compile", "parents",
                     "LLM tokens", "USD"]


def candidate_tables(run: RunData) -> str:
    ranked = sorted(run.candidates.values(), key=lambda c: (not c.verified, -(c.speedup_vs_eager or 0.0),
                                                            c.generation, c.id))
    top = table(CANDIDATE_HEADERS, [_candidate_row(c) for c in ranked[:TOP_CANDIDATES]], css="data candidates",
                numeric_from=99)
    if len(ranked) <= TOP_CANDIDATES:
        return top
    # Closed <details> content is parsed but not laid out: the full list costs little until opened.
    rest = table(CANDIDATE_HEADERS, [_candidate_row(c) for c in ranked[TOP_CANDIDATES:]], css="data candidates-all",
                 numeric_from=99)
    return (f"{top}<details><summary>the other {len(ranked) - TOP_CANDIDATES} candidates</summary>{rest}</details>")
