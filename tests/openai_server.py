"""A local OpenAI-compatible chat server for tests: ``POST /v1/chat/completions`` with scripted replies.

The real OpenAI API cannot be reached from the test machines, so the judge is tested end to end with the real
``openai`` client talking to this server (stdlib ``http.server``, one thread per connection, on 127.0.0.1 with a free
port). It:

- checks ``Authorization: Bearer <api_key>`` (401 otherwise, with OpenAI's error body);
- answers each request from the script queue first (:meth:`OpenAIServer.script`: e.g. a 429 with ``Retry-After``,
  then a 500), then from :attr:`OpenAIServer.responder` (a function of the request body; by default a fixed
  well-formed judge reply);
- records every attempt (:attr:`OpenAIServer.requests`: path, lower-cased headers, JSON body, status answered,
  arrival and answer times), and the most requests it ever held in flight at once (:attr:`max_in_flight`; a
  reply's ``delay`` keeps a request in flight that long).

Run it by hand with ``python tests/openai_server.py --port 8766 --reply '{"score": [7, 9], "reasoning": "ok"}'``
(key ``sk-local-test``), then ``OPENAI_API_KEY=sk-local-test`` and ``--judge-base-url http://127.0.0.1:8766/v1``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_API_KEY = "sk-local-test"
DEFAULT_REPLY = '{"score": [7, 9], "reasoning": "The edit follows the instruction and keeps the rest."}'
DEFAULT_USAGE = {"prompt_tokens": 1100, "completion_tokens": 25, "total_tokens": 1125}
INSTRUCTION = re.compile(r"Editing instruction: (.*)\Z", re.DOTALL)


@dataclass
class Reply:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        content: The assistant message (status 200).
        usage: The ``usage`` object (status 200).
        headers: Extra response headers (``Retry-After``...).
        delay: Seconds to hold the request before answering.
        error: Error message (status != 200).
    """

    status: int = 200
    content: str | None = DEFAULT_REPLY
    usage: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    error: str = "scripted error"

    @classmethod
    def failure(cls, status: int, retry_after: str | None = None, message: str = "scripted error") -> Reply:
        """An error answer, optionally with ``Retry-After``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=status, content=None, headers=headers, error=message)


@dataclass
class RecordedRequest:
    """One attempt the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    status: int = 0
    arrived: float = 0.0
    answered: float = 0.0

    @property
    def retry_count(self) -> int:
        """The client's ``x-stainless-retry-count`` (0 for a first attempt)."""
        return int(self.headers.get("x-stainless-retry-count", "0"))


def instruction_of(body: dict[str, Any]) -> str:
    """The editing instruction of a judge request (the text after ``Editing instruction: `` in the prompt)."""
    for part in body["messages"][0]["content"]:
        if part.get("type") == "text":
            match = INSTRUCTION.search(part["text"])
            if match:
                return match.group(1)
    raise ValueError("no 'Editing instruction:' in the request's text")


class OpenAIServer:
    """The server; use as a context manager (``with OpenAIServer() as server: server.base_url``)."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, port: int = 0) -> None:
        self.api_key = api_key
        self.responder: Callable[[dict[str, Any]], Reply] = lambda body: Reply()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The ``base_url`` of a client (``http://127.0.0.1:<port>/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order (then :attr:`responder` again)."""
        with self._lock:
            self._queue.extend(replies)

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat-completion attempts received so far."""
        with self._lock:
            return [request for request in self.requests if request.path.endswith("/chat/completions")]

    def reset(self) -> None:
        """Forget recorded requests, scripted replies and the in-flight peak."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.max_in_flight = 0

    def start(self) -> OpenAIServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------------------
    def _answer(self, record: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str], float]:
        """``(status, body, headers, delay)`` for a recorded request."""
        if record.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _error_body("Incorrect API key provided.", "invalid_api_key"), {}, 0.0
        if record.body is None or not record.path.endswith("/chat/completions"):
            return 404, _error_body(f"unknown endpoint {record.path}", "not_found"), {}, 0.0
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
            self._counter += 1
            number = self._counter
        if reply is None:
            reply = self.responder(record.body)
        if reply.status != 200:
            return reply.status, _error_body(reply.error, "scripted"), reply.headers, reply.delay
        body = {
            "id": f"chatcmpl-local-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": record.body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": reply.usage,
        }
        return 200, body, reply.headers, reply.delay

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
                pass

            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                try:
                    body = json.loads(data) if data else None
                except json.JSONDecodeError:
                    body = None
                record = RecordedRequest(
                    self.path, {key.lower(): value for key, value in self.headers.items()}, body, arrived=arrived
                )
                with server._lock:
                    server.requests.append(record)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, headers, delay = server._answer(record)
                    if delay:
                        time.sleep(delay)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                record.status = status
                record.answered = time.monotonic()
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(encoded)

        return Handler


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


# ----------------------------------------------------------------------------------------------------------------
# pytest fixture (import it into a test module: ``from openai_server import openai_server_fixture``)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(name="openai_server")
def openai_server_fixture(monkeypatch):
    """A fresh server per test, with ``OPENAI_API_KEY`` set to its key (and ``OPENAI_BASE_URL`` unset)."""
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        yield server


def main() -> None:
    """Serve by hand until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="assistant message of every answer")
    args = parser.parse_args()
    server = OpenAIServer(args.api_key, args.port)
    server.responder = lambda body: Reply(content=args.reply)
    print(f"OpenAI-compatible server on {server.base_url} (key {args.api_key})", flush=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
