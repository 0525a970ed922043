"""What every node of a run gets injected (LangGraph `context_schema`): models, evaluator, prompts, settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.prompts.library import PromptLibrary


@dataclass(frozen=True)
class NamedModel:
    """One chat model of the proposal ensemble; prices are USD per million tokens (0: not billed)."""

    name: str
    llm: Any
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    # (in, out) prices of the other models of its fallback chain, by the name a reply says answered it
    chain_prices: Mapping[str, tuple[float, float]] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class RunSettings:
    generations: int = 3
    candidates_per_generation: int = 4
    population: int = 4  # elite kept between generations
    temperatures: tuple[float, ...] = (0.2, 0.7, 1.0)
    temperature_schedule: Literal["fixed", "anneal"] = "anneal"  # anneal: later generations sample cooler
    max_repairs: int = 2  # re-asks per candidate for malformed answers
    repair_rounds: int = 2  # K: diagnostic repairs of a candidate that failed to compile or verify
    crossover_rate: float = 0.3  # share of mutations that combine two parents (when two exist)
    gpu_description: str = "an NVIDIA GPU"  # facts for the prompts (name, SMs, bandwidth, L2, compute capability)
    gpu_arch: str | None = None  # sm_90 ...: archive examples from the same architecture rank first
    archive_examples: int = 3  # past verified kernels put in the translator's and mutator's prompts
    critic: bool = True  # critique the best candidate before each mutation (needs an LLM)
    offline_seeds: bool = True  # with an LLM, the offline translator's kernels join the first generation
    # The offline first generation: "variants" (the translator's hand-set defaults, its scalar and ATen-kept
    # forms) or "random" (the fused plan at seeded random settings: a proposer with no prior of its own,
    # which is what the archive ablation measures retrieval against).
    offline_start: Literal["variants", "random"] = "variants"
    # "variants" start: fill the first generation's slots the variants leave empty (a pure GEMM has one variant,
    # so with one generation its default tile was all that was ever measured) with the fused plan's settings one
    # step from its defaults, each tunable moved up a choice first, then down. On since session 17: on an H100 it
    # took level1/40 (layer norm, 16 long rows) from 2.49x to 14.6x over eager (the SPLIT neighbour) and the square
    # GEMM from 1.32x to 1.37x (the next tile), and never lost (the best of more candidates; eval/BENCHMARKS.md).
    offline_fill: bool = True
    # The switch for kernel families of the offline translator awaiting verification on a GPU. Every family behind
    # it so far passed on an H100 (session 15: CUTLASS implicit-GEMM kernels for pure convolutions, docs/GEMM.md
    # "Convolutions"; depthwise convolutions and 3-D pools on its pool kernel), so it is on; off gives the
    # candidates of before (cuDNN and ATen there). A new family starts behind it, off, until it passes.
    offline_preview: bool = True
    # The fill's switch and the tuner's tunable launch.GRAPH: a candidate of a launch-bound forward (small inputs)
    # replays it as one CUDA graph (agents/offline/graph_launch.py). Off until an H100 measures it.
    offline_graphs: bool = False
    # The tunable LAYOUT's third choice: a library convolution's output stays channels-last and the kernels after it
    # read it there (agents/offline/conv_layout.py), where inductor wins level 2's 2-D convolutions under the
    # kernelbench profile (level2/32: torch.compile 3.18 ms, our best 4.86 ms). Off until an H100 measures it.
    offline_channels_last_kept: bool = False
    screen: bool = True  # the critic screens each candidate before it is compiled
    screen_blocks: bool = True  # a failed screen skips evaluation (recorded as screened_out)
    profile: bool = True  # profile the generation's best verified candidate
    eval_concurrency: int = 2  # evaluations in flight (compiles overlap; the evaluator bounds GPU use)
    seed: int = 0


@dataclass(frozen=True)
class KContext:
    llm: Any  # a langchain chat model (translator and mutator), unless `ensemble` is given
    evaluator: CandidateEvaluator
    run_dir: Path
    settings: RunSettings = field(default_factory=RunSettings)
    prompts: PromptLibrary = field(default_factory=PromptLibrary)
    model_name: str = "unknown"
    critic_llm: Any = None  # defaults to llm
    ensemble: tuple[NamedModel, ...] = ()  # several models take turns proposing candidates
    archive: Any = None  # a kernelwright.memory archive, for examples in prompts and storing winners
    offline: Any = None  # agents.offline_proposer.OfflineSession: the rule-based translator's per-run cache

    @property
    def has_llm(self) -> bool:
        """False: no chat model at all, the run proposes with the offline translator and tuner only."""
        return self.llm is not None or bool(self.ensemble)

    def proposal_models(self) -> tuple[NamedModel, ...]:
        if not self.has_llm:
            return ()
        return self.ensemble or (NamedModel(self.model_name, self.llm),)

    def critic_model(self) -> Any:
        return self.critic_llm or (self.ensemble[0].llm if self.ensemble else self.llm)
