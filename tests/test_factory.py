"""`watchdog hook --harness factory`: Droid's payloads in both spellings, its tool names on the
normalized action, every verb's exact answer, and the `hooks` key of .factory/settings.json.

Expected outputs are Claude Code's (tests/test_compat_cupcake.py) with the differences
watchdog/harnesses/factory.py documents: never a `permissionDecision: "allow"` (the first hook
with a decision wins on Droid), no ask and no additionalContext on PreToolUse, and exit 2 with
the reason on stderr when PreToolUse, UserPromptSubmit or PreCompact is blocked.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, isolated_env, rego_policy, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.decisions import ALLOW, ASK, DENY, HALT, MODIFY, Decision
from watchdog.errors import ConfigError, EventError
from watchdog.harnesses import factory

FIXTURES = REPO / "tests" / "fixtures" / "factory"
EVENTS = ["PreToolUse", "PostToolUse", "UserPromptSubmit", "Notification", "Stop",
          "SubagentStop", "PreCompact", "SessionStart", "SessionEnd"]
COMMAND = "/opt/wd/bin/watchdog hook --harness factory"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def run_hook(env: dict[str, str], event: Any, policy_dir: Path) -> Any:
    cmd = ["hook", "--harness", "factory", "--policy-dir", str(policy_dir)]
    return run_cli(cmd, env, json.dumps(event))


# --------------------------------------------------------------------------------------------
# parse


@pytest.mark.parametrize("event", EVENTS)
def test_camel_and_snake_parse_to_the_same_event(event: str) -> None:
    """Both spellings of the common fields give the same name, session, tool and action."""
    snake = factory.parse(fixture(f"{event}.snake"))
    camel = factory.parse(fixture(f"{event}.camel"))
    fields = ("harness", "name", "session_id", "cwd", "tool_name", "tool_input", "action")
    assert [getattr(camel, f) for f in fields] == [getattr(snake, f) for f in fields]
    assert snake.name == event and snake.session_id.startswith("5b1e")
    assert snake.norm.event == event


@pytest.mark.parametrize("event", EVENTS)
def test_raw_keeps_the_payload_and_adds_snake_case_aliases(event: str) -> None:
    """Every key stays as sent; a camelCase payload also gets the snake_case common fields
    (what Cupcake policies read), and a snake_case payload is passed on unchanged."""
    snake, camel = fixture(f"{event}.snake"), fixture(f"{event}.camel")
    assert factory.parse(snake).raw == snake
    raw = factory.parse(camel).raw
    assert {k: raw[k] for k in camel} == camel
    for alias in ("hook_event_name", "session_id", "transcript_path", "permission_mode"):
        assert raw[alias] == snake[alias]
    assert "hook_event_name" not in camel  # parse copied, never changed the payload


def test_snake_case_wins_when_both_spellings_are_sent() -> None:
    payload = {**fixture("Stop.snake"), "hookEventName": "Other", "sessionId": "camel"}
    event = factory.parse(payload)
    assert (event.name, event.session_id) == ("Stop", fixture("Stop.snake")["session_id"])
    assert event.raw == payload


@pytest.mark.parametrize("payload", [[], "PreToolUse", {"session_id": "s"},
                                     {"hookEventName": 3}, {"hook_event_name": ""}],
                         ids=["list", "string", "no-name", "name-not-string", "empty-name"])
def test_not_an_event_is_an_event_error(payload: Any) -> None:
    with pytest.raises(EventError, match="Droid|hook_event_name"):
        factory.parse(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["hook_event_name", "hookEventName", "session_id", "sessionId", "cwd",
                        "tool_name", "tool_input", "transcriptPath", "permissionMode"])


@settings(max_examples=100, deadline=None)
@given(payload=JSON | st.dictionaries(KEYS, JSON, max_size=6))
def test_any_json_is_an_event_or_an_event_error(payload: Any) -> None:
    try:
        event = factory.parse(payload)
    except EventError:
        return
    assert event.name and event.norm.event
    assert {k: event.raw[k] for k in payload} == payload


TOOLS = [
    ("Execute", "Bash", "shell", {"command": "rm -rf ~"}),
    ("Read", "Read", "read", {"paths": ("/home/u/app/.env",)}),
    ("Edit", "Edit", "edit", {"paths": ("/home/u/app/a.py",), "content": "print(2)",
                              "old_content": "print(1)"}),
    ("MultiEdit", "MultiEdit", "edit", {"content": "b"}),
    ("Create", "Write", "write", {"paths": ("/home/u/app/b.py",), "content": "x = 1\n"}),
    ("ApplyPatch", "Edit", "edit", {"paths": ("src/app.py", "src/new.py"),
                                    "content": 'print("Hello")\nx = 1',
                                    "old_content": 'print("Hi")'}),
    ("LS", "LS", "search", {"paths": ("/home/u/app",)}),
    ("Grep", "Grep", "search", {}),
    ("Glob", "Glob", "search", {}),
    ("WebSearch", "WebSearch", "web", {}),
    ("FetchUrl", "WebFetch", "web", {"url": "https://docs.factory.ai/reference/hooks-reference"}),
    ("Task", "Task", "subagent", {}),
    ("TodoWrite", "TodoWrite", "other", {}),
    ("mcp__github__create_issue", "mcp__github__create_issue", "mcp",
     {"mcp_server": "github", "mcp_tool": "create_issue"}),
]


@pytest.mark.parametrize(("tool", "norm", "tool_class", "fields"), TOOLS,
                         ids=[t[0] for t in TOOLS])
def test_tool_names_map_onto_claude_codes(tool: str, norm: str, tool_class: str,
                                          fields: dict[str, Any]) -> None:
    """Droid's tool names become Claude Code's in the action; the Event keeps the native one."""
    event = factory.parse(fixture(f"tool.{tool}"))
    assert (event.tool_name, event.norm.tool, event.norm.tool_class) == (tool, norm, tool_class)
    assert event.norm.kind == "pre_tool" and event.norm.event == "PreToolUse"
    for key, value in fields.items():
        assert getattr(event.norm, key) == value, key


def test_edit_arguments_get_claude_key_names_in_the_action_only() -> None:
    event = factory.parse(fixture("tool.Edit"))
    assert event.tool_input == fixture("tool.Edit")["tool_input"]
    assert event.norm.tool_input is not None
    assert event.norm.tool_input["old_string"] == "print(1)"
    assert event.norm.tool_input["old_str"] == "print(1)"


def test_unified_diff_patch_paths() -> None:
    patch = ("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
             "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n--- not a header\n")
    assert factory.patch_paths(patch) == ("x.py", "gone.txt")
    event = factory.parse({**fixture("tool.ApplyPatch"), "tool_input": {"patch": patch}})
    assert event.norm.paths == ("x.py", "gone.txt")
    assert event.norm.content == "b"


# --------------------------------------------------------------------------------------------
# render


@pytest.mark.parametrize("decision", [
    Decision(ALLOW), Decision(ALLOW, context=("ctx",)), Decision(ALLOW, agent_messages=("m",)),
    Decision(MODIFY, "r", updated_input={"command": "echo"}), Decision(ASK, "r"),
    Decision(DENY, "r"), Decision(HALT, "r"),
], ids=["allow", "allow-context", "allow-message", "modify", "ask", "deny", "halt"])
def test_pre_tool_use_never_says_allow(decision: Decision) -> None:
    """The first hook with a permissionDecision wins on Droid: we never emit an allow."""
    reply = factory.render(decision, factory.parse(fixture("PreToolUse.snake")))
    hso = json.loads(reply.stdout).get("hookSpecificOutput", {})
    assert hso.get("permissionDecision") != "allow"
    assert "additionalContext" not in hso
    if decision.verb == ALLOW:
        assert reply == ("{}\n", 0, "")


def test_warning_is_a_message_never_a_decision() -> None:
    reply = factory.HARNESS.warning("Redis is down", None)
    assert json.loads(reply.stdout) == {"systemMessage": "watchdog: Redis is down"}
    assert reply.exit_code == 0


VERBS = ["halt", "deny", "block", "ask", "modify", "add_context", "none"]
MODIFY_UPDATE = {"command": "echo safe", "extra": {"k": 1}}
ASK_AS_DENY = ("R-ask (a person must approve this, and factory cannot ask here: run it "
               "yourself if it is what you want, or change the rule)")


def _rule(verb: str, severity: str = "HIGH", **extra: Any) -> str:
    obj = {"rule_id": f"V-{verb.upper()}", "reason": f"R-{verb}", "severity": severity, **extra}
    return f'{verb} contains {json.dumps(obj)} if {{\n\tinput.test_verb == "{verb}"\n}}\n'


VERBS_POLICY = "\n".join([
    _rule("halt"), _rule("deny"), _rule("block"), _rule("ask", "MEDIUM"),
    _rule("modify", "MEDIUM", priority=50, updated_input=MODIFY_UPDATE),
    'add_context contains "ctx-add" if {\n\tinput.test_verb == "add_context"\n}\n',
])


def expected(event: str, verb: str) -> tuple[dict[str, Any], int]:
    """The answer and exit code for each verb on each Droid event (module docstring)."""
    reason = f"R-{verb}"
    halted = {"continue": False, "stopReason": reason}
    block = {"decision": "block", "reason": reason}
    exit2 = 2 if event in ("PreToolUse", "UserPromptSubmit", "PreCompact") else 0
    if verb in ("halt", "deny", "block") or (verb == "ask" and event == "PreToolUse"):
        halt = verb == "halt"
        if event in ("Notification", "SessionEnd"):
            note = f"watchdog would have blocked this (factory {event} cannot be stopped): "
            return {"systemMessage": note + reason}, 0
        if event == "PreToolUse":
            text = ASK_AS_DENY if verb == "ask" else reason
            out: dict[str, Any] = {"hookSpecificOutput": {
                "hookEventName": event, "permissionDecision": "deny",
                "permissionDecisionReason": text}}
        elif event in ("Stop", "SubagentStop"):
            return (halted if halt else block), 0
        elif event == "SessionStart":
            return halted, 0
        else:
            out = block
        return ({**out, **halted} if halt else out), exit2
    context = {"PostToolUse", "UserPromptSubmit", "SessionStart"}
    if verb == "ask" and event in context:
        return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": reason}}, 0
    if verb == "modify" and event == "PreToolUse":
        merged = {**fixture("PreToolUse.snake")["tool_input"], **MODIFY_UPDATE}
        return {"hookSpecificOutput": {"hookEventName": event, "updatedInput": merged}}, 0
    if verb == "modify" and event in ("UserPromptSubmit", "SessionStart"):
        return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": reason}}, 0
    if verb == "add_context" and event in context:
        return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": "ctx-add"}}, 0
    return {}, 0


@pytest.fixture(scope="module")
def verbs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    base = tmp_path_factory.mktemp("factory-verbs")
    root = PolicyRoot(base / "project" / ".cupcake", harness="factory")
    root.add("verbs.rego", rego_policy("cupcake.policies.verbs", VERBS_POLICY, events=EVENTS))
    yield isolated_env(base / "home"), root.path


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("verb", VERBS)
def test_verb_output_per_event(verbs_root: Any, verb: str, event: str) -> None:
    """Each verb on each event, through the hook subprocess: exact stdout and exit code, and
    the reason on stderr whenever the hook exits 2."""
    env, root = verbs_root
    run = run_hook(env, {**fixture(f"{event}.snake"), "test_verb": verb}, root)
    out, code = expected(event, verb)
    assert (run.json, run.code) == (out, code), run.stderr
    if code == 2:
        said = out.get("hookSpecificOutput", {}).get("permissionDecisionReason", out.get("reason"))
        assert said in run.stderr
    if event == "PreToolUse":
        assert '"allow"' not in run.stdout


@pytest.mark.parametrize("event", EVENTS)
def test_camel_case_payload_gets_the_same_answer(verbs_root: Any, event: str) -> None:
    env, root = verbs_root
    run = run_hook(env, {**fixture(f"{event}.camel"), "test_verb": "deny"}, root)
    assert (run.json, run.code) == expected(event, "deny")


# --------------------------------------------------------------------------------------------
# the hook as Droid runs it


@pytest.mark.parametrize("variant", ["snake", "camel"])
def test_default_pack_denies_rm_rf_home_via_execute(env: dict[str, str], variant: str) -> None:
    """The shipped pack (policies/common/, routed on Bash) sees Droid's Execute as Bash."""
    payload = {**fixture(f"PreToolUse.{variant}"), "tool_input": {"command": "rm -rf ~"}}
    run = run_hook(env, payload, REPO / "policies")
    assert run.code == 2, (run.stdout, run.stderr)
    assert run.hso["permissionDecision"] == "deny"
    assert "Recursively deleting ~" in run.hso["permissionDecisionReason"]
    assert run.hso["permissionDecisionReason"] in run.stderr


