"""Run budgets: which limit, if any, the spending so far has reached.

A budget of 0 (or a missing key) means no limit on that quantity. The run
checks before each expensive step (an LLM call, a generation) and stops
cleanly, keeping its best kernel, once any limit is reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (key, human name) in the order they are reported
LIMITS: tuple[tuple[str, str], ...] = (
    ("generations", "generations"),
    ("candidates", "evaluated candidates"),
    ("wall_s", "wall time (s)"),
    ("tokens", "LLM tokens"),
    ("cost_usd", "LLM cost (USD)"),
)


def exhausted(budget: Mapping[str, Any] | None, spent: Mapping[str, Any] | None,
              extra: Mapping[str, Any] | None = None) -> str | None:
    """The first budget reached, as 'tokens: 12034 of 12000', or None; `extra` is spending not yet in `spent`."""
    budget, spent, extra = budget or {}, spent or {}, extra or {}
    for key, name in LIMITS:
        limit = budget.get(key) or 0
        used = (spent.get(key) or 0) + (extra.get(key) or 0)
        if limit and used >= limit:
            return f"{name}: {used:g} of {limit:g}"
    return None
