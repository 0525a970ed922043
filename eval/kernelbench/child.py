"""One problem's work in its own process: a crash, a hang or a problem's memory stays there.

Why a process per problem: the run traces the problem in its own process (level-1 inputs are 4-17 GB),
torch.export keeps process-wide state (two lanes must not trace in one process), and a problem that hangs or
kills its interpreter must cost only its own row. The child is started with multiprocessing's "spawn" (a fresh
interpreter: no CUDA state or threads inherited; the arguments travel pickled, never through a file), sees only
its lane's GPU, runs on its lane's cores, ignores Ctrl-C (the parent stops it, so a stop never looks like a
crash) and writes stdout and stderr to its log file. Its return value (a JSON-safe dict) comes back through a
file the parent names. The target and its arguments are unpickled inside the child's own error handling, so a
module the child cannot import comes back as a raised ImportError naming it, not as a crash.

Lanes may share a GPU; each child then gets the GPU gates' directory (tools.measure.gpu_gate) in its own
environment, so its timings exclude the other lanes' GPU work and builds, and theirs exclude its own.

A lane may start its next problem's process ahead (`StandbyChild`): spawned on the lane's GPU and cores, it
imports what a run needs and waits for its work, so a problem does not pay interpreter start and imports (seconds)
after the previous one ends. While it waits it only imports: no CUDA (importing torch does not initialise it), no
GPU work, one core for a few seconds. Its work arrives through a pipe, pickled as a fresh child's would.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import pickle
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_S = 0.2
EXIT_RAISED = 3  # the target raised: the file holds the error instead of a result


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    result: dict[str, Any] | None  # the target's return value; None when it did not return
    failure: str | None = None  # "timeout" | "crash" | "raised" | "stopped"
    message: str = ""
    seconds: float = 0.0
    error_kind: str | None = None  # a raised KernelwrightError's kind ("load": a bad problem, "llm", ...)
    missing_module: str | None = None  # a raised ImportError's module (the child could not import it)
    import_files: tuple[str, ...] = ()  # the files its traceback went through (was it the problem's own import?)


class StandbyChild:
    """A problem process started before its problem: it imports `preload` and waits for run_in_child's work."""

    def __init__(self, gpu: str | None = None, cores: Sequence[int] | None = None, preload: Sequence[str] = (),
                 gate_dir: str | None = None):
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.gpu, self.cores, self.gate_dir = gpu, _core_set(cores), gate_dir
        self.proc = context.Process(target=_standby_main, args=(theirs, gpu, self.cores, tuple(preload), gate_dir),
                                    name="kw-bench-problem")
        self.proc.start()
        theirs.close()

    def serves(self, gpu: str | None, cores: Sequence[int] | None, gate_dir: str | None = None) -> bool:
        """Alive, and started on this GPU, these cores and this gate directory (fixed when a child starts)."""
        return (self.proc.is_alive() and self.gpu == gpu and self.cores == _core_set(cores)
                and self.gate_dir == gate_dir)

    def hand(self, payload: bytes, result_file: str, log_file: str) -> bool:
        """Give it its work; False if it can no longer take any (it died)."""
        try:
            self._conn.send((payload, result_file, log_file))
            return True
        except (OSError, EOFError):
            return False

    def close(self) -> None:
        """Stop it if it still waits (or runs); a standby never handed work just exits."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self._conn.close()


def run_in_child(target: Callable[..., dict[str, Any]], args: Sequence[Any], *, log_path: Path,
                 gpu: str | None = None, cores: Sequence[int] | None = None, timeout_s: float | None = None,
                 stop: threading.Event | None = None, standby: StandbyChild | None = None,
                 gate_dir: str | None = None) -> ChildOutcome:
    """`target(*args)` in a spawned child (`standby`'s, where it serves this GPU, cores and gate directory, else a
    fresh one); killed past `timeout_s` or once `stop` is set. `standby` is used up either way. `gate_dir`: the GPU
    gates' directory, set in the child's environment (tools.measure.gpu_gate.GATE_ENV)."""
    started = time.perf_counter()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kw-bench-child-") as tmp:
        result_file = Path(tmp) / "result.json"
        payload = pickle.dumps((target, tuple(args)))
        if standby is not None and standby.serves(gpu, cores, gate_dir) and standby.hand(payload, str(result_file), str(log_path)):
            proc = standby.proc
        else:
            if standby is not None:
                standby.close()
                standby = None
            proc = multiprocessing.get_context("spawn").Process(
                target=_child_main, args=(payload, str(result_file), str(log_path), gpu, _core_set(cores), gate_dir),
                name="kw-bench-problem")
            proc.start()
        deadline = None if not timeout_s else time.monotonic() + timeout_s
        why = None
        while proc.is_alive():
            proc.join(POLL_S)
            if stop is not None and stop.is_set():
                why = "stopped"
            elif deadline is not None and time.monotonic() > deadline:
                why = "timeout"
            if why and proc.is_alive():
                proc.kill()  # its sandbox workers leave when their channel closes
                proc.join()
                break
        seconds = time.perf_counter() - started
        if standby is not None:
            standby.close()  # it has exited: only its end of the pipe is left
        if why == "stopped":
            return ChildOutcome(None, "stopped", "the bench was stopped", seconds)
        if why == "timeout":
            return ChildOutcome(None, "timeout", f"killed after {timeout_s:.0f} s (the problem's time limit)", seconds)
        data = _read(result_file)
        if proc.exitcode == 0 and data is not None and "result" in data:
            return ChildOutcome(data["result"], seconds=seconds)
        if proc.exitcode == EXIT_RAISED and data is not None and "error" in data:
            return ChildOutcome(None, "raised", str(data["error"]), seconds, data.get("kind"), data.get("module"),
                                tuple(data.get("files") or ()))
        return ChildOutcome(None, "crash", f"the problem's process {_exit_text(proc.exitcode)}{_log_tail(log_path)}",
                            seconds)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _log_tail(log_path: Path) -> str:
    try:
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _standby_main(conn: Any, gpu: str | None, cores: tuple[int, ...] | None, preload: tuple[str, ...],
                  gate_dir: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _place(gpu, cores, gate_dir)
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the work's own import meets the failure again and reports it
            pass
    try:
        payload, result_file, log_file = conn.recv()
    except (EOFError, OSError):
        return  # closed without work: the bench ended or stopped
    conn.close()
    _child_main(payload, result_file, log_file, None, None, None)  # placed already


def _core_set(cores: Sequence[int] | None) -> tuple[int, ...] | None:
    """A lane's cores as a child is started with them (None: no pinning)."""
    return tuple(cores) if cores else None


