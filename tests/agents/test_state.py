"""Run state: reducers are pure and typed; ids ignore comments and layout."""

from __future__ import annotations

from kernelwright.graphs.state import Budget, Replace, add_counts, extend_list, make_initial_state, merge_candidates
from kernelwright.tools.source_hash import candidate_id


def test_merge_candidates_updates_fields_and_keeps_others() -> None:
    state = merge_candidates(None, {"a": {"id": "a", "status": "pending", "generation": 0}})
    state = merge_candidates(state, {"a": {"status": "passed", "speedup_vs_eager": 1.4}, "b": {"id": "b"}})
    assert state["a"] == {"id": "a", "status": "passed", "generation": 0, "speedup_vs_eager": 1.4}
    assert set(state) == {"a", "b"}
    assert merge_candidates(state, Replace({})) == {}


def test_extend_list_and_replace() -> None:
    assert extend_list([1], [2, 3]) == [1, 2, 3]
    assert extend_list(None, [1]) == [1]
    assert extend_list([1, 2], Replace([9])) == [9]


def test_spent_counters_add_up() -> None:
    totals = add_counts({"tokens": 10, "candidates": 1}, {"tokens": 5})
    assert add_counts(totals, {"generations": 1}) == {"tokens": 15, "candidates": 1, "generations": 1}
    assert add_counts(totals, Replace({"tokens": 0})) == {"tokens": 0}


def test_initial_state_has_every_key() -> None:
    state = make_initial_state("r1", "p.py", Budget(generations=3, candidates=20, wall_s=600.0, tokens=10**6))
    assert state["candidates"] == {} and state["errors"] == [] and state["spent"]["candidates"] == 0
    assert state["best_id"] is None and state["generation"] == 0


def test_candidate_id_ignores_comments_and_layout_not_code() -> None:
    a = 'import torch\nSRC = r"""\n__global__ void k(float* x) { x[0] = 1; }  // set\n"""\nclass ModelNew:  # model\n    pass\n'
    b = 'import torch\n\n\nSRC = r"""\n/* a kernel */\n__global__   void k(float* x) { x[0] = 1; }\n"""\n\nclass ModelNew:\n    pass\n'
    c = a.replace("x[0] = 1", "x[0] = 2")
    assert candidate_id(a) == candidate_id(b)
    assert candidate_id(a) != candidate_id(c)
    assert len(candidate_id("not python (((")) == 64


def test_candidate_id_ignores_docstrings_not_strings_the_code_uses() -> None:
    body = 'import torch\nSRC = r"""\n__global__ void k(float* x) { x[0] = 1; }\n"""\nclass ModelNew:\n{doc}    pass\n'
    fused = '"""Generated (variant: fused).\nTunables: k0.TPR=256."""\n' + body.replace("{doc}", "")
    scalar = '"""Generated (variant: fused_scalar).\nTunables: defaults."""\n' + body.replace("{doc}", '    """A model."""\n')
    assert candidate_id(fused) == candidate_id(scalar)  # the same code under two headers: one kernel
    assert candidate_id(fused) != candidate_id(fused.replace('SRC = r"""', 'SRC = "// x" + r"""'))
    assert candidate_id('X = "a"\n') != candidate_id('X = "b"\n')  # an assigned string is code
    assert candidate_id('"a".join(x)\n') != candidate_id('"b".join(x)\n')  # so is a string that starts an expression


def test_every_candidate_status_has_its_place_wherever_statuses_are_shown() -> None:
    """One status vocabulary (agents.run_state.CandidateStatus, the harness's verdicts plus pending and
    screened_out): the trace view styles and marks each, the report orders each, the run reader counts each
    one that is not passed or pending as failed."""
    from kernelwright.agents.run_state import CANDIDATE_STATUSES, SCREENED_OUT, candidate_status
    from kernelwright.eval.report.charts import STATUS_ORDER
    from kernelwright.eval.report.run_data import FAILED_STATUSES
    from kernelwright.tools.harness.results import STATUSES, status_of
    from kernelwright.trace_view import STATUS_ICON, STATUS_STYLE

    assert set(STATUSES) < set(CANDIDATE_STATUSES) and SCREENED_OUT in CANDIDATE_STATUSES
    assert set(STATUS_STYLE) == set(STATUS_ICON) == set(STATUS_ORDER) == set(CANDIDATE_STATUSES)
    assert len(STATUS_ORDER) == len(CANDIDATE_STATUSES)
    assert set(FAILED_STATUSES) == set(CANDIDATE_STATUSES) - {"passed", "pending"}
    assert [status_of(s) for s in (*STATUSES, "pending", None, 3)] == [*STATUSES, "error", "error", "error"]
    assert [candidate_status(s) for s in (*CANDIDATE_STATUSES, "done", None)] == [*CANDIDATE_STATUSES, "error", "error"]
