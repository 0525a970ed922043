"""A run's LLM exchanges as records for training and analysis: `kernelwright export RUN --format jsonl`.

The one owner of the export format. Every `llm_call` event of the run's event log (graphs/events: the prompt's
messages, the answer, model, temperature, tokens) becomes one record, joined with the candidate the call
produced (a proposal) or concerned (a screen, a critique) and that candidate's verdict and speedup from its
report. Records keep the event log's order.

    {"format": "kernelwright-exchange/1", "run_id", "index", "agent", "node", "role", "generation",
     "model", "temperature", "messages": [{"role", "content"}], "answer", "input_tokens", "output_tokens",
     "total_tokens", "cost_usd", "latency_s", "error",
     "candidate": null | {"id", "relation" (produced | screen | critique | ...), "status", "reason",
                          "speedup_vs_eager", "speedup_vs_compile"}}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from kernelwright.eval.report.run_data import Candidate, LlmCall, RunData, load_run

EXCHANGE_FORMAT = "kernelwright-exchange/1"
EXPORT_FORMATS = ("jsonl",)


def exchange_records(run: RunData) -> Iterator[dict[str, Any]]:
    for index, call in enumerate(run.llm_calls):
        yield {"format": EXCHANGE_FORMAT, "run_id": run.run_id, "index": index, "agent": call.agent,
               "node": call.node, "role": call.role, "generation": call.generation, "model": call.model,
               "temperature": call.temperature, "messages": call.messages, "answer": call.response,
               "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
               "total_tokens": call.total_tokens, "cost_usd": call.cost_usd, "latency_s": call.latency_s,
               "error": call.error, "candidate": _candidate(call, run)}


def _candidate(call: LlmCall, run: RunData) -> dict[str, Any] | None:
    if not call.candidate_id:
        return None
    cand: Candidate | None = run.candidates.get(call.candidate_id)
    relation = "produced" if call.role == "proposal" else call.role
    if cand is None:  # proposed but not stored (a duplicate), or a run folder missing the candidate
        return {"id": call.candidate_id, "relation": relation, "status": None, "reason": None,
                "speedup_vs_eager": None, "speedup_vs_compile": None}
    return {"id": cand.id, "relation": relation, "status": cand.status, "reason": cand.reason,
            "speedup_vs_eager": cand.speedup_vs_eager, "speedup_vs_compile": cand.speedup_vs_compile}


def write_jsonl(run_dir: str | Path, out: TextIO) -> int:
    """Write every exchange of the run as one JSON line; how many were written."""
    count = 0
    for record in exchange_records(load_run(run_dir, messages=True)):
        out.write(json.dumps(record, default=str) + "\n")
        count += 1
    return count


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """An export read back (tests, analysis scripts)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
