"""`watchdog hook --harness cursor`: parse, render, capabilities, twins and setup, and the hook as
Cursor runs it (a subprocess).

Expected answers are Cupcake 0.5.2's Cursor responses (cupcake.md §2.3, checklist 29-32) for the
events Cupcake knows, byte for byte, and the documented Cursor shapes (harness-protocols.md §2,
§11.3) for the others. Renders go through `degrade` first, as in the pipeline, so a policy's ask
where Cursor cannot ask is the documented deny.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, isolated_env, rego_policy, run_cli

from watchdog.decisions import ALLOW, ASK, BLOCK, DENY, HALT, MODIFY, Decision
from watchdog.errors import ConfigError, EventError
from watchdog.events import Event
from watchdog.harnesses import base, get
from watchdog.harnesses.cursor import HARNESS, SHAPES
from watchdog.harnesses.degrade import degrade
from watchdog.harnesses.hook_commands import is_ours

FIXTURES = Path(__file__).parent / "fixtures" / "cursor"
PAYLOADS = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}
CUPCAKE_EVENTS = (
    "beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "beforeSubmitPrompt", "stop",
    "afterShellExecution", "afterMCPExecution", "afterFileEdit", "afterAgentResponse",
    "afterAgentThought",
)
CANNOT_ASK = (" (a person must approve this, and cursor cannot ask here: run it yourself if it "
              "is what you want, or change the rule)")
UPDATE = {"command": "echo safe"}
VERBS: dict[str, Decision] = {
    "halt": Decision(HALT, "R-halt", ("V-HALT",), severity="HIGH"),
    "deny": Decision(DENY, "R-deny", ("V-DENY",), severity="HIGH"),
    "block": Decision(BLOCK, "R-block", ("V-BLOCK",), severity="HIGH"),
    "ask": Decision(ASK, "R-ask", ("V-ASK",), severity="MEDIUM"),
    "modify": Decision(MODIFY, "R-modify", ("V-MODIFY",), updated_input=UPDATE),
    "allow": Decision(ALLOW),
    "allow+context": Decision(ALLOW, context=("ctx-add",)),
}
#: Output fields Cursor documents per event (`question`: Cupcake's, which Cursor tolerates).
ACCEPTED: dict[str, set[str]] = {
    "beforeShellExecution": {"permission", "user_message", "agent_message", "question"},
    "beforeMCPExecution": {"permission", "user_message", "agent_message", "question"},
    "preToolUse": {"permission", "user_message", "agent_message", "updated_input"},
    "beforeReadFile": {"permission", "user_message"},
    "beforeTabFileRead": {"permission"},
    "subagentStart": {"permission", "user_message"},
    "beforeSubmitPrompt": {"continue", "user_message"},
    "stop": {"followup_message"},
    "subagentStop": {"followup_message"},
    "postToolUse": {"additional_context", "updated_mcp_tool_output"},
    "sessionStart": {"env", "additional_context", "continue", "user_message"},
    "preCompact": {"user_message"},
}


def event(name: str, **fields: Any) -> Event:
    return HARNESS.parse({**PAYLOADS[name], **fields})


def answer(decision: Decision, ev: Event) -> base.Reply:
    """What the pipeline prints: the decision degraded to the event's capabilities, rendered."""
    said, _ = degrade(decision, decision, HARNESS.capabilities(ev.name), "cursor", ev.name,
                      ev.norm.kind)
    return HARNESS.render(said, ev)


