"""LangSmith: traces go out only when a key is set; otherwise nothing is attempted, even with the tracing flag on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.tracers.langchain import LangChainTracer

from kernelwright.agents.context import RunSettings
from kernelwright.graphs.event_callbacks import GraphEventHandler
from kernelwright.graphs.tracing import langsmith_settings, observe_run
from kernelwright.run import optimize
from support.graph_fakes import PROBLEM, FakeEvaluator, answer, scripted

VARIABLES = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING",
             "LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT", "LANGSMITH_PROJECT", "LANGCHAIN_PROJECT")


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((self.command, self.path, self.rfile.read(length) if length else b""))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = _any


@pytest.fixture
def fake_langsmith(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list]]:
    """A loopback stand-in for the LangSmith API that records every request."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _tiny_run(runs: Path, run_id: str) -> None:
    settings = RunSettings(generations=1, candidates_per_generation=1, screen=False, critic=False, profile=False)
    optimize(PROBLEM, runs_dir=runs, run_id=run_id, settings=settings, llm=scripted(answer(1.2)),
             evaluator=FakeEvaluator(), plugins=(), offline=False)


def test_settings_come_from_the_key_and_respect_an_explicit_off() -> None:
    assert langsmith_settings({}) is None
    assert langsmith_settings({"LANGSMITH_TRACING": "true"}) is None  # a flag without a key: nothing
    on = langsmith_settings({"LANGCHAIN_API_KEY": "k", "LANGCHAIN_PROJECT": "p", "LANGCHAIN_ENDPOINT": "http://x"})
    assert on is not None and (on.api_key, on.project, on.endpoint) == ("k", "p", "http://x")
    assert langsmith_settings({"LANGSMITH_API_KEY": "k"}).project == "kernelwright"
    assert langsmith_settings({"LANGSMITH_API_KEY": "k", "LANGSMITH_TRACING": "false"}) is None


def test_without_a_key_no_tracer_is_configured(tmp_path: Path) -> None:
    recorder = observe_run(tmp_path, "r", env={"LANGSMITH_TRACING": "true"})
    callbacks = recorder.graph_config()["callbacks"]
    assert len(callbacks) == 1 and isinstance(callbacks[0], GraphEventHandler)
    assert not any(isinstance(c, LangChainTracer) for c in callbacks)


def test_with_a_key_the_tracer_carries_the_run_tags(fake_langsmith, tmp_path: Path) -> None:
    recorder = observe_run(tmp_path, "r7", env={"LANGSMITH_API_KEY": "k", "LANGSMITH_PROJECT": "kw-tests",
                                                "LANGSMITH_ENDPOINT": fake_langsmith[0]})
    config = recorder.graph_config()
    (tracer,) = [c for c in config["callbacks"] if isinstance(c, LangChainTracer)]
    assert tracer.project_name == "kw-tests" and "kernelwright-run:r7" in tracer.tags
    assert "kernelwright-run:r7" in config["tags"] and config["metadata"]["kernelwright_run_id"] == "r7"


def test_traces_are_posted_when_a_key_is_set(fake_langsmith, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url, received = fake_langsmith
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    _tiny_run(tmp_path, "traced-run")
    posts = [body for method, path, body in received if method == "POST" and path.startswith("/runs")]
    assert posts, received
    assert any(b"kernelwright-run:traced-run" in body for body in posts)  # the run's tag reached the server
    assert any(b"translate" in body for body in posts)  # node runs are in the trace


def test_nothing_is_posted_without_a_key_even_with_the_flag_on(fake_langsmith, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    url, received = fake_langsmith
    monkeypatch.setenv("LANGSMITH_TRACING", "true")  # langchain alone would trace on this
    monkeypatch.setenv("LANGSMITH_ENDPOINT", url)
    _tiny_run(tmp_path, "quiet-run")
    time.sleep(0.5)  # a background tracer would have flushed by now
    assert received == []
    assert (tmp_path / "quiet-run" / "events.jsonl").exists()  # the local record is still written
