"""Other processes on a GPU gate (tools.measure.gpu_gate), for the gate's tests: spawn targets (so they live in an
importable module and import only the gate), and what /proc/locks says about who holds or waits for a gate file.

/proc/locks names each flock holder and each blocked request ("->") with its pid and the file's inode, so a test
can see that a process waits on the gate, instead of guessing from how long something took."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

WAIT_S = 30.0  # how long a child or a poll waits before giving up (a hang fails the test, never blocks CI)


def hold(path: str, mode: str, ready: Any, release: Any) -> None:
    """Hold the gate at `path` in `mode` until `release` is set; `ready` once it is held."""
    from kernelwright.tools.measure.gpu_gate import GpuGate

    gate = GpuGate(path)
    with gate.exclusive() if mode == "exclusive" else gate.shared():
        ready.set()
        release.wait(WAIT_S)


def reader_stream(path: str, ready: Any, stop: Any, hold_s: float) -> None:
    """Shared holds one after another (each `hold_s`), until `stop`: with two of these offset, some reader always
    holds the gate, which starves a writer unless new readers queue behind it."""
    from kernelwright.tools.measure.gpu_gate import GpuGate

    gate = GpuGate(path)
    deadline = time.monotonic() + WAIT_S
    while not stop.is_set() and time.monotonic() < deadline:
        with gate.shared():
            ready.set()
            time.sleep(hold_s)


def lock_lines(path: Path) -> list[tuple[bool, str, int]]:
    """(blocked, READ|WRITE, pid) of every flock on `path` now."""
    inode = os.stat(path).st_ino
    out = []
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        blocked = len(parts) > 1 and parts[1] == "->"
        fields = parts[2:] if blocked else parts[1:]
        if len(fields) >= 5 and fields[0] == "FLOCK" and int(fields[4].rsplit(":", 1)[-1]) == inode:
            out.append((blocked, fields[2], int(fields[3])))
    return out


def wait_until_blocked(path: Path, pid: int | None, mode: str = "READ", timeout_s: float = WAIT_S) -> None:
    """Return once process `pid` (None: any) waits for a `mode` flock of `path`; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(blocked and m == mode and pid in (None, p) for blocked, m, p in lock_lines(path)):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never waited for a {mode} lock of {path}: {lock_lines(path)}")


def held_by(path: Path, pid: int) -> list[str]:
    """The modes (READ, WRITE) in which process `pid` holds `path` now."""
    return [mode for blocked, mode, p in lock_lines(path) if not blocked and p == pid] if path.exists() else []


class Holder:
    """Another process holding a gate in `mode` until `release()` (a lane timing, or building)."""

    def __init__(self, path: Path, mode: str):
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        self.ready, self.done = spawn.Event(), spawn.Event()
        self.proc = spawn.Process(target=hold, args=(str(path), mode, self.ready, self.done), daemon=True)
        self.proc.start()
        assert self.ready.wait(WAIT_S), "the holder never got the gate"

    def release(self) -> None:
        self.done.set()
        self.proc.join(WAIT_S)
        assert self.proc.exitcode == 0
