"""The real langchain-openai client over HTTP against the local replay server."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from kernelwright.agents.answer_parsing import AnswerError, parse_candidate
from kernelwright.agents.llm import DEFAULT_MODEL, ModelSettings, choose_model, make_chat_model
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.tools.errors import ToolUnavailable

CANDIDATE = "```python\nimport torch.nn as nn\n\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x\n```"


def test_real_client_gets_scripted_answers_in_order_and_by_key() -> None:
    rules = [ReplayRule("no code here", when="please repair"), ReplayRule(CANDIDATE)]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url, temperature=0.3), env={})
        first = llm.invoke([SystemMessage("you write kernels"), HumanMessage("translate this softmax")])
        second = llm.invoke([HumanMessage("please repair your answer")])
        third = llm.invoke([HumanMessage("anything")])
    assert parse_candidate(first.content).source.startswith("import torch.nn")
    with pytest.raises(AnswerError):
        parse_candidate(second.content)
    assert "no scripted answer" in third.content
    assert first.usage_metadata["total_tokens"] > 0
    recorded = server.requests
    assert [r["messages"][-1]["content"] for r in recorded] == ["translate this softmax", "please repair your answer",
                                                                  "anything"]
    assert recorded[0]["model"] == "replay" and recorded[0]["temperature"] == 0.3
    assert recorded[0]["messages"][0] == {"role": "system", "content": "you write kernels"}


def test_streaming_works_too() -> None:
    with ReplayServer([ReplayRule(CANDIDATE)]) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        text = "".join(chunk.content for chunk in llm.stream([HumanMessage("go")]))
    assert text == CANDIDATE


def test_no_llm_configured_is_a_typed_error() -> None:
    assert choose_model(ModelSettings(), env={}) is None  # nothing asked for: the offline translator
    assert choose_model(ModelSettings(), env={"OPENAI_API_KEY": "k"}).name == DEFAULT_MODEL
    with pytest.raises(ToolUnavailable, match="no LLM configured"):
        make_chat_model(ModelSettings(), env={})


def test_a_malformed_answer_is_asked_again_with_its_reask_template() -> None:
    from kernelwright.agents.proposals import ask_for_candidate
    from kernelwright.prompts.library import PromptLibrary

    library = PromptLibrary()
    prompt = library.get("reask_no_modelnew").render()  # any rendered prompt will do as the first question
    with ReplayServer([ReplayRule("no code here"), ReplayRule(CANDIDATE)]) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        source, reasks, spend, _ = ask_for_candidate(llm, prompt, 0.2, 2, prompts=library)
    assert source.startswith("import torch.nn") and reasks == 1 and spend.tokens > 0
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "no code here"}
    assert second[-1]["content"] == library.get("reask_no_code").render().user.strip()
    assert second[-1]["content"].startswith("Reply with the complete candidate file in one ```python block")
