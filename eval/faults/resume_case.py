"""The orchestrator itself killed (SIGKILL) at a random moment, then resumed: every candidate is evaluated
exactly once, the checkpoint resumes and the event log has no torn line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kernelwright.eval.faults.case import FaultOutcome
from kernelwright.eval.faults.orchestrator_child import RUN_ID, endless_answers, run_settings
from kernelwright.eval.faults.scripted_run import evaluations, lost_work, run

STARTUP_LIMIT_S = 120.0


def run_orchestrator_killed(scratch: Path, seed: int | None = None) -> FaultOutcome:
    seed = random.randrange(1 << 32) if seed is None else seed  # in the detail, to replay a failure
    rng = random.Random(seed)
    runs, log = scratch / "runs", scratch / "evaluated.log"
    total = run_settings().generations * run_settings().candidates_per_generation
    kill_after, extra_s = rng.randint(1, total - 1), rng.uniform(0.0, 0.3)  # after k finished evaluations, then a bit
    child = subprocess.Popen([sys.executable, "-m", "kernelwright.eval.faults.orchestrator_child", str(runs), str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                             env={**os.environ, "PYTHONSAFEPATH": "1"})  # a checkout's kernelwright/ must not shadow
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while len(evaluations(log)) < kill_after and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(extra_s)
    if child.poll() is not None:
        err = child.stderr.read().decode()[-300:] if child.stderr else ""
        return FaultOutcome(False, f"run ended by itself (rc {child.returncode})", 0, err)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    at = len(evaluations(log))
    try:
        result = run(runs, log, run_settings(), resume=RUN_ID, llm=endless_answers("resumed"))
    except Exception as exc:  # noqa: BLE001 - a resume that fails loses the run
        return FaultOutcome(False, f"resume failed: {type(exc).__name__}", total, str(exc)[:300])
    lost, counted = lost_work(log, result)
    events, torn = _events(runs / RUN_ID / "events.jsonl")
    # the run's own record of its evaluations: one finished `evaluate` tool call per candidate, across both processes
    logged = sum(e.get("event") == "tool_call" and e.get("tool") == "evaluate" for e in events)
    ok = lost == 0 and not torn and logged == total and len(result.state.get("candidates", {})) == total
    return FaultOutcome(ok, "SIGKILL, resumed", lost,
                        f"killed after {at} of {total} evaluations (+{extra_s:.2f} s); {counted}; the event log "
                        f"records {logged} evaluations, {torn} torn line(s); seed {seed}")


def _events(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The event log's records and how many lines did not parse (a write torn by the kill)."""
    events, torn = [], 0
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            events.append(json.loads(line))
        except ValueError:
            torn += 1
    return events, torn
