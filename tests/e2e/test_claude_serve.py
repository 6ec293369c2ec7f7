"""End to end: the real Claude Code CLI asking `watchdog serve`, by an `http` hook and by the
`hook --serve` command hook.

Why: `serve` is only useful if the shipped CLI really posts its event, sends the token from
`allowedEnvVars`, and acts on the JSON it reads back; and the fallback is only worth having if
the difference it makes is real: with the server down, an `http` hook lets the denied command
run (Claude Code reads a failed connection as a non-blocking error), while `hook --serve`
evaluates in-process and blocks it. Same scripted model, policy and checks as
test_claude_cli.py.
"""

from __future__ import annotations

import http.client
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_anthropic import FakeAnthropic
from test_claude_cli import (
    ALLOWED_CALL,
    DENIED_CALL,
    DENY_REASON,
    HOOK_TIMEOUT_S,
    SCRIPT,
    Sandbox,
    diagnostics,
    find_result,
    result_text,
    run_claude,
)
from test_claude_cli import claude_bin as claude_bin  # noqa: F401 - the fixture


class Server:
    def __init__(self, sandbox: Sandbox, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "serve", "--port", "0", "--policy-dir",
             str(sandbox.policy_root)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline().decode()  # the ready line, or EOF if it died
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            self.stop()
            pytest.fail(f"watchdog serve did not start: {line}")
        self.url = match.group(1)
        token_file = Path(env["XDG_STATE_HOME"]) / "watchdog" / "serve.token"
        self.token = token_file.read_text().strip()

    def denies(self) -> float:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {self.token}"})
        text = conn.getresponse().read().decode()
        conn.close()
        key = 'watchdog_decisions_total{harness="claude",verb="deny"} '
        return sum(float(x.removeprefix(key)) for x in text.splitlines() if x.startswith(key))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=40)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path)
    box.create()
    return box


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[Server]:
    s = Server(sandbox, sandbox.env("http://127.0.0.1:9"))
    yield s
    s.stop()


def use_hook(sandbox: Sandbox, entry: dict[str, Any]) -> None:
    """Project settings with this one PreToolUse hook (replacing test_claude_cli's)."""
    settings = {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [entry]}]}}
    (sandbox.project / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2))


def http_hook(url: str) -> dict[str, Any]:
    return {"type": "http", "url": f"{url}/hook/claude", "timeout": HOOK_TIMEOUT_S,
            "headers": {"Authorization": "Bearer $WATCHDOG_SERVE_TOKEN"},
            "allowedEnvVars": ["WATCHDOG_SERVE_TOKEN"]}


def served_command(sandbox: Sandbox) -> dict[str, Any]:
    command = (f"{shlex.quote(sys.executable)} -m watchdog hook --harness claude --policy-dir "
               f"{shlex.quote(str(sandbox.policy_root))} --serve")
    return {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S}


def run(binary: Path, sandbox: Sandbox, token: str | None = None) -> tuple[Any, str, Any]:
    """Run the scripted session; the CLI's environment carries the token for the http hook."""
    original = sandbox.env

    def env(base_url: str) -> dict[str, str]:
        return {**original(base_url), **({"WATCHDOG_SERVE_TOKEN": token} if token else {})}

    sandbox.env = env  # type: ignore[method-assign]
    try:
        with FakeAnthropic(SCRIPT) as fake:
            result = run_claude(binary, sandbox, fake.url, "do the task")
        return result, diagnostics(result, fake, sandbox.project), fake
    finally:
        sandbox.env = original  # type: ignore[method-assign]


def assert_denied_and_allowed(sandbox: Sandbox, result: Any, why: str, fake: Any) -> None:
    assert not result.timed_out and result.returncode == 0, why
    assert not (sandbox.project / "pwned.txt").exists(), f"denied command ran\n{why}"
    assert (sandbox.project / "allowed.txt").exists(), f"allowed command did not run\n{why}"
    denied = find_result([r for r in fake.model_requests() if r.turn == 1], DENIED_CALL.id)
    assert denied is not None and denied.get("is_error") is True, why
    assert DENY_REASON in result_text(denied), why
    allowed = find_result([r for r in fake.model_requests() if r.turn == 2], ALLOWED_CALL.id)
    assert allowed is not None and not allowed.get("is_error"), why


@pytest.mark.e2e
def test_http_hook_blocks_through_serve(claude_bin: Path, sandbox: Sandbox,
                                        server: Server) -> None:
    """Claude Code posts to serve with the interpolated token and obeys the deny it reads."""
    use_hook(sandbox, http_hook(server.url))
    result, why, fake = run(claude_bin, sandbox, token=server.token)
    assert_denied_and_allowed(sandbox, result, why, fake)
    assert server.denies() == 1, why


@pytest.mark.e2e
def test_served_command_hook_blocks_through_serve(claude_bin: Path, sandbox: Sandbox,
                                                  server: Server) -> None:
    """`hook --serve` reaches the server (its deny counter moves) and the CLI obeys."""
    use_hook(sandbox, served_command(sandbox))
    result, why, fake = run(claude_bin, sandbox)
    assert_denied_and_allowed(sandbox, result, why, fake)
    assert server.denies() == 1, why


@pytest.mark.e2e
def test_with_serve_down_only_the_command_hook_still_blocks(
        claude_bin: Path, sandbox: Sandbox, server: Server) -> None:
    """Server stopped: the http hook's failed connection lets the denied command run (why
    the fallback exists); `hook --serve` falls back in-process and blocks it."""
    url = server.url
    server.stop()
    use_hook(sandbox, http_hook(url))
    result, why, _ = run(claude_bin, sandbox, token=server.token)
    assert not result.timed_out and result.returncode == 0, why
    assert (sandbox.project / "pwned.txt").exists(), f"expected the fail-open\n{why}"
    (sandbox.project / "pwned.txt").unlink()
    (sandbox.project / "allowed.txt").unlink()
    use_hook(sandbox, served_command(sandbox))
    result, why, fake = run(claude_bin, sandbox)
    assert_denied_and_allowed(sandbox, result, why, fake)
