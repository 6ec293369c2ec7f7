"""Real Claude Code hook payloads (captured from the CLI, 2.1.197) through `watchdog hook`.

Every sample payload, fed to the hook with a small policy root, must give exit 0, one JSON
object on stdout that uses only the keys Claude Code documents for that event
(harness-protocols.md §1.3), and name the firing event in `hookSpecificOutput`. The samples live
in ../shared/reference/claude-hook-samples/; without that folder this module is skipped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, PolicyRoot, claude_event, isolated_env, rego_policy, run_cli

if not SAMPLES.is_dir():
    pytest.skip(
        f"Claude Code hook samples not found at {SAMPLES} (they live outside this project, "
        "in ../shared/reference/claude-hook-samples/)",
        allow_module_level=True,
    )

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
ROWS = [
    json.loads(line)
    for line in (SAMPLES / "all-payloads.jsonl").read_text().splitlines()
    if line.strip()
]
ROW_IDS = [f"{i:03d}-{row['session']}-{row['payload']['hook_event_name']}"
           for i, row in enumerate(ROWS)]

CONTEXT = "watchdog sample context"

# Top-level keys of Claude Code's SyncHookJSONOutput valid on every event.
COMMON_KEYS = {"continue", "suppressOutput", "stopReason", "systemMessage", "terminalSequence"}
# Events that take a top-level `decision: "block"` with a `reason`.
BLOCK_EVENTS = {
    "UserPromptSubmit", "UserPromptExpansion", "PostToolUse", "PostToolUseFailure",
    "PostToolBatch", "Stop", "SubagentStop", "ConfigChange", "PreCompact", "TaskCreated",
}
# hookSpecificOutput keys per event (besides hookEventName); absent event = no hso at all.
HSO_KEYS: dict[str, set[str]] = {
    "PreToolUse": {
        "permissionDecision", "permissionDecisionReason", "updatedInput", "additionalContext",
    },
    "PermissionRequest": {"decision"},
    "PostToolUse": {
        "additionalContext", "updatedToolOutput", "updatedMCPToolOutput", "classifierContext",
    },
    "PostToolUseFailure": {"additionalContext"},
    "PostToolBatch": {"additionalContext"},
    "Notification": {"additionalContext"},
    "Setup": {"additionalContext"},
    "SubagentStart": {"additionalContext"},
    "PostModelSwitch": {"additionalContext"},
    "UserPromptSubmit": {"additionalContext", "sessionTitle", "suppressOriginalPrompt"},
    "UserPromptExpansion": {"additionalContext", "suppressOriginalPrompt"},
    "SessionStart": {
        "additionalContext", "initialUserMessage", "sessionTitle", "watchPaths", "reloadSkills",
    },
    "Stop": {"additionalContext"},
    "SubagentStop": {"additionalContext"},
    "PermissionDenied": {"retry"},
    "PreModelSwitch": {"permissionDecision", "permissionDecisionReason"},
    "Elicitation": {"action", "content"},
    "ElicitationResult": {"action", "content"},
    "CwdChanged": {"watchPaths"},
    "FileChanged": {"watchPaths"},
    "WorktreeCreate": {"worktreePath"},
    "MessageDisplay": {"displayContent"},
}

POLICIES = {
    "no_rm.rego": rego_policy(
        "cupcake.policies.samples.no_rm",
        """
        deny contains {"rule_id": "NO-RM-RF", "reason": "rm -rf is not allowed",
                       "severity": "HIGH"} if {
            input.hook_event_name == "PreToolUse"
            input.tool_name == "Bash"
            contains(input.tool_input.command, "rm -rf")
        }
        """,
        events=["PreToolUse"], tools=["Bash"],
    ),
    "prompt_context.rego": rego_policy(
        "cupcake.policies.samples.prompt_context",
        f"""
        add_context contains "{CONTEXT}" if {{
            input.hook_event_name == "UserPromptSubmit"
        }}
        """,
        events=["UserPromptSubmit"],
    ),
    "env_write.rego": rego_policy(
        "cupcake.policies.samples.env_write",
        """
        ask contains {"rule_id": "ENV-WRITE", "reason": "writing .env needs a human",
                      "severity": "MEDIUM"} if {
            input.hook_event_name == "PreToolUse"
            input.tool_name == "Write"
            regex.match(`(^|/)\\.env$`, input.tool_input.file_path)
        }
        """,
        events=["PreToolUse"],
    ),
}


def make_env(home: Path) -> dict[str, str]:
    """Same isolation as conftest's `env` fixture, for module-scoped fixtures."""
    return isolated_env(home)


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Any]]:
    base = tmp_path_factory.mktemp("samples")
    root = PolicyRoot(base / "project" / ".cupcake")
    for name, text in POLICIES.items():
        root.add(name, text)
    yield make_env(base / "home"), root


def feed(
    sample_root: tuple[dict[str, str], PolicyRoot], payload: Any,
    extra_env: dict[str, str] | None = None,
) -> Any:
    env, root = sample_root
    cmd = ["hook", "--harness", "claude", "--policy-dir", str(root.path)]
    return run_cli(cmd, {**env, **(extra_env or {})}, json.dumps(payload))


