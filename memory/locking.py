"""A reader/writer file lock beside a local archive, and the generation counter writers bump.

flock(2) locks belong to an open file description, so each hold opens the lock file anew:
two archives in one process exclude each other like two processes do. POSIX only (the
project targets Linux CUDA hosts).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLock:
    def __init__(self, path: Path, poll_s: float = 0.02) -> None:
        self.path = Path(path)
        self.generation_path = self.path.with_name(".kernelwright.generation")
        self.poll_s = poll_s

    @contextmanager
    def hold(self, *, exclusive: bool, timeout_s: float) -> Iterator[None]:
        """Shared (readers) or exclusive (writer) lock; TimeoutError when not free in time."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, mode)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(str(self.path)) from None
                    time.sleep(self.poll_s)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def read_generation(self) -> str:
        try:
            return self.generation_path.read_text().strip()
        except FileNotFoundError:
            return ""

    def bump_generation(self) -> None:
        """A new random token (not a counter: nothing to read-modify-write), replaced atomically."""
        tmp = self.generation_path.with_name(f".kernelwright.generation.{os.getpid()}.tmp")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, self.generation_path)
