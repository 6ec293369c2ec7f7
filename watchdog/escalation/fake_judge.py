"""A scripted stand-in for the model APIs the judge calls, served over real HTTP on 127.0.0.1.

Why: the judge must be tested, demonstrated and benchmarked without a network or a paid key,
yet through the real litellm client, so that request building, response parsing, cost lookup
and exception mapping are the code that runs in production. This is therefore a server, not a
mock: it speaks the OpenAI chat-completions API (`POST /v1/chat/completions` and
`/chat/completions`) and the Anthropic messages API (`POST /v1/messages`), answers with
realistic bodies including `usage` token counts (so litellm prices the call), and streams
server-sent events if a client asks for `stream: true`.

Every request must carry the token, as `Authorization: Bearer <token>` (OpenAI) or
`x-api-key: <token>` (Anthropic); it plays the API key the judge is configured with, and
anything else gets a 401 in the provider's error format.

Scripting. Replies are taken from a FIFO, then from the default reply. A reply is:

* a verdict dict (any dict with a "decision" key), sent as the model's JSON text;
* a `str` or `Text(...)`: raw model text, for garbage answers;
* `Status(code, retry_after=...)`: an HTTP error in the provider's format (429, 500, 503...);
* `Delay(seconds, then=reply)`: wait, then answer `then` (the default reply when None);
* `HANG`: never answer; the connection is dropped only when the server stops.

The same replies as JSON (`{"decision": ...}`, `"text"`, `{"text": ...}`, `{"status": 429,
"retry_after": 1}`, `{"delay": 2, "then": ...}`, `{"hang": true}`) drive another process's
server through `POST /_control/script` (a list, or `{"replies": [...], "default": ...,
"reset": true}`); `GET /_control/requests` returns the request log. Both need the token.

`main(argv)` runs it from the command line (`watchdog fake-judge`) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import itertools
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal

HOST = "127.0.0.1"  # loopback only: the fake accepts a shared token and must not face a network
DEFAULT_VERDICT: dict[str, Any] = {
    "decision": "allow",
    "reason": "fake judge: nothing to object to",
    "confidence": 0.9,
}
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key")
_MAX_BODY_BYTES = 16 * 1024 * 1024
_HANDLER_SOCKET_TIMEOUT_S = 30  # an idle client cannot pin a handler thread for longer
_POLL_INTERVAL_S = 0.02  # how soon stop() is noticed (the stdlib's 0.5 s makes tests crawl)

Flavour = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class Text:
    """Raw model output, sent as the assistant's text."""

    text: str


@dataclass(frozen=True)
class Status:
    """An HTTP error answer; a 429 carries a Retry-After header."""

    status: int
    retry_after: float | None = None
    message: str = ""


@dataclass(frozen=True)
class Delay:
    """Wait `seconds`, then answer `then` (None: the default reply)."""

    seconds: float
    then: object = None  # any reply form; normalised by as_reply


@dataclass(frozen=True)
class Hang:
    """Never answer: the client's timeout fires, and the server drops the connection on stop."""


HANG = Hang()
Reply = Text | Status | Delay | Hang