@pytest.mark.parametrize("stdin", ["", '{"hook_event_name": "PreToolUse", "tool_na', "[]"],
                         ids=["empty", "truncated", "not-an-object"])
def test_bad_input_fails_open_with_a_message(env: dict[str, str], stdin: str) -> None:
    """No decision and a message for the person (on_error = open), never a traceback."""
    run = run_cli(["hook", "--harness", "factory"], env, stdin)
    assert run.code == 0
    assert set(run.json) == {"systemMessage"}


def test_bad_input_fails_closed_with_exit_2(env: dict[str, str]) -> None:
    run = run_cli(["hook", "--harness", "factory"], {**env, "WATCHDOG_ON_ERROR": "closed"}, "")
    assert (run.code, run.stdout) == (2, "")


def test_unknown_event_passes_through(env: dict[str, str]) -> None:
    """An event Droid adds later is answered with no opinion."""
    payload = {**fixture("Stop.snake"), "hook_event_name": "PostToolBatch"}
    run = run_hook(env, payload, REPO / "policies")
    assert (run.stdout, run.code) == ("{}\n", 0)


def test_default_pack_is_silent_on_a_harmless_command(env: dict[str, str]) -> None:
    payload = {**fixture("PreToolUse.snake"), "tool_input": {"command": "ls -la"}}
    run = run_hook(env, payload, REPO / "policies")
    assert (run.stdout, run.code) == ("{}\n", 0)


