"""Work a candidate leaves running in the background: threads and child processes of its worker.

Why: a forward call that returns at once and lets a thread (or a child process) write its output later
looks fast to the timer and, by the time the output is judged, correct. So the worker lists its threads
and children before and after each call: a Python thread or a child process that the candidate started
and that is still alive is background work. Native threads are counted too (an extension can start one
with std::thread), but the CUDA runtime, the profiler and PyTorch start threads of their own on first
use, so new native threads count only where none of those run: over the timing loop.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from kernelwright.tools.sandbox.resources import children_of


@dataclass(frozen=True, slots=True)
class Activity:
    python_threads: frozenset[int]  # thread idents other than the main thread
    native_threads: frozenset[int]  # kernel thread ids of this process
    children: frozenset[int]

    @classmethod
    def now(cls) -> Activity:
        main = threading.main_thread().ident
        py = frozenset(t.ident for t in threading.enumerate() if t.ident is not None and t.ident != main and t.is_alive())
        try:
            tids = frozenset(int(t) for t in os.listdir("/proc/self/task"))
        except OSError:
            tids = frozenset()
        return cls(py, tids, frozenset(children_of(os.getpid())))


@dataclass(frozen=True, slots=True)
class LeftRunning:
    python_threads: tuple[str, ...]
    native_threads: int
    children: tuple[int, ...]

    def reason(self, *, count_native: bool) -> str | None:
        if self.children:
            return "background_process"
        if self.python_threads or (count_native and self.native_threads):
            return "background_thread"
        return None

    def describe(self) -> str:
        parts = []
        if self.python_threads:
            parts.append(f"{len(self.python_threads)} Python thread(s) {list(self.python_threads)[:3]}")
        if self.native_threads:
            parts.append(f"{self.native_threads} native thread(s)")
        if self.children:
            parts.append(f"{len(self.children)} child process(es) {list(self.children)[:3]}")
        return ", ".join(parts) or "nothing"


def left_running(before: Activity, after: Activity) -> LeftRunning:
    """What started between the two snapshots and is still alive at the second."""
    names = {t.ident: t.name for t in threading.enumerate()}
    new_py = tuple(names.get(i, str(i)) for i in sorted(after.python_threads - before.python_threads))
    return LeftRunning(new_py, len(after.native_threads - before.native_threads),
                       tuple(sorted(after.children - before.children)))