@dataclass(frozen=True)
class Recorded:
    """One request as received; secret headers are left out. `status` is what was answered,
    0 for a request left hanging."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None
    status: int


def as_reply(obj: object) -> Reply:
    """Normalise a Python or JSON-shaped reply (see the module docstring) to a Reply."""
    if isinstance(obj, Delay) and obj.then is not None:
        return Delay(obj.seconds, as_reply(obj.then))  # `then` may be given in a short form
    if isinstance(obj, Text | Status | Delay | Hang):
        return obj
    if isinstance(obj, str):
        return Text(obj)
    if isinstance(obj, Mapping):
        if "decision" in obj:
            return Text(json.dumps(dict(obj)))
        if "text" in obj and isinstance(obj["text"], str):
            return Text(obj["text"])
        if "status" in obj:
            retry = obj.get("retry_after")
            return Status(int(obj["status"]), None if retry is None else float(retry),
                          str(obj.get("message", "")))
        if "delay" in obj:
            then = obj.get("then")
            return Delay(float(obj["delay"]), None if then is None else as_reply(then))
        if obj.get("hang") is True:
            return HANG
    raise ValueError(
        f"not a fake-judge reply: {obj!r}. Use a verdict object (with \"decision\"), a string, "
        '{"text": ...}, {"status": 503}, {"delay": 1.5, "then": ...} or {"hang": true}.'
    )


class _State:
    """What the handler threads share, behind one lock."""

    def __init__(self, token: str, default: Reply, latency_s: float, verbose: bool) -> None:
        self.token = token
        self.default = default
        self.latency_s = latency_s
        self.verbose = verbose
        self.script: collections.deque[Reply] = collections.deque()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ids = itertools.count(1)

    def next_reply(self) -> Reply:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def new_id(self) -> int:
        with self.lock:
            return next(self.ids)

    def authorized(self, headers: Mapping[str, str]) -> bool:
        supplied = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            supplied = supplied or auth[7:].strip()
        return bool(supplied) and hmac.compare_digest(supplied.encode(), self.token.encode())

    def record(self, rec: Recorded) -> None:
        with self.lock:
            self.requests.append(rec)
        if self.verbose:
            print(f"{rec.method} {rec.path} model={rec.model} -> {rec.status}", file=sys.stderr,
                  flush=True)


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads, so server_close() joins them and no socket outlives stop().
    daemon_threads = False
    block_on_close = True

    def __init__(self, port: int, state: _State) -> None:
        self.state = state
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client gave up (its timeout fired): expected in the slow and hang cases
        super().handle_error(request, client_address)


def _tokens(value: object) -> int:
    """A rough token count (4 characters a token), enough for litellm to price a call."""
    return max(1, len(json.dumps(value, default=str)) // 4)


def _sse(event: str | None, data: object) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _HANDLER_SOCKET_TIMEOUT_S
    server_version = "watchdog-fake-judge"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # requests are recorded (and printed when verbose) by _State.record

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _public_headers(self) -> dict[str, str]:
        token = self.server.state.token
        return {k: v for k, v in self._headers().items()
                if k not in _SECRET_HEADERS and token not in v}

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              extra: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _send_json(self, status: int, data: object,
                   extra: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), extra=extra)

    def _read_body(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, _MAX_BODY_BYTES)) if length > 0 else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    def _record(self, body: Any, status: int) -> None:
        model = body.get("model") if isinstance(body, dict) else None
        self.server.state.record(Recorded(
            method=self.command, path=self.path, headers=self._public_headers(), body=body,
            model=model if isinstance(model, str) else None, status=status))

    # -- routing ----------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/_control/requests":
            if not self.server.state.authorized(self._headers()):
                self._send_json(401, {"error": "missing or wrong token"})
                return
            with self.server.state.lock:
                log = [asdict(r) for r in self.server.state.requests]
            self._send_json(200, log)
            return
        self._send_json(404, {"error": f"no GET route {path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        raw, body = self._read_body()
        if path == "/_control/script":
            self._control_script(body)
            return
        flavour: Flavour | None = None
        if path in ("/v1/chat/completions", "/chat/completions"):
            flavour = "openai"
        elif path == "/v1/messages":
            flavour = "anthropic"
        if flavour is None:
            self._record(body, 404)
            self._send_json(404, {"error": f"no route {path}; the fake judge serves "
                                  "/v1/chat/completions, /chat/completions and /v1/messages"})
            return
        if not self.server.state.authorized(self._headers()):
            self._record(body, 401)
            self._error(flavour, Status(401, message="invalid api key"))
            return
        if not isinstance(body, dict):
            self._record(raw.decode("utf-8", "replace"), 400)
            self._error(flavour, Status(400, message="request body is not a JSON object"))
            return
        self._answer(flavour, body)

    def _control_script(self, body: Any) -> None:
        state = self.server.state
        if not state.authorized(self._headers()):
            self._send_json(401, {"error": "missing or wrong token"})
            return
        spec = {"replies": body} if isinstance(body, list) else body
        if not isinstance(spec, dict) or not isinstance(spec.get("replies", []), list):
            self._send_json(400, {"error": "send a JSON list of replies, or an object with "
                                  "\"replies\", \"default\" and \"reset\""})
            return
        try:
            replies = [as_reply(r) for r in spec.get("replies", [])]
            default = as_reply(spec["default"]) if "default" in spec else None
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})
            return
        with state.lock:
            if spec.get("reset"):
                state.script.clear()
                state.requests.clear()
            state.script.extend(replies)
            if default is not None:
                state.default = default
            queued = len(state.script)
        self._send_json(200, {"queued": queued})

    # -- model answers ----------------------------------------------------------------------

    def _answer(self, flavour: Flavour, body: dict[str, Any]) -> None:
        state = self.server.state
        self.close_connection = True  # also when stopping cuts a delay or a hang short
        reply = state.next_reply()
        if state.latency_s and state.stopping.wait(state.latency_s):
            return
        while isinstance(reply, Delay):
            if state.stopping.wait(reply.seconds):
                return  # stopping: drop the connection
            reply = as_reply(reply.then) if reply.then is not None else state.default
        if isinstance(reply, Hang):
            self._record(body, 0)
            state.stopping.wait()
            return
        if isinstance(reply, Status):
            self._record(body, reply.status)
            self._error(flavour, reply)
            return
        self._record(body, 200)
        model = str(body.get("model") or "fake-judge")
        prompt = body.get("messages", [])
        if flavour == "anthropic":
            prompt = [body.get("system"), prompt]
        usage = (_tokens(prompt), _tokens(reply.text))
        if body.get("stream"):
            self._stream(flavour, model, reply.text, usage, body)
        elif flavour == "openai":
            self._send_json(200, self._openai_body(model, reply.text, usage),
                            {"x-request-id": f"req_fake{state.new_id():06d}"})
        else:
            self._send_json(200, self._anthropic_body(model, reply.text, usage),
                            {"request-id": f"req_fake{state.new_id():06d}"})

    def _openai_body(self, model: str, text: str, usage: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{self.server.state.new_id():06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake_judge",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]},
        }

    def _anthropic_body(self, model: str, text: str, usage: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": f"msg_fake{self.server.state.new_id():06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1],
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def _error(self, flavour: Flavour, reply: Status) -> None:
        kinds = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                 529: "overloaded_error"}
        kind = kinds.get(reply.status, "api_error" if reply.status >= 500 else "invalid_request")
        message = reply.message or f"fake judge: scripted HTTP {reply.status}"
        extra: dict[str, str] = {}
        retry_after = reply.retry_after
        if retry_after is None and reply.status == 429:
            retry_after = 1
        if retry_after is not None:
            extra["Retry-After"] = str(max(0, round(retry_after)))
        if flavour == "anthropic":
            data: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            code = "invalid_api_key" if reply.status == 401 else None
            data = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send_json(reply.status, data, extra)

    def _stream(self, flavour: Flavour, model: str, text: str, usage: tuple[int, int],
                body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks = self._openai_events if flavour == "openai" else self._anthropic_events
        for chunk in chunks(model, text, usage, body):
            self.wfile.write(chunk)
            self.wfile.flush()

    def _openai_events(self, model: str, text: str, usage: tuple[int, int],
                       body: dict[str, Any]) -> Iterator[bytes]:
        base = {"id": f"chatcmpl-fake{self.server.state.new_id():06d}",
                "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}]}

        yield _sse(None, chunk({"role": "assistant", "content": ""}, None))
        yield _sse(None, chunk({"content": text}, None))
        yield _sse(None, chunk({}, "stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield _sse(None, {**base, "choices": [], "usage": {
                "prompt_tokens": usage[0], "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1]}})
        yield b"data: [DONE]\n\n"

    def _anthropic_events(self, model: str, text: str, usage: tuple[int, int],
                          body: dict[str, Any]) -> Iterator[bytes]:
        message = self._anthropic_body(model, "", usage)
        message["content"] = []
        message["stop_reason"] = None
        message["usage"] = {"input_tokens": usage[0], "output_tokens": 1}
        yield _sse("message_start", {"type": "message_start", "message": message})
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": text}})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        yield _sse("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                     "usage": {"output_tokens": usage[1]}})
        yield _sse("message_stop", {"type": "message_stop"})


class FakeJudge:
    """The fake model API in a background thread: `with FakeJudge(token=t) as fake: fake.url`."""

    def __init__(self, token: str, default: object = DEFAULT_VERDICT, *, port: int = 0,
                 latency_s: float = 0.0, verbose: bool = False) -> None:
        if not token:
            raise ValueError("FakeJudge needs a non-empty token: the API key clients must send")
        self._port = port
        self._state = _State(token, as_reply(default), latency_s, verbose)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeJudge:
        if self._server is None:
            self._state.stopping.clear()
            self._server = _Server(self._port, self._state)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            args=(_POLL_INTERVAL_S,), name="fake-judge",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hanging and delayed requests, and close every socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeJudge:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: the api_base for anthropic/ models; add /v1 for openai/."""
        if self._server is None:
            raise RuntimeError("FakeJudge is not running: call start() or use it in a with block")
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def token(self) -> str:
        return self._state.token

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far (model calls, rejected ones included), oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def push(self, reply: object, times: int = 1) -> None:
        """Queue `reply` for the next `times` model calls (see the module docstring)."""
        normal = as_reply(reply)
        with self._state.lock:
            self._state.script.extend([normal] * times)

    def set_default(self, reply: object) -> None:
        """The reply given when the script is empty."""
        normal = as_reply(reply)
        with self._state.lock:
            self._state.default = normal

    def reset(self) -> None:
        """Forget the scripted replies and the request log."""
        with self._state.lock:
            self._state.script.clear()
            self._state.requests.clear()


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 1 like the rest of the CLI, never argparse's 2
        raise _UsageError(message)


