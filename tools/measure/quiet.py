"""Timed phases and CPU-heavy builds of one run kept apart.

A run builds its next candidates (nvcc, many seconds of CPU each) while the GPU verifies the current ones. That
overlap is what keeps a run fast, but a timed phase that shares the host with builds measures the builds too
wherever the problem is bound by the host: small networks such as KernelBench's batch-2 ResNet18 launch dozens
of short kernels a call, so a busy CPU lengthens eager's, torch.compile's and a candidate's times by different
amounts, and a speedup inherits the noise. `QuietTiming` lets builds run together and timings run together (one
per GPU), never a timing next to a build: a timing waits for the builds in flight and holds new ones back until
it ends (a waiting timing goes first, so builds cannot starve it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class QuietTiming:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._timing = 0
        self._building = 0
        self._timers_waiting = 0
        self.waited_s = 0.0  # total time timed phases waited for builds to finish (the run logs it at the end)

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.perf_counter()
        with self._cv:
            self._timers_waiting += 1
            self._cv.wait_for(lambda: self._building == 0)
            self._timers_waiting -= 1
            self._timing += 1
            self.waited_s += time.perf_counter() - started
        try:
            yield
        finally:
            with self._cv:
                self._timing -= 1
                self._cv.notify_all()

    @contextmanager
    def building(self) -> Iterator[None]:
        with self._cv:
            self._cv.wait_for(lambda: self._timing == 0 and self._timers_waiting == 0)
            self._building += 1
        try:
            yield
        finally:
            with self._cv:
                self._building -= 1
                self._cv.notify_all()
