"""Targets for the bench's child-process tests: each runs in a spawned child (so it lives in an importable module,
and imports only what a child starts quickly with)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def report_environment(tag: str) -> dict[str, Any]:
    print(f"child {tag} says hello")  # goes to the problem's log file, not to the parent's terminal
    return {"tag": tag, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}


def exit_hard(code: int) -> dict[str, Any]:
    print("about to die")
    os._exit(code)


def sleep(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}


def raise_problem_error(message: str) -> dict[str, Any]:
    from kernelwright.tools.errors import ReferenceFailure

    raise ReferenceFailure(message, where="problem.py")


def import_missing(module: str) -> dict[str, Any]:
    import importlib

    importlib.import_module(module)  # raises ModuleNotFoundError: the child's own import, not the problem's
    return {}


def report_loaded(module: str) -> dict[str, Any]:
    """Whether `module` was imported before this call (a standby child's preload), and this process's pid."""
    return {"loaded": module in sys.modules, "pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}


def report_gate_env() -> dict[str, Any]:
    from kernelwright.tools.measure.gpu_gate import GATE_ENV

    return {"gate": os.environ.get(GATE_ENV), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}
