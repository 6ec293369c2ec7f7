"""`watchdog serve` as users run it: a real server subprocess on 127.0.0.1, real HTTP, and the
`hook --serve` client as Claude Code would start it, compared with the in-process hook."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, bash, claude_event, isolated_env, rego_policy, run_cli

from watchdog import cli

PACK = REPO / "policies"
START_TIMEOUT_S = 30.0
RM_HOME = bash("rm -rf ~", cwd="/tmp")


class Served:
    """A running `watchdog serve`; `post`/`get` speak HTTP/1.1 on one keep-alive connection."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, env: dict[str, str],
                 stderr: list[str], pump: threading.Thread) -> None:
        self.proc, self.url, self.env, self.stderr, self.pump = proc, url, env, stderr, pump
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.token = (state_dir(env) / "serve.token").read_text().strip()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = "",
                ) -> tuple[int, http.client.HTTPMessage, bytes]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token or self.token}"
        self.conn.request(method, path, body=body, headers=sent)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return resp.status, resp.headers, data

    def post(self, event: Any, harness: str = "claude", **kw: Any) -> tuple[int, Any, bytes]:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return self.request("POST", f"/hook/{harness}", body, **kw)

    def metric(self, line_prefix: str) -> float:
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        for line in data.decode().splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, sig: int | None = signal.SIGTERM) -> int:
        """Signal (unless `sig` is None: already sent) and wait for the exit code."""
        self.conn.close()
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.pump.join(timeout=10)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()


def state_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "watchdog"


def start(env: dict[str, str], *args: str) -> Served:
    """Start the server and wait (with a deadline, no fixed sleep) for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "serve", "--port", "0", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            seen.append(line)
            lines.put(line)
        lines.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = ""
            proc.kill()
        if not line:
            proc.wait()
            thread.join(timeout=10)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            pytest.fail(f"serve gave no ready line (exit {proc.returncode}): {''.join(seen)}")
        match = re.search(r"listening on (http://\S+) \(pid (\d+)", line)
        if match:
            assert int(match.group(2)) == proc.pid
            return Served(proc, match.group(1), env, seen, thread)


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(env, *args) -> Served; every server started is stopped at teardown."""
    started: list[Served] = []

    def call(env: dict[str, str], *args: str) -> Served:
        started.append(start(env, *args))
        return started[-1]

    yield call
    for s in started:
        if s.proc.poll() is None:
            s.stop()


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on the shipped default pack for the tests that only read from it."""
    env = isolated_env(tmp_path_factory.mktemp("serve") / "home")
    s = start(env, "--policy-dir", str(PACK))
    yield s
    s.stop()


def hook_cmd(*args: str) -> list[str]:
    return ["hook", "--harness", "claude", "--policy-dir", str(PACK), *args]


def test_deny_is_the_command_hooks_answer(pack_server: Served) -> None:
    """POST /hook/claude with `rm -rf ~` answers exactly what `watchdog hook` prints."""
    expected = run_cli(hook_cmd(), pack_server.env, json.dumps(RM_HOME))
    assert expected.hso["permissionDecision"] == "deny"
    status, headers, body = pack_server.post(RM_HOME)
    assert status == 200
    assert headers["X-Watchdog-Exit"] == "0"
    assert headers["Content-Type"] == "application/json"
    assert body.decode() == expected.stdout


def test_allow_is_an_empty_object_and_the_connection_stays_open(pack_server: Served) -> None:
    """An allowed command gets the hook's `{}`; several events share one HTTP/1.1 connection."""
    for _ in range(3):
        status, headers, body = pack_server.post(bash("git status", cwd="/tmp"))
        assert status == 200 and json.loads(body) == {}
        assert "close" not in headers.get("Connection", "")
    assert pack_server.conn.sock is not None  # never reconnected


def test_token_is_required(pack_server: Served) -> None:
    """No token or a wrong one: 401 on the hook and metrics endpoints; /healthz is open."""
    for token in (None, "wrong-token-0123456789"):
        status, _, body = pack_server.post(RM_HOME, token=token)
        assert status == 401 and "token" in json.loads(body)["error"]
        assert pack_server.request("GET", "/metrics", token=token)[0] == 401
    status, _, body = pack_server.request("GET", "/healthz", token=None)
    health = json.loads(body)
    assert status == 200 and health["ok"] is True and health["pid"] == pack_server.proc.pid
    assert health["version"]


