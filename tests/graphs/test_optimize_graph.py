"""The optimisation graph end to end on CPU: scripted chat models, a fake evaluator where a GPU would be."""

from __future__ import annotations

from pathlib import Path

from kernelwright.agents.llm import ModelSettings, make_chat_model
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.graphs.optimize import build_optimize_graph
from support.graph_fakes import CRITIC, CRITIQUE_ASKS, FakeEvaluator, answer, run_graph, scripted


def test_generations_of_translate_then_mutate_keep_the_fastest(tmp_path: Path) -> None:
    llm = scripted(answer(1.2), "sorry, no code", answer(0),  # gen 0 (one answer repaired)
                   CRITIC,  # the critic on gen 0's best
                   answer(1.9), answer(1.9))  # gen 1: the same kernel twice
    final, evaluator = run_graph(llm, tmp_path)
    records = final["candidates"]
    assert sorted(r["status"] for r in records.values()) == ["passed", "passed", "rejected"]
    best = records[final["best_id"]]
    assert best["speedup_vs_eager"] == 1.9 and best["agent"] == "mutator" and best["parents"]
    parent = records[best["parents"][0]]
    assert parent["speedup_vs_eager"] == 1.2
    assert parent["directions"] == ["vectorize loads to float4", "fuse the two passes"]
    assert parent["critique"].startswith("memory-bound")
    assert final["generation"] == 2 and final["spent"]["candidates"] == 3 == len(evaluator.seen)
    assert all(Path(r["source_path"]).exists() for r in records.values())
    assert final["spent"]["wall_s"] > 0


def test_unrepairable_answers_become_errors_not_crashes(tmp_path: Path) -> None:
    llm = scripted("no code", "still none", answer(1.1), CRITIC, answer(1.3), answer(1.4))
    final, _ = run_graph(llm, tmp_path)
    assert any(e["details"]["problem"] == "no_code" for e in final["errors"])
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.4


def test_wrong_class_name_is_asked_again(tmp_path: Path) -> None:
    wrong = answer(1.5).replace("class ModelNew", "class FastModel")
    final, _ = run_graph(scripted(wrong, answer(1.5)), tmp_path, generations=1, candidates_per_generation=1)
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.5 and not final["errors"]


def test_real_openai_client_over_http_with_temperature_schedule(tmp_path: Path) -> None:
    rules = [ReplayRule(answer(1.1)), ReplayRule(answer(1.5)), ReplayRule(answer(1.6)),
             ReplayRule(answer(1.7, tag="g1")), ReplayRule(answer(1.8, tag="g1"))]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        final, _ = run_graph(llm, tmp_path, generations=2, candidates_per_generation=3, critic=False,
                             temperature_schedule="anneal", crossover_rate=0.0, budget={"candidates": 5})
        temperatures = [r.get("temperature") for r in server.requests]
    # generation 0 samples at the configured temperatures, the last generation at half of them
    assert temperatures == [0.2, 0.7, 1.0, 0.1, 0.35]
    assert "Target GPU" in server.requests[0]["messages"][-1]["content"]
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.8
    assert final["spent"]["tokens"] > 0 and final["spent"]["candidates"] == 5


def test_graph_shape() -> None:
    mermaid = build_optimize_graph().get_graph().draw_mermaid(with_styles=False)
    for edge in ("__start__ --> describe", "describe --> translate", "translate --> screen", "mutate --> screen",
                 "repair --> screen", "screen --> dispatch", "evaluate_one --> collect", "profile --> select", "select --> archive",
                 "critique --> mutate"):
        assert edge in mermaid, mermaid
    for edge in ("dispatch -.-> evaluate_one", "collect -.-> repair", "after_evaluate&nbsp; .-> profile", "archive -.-> mutate",
                 "archive -.-> __end__", "archive -.-> critique", "archive -.-> sanitize_winner"):
        assert edge in mermaid, mermaid
    # the run's end: the winner's memcheck, then one more archive pass that stores its verdicts
    assert "sanitize_winner --> archive" in mermaid and "sanitize_winner -.->" not in mermaid, mermaid


