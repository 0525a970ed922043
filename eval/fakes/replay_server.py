"""A local OpenAI-compatible chat server that replays scripted answers.

Tests and scripted GPU runs point the real langchain-openai client at it
(OPENAI_BASE_URL=http://127.0.0.1:PORT/v1), so the whole HTTP path is real while
the answers are fixed. Answers come from a script: a list consumed in order,
optionally keyed by a substring that must appear in the request's last user
message. Every request is recorded for assertions. Loopback only.

    with ReplayServer([ReplayRule(answer="```python\\n...```", when="softmax")]) as server:
        ChatOpenAI(base_url=server.base_url, api_key="test", model="replay").invoke("...softmax...")

Run standalone: python -m kernelwright.eval.fakes.replay_server SCRIPT.json [--port N]
(SCRIPT.json: [{"answer": "...", "when": "optional substring", "repeat": false}, ...]).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal


@dataclass
class ReplayRule:
    answer: str
    when: str | None = None  # substring of the last user message that selects this rule
    repeat: bool = False  # keep the rule after it is used
    delay_s: float = 0.0  # simulated latency
    status: int = 200  # an HTTP error status simulates an outage (the answer becomes the error message)
    retry_after: str | None = None  # a Retry-After header sent with an error status: seconds or an HTTP date
    # "truncate": the answer is cut off mid-body (a JSON body shorter than its Content-Length, or a stream that
    # stops before its end) and the connection closed; "garbage": a 200 whose body is not a chat completion
    fault: Literal["truncate", "garbage"] | None = None


@dataclass
class ReplayScript:
    rules: list[ReplayRule]
    fallback: str = "I have no scripted answer for this request."
    requests: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request's arrival
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_for(self, request: dict[str, Any]) -> ReplayRule | None:
        last_user = next((m.get("content", "") for m in reversed(request.get("messages", []))
                          if m.get("role") == "user"), "")
        text = last_user if isinstance(last_user, str) else json.dumps(last_user)
        with self.lock:
            self.requests.append(request)
            self.arrivals.append(time.monotonic())
            for i, rule in enumerate(self.rules):
                if rule.when is None or rule.when in text:
                    if not rule.repeat:
                        self.rules.pop(i)
                    return rule
        return None


def _usage(request: dict[str, Any], answer: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4 + 1
    completion = len(answer) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (its timeout) before a delayed answer came: expected, not worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_version = "kernelwright-replay/1"
    script: ReplayScript  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read the recorded requests
        return

    def _send_json(self, status: int, body: dict[str, Any], *, headers: dict[str, str] | None = None,
                   truncate: bool = False) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw[:len(raw) // 2] if truncate else raw)
        if truncate:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "replay", "object": "model", "owned_by": "kw"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length", "0"))
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "body is not JSON"}})
            return
        rule = self.script.answer_for(request)
        answer = rule.answer if rule is not None else self.script.fallback
        if rule is not None and rule.delay_s:
            time.sleep(rule.delay_s)
        if rule is not None and rule.status != 200:
            headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
            self._send_json(rule.status, {"error": {"message": answer or "simulated outage", "type": "server_error"}},
                            headers=headers)
            return
        fault = rule.fault if rule is not None else None
        if fault == "garbage":
            raw = b"<html><body>502 Bad Gateway</body></html> {{{ not JSON"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        model = request.get("model", "replay")
        if request.get("stream"):
            self._stream(answer, model, truncate=fault == "truncate")
            return
        self._send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": _usage(request, answer),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
        }, truncate=fault == "truncate")

    def _stream(self, answer: str, model: str, *, truncate: bool = False) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        pieces = [answer[i:i + 64] for i in range(0, len(answer), 64)] or [""]
        if truncate:  # the first piece only, then the connection closes: no finish_reason, no [DONE]
            pieces = pieces[:1]
        for i, piece in enumerate(pieces + ([] if truncate else [None])):
            delta = {"content": piece} if piece is not None else {}
            if i == 0:
                delta["role"] = "assistant"
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None if piece is not None else "stop"}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if truncate:
            self.close_connection = True
            return
        self.wfile.write(b"data: [DONE]\n\n")


class ReplayServer:
    """Serve a ReplayScript on 127.0.0.1 in a background thread (context manager)."""

    def __init__(self, rules: list[ReplayRule], *, port: int = 0, fallback: str | None = None):
        self.script = ReplayScript(list(rules))
        if fallback is not None:
            self.script.fallback = fallback
        handler = type("ReplayHandler", (_Handler,), {"script": self.script})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"  # type: ignore[str-bytes-safe]  # a TCP server: host is a str

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self.script.requests)

    @property
    def arrivals(self) -> list[float]:
        """time.monotonic() of each request's arrival, in order."""
        return list(self.script.arrivals)

    def __enter__(self) -> ReplayServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def load_script(path: str | Path) -> list[ReplayRule]:
    return [ReplayRule(**entry) for entry in json.loads(Path(path).read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve scripted chat answers on 127.0.0.1 (OpenAI-compatible).")
    parser.add_argument("script", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = ReplayServer(load_script(args.script), port=args.port)
    print(f"OPENAI_BASE_URL={server.base_url}", flush=True)
    with server:
        try:
            server.thread.join()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
