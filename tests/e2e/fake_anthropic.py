"""A scripted stand-in for the Anthropic Messages API, served on loopback for the e2e tests.

Why: the e2e test drives the real Claude Code CLI, which needs a model. This fake plays the
model's side from a fixed list of turns and records every request body, so a test can read
exactly what the CLI sent back after a hook answered (tool_result text, is_error flags).

A turn is picked without state: a request holding N assistant messages gets turn N. Retries
and side requests therefore cannot knock the script out of step. Requests that carry no
`tools` (title generation and similar housekeeping) get a short text reply and no turn.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODEL_ID = "claude-sonnet-4-5-20250929"
SIDE_REPLY = "ok"
DEFAULT_REPLY = "Done."


@dataclass(frozen=True)
class ToolUse:
    """One tool call the scripted model makes; `id` is fixed so tests can find its result."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Turn:
    """One assistant message: optional text, then zero or more tool calls."""

    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()

    def blocks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.text or not self.tool_uses:
            out.append({"type": "text", "text": self.text})
        out.extend(
            {"type": "tool_use", "id": u.id, "name": u.name, "input": u.input}
            for u in self.tool_uses
        )
        return out


@dataclass
class Recorded:
    """One request the fake received; `turn` is the script index it was answered with."""

    method: str
    path: str
    body: Any
    turn: int | None = None


@dataclass
class _State:
    turns: list[Turn]
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def record(self, rec: Recorded) -> None:
        with self.lock:
            self.requests.append(rec)

    def new_id(self, prefix: str) -> str:
        with self.lock:
            return f"{prefix}_fake{next(self.ids):06d}"


def _usage(output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": 100,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


class _Handler(BaseHTTPRequestHandler):
    """Routes: POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models; else 404."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-anthropic/1"
    # An idle connection must not pin a handler thread, or server_close() would block on it.
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: pytest captures stderr, and the request log is kept in memory anyway."""

    # --- plumbing -------------------------------------------------------------------------
    def _read_json(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", self.server.state.new_id("req"))
        # One request per connection keeps every handler thread short-lived.
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _not_found(self, path: str) -> None:
        self._send_json(
            404,
            {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}},
        )

    # --- routes ---------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.server.state.record(Recorded("HEAD", self.path, None))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        self.server.state.record(Recorded("GET", self.path, None))
        model = {
            "type": "model",
            "id": MODEL_ID,
            "display_name": "Claude Sonnet 4.5",
            "created_at": "2025-09-29T00:00:00Z",
        }
        if path == "/v1/models":
            listing = {
                "data": [model],
                "has_more": False,
                "first_id": MODEL_ID,
                "last_id": MODEL_ID,
            }
            self._send_json(200, listing)
        elif path.startswith("/v1/models/"):
            self._send_json(200, {**model, "id": path.rsplit("/", 1)[1]})
        else:
            self._not_found(path)

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        body = self._read_json()
        if path == "/v1/messages/count_tokens":
            self.server.state.record(Recorded("POST", self.path, body))
            self._send_json(200, {"input_tokens": 1000})
        elif path == "/v1/messages" and isinstance(body, dict):
            self._messages(body)
        else:
            self.server.state.record(Recorded("POST", self.path, body))
            self._not_found(path)

    def _messages(self, body: dict[str, Any]) -> None:
        state = self.server.state
        turn_no: int | None = None
        if body.get("tools"):
            messages = body.get("messages") or []
            turn_no = sum(1 for m in messages if m.get("role") == "assistant")
            turn = state.turns[turn_no] if turn_no < len(state.turns) else Turn(DEFAULT_REPLY)
        else:
            turn = Turn(SIDE_REPLY)
        state.record(Recorded("POST", self.path, body, turn_no))
        blocks = turn.blocks()
        message = {
            "id": state.new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or MODEL_ID,
            "content": blocks,
            "stop_reason": "tool_use" if turn.tool_uses else "end_turn",
            "stop_sequence": None,
            "usage": _usage(10),
        }
        if body.get("stream"):
            self._stream(message)
        else:
            self._send_json(200, message)

    def _stream(self, message: dict[str, Any]) -> None:
        """Server-sent events in the order the Anthropic SDK's stream parser expects."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", self.server.state.new_id("req"))
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(name: str, data: dict[str, Any]) -> None:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start = {**message, "content": [], "stop_reason": None, "usage": _usage(1)}
        event("message_start", {"type": "message_start", "message": start})
        event("ping", {"type": "ping"})
        for i, block in enumerate(message["content"]):
            if block["type"] == "tool_use":
                opening = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                opening = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            event(
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": opening},
            )
            event(
                "content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}
            )
            event("content_block_stop", {"type": "content_block_stop", "index": i})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        )
        event("message_stop", {"type": "message_stop"})
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    # Join handler threads on close so no socket outlives the test (filterwarnings=error).
    daemon_threads = False
    block_on_close = True

    def __init__(self, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeAnthropic:
    """Context manager running the fake on a free loopback port in a background thread."""

    def __init__(self, turns: list[Turn]) -> None:
        self._state = _State(list(turns))
        self._server = _Server(self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-anthropic",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def model_requests(self) -> list[Recorded]:
        """The scripted-thread requests (those with `tools`), i.e. the agent loop's turns."""
        return [r for r in self.requests if r.turn is not None]

    def __enter__(self) -> FakeAnthropic:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
