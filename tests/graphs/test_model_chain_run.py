"""A run whose proposer is a two-model chain from a config file, through the real langchain-openai client to two
replay servers: the first model's endpoint fails, the run finishes on the second, and its event log and
`kernelwright trace` show the retries and the switch. A chain down throughout stops the run resumably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.cli import app
from kernelwright.config import load_config
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.eval.faults.scripted_run import PROBLEM, LoggingEvaluator, answer, evaluations, settings
from kernelwright.run import LLMRunError, optimize

runner = CliRunner()


def chain_config(tmp_path: Path, first: str, second: str) -> Path:
    path = tmp_path / "kw.toml"
    path.write_text(f'[llm]\nbackoff_s = 0.01\nbackoff_max_s = 0.05\n\n[[agents.proposers]]\n'
                    f'models = ["replay-a@{first}", "replay-b@{second}"]\nmax_retries = 2\n')
    return path


def _events(run_dir: Path, name: str) -> list[dict]:
    return [e for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines()) if e["event"] == name]


def test_the_first_model_down_the_run_finishes_on_the_second_and_the_trace_shows_it(tmp_path: Path) -> None:
    log = tmp_path / "evaluated.log"
    with ReplayServer([ReplayRule("internal error", status=500, repeat=True)]) as down, \
            ReplayServer([ReplayRule(answer(1.4))]) as up:
        config = load_config(chain_config(tmp_path, down.base_url, up.base_url), env={})
        result = optimize(PROBLEM, config=config, runs_dir=tmp_path / "runs", run_id="chain",
                          settings=settings(1, 1), evaluator=LoggingEvaluator(log), offline=False)
    assert result.speedup_vs_eager == 1.4 and len(evaluations(log)) == 1
    assert result.best["model"] == "replay-b"  # the model of the chain that answered, not the first one
    assert len(down.requests) == 3 and [r["model"] for r in up.requests] == ["replay-b"]
    run_dir = tmp_path / "runs" / "chain"
    retries, switches = _events(run_dir, "llm_retry"), _events(run_dir, "llm_fallback")
    assert [(e["model"], e["attempt"], e["of"], e["agent"]) for e in retries] == [
        ("replay-a", 1, 3, "translator"), ("replay-a", 2, 3, "translator")]
    assert "Error code: 500" in retries[0]["error"] and retries[0]["wait_s"] <= 0.05
    assert [(e["model"], e["to_model"], e["to_endpoint"]) for e in switches] == [
        ("replay-a", "replay-b", up.base_url)]
    calls = _events(run_dir, "llm_call")  # every attempt is a call of its own; the failed ones say why
    assert len(calls) == 4 and sum(bool(c.get("error")) for c in calls) == 3

    shown = runner.invoke(app, ["trace", "chain", "--runs-dir", str(tmp_path / "runs")])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "2 LLM retries, 1 model switch" in text
    assert "translator: retry replay-a: attempt 1/3 failed" in text
    assert f"translator: switch replay-a -> replay-b ({down.base_url} failed" in text


def test_the_whole_chain_down_stops_the_run_resumably(tmp_path: Path) -> None:
    log, runs = tmp_path / "evaluated.log", tmp_path / "runs"
    with ReplayServer([ReplayRule("overloaded", status=503, repeat=True)]) as a, \
            ReplayServer([ReplayRule("gone", status=503, repeat=True)]) as b:
        config = load_config(chain_config(tmp_path, a.base_url, b.base_url), env={})
        with pytest.raises(LLMRunError) as info:
            optimize(PROBLEM, config=config, runs_dir=runs, run_id="down", settings=settings(1, 1),
                     evaluator=LoggingEvaluator(log), offline=False)
    assert len(a.requests) == 3 and len(b.requests) == 3
    assert info.value.message == (
        f"run down stopped in node 'translate': the LLM 'replay-b' at {b.base_url} failed with a server error: "
        f"HTTP 503, gone (3 attempts); every model of the chain failed: replay-a, replay-b. Everything evaluated so "
        f"far is saved; once the LLM answers, continue with `kernelwright run {PROBLEM} --resume down --runs-dir "
        f"{runs}`")
    with ReplayServer([ReplayRule("still down", status=503, repeat=True)], port=_port(a.base_url)), \
            ReplayServer([ReplayRule(answer(1.7))], port=_port(b.base_url)) as b_back:
        # no config: the resume uses the chain the run recorded in its run.json
        result = optimize(PROBLEM, config=load_config(env={}), runs_dir=runs, resume="down", settings=settings(1, 1),
                          evaluator=LoggingEvaluator(log), offline=False)
    assert result.speedup_vs_eager == 1.7 and [r["model"] for r in b_back.requests] == ["replay-b"]
    recorded = json.loads((runs / "down" / "run.json").read_text())["llm"]["proposers"][0]
    assert (recorded["model"], recorded["fallbacks"]) == ("replay-a", [f"replay-b@{b.base_url}"])


def _port(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1].split("/")[0])


def test_a_rate_limited_run_stays_under_its_limit(tmp_path: Path) -> None:
    # 120 requests a minute: 2 a second, at most 2 at once; the run asks for 6 candidates, the critic reviews too
    answers = [ReplayRule(answer(1.1 + i / 10, tag=str(i))) for i in range(6)]
    with ReplayServer([*answers, ReplayRule("VERDICT: fine\nDIRECTIONS:\n- none", repeat=True)]) as server:
        cfg = tmp_path / "kw.toml"
        cfg.write_text(f'[llm.providers."{server.base_url}"]\nrequests_per_minute = 120\n\n'
                       f'[[agents.proposers]]\nmodel = "replay"\nbase_url = "{server.base_url}"\n')
        result = optimize(PROBLEM, config=load_config(cfg, env={}), runs_dir=tmp_path / "runs", run_id="limited",
                          settings=settings(1, 6), evaluator=LoggingEvaluator(tmp_path / "log"), offline=False)
    assert result.speedup_vs_eager == 1.6
    times = sorted(server.arrivals)
    assert len(times) >= 6
    assert times[-1] - times[0] >= (len(times) - 2) / 2 - 0.1  # unlimited, they would come as fast as answered
    excess = max((j - i + 1) - (2 + 2 * (times[j] - times[i])) for i in range(len(times)) for j in range(i, len(times)))
    assert excess <= 1.0  # within any window, at most its share plus one second's burst (one of slack for jitter)