def expected(name: str, verb: str) -> dict[str, Any]:
    """Cupcake's answer for Cupcake's events; the documented shape for the rest."""
    reason = f"R-{verb}"
    shape = SHAPES.get(name)
    blocks = verb in ("halt", "deny", "block")
    if shape in ("permission", "subagent", "prompt") and verb == "ask" \
            and name not in ("beforeShellExecution", "beforeMCPExecution"):
        blocks, reason = True, reason + CANNOT_ASK
    if shape == "permission":
        if blocks:
            return {"agent_message": reason, "permission": "deny", "user_message": reason}
        if verb == "ask":
            return {"agent_message": reason, "permission": "ask", "question": reason,
                    "user_message": reason}
        if verb == "modify" and name == "preToolUse":
            merged = {**PAYLOADS[name]["tool_input"], **UPDATE}
            return {"permission": "allow", "updated_input": merged}
        return {"permission": "allow"}
    if shape in ("read", "tab"):
        return {"permission": "deny" if blocks or verb == "ask" else "allow"}
    if shape == "subagent":
        return {"permission": "deny", "user_message": reason} if blocks else {"permission": "allow"}
    if shape == "prompt":
        return {"continue": False, "user_message": reason} if blocks else {"continue": True}
    if shape == "stop":
        return {"followup_message": reason} if blocks else {}
    if shape == "context":
        text = {"ask": "R-ask", "allow+context": "ctx-add"}.get(verb)
        return {"additional_context": text} if text else {}
    if shape == "notice" and blocks:
        return {"user_message": f"watchdog would have blocked this (cursor {name} cannot be "
                                f"stopped): {reason}"}
    return {}


# --------------------------------------------------------------------------------------------
# render


def test_every_documented_event_has_a_fixture() -> None:
    """One sample payload per event Cursor documents (and the registry finds the harness)."""
    assert set(PAYLOADS) == set(HARNESS.events)
    assert get("cursor") is HARNESS


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_verb_output_per_event(name: str, verb: str) -> None:
    """Every verb on every event: exact bytes (Cupcake's format), exit 0, documented keys only."""
    ev = event(name)
    reply = answer(VERBS[verb], ev)
    out = expected(name, verb)
    assert reply == base.Reply(json.dumps(out, sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False) + "\n")
    assert set(out) <= ACCEPTED.get(name, set())


def test_cupcake_bytes_literally() -> None:
    """The byte strings of Cupcake's own tests (cupcake.md §2.7 and checklist 10)."""
    shell = event("beforeShellExecution", command="sudo apt update")
    deny = Decision(DENY, "Sudo commands are not allowed", ("SUDO",),
                    agent_messages=("The command contains 'sudo'", "Use a user install"))
    assert HARNESS.render(deny, shell).stdout == (
        '{"agent_message":"The command contains \'sudo\'; Use a user install",'
        '"permission":"deny","user_message":"Sudo commands are not allowed"}\n')
    stop = Decision(DENY, "Please verify all tests pass before stopping.")
    assert HARNESS.render(stop, event("stop")).stdout == \
        '{"followup_message":"Please verify all tests pass before stopping."}\n'
    assert HARNESS.render(Decision(ALLOW), event("beforeSubmitPrompt")).stdout == \
        '{"continue":true}\n'
    assert HARNESS.render(Decision(ASK, "Zugriff prüfen"), event("beforeReadFile")).stdout == \
        '{"permission":"deny"}\n'
    ask = HARNESS.render(Decision(ASK, "Zugriff prüfen"), event("beforeMCPExecution")).stdout
    assert ask == ('{"agent_message":"Zugriff prüfen","permission":"ask","question":"Zugriff '
                   'prüfen","user_message":"Zugriff prüfen"}\n')


@pytest.mark.parametrize("name", CUPCAKE_EVENTS)
def test_undegraded_verbs_still_give_cupcakes_answer(name: str) -> None:
    """render alone (no degrade) gives Cupcake's answer too: an ask where Cursor cannot ask is
    Cupcake's deny, a modify an allow, a block after the fact nothing."""
    ev = event(name)
    for verb, decision in VERBS.items():
        out = json.loads(HARNESS.render(decision, ev).stdout)
        want = expected(name, verb)
        if verb == "ask" and name == "beforeSubmitPrompt":
            want = {"continue": False, "user_message": "R-ask"}  # Cupcake: the bare reason
        if SHAPES.get(name) is None:
            want = {}
        assert out == want, verb


def test_pre_tool_use_always_has_a_flat_permission() -> None:
    """Cursor blocks every call whose preToolUse answer has no flat `permission`."""
    for tool in ("Shell", "Write", "Read", "MCP:create_issue", "SomethingNew"):
        ev = event("preToolUse", tool_name=tool)
        for decision in VERBS.values():
            for reply in (answer(decision, ev), HARNESS.render(decision, ev)):
                assert json.loads(reply.stdout)["permission"] in ("allow", "deny"), tool
        assert json.loads(HARNESS.warning("down", ev).stdout)["permission"] == "allow"


