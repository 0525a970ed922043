"""Requests per minute, tokens per minute and concurrent requests of one provider, shared by a run's agent calls.

A run owns one `RunLimiters` (graphs.run makes it) and every model chain of the run asks it for the limiter of a
provider, so parallel calls of the translator, mutator and critic to the same provider share one budget. Limits
are token buckets refilled continuously; a bucket holds at most one second's share (never less than one request),
so requests are spread evenly rather than sent in a burst at the start of each minute. A call larger than the
bucket waits for a full bucket and leaves it in debt, which later calls wait out. Tokens are estimated from the
prompt before the call (4 characters a token) and corrected with the usage the answer reports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

CHARS_PER_TOKEN = 4  # the estimate before a call; the answer's reported usage corrects it


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """0: no limit."""

    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    max_concurrent: int = 0


class _Bucket:
    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)  # one second's share
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def take_or_wait(self, amount: float) -> float:
        """Take `amount` and return 0, or return the seconds to wait before asking again (call under a lock)."""
        self._refill()
        need = min(amount, self.capacity)
        if self.level >= need:
            self.level -= amount
            return 0.0
        return (need - self.level) / self.rate

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


@dataclass
class Ticket:
    """One admitted call; `settle` corrects its token estimate with what the answer reports."""

    limiter: ProviderLimiter
    estimated_tokens: int
    settled: bool = False

    def settle(self, used_tokens: int | None) -> None:
        if self.settled or not used_tokens:
            return
        self.settled = True
        self.limiter.correct(self.estimated_tokens - used_tokens)


@dataclass
class ProviderLimiter:
    """The limits of one provider; thread-safe. `admit(tokens)` holds a slot for the length of a call."""

    name: str
    limits: ProviderLimits
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _requests: _Bucket | None = field(default=None, init=False, repr=False)
    _tokens: _Bucket | None = field(default=None, init=False, repr=False)
    _slots: threading.BoundedSemaphore | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.limits.requests_per_minute > 0:
            self._requests = _Bucket(self.limits.requests_per_minute, self.clock)
        if self.limits.tokens_per_minute > 0:
            self._tokens = _Bucket(self.limits.tokens_per_minute, self.clock)
        if self.limits.max_concurrent > 0:
            self._slots = threading.BoundedSemaphore(self.limits.max_concurrent)

    @contextmanager
    def admit(self, estimated_tokens: int) -> Iterator[Ticket]:
        """Wait for a concurrency slot, a request and the estimated tokens; release the slot after the call."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            self._take(self._requests, 1.0)
            self._take(self._tokens, float(estimated_tokens))
            yield Ticket(self, estimated_tokens)
        finally:
            if self._slots is not None:
                self._slots.release()

    def correct(self, tokens: int) -> None:
        """Give back (positive) or charge (negative) tokens once a call's real usage is known."""
        if self._tokens is None:
            return
        with self._lock:
            if tokens > 0:
                self._tokens.give_back(tokens)
            else:
                self._tokens.level += tokens

    def _take(self, bucket: _Bucket | None, amount: float) -> None:
        if bucket is None:
            return
        while True:
            with self._lock:
                wait = bucket.take_or_wait(amount)
            if wait <= 0:
                return
            self.sleep(wait)


class RunLimiters:
    """The limiters of one run, one per provider that has limits (made on first use; no global state)."""

    def __init__(self, limits: Mapping[str, ProviderLimits] | None = None) -> None:
        self._limits = {key.rstrip("/"): value for key, value in (limits or {}).items()}
        self._made: dict[str, ProviderLimiter] = {}
        self._lock = threading.Lock()

    def for_provider(self, key: str) -> ProviderLimiter | None:
        key = key.rstrip("/")
        limits = self._limits.get(key)
        if limits is None or limits == ProviderLimits():
            return None
        with self._lock:
            if key not in self._made:
                self._made[key] = ProviderLimiter(key, limits)
            return self._made[key]


def estimate_tokens(prompt: object) -> int:
    """Tokens of a prompt (a string or a list of messages) before the call: characters / 4."""
    if isinstance(prompt, str):
        chars = len(prompt)
    elif isinstance(prompt, (list, tuple)):
        chars = sum(len(str(getattr(m, "content", m))) for m in prompt)
    else:
        chars = len(str(prompt))
    return chars // CHARS_PER_TOKEN + 1
