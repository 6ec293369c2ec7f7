"""Property tests: whatever arrives on stdin, the hook answers with valid output and no
traceback. Most examples run `pipeline.run` in-process (the same code the CLI calls); a smaller
set goes through the real subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PolicyRoot, rego_policy, run_cli
from watchdog import pipeline

EVENTS = ["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SessionStart",
          "PermissionRequest", "Notification", "PreCompact", "SubagentStop", "Whatever"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"hook_event_name": st.sampled_from(EVENTS) | json_values},
    optional={
        "tool_name": st.sampled_from(["Bash", "Write", "Read"]) | json_values,
        "tool_input": st.fixed_dictionaries(
            {}, optional={"command": st.text(max_size=40) | json_values,
                          "file_path": st.text(max_size=30) | json_values}) | json_values,
        "cwd": st.text(max_size=20) | json_values,
        "session_id": json_values,
        "prompt": json_values,
    },
)
stdin_values = json_values | event_like


@pytest.fixture(scope="module")
def policy_root(tmp_path_factory: pytest.TempPathFactory) -> PolicyRoot:
    root = PolicyRoot(tmp_path_factory.mktemp("props") / ".cupcake")
    root.add("all.rego", rego_policy(
        "cupcake.policies.all",
        """
        deny contains {"rule_id": "D", "reason": "no rm", "severity": "HIGH"} if {
            contains(input.tool_input.command, "rm")
        }
        ask contains {"rule_id": "A", "reason": "env", "severity": "LOW"} if {
            contains(input.tool_input.file_path, ".env")
        }
        add_context contains "ctx" if input.prompt
        halt contains {"rule_id": "H", "reason": "halt", "severity": "HIGH"} if {
            input.prompt == "halt"
        }
        """,
        events=["PreToolUse", "UserPromptSubmit", "Stop", "PostToolUse", "PermissionRequest"],
    ))
    return root


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / "c"),
            "XDG_STATE_HOME": str(home / "s"), "XDG_CONFIG_HOME": str(home / "cfg")}


def check_output(stdout: str, code: int, payload: Any) -> None:
    assert code in (0, 2)
    if code == 2:
        assert stdout == ""
        return
    assert stdout.endswith("\n") and stdout.count("\n") == 1
    obj = json.loads(stdout)
    assert isinstance(obj, dict)
    assert set(obj) <= {"hookSpecificOutput", "decision", "reason", "continue", "stopReason",
                        "systemMessage"}
    if "hookSpecificOutput" in obj:
        assert isinstance(payload, dict)
        assert obj["hookSpecificOutput"]["hookEventName"] == payload.get("hook_event_name")
    if "decision" in obj:
        assert obj["decision"] == "block" and isinstance(obj["reason"], str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=stdin_values, on_error=st.sampled_from(["open", "closed"]))
def test_any_json_gives_valid_output(
    payload: Any, on_error: str, policy_root: PolicyRoot, user_env: dict[str, str]
) -> None:
    env = {**user_env, "WATCHDOG_ON_ERROR": on_error}
    result = pipeline.run("claude", json.dumps(payload).encode(), env=env,
                      policy_dir=str(policy_root.path))
    assert not any("Traceback" in line for line in result.stderr)
    assert not any("internal error" in line for line in result.stderr), result.stderr
    check_output(result.stdout, result.exit_code, payload)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=event_like)
def test_any_event_through_the_real_process(
    payload: Any, policy_root: PolicyRoot, user_env: dict[str, str]
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
    env.update(user_env)
    run = run_cli(["hook", "--policy-dir", str(policy_root.path)], env, json.dumps(payload))
    check_output(run.stdout, run.code, payload)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes, policy_root: PolicyRoot, user_env: dict[str, str]) -> None:
    result = pipeline.run("claude", data, env=user_env, policy_dir=str(policy_root.path))
    try:
        payload = json.loads(data.decode("utf-8-sig", errors="replace"))
    except ValueError:
        payload = None
    check_output(result.stdout, result.exit_code, payload)
    assert not any("internal error" in line for line in result.stderr), result.stderr


def test_log_never_holds_a_traceback_for_expected_errors(user_env: dict[str, str],
                                                         policy_root: PolicyRoot) -> None:
    pipeline.run("claude", b"{bad", env=user_env, policy_dir=str(policy_root.path))
    log = Path(user_env["XDG_STATE_HOME"]) / "watchdog" / "log.jsonl"
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["event"] == "event_error" and "traceback" not in last