def _place(gpu: str | None, cores: tuple[int, ...] | None, gate_dir: str | None) -> None:
    """The child's own environment and affinity (never the parent's): its GPU, its gates, its cores."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before anything asks NVML or CUDA
    if gate_dir is not None:
        from kernelwright.tools.measure.gpu_gate import GATE_ENV

        os.environ[GATE_ENV] = gate_dir
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def _child_main(payload: bytes, result_file: str, log_file: str, gpu: str | None,
                cores: tuple[int, ...] | None, gate_dir: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _place(gpu, cores, gate_dir)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        target, args = pickle.loads(payload)  # imports the target's modules: a missing one raises here
        result = target(*args)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which records it
        import traceback

        traceback.print_exc()
        kind = getattr(exc, "kind", None)  # a KernelwrightError says what kind of failure it is
        module = exc.name if isinstance(exc, ImportError) else None
        # environment.traceback_files' work, inline: this path imports nothing that the missing module may break
        files = sorted({frame.filename for frame in traceback.extract_tb(exc.__traceback__)}) if module else []
        Path(result_file).write_text(json.dumps({"error": (str(exc) if kind else f"{type(exc).__name__}: {exc}")[:1000],
                                                 "kind": kind if isinstance(kind, str) else None, "module": module,
                                                 "files": files}))
        os._exit(EXIT_RAISED)
    Path(result_file).write_text(json.dumps({"result": result}, default=str))
