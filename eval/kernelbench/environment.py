"""Whose failure is it: the problem's, or the machine's the bench runs on?

A module that kernelwright or its stack cannot import, or a results folder it cannot write, fails every
problem the same way: that is the environment's failure, not a verdict on a problem. It stops the bench at the
first problem where it shows (`EnvironmentFailure`) and is never recorded as that problem's row, so `--resume`
runs the problem once the machine is fixed. A module that the problem file imports itself (KernelBench's Mamba
problems need einops) is the problem's own requirement: its row says so and the other problems run on.
"""

from __future__ import annotations

import ast
import errno
import re
import traceback
from collections.abc import Sequence
from pathlib import Path

from kernelwright.tools.errors import KernelwrightError

_MISSING_MODULE = re.compile(r"\b(?:ModuleNotFoundError|ImportError)\b.*?No module named '([\w.]+)'")
# OSError numbers of a folder the bench cannot write: permissions, a read-only mount, a full disk
_UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class EnvironmentFailure(KernelwrightError):
    """The machine cannot run the bench as set up: every problem would fail the same way, so it stops here.
    `problem`: the problem where it showed (it gets no row); `remedy`: what the user does about it."""

    kind = "environment"

    def __init__(self, cause: str, *, problem: str, remedy: str):
        super().__init__(f"the bench stopped at {problem}: {cause}. {remedy[:1].upper()}{remedy[1:]}. That problem "
                         "got no row, and the finished problems are kept")
        self.cause, self.problem, self.remedy = cause, problem, remedy


def missing_module(error: BaseException | str) -> str | None:
    """The module an ImportError could not find: its `name`, or the one a recorded message names."""
    if isinstance(error, ImportError) and error.name:
        return error.name
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    match = _MISSING_MODULE.search(text)
    return match.group(1) if match else None


def problem_imports(path: Path) -> frozenset[str]:
    """The top-level packages the problem file imports (`import einops`, `from einops import rearrange`), read
    with ast, never run; empty where the file cannot be read or parsed."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return frozenset(names)


def imported_by_problem(module: str, path: Path) -> bool:
    return module.split(".")[0] in problem_imports(path)


def requirement_reason(module: str, path: Path) -> str:
    """A problem row's reason when the problem's own import is missing."""
    how = "imports" if imported_by_problem(module, path) else "needs (through its imports)"
    return (f"the problem {how} {module.split('.')[0]}, which is not installed here ({module!r} is missing): "
            "install it to run this problem")


def missing_dependency(module: str, problem: str) -> EnvironmentFailure:
    """kernelwright (or a package it uses) cannot import `module` in the problem's process."""
    return EnvironmentFailure(f"its process could not import {module!r}, which kernelwright needs (the problem "
                              "file does not import it), so every problem would fail the same way", problem=problem,
                              remedy=f"install {module.split('.')[0]} in the Python environment kernelwright runs in "
                                     "(`pip install -e .` in the checkout installs all its dependencies)")


def unwritable(error: OSError, problem: str) -> EnvironmentFailure | None:
    """An OSError writing under the results folder that no problem can avoid; None for any other."""
    if error.errno not in _UNWRITABLE:
        return None
    where = f" ({error.filename})" if error.filename else ""
    return EnvironmentFailure(f"the bench cannot write its files{where}: {error.strerror or error}",
                              problem=problem, remedy="free space or fix the folder's permissions, or choose "
                                                      "another --out")


def no_cuda(gpu: str, problem: str) -> EnvironmentFailure:
    """A lane's GPU is listed, yet the problem's process found no CUDA device to verify on."""
    return EnvironmentFailure(f"GPU {gpu} is visible to the bench, but the problem's process found no usable CUDA "
                              "device to verify on", problem=problem,
                              remedy="check the driver and CUDA (`kernelwright env`, nvidia-smi), or name working "
                                     "cards with --gpus")


def missing_outside_problem(reason: str, path: Path) -> bool:
    """A recorded reason naming a missing module that the problem at `path` does not import: kernelwright's
    dependency, so the environment's failure (rows.ProblemRow.failed_for_environment)."""
    module = missing_module(reason)
    return module is not None and not imported_by_problem(module, path)


def requirement_or_failure(module: str, problem: str, path: Path, *, while_loading: bool = False,
                           import_files: Sequence[str] | None = None) -> str:
    """The row's reason where the missing `module` is the problem's own requirement; raises EnvironmentFailure
    where kernelwright's own dependency is missing.

    The problem's requirement: it went missing while the problem's code was imported or run (`while_loading`),
    or the import's traceback (`import_files`, where known) went through the problem file. A traceback that did
    not is kernelwright's, even for a module the problem imports too (torch). With neither known (a recorded
    message), the problem file's own imports decide."""
    if while_loading:
        return requirement_reason(module, path)
    if import_files:
        mine = any(_same_file(f, path) for f in import_files)
    else:
        mine = imported_by_problem(module, path)
    if mine:
        return requirement_reason(module, path)
    raise missing_dependency(module, problem)


def traceback_files(error: BaseException) -> tuple[str, ...]:
    return tuple(sorted({frame.filename for frame in traceback.extract_tb(error.__traceback__)}))


def _same_file(name: str, path: Path) -> bool:
    try:
        return Path(name).resolve() == Path(path).resolve()
    except OSError:
        return False
