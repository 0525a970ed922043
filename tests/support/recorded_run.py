"""A real recorded run for the inspection tests: `kernelwright.run.optimize` end to end on CPU.

The LLM is the real langchain-openai client over the local replay server (so
tokens, temperatures and latencies are real); the evaluator is the fake one,
extended with what the GPU harness would add: a build step, timings, the GPU's
name and Nsight-style profiles with roofline numbers. The run has translations,
a failed compile and its repair, critiques, screens, mutations and crossovers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.evaluator import CandidateProfile
from kernelwright.agents.llm import ModelSettings
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.eval.fakes.synthetic_run import synthetic_profile
from kernelwright.run import RunResult, optimize
from kernelwright.tools.harness.results import EvalReport
from support.graph_fakes import CRITIC, CRITIQUE_ASKS, PROBLEM, SCREEN_ASKS, FakeEvaluator, answer, profile_of

RUN_ID = "recorded-1"
GPU = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}


class RecordingFakeEvaluator(FakeEvaluator):
    """FakeEvaluator plus a build step, timings, GPU facts and roofline profiles."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.prepared: list[str] = []

    def prepare(self, candidate: Any) -> EvalReport | None:
        self.prepared.append(str(candidate))
        return None  # built

    def evaluate(self, candidate: Any) -> EvalReport:
        report = super().evaluate(candidate)
        report.gpu = GPU
        if report.status == "passed" and report.speedup_vs_eager:
            eager = 0.2
            report.timing = {"candidate": {"median_ms": eager / report.speedup_vs_eager, "p20_ms": 0.1,
                                           "p80_ms": 0.2, "n_trials": 30},
                             "eager": {"median_ms": eager, "p20_ms": 0.19, "p80_ms": 0.21, "n_trials": 30}}
        return report

    def profile(self, candidate: Any) -> CandidateProfile:
        self.profiled.append(str(candidate))
        speed = float(Path(candidate).read_text().split("SPEED = ")[1].split()[0])
        return profile_of(synthetic_profile(speed, kernel="relu_affine_kernel(float const*, float*, int)",
                                            label="relu_affine_kernel", gbps_per_speed=1500.0, flops=1.6e7,
                                            dram_bytes=6.4e7))


def replay_rules() -> list[ReplayRule]:
    rules = [ReplayRule(CRITIC, when=CRITIQUE_ASKS, repeat=True),  # a plain-text critique: the fallback reading
             ReplayRule("SCREEN: PASS", when=SCREEN_ASKS, repeat=True),
             ReplayRule(answer(1.4, tag="a-fixed"), when='identifier "flaot"'),
             ReplayRule(answer(1.35, tag="wrong-fixed"), when="outside tolerance")]
    rules += [ReplayRule(answer(1.5 + i / 20, tag=f"cross{i}"), when="Parent A") for i in range(6)]
    rules += [ReplayRule(text) for text in (
        answer(1.2), answer(1.0, "compile_error", "a"), answer(1.1, tag="b"),  # generation 0 translations
        "Sorry, I cannot write that kernel.",  # a malformed answer: asked again
        answer(0, tag="wrong"), answer(1.6, tag="m1"), answer(1.7, tag="m2"), answer(1.8, tag="m3"),
        answer(1.9, tag="m4"), answer(2.0, tag="m5"), answer(2.1, tag="m6"))]
    return rules


def record_run(runs_dir: Path, *, run_id: str = RUN_ID, generations: int = 3, evaluator: FakeEvaluator | None = None,
               on_update: Callable[[str, dict[str, Any]], None] | None = None) -> tuple[RunResult, list[dict[str, Any]]]:
    """The finished run and the chat requests the replay server received (`on_update` sees the node updates
    the CLI's live progress sees)."""
    settings = RunSettings(generations=generations, candidates_per_generation=3, population=3, repair_rounds=1,
                           crossover_rate=0.5, screen=True, critic=True, profile=True, eval_concurrency=2)
    with ReplayServer(replay_rules()) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0, price_in_per_mtok=2.0,
                              price_out_per_mtok=8.0)
        result = optimize(PROBLEM, runs_dir=runs_dir, run_id=run_id, settings=settings, model=model,
                          evaluator=evaluator or RecordingFakeEvaluator(), plugins=(), offline=False,
                          on_update=on_update)
        requests = list(server.requests)
    return result, requests
