"""End to end: the real Claude Code CLI, a scripted fake model, and `watchdog hook` on every event.

Why: unit tests can only check that watchdog prints the JSON we *believe* Claude Code wants.
This test checks that the shipped CLI (pinned version) actually blocks a tool call when a Rego
policy denies it, feeds the policy's reason back to the model, still runs allowed tools, and
survives watchdog being registered for every hook event. No network or API key is needed: the
CLI talks to `fake_anthropic` on 127.0.0.1 and is installed from npm on first use (the test
skips when that is impossible).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from claude_cli import CLAUDE_CODE_VERSION, ensure_claude_cli
from fake_anthropic import FakeAnthropic, Recorded, ToolUse, Turn

REPO_ROOT = Path(__file__).resolve().parents[2]

HOOK_EVENTS = [
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "UserPromptSubmit",
    "SessionStart",
    "SessionEnd",
    "Stop",
    "SubagentStop",
    "Notification",
    "PreCompact",
    "PermissionRequest",
]

DENY_REASON = "E2E: writing pwned files is not allowed"
DENY_POLICY = f"""\
# METADATA
# scope: package
# custom:
#   routing:
#     required_events: ["PreToolUse"]
#     required_tools: ["Bash"]
package cupcake.policies.e2e_deny_touch

import rego.v1

deny contains decision if {{
\tinput.hook_event_name == "PreToolUse"
\tinput.tool_name == "Bash"
\tcontains(input.tool_input.command, "pwned")
\tdecision := {{
\t\t"rule_id": "E2E-DENY-001",
\t\t"reason": "{DENY_REASON}",
\t\t"severity": "HIGH",
\t}}
}}
"""

DENIED_CALL = ToolUse(
    "toolu_e2e_denied_0001", "Bash", {"command": "touch pwned.txt", "description": "x"}
)
ALLOWED_CALL = ToolUse(
    "toolu_e2e_allowed_0002", "Bash", {"command": "touch allowed.txt", "description": "y"}
)
SCRIPT = [Turn(tool_uses=(DENIED_CALL,)), Turn(tool_uses=(ALLOWED_CALL,)), Turn("done")]

CLI_TIMEOUT_S = 120.0
HOOK_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    """The pinned CLI binary; skips the module when it cannot be installed or run here."""
    binary, why = ensure_claude_cli()
    if binary is None:
        pytest.skip(f"Claude Code CLI {CLAUDE_CODE_VERSION} unavailable: {why}")
    return binary


@dataclass
class Sandbox:
    """Throwaway HOME, project and policy root, so nothing touches the real user's files."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def project(self) -> Path:
        return self.root / "project"

    @property
    def policy_root(self) -> Path:
        return self.root / "policy-root"

    def create(self) -> None:
        for sub in (self.home, self.project, self.root / "tmp", self.root / "xdg"):
            sub.mkdir(parents=True)
        policy = self.policy_root / "policies" / "claude" / "deny_touch.rego"
        policy.parent.mkdir(parents=True)
        policy.write_text(DENY_POLICY)
        settings = self.project / ".claude" / "settings.json"
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps(hook_settings(self.policy_root), indent=2))

    def env(self, base_url: str) -> dict[str, str]:
        """The CLI's environment; hooks inherit it, so the XDG dirs also cage watchdog."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLAUDE", "ANTHROPIC", "WATCHDOG_"))
            and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        }
        xdg = self.root / "xdg"
        env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(xdg / "config"),
                "XDG_CACHE_HOME": str(xdg / "cache"),
                "XDG_STATE_HOME": str(xdg / "state"),
                "XDG_DATA_HOME": str(xdg / "data"),
                # Claude Code keeps per-session task files under $TMPDIR/claude-<uid>/.
                "TMPDIR": str(self.root / "tmp"),
                # The hook must run this checkout's watchdog, even from the project's cwd.
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
                ),
                "ANTHROPIC_BASE_URL": base_url,
                "ANTHROPIC_API_KEY": "sk-ant-e2e-fake-key",
                "NO_PROXY": "127.0.0.1,localhost",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_ERROR_REPORTING": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                # --permission-mode bypassPermissions refuses to run as root outside a sandbox.
                "IS_SANDBOX": "1",
            }
        )
        return env


def hook_command(policy_root: Path) -> str:
    """`python -m watchdog hook` with this test's interpreter, as a shell command line."""
    return (
        f"{shlex.quote(sys.executable)} -m watchdog hook --harness claude "
        f"--policy-dir {shlex.quote(str(policy_root))}"
    )


def hook_settings(policy_root: Path) -> dict[str, Any]:
    """Project settings registering the watchdog hook for every event under test."""
    entry = {"type": "command", "command": hook_command(policy_root), "timeout": HOOK_TIMEOUT_S}
    return {"hooks": {event: [{"matcher": "*", "hooks": [entry]}] for event in HOOK_EVENTS}}


@dataclass
class CliRun:
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool

    def hook_responses(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events()
            if e.get("type") == "system" and e.get("subtype") == "hook_response"
        ]

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for line in self.stdout.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out


