"""Live progress of a bench, fed by its problem events: how many are done, how they ended, what each lane runs.
(The style of `kernelwright run`'s progress, kernelwright/progress.py: a live table on a terminal, one line
per finished problem elsewhere.)"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.table import Table

from kernelwright.eval.kernelbench.rows import ProblemRow, ProblemStatus
from kernelwright.eval.kernelbench.runner import BenchEvent


def outcome_text(row: ProblemRow) -> str:
    """'verified 1.32x vs eager, 0.98x vs torch.compile', 'compiled', 'failed (timeout): ...'."""
    if row.verified:
        eager = f"{row.speedup_vs_eager:.2f}x" if row.speedup_vs_eager else "-"
        compiled = f", {row.speedup_vs_compile:.2f}x vs torch.compile" if row.speedup_vs_compile else ""
        return f"verified {eager} vs eager{compiled}"
    status = f"failed ({row.failure})" if row.failure else row.status.replace("_", " ")
    return f"{status}: {row.reason}" if row.reason else status


@dataclass
class BenchProgress:
    total: int
    skipped: int = 0  # finished before (a resume)
    solved: int = 0
    outcomes: Counter[ProblemStatus] = field(default_factory=Counter)
    running: dict[str, str] = field(default_factory=dict)  # lane -> problem
    speedups: list[float] = field(default_factory=list)  # verified kernels' speedups over eager, this call
    last: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.skipped + self.solved

    def apply(self, event: BenchEvent) -> None:
        if event.kind == "skipped":
            self.skipped += 1
        elif event.kind == "started" and event.lane is not None:
            self.running[event.lane.name] = event.problem.key
        elif event.kind == "stopped" and event.lane is not None:
            self.running.pop(event.lane.name, None)
        elif event.kind == "finished" and event.row is not None:
            self.solved += 1
            self.outcomes[event.row.status] += 1
            if event.lane is not None:
                self.running.pop(event.lane.name, None)
            if event.row.verified and event.row.speedup_vs_eager:
                self.speedups.append(event.row.speedup_vs_eager)
            self.last = self.line(event.row)

    def line(self, row: ProblemRow) -> str:
        where = f"gpu {row.gpu}" if row.gpu is not None else "cpu"
        return f"[{self.done}/{self.total}] {row.key}: {outcome_text(row)} ({row.wall_s:.0f} s, {where})"

    def table(self, title: str) -> Table:
        table = Table(title=title, show_header=False, expand=False)
        table.add_row("problems done", f"{self.done} / {self.total}" + (f" ({self.skipped} before)" if self.skipped else ""))
        if self.outcomes:
            table.add_row("outcomes", ", ".join(f"{status.replace('_', ' ')} {n}"
                                                for status, n in self.outcomes.most_common()))
        if self.speedups:
            table.add_row("median speedup vs eager (verified)", f"{statistics.median(self.speedups):.2f}x")
        for lane, problem in sorted(self.running.items()):
            table.add_row(f"running on {lane}", problem)
        if self.last:
            table.add_row("last", self.last)
        table.add_row("elapsed", f"{time.monotonic() - self.started:.0f} s")
        return table
