"""An example kernelwright plugin: a static lint that runs before evaluation.

It marks candidates whose forward calls torch.nn.functional or torch.softmax
(likely to be the reference op) so the evaluator's verdict can be read next to
the warning. Register it from Python:

    build_optimize_graph(plugins=[static_lint_plugin()])

or from an installed package, in its pyproject.toml:

    [project.entry-points."kernelwright.agents"]
    static_lint = "static_lint:static_lint_plugin"
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kernelwright.graphs.plugins import AgentPlugin

SUSPICIOUS = re.compile(r"\b(F\.\w+|torch\.nn\.functional\.\w+|torch\.softmax|torch\.matmul)\(")


def static_lint(state: dict[str, Any], runtime: Any) -> dict[str, Any]:
    marks = {}
    for cid, record in (state.get("candidates") or {}).items():
        if record.get("status") == "pending" and "lint" not in record:
            hits = sorted(set(SUSPICIOUS.findall(Path(record["source_path"]).read_text())))
            marks[cid] = {"lint": ", ".join(hits) if hits else "clean"}
    return {"candidates": marks}


def static_lint_plugin() -> AgentPlugin:
    return AgentPlugin(name="static_lint", node=static_lint, attach="after_propose")