CUPCAKE_POLICY = rego_policy(
    "cupcake.policies.factory_push",
    """
    deny contains decision if {
        input.hook_event_name == "PreToolUse"
        contains(input.tool_input.command, "--force")
        decision := {"rule_id": "NO-FORCE", "reason": "No force pushes", "severity": "HIGH"}
    }
    """,
    events=["PreToolUse"], tools=["Execute"],
)


@pytest.mark.parametrize("variant", ["snake", "camel"])
def test_cupcake_policy_routed_on_execute(tmp_path: Path, env: dict[str, str],
                                          variant: str) -> None:
    """A Cupcake policy in .cupcake/policies/factory/ routes on Droid's own names and reads
    input.hook_event_name, which a camelCase payload gets as an alias."""
    root = PolicyRoot(tmp_path / "project" / ".cupcake", harness="factory")
    root.add("push.rego", CUPCAKE_POLICY)
    run = run_hook(env, fixture(f"PreToolUse.{variant}"), root.path)
    assert run.json == {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "deny",
        "permissionDecisionReason": "No force pushes"}}
    assert run.code == 2 and "No force pushes" in run.stderr
    other = {**fixture(f"PreToolUse.{variant}"), "tool_name": "Bash"}
    assert run_hook(env, other, root.path).stdout == "{}\n"  # routed on Execute, not Bash


