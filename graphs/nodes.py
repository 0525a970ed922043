"""The optimisation graph's node names: the one list that the graph's builder, its routing, the plugin check,
the event recorder, the run reader and the trace view all import (graphs/optimize.py draws the graph)."""

from __future__ import annotations

from typing import Final, Literal, get_args

NodeName = Literal["describe", "translate", "mutate", "repair", "screen", "dispatch", "evaluate_one", "collect",
                   "profile", "select", "critique", "archive", "sanitize_winner"]

DESCRIBE: Final = "describe"  # the problem's functional form
TRANSLATE: Final = "translate"  # first candidates (LLM translator, offline translator)
MUTATE: Final = "mutate"  # rewrites of the elite (mutations, crossovers; the offline tuner)
REPAIR: Final = "repair"  # fixes of rejected candidates, with the harness's diagnostics
SCREEN: Final = "screen"  # the critic's look at each new candidate before it is compiled
DISPATCH: Final = "dispatch"  # start of an evaluation phase
EVALUATE_ONE: Final = "evaluate_one"  # one candidate through the harness (fanned out)
COLLECT: Final = "collect"  # join of the fan-out
PROFILE: Final = "profile"  # the generation's best verified candidate under the profiler
SELECT: Final = "select"  # the elite, the best, the next generation, whether to stop
CRITIQUE: Final = "critique"  # the critic's directions for the best candidate
ARCHIVE: Final = "archive"  # verified kernels into the kernel archive
SANITIZE_WINNER: Final = "sanitize_winner"  # the run's end: memcheck of its best kernel

NODE_NAMES: Final[tuple[NodeName, ...]] = get_args(NodeName)

# Which agent a node's LLM calls belong to (plugins are named after their node).
NODE_AGENTS: Final[dict[str, str]] = {TRANSLATE: "translator", MUTATE: "mutator", REPAIR: "repair",
                                      CRITIQUE: "critic", SCREEN: "critic"}