def test_the_graph_has_exactly_the_nodes_named_in_graphs_nodes() -> None:
    """graphs.nodes is the one list of node names: the graph is built from it, plugins may not take them."""
    from kernelwright.graphs import nodes
    from kernelwright.graphs.plugins import RESERVED

    built = set(build_optimize_graph().get_graph().nodes) - {"__start__", "__end__"}
    assert built == set(nodes.NODE_NAMES) == RESERVED
    constants = {v for k, v in vars(nodes).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(nodes.NODE_NAMES)
    assert set(nodes.NODE_AGENTS) <= set(nodes.NODE_NAMES)


def test_critique_and_screen_parsing() -> None:
    from kernelwright.agents.critic import static_screen
    from kernelwright.agents.critic_replies import parse_critique, parse_screen

    assert parse_critique(CRITIC) == ("memory-bound at 40% of DRAM bandwidth",
                                      ["vectorize loads to float4", "fuse the two passes"])
    assert parse_critique("no structure at all") == ("", [])
    assert parse_critique("DIRECTIONS:\n- a\n- b\n* c\n- d")[1] == ["a", "b", "c"]
    assert parse_screen("SCREEN: PASS") == (True, "PASS")
    assert parse_screen("ok\nSCREEN: FAIL - forward calls torch.softmax") == (False, "forward calls torch.softmax")
    assert parse_screen("I think it is fine")[0] is True
    assert static_screen("import torch\nclass ModelNew: ...") is not None
    assert static_screen("CUDA = '__global__ void k() {}'") is None


def test_screen_skips_flagged_candidates_and_records_every_verdict(tmp_path: Path) -> None:
    no_kernel = answer(3.0).replace("__global__ void k(float* x) {}", "nothing")
    llm = scripted(answer(1.2), answer(2.5, tag="cheat"), no_kernel,
                   "SCREEN: PASS", "SCREEN: FAIL - forward returns the reference op's result")
    final, evaluator = run_graph(llm, tmp_path, generations=1, candidates_per_generation=3, screen=True)
    by_speed = {float(Path(r["source_path"]).read_text().split("SPEED = ")[1].split()[0]): r
                for r in final["candidates"].values()}
    assert by_speed[1.2]["status"] == "passed" and by_speed[1.2]["screen"] == "PASS"
    assert by_speed[2.5]["status"] == "screened_out" and "reference op" in by_speed[2.5]["screen"]
    assert by_speed[3.0]["status"] == "screened_out" and by_speed[3.0]["screen"].startswith("FAIL (static)")
    assert len(evaluator.seen) == 1  # only the candidate that passed the screen cost an evaluation


def test_rejected_candidates_are_repaired_with_diagnostics_up_to_k_times(tmp_path: Path) -> None:
    rules = [ReplayRule(answer(1.0, "compile_error", "a")),  # translator: fails to compile
             ReplayRule(answer(1.0, "timeout", "b")),  # translator: hangs
             ReplayRule(answer(1.4, tag="a-fixed"), when="identifier \"flaot\""),  # repair sees nvcc's diagnostic
             ReplayRule(answer(1.0, "timeout", "b2"), when="the kernel hangs"),
             ReplayRule(answer(1.0, "timeout", "b3"), when="the kernel hangs")]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        final, evaluator = run_graph(llm, tmp_path, generations=1, candidates_per_generation=2, repair_rounds=2)
        asked = len(server.requests)
    records = final["candidates"].values()
    fixed = [r for r in records if r["agent"] == "repair" and r["status"] == "passed"]
    assert len(fixed) == 1 and fixed[0]["speedup_vs_eager"] == 1.4 and fixed[0]["repair_depth"] == 1
    hung = sorted((r["repair_depth"], r["reason"]) for r in records if r["reason"] == "timeout")
    assert hung == [(0, "timeout"), (1, "timeout"), (2, "timeout")]  # K=2 repairs, then it stops asking
    assert asked == 5 and len(evaluator.seen) == 5 and final["best_id"] == fixed[0]["id"]


def test_crossover_combines_two_parents(tmp_path: Path) -> None:
    llm = scripted(answer(1.2), answer(1.3), answer(1.5, tag="x1"), answer(1.6, tag="x2"))
    final, _ = run_graph(llm, tmp_path, generations=2, candidates_per_generation=2, critic=False, crossover_rate=1.0)
    crossed = [r for r in final["candidates"].values() if r["agent"] == "crossover"]
    assert len(crossed) == 2 and all(len(r["parents"]) == 2 for r in crossed)
    assert all(set(r["parents"]) == {final["candidates"][p]["id"] for p in r["parents"]} for r in crossed)


def test_token_budget_stops_cleanly_and_keeps_the_best(tmp_path: Path) -> None:
    rules = [ReplayRule(answer(1.0 + i / 10, tag=str(i))) for i in range(12)]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        per_call = None
        final, _ = run_graph(llm, tmp_path, generations=10, candidates_per_generation=2, critic=False,
                             budget={"tokens": 1})
        per_call = len(server.requests)
    assert per_call == 1  # the first reply spends the whole budget: no second call
    assert final["stop_reason"].startswith("LLM tokens") and final["generation"] == 1
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.0


def test_cost_budget_with_priced_ensemble_models(tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from kernelwright.agents.context import KContext, NamedModel, RunSettings
    from kernelwright.graphs.state import Budget, make_initial_state
    from support.graph_fakes import PROBLEM

    with ReplayServer([ReplayRule(answer(1.1, tag="a"), when="", repeat=False), ReplayRule(answer(1.2, tag="b")),
                       ReplayRule(answer(1.3, tag="c")), ReplayRule(answer(1.4, tag="d"))]) as server:
        a = NamedModel("model-a", make_chat_model(ModelSettings(model="a", base_url=server.base_url), env={}),
                       price_in_per_mtok=1000.0, price_out_per_mtok=1000.0)
        b = NamedModel("model-b", make_chat_model(ModelSettings(model="b", base_url=server.base_url), env={}))
        ctx = KContext(llm=None, evaluator=FakeEvaluator(), run_dir=tmp_path, ensemble=(a, b),
                       settings=RunSettings(generations=5, candidates_per_generation=2, screen=False, critic=False,
                                            profile=False, repair_rounds=0))
        state = make_initial_state("r", str(PROBLEM), Budget(generations=5, candidates=0, wall_s=0, tokens=0, cost_usd=1.0))
        final = build_optimize_graph(InMemorySaver()).invoke(state, context=ctx, config={"configurable": {"thread_id": "r"}})
        models = [r["model"] for r in server.requests]
    assert models[:2] == ["a", "b"]  # the ensemble takes turns
    assert {r["model"] for r in final["candidates"].values()} == {"model-a", "model-b"}
    assert final["spent"]["cost_usd"] >= 1.0 and final["stop_reason"].startswith("LLM cost")
    assert final["generation"] < 5


def test_profiler_summary_reaches_the_critic_and_failures_do_not_stop_the_run(tmp_path: Path) -> None:
    with ReplayServer([ReplayRule(answer(1.2)), ReplayRule(CRITIC, when=CRITIQUE_ASKS),
                       ReplayRule(answer(1.5, tag="m"))]) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        final, evaluator = run_graph(llm, tmp_path, generations=2, candidates_per_generation=1, profile=True)
        critic_prompt = next(r["messages"][-1]["content"] for r in server.requests
                             if CRITIQUE_ASKS in r["messages"][-1]["content"])
    assert "82% of DRAM bandwidth" in critic_prompt and len(evaluator.profiled) == 2
    profiled = [r for r in final["candidates"].values() if r.get("profile_summary")]
    assert len(profiled) == 2 and Path(profiled[0]["source_path"]).with_name("profile.json").exists()

    broken = FakeEvaluator(profile=RuntimeError("ERR_NVGPUCTRPERM: no access to performance counters"))
    final, _ = run_graph(scripted(answer(1.2)), tmp_path / "b", evaluator=broken, generations=1,
                         candidates_per_generation=1, profile=True)
    summary = final["candidates"][final["best_id"]]["profile_summary"]
    assert summary.startswith("profiler unavailable") and "ERR_NVGPUCTRPERM" in summary


def test_evaluations_fan_out_in_parallel(tmp_path: Path) -> None:
    llm = scripted(*(answer(1.0 + i / 10, tag=str(i)) for i in range(4)))
    evaluator = FakeEvaluator(delay_s=0.3)
    final, _ = run_graph(llm, tmp_path, generations=1, candidates_per_generation=4, evaluator=evaluator, concurrency=4)
    assert evaluator.max_in_flight >= 2 and len(evaluator.seen) == 4
    assert final["spent"]["candidates"] == 4 and final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.3


def test_a_kernel_that_never_compiles_costs_at_most_k_repairs(tmp_path: Path) -> None:
    rules = [ReplayRule(answer(1.0, "compile_error", "v0"), when="Operations to implement")]
    rules += [ReplayRule(answer(1.0, "compile_error", f"v{i}"), when="flaot") for i in range(1, 6)]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        final, evaluator = run_graph(llm, tmp_path, generations=1, candidates_per_generation=1, repair_rounds=3)
        asked = len(server.requests)
    depths = sorted(r["repair_depth"] for r in final["candidates"].values())
    assert depths == [0, 1, 2, 3] and asked == 4 == len(evaluator.seen)
    assert all(r["reason"] == "compile_error" for r in final["candidates"].values()) and final["best_id"] is None
