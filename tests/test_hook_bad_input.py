"""Bad input gets one clear line on stderr, never a traceback, and the configured fail mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PolicyRoot, bash, claude_event, rego_policy, run_cli

DENY_RM = rego_policy(
    "cupcake.policies.rm",
    """
    deny contains {"rule_id": "RM", "reason": "no rm", "severity": "HIGH"} if {
        contains(input.tool_input.command, "rm -rf")
    }
    """,
    events=["PreToolUse"], tools=["Bash"],
)


def _log(env: dict[str, str]) -> list[dict[str, object]]:
    path = Path(env["XDG_STATE_HOME"]) / "watchdog" / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    "stdin",
    [b"", b"   \n", b"{not json", b"[1, 2]", b'"a string"', b"{}", b'{"hook_event_name": 5}',
     b"\xff\xfe\x00garbage"],
    ids=["empty", "blank", "truncated", "array", "string", "no-event", "event-not-string",
         "binary"],
)
def test_bad_stdin_fails_open_with_a_warning(hook, root: PolicyRoot, env, stdin: bytes) -> None:
    """Fail open (default): exit 0, a systemMessage the user sees, one stderr line, a log record."""
    run = hook(stdin, policy_dir=root)
    assert run.code == 0
    assert set(run.json) == {"systemMessage"}
    assert run.json["systemMessage"].startswith("watchdog: not working")
    assert len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith("watchdog: ")
    assert _log(env)[-1]["event"] == "event_error"


@pytest.mark.parametrize("stdin", [b"", b"{oops"], ids=["empty", "truncated"])
def test_unreadable_event_fails_closed_with_exit_2(hook, root: PolicyRoot, stdin: bytes) -> None:
    """Fail closed when the event can't be read: exit 2 with the reason on stderr, no stdout."""
    run = hook(stdin, policy_dir=root, extra_env={"WATCHDOG_ON_ERROR": "closed"})
    assert run.code == 2
    assert run.stdout == ""
    assert "watchdog:" in run.stderr


def test_unknown_harness(hook, root: PolicyRoot) -> None:
    """An unknown --harness is a config error: fail open, naming the supported harnesses."""
    run = hook(bash("ls"), policy_dir=root, args=["--harness", "vscode"])
    assert run.code == 0
    assert "unknown harness 'vscode'" in run.json["systemMessage"]
    assert "claude" in run.stderr


def test_missing_policy_dir(hook, tmp_path: Path) -> None:
    """A --policy-dir that does not exist says so and what to do; closed mode denies the tool."""
    missing = tmp_path / "nope"
    run = hook(bash("ls"), policy_dir=missing)
    assert "does not exist" in run.json["systemMessage"]
    run = hook(bash("ls"), policy_dir=missing, extra_env={"WATCHDOG_ON_ERROR": "closed"})
    assert run.hso["permissionDecision"] == "deny"
    assert "does not exist" in run.hso["permissionDecisionReason"]


def test_compile_error_names_file_and_line(hook, root: PolicyRoot, env) -> None:
    """A policy that fails to compile: fail open, the message names file:line; logged."""
    bad = root.add("bad.rego", rego_policy(
        "cupcake.policies.bad", "deny contains d if { input.x == }", events=["PreToolUse"]))
    run = hook(bash("ls"), policy_dir=root)
    assert f"{bad}:10: Invalid boolean operator" in run.json["systemMessage"]
    record = _log(env)[-1]
    assert record["event"] == "policy_compile_error"
    assert any(str(bad) in p for p in record["problems"])


def test_compile_error_fails_closed_on_gating_events_only(hook, root: PolicyRoot) -> None:
    """Closed mode denies tool calls and blocks prompts, but never stops Stop or Notification."""
    root.add("bad.rego", rego_policy("cupcake.policies.bad", "deny contains d if { input.x == }",
                                     events=["PreToolUse"]))
    closed = {"WATCHDOG_ON_ERROR": "closed"}
    run = hook(bash("ls"), policy_dir=root, extra_env=closed)
    assert run.hso["permissionDecision"] == "deny"
    assert run.hso["permissionDecisionReason"].startswith("watchdog failed closed:")
    run = hook(claude_event("UserPromptSubmit", prompt="hi"), policy_dir=root, extra_env=closed)
    assert run.json["decision"] == "block"
    run = hook(claude_event("Stop", stop_hook_active=False), policy_dir=root, extra_env=closed)
    assert set(run.json) == {"systemMessage"}