# --------------------------------------------------------------------------------------------
# setup: .factory/settings.json


def ours(command: str) -> bool:
    return "watchdog hook" in command


USER_CONFIG: dict[str, Any] = {
    "autonomyLevel": "auto-medium",
    "hooks": {
        "PreToolUse": [{"matcher": "Execute", "hooks": [
            {"type": "command", "command": "rtk hook droid", "timeout": 10}]}],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send droid"}]}],
    },
}


def test_config_path() -> None:
    setup = factory.HARNESS.setup
    assert setup.config_path(Path("/p"), Path("/h"), False) == Path("/p/.factory/settings.json")
    assert setup.config_path(Path("/p"), Path("/h"), True) == Path("/h/.factory/settings.json")


def test_add_registers_every_event_next_to_the_users_hooks() -> None:
    before = json.loads(json.dumps(USER_CONFIG))
    out = factory.add(USER_CONFIG, COMMAND, False)
    assert before == USER_CONFIG  # pure: the argument is not changed
    ours_entry = {"type": "command", "command": COMMAND, "timeout": 30}
    hooks = out["hooks"]
    assert hooks["PreToolUse"] == [*USER_CONFIG["hooks"]["PreToolUse"],
                                   {"matcher": "*", "hooks": [ours_entry]}]
    assert hooks["PostToolUse"] == [{"matcher": "*", "hooks": [ours_entry]}]
    for event in ("UserPromptSubmit", "SessionStart", "Stop", "SubagentStop"):
        assert hooks[event] == [{"hooks": [ours_entry]}]
    assert hooks["Notification"] == USER_CONFIG["hooks"]["Notification"]
    assert out["autonomyLevel"] == "auto-medium"
    assert "PermissionRequest" not in hooks


