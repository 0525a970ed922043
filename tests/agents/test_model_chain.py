"""Model chains (agents.model_chain) through the real langchain-openai client over HTTP to the local replay server:
Retry-After is waited out, timeouts, cut and unreadable answers are tried again, a model that stays down hands
over to the next one, and a chain that is down throughout raises its last error, naming every model.
Rate limits (agents.rate_limits) are measured from the server's request arrival times."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import formatdate
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from kernelwright.agents.llm import ModelPlan, ModelSettings, choose_model, parse_model_spec
from kernelwright.agents.llm_failure import llm_failure
from kernelwright.agents.model_chain import ChainLink, ModelChain, ModelCooldowns, RetryPolicy, make_model_chain
from kernelwright.agents.rate_limits import ProviderLimiter, ProviderLimits, RunLimiters
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer

FAST = RetryPolicy(backoff_s=0.01, backoff_max_s=0.05)


def chain(*servers: ReplayServer, policy: RetryPolicy = FAST, limiters: RunLimiters | None = None,
          cooldowns: ModelCooldowns | None = None, **settings: Any) -> tuple[ModelChain, Any]:
    names = [f"m{i}" for i in range(len(servers))]
    specs = tuple(f"{name}@{server.base_url}" for name, server in zip(names[1:], servers[1:]))
    chosen = choose_model(ModelSettings(model=names[0], base_url=servers[0].base_url, fallbacks=specs, **settings),
                          env={})
    return make_model_chain(chosen, policy, limiters, env={}, cooldowns=cooldowns), chosen


def test_the_chain_syntax_has_one_parser() -> None:
    assert parse_model_spec("anthropic:claude-sonnet-4") == ("anthropic:claude-sonnet-4", None)
    assert parse_model_spec("model-b@http://host:8000/v1") == ("model-b", "http://host:8000/v1")
    assert parse_model_spec("openai:org/m@x@https://h/v1") == ("openai:org/m@x", "https://h/v1")
    assert parse_model_spec("name@not-a-url") == ("name@not-a-url", None)


@pytest.mark.parametrize("header", ["seconds", "http-date"])
def test_429_with_retry_after_is_waited_out_then_the_call_succeeds(header: str) -> None:
    # an HTTP date has whole seconds: the next whole second at least 1.2 s ahead, so the wait is 1.2 to 2.2 s
    # whatever the fraction of the second the test starts in (time.time() + 2, cut to its second, was 1 to 2 s
    # ahead when sent and could be under 1 s when the client read it)
    value = "1.2" if header == "seconds" else formatdate(math.ceil(time.time() + 1.2), usegmt=True)
    with ReplayServer([ReplayRule("slow down", status=429, retry_after=value), ReplayRule("done")]) as server:
        model, _ = chain(server)
        assert model.invoke("hello").content == "done"
    first, second = server.arrivals
    assert second - first >= (1.2 if header == "seconds" else 1.0)
    assert second - first < 3.0


def test_retry_after_is_capped_by_the_setting() -> None:
    with ReplayServer([ReplayRule("slow down", status=429, retry_after="30"), ReplayRule("done")]) as server:
        model, _ = chain(server, policy=RetryPolicy(retry_after_max_s=0.2))
        assert model.invoke("hello").content == "done"
    first, second = server.arrivals
    assert 0.2 <= second - first < 2.0


def test_a_slow_answer_a_cut_answer_and_garbage_are_tried_again() -> None:
    rules = [ReplayRule("too late", delay_s=2.0), ReplayRule("cut", fault="truncate"),
             ReplayRule("junk", fault="garbage"), ReplayRule("finally")]
    with ReplayServer(rules) as server:
        model, _ = chain(server, max_retries=3, timeout_s=0.5)
        assert model.invoke("hello").content == "finally"
    assert len(server.requests) == 4


def test_a_stream_cut_before_its_end_is_tried_again() -> None:
    with ReplayServer([ReplayRule("x" * 200, fault="truncate"), ReplayRule("whole answer")]) as server:
        chosen = choose_model(ModelSettings(model="m", base_url=server.base_url), env={})
        streaming = ChatOpenAI(model="m", base_url=server.base_url, api_key="k", max_retries=0, streaming=True)
        assert ModelChain([ChainLink(chosen, streaming)], FAST).invoke("hello").content == "whole answer"
    assert len(server.requests) == 2 and all(r.get("stream") for r in server.requests)


def test_a_model_that_stays_down_hands_over_to_the_next() -> None:
    with ReplayServer([ReplayRule("down", status=500, repeat=True)]) as down, \
            ReplayServer([ReplayRule("from the second")]) as up:
        model, chosen = chain(down, up, max_retries=2)
        assert model.bind(temperature=0.3).invoke("hello").content == "from the second"
    assert len(down.requests) == 3 and len(up.requests) == 1
    assert up.requests[0]["model"] == "m1" and up.requests[0]["temperature"] == 0.3
    assert chosen.describe() == f"m0 ({down.base_url}) -> m1 ({up.base_url})"


@pytest.mark.parametrize("cooldown_s", [60.0, 0.0])
def test_a_model_that_failed_is_passed_over_by_the_next_calls_while_it_cools_down(cooldown_s: float) -> None:
    """A long outage of the first model: the run's next calls go to the second model at once instead of paying the
    first one's retries each time (cooldown 0: every call tries the first model again)."""
    with ReplayServer([ReplayRule("down", status=500, repeat=True)]) as down, \
            ReplayServer([ReplayRule("up", repeat=True)]) as up:
        model, _ = chain(down, up, policy=RetryPolicy(backoff_s=0.01, backoff_max_s=0.05, cooldown_s=cooldown_s),
                         cooldowns=ModelCooldowns(), max_retries=2)
        assert [model.invoke("hello").content for _ in range(3)] == ["up"] * 3
    assert len(down.requests) == (3 if cooldown_s else 9) and len(up.requests) == 3


