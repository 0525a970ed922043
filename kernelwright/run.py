"""`optimize()`: the public way to run the agent graph on a problem (kernelwright.graphs.run does the work).

This module wires: it loads the settings tree (kernelwright.config) and hands its typed settings to
`kernelwright.graphs.run.optimize_problem`, which owns the run, its errors and its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import CandidateEvaluator
from kernelwright.agents.llm import ModelPlan, ModelSettings
from kernelwright.config import KernelwrightConfig, load_config
from kernelwright.graphs.plugins import AgentPlugin
from kernelwright.graphs.run import (
    LLMRunError,
    RunBudget,
    RunError,
    RunInterrupted,
    RunResult,
    optimize_problem,
    resume_command,
)
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.run_folder import ManualPrompt

__all__ = ["LLMRunError", "RunBudget", "RunError", "RunInterrupted", "RunResult", "optimize", "resume_command"]


def optimize(problem: str | Path, *, config: KernelwrightConfig | None = None, runs_dir: str | Path | None = None,
             resume: str | None = None, run_id: str | None = None,
             settings: RunSettings | None = None, model: ModelSettings = ModelSettings(),
             models: Sequence[ModelSettings] = (), critic_model: ModelSettings | None = None, llm: Any = None,
             evaluator: CandidateEvaluator | None = None, budget: RunBudget | None = None,
             on_update: Callable[[str, dict[str, Any]], None] | None = None,
             plugins: Sequence[AgentPlugin] | None = None, offline: bool | None = None,
             archive: Any = None, on_models: Callable[[ModelPlan], None] | None = None, manual: bool = False,
             on_manual_prompt: Callable[[ManualPrompt, Path, str], None] | None = None) -> RunResult:
    """Optimise `problem`; with `resume=RUN_ID` continue that run from its last checkpoint.

    `config` (default: load_config(), the defaults and the environment) gives what no argument does: the
    harness's settings ([harness], [timing], [compile]), `runs_dir`, the RunSettings ([agents]; an explicit
    `settings` replaces them) and the models ([agents] proposers and critic, when no argument names one).
    `budget` (default: the config's [budget] LLM limits and RunBudget's others).
    The other arguments: see kernelwright.graphs.run.optimize_problem.
    """
    problem = check_source(problem, "problem").path  # a bad path is reported before any settings are read
    config = config or load_config()
    return optimize_problem(problem, config.run_setup(runs_dir=runs_dir, settings=settings), resume=resume,
                            run_id=run_id, model=model, models=models, critic_model=critic_model, llm=llm,
                            evaluator=evaluator, budget=budget or config.run_budget(), on_update=on_update, plugins=plugins,
                            offline=offline, archive=archive, on_models=on_models, manual=manual,
                            on_manual_prompt=on_manual_prompt)