def test_agent_message_joins_agent_contexts_else_the_reason() -> None:
    ev = event("beforeShellExecution")
    two = Decision(DENY, "R", agent_messages=("a", "b"))
    assert json.loads(HARNESS.render(two, ev).stdout)["agent_message"] == "a; b"
    assert json.loads(HARNESS.render(Decision(BLOCK, "R"), ev).stdout)["agent_message"] == "R"


def test_notices_go_to_user_message_where_the_shape_has_one() -> None:
    """Messages for the person ride in user_message; stop and after* have no such field."""
    note = ("watchdog: judge unavailable",)
    for name in PAYLOADS:
        ev = event(name)
        for decision in (Decision(ALLOW, notices=note), Decision(DENY, "R", notices=note)):
            out = json.loads(HARNESS.render(decision, ev).stdout)
            assert set(out) <= ACCEPTED.get(name, set()), name
            if "user_message" in ACCEPTED.get(name, set()) and name != "sessionStart":
                assert note[0] in out["user_message"], name
    deny = HARNESS.render(Decision(DENY, "R", notices=note), event("beforeShellExecution"))
    assert json.loads(deny.stdout)["user_message"] == "R\nwatchdog: judge unavailable"


def test_headless_ask_is_a_deny() -> None:
    """`@cursor/sdk` auto-allows an ask; a payload saying it has nobody to ask gets a deny."""
    ev = event("beforeShellExecution", is_background_agent=True)
    out = json.loads(answer(VERBS["ask"], ev).stdout)
    assert out["permission"] == "deny"
    assert out["user_message"].startswith("R-ask (a person must approve this")
    interactive = event("beforeShellExecution", is_background_agent=False)
    assert json.loads(answer(VERBS["ask"], interactive).stdout)["permission"] == "ask"


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_warning_never_blocks(name: str) -> None:
    """Fail-open: no deny, no `continue: false`, no follow-up that would make the agent act."""
    for ev in (event(name), None):
        reply = HARNESS.warning("Redis is down", ev)
        out = json.loads(reply.stdout)
        assert reply.exit_code == 0
        assert out.get("permission", "allow") == "allow" and out.get("continue", True) is True
        assert not {"followup_message", "additional_context", "agent_message"} & set(out)
        if ev is not None:
            assert set(out) <= ACCEPTED.get(name, set())
    assert json.loads(HARNESS.warning("x", event("beforeShellExecution")).stdout) == {
        "permission": "allow", "user_message": "watchdog: x"}


# --------------------------------------------------------------------------------------------
# capabilities, gates


def test_capabilities_are_truthful() -> None:
    caps = HARNESS.capabilities
    assert caps("beforeShellExecution").ask and caps("beforeMCPExecution").ask
    for name in ("preToolUse", "beforeReadFile", "beforeSubmitPrompt", "subagentStart"):
        assert caps(name).block and not caps(name).ask and caps(name).ask_fallback == "deny"
    assert caps("preToolUse").modify and not caps("beforeShellExecution").modify
    for name in ("beforeShellExecution", "preToolUse", "beforeSubmitPrompt", "stop"):
        assert not caps(name).context, name  # agent_message exists only next to a deny
    assert caps("postToolUse").context and caps("sessionStart").context
    assert caps("stop").block_stop and not caps("stop").block
    for name in ("afterShellExecution", "afterMCPExecution", "afterFileEdit", "sessionEnd",
                 "afterAgentResponse", "postToolUseFailure", "somethingNew"):
        assert caps(name) == caps("afterAgentThought") and not caps(name).block, name
    assert not any(caps(name).halt for name in PAYLOADS)


def test_gates() -> None:
    gating = {n for n in PAYLOADS if HARNESS.gates(event(n))}
    assert gating == {"beforeShellExecution", "beforeMCPExecution", "beforeReadFile",
                      "beforeTabFileRead", "preToolUse", "beforeSubmitPrompt", "subagentStart"}


# --------------------------------------------------------------------------------------------
# parse


