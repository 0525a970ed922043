"""The evaluation report: one record per candidate, JSON-safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

Status = Literal["passed", "rejected", "needs_gpu", "error"]  # the harness's verdict on a candidate
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
Stage = Literal["build", "load", "correctness", "integrity", "timing", "done"]  # build: a separate build failed


def status_of(value: object) -> Status:
    """A verdict read back from a file: one of STATUSES, anything else "error"."""
    return next((s for s in STATUSES if s == value), "error")


@dataclass
class EvalReport:
    problem: str
    candidate: str
    status: Status = "error"
    stage: Stage = "load"
    reason: str | None = None  # a stable name: compile_error, wrong_output, side_stream_escape, ...
    message: str = ""
    error: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    kernel_usage: dict[str, Any] | None = None
    weak_checks: list[str] = field(default_factory=list)
    timing: dict[str, Any] = field(default_factory=dict)  # candidate / eager / compiled TimingStats dicts
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    speedup_vs_eager_strict: float | None = None  # against eager with TF32 off (an extra column)
    precision: str = "strict"  # the precision profile the verdict and tolerances used (tools.verify.precision)
    floor: dict[str, Any] | None = None  # the physical floor the timed median was checked against
    resources: dict[str, Any] = field(default_factory=dict)  # peak GPU and host memory of the evaluation
    gpu: dict[str, Any] = field(default_factory=dict)
    durations_s: dict[str, float] = field(default_factory=dict)
    candidate_libs: list[str] = field(default_factory=list)
    sanitizer: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}
