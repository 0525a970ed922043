"""Timed phases kept apart from everything else that several processes do on one GPU: a reader/writer lock per GPU
across processes (the cross-process layer beside tools.measure.quiet.QuietTiming, which does it inside one run).

Several bench lanes may share a GPU. A timing (a baseline's, a candidate's, ncu's) holds its GPU's gate EXCLUSIVE;
every other use of that GPU by the harness (a worker request, a worker's CUDA start-up, compute-sanitizer) and every
CPU-heavy build holds it SHARED. So lanes overlap their CPU-only and untimed work with each other, never with a
timing. The lock is `fcntl.flock` on a file per GPU: the kernel drops it when its holder dies, so a killed lane
cannot leave a GPU locked. Writers are preferred (a second "turnstile" file): a timing waits for the holders in
flight, and new shared holders queue behind it, so a stream of them cannot starve it.

This module owns the gate, its files and `GATE_ENV`: when that variable names a directory, GPU `<id>` (as
CUDA_VISIBLE_DEVICES names it to the harness) has the gate `<dir>/gpu<id>.lock`; unset, there is no gate.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

import structlog

from kernelwright.tools.errors import KernelwrightError

log = structlog.get_logger(__name__)
GATE_ENV = "KERNELWRIGHT_GPU_GATE"
Mode = Literal["shared", "exclusive"]


class GateOrderError(KernelwrightError):
    """An exclusive hold asked for inside a shared hold of the same gate by the same thread: granting it would
    either deadlock (the thread waits for itself) or not be exclusive, so it is refused."""

    kind = "gate"


# Which gate files this thread holds, by path. flock state belongs to the process and the open file, not to a
# GpuGate object: two objects for one file (a pickled copy, a second gate_for) must see the same holds, or a
# thread holding a timing's exclusive hold would wait for itself on its own worker's request.
_held = threading.local()


def _holds() -> dict[str, Mode]:
    holds: dict[str, Mode] | None = getattr(_held, "by_path", None)
    if holds is None:
        holds = _held.by_path = {}
    return holds


class GpuGate:
    """One GPU's gate. `shared()` and `exclusive()` are reentrant per thread: a thread that holds the gate in any
    mode passes through a nested shared hold (a timing's own worker requests), and through a nested exclusive one
    when it holds it exclusive; an exclusive inside its own shared hold raises GateOrderError."""

    def __init__(self, path: str | Path):
        self._setup(Path(path))

    def _setup(self, path: Path) -> None:
        self.path = path
        self.turnstile = path.with_suffix(".turnstile")
        self._key = os.path.abspath(path)
        self.waited_exclusive_s = 0.0  # timings (and ncu) waiting for the GPU's other users, this process
        self.waited_shared_s = 0.0  # everything else waiting for timings (of any lane), this process
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GpuGate({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GpuGate) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # Picklable (a spawned child, a standby): only the path travels; waits and holds are this process's own.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(Path(state["path"]))

    def shared(self) -> AbstractContextManager[None]:
        return self._hold("shared")

    def exclusive(self) -> AbstractContextManager[None]:
        return self._hold("exclusive")

    @property
    def waited_s(self) -> float:
        return self.waited_exclusive_s + self.waited_shared_s

    def child_fd(self) -> int:
        """A new descriptor of the gate file for a child process (passed to it, then closed here): the child holds
        the gate through its own open file, so its hold is its own (see hold_fd_shared)."""
        return _open(self.path)

    @contextmanager
    def _hold(self, mode: Mode) -> Iterator[None]:
        key = self._key
        holds = _holds()
        held = holds.get(key)
        if held is not None:  # the outer hold covers this one, and outlasts it
            if mode == "exclusive" and held == "shared":
                raise GateOrderError("an exclusive hold of a GPU gate was asked for inside a shared hold of the same "
                                     "gate by the same thread", where=key)
            yield
            return
        started = time.perf_counter()
        fd = self._acquire(mode)
        waited = time.perf_counter() - started
        with self._lock:
            if mode == "exclusive":
                self.waited_exclusive_s += waited
            else:
                self.waited_shared_s += waited
        if waited > 0.01:
            log.debug("gpu_gate_waited", gate=self.path.name, mode=mode, seconds=round(waited, 3))
        holds[key] = mode
        try:
            yield
        finally:
            del holds[key]
            os.close(fd)  # closing the (only) descriptor of this open file releases its flock

    def _acquire(self, mode: Mode) -> int:
        turnstile = _open(self.turnstile)
        try:
            # Exclusive: keep the turnstile until the gate is ours, so new shared holders queue behind this one.
            # Shared: pass through it (it is free unless a writer waits or is getting in).
            fcntl.flock(turnstile, fcntl.LOCK_EX)
            if mode == "shared":
                os.close(turnstile)
                turnstile = -1
            fd = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if mode == "exclusive" else fcntl.LOCK_SH)
            except BaseException:
                os.close(fd)
                raise
            return fd
        finally:
            if turnstile >= 0:
                os.close(turnstile)


def _open(path: Path) -> int:
    """A new open file description of a lock file (each acquisition has its own: flock locks belong to the open
    file, so holders in one process exclude each other as holders in two do). Not inherited by children."""
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def hold_fd_shared(fd: int | None) -> Iterator[None]:
    """A shared hold through `fd` (from GpuGate.child_fd, in the process that was given it), then `fd` is closed:
    a sandbox worker's CUDA start-up. It skips the turnstile: the harness may wait for that start-up while it
    holds the gate shared itself (a build's warm-up), and a writer queued on the turnstile would then wait for
    the harness, the harness for the worker, the worker for the writer. A start-up is short and bounded, so
    letting it in beside a queued writer cannot starve the writer; it still never runs beside a granted one."""
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def holding(gate: GpuGate | None, mode: Mode) -> Iterator[None]:
    """`gate` held in `mode`, or nothing where there is no gate (one lane per GPU: gate_for gave None)."""
    if gate is None:
        yield
        return
    with gate._hold(mode):
        yield


def gate_for(gpu: str | None, env: Mapping[str, str] = os.environ) -> GpuGate | None:
    """The gate of `gpu` (as CUDA_VISIBLE_DEVICES names it) when `env` names a gate directory; None otherwise
    (no GPU, or no gate: every lane has its GPU to itself, as without lanes)."""
    folder = env.get(GATE_ENV)
    if not folder or gpu is None or not gpu.strip():
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in gpu.strip())  # a GPU UUID has dashes: kept
    return GpuGate(Path(folder) / f"gpu{name}.lock")


def host_gate_dir() -> Path:
    """The gate directory of this user on this host: in the temporary directory (a local file system, where flock
    is reliable, unlike on a network share an --out folder may be on). One fixed place, so every bench (and every
    run given GATE_ENV) of the user on the host shares each GPU's gate. Private (0700, ours, not a link); if
    someone else made that name first, a fresh private directory instead (said in the log)."""
    path = Path(tempfile.gettempdir()) / f"kernelwright-gpu-gate-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022:
            return path
    except OSError:
        pass
    private = Path(tempfile.mkdtemp(prefix="kernelwright-gpu-gate-"))
    log.warning("gpu_gate_private_dir", wanted=str(path), using=str(private),
                why="the shared gate directory is not a private folder of this user; other benches will not share it")
    return private
