"""What the graph asks of an evaluator, and what it gets back.

`CandidateEvaluator` is every call the graph and the run make on an evaluator, each with a typed result:
the harness's own types (tools.harness.results.EvalReport, tools.harness.sanitizer.SanitizeVerdict) and the
profile file's model (tools.run_folder.CandidateProfile: a one-line summary, or 'profiler unavailable: why', and
what it measured). The harness evaluator (graphs.harness_evaluator) implements all of it; test fakes and other
evaluators subclass `EvaluatorDefaults`, which answers the calls an evaluator without a GPU, a tracer or a profiler
can answer plainly, and implement `evaluate` and `sanitize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from kernelwright.tools.run_folder import CandidateProfile

__all__ = ["CandidateEvaluator", "CandidateProfile", "EvaluatorDefaults"]


@runtime_checkable
class CandidateEvaluator(Protocol):
    """Verify, time, memcheck and profile candidate files of one problem.

    - `functional_form()`: the problem's functional form (tools.problem.functional.FunctionalForm.to_dict()), or
      {"method": "source", "fallback_reason": why}; raises ReferenceFailure when the problem itself is broken.
    - `prepare(candidate)`: build only, safe to call from several threads; a failed build's report, or None
      when it built (or the evaluator builds inside `evaluate`).
    - `evaluate(candidate)`: the harness verdict and timings.
    - `sanitize(candidate)`: compute-sanitizer memcheck of a run's winner; never raises for a missing tool
      or GPU, its status says so.
    - `profile(candidate)`: profiler metrics and a summary, or why there are none.
    - `traces_out_of_process`: functional_form runs in another process, so the offline translator may
      trace in this one meanwhile. `gpus`: the GPU indices it verifies on (empty: none).
    - `close()`: stop its workers.
    """

    @property
    def traces_out_of_process(self) -> bool: ...

    @property
    def gpus(self) -> Sequence[str]: ...

    def functional_form(self) -> dict[str, Any]: ...

    def prepare(self, candidate: Path) -> EvalReport | None: ...

    def evaluate(self, candidate: Path) -> EvalReport: ...

    def sanitize(self, candidate: Path) -> SanitizeVerdict: ...

    def profile(self, candidate: Path) -> CandidateProfile: ...

    def close(self) -> None: ...


class EvaluatorDefaults:
    """The plain answers of an evaluator with no GPU list, no tracer, no separate build and no profiler.
    Subclasses implement `evaluate` and `sanitize` and override what they have."""

    traces_out_of_process: bool = False
    gpus: Sequence[str] = ()

    def functional_form(self) -> dict[str, Any]:
        return {"method": "source", "fallback_reason": "the evaluator traces no functional form"}

    def prepare(self, candidate: Path) -> EvalReport | None:
        return None

    def profile(self, candidate: Path) -> CandidateProfile:
        return CandidateProfile.unavailable("the evaluator has no profiler")

    def close(self) -> None:
        return None
