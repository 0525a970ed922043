"""Which problems a bench runs: the KernelBench-format files under the paths a user names, each with its level.

A path is a problem file, or a folder: its `*.py` files, or, for a folder with none of its own (a KernelBench
checkout's `KernelBench/`), those of its `levelN` subfolders. A problem's level is the `levelN` folder it sits
in (else its folder's name); its key, `<level>/<file stem>`, names its result file and its run.
Files are not read here: a file that is no problem is recorded as a failed problem when its turn comes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kernelwright.tools.errors import InputFileError

_LEVEL_DIR = re.compile(r"^level[_-]?\d+$", re.IGNORECASE)
_NUMBERS = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class BenchProblem:
    key: str  # "<level>/<stem>": unique within a bench
    level: str  # "level2", or the folder name of a problem outside a levelN folder
    path: Path

    @property
    def run_id(self) -> str:
        """The problem's run folder name under the bench's runs/."""
        return self.key.replace("/", "-")


def natural_key(text: str) -> tuple[object, ...]:
    """'level2' < 'level10', '2_Conv' < '12_Gemm': numbers compare as numbers."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _NUMBERS.split(text))


def problem_at(path: Path) -> BenchProblem:
    path = path.resolve()
    level_dir = next((part.lower() for part in reversed(path.parent.parts) if _LEVEL_DIR.match(part)), None)
    level = level_dir or path.parent.name
    return BenchProblem(f"{level}/{path.stem}", level, path)


def _problem_files(folder: Path) -> list[Path]:
    own = [p for p in folder.glob("*.py") if not p.name.startswith("_")]
    if own:
        return own
    return [p for sub in folder.iterdir() if sub.is_dir() and _LEVEL_DIR.match(sub.name)
            for p in sub.glob("*.py") if not p.name.startswith("_")]


def find_problems(paths: Sequence[str | Path]) -> list[BenchProblem]:
    """The problems under `paths`, sorted by level then number; InputFileError naming a path that is missing,
    not a .py file, or a folder with no problem files."""
    if not paths:
        raise InputFileError("no problem paths given: name KernelBench problem files or folders (e.g. "
                             "../shared/kernelbench/level2)")
    found: dict[str, BenchProblem] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = _problem_files(path)
            if not files:
                raise InputFileError("no problem files (*.py) in this folder or its levelN subfolders",
                                     where=str(path))
        elif path.is_file():
            if path.suffix != ".py":
                raise InputFileError("a problem must be a Python file (.py) defining Model, get_inputs and "
                                     "get_init_inputs", where=str(path))
            files = [path]
        else:
            raise InputFileError("no such problem file or folder", where=str(path))
        for file in files:
            problem = problem_at(file)
            other = found.setdefault(problem.key, problem)
            if other.path != problem.path:
                raise InputFileError(f"two problems share the key {problem.key!r} ({other.path}); bench them apart",
                                     where=str(problem.path))
    return sorted(found.values(), key=lambda p: (natural_key(p.level), natural_key(p.path.stem)))
