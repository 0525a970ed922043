"""Start, talk to, time out and kill sandbox workers.

Each worker is a separate Python process with a scrubbed environment (no API
keys), its own process group (a timeout kills everything it started), a log
file for whatever it prints, and a socket for framed requests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from kernelwright.tools.errors import (
    IsolationUnavailable,
    KernelwrightError,
    ResourceLimit,
    ToolTimeout,
    WorkerCrash,
    error_from_dict,
)
from kernelwright.tools.measure.gpu_gate import GATE_ENV, GpuGate, holding
from kernelwright.tools.procenv import scrubbed_env
from kernelwright.tools.sandbox import isolation
from kernelwright.tools.sandbox.isolation import IsolationPolicy
from kernelwright.tools.sandbox.protocol import Message, ProtocolError, recv_message, send_message
from kernelwright.tools.sandbox.resources import tree_memory

log = structlog.get_logger(__name__)
Role = Literal["reference", "candidate"]


@dataclass
class WorkerOptions:
    start_timeout_s: float = 120.0
    env: dict[str, str] = field(default_factory=dict)  # extra variables (e.g. CUDA_VISIBLE_DEVICES)
    log_dir: Path | None = None
    python: str = sys.executable
    device: Literal["cuda", "cpu"] = "cuda"  # "cpu": the harness's self-test mode (never a GPU verification)
    # the jail the worker starts in (tools.sandbox.isolation): the user's home and the project's .env are
    # always hidden; the policy adds more (runs folder, archive) and its mode ("auto", "off", "required")
    isolation: IsolationPolicy = field(default_factory=IsolationPolicy)
    # the GPU's gate (tools.measure.gpu_gate) when lanes share the GPU: every request holds it shared, and the
    # worker holds it shared itself around its CUDA start-up ('hello'), so neither runs beside another's timing
    gate: GpuGate | None = None


class SandboxWorker:
    """One worker process. `request()` raises ToolTimeout / WorkerCrash / the worker's typed error."""

    def __init__(self, role: Role, options: WorkerOptions | None = None):
        self.role = role
        self.options = options or WorkerOptions()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.log_path: Path | None = None
        self.info: dict[str, Any] = {}
        self.tainted = False  # ran candidate code that failed: not reused
        self.requests = 0
        self._launched_at = 0.0
        self.work_dir: Path | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> dict[str, Any]:
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the process and send 'hello'; `wait_ready()` collects the answer (start-up overlaps other work)."""
        parent_sock, child_sock = socket.socketpair()
        log_dir = self.options.log_dir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, log_path = tempfile.mkstemp(prefix=f"kw-{self.role}-", suffix=".log", dir=log_dir)
        self.log_path = Path(log_path)
        env = scrubbed_env(**self.options.env)
        env.pop(GATE_ENV, None)  # the worker gets its gate as a descriptor for 'hello' only; candidate code, no path
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [self.options.python, "-m", "kernelwright.tools.sandbox.worker", "--fd", str(child_sock.fileno()),
               "--role", self.role, "--device", self.options.device]
        passed = [child_sock.fileno()]
        # 'hello' is sent now and answered whenever the worker gets to it, so the harness cannot hold the gate
        # for it; the worker holds it, through a descriptor of its own, for exactly its CUDA start-up
        gate_fd = self.options.gate.child_fd() if self.options.gate is not None else None
        if gate_fd is not None:
            cmd += ["--gate-fd", str(gate_fd)]
            passed.append(gate_fd)
        try:
            if self.options.isolation.mode != "off":
                self.work_dir = Path(tempfile.mkdtemp(prefix=f"kw-{self.role}-work-"))
                policy = isolation.child_policy(self.options.isolation, env, self.work_dir)
                cmd = policy.wrap(cmd)
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env,
                                         pass_fds=tuple(passed), start_new_session=True, close_fds=True)
        finally:
            if gate_fd is not None:
                os.close(gate_fd)  # the worker's copy is its only one: its hold ends with it
        os.close(fd)
        child_sock.close()
        self.sock = parent_sock
        self._launched_at = time.monotonic()
        try:
            send_message(self.sock, {"op": "hello"})
        except OSError:
            pass  # a worker (or its jail) that exited at once: wait_ready reports it with its exit code and log

    def wait_ready(self) -> dict[str, Any]:
        if self.info:
            return self.info
        try:
            reply = self._receive("hello", self.options.start_timeout_s)
        except WorkerCrash as exc:
            if exc.exitcode == isolation.REQUIRED_EXIT:
                raise IsolationUnavailable("harness.isolation is \"required\" but the sandbox cannot be fully set up "
                                           f"here: {exc.log_tail.strip()[-600:]}", where="harness.isolation",
                                           details={"log_tail": exc.log_tail}) from None
            raise
        self.info = reply.header
        log.debug("worker_started", role=self.role, pid=self.proc.pid if self.proc else None,
                  cuda=self.info.get("cuda"), seconds=round(time.monotonic() - self._launched_at, 3))
        return self.info

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive and self.proc is not None else None

    def request(self, op: str, *, timeout_s: float, blobs: list[Any] | None = None,
                on_wait: Callable[[], None] | None = None, **payload: Any) -> Message:
        """Send `op` (with `blobs`, e.g. shared tensors) and wait for the reply; `on_wait` runs every few
        hundred ms while waiting (a memory limit that may stop the worker)."""
        if not self.alive or self.sock is None:
            raise WorkerCrash(f"{self.role} worker is not running", exitcode=self._exitcode())
        self.wait_ready()
        self.requests += 1
        with self._gate():
            try:
                send_message(self.sock, {"op": op, **payload}, blobs)
            except OSError:
                pass  # a dead peer shows up in _receive with its exit code and log
            return self._receive(op, timeout_s, on_wait)

    def _gate(self) -> AbstractContextManager[None]:
        """Shared hold of the GPU's gate around a request (every request may run GPU work); a timed phase holds it
        exclusive around its requests, which pass through (the gate is reentrant per thread)."""
        return holding(self.options.gate, "shared")

    def _receive(self, op: str, timeout_s: float, on_wait: Callable[[], None] | None = None) -> Message:
        started = time.monotonic()
        if self.sock is None:
            raise WorkerCrash(f"{self.role} worker is not running", exitcode=self._exitcode())
        try:
            reply = recv_message(self.sock, timeout_s=timeout_s, on_wait=on_wait)
        except TimeoutError:
            self.kill()
            raise ToolTimeout(f"{self.role} worker did not answer '{op}' within {timeout_s:.0f} s "
                              "(a hang or an infinite loop); it was killed", timeout_s=timeout_s, where=op) from None
        except (ProtocolError, OSError):
            code = self._wait_exit()
            tail = self.log_tail()
            self.kill()
            raise WorkerCrash(f"{self.role} worker died during '{op}' (exit code {code}){_signal_name(code)}",
                              exitcode=code, log_tail=tail, where=op) from None
        log.debug("worker_reply", op=op, ok=reply.header.get("ok"), seconds=round(time.monotonic() - started, 3))
        if not reply.header.get("ok"):
            self.tainted = self.tainted or bool(reply.header.get("tainted"))
            error = error_from_dict(reply.header.get("error") or {})
            if reply.header.get("fatal"):
                self._wait_exit()
                self.kill()
                if not isinstance(error, WorkerCrash):
                    error = WorkerCrash(error.message, exitcode=self._exitcode(), log_tail=self.log_tail(), where=op)
            raise error
        return reply

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:] if self.log_path else ""
        except OSError:
            return ""

    def close(self, timeout_s: float = 5.0) -> None:
        if self.alive and self.sock is not None:
            try:
                send_message(self.sock, {"op": "shutdown"})
                self.proc.wait(timeout=timeout_s)  # type: ignore[union-attr]
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc is not None and self.proc.returncode is not None:
            isolation.release_pid(self.proc.pid)  # the jail's pids cgroup, empty now
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _exitcode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def _wait_exit(self, timeout_s: float = 5.0) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None


def _signal_name(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f" ({signal.Signals(-code).name})"
        except ValueError:
            return ""
    return ""


class WorkerSlot:
    """One warm worker of a role, plus a standby already starting up to replace it.

    A faulted, tainted or discarded worker is replaced by the standby (whose Python, torch and CUDA
    start-up overlapped the previous evaluation). With `keep_standby`, a new standby starts as soon as one
    is taken, so a hang or crash is followed by a worker that is ready at once, not after a start-up.
    """

    def __init__(self, role: Role, options: WorkerOptions | None = None, *, standby: bool = True,
                 keep_standby: bool = False):
        self.role = role
        self.options = options or WorkerOptions()
        self.standby_enabled = standby
        self.keep_standby = keep_standby and standby
        self.worker: SandboxWorker | None = None
        self.standby: SandboxWorker | None = None
        self.starts = 0

    def get(self) -> SandboxWorker:
        if self.worker is not None and (not self.worker.alive or self.worker.tainted):
            self.discard()
        if self.worker is None:
            self.worker = self.standby if self.standby is not None and self.standby.alive else self._launch()
            self.standby = None
            try:
                self.worker.wait_ready()
            except KernelwrightError:
                self.worker.kill()
                self.worker = None
                raise
            if self.keep_standby:
                self.standby = self._launch()
        return self.worker

    def pids(self) -> list[int]:
        return [w.pid for w in (self.worker, self.standby) if w is not None and w.pid is not None]

    def warm(self) -> None:
        """Start a worker in the background now, so the first get() does not wait for start-up."""
        if self.worker is None and self.standby is None:
            self.standby = self._launch()

    def discard(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if self.standby_enabled and self.standby is None:
            self.standby = self._launch()

    def _launch(self) -> SandboxWorker:
        worker = SandboxWorker(self.role, self.options)
        self.starts += 1
        worker.launch()
        return worker

    def close(self) -> None:
        for worker in (self.worker, self.standby):
            if worker is not None:
                worker.close()
        self.worker = self.standby = None


class HostMemoryWatch:
    """Holds the host memory of an evaluation's workers (PSS of their process trees, summed) under a limit:
    checked while the harness waits for a reply; past the limit the worker being waited on is killed."""

    def __init__(self, slots: list[WorkerSlot], limit_bytes: int | None):
        self.slots = slots
        self.limit_bytes = limit_bytes
        self.peak_pss_bytes = 0
        self.peak_rss_bytes = 0

    def total(self) -> tuple[int, int]:
        rss = pss = 0
        for slot in self.slots:
            for pid in slot.pids():
                usage = tree_memory(pid)
                rss += usage.rss_bytes
                pss += usage.pss_bytes
        return rss, pss

    def guard(self, worker: SandboxWorker) -> Callable[[], None]:
        def check() -> None:
            rss, pss = self.total()
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
            if self.limit_bytes and pss > self.limit_bytes:
                worker.kill()
                raise ResourceLimit("host_memory_limit",
                                    f"the {worker.role} worker was stopped: the evaluation's workers held "
                                    f"{pss / 2**30:.1f} GiB of host memory, over the limit of "
                                    f"{self.limit_bytes / 2**30:.1f} GiB (setting harness.host_memory_limit_gb)",
                                    details={"pss_bytes": pss, "limit_bytes": self.limit_bytes})
        return check