def expected(payload: dict[str, Any]) -> dict[str, Any]:
    """What the three sample policies decide for this payload."""
    name = payload["hook_event_name"]
    tool_input = payload.get("tool_input") or {}
    if name == "UserPromptSubmit":
        return {"hookSpecificOutput": {"hookEventName": name, "additionalContext": CONTEXT}}
    if name == "PreToolUse" and payload.get("tool_name") == "Bash" and "rm -rf" in str(
        tool_input.get("command", "")
    ):
        return {
            "hookSpecificOutput": {
                "hookEventName": name, "permissionDecision": "deny",
                "permissionDecisionReason": "rm -rf is not allowed",
            }
        }
    if name == "PreToolUse" and payload.get("tool_name") == "Write" and re.search(
        r"(^|/)\.env$", str(tool_input.get("file_path", ""))
    ):
        return {
            "hookSpecificOutput": {
                "hookEventName": name, "permissionDecision": "ask",
                "permissionDecisionReason": "writing .env needs a human",
            }
        }
    return {}


def check_response(run: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Exit 0, one JSON object on one line, only documented keys for the firing event."""
    name = payload["hook_event_name"]
    assert run.code == 0, (run.code, run.stdout, run.stderr)
    assert run.stdout.endswith("\n") and run.stdout.count("\n") == 1, repr(run.stdout)
    out = json.loads(run.stdout)
    assert isinstance(out, dict), run.stdout
    allowed = COMMON_KEYS | ({"decision", "reason"} if name in BLOCK_EVENTS else set())
    if name in HSO_KEYS:
        allowed |= {"hookSpecificOutput"}
    assert set(out) <= allowed, f"{name}: undocumented top-level keys {set(out) - allowed}"
    if "decision" in out:
        assert out["decision"] == "block" and isinstance(out.get("reason"), str), out
    if "hookSpecificOutput" in out:
        hso = out["hookSpecificOutput"]
        assert hso.get("hookEventName") == name, out
        extra = set(hso) - {"hookEventName"} - HSO_KEYS[name]
        assert not extra, f"{name}: undocumented hookSpecificOutput keys {extra}"
    return out


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_sample_event(sample_root: Any, path: Path) -> None:
    """Each per-event sample payload gets a valid, documented Claude response."""
    payload = json.loads(path.read_text())
    out = check_response(feed(sample_root, payload), payload)
    assert out == expected(payload)


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_sample_session_payload(sample_root: Any, row: dict[str, Any]) -> None:
    """Every hook call of the captured sessions, with its env, gets a valid response."""
    payload = row["payload"]
    out = check_response(feed(sample_root, payload, extra_env=row.get("env")), payload)
    assert out == expected(payload)


def _first(event: str, tool: str) -> dict[str, Any]:
    for row in ROWS:
        payload = row["payload"]
        if payload["hook_event_name"] == event and payload.get("tool_name") == tool:
            return copy.deepcopy(payload)
    pytest.skip(f"no {event} {tool} payload in the samples")


def test_real_bash_payload_denied(sample_root: Any) -> None:
    """A real PreToolUse Bash payload with an `rm -rf` command is denied."""
    payload = _first("PreToolUse", "Bash")
    payload["tool_input"]["command"] = "rm -rf victim"
    out = check_response(feed(sample_root, payload), payload)
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert out == expected(payload)


def test_real_write_payload_to_env_asks(sample_root: Any) -> None:
    """A real PreToolUse Write payload to `.env` asks, with the policy's reason."""
    payload = _first("PreToolUse", "Write")
    payload["tool_input"]["file_path"] = payload["cwd"] + "/.env"
    out = check_response(feed(sample_root, payload), payload)
    assert out["hookSpecificOutput"]["permissionDecision"] == "ask"
    assert out == expected(payload)


def test_future_event_passes_through(sample_root: Any) -> None:
    """An unknown future event with unknown fields gets `{}` and exit 0."""
    payload = claude_event(
        "FutureEvent", some_new_field="value", nested_new={"a": [1, 2]}, future_flag=True,
    )
    run = feed(sample_root, payload)
    assert run.code == 0 and run.stdout == "{}\n", (run.stdout, run.stderr)


def test_policy_routed_to_future_event_reads_new_field(root: PolicyRoot, hook: Any) -> None:
    """A policy routed to an unknown event fires on it and reads its new fields."""
    root.add(
        "future.rego",
        rego_policy(
            "cupcake.policies.future",
            """
            deny contains {"rule_id": "FUTURE", "reason": concat("", ["saw ",
                           input.some_new_field]), "severity": "HIGH"} if {
                input.hook_event_name == "FutureEvent"
                input.some_new_field
            }
            """,
            events=["FutureEvent"],
        ),
    )
    run = hook(claude_event("FutureEvent", some_new_field="the future"), policy_dir=root)
    assert run.code == 0
    assert run.json == {"continue": False, "stopReason": "saw the future"}
    run = hook(claude_event("FutureEvent", other_field=1), policy_dir=root)
    assert run.code == 0 and run.stdout == "{}\n"


def test_unknown_fields_on_known_event_reach_policies(root: PolicyRoot, hook: Any) -> None:
    """Unknown top-level and tool_input fields on a known event reach the policies."""
    root.add(
        "new_fields.rego",
        rego_policy(
            "cupcake.policies.new_fields",
            """
            deny contains {"rule_id": "NEW", "reason": "new fields seen", "severity": "HIGH"} if {
                input.future_flag == true
                input.tool_input.new_param == "x"
            }
            """,
            events=["PreToolUse"], tools=["Bash"],
        ),
    )
    payload = claude_event(
        "PreToolUse", tool_name="Bash", tool_use_id="t1", future_flag=True,
        tool_input={"command": "ls", "new_param": "x"},
    )
    out = hook(payload, policy_dir=root).json
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert out["hookSpecificOutput"]["permissionDecisionReason"] == "new fields seen"
    payload["future_flag"] = False
    assert hook(payload, policy_dir=root).stdout == "{}\n"
