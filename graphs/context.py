"""What every node of a run gets injected (LangGraph `context_schema`): models, evaluator, prompts, settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kernelwright.prompts.library import PromptLibrary


class CandidateEvaluator(Protocol):
    """Verify and time one candidate file; returns EvalReport.to_dict()-shaped data."""

    def evaluate(self, candidate: Path) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunSettings:
    generations: int = 3
    candidates_per_generation: int = 4
    population: int = 4  # elite kept between generations
    temperatures: tuple[float, ...] = (0.2, 0.7, 1.0)
    max_repairs: int = 2  # re-asks per candidate for malformed answers
    gpu_description: str = "an NVIDIA GPU"
    critic: bool = True  # critique the best candidate before each mutation


@dataclass(frozen=True)
class KContext:
    llm: Any  # a langchain chat model (translator and mutator)
    evaluator: CandidateEvaluator
    run_dir: Path
    settings: RunSettings = field(default_factory=RunSettings)
    prompts: PromptLibrary = field(default_factory=PromptLibrary)
    model_name: str = "unknown"
    critic_llm: Any = None  # defaults to llm
