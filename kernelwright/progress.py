"""Live progress of a run, fed by the graph's node updates: generation, best speedup, candidate outcomes, spend."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from kernelwright.agents.run_state import CandidateStatus
from kernelwright.graphs.generations import FIRST_GENERATION, generation_label, last_finished
from kernelwright.graphs.sanitizing import sanitized_text


@dataclass
class RunProgress:
    generation: int = FIRST_GENERATION  # the one running now; once the run stops, its last
    finished: int = 0  # generations whose select has run
    best_speedup: float | None = None
    best_id: str | None = None
    outcomes: Counter[CandidateStatus] = field(default_factory=Counter)  # status -> count (passed, rejected, ...)
    reasons: Counter = field(default_factory=Counter)  # rejection reason -> count
    proposed: int = 0
    malformed: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    last_node: str = ""
    stop_reason: str | None = None
    sanitized: str | None = None  # the winner's memcheck, once the run's end has run it ("yes" / "no (why)")
    waiting: str = ""  # a manual run's prompt waiting for `kernelwright answer` (cleared by the next update)
    _status: dict[str, CandidateStatus] = field(default_factory=dict)  # each candidate's latest verdict
    _speed: dict[str, float] = field(default_factory=dict)

    def apply(self, node: str, update: dict[str, Any]) -> None:
        """Fold one node's update in (updates carry increments for `spent`, full records for candidates)."""
        self.last_node = node
        self.waiting = ""
        spent = update.get("spent") or {}
        self.tokens += int(spent.get("tokens", 0))
        self.cost_usd += float(spent.get("cost_usd", 0.0))
        self.wall_s += float(spent.get("wall_s", 0.0))
        self.malformed += len(update.get("errors") or [])
        for cid, record in (update.get("candidates") or {}).items():
            if isinstance(record.get("generation"), int):  # new candidates name theirs (a resumed run starts past 0)
                self.generation = max(self.generation, record["generation"])
            status = record.get("status")
            if status == "pending":
                self.proposed += 1
            elif status:
                if cid in self._status:  # a later verdict replaces the earlier (memcheck rejects a passed winner)
                    self.outcomes[self._status[cid]] -= 1
                self.outcomes[status] += 1
                self._status[cid] = status
                if record.get("reason") and status != "passed":
                    self.reasons[str(record["reason"])] += 1
            if status == "passed" and record.get("speedup_vs_eager"):
                self._speed[cid] = float(record["speedup_vs_eager"])
        verified = {cid: speed for cid, speed in self._speed.items() if self._status.get(cid) == "passed"}
        self.best_id = max(verified, key=verified.__getitem__) if verified else None
        self.best_speedup = verified[self.best_id] if self.best_id else None
        if update.get("winner_sanitizer"):
            self.sanitized = sanitized_text(update["winner_sanitizer"])
        if "generation" in update:  # select ended one: the state's counter, the next number, is how many have finished
            self.finished = int(update["generation"])
            if not update.get("stop_reason"):  # the next one starts; at the end the last one stays on show
                self.generation = max(self.generation, self.finished)
        if update.get("stop_reason"):
            self.stop_reason = str(update["stop_reason"])

    @property
    def failed(self) -> int:
        return self.outcomes["rejected"] + self.outcomes["error"]

    def line(self) -> str:
        """One line per finished generation, numbered as `trace` numbers it (printed where no live table is)."""
        best = f"{self.best_speedup:.2f}x" if self.best_speedup else "-"
        last = last_finished(self.finished)
        head = generation_label(self.generation) if last is None else f"{generation_label(last)} done"
        return (f"{head}: best {best} vs eager | proposed {self.proposed}, "
                f"verified {self.outcomes['passed']}, failed {self.failed}, "
                f"screened out {self.outcomes['screened_out']}, unverified (no GPU) {self.outcomes['needs_gpu']} | "
                f"tokens {self.tokens}" + (f", ${self.cost_usd:.2f}" if self.cost_usd else ""))

    def table(self, title: str) -> Table:
        table = Table(title=title, show_header=False, expand=False)
        last = last_finished(self.finished)
        done = last is not None and last >= self.generation
        table.add_row("generation", f"{self.generation}" + (" (done)" if done else ""))
        table.add_row("best speedup vs eager", f"{self.best_speedup:.2f}x" if self.best_speedup else "-")
        if self.sanitized:
            table.add_row("sanitized (memcheck)", self.sanitized)
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
        if self.waiting:
            table.add_row("waiting", self.waiting)
        return table