def test_a_model_cooling_down_is_still_asked_when_every_other_one_fails() -> None:
    cooldowns = ModelCooldowns()
    with ReplayServer([ReplayRule("down", status=500), ReplayRule("back", repeat=True)]) as flaky, \
            ReplayServer([ReplayRule("down too", status=503, repeat=True)]) as down:
        model, chosen = chain(flaky, down, cooldowns=cooldowns, max_retries=0)
        with pytest.raises(Exception, match="down too"):
            model.invoke("one")  # both failed: both cool down
        assert cooldowns.remaining_s(chosen) > 0
        assert model.invoke("two").content == "back"  # all cooling: still asked, in chain order
        assert cooldowns.remaining_s(chosen) == 0.0  # it answered: no longer passed over
    assert len(flaky.requests) == 2 and len(down.requests) == 1


def test_a_rejected_key_is_not_retried_but_the_next_model_is_asked() -> None:
    with ReplayServer([ReplayRule("bad key", status=401, repeat=True)]) as refused, \
            ReplayServer([ReplayRule("ok")]) as up:
        model, _ = chain(refused, up, max_retries=2)
        assert model.invoke("hello").content == "ok"
    assert len(refused.requests) == 1


def test_a_request_no_model_takes_is_raised_at_once() -> None:
    with ReplayServer([ReplayRule("bad request", status=400, repeat=True)]) as first, \
            ReplayServer([ReplayRule("never asked")]) as second:
        model, _ = chain(first, second, max_retries=2)
        with pytest.raises(Exception) as info:
            model.invoke("hello")
    assert getattr(info.value, "status_code", None) == 400  # callers (the critic's schema fallback) see it as is
    assert len(first.requests) == 1 and not second.requests


def test_a_chain_down_throughout_raises_its_last_error_naming_every_model() -> None:
    with ReplayServer([ReplayRule("overloaded", status=503, repeat=True)]) as a, \
            ReplayServer([ReplayRule("gone", status=503, repeat=True)]) as b:
        model, chosen = chain(a, b, max_retries=1)
        with pytest.raises(Exception) as info:
            model.invoke("hello")
    assert len(a.requests) == 2 and len(b.requests) == 2
    assert llm_failure(info.value, ModelPlan((chosen,))) == (
        f"the LLM 'm1' at {b.base_url} failed with a server error: HTTP 503, gone (2 attempts); "
        "every model of the chain failed: m0, m1")


