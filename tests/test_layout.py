"""The folders inside the parts: tools/' subpackages import only down their order, every package folder ships
in the wheel, every `python -m kernelwright...` module named in the sources exists, and the stable import
paths kept for files that outlive a version (candidates, generated problem files) still give the real code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import tomllib

from support.paths import ROOT

# tools/' parts, lowest first: a module imports only the shared basics (tools/*.py) and parts of a lower rank.
TOOLS_RANK = {"basics": 0, "problem": 1, "compile": 1, "verify": 1, "measure": 2, "sandbox": 3, "harness": 4}
TOOLS_EXCEPTIONS = {
    ("errors.py", "kernelwright.tools.compile.diagnostics"),  # error_from_dict rebuilds a CompileError's diagnostics
    ("raw_kernel.py", "kernelwright.tools.compile.raw_kernel"),  # stable path, a re-export
    ("module_problem.py", "kernelwright.tools.problem.from_module"),  # stable path, a re-export
}
# Stable import paths and the module whose objects they must hand out.
STABLE_PATHS = {"kernelwright.tools.raw_kernel": "kernelwright.tools.compile.raw_kernel",
                "kernelwright.tools.module_problem": "kernelwright.tools.problem.from_module"}


def _tools_part(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["kernelwright", "tools"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in TOOLS_RANK else "basics"


def _runtime_imports(path: Path) -> list[tuple[int, str]]:
    """Absolute `from X import` / `import X` statements, leaving out those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
    return out


def _below(other: str, mine: str) -> bool:
    return TOOLS_RANK[other] < TOOLS_RANK[mine]


def test_tools_parts_import_only_down() -> None:
    upward = []
    for path in sorted((ROOT / "tools").rglob("*.py")):
        rel = path.relative_to(ROOT / "tools")
        mine = rel.parts[0] if len(rel.parts) > 1 else "basics"
        for line, module in _runtime_imports(path):
            other = _tools_part(module)
            if other is None or other == mine or _below(other, mine) or (str(rel), module) in TOOLS_EXCEPTIONS:
                continue
            upward.append(f"tools/{rel}:{line} ({mine}) imports {module} ({other})")
    assert not upward, "\n".join(upward)


def test_the_tools_order_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "timing.py"
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kernelwright.tools.harness.results"
                   " import EvalReport\ndef f():\n    from kernelwright.tools.harness.evaluate import Evaluator\n")
    assert _runtime_imports(bad) == [(1, "typing"), (5, "kernelwright.tools.harness.evaluate")]
    assert _tools_part("kernelwright.tools.harness.evaluate") == "harness" and not _below("harness", "measure")
    assert _tools_part("kernelwright.tools.errors") == "basics"


def _package_folders() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {}
    for dotted, folder in config["package-dir"].items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            found[".".join((dotted, *rel.parts))] = init.parent
    return found


def test_every_package_folder_is_declared_for_the_wheel() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = _package_folders()
    assert "kernelwright.tools.harness" in folders and "kernelwright.eval.report" in folders
    assert sorted(folders) == sorted(declared), "a package folder is missing from (or extra in) pyproject's packages"


_MODULE_RUN = re.compile(r"""-m["'],?\s*["']?(kernelwright(?:\.\w+)+)|-m\s+(kernelwright(?:\.\w+)+)""")


def test_every_module_run_with_dash_m_exists() -> None:
    named: dict[str, str] = {}
    for folder in ("tools", "agents", "graphs", "prompts", "memory", "eval", "kernelwright", "scripts", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sh", ".md") or "fixtures" in path.parts or "measured" in path.parts:
                continue
            for match in _MODULE_RUN.finditer(path.read_text(errors="replace")):
                named.setdefault(match.group(1) or match.group(2), str(path.relative_to(ROOT)))
    for path in (ROOT / "README.md",):
        for match in _MODULE_RUN.finditer(path.read_text()):
            named.setdefault(match.group(1) or match.group(2), "README.md")
    assert "kernelwright.tools.sandbox.worker" in named and "kernelwright.tools.measure.run_once" in named
    missing = {module: where for module, where in named.items() if importlib.util.find_spec(module) is None}
    assert not missing, f"`python -m` names a module that does not exist: {missing}"


def test_stable_import_paths_give_the_real_objects() -> None:
    for stable, home in STABLE_PATHS.items():
        old, new = importlib.import_module(stable), importlib.import_module(home)
        assert old.__all__, stable
        for name in old.__all__:
            assert getattr(old, name) is getattr(new, name), f"{stable}.{name}"