def test_runtime_error_in_policy(hook, root: PolicyRoot) -> None:
    """A rule that errors at run time (conflicting values) fails open with rego's message."""
    root.add("conflict.rego", rego_policy(
        "cupcake.policies.conflict",
        """
        level := 1 if input.tool_name == "Bash"
        level := 2 if input.tool_input.command
        deny contains {"rule_id": "C", "reason": "r", "severity": "LOW"} if level > 5
        """,
        events=["PreToolUse"], tools=["Bash"]))
    run = hook(bash("ls"), policy_dir=root)
    assert "run time" in run.json["systemMessage"]
    assert "multiple outputs" in run.json["systemMessage"]


def test_malformed_decision_fails_open(hook, root: PolicyRoot) -> None:
    """A decision without severity is malformed: no decision, a warning naming the rule."""
    root.add("nosev.rego", rego_policy(
        "cupcake.policies.nosev",
        'deny contains {"rule_id": "NOSEV", "reason": "r"} if input.tool_name == "Bash"',
        events=["PreToolUse"], tools=["Bash"]))
    run = hook(bash("ls"), policy_dir=root)
    assert "NOSEV" in run.json["systemMessage"]
    assert "severity" in run.json["systemMessage"]


def test_unknown_event_and_fields_pass_through(hook, root: PolicyRoot) -> None:
    """Future events and fields are not errors: no decision unless a policy routes them."""
    root.add("rm.rego", DENY_RM)
    run = hook(claude_event("BrandNewEvent", shiny={"new": True}), policy_dir=root)
    assert run.code == 0 and run.json == {}
    run = hook({**bash("rm -rf build"), "future_field": [1, 2]}, policy_dir=root)
    assert run.hso["permissionDecision"] == "deny"


def test_unreadable_cache_still_decides(hook, root: PolicyRoot, env, tmp_path: Path) -> None:
    """A cache dir that can't be written: the decision is still right, with a stderr warning."""
    root.add("rm.rego", DENY_RM)
    blocked = tmp_path / "cachefile"
    blocked.write_text("not a dir")
    run = hook(bash("rm -rf x"), policy_dir=root, extra_env={"WATCHDOG_CACHE_DIR": str(blocked)})
    assert run.hso["permissionDecision"] == "deny"
    assert "cache dir" in run.stderr


def test_config_typo_is_reported_with_nearest_key(hook, root: PolicyRoot, env) -> None:
    """A misspelt key in watchdog.toml is an error naming the nearest valid key."""
    config = Path(env["XDG_CONFIG_HOME"]) / "watchdog"
    config.mkdir(parents=True)
    (config / "watchdog.toml").write_text('on_eror = "closed"\n')
    run = hook(bash("ls"), policy_dir=root)
    assert "on_eror" in run.json["systemMessage"]
    assert "on_error" in run.json["systemMessage"]


def test_config_file_sets_fail_closed(hook, root: PolicyRoot, env) -> None:
    """on_error in watchdog.toml applies; the environment overrides the file."""
    config = Path(env["XDG_CONFIG_HOME"]) / "watchdog"
    config.mkdir(parents=True)
    (config / "watchdog.toml").write_text('on_error = "closed"\n')
    run = hook(b"", policy_dir=root)
    assert run.code == 2
    run = hook(b"", policy_dir=root, extra_env={"WATCHDOG_ON_ERROR": "open"})
    assert run.code == 0


def test_usage_errors_exit_1_not_2(env) -> None:
    """argparse's exit 2 would read as 'block' to Claude Code: usage errors exit 1."""
    assert run_cli(["hook", "--bogus"], env).code == 1
    assert run_cli(["no-such-command"], env).code == 1
    assert run_cli([], env).code == 1


def test_no_policies_anywhere_the_default_pack_decides(hook, tmp_path: Path) -> None:
    """A project with no .watchdog/ or .cupcake/ and no global policies: the shipped default
    pack decides (a guard installed once must guard), and the answer says so."""
    project = tmp_path / "bare"
    project.mkdir()
    run = hook(bash("rm -rf /", cwd=str(project)), cwd=project)
    assert run.json["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "shipped default pack applies" in run.json["systemMessage"]


def test_json_marshal_of_input_arrays_works_and_stdout_stays_clean(hook, root: PolicyRoot) -> None:
    """rego-cpp mishandles input built through regopy.Input (json.marshal of an input array was
    undefined and printed on stdout); the hook passes input as JSON, so policies see the value
    and stdout holds exactly one JSON object."""
    root.add("marshal.rego", rego_policy(
        "cupcake.policies.marshal",
        'add_context contains json.marshal(input.tool_input.tags) if input.tool_input.tags',
        events=["PreToolUse"], tools=["Bash"]))
    event = {**bash("ls"), "tool_input": {"command": "ls", "tags": ["a", "b"]}}
    run = hook(event, policy_dir=root)
    assert run.stdout.count("\n") == 1
    assert run.hso["additionalContext"] == '["a","b"]'
