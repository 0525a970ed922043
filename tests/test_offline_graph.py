"""No LLM at all: the graph proposes with the offline translator, then tunes the best variant's settings."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from kernelwright.agents.offline_proposer import OfflineSession
from kernelwright.graphs.context import KContext, RunSettings
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.state import Budget, make_initial_state

PROBLEM = Path(__file__).parent / "fixtures" / "problems" / "softmax_rows.py"


class HashSpeedEvaluator:
    """A stand-in for the GPU: every candidate 'passes' with a speed derived from its source."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def evaluate(self, candidate: Any) -> dict[str, Any]:
        text = Path(candidate).read_text()
        self.seen.append(text)
        return {"status": "passed", "speedup_vs_eager": 1.0 + (zlib.crc32(text.encode()) % 1000) / 1000}


def test_offline_run_translates_then_tunes_without_any_llm(tmp_path: Path) -> None:
    evaluator = HashSpeedEvaluator()
    ctx = KContext(llm=None, evaluator=evaluator, run_dir=tmp_path, offline=OfflineSession(),
                   settings=RunSettings(generations=3, candidates_per_generation=3, profile=False))
    state = make_initial_state("off", str(PROBLEM), Budget(generations=3, candidates=50, wall_s=0, tokens=0))
    final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx, config={"configurable": {"thread_id": "off"}})
    records = list(final["candidates"].values())
    first = [r for r in records if r["generation"] == 0]
    tuned = [r for r in records if r["generation"] > 0]
    assert first and all(r["agent"] == "offline" and r["variant"] for r in first)
    assert tuned and all(r["variant"].endswith("_tuned") and r["parent_ids"] for r in tuned)
    assert len({r["id"] for r in records}) == len(records) == len(evaluator.seen)  # no setting evaluated twice
    assert final["spent"]["tokens"] == 0 and not final["errors"]
    best = final["candidates"][final["best_id"]]
    assert best["speedup_vs_eager"] == max(r["speedup_vs_eager"] for r in records)
    meta = json.loads(Path(best["source_path"]).with_name("meta.json").read_text())
    assert meta["agent"] == "offline" and "params" in meta
