"""No LLM at all: the graph proposes with the offline translator, then tunes the best variant's settings."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from kernelwright.agents.context import KContext, RunSettings
from kernelwright.agents.evaluator import EvaluatorDefaults
from kernelwright.agents.offline_proposer import OfflineSession
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.state import Budget, make_initial_state
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from kernelwright.tools.run_folder import CandidateFolder
from support.graph_fakes import fake_report, verdict
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "softmax_rows.py"


class HashSpeedEvaluator(EvaluatorDefaults):
    """A stand-in for the GPU: every candidate 'passes' with a speed derived from its source."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def evaluate(self, candidate: Any) -> EvalReport:
        text = Path(candidate).read_text()
        self.seen.append(text)
        return fake_report(candidate, "passed", speedup_vs_eager=1.0 + (zlib.crc32(text.encode()) % 1000) / 1000)

    def sanitize(self, candidate: Any) -> SanitizeVerdict:
        return verdict("clean")


def test_offline_run_translates_then_tunes_without_any_llm(tmp_path: Path) -> None:
    evaluator = HashSpeedEvaluator()
    ctx = KContext(llm=None, evaluator=evaluator, run_dir=tmp_path, offline=OfflineSession(),
                   settings=RunSettings(generations=3, candidates_per_generation=3, profile=False))
    state = make_initial_state("off", str(PROBLEM), Budget(generations=3, candidates=50, wall_s=0, tokens=0))
    final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx, config={"configurable": {"thread_id": "off"}})
    records = list(final["candidates"].values())
    first = [r for r in records if r["generation"] == 0]
    tuned = [r for r in records if r["generation"] > 0]
    assert first and all(r["agent"] == "offline" and r["variant"] for r in first)
    assert tuned and all(r["variant"].endswith("_tuned") and r["parents"] for r in tuned)
    assert len({r["id"] for r in records}) == len(records) == len(evaluator.seen)  # no setting evaluated twice
    assert final["spent"]["tokens"] == 0 and not final["errors"]
    best = final["candidates"][final["best_id"]]
    assert best["speedup_vs_eager"] == max(r["speedup_vs_eager"] for r in records)
    meta = CandidateFolder.of_source(best["source_path"]).read_meta()
    assert meta is not None and meta.agent == "offline" and meta.params == best["params"]


class TracingHashEvaluator(HashSpeedEvaluator):
    """Adds the problem's real functional form (traced on CPU), which the archive's signatures need."""

    def functional_form(self) -> dict[str, Any]:
        import importlib.util

        from kernelwright.tools.problem.functional import functional_form

        spec = importlib.util.spec_from_file_location("softmax_problem", PROBLEM)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return functional_form(module.Model(*module.get_init_inputs()), module.get_inputs(),
                               module_source=PROBLEM.read_text()).to_dict()


def _offline_run(tmp_path: Path, run_id: str, archive: Any, generations: int) -> dict[str, Any]:
    ctx = KContext(llm=None, evaluator=TracingHashEvaluator(), run_dir=tmp_path / run_id, offline=OfflineSession(),
                   archive=archive, settings=RunSettings(generations=generations, candidates_per_generation=3,
                                                         profile=False))
    state = make_initial_state(run_id, str(PROBLEM), Budget(generations=generations, candidates=50, wall_s=0, tokens=0))
    return build_optimize_graph(InMemorySaver()).invoke(state, context=ctx, config={"configurable": {"thread_id": run_id}})


def test_archived_offline_settings_seed_the_next_run(tmp_path: Path) -> None:
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.embedding import HashedEmbedding

    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        first = _offline_run(tmp_path, "first", archive, generations=3)
        tuned = [r for r in first["candidates"].values() if r["variant"].endswith("_tuned")]
        assert tuned and all(r.get("archived") for r in first["candidates"].values())
        archived = {r.id: r for r in archive.records()}
        second = _offline_run(tmp_path, "second", archive, generations=1)
    # the settings travel as data: each archived kernel's lineage holds the params its run recorded
    assert all(archived[r["id"]].lineage.params == r["params"] for r in first["candidates"].values())
    metas = {cid: CandidateFolder.of_source(r["source_path"]).read_meta() for cid, r in second["candidates"].items()}
    seeded = [r for cid, r in second["candidates"].items() if metas[cid] is not None and metas[cid].seeded_from]
    assert seeded, "no candidate of the second run started from an archived setting"
    archived_params = {json.dumps(r.lineage.params, sort_keys=True) for r in archived.values()}
    assert all(json.dumps(r["params"], sort_keys=True) in archived_params for r in seeded)