def test_add_is_idempotent_and_fail_closed_changes_nothing() -> None:
    once = factory.add(USER_CONFIG, COMMAND, False)
    assert factory.add(once, COMMAND, False) == once
    assert factory.add(once, COMMAND, True) == once
    assert factory.add({}, COMMAND, True) == factory.add({}, COMMAND, False)


def test_remove_takes_out_exactly_ours() -> None:
    installed = factory.add(USER_CONFIG, COMMAND, False)
    shared = json.loads(json.dumps(installed))
    shared["hooks"]["Stop"][0]["hooks"].append({"type": "command", "command": "say done"})
    assert factory.remove(installed, ours) == USER_CONFIG
    left = factory.remove(shared, ours)
    assert left["hooks"]["Stop"] == [{"hooks": [{"type": "command", "command": "say done"}]}]
    assert factory.remove(factory.add({}, COMMAND, False), ours) == {}
    assert factory.remove(USER_CONFIG, ours) == USER_CONFIG


def test_add_updates_an_older_watchdog_entry_in_place() -> None:
    """A new path or flag for our hook replaces the old command instead of adding a copy."""
    old = factory.add(USER_CONFIG, "watchdog hook --harness factory", False)
    new = factory.add(old, COMMAND + " --watchdog", False)
    assert new == factory.add(USER_CONFIG, COMMAND + " --watchdog", False)


def test_init_check_event_is_denied_by_the_hook(tmp_path: Path, env: dict[str, str]) -> None:
    """`init`'s smoke check: the sample event, as Droid sends it, is denied by the real hook."""
    from watchdog import hook_check

    setup = factory.HARNESS.setup
    assert setup.sample is not None
    event = factory.parse(setup.sample(tmp_path))
    assert (event.tool_name, event.norm.tool, event.norm.command) == ("Execute", "Bash",
                                                                     "rm -rf ~")
    command = (f"{sys.executable} -m watchdog hook --harness factory "
               f"--policy-dir {REPO / 'policies'}")
    check = hook_check.check_hook(command, tmp_path, env, setup)
    assert check.ok and not check.skipped, check


@pytest.mark.parametrize("config", [
    {"hooks": []}, {"hooks": {"PreToolUse": {}}}, {"hooks": {"Stop": ["x"]}},
    {"hooks": {"Stop": [{"hooks": "x"}]}},
], ids=["hooks-list", "event-object", "group-string", "inner-string"])
def test_wrong_shapes_are_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="fix it by hand"):
        factory.add(config, COMMAND, False)


# --------------------------------------------------------------------------------------------
# capabilities and facts


def test_capabilities_and_facts() -> None:
    h = factory.HARNESS
    pre = h.capabilities("PreToolUse")
    assert (pre.block, pre.ask, pre.modify, pre.context) == (True, False, True, False)
    assert h.capabilities("UserPromptSubmit").context
    assert h.capabilities("Stop").block_stop
    assert not h.capabilities("Notification").block and not h.capabilities("SessionEnd").halt
    assert not h.capabilities("PermissionRequest").block  # no such event on Droid
    assert set(h.events) == set(EVENTS)
    assert h.facts.allow_overrides and not h.facts.async_hooks
    assert (h.facts.timeout, h.facts.timeout_unit) == (60, "s")
    pre_event = h.parse(fixture("PreToolUse.snake"))
    assert h.gates(pre_event) and not h.gates(h.parse(fixture("Stop.snake")))
    assert h.twin_key(pre_event) is None