def test_parse_keeps_cursors_fields_and_adds_the_action() -> None:
    shell = event("beforeShellExecution")
    assert shell.raw == PAYLOADS["beforeShellExecution"]
    assert (shell.name, shell.tool_name, shell.session_id) == (
        "beforeShellExecution", None, PAYLOADS["stop"]["conversation_id"])
    action = shell.norm
    assert (action.kind, action.event, action.tool, action.tool_class, action.command) == (
        "pre_tool", "PreToolUse", "Bash", "shell", "npm install express")
    mcp = event("beforeMCPExecution")
    assert mcp.tool_name == "create_issue"
    assert mcp.tool_input == {"repo": "u/app", "title": "Flaky test"}
    assert (mcp.norm.tool, mcp.norm.mcp_server, mcp.norm.mcp_tool) == (
        "mcp__github__create_issue", "github", "create_issue")
    bare = event("beforeMCPExecution", mcp_server_name=None)
    assert (bare.norm.tool_class, bare.norm.mcp_server, bare.norm.mcp_tool) == (
        "mcp", None, "create_issue")
    assert event("beforeReadFile").norm.paths == ("/home/u/app/.env",)
    assert event("afterFileEdit").norm.content == "const foo = 2"
    assert event("beforeSubmitPrompt").norm.prompt == "deploy to prod"
    assert event("stop").norm.event == "Stop" and event("subagentStop").norm.event == "SubagentStop"
    assert event("afterAgentResponse").norm.kind == "other"


def test_parse_pre_tool_use_tools_in_claudes_words() -> None:
    write = event("preToolUse", tool_name="Write",
                  tool_input={"file_path": "/a/.env", "contents": "K=1"})
    assert (write.tool_name, write.norm.tool, write.norm.tool_class) == ("Write", "Write", "write")
    assert write.norm.content == "K=1" and write.norm.paths == ("/a/.env",)
    read = event("preToolUse", tool_name="Read", tool_input={"path": "src/x.py"})
    assert read.norm.paths == ("src/x.py",) and read.norm.tool_class == "read"
    delete = event("preToolUse", tool_name="Delete", tool_input={"path": "/a/b"})
    assert delete.norm.tool_class == "write"
    mcp = event("preToolUse", tool_name="MCP:create_issue", tool_input={"title": "x"})
    assert (mcp.norm.tool_class, mcp.norm.mcp_tool, mcp.norm.mcp_server) == (
        "mcp", "create_issue", None)
    new = event("preToolUse", tool_name="Teleport", tool_input={})
    assert (new.norm.tool, new.norm.tool_class) == ("Teleport", "other")


def test_parse_session_and_cwd() -> None:
    """session_id is conversation_id; cwd is cwd, else the first workspace root."""
    ev = HARNESS.parse({"hook_event_name": "stop", "conversation_id": "c1",
                        "workspace_roots": ["/w/one", "/w/two"]})
    assert (ev.session_id, ev.cwd) == ("c1", "/w/one")
    ev = HARNESS.parse({"hookEventName": "sessionStart", "session_id": "s1", "cwd": "/c"})
    assert (ev.name, ev.session_id, ev.cwd) == ("sessionStart", "s1", "/c")


def test_unknown_events_pass_through() -> None:
    ev = HARNESS.parse({"hook_event_name": "beforeTeleport", "conversation_id": "c", "x": 1})
    assert (ev.name, ev.norm.kind, ev.norm.event, ev.raw["x"]) == (
        "beforeTeleport", "other", "beforeTeleport", 1)
    assert HARNESS.render(VERBS["deny"], ev).stdout == "{}\n"


@pytest.mark.parametrize("payload", [[], "beforeShellExecution", None, 3,
                                     {"command": "ls"}, {"hook_event_name": ""},
                                     {"hook_event_name": 7}])
def test_parse_errors_say_what_to_do(payload: Any) -> None:
    with pytest.raises(EventError) as err:
        HARNESS.parse(payload)
    message = str(err.value)
    assert "hooks.json" in message or "hook_event_name" in message


# --------------------------------------------------------------------------------------------
# twins


def test_twin_key_is_shared_by_pre_tool_use_and_its_before_event() -> None:
    shell = event("beforeShellExecution")
    pre = event("preToolUse")
    assert HARNESS.twin_key(shell) is not None
    assert HARNESS.twin_key(shell) == HARNESS.twin_key(pre)
    mcp = event("beforeMCPExecution")
    pre_mcp = event("preToolUse", tool_name="MCP:create_issue",
                    tool_input={"title": "Flaky test", "repo": "u/app"})
    assert HARNESS.twin_key(mcp) is not None
    assert HARNESS.twin_key(mcp) == HARNESS.twin_key(pre_mcp)


