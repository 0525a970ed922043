"""A baseline timing that runs out of GPU memory while the reference worker keeps reference outputs drops them and
runs once more (ReferenceWorker.with_room, ReferenceStore.release_outputs): on level1/87 (12 GB a call) the kept
outputs left torch.compile's timing 8 GB short on an H100, and the table lost its torch.compile figure. Judging
recomputes a dropped output with the same values. On CPU, with an out-of-memory error raised by the timed call."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from kernelwright.tools.problem.inputs import InputSpec
from kernelwright.tools.sandbox.judge import ReferenceStore
from kernelwright.tools.sandbox.reference_worker import ReferenceWorker


def _inputs(spec: InputSpec) -> list[torch.Tensor]:
    return [torch.randn(4, 8, generator=torch.Generator().manual_seed(spec.seed))]


def _store(budget_bytes: int = 1 << 20) -> ReferenceStore:
    store = ReferenceStore(torch.nn.Linear(8, 3), _inputs, torch.device("cpu"), budget_bytes)
    for seed in (1, 2):
        store.entry(InputSpec(seed), trace=False, fp64_check=False)
    return store


def test_released_outputs_free_their_bytes_and_come_back_the_same_when_judging_asks() -> None:
    store = _store()
    kept = {seed: store.outputs(InputSpec(seed))[0].clone() for seed in (1, 2)}
    assert store.kept_bytes() == 2 * 4 * 3 * 4
    assert store.release_outputs() == 2 * 4 * 3 * 4
    assert store.kept_bytes() == 0 and all(e.outputs is None for e in store.entries.values())
    for seed, want in kept.items():
        torch.testing.assert_close(store.outputs(InputSpec(seed))[0], want, rtol=0, atol=0)


class _RunsOutOnce:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB.")
        return "stats"


def _worker(store: ReferenceStore | None) -> ReferenceWorker:
    worker = ReferenceWorker("cpu")
    worker.store = store
    return worker


def test_a_timing_out_of_memory_runs_again_after_the_kept_outputs_are_dropped() -> None:
    store = _store()
    kept = store.kept_bytes()
    run = _RunsOutOnce(failures=1)
    assert _worker(store).with_room(run) == ("stats", kept)
    assert run.calls == 2 and store.kept_bytes() == 0


def test_a_timing_that_fits_keeps_the_outputs() -> None:
    store = _store()
    kept = store.kept_bytes()
    run = _RunsOutOnce(failures=0)
    assert _worker(store).with_room(run) == ("stats", 0)
    assert run.calls == 1 and store.kept_bytes() == kept


@pytest.mark.parametrize("case", ["nothing kept", "out of memory again"])
def test_with_no_room_to_make_the_error_stands(case: str) -> None:
    """Nothing to drop (a budget of 0 keeps no output), or still out of memory after dropping: the error reaches
    the worker's loop, which reports it as does_not_fit, as before."""
    store = _store(budget_bytes=0) if case == "nothing kept" else _store()
    run = _RunsOutOnce(failures=1 if case == "nothing kept" else 2)
    with pytest.raises(torch.OutOfMemoryError):
        _worker(store).with_room(run)
    assert run.calls == (1 if case == "nothing kept" else 2)
