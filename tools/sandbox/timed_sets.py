"""The input sets a timing run rotates through, and the timed loop over them (both worker roles use it).

Several sets, each perturbed before it is used again, so neither caches nor results cached by input
object stay valid between trials; the last trial's result is kept so the harness can judge an output
that was produced while timing.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from kernelwright.tools.inputs import InputSpec, Perturber, input_bytes
from kernelwright.tools.timing import BenchSettings, TimingStats, bench

MAX_TIMING_INPUT_BYTES = 4 << 30  # more sets than fit this are not made (one set of a huge problem is enough)


class MakesInputs(Protocol):
    def make(self, spec: InputSpec) -> list[Any]: ...


class TimedSets:
    def __init__(self, sets: list[list[Any]], seed: int):
        self.sets = sets
        self.seed = seed
        self.last_index = 0

    @classmethod
    def make(cls, worker: MakesInputs, base: InputSpec, n_sets: int, settings: BenchSettings) -> "TimedSets":
        sample = worker.make(base)
        n = 1 if settings.cuda_graph else max(1, min(n_sets, MAX_TIMING_INPUT_BYTES // max(1, input_bytes(sample))))
        others = [worker.make(InputSpec(base.seed + k, base.scale, base.variant, base.overrides)) for k in range(1, n)]
        return cls([sample, *others], base.seed)

    @property
    def last(self) -> list[Any]:
        return self.sets[self.last_index]

    def bench(self, fn: Any, settings: BenchSettings, flush: torch.Tensor | None, device: torch.device | None,
              extra_trials: int = 0) -> tuple[TimingStats, Any]:
        """Time fn over the rotating, perturbed sets; (stats, the last trial's result)."""
        perturb = Perturber(self.seed)
        state: dict[str, Any] = {"i": 0, "last": None}

        def before_each() -> None:
            state["i"] = (state["i"] + 1) % len(self.sets)
            perturb(self.sets[state["i"]])

        def run() -> Any:
            state["last"] = fn(*self.sets[state["i"]])
            return state["last"]

        stats = bench(run, settings, before_each=before_each, flush_buffer=flush, extra_trials=extra_trials,
                      device=device)
        self.last_index = state["i"]
        return stats, state["last"]