def main(argv: list[str]) -> int:
    """`watchdog fake-judge`: serve until Ctrl-C; prints the URL first on stdout."""
    parser = _Parser(prog="watchdog fake-judge",
                     description="A fake model API (OpenAI and Anthropic formats) on 127.0.0.1, "
                                 "for trying the judge without a network or an API key.")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--token", help="the API key clients must send (default: a random one, "
                                        "printed)")
    parser.add_argument("--verdict", help="the default reply as JSON, e.g. "
                                          "'{\"decision\": \"warn\", \"reason\": \"r\", "
                                          "\"confidence\": 0.8}'")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S",
                        help="seconds to wait before every answer")
    parser.add_argument("--quiet", action="store_true", help="don't print a line per request")
    try:
        args = parser.parse_args(argv)
        default = as_reply(json.loads(args.verdict)) if args.verdict else as_reply(DEFAULT_VERDICT)
    except _UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"watchdog fake-judge: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"watchdog fake-judge: --verdict is not a reply: {exc}", file=sys.stderr)
        return 1
    generated = not args.token
    token = args.token or secrets.token_urlsafe(16)
    fake = FakeJudge(token, default, port=args.port, latency_s=max(0.0, args.latency),
                     verbose=not args.quiet)
    try:
        fake.start()
    except OSError as exc:
        print(f"watchdog fake-judge: cannot listen on {HOST}:{args.port}: {exc.strerror}. "
              "Pick another --port, or omit it for a free one.", file=sys.stderr)
        return 1
    shown = token if generated else "<your --token>"
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:  # from the first print on: Ctrl-C may come as soon as the URL is out
        print(fake.url, flush=True)
        print(f"fake judge on {fake.url} (Ctrl-C to stop)\n"
              + (f"  token: {token}\n" if generated else "")
              + f"  judge:     WATCHDOG_JUDGE_API_BASE={fake.url} (openai/* and anthropic/* "
              "models)\n"
              f"  keys:      OPENAI_API_KEY={shown} ANTHROPIC_API_KEY={shown}\n"
              f"  script it: curl -H 'x-api-key: {shown}' -d '[...]' {fake.url}/_control/script",
              file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        fake.stop()
    return 0