def test_archived_settings_are_the_lineage_params_and_the_docstring_only_for_old_records() -> None:
    from dataclasses import replace

    from kernelwright.agents.offline_proposer import archived_settings
    from kernelwright.memory.records import ArchiveRecord, Lineage, ProblemSignature

    source = '"""Generated by the offline translator.\n\nTunables: k0.CACHE=0, k0.TPR=512.\n"""\n'
    old = ArchiveRecord(id="x", signature=ProblemSignature(), functional_source="", kernel_source=source,
                        status="passed", lineage=Lineage(agent="offline"))
    assert old.lineage.params is None and archived_settings(old) == {"k0.CACHE": 0, "k0.TPR": 512}
    # a record that carries its settings is not parsed: its text may say anything
    new = replace(old, lineage=Lineage(agent="offline", params={"k0.TPR": 128}))
    assert archived_settings(new) == {"k0.TPR": 128}
    assert archived_settings(replace(old, lineage=Lineage(agent="offline", params={}))) == {}


def test_without_a_gpu_the_run_stops_after_the_first_generation(tmp_path: Path) -> None:
    class NoGpu(HashSpeedEvaluator):
        def evaluate(self, candidate: Any) -> EvalReport:
            return fake_report(candidate, "needs_gpu", reason="no_gpu")

    ctx = KContext(llm=None, evaluator=NoGpu(), run_dir=tmp_path, offline=OfflineSession(),
                   settings=RunSettings(generations=3, candidates_per_generation=2, profile=False))
    state = make_initial_state("cpu", str(PROBLEM), Budget(generations=3, candidates=50, wall_s=0, tokens=0))
    final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx, config={"configurable": {"thread_id": "cpu"}})
    assert final["generation"] == 1 and final["stop_reason"].startswith("no CUDA GPU")
    assert {r["status"] for r in final["candidates"].values()} == {"needs_gpu"}


def test_archived_settings_transfer_by_tunable_name_across_step_numbers() -> None:
    from kernelwright.agents.offline_proposer import transfer_settings

    dims = {"k0.TPR": {"choices": [128, 256, 512]}, "k0.CACHE": {"choices": [1, 0]},
            "k1.BLOCK": {"choices": [128, 256]}}
    archived = {"k1.TPR": 512, "k1.CACHE": 0, "h0.GEMM": "tf32x3", "k1.BLOCK": 1024, "k0.CACHE": 1}
    # k0.CACHE matches exactly and wins over k1.CACHE; k1.BLOCK=1024 is not one of this plan's choices.
    assert transfer_settings(archived, dims) == {"k0.TPR": 512, "k0.CACHE": 1}
    assert transfer_settings({}, dims) == {}


def test_a_random_start_draws_the_fused_plan_and_archive_seeds_come_first(tmp_path: Path) -> None:
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.embedding import HashedEmbedding

    def first_generation(run_id: str, archive: Any) -> list[dict[str, Any]]:
        ctx = KContext(llm=None, evaluator=TracingHashEvaluator(), run_dir=tmp_path / run_id, offline=OfflineSession(),
                       archive=archive, settings=RunSettings(generations=1, candidates_per_generation=3,
                                                             profile=False, offline_start="random"))
        state = make_initial_state(run_id, str(PROBLEM), Budget(generations=1, candidates=50, wall_s=0, tokens=0))
        final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx,
                                                             config={"configurable": {"thread_id": run_id}})
        return list(final["candidates"].values())

    empty = first_generation("empty", None)
    assert len(empty) == 3 and {r["variant"] for r in empty} == {"fused_sampled"}
    assert len({json.dumps(r["params"], sort_keys=True) for r in empty}) == 3
    again = first_generation("again", None)  # the draw depends on the problem, not on the run
    assert [r["params"] for r in again] == [r["params"] for r in empty]
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        _offline_run(tmp_path, "filler", archive, generations=2)
        filled = first_generation("filled", archive)
    assert len(filled) == 3
    seeded = [r for r in filled if r["variant"] == "fused_tuned"]
    assert seeded and filled[:len(seeded)] == seeded  # the archive's settings are tried before random ones


def test_fill_puts_the_defaults_neighbours_in_the_slots_the_variants_leave(tmp_path: Path) -> None:
    from kernelwright.agents.offline import propose

    def first_generation(run_id: str, fill: bool) -> list[dict[str, Any]]:
        ctx = KContext(llm=None, evaluator=HashSpeedEvaluator(), run_dir=tmp_path / run_id, offline=OfflineSession(),
                       settings=RunSettings(generations=1, candidates_per_generation=6, profile=False,
                                            offline_fill=fill))
        state = make_initial_state(run_id, str(PROBLEM), Budget(generations=1, candidates=50, wall_s=0, tokens=0))
        final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx,
                                                             config={"configurable": {"thread_id": run_id}})
        return list(final["candidates"].values())

    from kernelwright.agents.offline.propose import trace_all, tuning_target
    from kernelwright.tools.source_hash import candidate_id

    proposed = propose(PROBLEM)
    variants = {c.variant for c in proposed}
    plain = first_generation("plain", False)
    assert {r["variant"] for r in plain} == variants and len(plain) == len(variants) < 6
    # the kernels the fill can add: neighbours whose code differs from every variant's and from each other's (a
    # move the kernel ignores writes the same code under another header, measured once)
    target = tuning_target(trace_all(PROBLEM), "fused")
    assert target is not None
    new_code = {candidate_id(target.render(n)) for n in target.space.neighbours_up_first(target.space.defaults())}
    new_code -= {candidate_id(c.source) for c in proposed}
    assert len(new_code) >= 2
    filled = first_generation("filled", True)
    expected = min(6, len(variants) + len(new_code))
    assert len(filled) == expected and len({r["id"] for r in filled}) == expected  # every slot it can fill, no code twice
    fused = next(r["params"] for r in filled if r["variant"] == "fused")
    neighbours = [r["params"] for r in filled if r["variant"] == "fused_neighbour"]
    assert len(neighbours) == expected - len(variants)
    for params in neighbours:  # one tunable moved one step from the fused defaults
        assert sum(params[k] != fused[k] for k in fused) == 1, (params, fused)


