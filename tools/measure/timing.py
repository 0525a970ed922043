"""One timing API: bench(fn) -> TimingStats, with CUDA events, L2 flush and a time budget.

Modelled on triton's do_bench (events allocated up front, one synchronize at the
end, runtime estimated first) but with a fixed return type and a trial floor.
Every trial is bracketed by events on the current stream; the harness proves
separately (kernel trace) that no work escapes that stream.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from kernelwright.tools.errors import BenchmarkError


@dataclass(frozen=True, slots=True)
class BenchSettings:
    warmup_ms: float = 25.0
    rep_ms: float = 200.0
    min_trials: int = 100
    max_trials: int = 5000
    max_total_ms: float = 8000.0  # slow kernels get fewer trials, never less than min_slow_trials
    min_slow_trials: int = 10
    flush_l2: bool = True
    cuda_graph: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TimingStats:
    median_ms: float
    p20_ms: float
    p80_ms: float
    mean_ms: float
    min_ms: float
    std_ms: float
    n_trials: int
    method: str  # "cuda_event" | "cuda_graph" | "host_clock" (CPU self-test mode)
    l2_flushed: bool
    samples_ms: tuple[float, ...] = ()

    def to_dict(self, *, with_samples: bool = False) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "samples_ms"}
        if with_samples:
            out["samples_ms"] = list(self.samples_ms)
        return out

    @classmethod
    def from_samples(cls, samples: list[float], *, method: str, l2_flushed: bool) -> TimingStats:
        if not samples:
            raise BenchmarkError("no timing samples were recorded")
        ordered = sorted(samples)

        def q(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

        return cls(median_ms=statistics.median(ordered), p20_ms=q(0.2), p80_ms=q(0.8),
                   mean_ms=statistics.fmean(ordered), min_ms=ordered[0],
                   std_ms=statistics.pstdev(ordered) if len(ordered) > 1 else 0.0,
                   n_trials=len(ordered), method=method, l2_flushed=l2_flushed, samples_ms=tuple(samples))


def l2_flush_buffer(device: torch.device) -> torch.Tensor:
    """A buffer twice the L2 size (at least 256 MB) whose zeroing evicts the cache."""
    props = torch.cuda.get_device_properties(device)
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 << 20)
    return torch.empty(max(2 * l2, 256 << 20), dtype=torch.int8, device=device)


def bench(fn: Callable[[], object], settings: BenchSettings = BenchSettings(), *,
          before_each: Callable[[], None] | None = None, flush_buffer: torch.Tensor | None = None,
          extra_trials: int = 0, device: torch.device | None = None) -> TimingStats:
    """Time `fn` (a zero-argument closure over prepared inputs) on the current CUDA device.

    `before_each` runs outside the timed region before every trial (input rotation). `extra_trials` are
    added to the count the budget gives (a caller that judges the last trial's output draws it at random,
    so a candidate cannot count its way to the judged call). On a CPU `device` (the harness's self-test
    mode) the host clock times each call.
    """
    if device is not None and device.type == "cpu":
        return _bench_host(fn, settings, before_each or (lambda: None), extra_trials)
    if not torch.cuda.is_available():
        raise BenchmarkError("timing needs a CUDA GPU; none is visible")
    device = torch.device("cuda", torch.cuda.current_device())
    cache = flush_buffer if (settings.flush_l2 and flush_buffer is not None) else (
        l2_flush_buffer(device) if settings.flush_l2 else None)
    prepare = before_each or (lambda: None)
    if settings.cuda_graph:
        fn = _as_graph(fn, prepare)
    estimate_ms = _estimate(fn, prepare, cache)
    n_warm = max(1, int(settings.warmup_ms / max(estimate_ms, 1e-3)))
    for _ in range(min(n_warm, 1000)):
        prepare()
        fn()
    n = int(settings.rep_ms / max(estimate_ms, 1e-4))
    n = max(settings.min_trials, min(settings.max_trials, n))
    if n * estimate_ms > settings.max_total_ms:
        n = max(settings.min_slow_trials, int(settings.max_total_ms / max(estimate_ms, 1e-4)))
    n += max(0, extra_trials)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        prepare()
        if cache is not None:
            cache.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()  # device-wide: nothing may still be running when we read events
    samples = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    return TimingStats.from_samples(samples, method="cuda_graph" if settings.cuda_graph else "cuda_event",
                                    l2_flushed=cache is not None)


def time_one_call(fn: Callable[[], object], *, flush_buffer: torch.Tensor | None = None,
                  device: torch.device | None = None) -> float:
    """Milliseconds of one call (L2 flushed first when a buffer is given): the first call on new inputs."""
    if device is not None and device.type == "cpu":
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1e3
    torch.cuda.synchronize()
    if flush_buffer is not None:
        flush_buffer.zero_()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def _bench_host(fn: Callable[[], object], settings: BenchSettings, prepare: Callable[[], None],
                extra_trials: int) -> TimingStats:
    """Host-clock timing for CPU tensors (the harness's self-test mode; never a reported GPU figure)."""
    samples: list[float] = []
    budget_s = settings.rep_ms / 1e3
    started = time.perf_counter()
    n_min = max(1, min(settings.min_trials, 20)) + max(0, extra_trials)
    while len(samples) < n_min or (time.perf_counter() - started < budget_s and len(samples) < settings.max_trials):
        prepare()
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return TimingStats.from_samples(samples, method="host_clock", l2_flushed=False)


def _estimate(fn: Callable[[], object], prepare: Callable[[], None], cache: torch.Tensor | None) -> float:
    prepare()
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        prepare()
        if cache is not None:
            cache.zero_()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _as_graph(fn: Callable[[], object], prepare: Callable[[], None]) -> Callable[[], object]:
    """Capture fn into a CUDA graph (removes launch overhead for tiny kernels)."""
    prepare()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception as exc:  # candidate code that cannot be captured
        raise BenchmarkError(f"CUDA graph capture failed: {type(exc).__name__}: {exc}") from None
    return graph.replay