def _most_in_window(arrivals: list[float], rate_per_s: float, burst: float) -> float:
    """The largest excess of requests over what the limit allows in any window [t_i, t_j] (<= 0: under it)."""
    times = sorted(arrivals)
    return max((j - i + 1) - (burst + rate_per_s * (times[j] - times[i]))
               for i in range(len(times)) for j in range(i, len(times)))


def test_parallel_calls_share_one_provider_limit_and_stay_under_it() -> None:
    # 240 requests a minute: 4 a second, at most one second's share (4) at once; 10 calls from 5 threads
    with ReplayServer([ReplayRule("ok", repeat=True)]) as server:
        limiters = RunLimiters({server.base_url: ProviderLimits(requests_per_minute=240)})
        translator, _ = chain(server, limiters=limiters)
        critic, _ = chain(server, limiters=limiters)  # another agent's chain: the same provider, the same limiter
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda i: (translator if i % 2 else critic).invoke(f"call {i}").content,
                                    range(10)))
    assert answers == ["ok"] * 10
    arrivals = server.arrivals
    assert max(arrivals) - min(arrivals) >= (10 - 4) / 4 - 0.1  # unlimited, all 10 would arrive at once
    assert _most_in_window(arrivals, 4.0, 4.0) <= 1.0  # one request of slack for the network's jitter


def test_max_concurrent_requests_of_a_provider() -> None:
    with ReplayServer([ReplayRule("ok", repeat=True, delay_s=0.3)]) as server:
        limiters = RunLimiters({server.base_url: ProviderLimits(max_concurrent=2)})
        model, _ = chain(server, limiters=limiters)
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda i: model.invoke(f"call {i}"), range(6)))
    times = sorted(server.arrivals)
    assert all(times[i + 2] - times[i] >= 0.25 for i in range(len(times) - 2))  # never 3 within one answer's time


def test_tokens_per_minute_are_estimated_then_corrected() -> None:
    now = [0.0]
    limiter = ProviderLimiter("p", ProviderLimits(tokens_per_minute=600), clock=lambda: now[0],
                              sleep=lambda s: now.__setitem__(0, now[0] + s))
    with limiter.admit(30) as big:  # larger than the bucket (10 tokens a second): waits for a full one, then owes
        pass
    assert now[0] == 0.0
    with limiter.admit(5):  # the 20 tokens owed, then 5: 2.5 s
        pass
    assert now[0] == pytest.approx(2.5)
    big.settle(5)  # the answer reported 5 tokens, not 30: 25 come back (up to the bucket's size)
    with limiter.admit(10):
        pass
    assert now[0] == pytest.approx(2.5)
    assert RunLimiters({"p": ProviderLimits()}).for_provider("p") is None  # no limits: no limiter


def test_a_reply_from_a_fallback_is_charged_at_the_fallbacks_prices() -> None:
    """The run's budget prices a reply as the model that answered, as the trace and the report do."""
    from langchain_core.messages import AIMessage

    from kernelwright.agents.context import NamedModel
    from kernelwright.agents.model_chain import ANSWERED_BY
    from kernelwright.agents.proposals import reply_spend

    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "total_tokens": 2_000_000}
    model = NamedModel("first", llm=None, price_in_per_mtok=2.0, price_out_per_mtok=8.0,
                       chain_prices={"second": (0.4, 1.6)})
    by_first = AIMessage("x", usage_metadata=usage, response_metadata={ANSWERED_BY: "first"})
    by_second = AIMessage("x", usage_metadata=usage, response_metadata={ANSWERED_BY: "second"})
    assert reply_spend(by_first, model).cost_usd == 10.0
    assert abs(reply_spend(by_second, model).cost_usd - 2.0) < 1e-9