def test_default_neighbours_move_each_tunable_up_first_then_down() -> None:
    from kernelwright.agents.offline.space import TuneDim, TuneSpace

    space = TuneSpace((TuneDim("h0.TILE", ("a", "b", "c"), "a"), TuneDim("k1.TPR", (64, 128, 256), 128)))
    assert space.neighbours_up_first(space.defaults()) == [{"h0.TILE": "b", "k1.TPR": 128}, {"h0.TILE": "a", "k1.TPR": 256},
                                         {"h0.TILE": "a", "k1.TPR": 64}]


def test_the_fill_switches_every_staged_path_on_at_once_first() -> None:
    """TuneSpace.switched_on: every STAGE, VEC and GRAPH tunable at its first choice (off) moves to the next, others
    stay; the fill's first neighbour (offline_proposer.neighbour_candidates) is that move, where there is one."""
    from kernelwright.agents.offline.space import TuneDim, TuneSpace

    space = TuneSpace((TuneDim("k0.STAGE", (0, 1), 0), TuneDim("k0.SPLIT", (2, 4), 4), TuneDim("k1.VEC", (1, 4), 1),
                       TuneDim("k2.STAGE", (0, 1), 1), TuneDim("k3.STAGE", (0, 1), 0)))
    assert space.switched_on(space.defaults()) == {"k0.STAGE": 1, "k0.SPLIT": 4, "k1.VEC": 4, "k2.STAGE": 1,
                                                   "k3.STAGE": 1}  # k2's STAGE is on already
    assert space.switched_on({**space.defaults(), "k0.STAGE": 1, "k1.VEC": 4, "k3.STAGE": 1}) is None
    # an elementwise step's VEC defaults to its widest (last) choice: nothing to switch; one choice: nothing either
    assert TuneSpace((TuneDim("k0.VEC", (1, 2, 4), 4), TuneDim("k1.VEC", (1,), 1))).switched_on(
        {"k0.VEC": 4, "k1.VEC": 1}) is None
    assert TuneSpace((TuneDim("h0.TILE", ("a", "b"), "a"),)).switched_on({"h0.TILE": "a"}) is None


def test_seeds_come_from_each_earlier_run_fastest_first_before_any_runs_second() -> None:
    from types import SimpleNamespace

    from kernelwright.agents.offline_proposer import seed_order

    def hit(run: str, speed: float, similarity: float) -> Any:
        return SimpleNamespace(similarity=similarity,
                               record=SimpleNamespace(run_id=run, id=f"{run}{speed}", speedup_vs_eager=speed))

    hits = [hit("near", 1.2, 0.95), hit("near", 1.9, 0.95), hit("near", 1.5, 0.95), hit("far", 1.1, 0.6),
            hit("far", 1.4, 0.6), hit("mid", 0.9, 0.8)]
    order = [(h.record.run_id, h.record.speedup_vs_eager) for h in seed_order(hits)]
    assert order == [("near", 1.9), ("mid", 0.9), ("far", 1.4), ("near", 1.5), ("far", 1.1), ("near", 1.2)]
    assert seed_order([]) == []


def test_the_offline_trace_starts_in_the_background_once_and_hands_over_its_result_or_error(monkeypatch) -> None:
    import threading

    from kernelwright.agents import offline_proposer
    from kernelwright.agents.offline import OfflineUnsupported

    calls: list[str] = []
    release = threading.Event()

    def fake_trace(path: str) -> list[Any]:
        calls.append(path)
        release.wait(5)
        if path == "bad.py":
            raise OfflineUnsupported("nothing to translate", ops=("aten.sort",))
        return [f"traced {path}"]

    monkeypatch.setattr(offline_proposer, "_trace_quietly", fake_trace)
    session = OfflineSession()
    session.start("p.py")
    session.start("p.py")  # already under way: not a second trace
    release.set()
    assert session.traced_problem("p.py") == ["traced p.py"] and session.traced_problem("p.py") == ["traced p.py"]
    assert calls == ["p.py"]
    session.start("bad.py")
    try:
        session.traced_problem("bad.py")
        raise AssertionError("the background trace's error was lost")
    except OfflineUnsupported as exc:
        assert "nothing to translate" in str(exc)
    assert session.traced_problem("q.py") == ["traced q.py"]  # never started: traced on demand