def test_bad_requests(pack_server: Served) -> None:
    """Unknown harness or path: 404 with JSON; no Content-Length: 411; over 8 MiB: 413."""
    status, _, body = pack_server.post(RM_HOME, harness="nosuch")
    assert status == 404 and "claude" in json.loads(body)["error"]
    assert pack_server.request("GET", "/nowhere")[0] == 404
    host, port = pack_server.url.removeprefix("http://").rsplit(":", 1)
    for length, code in (("", 411), ("Content-Length: 9000000\r\n", 413)):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(f"POST /hook/claude HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{pack_server.token}\r\n{length}\r\n".encode())
            answer = sock.makefile("rb").read()
        assert answer.startswith(f"HTTP/1.1 {code} ".encode()), answer[:200]


def test_metrics_count_decisions(pack_server: Served) -> None:
    """/metrics is Prometheus text; a deny moves its counter and the latency histogram."""
    deny = 'watchdog_decisions_total{harness="claude",verb="deny"}'
    count = 'watchdog_decision_seconds_count{harness="claude"}'
    before, seen_before = pack_server.metric(deny), pack_server.metric(count)
    pack_server.post(RM_HOME)
    assert pack_server.metric(deny) == before + 1
    assert pack_server.metric(count) == seen_before + 1
    status, headers, data = pack_server.request("GET", "/metrics")
    text = data.decode()
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for name in ("watchdog_escalations_total", "watchdog_errors_total",
                 'watchdog_degradations_total{harness="claude"}',
                 'watchdog_decision_seconds_bucket{harness="claude",le="0.0005"}',
                 'watchdog_decision_seconds_bucket{harness="claude",le="+Inf"}'):
        assert name in text
    assert "# TYPE watchdog_decision_seconds histogram" in text


def test_served_hook_client_matches_the_in_process_hook(pack_server: Served) -> None:
    """`hook --serve` prints the same answer and exit code, and the server answered it."""
    plain = run_cli(hook_cmd(), pack_server.env, json.dumps(RM_HOME))
    key = 'watchdog_decisions_total{harness="claude",verb="deny"}'
    before = pack_server.metric(key)
    for args in (["--serve"], ["--serve", pack_server.url], [f"--serve={pack_server.url}"]):
        served = run_cli(hook_cmd(*args), pack_server.env, json.dumps(RM_HOME))
        assert (served.code, served.stdout, served.stderr) == (plain.code, plain.stdout, "")
    assert pack_server.metric(key) == before + 3


def test_client_falls_back_in_process_when_the_server_is_down(pack_server: Served) -> None:
    """Nothing listening at the URL: the same decision, computed in-process, plus a note on
    stderr and in the log; never a silent allow."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    plain = run_cli(hook_cmd(), pack_server.env, json.dumps(RM_HOME))
    run = run_cli(hook_cmd("--serve", dead), pack_server.env, json.dumps(RM_HOME))
    assert run.hso["permissionDecision"] == "deny" and run.stdout == plain.stdout
    assert run.stderr.startswith(f"watchdog: serve at {dead} not used: cannot connect")
    assert "evaluated in-process" in run.stderr and run.code == 0
    records = [json.loads(line) for line in
               (state_dir(pack_server.env) / "log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "serve_unavailable" and r["url"] == dead for r in records)


def test_client_falls_back_on_a_wrong_token(pack_server: Served) -> None:
    """A 401 is not a decision: the client evaluates in-process and says why."""
    env = {**pack_server.env, "WATCHDOG_SERVE_TOKEN": "not-the-token-0123456789"}
    run = run_cli(hook_cmd("--serve"), env, json.dumps(RM_HOME))
    assert run.hso["permissionDecision"] == "deny"
    assert "answered HTTP 401 without a decision" in run.stderr


def test_client_falls_back_from_a_server_that_is_not_ours(pack_server: Served) -> None:
    """A stale URL now served by something else (200, keeps the connection open): no hang
    until the read timeout, and no decision taken from it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Other(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            self.close_connection = False  # ignores the client's Connection: close

    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}"
        run = run_cli(hook_cmd("--serve", url), pack_server.env, json.dumps(RM_HOME),
                      timeout=15)
    finally:
        other.shutdown()
        other.server_close()
    assert run.hso["permissionDecision"] == "deny"
    assert "answered HTTP 200 without a decision" in run.stderr


def test_fail_closed_exit_code_and_stderr_travel(pack_server: Served) -> None:
    """The hook's own WATCHDOG_* settings go with the event: with on_error=closed unreadable
    stdin exits 2 served (HTTP 422) exactly as in-process, stderr lines included."""
    env = {**pack_server.env, "WATCHDOG_ON_ERROR": "closed"}
    plain = run_cli(hook_cmd(), env, "{not json")
    assert plain.code == 2 and plain.stderr
    errors = pack_server.metric("watchdog_errors_total")
    served = run_cli(hook_cmd("--serve"), env, "{not json")
    assert (served.code, served.stdout, served.stderr) == (2, plain.stdout, plain.stderr)
    assert pack_server.metric("watchdog_errors_total") == errors + 1
    status, headers, _ = pack_server.post(b"{not json", headers={
        "X-Watchdog-Client": "hook", "X-Watchdog-Env": "WATCHDOG_ON_ERROR=closed"})
    assert status == 422 and headers["X-Watchdog-Exit"] == "2"


