"""Where a run's builds and evaluations execute: on this machine (the local executor, the default) or on a Ray
cluster (the Ray executor, `pip install kernelwright[ray]`).

An executor makes the graph's evaluator (agents.evaluator.CandidateEvaluator) for one problem; the graph
calls it as it always does (prepare = build, evaluate = verify and time), so the run, its checkpoint and its
run folder stay on the driver whatever executes the work:

- local: graphs.harness_evaluator.HarnessEvaluator, sandbox workers on this machine's GPUs;
- ray: graphs.ray_executor.RayEvaluator, builds as Ray CPU tasks and evaluations on Ray GPU actors.

The config's [executor] section (kernelwright.config) and `--executor/--address` choose one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, get_args

from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.harness.evaluate import EvalSettings

ExecutorKind = Literal["local", "ray"]
EXECUTOR_KINDS: tuple[ExecutorKind, ...] = get_args(ExecutorKind)
RAY_INSTALL = "pip install 'kernelwright[ray]'"
REACH_TIMEOUT_S = 5.0  # a cluster's address that takes no TCP connection in this long is not up


@dataclass(frozen=True)
class ExecutorSettings:
    """`address`: the Ray cluster to join ("auto", "HOST:6379", "ray://HOST:10001"); None joins the one
    RAY_ADDRESS names, else starts Ray on this machine. `actors`: GPU actors one run evaluates on (0: one per
    GPU of the cluster). `retries`: how often an evaluation whose actor died is tried again on a fresh one."""

    kind: ExecutorKind = "local"
    address: str | None = None
    actors: int = 0
    retries: int = 2


class ExecutorUnavailable(KernelwrightError):
    """The chosen executor cannot run here: its package is missing, or its cluster cannot be reached.
    Nothing ran; the CLI exits 4 (the environment's failure, as a missing module is for `bench`)."""

    kind = "executor"


def require_ray() -> ModuleType:
    """The `ray` module, or ExecutorUnavailable naming the install command."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(f"the Ray executor needs the ray package, which is not installed here: "
                                  f"{RAY_INSTALL} (or choose the local executor: --executor local)",
                                  where="executor") from None
    return ray


def check_executor(settings: ExecutorSettings) -> None:
    """Fail before any work when the executor cannot run here: its package is missing, or its cluster's address
    takes no connection (Ray itself would wait minutes for it)."""
    if settings.kind == "ray":
        require_ray()
        if settings.address:
            check_reachable(settings.address)


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """ExecutorUnavailable unless HOST:PORT (or ray://HOST:PORT) accepts a TCP connection; "auto" (the cluster
    started on this machine) is left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorUnavailable(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                                  "`ray start --head` and pass the address it prints, or check --address",
                                  where="executor.address") from None


def open_evaluator(problem: Path, eval_settings: EvalSettings, executor: ExecutorSettings) -> CandidateEvaluator:
    """The evaluator of `problem` on the chosen executor; the caller closes it."""
    if executor.kind == "ray":
        from kernelwright.graphs.ray_executor import RayEvaluator

        return RayEvaluator(problem, eval_settings, executor)
    from kernelwright.graphs.harness_evaluator import HarnessEvaluator

    return HarnessEvaluator(problem, eval_settings)
