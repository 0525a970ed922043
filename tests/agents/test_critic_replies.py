"""The critic's verdicts as structured output, with the real langchain-openai client over the replay server:
a model that complies gives the schema's JSON; one that does not is read the old way; an endpoint that
rejects the schema is asked again without it; a model that cannot bind one is asked in plain text."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from kernelwright.agents.critic_replies import Critique, Screen, ask_structured, read_critique, read_screen, reply_text
from kernelwright.agents.llm import ModelSettings, make_chat_model
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from support.graph_fakes import CRITIC, CRITIQUE_ASKS, SCREEN_ASKS, answer, run_graph, scripted

ASK = [SystemMessage("you review CUDA kernels"), HumanMessage("review this kernel")]
CRITIQUE_JSON = '{"verdict": "latency-bound: one block per row", "directions": ["two rows per block", "use float4"]}'


def _replay_llm(server: ReplayServer):
    return make_chat_model(ModelSettings(model="replay", base_url=server.base_url, max_retries=0), env={})


def test_a_compliant_model_gives_the_critique_as_the_schema_asks() -> None:
    with ReplayServer([ReplayRule(CRITIQUE_JSON)]) as server:
        structured, raw = ask_structured(_replay_llm(server), ASK, Critique)
    assert structured == Critique(verdict="latency-bound: one block per row",
                                  directions=["two rows per block", "use float4"])
    assert read_critique(structured, reply_text(raw)) == structured and raw.usage_metadata["total_tokens"] > 0
    (request,) = server.requests
    assert request["response_format"]["type"] == "json_schema"
    schema = request["response_format"]["json_schema"]
    assert schema["name"] == "Critique" and set(schema["schema"]["properties"]) == {"verdict", "directions"}


def test_a_plain_text_critique_is_read_by_the_fallback() -> None:
    with ReplayServer([ReplayRule(CRITIC)]) as server:
        structured, raw = ask_structured(_replay_llm(server), ASK, Critique)
    assert structured is None and len(server.requests) == 1  # one call: the text is read, not asked again
    found = read_critique(structured, reply_text(raw))
    assert found == Critique(verdict="memory-bound at 40% of DRAM bandwidth",
                             directions=["vectorize loads to float4", "fuse the two passes"])


def test_json_in_the_text_of_a_model_that_ignored_the_schema_is_read() -> None:
    text = "Here is my review.\n" + CRITIQUE_JSON.replace('"use float4"]', '"use float4", "unroll", "tile"]')
    found = read_critique(None, text)
    assert found.verdict.startswith("latency-bound") and found.directions == ["two rows per block", "use float4",
                                                                              "unroll"]
    assert read_critique(None, '{"verdict": 3}') == Critique(verdict="", directions=[])  # wrong shape: no directions


@pytest.mark.parametrize("reply,expected", [
    ('{"passed": false, "defect": "forward calls torch.softmax"}', (False, "forward calls torch.softmax")),
    ('{"passed": true, "defect": ""}', (True, "PASS")),
    ("SCREEN: FAIL - forward calls torch.softmax", (False, "forward calls torch.softmax")),  # the fallback
    ("looks fine to me", (True, "unparsed screen reply: passed to the harness")),
])
def test_screen_verdicts_structured_or_not(reply: str, expected: tuple[bool, str]) -> None:
    with ReplayServer([ReplayRule(reply)]) as server:
        structured, raw = ask_structured(_replay_llm(server), ASK, Screen)
    assert (structured is not None) == reply.startswith("{")
    assert read_screen(structured, reply_text(raw)) == expected


def test_an_endpoint_that_rejects_the_schema_is_asked_again_without_it() -> None:
    rules = [ReplayRule("response_format json_schema is not supported", status=400), ReplayRule(CRITIC)]
    with ReplayServer(rules) as server:
        structured, raw = ask_structured(_replay_llm(server), ASK, Critique)
    assert structured is None and read_critique(None, reply_text(raw)).directions[0] == "vectorize loads to float4"
    first, second = server.requests
    assert "response_format" in first and "response_format" not in second
    assert first["messages"] == second["messages"]


def test_a_rejected_key_is_not_mistaken_for_a_rejected_schema() -> None:
    with ReplayServer([ReplayRule("invalid api key", status=401), ReplayRule(CRITIC)]) as server:
        with pytest.raises(Exception) as info:
            ask_structured(_replay_llm(server), ASK, Critique)
    assert getattr(info.value, "status_code", None) == 401 and len(server.requests) == 1


def test_a_model_that_cannot_bind_a_schema_is_asked_in_plain_text() -> None:
    structured, raw = ask_structured(scripted(CRITIC), ASK, Critique)  # langchain's fake chat model binds no tools
    assert structured is None and read_critique(None, reply_text(raw)).verdict.startswith("memory-bound")


def test_the_graph_records_structured_critiques_and_screens(tmp_path: Path) -> None:
    """Through the nodes: a structured critique's directions reach the mutator; a structured failed screen
    keeps the candidate from the harness with the defect as its verdict."""
    rules = [ReplayRule('{"passed": false, "defect": "it calls torch.relu"}', when="TAG = 'cheat'", repeat=True),
             ReplayRule('{"passed": true, "defect": ""}', when=SCREEN_ASKS, repeat=True),
             ReplayRule(CRITIQUE_JSON, when=CRITIQUE_ASKS, repeat=True),
             ReplayRule(answer(1.2)), ReplayRule(answer(1.3, tag="cheat")), ReplayRule(answer(1.6, tag="m"))]
    with ReplayServer(rules) as server:
        final, evaluator = run_graph(_replay_llm(server), tmp_path, generations=2, candidates_per_generation=2,
                                     screen=True, crossover_rate=0.0, budget={"candidates": 3})
        mutate_prompts = [r["messages"][-1]["content"] for r in server.requests
                          if "Change it along this direction" in r["messages"][-1]["content"]]
    records = final["candidates"].values()
    cheat = next(r for r in records if "cheat" in Path(r["source_path"]).read_text())
    assert (cheat["status"], cheat["reason"], cheat["screen"]) == ("screened_out", "screened_out",
                                                                    "FAIL: it calls torch.relu")
    first = next(r for r in records if r.get("critique"))
    assert first["critique"] == "latency-bound: one block per row"
    assert first["directions"] == ["two rows per block", "use float4"]
    assert mutate_prompts and "two rows per block; use float4" in mutate_prompts[0]
    assert len(evaluator.seen) == 2  # the screened-out candidate never reached the harness
