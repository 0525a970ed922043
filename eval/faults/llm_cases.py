"""Faults of the LLM endpoint, through the real langchain-openai client against the local replay server:
a transient 429/500, a request that times out, and a garbage answer must leave the run going; an outage that
lasts stops the run with a typed LLMRunError, and its resume finishes with every candidate evaluated once; a
model chain whose first endpoint is down finishes on its second model, the switch in the run's events."""

from __future__ import annotations

import json
from pathlib import Path

from kernelwright.agents.llm import ModelSettings
from kernelwright.agents.model_chain import RetryPolicy
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.eval.faults.case import FaultOutcome
from kernelwright.eval.faults.scripted_run import (
    PROBLEM,
    LoggingEvaluator,
    answer,
    evaluations,
    lost_work,
    run,
    settings,
)
from kernelwright.graphs.run import LLMRunError, RunSetup, optimize_problem


def _finished(scratch: Path, rules: list[ReplayRule], *, expect_speed: float, expect_requests: int,
              timeout_s: float = 30.0, max_retries: int = 2, candidates: int = 1) -> FaultOutcome:
    log = scratch / "evaluated.log"
    with ReplayServer(rules) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=max_retries, timeout_s=timeout_s)
        try:
            result = run(scratch / "runs", log, settings(1, candidates), run_id="llm", model=model)
        except Exception as exc:  # noqa: BLE001 - the fault stopped the run: that is the finding
            return FaultOutcome(False, type(exc).__name__, len(evaluations(log)), str(exc)[:300])
    lost, counted = lost_work(log, result)
    requests = len(server.requests)
    ok = result.speedup_vs_eager == expect_speed and requests == expect_requests and lost == 0
    return FaultOutcome(ok, "retried, run finished" if ok else "wrong outcome", lost,
                        f"{requests} requests (expected {expect_requests}); best {result.speedup_vs_eager}x "
                        f"(expected {expect_speed}x); {counted}")


def run_rate_limited_then_error(scratch: Path) -> FaultOutcome:
    return _finished(scratch, [ReplayRule("rate limited", status=429), ReplayRule("internal error", status=500),
                               ReplayRule(answer(1.4))], expect_speed=1.4, expect_requests=3)


def run_timeout(scratch: Path) -> FaultOutcome:
    # the first answer comes after the client's 1 s read timeout; the retry is answered at once
    return _finished(scratch, [ReplayRule(answer(9.9), delay_s=3.0), ReplayRule(answer(1.4))], expect_speed=1.4,
                     expect_requests=2, timeout_s=1.0, max_retries=1)


def run_garbage(scratch: Path) -> FaultOutcome:
    """Two candidates asked for: one answer is garbage, the other a candidate. The run must finish on the good one."""
    garbage = "}}]] <<<< not code at all \x00 ``` unterminated"
    log = scratch / "evaluated.log"
    with ReplayServer([ReplayRule(garbage), ReplayRule(answer(1.4))]) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0, timeout_s=30.0)
        try:
            result = run(scratch / "runs", log, settings(1, 2), run_id="llm", model=model)
        except Exception as exc:  # noqa: BLE001 - the garbage stopped the run: not contained
            return FaultOutcome(False, type(exc).__name__, len(evaluations(log)), str(exc)[:300])
    refused = result.state.get("errors") or []  # answers that held no candidate (agents.answer_parsing)
    reason = ", ".join(sorted({f"{e.get('type')}: {e.get('details', {}).get('problem', e.get('kind'))}"
                               for e in refused})) or "(none recorded)"
    lost, counted = lost_work(log, result)
    ok = result.speedup_vs_eager == 1.4 and lost == 0 and len(refused) == 1
    return FaultOutcome(ok, reason, lost, f"{len(refused)} answer(s) refused; best {result.speedup_vs_eager}x; {counted}")


def run_outage_then_resume(scratch: Path) -> FaultOutcome:
    log, runs = scratch / "evaluated.log", scratch / "runs"
    outage = ReplayRule("service unavailable", repeat=True, status=503)
    with ReplayServer([ReplayRule(answer(1.3)), outage]) as server:  # one answer, then HTTP 503 for good
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0)
        try:
            run(runs, log, settings(2, 1), run_id="outage", model=model)
            return FaultOutcome(False, "no error", 0, "the run finished through a lasting outage")
        except LLMRunError as exc:
            stopped = exc
    before = len(evaluations(log))
    with ReplayServer([ReplayRule(answer(1.8))]) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0)
        result = run(runs, log, settings(2, 1), resume="outage", model=model)
    lost, counted = lost_work(log, result)
    ok = "--resume outage" in stopped.message and before == 1 and result.speedup_vs_eager == 1.8 and lost == 0
    return FaultOutcome(ok, type(stopped).__name__, lost, f"stopped after {before} evaluation(s), resumed; {counted}")


def run_chain_outage(scratch: Path) -> FaultOutcome:
    """A two-model chain: the first endpoint answers 503 throughout, the second 429 with Retry-After once."""
    log, runs = scratch / "evaluated.log", scratch / "runs"
    with ReplayServer([ReplayRule("service unavailable", repeat=True, status=503)]) as down, \
            ReplayServer([ReplayRule("slow down", status=429, retry_after="1"), ReplayRule(answer(1.6))]) as up:
        model = ModelSettings(model="first", base_url=down.base_url, max_retries=1, fallbacks=(f"second@{up.base_url}",))
        setup = RunSetup(run_settings=settings(1, 1), runs_dir=runs, retry=RetryPolicy(backoff_s=0.05))
        try:
            result = optimize_problem(PROBLEM, setup, run_id="chain", evaluator=LoggingEvaluator(log), offline=False,
                                      model=model)
        except Exception as exc:  # noqa: BLE001 - the outage stopped the run although the second model answered
            return FaultOutcome(False, type(exc).__name__, len(evaluations(log)), str(exc)[:300])
    events = [json.loads(line) for line in (runs / "chain" / "events.jsonl").read_text().splitlines()]
    retries = sum(e["event"] == "llm_retry" for e in events)
    switches = [f"{e['model']} -> {e['to_model']}" for e in events if e["event"] == "llm_fallback"]
    lost, counted = lost_work(log, result)
    ok = (result.speedup_vs_eager == 1.6 and switches == ["first -> second"] and retries == 2 and lost == 0
          and (result.best or {}).get("model") == "second")
    return FaultOutcome(ok, f"switched {', '.join(switches) or 'never'}" if ok else "wrong outcome", lost,
                        f"{retries} retries, {len(down.requests)} + {len(up.requests)} requests; best "
                        f"{result.speedup_vs_eager}x by {(result.best or {}).get('model')}; {counted}")
