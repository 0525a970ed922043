"""`python -m kernelwright.eval.faults`: run the fault cases this machine can run and print the table
(fault, contained, reason reported, work lost). Exit status 1 when a case that ran was not contained."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table

from kernelwright.eval.faults.case import CaseResult, FaultCase, FaultOutcome
from kernelwright.eval.faults.registry import all_cases

NOT_RUN_NO_GPU = "needs GPU: not run"


def _drop(logger: Any, method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    raise structlog.DropEvent


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run_cases(cases: Sequence[FaultCase], *, has_gpu: bool, scratch: Path) -> list[CaseResult]:
    results = []
    for case in cases:
        if case.needs_gpu and not has_gpu:
            results.append(CaseResult(case, None, NOT_RUN_NO_GPU))
            continue
        folder = scratch / case.name
        folder.mkdir(parents=True)
        start = time.monotonic()
        try:
            outcome = case.run(folder)
        except Exception as exc:  # noqa: BLE001 - a fault that escapes its case is a finding, shown in the table
            outcome = FaultOutcome(False, f"escaped: {type(exc).__name__}", None, str(exc)[:300])
        results.append(CaseResult(case, outcome, seconds=time.monotonic() - start))
    return results


def table(results: Sequence[CaseResult]) -> Table:
    out = Table(title="Fault injection", show_lines=False)
    for column in ("fault", "contained", "reason reported", "work lost", "detail"):
        out.add_column(column, overflow="fold")
    for r in results:
        if r.outcome is None:
            out.add_row(r.case.fault, r.not_run or "not run", "", "", "")
            continue
        out.add_row(r.case.fault, "yes" if r.outcome.contained else "[bold red]NO[/]", r.outcome.reason,
                    "unknown" if r.outcome.work_lost is None else str(r.outcome.work_lost), r.outcome.detail)
    return out


def main(argv: Sequence[str] | None = None, cases: Sequence[FaultCase] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernelwright.eval.faults", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these cases (names as --list shows)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    # the faults make the code under test log on purpose; the table says what matters (cases that read the
    # logs capture them with structlog.testing.capture_logs, which replaces these processors while it runs)
    structlog.configure(processors=[_drop])
    chosen = list(all_cases() if cases is None else cases)
    if args.list:
        for case in chosen:
            print(f"{case.name:22} {'GPU' if case.needs_gpu else 'CPU'}  {case.fault}")
        return 0
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in chosen})
        if unknown:
            parser.error(f"no fault case {', '.join(unknown)} (see --list)")
        chosen = [c for c in chosen if c.name in args.only]
    with tempfile.TemporaryDirectory(prefix="kw-faults-") as scratch:
        results = run_cases(chosen, has_gpu=gpu_available(), scratch=Path(scratch))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        Console(width=200).print(table(results))
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
