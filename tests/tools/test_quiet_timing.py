"""Timed phases and builds of one run never overlap: builds wait for a timing, a timing waits for the builds in
flight, builds run together and timings run together; the harness times every baseline and candidate inside
the caller's quiet context (checked end to end in the CPU self-test mode)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.quiet import QuietTiming
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.paths import FIXTURES


def _run(target, *args) -> threading.Thread:  # noqa: ANN001 - a test helper
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def test_a_build_waits_while_a_timing_runs_and_timings_wait_for_builds() -> None:
    quiet, log, lock = QuietTiming(), [], threading.Lock()

    def note(what: str) -> None:
        with lock:
            log.append(what)

    def timed(name: str, hold: float) -> None:
        with quiet.timing():
            note(f"{name} start")
            time.sleep(hold)
            note(f"{name} end")

    def build(name: str, hold: float) -> None:
        with quiet.building():
            note(f"{name} start")
            time.sleep(hold)
            note(f"{name} end")

    b1, b2 = _run(build, "b1", 0.3), _run(build, "b2", 0.3)  # two builds at once
    time.sleep(0.05)
    t1 = _run(timed, "t1", 0.3)  # waits for both builds
    time.sleep(0.05)
    b3 = _run(build, "b3", 0.05)  # arrives while t1 waits: goes after it
    for t in (b1, b2, t1, b3):
        t.join(5)
    assert log.index("b2 start") < log.index("b1 end")  # builds overlapped each other
    assert log.index("t1 start") > max(log.index("b1 end"), log.index("b2 end"))
    assert log.index("b3 start") > log.index("t1 end")
    assert quiet.waited_s > 0.1


def test_timings_run_together() -> None:
    quiet, inside, peak, lock = QuietTiming(), [0], [0], threading.Lock()

    def timed() -> None:
        with quiet.timing():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.2)
            with lock:
                inside[0] -= 1

    threads = [_run(timed) for _ in range(3)]
    for t in threads:
        t.join(5)
    assert peak[0] == 3


def test_the_harness_times_each_baseline_and_the_candidate_inside_the_quiet_context() -> None:
    entered: list[float] = []

    @contextmanager
    def quiet() -> Iterator[None]:
        entered.append(time.perf_counter())
        yield

    settings = EvalSettings(compile_baseline=False, keep_standby=False, bench=BenchSettings(rep_ms=20.0, min_trials=10))
    problem = FIXTURES / "problems" / "relu_affine_batched.py"
    with Evaluator(problem, settings, WorkerOptions(device="cpu"), quiet=quiet) as ev:
        report = ev.evaluate(FIXTURES / "cpu_cheats" / "honest.py")
    assert report.status == "passed", (report.reason, report.message)
    assert len(entered) == 3  # eager, eager with TF32 off, the candidate (torch.compile's baseline is off here)