def run_claude(binary: Path, sandbox: Sandbox, base_url: str, prompt: str) -> CliRun:
    """Run `claude -p` in its own process group, so a hung run can be killed with its hooks."""
    argv = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        # Puts each hook's exit code, stdout and stderr on stdout (all but SessionEnd).
        "--include-hook-events",
        "--permission-mode",
        "bypassPermissions",
    ]
    started = time.monotonic()
    with subprocess.Popen(
        argv,
        cwd=sandbox.project,
        env=sandbox.env(base_url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
    return CliRun(proc.returncode, stdout, stderr, time.monotonic() - started, timed_out)


def tool_results(request: Recorded) -> Iterator[dict[str, Any]]:
    """Every tool_result block in a model request's messages."""
    for message in request.body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            yield from (
                b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
            )


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


def find_result(requests: list[Recorded], tool_use_id: str) -> dict[str, Any] | None:
    """The tool_result for `tool_use_id` in the first model request that carries one."""
    for request in requests:
        for block in tool_results(request):
            if block.get("tool_use_id") == tool_use_id:
                return block
    return None


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def diagnostics(run: CliRun, fake: FakeAnthropic, project: Path) -> str:
    """What a reader needs to see why the run went wrong, without rerunning it."""
    lines = [
        f"claude exit={run.returncode} timed_out={run.timed_out} after {run.seconds:.1f}s",
        f"project files: {sorted(p.name for p in project.iterdir())}",
        "model requests (turn: content the CLI sent after the previous assistant turn):",
    ]
    for req in fake.model_requests():
        messages = req.body.get("messages") or []
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
        lines.append(f"  turn {req.turn}: {json.dumps(messages[last + 1 :])[:1500]}")
    other = [f"{r.method} {r.path}" for r in fake.requests if r.turn is None]
    lines.append(f"other requests: {other}")
    lines.append("hook responses (event, exit, outcome, stdout, stderr):")
    lines.extend(
        f"  {e.get('hook_name')} exit={e.get('exit_code')} {e.get('outcome')} "
        f"stdout={str(e.get('stdout'))[:400]!r} stderr={str(e.get('stderr'))[:800]!r}"
        for e in run.hook_responses()
    )
    lines.append("claude stdout tail:\n" + _tail(run.stdout))
    lines.append("claude stderr tail:\n" + _tail(run.stderr))
    return "\n".join(lines)


@pytest.mark.e2e
def test_claude_cli_blocks_denied_bash_and_runs_allowed(claude_bin: Path, tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.create()
    with FakeAnthropic(SCRIPT) as fake:
        run = run_claude(claude_bin, sandbox, fake.url, "do the task")
    why = diagnostics(run, fake, sandbox.project)

    assert not run.timed_out, f"claude did not finish within {CLI_TIMEOUT_S}s\n{why}"
    assert run.returncode == 0, why
    # 1. The policy's deny stopped the command before it ran.
    assert not (sandbox.project / "pwned.txt").exists(), f"denied command ran\n{why}"
    # 3. Control: the allowed command did run, so (1) is not an artefact of a broken run.
    assert (sandbox.project / "allowed.txt").exists(), f"allowed command did not run\n{why}"

    # 2. The next model request carries the deny reason as an error tool_result.
    requests = fake.model_requests()
    assert {0, 1, 2} <= {r.turn for r in requests}, f"the scripted turns did not all run\n{why}"
    denied = find_result([r for r in requests if r.turn == 1], DENIED_CALL.id)
    assert denied is not None, f"no tool_result for the denied call in turn 1\n{why}"
    assert denied.get("is_error") is True, f"denied tool_result is not an error: {denied}\n{why}"
    assert DENY_REASON in result_text(denied), f"deny reason missing: {denied}\n{why}"

    allowed = find_result([r for r in requests if r.turn == 2], ALLOWED_CALL.id)
    assert allowed is not None, f"no tool_result for the allowed call in turn 2\n{why}"
    assert not allowed.get("is_error"), f"allowed call errored: {allowed}\n{why}"

    # watchdog ran on every event that fired and never failed. The CLI reports both crashes and
    # exit 2 (a deliberate block) as outcome "error"; only the former is a failure.
    responses = run.hook_responses()
    fired = {e.get("hook_event") for e in responses}
    expected = {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop"}
    assert expected <= fired, f"hooks missing for {sorted(expected - fired)}\n{why}"
    crashed = [e for e in responses if e.get("outcome") == "error" and e.get("exit_code") != 2]
    assert not crashed, f"watchdog hook failed on {[e.get('hook_name') for e in crashed]}\n{why}"

    # The session completed normally and recorded exactly the one denial.
    results = [e for e in run.events() if e.get("type") == "result"]
    assert results, f"no result event on stdout\n{why}"
    assert results[-1].get("is_error") is False, why
    denials = results[-1].get("permission_denials") or []
    assert [d.get("tool_use_id") for d in denials] == [DENIED_CALL.id], why
