"""Turning the judge's comparisons into a report's verdict: trial by trial, and for outputs made while timing.

The names are stable (tests, reports and the evolution loop count them): wrong_output, unwritten_output,
nan_output, degenerate_output, shape_mismatch, dtype_mismatch, output_count, constant_output,
result_caching (an output that was right when judged alone and wrong when produced while timing, or a
first call far slower than the timed ones) and shape_specialised (wrong at an unseen input size).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.problem.inputs import InputSpec

if TYPE_CHECKING:
    from kernelwright.tools.harness.evaluate import ReferenceData

# A first call on never-seen inputs slower than this many timed medians (plus the slack) means the timed
# calls were served from a cache: honest kernels take about as long on new inputs as on rotated ones.
GAP_RATIO = 3.0
GAP_SLACK_MS = 0.25  # allocator and launch jitter of a lone call; smaller caches are caught by judging

_TIMING_PHASES = {
    "timed_call": "the output of a timed call (the last, or one drawn at random), on its inputs as perturbed while timing, is wrong",
    "refilled_inputs": "after timing, the same input objects refilled with new values gave a stale or wrong result",
    "first_call": "on never-seen inputs after timing the output is wrong",
}


class TrialJudge:
    """Records trials into `report` and decides its verdict."""

    def __init__(self, report: EvalReport, ref: ReferenceData):
        self.report = report
        self.ref = ref
        self.calls: list[dict[str, Any]] = []
        self._fingerprints: list[tuple[InputSpec, list[str]]] = []

    def trial(self, index: int, verdict: dict[str, Any], phase: str, spec: InputSpec | None) -> bool:
        """Record one judged call; False (and the report rejected) when it failed."""
        report = self.report
        n_out, n_ref = verdict.get("output_count", [0, 0])
        if n_out != n_ref:
            return self._reject(phase, "output_count", f"{phase} {index}: {n_out} outputs, reference has {n_ref}")
        results = verdict.get("outputs", [])
        record: dict[str, Any] = {"phase": phase, "index": index, "outputs": results}
        if spec is not None:
            record["input"] = spec.describe()
        report.trials.append(record)
        fingerprints = list(verdict.get("fingerprints") or [])
        stale = phase == "trial" and any(fingerprints == previous for _, previous in self._fingerprints)
        if phase == "trial" and spec is not None:
            self._fingerprints.append((spec, fingerprints))
        failed = next((c for c in results if not c["passed"]), None)
        if failed is None:
            return True
        reason, message = str(failed["failure"]), f"{phase} {index}: {failed['message']}"
        if phase in _TIMING_PHASES:
            return self._reject(phase, "result_caching", f"{_TIMING_PHASES[phase]}: {failed['message']}")
        if phase == "unseen_size":
            return self._reject(phase, "shape_specialised", f"at an unseen input size ({spec.describe() if spec else ''}) "
                                f"the output is wrong: {failed['message']}; it is right only at the sizes it was "
                                "evaluated at")
        if failed["failure"] == "wrong_output" and stale:
            reason, message = "result_caching", message + " — the output repeats an earlier call's result"
        return self._reject(phase, reason, message)

    def constant_outputs(self) -> None:
        """Inputs that change the reference must change the candidate's output too."""
        if not self._fingerprints:
            return
        spec0, first = self._fingerprints[0]
        for spec, prints in self._fingerprints[1:]:
            ref0 = self.ref.entries[spec0]["fingerprints"]
            refi = self.ref.entries[spec]["fingerprints"]
            if prints == first and ref0 != refi:
                self._reject("trial", "constant_output",
                             f"input sets ({spec0.describe()}) and ({spec.describe()}) differ (and so do the reference's "
                             "outputs) but the candidate returned bit-identical outputs: it does not depend on its inputs")
                return

    def caching(self, message: str) -> None:
        self._reject("timing", "result_caching", message)

    def _reject(self, phase: str, reason: str, message: str) -> bool:
        self.report.status, self.report.reason, self.report.message = "rejected", reason, message
        return False


def timing_gap_message(first_calls_ms: list[float], timed_median_ms: float) -> str | None:
    """Why the first calls on never-seen inputs betray a cache, or None when they do not."""
    if not first_calls_ms:
        return None
    fresh = statistics.median(first_calls_ms)
    if fresh > GAP_RATIO * timed_median_ms + GAP_SLACK_MS:
        return (f"a first call on never-seen inputs took {fresh * 1e3:.1f} us (median of {len(first_calls_ms)}), the "
                f"timed calls {timed_median_ms * 1e3:.1f} us: the timed calls were served from results cached across "
                "calls, not computed")
    return None