def test_served_hook_imports_no_pipeline(pack_server: Served) -> None:
    """The served command hook loads neither the pipeline nor regopy, nor the stdlib modules
    that cost more than the server's answer (http.client, socket.py, typing, re)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", *hook_cmd("--serve")],
        input=json.dumps(RM_HOME).encode(), capture_output=True, env=pack_server.env,
        timeout=60)
    assert proc.returncode == 0 and b"deny" in proc.stdout
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "watchdog.serve_client" in names
    heavy = {"watchdog.pipeline", "regopy", "http.client", "email", "ssl", "argparse",
             "socket", "typing", "re", "json", "encodings.idna"}
    assert not names & heavy, names & heavy


def test_parallel_events_get_their_own_answers(pack_server: Served) -> None:
    """Claude Code runs hooks of parallel tool calls at once: each connection gets the answer
    to its own event (one pipeline run at a time inside the server)."""
    host, port = pack_server.url.removeprefix("http://").rsplit(":", 1)
    events = [RM_HOME, bash("git status", cwd="/tmp")] * 4
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/hook/claude", json.dumps(events[i]),
                     {"Authorization": f"Bearer {pack_server.token}"})
        answers[i] = conn.getresponse().read().decode()
        conn.close()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    verbs = [json.loads(answers[i]).get("hookSpecificOutput", {}).get("permissionDecision")
             for i in range(len(events))]
    assert verbs == ["deny", None] * 4


def test_escalation_server_answers_plain_events(serve: Any, env: dict[str, str]) -> None:
    """`serve --watchdog` preloads the escalation modules and still answers an event that
    escalates nothing (no Redis needed for it)."""
    s = serve(env, "--policy-dir", str(PACK), "--watchdog")
    plain = run_cli(hook_cmd("--watchdog"), env, json.dumps(RM_HOME))
    status, _, body = s.post(RM_HOME)
    assert status == 200 and body.decode() == plain.stdout


def test_edited_policy_reloads_in_a_running_server(
        serve: Any, env: dict[str, str], root: PolicyRoot) -> None:
    """The bundle fingerprint is checked per event: an edit shows in the next answer."""
    policy = 'deny contains {{"rule_id": "R", "reason": "no {0}", "severity": "HIGH"}} if ' \
             'contains(input.tool_input.command, "{0}")'
    target = root.add("p.rego", rego_policy("cupcake.policies.p", policy.format("pwned"),
                                           events=["PreToolUse"], tools=["Bash"]))
    s = serve(env, "--policy-dir", str(root.path))
    event = bash("touch pwned", cwd="/tmp")
    assert json.loads(s.post(event)[2])["hookSpecificOutput"]["permissionDecision"] == "deny"
    target.write_text(rego_policy("cupcake.policies.p", policy.format("other-word"),
                                  events=["PreToolUse"], tools=["Bash"]))
    assert json.loads(s.post(event)[2]) == {}
    other = json.loads(s.post(bash("touch other-word", cwd="/tmp"))[2])
    assert other["hookSpecificOutput"]["permissionDecisionReason"] == "no other-word"


def test_sigterm_finishes_the_event_in_flight_and_exits_zero(
        serve: Any, env: dict[str, str], root: PolicyRoot, tmp_path: Path) -> None:
    """SIGTERM while an event is evaluated (a slow signal): that answer still arrives, the
    server exits 0 and removes its recorded URL, and a later `hook --serve` falls back."""
    marker = tmp_path / "signal-started"
    root.rulebook(f"""
        signals:
          slow: {{command: "touch {marker}; sleep 1; echo go"}}
    """)
    root.add("slow.rego", rego_policy(
        "cupcake.policies.slow",
        'deny contains {"rule_id": "S", "reason": "slow", "severity": "HIGH"} if '
        'input.signals.slow == "go"', events=["PreToolUse"], tools=["Bash"], signals=["slow"]))
    s = serve(env, "--policy-dir", str(root.path))
    assert (state_dir(env) / "serve.url").read_text().strip() == s.url
    answers: list[tuple[int, Any, bytes]] = []
    thread = threading.Thread(target=lambda: answers.append(s.post(bash("ls", cwd="/tmp"))))
    thread.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the signal never started"
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert answers and answers[0][0] == 200
    assert json.loads(answers[0][2])["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert s.stop(None) == 0
    assert "stopped" in "".join(s.stderr)
    assert not (state_dir(env) / "serve.url").exists()
    run = run_cli(["hook", "--harness", "claude", "--policy-dir", str(root.path), "--serve"],
                  env, json.dumps(bash("ls", cwd="/tmp")))
    assert run.hso["permissionDecision"] == "deny" and "no server recorded" in run.stderr


def test_sigint_also_stops_cleanly(serve: Any, env: dict[str, str]) -> None:
    s = serve(env)
    assert s.stop(signal.SIGINT) == 0


def test_non_loopback_host_needs_allow_remote(env: dict[str, str]) -> None:
    """--host 0.0.0.0 is refused (exit 1, says why) unless --allow-remote is given."""
    run = run_cli(["serve", "--host", "0.0.0.0", "--port", "0"], env)
    assert run.code == 1 and "--allow-remote" in run.stderr


def test_print_token_makes_a_private_token(env: dict[str, str]) -> None:
    """--print-token creates the per-install token once (mode 0600) and prints it."""
    first = run_cli(["serve", "--print-token"], env)
    second = run_cli(["serve", "--print-token"], env)
    token = first.stdout.strip()
    assert first.code == 0 and len(token) >= 32 and second.stdout.strip() == token
    path = state_dir(env) / "serve.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token


@pytest.mark.parametrize("argv, expected", [
    (["--serve"], ("claude", None, False, "")),
    (["--serve", "--watchdog"], ("claude", None, True, "")),
    (["--serve", "http://127.0.0.1:9/", "--harness", "cursor"],
     ("cursor", None, False, "http://127.0.0.1:9/")),
    (["--serve=http://h:1", "--policy-dir", "p"], ("claude", "p", False, "http://h:1")),
    (["--policy-dir", "p"], ("claude", "p", False, None)),
], ids=["default-url", "with-watchdog", "url-then-flags", "equals-form", "not-served"])
def test_fast_hook_args_read_serve(argv: list[str], expected: tuple[Any, ...]) -> None:
    assert cli._fast_hook_args(argv) == expected


def test_escaping_round_trips() -> None:
    """Stderr lines and forwarded settings cross as header values: ASCII, no CR/LF."""
    from watchdog.serve_client import escape, unescape

    for text in ("plain", "two\nlines\r\n", "tab\tand \\ backslash", "ünïcode ✓ \U0001f600",
                 "lone \udc80 surrogate"):
        escaped = escape(text)
        assert escaped.isascii() and "\n" not in escaped and "\r" not in escaped
        assert unescape(escaped) == text
        assert unescape(escaped.encode("latin-1")) == text



def test_a_slow_event_does_not_hold_up_another_session(
        serve: Any, env: dict[str, str], root: PolicyRoot, tmp_path: Path) -> None:
    """Events run in parallel threads (only Rego queries take turns): while one event waits on
    a slow signal (as a `wait` escalation waits on the judge), another is answered."""
    started, release = tmp_path / "started", tmp_path / "release"
    root.rulebook(f"""
        signals:
          slow:
            command: "touch {started}; while [ ! -e {release} ]; do sleep 0.02; done; echo go"
            timeout_seconds: 60
    """)
    root.add("slow.rego", rego_policy(
        "cupcake.policies.slow",
        'deny contains {"rule_id": "S", "reason": "slow", "severity": "HIGH"} if '
        'input.signals.slow == "go"', events=["PreToolUse"], tools=["Bash"], signals=["slow"]))
    root.add("prompt.rego", rego_policy(
        "cupcake.policies.prompt",
        'add_context contains "seen" if input.hook_event_name == "UserPromptSubmit"',
        events=["UserPromptSubmit"]))
    s = serve(env, "--policy-dir", str(root.path))
    host, port = s.url.removeprefix("http://").rsplit(":", 1)
    slow: list[bytes] = []

    def post_slow() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/hook/claude", json.dumps(bash("ls", cwd="/tmp")),
                     {"Authorization": f"Bearer {s.token}"})
        slow.append(conn.getresponse().read())
        conn.close()

    thread = threading.Thread(target=post_slow)
    thread.start()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the signal never started"
        time.sleep(0.01)
    status, _, body = s.post(claude_event("UserPromptSubmit", prompt="hi", cwd="/tmp"))
    assert status == 200 and not slow, "the prompt waited for the slow event"
    assert json.loads(body)["hookSpecificOutput"]["additionalContext"] == "seen"
    release.touch()
    thread.join(timeout=60)
    assert json.loads(slow[0])["hookSpecificOutput"]["permissionDecision"] == "deny"
