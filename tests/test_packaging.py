"""The wheel holds every subpackage under the kernelwright namespace, and the data files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from support.paths import ROOT

SUBPACKAGES = ["tools", "agents", "graphs", "prompts", "memory", "eval"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, timeout=600)
    (whl,) = out.glob("kernelwright-*.whl")
    return whl


def test_wheel_has_every_subpackage_in_the_namespace(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kernelwright/__init__.py" in names and "kernelwright/cli.py" in names
    for sub in SUBPACKAGES:
        assert f"kernelwright/{sub}/__init__.py" in names, sub
    assert "kernelwright/tools/sandbox/worker.py" in names
    # every package pyproject declares (tests/test_layout.py: that is every package folder) with its modules
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in declared:
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert {"kernelwright/tools/harness/evaluate.py", "kernelwright/tools/raw_kernel.py",
            "kernelwright/eval/bench/harness.py", "kernelwright/eval/fakes/replay_server.py"} <= names
    assert not any(n.startswith(("tools/", "agents/", "eval/")) for n in names), "generic top-level names leaked"


def test_wheel_has_the_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p for sub in ("prompts", "tools/compile/inline") for p in (ROOT / sub).rglob("*")
            if p.is_file() and p.suffix in (".md", ".txt", ".h", ".cpp") and "__pycache__" not in p.parts]
    data += list((ROOT / "eval" / "problems").glob("*.py"))  # benchmark problems ship with the package
    data += [*(ROOT / "eval" / "suite").glob("*.py"), ROOT / "eval" / "suite" / "manifest.json"]  # the suite too
    data += list((ROOT / "eval" / "report").glob("*.css"))  # the HTML report's inline stylesheet
    assert data, "expected prompt templates / inline-build headers in the source tree"
    for path in data:
        assert "kernelwright/" + str(path.relative_to(ROOT)) in names, path


def test_console_script_is_declared(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        entry = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "kernelwright = kernelwright.cli:main" in zf.read(entry).decode()
