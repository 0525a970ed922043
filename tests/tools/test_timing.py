"""The timing API: stable statistics, a clear error without a GPU, graph replay on a GPU."""

from __future__ import annotations

import pytest
import torch

from kernelwright.tools.errors import BenchmarkError
from kernelwright.tools.measure.timing import BenchSettings, TimingStats, bench


def test_stats_from_samples() -> None:
    stats = TimingStats.from_samples([5.0, 1.0, 2.0, 4.0, 3.0], method="cuda_event", l2_flushed=True)
    assert (stats.median_ms, stats.min_ms, stats.n_trials) == (3.0, 1.0, 5)
    assert stats.p20_ms == 2.0 and stats.p80_ms == 4.0
    assert "samples_ms" not in stats.to_dict() and stats.to_dict(with_samples=True)["samples_ms"] == [5.0, 1.0, 2.0, 4.0, 3.0]
    with pytest.raises(BenchmarkError):
        TimingStats.from_samples([], method="cuda_event", l2_flushed=False)


def test_bench_without_gpu_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchmarkError, match="CUDA GPU"):
        bench(lambda: None)


@pytest.mark.gpu
def test_bench_is_repeatable_and_graph_replay_runs() -> None:
    x = torch.randn(1 << 24, device="cuda")
    settings = BenchSettings(rep_ms=100.0)
    a = bench(lambda: torch.relu(x), settings)
    b = bench(lambda: torch.relu(x), settings)
    assert a.n_trials >= 100 and abs(a.median_ms - b.median_ms) / min(a.median_ms, b.median_ms) < 0.05
    small = torch.randn(1024, device="cuda")
    graphed = bench(lambda: torch.relu(small), BenchSettings(rep_ms=50.0, cuda_graph=True))
    assert graphed.method == "cuda_graph" and graphed.median_ms > 0
