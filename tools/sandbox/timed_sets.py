"""The input sets a timing run rotates through, and the timed loop over them (both worker roles use it).

Several sets, each perturbed before it is used again, so neither caches nor results cached by input
object stay valid between trials; the last trial's result is kept so the harness can judge an output
that was produced while timing.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

import torch

from kernelwright.tools.measure.timing import BenchSettings, TimingStats, bench
from kernelwright.tools.problem.inputs import InputSpec, Perturber, input_bytes

MAX_TIMING_INPUT_BYTES = 4 << 30  # more sets than fit this are not made (one set of a huge problem is enough)
SAMPLE_BYTES = 512 << 20  # timed calls are sampled for judging only where a set and its output are this small


class MakesInputs(Protocol):
    def make(self, spec: InputSpec) -> list[Any]: ...


class TimedSets:
    def __init__(self, sets: list[list[Any]], seed: int):
        self.sets = sets
        self.seed = seed
        self.last_index = 0

    @classmethod
    def make(cls, worker: MakesInputs, base: InputSpec, n_sets: int, settings: BenchSettings) -> TimedSets:
        sample = worker.make(base)
        n = 1 if settings.cuda_graph else max(1, min(n_sets, MAX_TIMING_INPUT_BYTES // max(1, input_bytes(sample))))
        others = [worker.make(InputSpec(base.seed + k, base.scale, base.variant, base.overrides)) for k in range(1, n)]
        return cls([sample, *others], base.seed)

    @property
    def last(self) -> list[Any]:
        return self.sets[self.last_index]

    def bench(self, fn: Any, settings: BenchSettings, flush: torch.Tensor | None, device: torch.device | None,
              extra_trials: int = 0, samples: int = 0,
              rng: random.Random | None = None) -> tuple[TimingStats, Any, list[tuple[list[Any], Any]]]:
        """Time fn over the rotating, perturbed sets: (stats, the last trial's result, up to `samples` earlier
        trials drawn uniformly at random, each as (its inputs as they were, its result)). A sampled trial's
        inputs are copied outside the timed region, before the next trial's perturbation can change them."""
        perturb = Perturber(self.seed)
        rng = rng or random.Random(self.seed)
        state: dict[str, Any] = {"i": 0, "last": None, "calls": 0}
        kept: list[tuple[list[Any], Any]] = []
        if samples and (settings.cuda_graph or input_bytes(self.sets[0]) * 2 > SAMPLE_BYTES):
            samples = 0

        def keep_previous() -> None:  # reservoir sampling: every trial equally likely to be judged
            state["calls"] += 1
            if samples <= 0 or state["last"] is None:
                return
            k = state["calls"]
            slot = len(kept) if len(kept) < samples else rng.randrange(k)
            if slot < samples:
                copy = [v.clone() if isinstance(v, torch.Tensor) else v for v in self.sets[state["i"]]]
                if slot == len(kept):
                    kept.append((copy, state["last"]))
                else:
                    kept[slot] = (copy, state["last"])

        def before_each() -> None:
            keep_previous()
            state["i"] = (state["i"] + 1) % len(self.sets)
            perturb(self.sets[state["i"]])

        def run() -> Any:
            state["last"] = fn(*self.sets[state["i"]])
            return state["last"]

        stats = bench(run, settings, before_each=before_each, flush_buffer=flush, extra_trials=extra_trials,
                      device=device)
        self.last_index = state["i"]
        return stats, state["last"], kept
