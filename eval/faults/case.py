"""A fault case and its outcome: what is injected, what "contained" means, and what was lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FaultOutcome:
    """What one case found. `reason`: the typed reason the code under test reported (a rejection reason,
    an error class, a status). `work_lost`: candidates or finished evaluations that had to be redone or vanished."""

    contained: bool
    reason: str
    work_lost: int | None  # None: unknown (the case itself failed)
    detail: str = ""


@dataclass(frozen=True)
class FaultCase:
    name: str
    fault: str  # the fault, as the issue names it
    injection: str  # how it is injected
    contained_means: str  # what the case checks to call it contained
    needs_gpu: bool
    run: Callable[[Path], FaultOutcome]  # gets a fresh scratch folder of its own

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "fault": self.fault, "injection": self.injection,
                "contained_means": self.contained_means, "needs_gpu": self.needs_gpu}


@dataclass(frozen=True)
class CaseResult:
    """A case's row in the table: its outcome, or why it did not run."""

    case: FaultCase
    outcome: FaultOutcome | None
    not_run: str | None = None  # e.g. "needs GPU: not run"
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome is not None and not self.outcome.contained

    def to_dict(self) -> dict[str, Any]:
        return {**self.case.describe(), "ran": self.outcome is not None, "not_run": self.not_run,
                "outcome": asdict(self.outcome) if self.outcome else None, "seconds": round(self.seconds, 2)}
