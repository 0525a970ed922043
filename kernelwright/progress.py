"""Live progress of a run, fed by the graph's node updates: generation, best speedup, candidate outcomes, spend."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


@dataclass
class RunProgress:
    generation: int = 0
    best_speedup: float | None = None
    best_id: str | None = None
    outcomes: Counter = field(default_factory=Counter)  # status -> count (passed, rejected, screened_out, ...)
    reasons: Counter = field(default_factory=Counter)  # rejection reason -> count
    proposed: int = 0
    malformed: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    last_node: str = ""
    stop_reason: str | None = None

    def apply(self, node: str, update: dict[str, Any]) -> None:
        """Fold one node's update in (updates carry increments for `spent`, full records for candidates)."""
        self.last_node = node
        spent = update.get("spent") or {}
        self.tokens += int(spent.get("tokens", 0))
        self.cost_usd += float(spent.get("cost_usd", 0.0))
        self.wall_s += float(spent.get("wall_s", 0.0))
        self.malformed += len(update.get("errors") or [])
        for cid, record in (update.get("candidates") or {}).items():
            status = record.get("status")
            if status == "pending":
                self.proposed += 1
            elif status:
                self.outcomes[status] += 1
                if record.get("reason") and status != "passed":
                    self.reasons[str(record["reason"])] += 1
            speed = record.get("speedup_vs_eager")
            if status == "passed" and speed and (self.best_speedup is None or speed > self.best_speedup):
                self.best_speedup, self.best_id = float(speed), cid
        if "generation" in update:
            self.generation = int(update["generation"])
        if update.get("stop_reason"):
            self.stop_reason = str(update["stop_reason"])

    @property
    def failed(self) -> int:
        return self.outcomes["rejected"] + self.outcomes["error"]

    def line(self) -> str:
        best = f"{self.best_speedup:.2f}x" if self.best_speedup else "-"
        return (f"generation {self.generation}: best {best} vs eager | proposed {self.proposed}, "
                f"verified {self.outcomes['passed']}, failed {self.failed}, "
                f"screened out {self.outcomes['screened_out']}, unverified (no GPU) {self.outcomes['needs_gpu']} | "
                f"tokens {self.tokens}" + (f", ${self.cost_usd:.2f}" if self.cost_usd else ""))

    def table(self, title: str) -> Table:
        table = Table(title=title, show_header=False, expand=False)
        table.add_row("generation", str(self.generation))
        table.add_row("best speedup vs eager", f"{self.best_speedup:.2f}x" if self.best_speedup else "-")
        table.add_row("proposed / verified / failed", f"{self.proposed} / {self.outcomes['passed']} / {self.failed}")
        if self.outcomes["screened_out"] or self.outcomes["needs_gpu"]:
            table.add_row("screened out / unverified (no GPU)",
                          f"{self.outcomes['screened_out']} / {self.outcomes['needs_gpu']}")
        if self.reasons:
            table.add_row("failure reasons", ", ".join(f"{k} {v}" for k, v in self.reasons.most_common(4)))
        table.add_row("tokens" + (" / cost" if self.cost_usd else ""),
                      f"{self.tokens}" + (f" / ${self.cost_usd:.2f}" if self.cost_usd else ""))
        table.add_row("agent time", f"{self.wall_s:.1f} s")
        table.add_row("now", self.last_node)
        return table
