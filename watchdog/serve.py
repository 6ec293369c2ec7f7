"""`watchdog serve`: the hook pipeline in one long-running local process.

A command hook pays interpreter start, imports and a bundle load on every tool call; a server
pays them once and keeps the loaded engine (and, with --watchdog, redis, rq and the redaction
stack) warm. It runs the same `pipeline.run` as the command hook, so policy edits still reload
on the next event (the bundle's fingerprint is checked per event) and answers are the same.

    POST /hook/<harness>   body: the event (the hook's stdin). 200 with the hook's stdout when
                           the hook would exit 0, 422 when it would exit non-zero. Headers:
                           X-Watchdog-Exit (the exit code), X-Watchdog-Stderr (one per stderr
                           line, unicode-escaped). 401 bad token, 404 unknown harness, 411 no
                           Content-Length, 413 body over 8 MiB, 503 shutting down.
    GET /healthz           no token needed: {"ok": true, "version": ..., "pid": ...}
    GET /metrics           Prometheus text: decisions by verb, escalations, degradations,
                           errors, latency histogram

Every request but /healthz needs `Authorization: Bearer <token>`, the per-install token in
`<state dir>/serve.token` (0600, made on first start; `watchdog serve --print-token`). It
binds 127.0.0.1 and refuses other addresses without --allow-remote.

`watchdog hook --serve` (serve_client.py) is the robust face: when the server is down it
evaluates in-process. Claude Code can also post directly (`~/.claude/settings.json`, with
WATCHDOG_SERVE_TOKEN exported in Claude's environment):

    {"type": "http", "url": "http://127.0.0.1:8750/hook/claude", "timeout": 30,
     "headers": {"Authorization": "Bearer $WATCHDOG_SERVE_TOKEN"},
     "allowedEnvVars": ["WATCHDOG_SERVE_TOKEN"]}

but Claude Code reads a failed connection or a non-2xx answer as a non-blocking error, so the
call goes ahead while the server is down, unless the hook says `"onFailure": "block"` (then
every call is blocked instead).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog import __version__, dirs, logs
from watchdog.errors import ConfigError
from watchdog.serve_client import ensure_token, escape, forget_url, record_url, served_env, unescape

if TYPE_CHECKING:
    from watchdog.pipeline import Result

DEFAULT_PORT = 8750
MAX_BODY = 8 * 1024 * 1024  # Claude Code events are a few KB; a Write of a large file, MBs
MAX_STDERR_LINES, MAX_STDERR_CHARS = 20, 4000  # headers stay well under 64 KiB
IDLE_TIMEOUT_S = 60.0  # an idle keep-alive connection is closed after this
DRAIN_S = 30.0  # on SIGTERM, in-flight events get this long (a `wait` escalation takes 8 s)
NO_TOKEN = "missing or wrong token: send Authorization: Bearer <watchdog serve --print-token>"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Defaults(NamedTuple):
    """What an event is evaluated with when the request does not say (Claude's http hooks);
    `hook --serve` sends its own flags and WATCHDOG_* variables instead."""

    policy_dir: str | None
    escalate: bool
    env: dict[str, str]


class Metrics:
    """Counters and one histogram, rendered in the Prometheus text format by hand (it is a
    small format, and prometheus_client is not a dependency)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: dict[tuple[str, str], int] = {}
        self.degradations: dict[str, int] = {}
        self.responses: dict[int, int] = {}
        self.latency: dict[str, list[float]] = {}  # harness -> bucket counts, sum, count
        self.escalations = 0
        self.errors = 0

    def observe(self, harness: str, result: Result, seconds: float, escalate: bool) -> None:
        decision = result.decision
        verb = decision.verb if decision is not None else "none"
        failed = decision is None or "WATCHDOG-FAIL-CLOSED" in decision.rule_ids
        with self._lock:
            key = (harness, verb)
            self.decisions[key] = self.decisions.get(key, 0) + 1
            self.degradations[harness] = self.degradations.get(harness, 0) + len(
                result.degradations)
            if escalate and decision is not None:
                self.escalations += len(decision.escalations)
            self.errors += failed
            row = self.latency.setdefault(harness, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def count(self, code: int, error: bool = False) -> None:
        with self._lock:
            self.responses[code] = self.responses.get(code, 0) + 1
            self.errors += error

    def render(self) -> str:
        with self._lock:
            hist: list[tuple[str, str, float]] = []
            for h, row in sorted(self.latency.items()):
                hist += [("_bucket", f'harness="{h}",le="{b:g}"', n)
                         for b, n in zip(BUCKETS, row, strict=False)]
                hist += [("_bucket", f'harness="{h}",le="+Inf"', row[-1]),
                         ("_sum", f'harness="{h}"', row[-2]), ("_count", f'harness="{h}"', row[-1])]
            families: list[tuple[str, str, str, list[tuple[str, str, float]]]] = [
                ("watchdog_decisions_total", "counter", "Hook events answered, by verb.",
                 [("", f'harness="{h}",verb="{v}"', n)
                  for (h, v), n in sorted(self.decisions.items())]),
                ("watchdog_escalations_total", "counter",
                 "Escalate objects on events served with escalation on.",
                 [("", "", self.escalations)]),
                ("watchdog_degradations_total", "counter",
                 "Answer changes the harness could not express (degrade.py).",
                 [("", f'harness="{h}"', n) for h, n in sorted(self.degradations.items())]),
                ("watchdog_errors_total", "counter",
                 "Events answered by the fail mode, and server errors.", [("", "", self.errors)]),
                ("watchdog_http_responses_total", "counter", "HTTP responses, by status.",
                 [("", f'code="{c}"', n) for c, n in sorted(self.responses.items())]),
                ("watchdog_decision_seconds", "histogram", "Time in the pipeline per event.",
                 hist),
            ]
        out: list[str] = []
        for name, kind, text, samples in families:
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            out += [f"{name}{suffix}{{{labels}}} {value}" if labels else f"{name} {value}"
                    for suffix, labels, value in samples]
        return "\n".join(out) + "\n"


class Server(ThreadingHTTPServer):
    """Events run in parallel threads; only the Rego queries take turns (engine.REGO_LOCK: an
    interpreter takes one query at a time, and rego-cpp's stdout guard swaps the process's
    fd 1), so one session's `wait` escalation or slow signal never holds up another's."""

    daemon_threads = True  # idle keep-alive connections must not hold up the exit

    def __init__(self, host: str, port: int, token: str, defaults: Defaults) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.token = token.encode()
        self.defaults = defaults
        self.metrics = Metrics()
        self.stopping = False
        self.active = 0
        self.idle = threading.Condition()

    def evaluate(self, harness: str, body: bytes, headers: Any) -> tuple[Result, float]:
        """pipeline.run with the request's settings; the result and its time in seconds."""
        from watchdog import pipeline

        policy_dir, escalate, env = self.defaults
        if headers.get("X-Watchdog-Client") == "hook":  # the command hook's own settings
            escalate = headers.get("X-Watchdog-Escalate") == "1"
            policy_dir = unescape(headers.get("X-Watchdog-Policy-Dir", "")) or None
            env = {k: v for k, v in env.items() if not k.startswith("WATCHDOG_")}
            for raw in headers.get_all("X-Watchdog-Env") or ():
                name, _, value = unescape(raw).partition("=")
                if name.startswith("WATCHDOG_"):
                    env[name] = value
        start = time.perf_counter()
        result = pipeline.run(harness, body, env=env, policy_dir=policy_dir, escalate=escalate)
        seconds = time.perf_counter() - start
        self.metrics.observe(harness, result, seconds, escalate)
        return result, seconds

    def drain(self, timeout: float) -> bool:
        """Wait until no event is being evaluated; False when `timeout` passed first."""
        with self.idle:
            return self.idle.wait_for(lambda: self.active == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a persistent client skips the TCP handshake
    server_version = f"watchdog/{__version__}"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK
    timeout = IDLE_TIMEOUT_S
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: stderr belongs to whoever started the server; failures go to the log."""

    def _send(self, code: int, body: bytes, headers: tuple[tuple[str, str], ...] = (),
              close: bool = False, content_type: str = "application/json") -> None:
        self.server.metrics.count(code, error=code >= 500)
        self.send_response_only(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if close or self.server.stopping:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str, close: bool = False) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(code, body, close=close)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.server.token)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/healthz":
            body = {"ok": not self.server.stopping, "version": __version__, "pid": os.getpid()}
            self._send(200 if not self.server.stopping else 503, json.dumps(body).encode())
        elif self.path == "/metrics":
            if not self._authorized():
                return self._error(401, NO_TOKEN)
            self._send(200, self.server.metrics.render().encode(),
                       content_type="text/plain; version=0.0.4; charset=utf-8")
        else:
            self._error(404, f"no such endpoint {self.path}; try POST /hook/<harness>")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        with self.server.idle:
            self.server.active += 1
        try:
            self._post()
        finally:
            with self.server.idle:
                self.server.active -= 1
                self.server.idle.notify_all()

    def _post(self) -> None:
        from watchdog import harnesses

        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            return self._error(411, "send the event with a Content-Length", close=True)
        if int(length) > MAX_BODY:
            return self._error(413, f"events over {MAX_BODY} bytes are refused", close=True)
        body = self.rfile.read(int(length))  # first: closing on an unread body resets the TCP
        if not self._authorized():  # connection, and the client may never see the answer
            return self._error(401, NO_TOKEN)
        harness = self.path.removeprefix("/hook/").split("?", 1)[0]
        if not self.path.startswith("/hook/") or harness not in harnesses.NAMES:
            return self._error(404, f"no harness at {self.path}; POST /hook/<harness> with one "
                               f"of: {', '.join(harnesses.NAMES)}")
        if self.server.stopping:
            return self._error(503, "watchdog serve is shutting down", close=True)
        self._answer(harness, body)

    def _answer(self, harness: str, body: bytes) -> None:
        try:
            result, seconds = self.server.evaluate(harness, body, self.headers)
        except Exception as exc:  # noqa: BLE001 - pipeline.run never raises; this is a bug
            import traceback

            logs.write(dirs.state_dir(self.server.defaults.env), "error", "internal_error",
                       step="serve", message=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc())
            return self._error(500, f"internal error ({type(exc).__name__}); see the log")
        lines = [escape(line[:MAX_STDERR_CHARS]) for line in result.stderr[:MAX_STDERR_LINES]]
        headers = (("X-Watchdog-Exit", str(result.exit_code)),
                   ("Server-Timing", f"pipeline;dur={seconds * 1000:.3f}"),
                   *(("X-Watchdog-Stderr", line) for line in lines))
        self._send(200 if result.exit_code == 0 else 422,
                   result.stdout.encode("utf-8", "replace"), headers)


# -- the command --------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: not provably local


def _warm(escalate: bool) -> None:
    """Import now what the first events would (best effort: only speed is at stake)."""
    import importlib

    from watchdog import harnesses

    names = ["watchdog.pipeline", "watchdog.policies.engine", "regopy",
             *(f"watchdog.harnesses.{module}" for module in harnesses.NAMES.values()),
             *(f"watchdog.{m}" for m in ("escalation.escalate", "escalation.request",
                                         "escalation.cache", "escalation.budget", "redact")
               if escalate)]
    for name in names:
        with contextlib.suppress(Exception):  # a harness not written yet, an optional extra
            importlib.import_module(name)


def run(host: str, port: int, policy_dir: str | None, escalate: bool,
        allow_remote: bool) -> int:
    """Serve until SIGTERM or SIGINT, then let the events in flight finish and exit 0."""
    env = served_env(os.environ)
    state_dir = dirs.state_dir(env)
    if not _is_loopback(host):
        if not allow_remote:
            raise ConfigError(f"--host {host} is not a loopback address: anyone who can reach "
                              "it could query your policies. Pass --allow-remote to mean it.")
        sys.stderr.write(f"watchdog serve: warning: listening on {host}, beyond this machine; "
                         "the token travels in clear text over plain HTTP.\n")
    if policy_dir is not None:
        from watchdog.policies import layout

        policy_dir = os.path.abspath(policy_dir)
        layout.resolve_policy_dir(policy_dir, "claude")  # a clear error now, not per event
    token, token_path = ensure_token(state_dir)
    _warm(escalate)
    try:
        server = Server(host, port, token, Defaults(policy_dir, escalate, env))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}). Another 'watchdog "
                          "serve' may hold it: try another --port, or --port 0 for a free "
                          "one.") from exc
    bound = server.server_address[1]
    shown = host if _is_loopback(host) else "127.0.0.1"
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}"
    record_url(state_dir, url)

    def stop(signum: int, frame: Any) -> None:
        server.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logs.write(state_dir, "info", "serve_started", url=url, pid=os.getpid(),
               policy_dir=policy_dir, escalate=escalate)
    sys.stderr.write(f"watchdog serve: listening on {url} (pid {os.getpid()}; token in "
                     f"{token_path}; policies: {policy_dir or 'found from each event cwd'}; "
                     f"escalation {'on' if escalate else 'off'})\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
        drained = server.drain(DRAIN_S)
    finally:
        server.server_close()
        forget_url(state_dir, url)
        for signum in (signal.SIGTERM, signal.SIGINT):  # a repeat must not kill the exit
            signal.signal(signum, signal.SIG_IGN)
    logs.write(state_dir, "info", "serve_stopped", url=url, pid=os.getpid(), drained=drained)
    sys.stderr.write(f"watchdog serve: stopped{'' if drained else ' (events still running)'}\n")
    return 0


def main(argv: list[str]) -> int:
    from watchdog.cli import parser_class

    p = parser_class()(prog="watchdog serve", description="Answer hook events over HTTP on "
                       "this machine: POST /hook/<harness>, GET /healthz, GET /metrics.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--policy-dir", help="policy root for events that do not name one "
                   "(Claude Code http hooks); default: .watchdog/ or .cupcake/ above each cwd")
    p.add_argument("--watchdog", action="store_true",
                   help="escalation on, for events that do not say (http hooks)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host that is not a loopback address")
    p.add_argument("--print-token", action="store_true",
                   help="print the token (made if missing) for http hook headers, and exit")
    args = p.parse_args(argv)
    if args.print_token:
        token, _ = ensure_token(dirs.state_dir(served_env(os.environ)))
        sys.stdout.write(token + "\n")
        return 0
    return run(args.host, args.port, args.policy_dir, args.watchdog, args.allow_remote)