def test_twin_key_differs_for_different_calls() -> None:
    key = HARNESS.twin_key(event("beforeShellExecution"))
    assert key != HARNESS.twin_key(event("beforeShellExecution", command="npm install expres"))
    assert key != HARNESS.twin_key(event("beforeShellExecution", generation_id="g2"))
    assert key != HARNESS.twin_key(event("beforeShellExecution", conversation_id="c2"))
    assert HARNESS.twin_key(event("beforeMCPExecution")) != HARNESS.twin_key(
        event("beforeMCPExecution", tool_input='{"repo": "u/other"}'))
    assert HARNESS.twin_key(event("beforeShellExecution", generation_id=None)) is None
    for name in PAYLOADS:
        if name not in ("beforeShellExecution", "beforeMCPExecution", "preToolUse"):
            assert HARNESS.twin_key(event(name)) is None, name
    assert HARNESS.twin_key(event("preToolUse", tool_name="Write", tool_input={})) is None


# --------------------------------------------------------------------------------------------
# setup

CMD = "/opt/wd/bin/watchdog hook --harness cursor"
USER = {"version": 1, "hooks": {
    "beforeShellExecution": [{"command": "./hooks/audit.sh", "timeout": 5}],
    "afterAgentResponse": [{"command": "./hooks/log.sh"}],
    "stop": [{"type": "prompt", "prompt": "Did the tests pass? $ARGUMENTS"}],
    "sessionEnd": [],
}, "$schema": "https://example.invalid/hooks.schema.json"}


def test_setup_config_path() -> None:
    path = HARNESS.setup.config_path
    assert path(Path("/p"), Path("/h"), False) == Path("/p/.cursor/hooks.json")
    assert path(Path("/p"), Path("/h"), True) == Path("/h/.cursor/hooks.json")


def test_setup_add_is_idempotent_and_keeps_the_users_hooks() -> None:
    setup = HARNESS.setup
    fresh = setup.add({}, CMD, False)
    assert fresh["version"] == 1
    assert set(fresh["hooks"]) == {
        "beforeShellExecution", "beforeMCPExecution", "beforeReadFile", "preToolUse",
        "postToolUse", "beforeSubmitPrompt", "stop", "afterFileEdit"}
    assert all(v == [{"command": CMD}] for v in fresh["hooks"].values())
    assert setup.add(fresh, CMD, False) == fresh
    original = json.loads(json.dumps(USER))
    merged = setup.add(USER, CMD, False)
    assert original == USER  # pure: the input is not changed
    assert setup.add(merged, CMD, False) == merged
    assert merged["$schema"] == USER["$schema"]
    assert merged["hooks"]["beforeShellExecution"] == [
        {"command": "./hooks/audit.sh", "timeout": 5}, {"command": CMD}]
    assert merged["hooks"]["afterAgentResponse"] == USER["hooks"]["afterAgentResponse"]
    assert merged["hooks"]["stop"][0] == USER["hooks"]["stop"][0]


def test_setup_add_updates_our_entry_in_place() -> None:
    old = {"version": 1, "hooks": {"stop": [{"command": "watchdog hook --harness cursor",
                                             "loop_limit": 3}]}}
    new = HARNESS.setup.add(old, CMD, False)
    assert new["hooks"]["stop"] == [{"command": CMD, "loop_limit": 3}]


def test_setup_fail_closed_on_gates_only_and_never_quietly_undone() -> None:
    closed = HARNESS.setup.add(USER, CMD, True)
    for name, entries in closed["hooks"].items():
        ours = [e for e in entries if e.get("command") == CMD]
        if name in USER["hooks"] and name not in ("beforeShellExecution", "stop"):
            assert not ours
            continue
        gate = name in ("beforeShellExecution", "beforeMCPExecution", "beforeReadFile",
                        "preToolUse", "beforeSubmitPrompt")
        assert [e.get("failClosed", False) for e in ours] == [gate], name
    assert HARNESS.setup.add(closed, CMD, False) == closed


