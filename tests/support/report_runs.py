"""Recorded runs shaped like the report glitches of issue 16, for the report's browser tests.

- `record_stalled_run`: a real two-generation run (`optimize` over the replay server) whose second
  generation proposes only kernels it already has (or only unusable answers), so it adds no candidate.
- `use_ncu_profile`: gives a recorded run's winner the profile an H100 recorded (ncu 2025.3.1 output in
  tests/data/ncu, parsed by the real parser) in place of the fake evaluator's one-line profile.
"""

from __future__ import annotations

import json
from pathlib import Path

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.eval.report.run_data import load_run
from kernelwright.run import RunResult, optimize
from kernelwright.tools.measure.ncu import parse_ncu_output
from support.graph_fakes import CRITIC, CRITIQUE_ASKS, PROBLEM, SCREEN_ASKS, answer
from support.ncu import fixture_text, h100_facts
from support.recorded_run import RecordingFakeEvaluator

UNUSABLE = "Sorry, I cannot write that kernel."  # no code block: the proposer records an error


def record_stalled_run(runs_dir: Path, run_id: str, *, second_generation: str = "repeat") -> RunResult:
    """Generation 0 proposes three kernels; generation 1 answers every request with the first of them again
    (`second_generation="repeat"`) or with no kernel at all ("unusable"). The budget is 2 generations."""
    later = answer(1.2, tag="a") if second_generation == "repeat" else UNUSABLE
    rules = [ReplayRule(CRITIC, when=CRITIQUE_ASKS, repeat=True), ReplayRule("SCREEN: PASS", when=SCREEN_ASKS, repeat=True),
             ReplayRule(answer(1.2, tag="a")), ReplayRule(answer(1.1, tag="b")), ReplayRule(answer(1.3, tag="c")),
             ReplayRule(later, repeat=True)]
    settings = RunSettings(generations=2, candidates_per_generation=3, population=3, repair_rounds=0,
                           crossover_rate=0.0, screen=True, critic=True, profile=False, eval_concurrency=2, max_repairs=0)
    with ReplayServer(rules) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0)
        return optimize(PROBLEM, runs_dir=runs_dir, run_id=run_id, settings=settings, model=model,
                        evaluator=RecordingFakeEvaluator(), plugins=(), offline=False)


def use_ncu_profile(run_dir: Path) -> dict:
    """Write the recorded H100 profile (three kernels, five launches) as the winner's profile.json."""
    result = parse_ncu_output(fixture_text("vadd_prelude.csv"), facts=h100_facts(), ncu_version="2025.3.1.0")
    profile = {"summary": result.summary(), **result.to_dict()}  # what the profile node writes
    best = load_run(run_dir).best
    assert best is not None and best.folder is not None
    (best.folder / "profile.json").write_text(json.dumps(profile, indent=2))
    return profile
