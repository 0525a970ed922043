"""The architecture's one line: kernelwright/ (front door) -> eval/ -> graphs/ -> agents/ -> prompts/, memory/,
tools/. Every project import in every source file runs down that line (read from the sources, so an import
inside a function counts too); tools/ imports none of the others, and no third-party package but torch, pynvml and
structlog; prompts/ imports nothing of the project but the exceptions named below."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from support.paths import ROOT

RANK = {"front": 5, "eval": 4, "graphs": 3, "agents": 2, "prompts": 1, "memory": 1, "tools": 0}
FOLDERS = {"kernelwright": "front", "eval": "eval", "graphs": "graphs", "agents": "agents", "prompts": "prompts",
           "memory": "memory", "tools": "tools"}


def _layer(module: str, front_names: set[str]) -> str | None:
    parts = module.split(".")
    if parts[0] != "kernelwright" or len(parts) < 2:
        return None
    if parts[1] in RANK and parts[1] != "front":
        return parts[1]
    return "front" if parts[1] in front_names else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def test_every_project_import_runs_down_the_line() -> None:
    front_names = {p.stem for p in (ROOT / "kernelwright").iterdir() if not p.name.startswith("__")}
    upward = []
    for folder, layer in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in _imports(path):
                other = _layer(module, front_names)
                if other is not None and other != layer and RANK[other] >= RANK[layer]:
                    upward.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {module} ({other})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "node.py"
    bad.write_text("def f():\n    from kernelwright.graphs.state import KState\n")
    assert _imports(bad) == [(2, "kernelwright.graphs.state")]
    assert _layer("kernelwright.graphs.state", set()) == "graphs" and RANK["graphs"] > RANK["agents"]


# tools/ is the part anyone can import alone: torch, nvidia-ml-py (pynvml), structlog and the standard library only.
TOOLS_THIRD_PARTY = {"torch", "pynvml", "structlog"}
# prompts/ is data (templates) and imports nothing of the project, except what is named here, with the reason.
PROMPTS_MAY_IMPORT = {
    # a missing or broken template is bad input: it raises the project's one error type, owned by tools/errors.py
    ("prompts/library.py", "kernelwright.tools.errors"),
}


def test_tools_imports_only_torch_nvml_structlog_and_the_standard_library() -> None:
    foreign = []
    for path in sorted((ROOT / "tools").rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top not in TOOLS_THIRD_PARTY and top != "kernelwright":
                foreign.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not foreign, "\n".join(foreign)


def test_prompts_import_nothing_of_the_project_but_the_named_exceptions() -> None:
    found = set()
    for path in sorted((ROOT / "prompts").rglob("*.py")):
        for _, module in _imports(path):
            if module.split(".")[0] == "kernelwright":
                found.add((path.relative_to(ROOT).as_posix(), module))
    assert found == PROMPTS_MAY_IMPORT  # an exception no longer needed goes from the list too
