"""The ablation benchmark's bookkeeping: evaluations until a run reaches a target speedup."""

from __future__ import annotations

from kernelwright.eval.bench_archive_ablation import evaluation_order, evaluations_to_reach


def test_counts_evaluations_in_proposal_order_until_the_target() -> None:
    candidates = {
        "a": {"generation": 0, "status": "passed", "speedup_vs_eager": 1.10},
        "b": {"generation": 0, "status": "rejected", "reason": "wrong_output"},
        "c": {"generation": 0, "status": "screened_out"},
        "d": {"generation": 1, "status": "passed", "speedup_vs_eager": 1.49},
        "e": {"generation": 1, "status": "pending"},
        "f": {"generation": 2, "status": "passed", "speedup_vs_eager": 1.52},
    }
    ordered = evaluation_order(candidates)
    assert [r.get("speedup_vs_eager") for r in ordered] == [1.10, None, 1.49, 1.52]
    assert evaluations_to_reach(ordered, 1.52) == 3  # 1.49 is within 2% of 1.52
    assert evaluations_to_reach(ordered, 1.60) is None
    assert evaluations_to_reach(ordered, 1.0) == 1
