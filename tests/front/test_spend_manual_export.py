"""Issue 22: spend per agent and model (tokens from the endpoint's usage, prices from the config or the default
table, marked as such), a hard cost budget that stops a run and a resume with a larger one that goes on, manual
mode answered by another process through `kernelwright answer`, `kernelwright export` read back against the trace,
and `kernelwright config show` naming each setting's source. The real langchain-openai client over HTTP to the
local replay server wherever an LLM is involved; the evaluator is the CPU fake of the graph tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.agents.prices import DEFAULT_PRICE_MARK, DEFAULT_PRICES_PER_MTOK, resolve_price
from kernelwright.cli import EXIT_BAD_INPUT, app
from kernelwright.eval.exchanges import read_jsonl
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.eval.report import write_report
from kernelwright.run import RunBudget, optimize
from kernelwright.tools.run_folder import RunFolder
from support.graph_fakes import FakeEvaluator, answer
from support.graph_run import LoggingEvaluator
from support.paths import PROBLEMS

PROBLEM = PROBLEMS / "relu_affine.py"
SETTINGS = RunSettings(generations=1, candidates_per_generation=1, screen=False, profile=False, critic=False,
                       offline_seeds=False, max_repairs=0)
runner = CliRunner()


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def expected_usage(request: dict, text: str) -> tuple[int, int]:
    """What the replay server reports as usage for a request and its answer (its `usage` field)."""
    prompt = sum(len(str(m.get("content", ""))) for m in request["messages"]) // 4 + 1
    return prompt, len(text) // 4 + 1


def llm_calls(run_dir: Path) -> list[dict]:
    return [e for e in RunFolder(run_dir).read_events()[0] if e["event"] == "llm_call"]


def test_spend_per_agent_and_model_uses_the_endpoints_usage_and_the_configured_or_default_price(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    text = answer(1.4)
    with ReplayServer([ReplayRule(text, repeat=True)]) as server:
        configured = ModelSettings(model="replay-a", base_url=server.base_url, price_in_per_mtok=1000.0,
                                   price_out_per_mtok=2000.0)
        optimize(PROBLEM, runs_dir=tmp_path, run_id="priced", settings=SETTINGS, models=[configured],
                 evaluator=LoggingEvaluator(tmp_path / "a.log", None), archive=None)
        optimize(PROBLEM, runs_dir=tmp_path, run_id="default", settings=SETTINGS,
                 models=[ModelSettings(model="gpt-4o-mini", base_url=server.base_url)],
                 evaluator=LoggingEvaluator(tmp_path / "b.log", None), archive=None)
    first, second = server.requests
    (call,) = llm_calls(tmp_path / "priced")
    tokens_in, tokens_out = expected_usage(first, text)
    assert (call["agent"], call["model"], call["input_tokens"], call["output_tokens"]) == (
        "translator", "replay-a", tokens_in, tokens_out)
    assert call["cost_usd"] == pytest.approx((tokens_in * 1000.0 + tokens_out * 2000.0) / 1e6)

    (call,) = llm_calls(tmp_path / "default")
    price_in, price_out = DEFAULT_PRICES_PER_MTOK["gpt-4o-mini"]
    tokens_in, tokens_out = expected_usage(second, text)
    assert call["cost_usd"] == pytest.approx((tokens_in * price_in + tokens_out * price_out) / 1e6)
    recorded = RunFolder(tmp_path / "default").read_info().data["prices"]
    assert recorded["gpt-4o-mini"]["source"] == "default"

    html = write_report(tmp_path / "priced").read_text()
    row = (f"<td>translator</td><td>replay-a</td><td class=num>1</td><td class=num>0</td><td class=num>{tokens_in}"
           f"</td><td class=num>{tokens_out}</td>")
    assert row in html and "$1000 / $2000 per Mtok</td>" in html and DEFAULT_PRICE_MARK not in html
    cost = f"{(tokens_in * 1000.0 + tokens_out * 2000.0) / 1e6:.4f}"
    assert f"<td>{tokens_in + tokens_out:,}</td><td>{cost}</td></tr>" in html  # the candidate's own spend
    html = write_report(tmp_path / "default").read_text()
    assert f"$0.15 / $0.6 per Mtok {DEFAULT_PRICE_MARK}" in html

    listing = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)], env={"COLUMNS": "220"})
    assert listing.exit_code == 0, listing.output
    priced = next(line for line in listing.output.splitlines() if "priced" in line)
    assert f"{(tokens_in * 1000.0 + tokens_out * 2000.0) / 1e6:.4f}" in priced


def test_default_prices_match_dated_names_and_a_configured_price_wins() -> None:
    assert resolve_price("anthropic:claude-sonnet-4-20250514").label() == f"$3 / $15 per Mtok {DEFAULT_PRICE_MARK}"
    assert resolve_price("gpt-4o-mini").price_in_per_mtok == 0.15  # not gpt-4o's: the longest name wins
    assert resolve_price("gpt-4o", 1.0, 0.0).label() == "$1 / $0 per Mtok"
    assert resolve_price("my-local-model").label() == "no price"


def test_a_cost_budget_stops_the_run_cleanly_and_a_resume_with_a_larger_one_goes_on(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    settings = RunSettings(generations=2, candidates_per_generation=2, screen=False, profile=False, critic=False,
                           offline_seeds=False, max_repairs=0, repair_rounds=0)
    log = tmp_path / "evaluated.log"
    with ReplayServer([ReplayRule(answer(1.1 + i / 10), when=None) for i in range(6)]) as server:
        model = ModelSettings(model="replay", base_url=server.base_url, price_in_per_mtok=100.0,
                              price_out_per_mtok=100.0)
        stopped = optimize(PROBLEM, runs_dir=tmp_path, run_id="b1", settings=settings, models=[model],
                           evaluator=LoggingEvaluator(log, None), budget=RunBudget(cost_usd=0.001), archive=None)
        assert len(server.requests) == 1  # the first answer cost more than the budget: no second request
        assert stopped.state["stop_reason"].startswith("LLM cost (USD): ")
        assert stopped.best is not None  # the work done is kept: its candidate was evaluated
        spent_before = stopped.state["spent"]["cost_usd"]
        assert spent_before >= 0.001
        from kernelwright.cli import _budget_resume

        assert _budget_resume(stopped, PROBLEM, stopped.state["stop_reason"]) == (
            f"; continue with a larger budget: `kernelwright run {PROBLEM} --resume b1 --runs-dir {tmp_path} "
            "--max-cost-usd N`")
        again = optimize(PROBLEM, runs_dir=tmp_path, resume="b1", settings=settings, models=[model],
                         evaluator=LoggingEvaluator(log, None), budget=RunBudget(cost_usd=0.001), archive=None)
        assert len(server.requests) == 1 and again.state["stop_reason"] == stopped.state["stop_reason"]  # not raised

        resumed = optimize(PROBLEM, runs_dir=tmp_path, resume="b1", settings=settings, models=[model],
                           evaluator=LoggingEvaluator(log, None), budget=RunBudget(cost_usd=1.0), archive=None)
    assert len(server.requests) > 1
    assert resumed.state["stop_reason"].startswith("generations")
    assert resumed.state["spent"]["cost_usd"] > spent_before
    assert len(log.read_text().splitlines()) == len(resumed.state["candidates"])  # nothing evaluated twice


def answer_by_cli(runs_dir: Path, run_id: str, workdir: Path, stop: threading.Event, answered: list[str]) -> None:
    """Another program answering a manual run: a subprocess running `kernelwright answer` for each waiting prompt."""
    folder = RunFolder(runs_dir / run_id).manual
    while not stop.is_set():
        waiting = folder.pending()
        if not waiting:
            time.sleep(0.1)
            continue
        prompt = waiting[0]
        file = workdir / f"answer-{prompt.number}.md"
        file.write_text(answer(1.7))
        done = subprocess.run([sys.executable, "-m", "kernelwright.cli", "answer", run_id, str(file),
                               "--runs-dir", str(runs_dir)], capture_output=True, text=True, cwd=workdir, timeout=120)
        answered.append(done.stdout + done.stderr)


def test_manual_mode_waits_for_answers_given_by_another_process_and_finishes_without_a_key(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    runs, work = tmp_path / "runs", tmp_path / "work"
    work.mkdir()
    told: list[str] = []
    stop, answered = threading.Event(), []
    helper = threading.Thread(target=answer_by_cli, args=(runs, "m1", work, stop, answered), daemon=True)
    helper.start()
    try:
        result = optimize(PROBLEM, runs_dir=runs, run_id="m1", settings=SETTINGS, manual=True,
                          evaluator=LoggingEvaluator(tmp_path / "evaluated.log", None), archive=None,
                          on_manual_prompt=lambda prompt, path, command: told.append(command))
    finally:
        stop.set()
        helper.join(30)
    assert result.best is not None and result.best["speedup_vs_eager"] == 1.7 and result.best["model"] == "manual"
    assert answered and answered[0].startswith("answered prompt 001 (translate): "), answered
    assert told == [f"kernelwright answer m1 FILE --prompt 001 --runs-dir {runs}"]
    prompt_md = (runs / "m1" / "manual" / "001-translate.prompt.md").read_text()
    assert prompt_md.startswith("# kernelwright prompt 001 (node: translate")
    assert "kernelwright answer m1 FILE --prompt 001" in prompt_md and "## human" in prompt_md
    events = RunFolder(runs / "m1").read_events()[0]
    assert [e["number"] for e in events if e["event"] == "manual_prompt"] == [1]
    (call,) = [e for e in events if e["event"] == "llm_call"]
    assert call["model"] == "manual" and call["response"] == answer(1.7)


def test_answer_bad_input_names_what_and_where(tmp_path: Path) -> None:
    from kernelwright.tools.run_folder import ManualPrompt

    run_dir = tmp_path / "r1"
    RunFolder(run_dir).update_info(run_id="r1")
    empty, text = tmp_path / "empty.md", tmp_path / "a.md"
    empty.write_text("  \n")
    text.write_text("hello")
    args = ["--runs-dir", str(tmp_path)]
    result = runner.invoke(app, ["answer", "r1", str(text), *args])
    assert result.exit_code == EXIT_BAD_INPUT and "the run has no manual prompts" in result.output
    folder = RunFolder(run_dir).manual
    folder.write_prompt(ManualPrompt(1, "translate", ({"role": "human", "content": "q"},)), "q")
    result = runner.invoke(app, ["answer", "r1", str(empty), *args])
    assert result.exit_code == EXIT_BAD_INPUT and f"{empty}: the answer is empty" in " ".join(result.output.split())
    result = runner.invoke(app, ["answer", "r1", str(text), "--prompt", "7", *args])
    assert result.exit_code == EXIT_BAD_INPUT and "no prompt 007 (prompts: 001)" in result.output
    trace = runner.invoke(app, ["trace", "r1", *args], env={"COLUMNS": "300"})
    assert "waiting for an answer: prompt 001 (translate)" in trace.output
    assert "answer with `kernelwright answer r1 FILE --prompt 001`" in trace.output
    assert runner.invoke(app, ["answer", "r1", str(text), *args]).exit_code == 0
    assert (run_dir / "manual" / "001-translate.answer.md").read_text() == "hello"
    result = runner.invoke(app, ["answer", "r1", str(text), *args])
    assert result.exit_code == EXIT_BAD_INPUT and "no prompt waits for an answer (all 1 are answered)" in result.output
    assert "Traceback" not in result.output


def test_export_round_trips_every_exchange_with_its_candidates_verdict(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=2, screen=False, profile=False, critic=False,
                           offline_seeds=False, max_repairs=0, repair_rounds=0)
    with ReplayServer([ReplayRule(answer(1.3)), ReplayRule(answer(1.0, outcome="compile_error"))]) as server:
        optimize(PROBLEM, runs_dir=tmp_path, run_id="e1", settings=settings,
                 models=[ModelSettings(model="replay", base_url=server.base_url)],
                 evaluator=FakeEvaluator(), archive=None)
    out = tmp_path / "e1.jsonl"
    result = runner.invoke(app, ["export", "e1", "--format", "jsonl", "--out", str(out), "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records, calls = read_jsonl(out), llm_calls(tmp_path / "e1")
    assert len(records) == len(calls) == 2
    for record, call in zip(records, calls):
        assert record["messages"] == call["messages"] and record["answer"] == call["response"]
        assert (record["model"], record["temperature"], record["input_tokens"], record["output_tokens"]) == (
            call["model"], call["temperature"], call["input_tokens"], call["output_tokens"])
        assert record["agent"] == "translator" and record["candidate"]["id"] == call["candidate_id"]
        assert record["candidate"]["relation"] == "produced"
    reports = {c.candidate_id(): c.read_report() for c in RunFolder(tmp_path / "e1").candidates()}
    for record in records:
        report = reports[record["candidate"]["id"]]
        assert (record["candidate"]["status"], record["candidate"]["speedup_vs_eager"]) == (
            report.status, report.speedup_vs_eager)
    assert sorted((r["candidate"]["status"], r["candidate"]["reason"], r["candidate"]["speedup_vs_eager"])
                  for r in records) == [("passed", None, 1.3), ("rejected", "compile_error", None)]

    bad = runner.invoke(app, ["export", "e1", "--format", "csv", "--runs-dir", str(tmp_path)])
    assert bad.exit_code == EXIT_BAD_INPUT and "--format 'csv': not a format export writes (formats: jsonl)" in bad.output
    missing = runner.invoke(app, ["export", "nope", "--runs-dir", str(tmp_path)])
    assert missing.exit_code == EXIT_BAD_INPUT and "no run 'nope'" in missing.output


def test_config_show_names_the_source_of_a_default_a_file_value_an_env_var_and_a_flag(tmp_path: Path) -> None:
    config = tmp_path / "kw.toml"
    config.write_text("[harness]\nn_trials = 9\n[budget]\ncost_usd = 2.5\n")
    result = runner.invoke(app, ["config", "show", "--json", "--config", str(config), "--runs-dir", str(tmp_path)],
                           env={"KERNELWRIGHT_TIMING__MIN_TRIALS": "42"})
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows["harness.n_trials"] == {"value": 9, "source": str(config)}
    assert rows["budget.cost_usd"] == {"value": 2.5, "source": str(config)}
    assert rows["timing.min_trials"] == {"value": 42, "source": "KERNELWRIGHT_TIMING__MIN_TRIALS"}
    assert rows["runs_dir"] == {"value": str(tmp_path), "source": "--runs-dir"}
    assert rows["harness.base_seed"]["source"] == "default"
    table = runner.invoke(app, ["config", "show", "--config", str(config)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and any("n_trials" in line and str(config) in line for line in table.output.splitlines())
    broken = tmp_path / "bad.toml"
    broken.write_text("[harness]\nn_trials = 0\n")
    result = runner.invoke(app, ["config", "show", "--config", str(broken)])
    assert result.exit_code == EXIT_BAD_INPUT and "harness.n_trials" in result.output
    assert "Traceback" not in result.output


@pytest.mark.nvcc
def test_cli_manual_run_stops_on_ctrl_c_while_waiting_and_resumes_manual_reusing_the_prompt(
        tmp_path: Path, build_cache: Path) -> None:
    import os
    import signal

    runs, work = tmp_path / "runs", tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL")}
    env.update({"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a",
                "COLUMNS": "300"})
    args = [sys.executable, "-m", "kernelwright.cli", "run", str(PROBLEM), "--runs-dir", str(runs), "--no-archive",
            "--generations", "1", "--candidates", "1", "--no-screen"]
    proc = subprocess.Popen([*args, "--manual"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/manual/001-translate.prompt.json")):
        time.sleep(0.2)
    (prompt_json,) = runs.glob("*/manual/001-translate.prompt.json")
    run_id = prompt_json.parent.parent.name
    time.sleep(0.5)  # the run is waiting now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    text = " ".join((out + err).split())
    assert f"waiting for an answer to prompt 001 (translate): {prompt_json.with_suffix('.md')}" in text
    assert (f"run {run_id} interrupted after node 'describe'. Everything evaluated so far is saved; continue with "
            f"`kernelwright run {PROBLEM} --resume {run_id} --runs-dir {runs}`") in text
    assert "Traceback" not in text
    assert RunFolder(runs / run_id).read_info().status == "interrupted"

    stop, answered = threading.Event(), []
    helper = threading.Thread(target=answer_by_cli, args=(runs, run_id, work, stop, answered), daemon=True)
    helper.start()
    try:  # no --manual: a manual run resumes manual
        resumed = subprocess.run([*args, "--resume", run_id], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=300)
    finally:
        stop.set()
        helper.join(30)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr  # compiled; verifying needs a GPU
    assert answered and answered[0].startswith("answered prompt 001 (translate)")
    assert sorted(p.name for p in (runs / run_id / "manual").glob("*.prompt.json")) == ["001-translate.prompt.json"]


def test_each_model_of_a_fallback_chain_is_priced_and_has_its_row_in_the_spend_table(
        tmp_path: Path, no_llm_env: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on: the chain's first model is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    text = answer(1.2)
    with ReplayServer([ReplayRule(text, repeat=True)]) as server:
        chain = ModelSettings(model="local-a", base_url=down, max_retries=0,
                              fallbacks=(f"gpt-4o-mini@{server.base_url}",))
        optimize(PROBLEM, runs_dir=tmp_path, run_id="c1", settings=SETTINGS, models=[chain],
                 evaluator=LoggingEvaluator(tmp_path / "log", None), archive=None)
    failed, answered = llm_calls(tmp_path / "c1")
    assert (failed["model"], bool(failed["error"]), failed["cost_usd"]) == ("local-a", True, 0.0)
    tokens_in, tokens_out = expected_usage(server.requests[0], text)
    price_in, price_out = DEFAULT_PRICES_PER_MTOK["gpt-4o-mini"]
    assert answered["model"] == "gpt-4o-mini"
    assert answered["cost_usd"] == pytest.approx((tokens_in * price_in + tokens_out * price_out) / 1e6)
    html = write_report(tmp_path / "c1").read_text()
    assert "<td>translator</td><td>local-a</td><td class=num>1</td><td class=num>1</td>" in html
    assert "<td>translator</td><td>gpt-4o-mini</td><td class=num>1</td><td class=num>0</td>" in html
    assert f"$0.15 / $0.6 per Mtok {DEFAULT_PRICE_MARK}" in html and "no price" in html