def test_setup_remove_takes_out_exactly_ours() -> None:
    setup = HARNESS.setup
    merged = setup.add(USER, CMD, True)
    assert setup.remove(merged, lambda c: is_ours(c, CMD)) == USER
    assert setup.remove(setup.add({}, CMD, False), lambda c: is_ours(c, CMD)) == {}
    assert setup.remove(USER, lambda c: is_ours(c, CMD)) == USER
    assert setup.remove({"hooks": "odd"}, lambda c: True) == {"hooks": "odd"}


@pytest.mark.parametrize("config", [
    {"hooks": []}, {"hooks": {"stop": {"command": "x"}}}, {"version": 2, "hooks": {}},
    {"version": "1"}, {"version": True},
])
def test_setup_add_rejects_wrong_shapes(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        HARNESS.setup.add(config, CMD, False)
    assert ".cursor/hooks.json" in str(err.value) and "by hand" in str(err.value)


def test_facts() -> None:
    facts = HARNESS.facts
    assert facts.config == ".cursor/hooks.json (project), ~/.cursor/hooks.json (user)"
    assert "no real client run" in facts.tested_versions
    assert not facts.async_hooks and not facts.allow_overrides


# --------------------------------------------------------------------------------------------
# the hook as Cursor runs it

SUDO = rego_policy("cupcake.policies.cursor_sudo", """
deny contains {
\t"rule_id": "CURSOR-SUDO",
\t"reason": "Sudo commands are not allowed",
\t"severity": "HIGH",
\t"agent_context": "The command contains 'sudo', which requires elevated privileges.",
} if {
\tinput.hook_event_name == "beforeShellExecution"
\tcontains(input.command, "sudo")
}
""", events=["beforeShellExecution"])
STOP = rego_policy("cupcake.policies.cursor_stop", """
deny contains {
\t"rule_id": "CURSOR-STOP",
\t"reason": "Please verify all tests pass before stopping.",
\t"severity": "MEDIUM",
} if {
\tinput.hook_event_name == "stop"
\tinput.status == "completed"
\tinput.loop_count < 5
}
""", events=["stop"])
READ_ASK = rego_policy("cupcake.policies.cursor_read", """
ask contains {"rule_id": "CURSOR-READ", "reason": "Reading an env file", "severity": "MEDIUM"} if {
\tinput.hook_event_name == "beforeReadFile"
\tendswith(input.file_path, ".env")
}
""", events=["beforeReadFile"])


@pytest.fixture
def cupcake_root(tmp_path: Path) -> PolicyRoot:
    root = PolicyRoot(tmp_path / "project" / ".cupcake", harness="cursor")
    root.add("sudo.rego", SUDO)
    root.add("stop.rego", STOP)
    root.add("read.rego", READ_ASK)
    return root


def cursor_hook(env: dict[str, str], payload: Any, policy_dir: Path) -> Any:
    stdin = payload if isinstance(payload, str) else json.dumps(payload)
    run = run_cli(["hook", "--harness", "cursor", "--policy-dir", str(policy_dir)], env, stdin)
    assert run.code == 0, (run.stdout, run.stderr)
    return run


@pytest.mark.parametrize("name", ["beforeShellExecution", "preToolUse"])
def test_default_pack_denies_rm_rf_home(env: dict[str, str], name: str) -> None:
    """The shipped pack (policies/common, read through input.watchdog.action) guards Cursor."""
    payload = PAYLOADS[name]
    if name == "preToolUse":
        payload = {**payload, "tool_input": {"command": "rm -rf ~"}}
    else:
        payload = {**payload, "command": "rm -rf ~"}
    out = json.loads(cursor_hook(env, payload, REPO / "policies").stdout)
    assert out["permission"] == "deny"
    assert "home directory" in out["user_message"] and out["agent_message"]
    harmless = {**PAYLOADS["beforeShellExecution"], "command": "ls -la"}
    assert cursor_hook(env, harmless, REPO / "policies").stdout == '{"permission":"allow"}\n'


def test_init_check_sample_is_denied_by_the_default_pack(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    """`init` runs the written hook once on setup.sample and expects setup.denied to hold."""
    setup = HARNESS.setup
    assert setup.sample is not None and setup.denied is not None
    sample = setup.sample(tmp_path)
    assert HARNESS.parse(sample).norm.command == "rm -rf ~"
    run = cursor_hook(env, sample, REPO / "policies")
    assert setup.denied(run.stdout, run.code)
    assert not setup.denied('{"permission":"allow"}\n', 0)
    assert not setup.denied("not json", 0) and not setup.denied('{"permission":"deny"}', 1)


def test_cupcake_policy_gives_cupcakes_bytes(env: dict[str, str],
                                             cupcake_root: PolicyRoot) -> None:
    """cupcake.md checklist 10 and the edge cases: Cupcake's exact stdout, exit 0."""
    def run(name: str, **fields: Any) -> str:
        payload = {**PAYLOADS[name], **fields}
        return str(cursor_hook(env, payload, cupcake_root.path).stdout)

    assert run("beforeShellExecution", command="sudo apt update") == (
        '{"agent_message":"The command contains \'sudo\', which requires elevated privileges.",'
        '"permission":"deny","user_message":"Sudo commands are not allowed"}\n')
    assert run("beforeShellExecution") == '{"permission":"allow"}\n'
    assert run("stop", loop_count=2) == \
        '{"followup_message":"Please verify all tests pass before stopping."}\n'
    assert run("stop", loop_count=5) == "{}\n"
    assert run("beforeReadFile") == '{"permission":"deny"}\n'
    assert run("beforeSubmitPrompt") == '{"continue":true}\n'
    assert run("afterShellExecution", command="sudo apt update") == "{}\n"


def test_bad_input_fails_open_with_a_message(env: dict[str, str]) -> None:
    """Truncated JSON or a payload without hook_event_name: exit 0, an allow in every shape."""
    for stdin in ('{"hook_event_name": "beforeShellExecution", "comm', '{"command": "ls"}'):
        out = json.loads(cursor_hook(env, stdin, REPO / "policies").stdout)
        assert out["permission"] == "allow" and out["continue"] is True
        assert out["user_message"].startswith("watchdog: not working")


def test_twin_answer_keeps_policies_routed_on_the_twins_name(
        tmp_path: Path, cupcake_root: PolicyRoot) -> None:
    """preToolUse (no Cupcake policy routes there) then beforeShellExecution for the same call:
    the sudo policy routed on beforeShellExecution must still deny."""
    env = isolated_env(tmp_path / "home")
    pre = {**PAYLOADS["preToolUse"], "tool_input": {"command": "sudo apt update"}}
    assert cursor_hook(env, pre, cupcake_root.path).stdout == '{"permission":"allow"}\n'
    shell = {**PAYLOADS["beforeShellExecution"], "command": "sudo apt update"}
    assert json.loads(cursor_hook(env, shell, cupcake_root.path).stdout)["permission"] == "deny"


ASK_SHELL = rego_policy("cupcake.policies.ask_curl", """
ask contains {"rule_id": "ASK-CURL", "reason": "curl wants a look", "severity": "MEDIUM"} if {
\tinput.watchdog.action.tool_class == "shell"
\tcontains(input.watchdog.action.command, "curl")
}
""", events=["PreToolUse"], tools=["Bash"])


def test_an_ask_on_pre_tool_use_is_left_to_the_twin_that_can_ask(tmp_path: Path) -> None:
    """preToolUse cannot ask (Cursor does not enforce it) and degrading its ask to a deny would
    block the call before beforeShellExecution could ask the person: it allows, and the twin
    asks. The same policy (in policies/common/, normalized names) serves both events."""
    env = isolated_env(tmp_path / "home")
    root = PolicyRoot(tmp_path / "project" / ".watchdog", harness="common")
    root.add("ask.rego", ASK_SHELL)
    pre = {**PAYLOADS["preToolUse"], "tool_input": {"command": "curl example.org"}}
    assert json.loads(cursor_hook(env, pre, root.path).stdout)["permission"] == "allow"
    shell = {**PAYLOADS["beforeShellExecution"], "command": "curl example.org"}
    out = json.loads(cursor_hook(env, shell, root.path).stdout)
    assert out["permission"] == "ask" and out["question"].startswith("curl wants a look")
