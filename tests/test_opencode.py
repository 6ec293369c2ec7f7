"""OpenCode: `watchdog hook --harness opencode` and the plugin that calls it.

Events are the ones the plugin builds from real OpenCode 1.18.33 hook calls
(tests/fixtures/opencode/, see its README). Answers are Cupcake's OpenCode answers byte for byte
(cupcake.md §2.4, checklist item 33), except where watchdog/harnesses/opencode.py documents a
difference: modify adds `updated_args` (OpenCode can rewrite arguments in place), and a policy's
ask is a deny, because no OpenCode plugin can ask a person.
The plugin tests run watchdog.js under node against a stub of the plugin API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, PolicyRoot, rego_policy, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.decisions import Decision
from watchdog.errors import EventError
from watchdog.harnesses import opencode
from watchdog.harnesses.base import Harness

FIXTURES = REPO / "tests" / "fixtures" / "opencode"
DRIVER = FIXTURES / "drive_plugin.mjs"
PACK = REPO / "policies"
EVENTS = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}
PRE = {k: v for k, v in EVENTS.items() if k.startswith("PreToolUse.")}
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")


def answer(decision: Decision, payload: dict[str, Any]) -> str:
    return opencode.HARNESS.render(decision, opencode.parse(payload)).stdout


# -- render: every event x every verb, exact bytes --------------------------------------------

VERBS: list[tuple[str, Decision, Any]] = [
    ("allow", Decision("allow"), lambda args: {"decision": "allow"}),
    ("allow+context", Decision("allow", context=("c1", "c2")),
     lambda args: {"context": ["c1", "c2"], "decision": "allow"}),
    ("deny", Decision("deny", "no [X]"), lambda args: {"decision": "deny", "reason": "no [X]"}),
    ("block", Decision("block", "stop"), lambda args: {"decision": "block", "reason": "stop"}),
    ("halt", Decision("halt", "end"), lambda args: {"decision": "block", "reason": "end"}),
    ("ask", Decision("ask", "sure?"), lambda args: {"decision": "ask", "reason": "sure?"}),
    ("modify", Decision("modify", "pinned", updated_input={"zz_added": 1}),
     lambda args: {"context": ["pinned"], "decision": "allow",
                   "updated_args": {**args, "zz_added": 1}}),
]


@pytest.mark.parametrize("verb,decision,expected", VERBS, ids=[v[0] for v in VERBS])
@pytest.mark.parametrize("name", sorted(EVENTS), ids=sorted(EVENTS))
def test_render_is_cupcakes_answer(name: str, verb: str, decision: Decision,
                                   expected: Any) -> None:
    """Sorted keys, compact, one line; modify also carries the merged args for the plugin."""
    payload = EVENTS[name]
    want = json.dumps(expected(payload["args"]), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) + "\n"
    assert answer(decision, payload) == want


def test_modify_merges_over_args_and_speaks_opencodes_names() -> None:
    """A rewrite wins over the original, keeps the rest, and a Claude-named key written by a
    policies/common/ rule (`file_path`) goes back to OpenCode's (`filePath`)."""
    payload = EVENTS["PreToolUse.write"]
    out = json.loads(answer(Decision("modify", "r", updated_input={
        "file_path": "safe.txt", "content": "x"}), payload))
    assert out["updated_args"] == {"filePath": "safe.txt", "content": "x"}
    bash = EVENTS["PreToolUse.bash"]
    out = json.loads(answer(Decision("modify", "r", updated_input={"command": "ls"}), bash))
    assert out["updated_args"] == {**bash["args"], "command": "ls"}


def test_notices_and_warning_are_for_the_person() -> None:
    denied = Decision("deny", "no", notices=("n1", "n2"))
    out = json.loads(answer(denied, EVENTS["PreToolUse.bash"]))
    assert out == {"decision": "deny", "message": "n1\nn2", "reason": "no"}
    reply = opencode.HARNESS.warning("broken", None)
    assert reply.stdout == '{"decision":"allow","message":"watchdog: broken"}\n'
    assert reply.exit_code == 0


def test_render_unicode_is_raw_utf8() -> None:
    out = answer(Decision("deny", "nein: ü ✓"), EVENTS["PreToolUse.bash"])
    assert out == '{"decision":"deny","reason":"nein: ü ✓"}\n'


# -- parse: Cupcake's added keys in raw, Claude Code's names in the action ----------------------

CUPCAKE_NAMES = {"bash": "Bash", "edit": "Edit", "write": "Write", "read": "Read",
                 "grep": "Grep", "glob": "Glob", "todowrite": "TodoWrite", "task": "Task",
                 "webfetch": "WebFetch", "apply_patch": "apply_patch"}


@pytest.mark.parametrize("name", sorted(EVENTS), ids=sorted(EVENTS))
def test_parse_adds_cupcakes_keys(name: str) -> None:
    """tool_name (Cupcake's mapping), tool_input (= args), tool_response (= result); every
    key sent stays, and the payload itself is not changed."""
    payload = EVENTS[name]
    before = json.dumps(payload)
    event = opencode.parse(payload)
    assert json.dumps(payload) == before
    assert {k: event.raw[k] for k in payload} == payload
    assert event.raw["tool_name"] == CUPCAKE_NAMES[payload["tool"]]
    assert event.raw["tool_input"] is payload["args"]
    assert ("tool_response" in event.raw) == ("result" in payload)
    if "result" in payload:
        assert event.raw["tool_response"] == payload["result"]
    assert event.name == payload["hook_event_name"]
    assert event.tool_name == event.raw["tool_name"]  # what policies/opencode/ route on
    assert event.tool_input == payload["args"]
    assert event.session_id == payload["session_id"] and event.cwd == payload["cwd"]
    assert event.harness == "opencode"


def norm(name: str) -> dict[str, Any]:
    return opencode.parse(EVENTS[name]).norm.as_input()


def test_action_bash() -> None:
    a = norm("PreToolUse.bash")
    assert (a["kind"], a["event"], a["tool"], a["tool_class"]) == (
        "pre_tool", "PreToolUse", "Bash", "shell")
    assert a["command"] == "echo failing >&2; exit 3"
    post = norm("PostToolUse.bash")
    assert (post["kind"], post["event"], post["tool"]) == ("post_tool", "PostToolUse", "Bash")


def test_action_file_tools_use_claude_code_names() -> None:
    write = norm("PreToolUse.write")
    assert (write["tool"], write["tool_class"], write["paths"]) == ("Write", "write", ["notes.txt"])
    assert write["content"] == "first line\n"
    assert write["tool_input"] == {"file_path": "notes.txt", "content": "first line\n"}
    edit = norm("PreToolUse.edit")
    assert (edit["tool"], edit["tool_class"], edit["paths"]) == ("Edit", "edit", ["notes.txt"])
    assert (edit["old_content"], edit["content"]) == ("first line", "edited line")
    assert edit["tool_input"] == {"file_path": "notes.txt", "old_string": "first line",
                                  "new_string": "edited line"}
    read = norm("PreToolUse.read")
    assert (read["tool"], read["tool_class"], read["paths"]) == ("Read", "read", ["notes.txt"])


def test_action_other_tools() -> None:
    assert (norm("PreToolUse.glob")["tool"], norm("PreToolUse.glob")["tool_class"]) == (
        "Glob", "search")
    assert norm("PreToolUse.grep")["tool_class"] == "search"
    assert norm("PreToolUse.task")["tool_class"] == "subagent"
    assert norm("PreToolUse.todowrite")["tool"] == "TodoWrite"
    web = norm("PreToolUse.webfetch")
    assert (web["tool"], web["tool_class"], web["url"]) == (
        "WebFetch", "web", "https://example.com/docs")
    patch = norm("PreToolUse.apply_patch")
    assert (patch["tool"], patch["tool_class"]) == ("Edit", "edit")
    assert patch["paths"] == ["notes.txt", "extra.txt"]
    assert "+edited line" in patch["content"]


def test_cupcake_resolves_opencode_file_paths() -> None:
    from watchdog.evaluation import base_input

    doc, _ = base_input(opencode.parse(EVENTS["PreToolUse.write"]))
    assert doc.get("original_file_path") == "notes.txt"
    assert doc.get("resolved_file_path") == "/home/user/project/notes.txt"


def test_list_and_unknown_tools() -> None:
    """Cupcake names `list` List (its mapping); the action says LS (Claude Code's). Tools
    Cupcake does not know (MCP tools are `<server>_<tool>`) pass through unchanged."""
    base = {"hook_event_name": "PreToolUse", "session_id": "s", "cwd": "/p"}
    listed = opencode.parse({**base, "tool": "list", "args": {"path": "src"}})
    assert (listed.raw["tool_name"], listed.norm.tool, listed.norm.tool_class) == (
        "List", "LS", "search")
    mcp = opencode.parse({**base, "tool": "github_create_issue", "args": {"title": "t"}})
    assert (mcp.raw["tool_name"], mcp.norm.tool, mcp.norm.tool_class) == (
        "github_create_issue", "github_create_issue", "other")


def test_parse_keeps_odd_args_as_sent() -> None:
    """Cupcake copies args to tool_input whatever it is; only an object is the tool input."""
    event = opencode.parse({"hook_event_name": "PreToolUse", "tool": "bash", "args": "ls"})
    assert event.raw["tool_input"] == "ls" and event.tool_input is None
    assert event.session_id == "" and event.cwd  # the hook's cwd
    assert event.norm.command is None


@pytest.mark.parametrize("payload", [[], "x", 3, None, {}, {"hook_event_name": ""},
                                     {"hook_event_name": 5, "tool": "bash"}],
                         ids=["list", "str", "int", "null", "empty", "blank", "number"])
def test_parse_rejects(payload: Any) -> None:
    with pytest.raises(EventError):
        opencode.parse(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=3),
    max_leaves=12,
)
events = st.fixed_dictionaries(
    {}, optional={"hook_event_name": st.sampled_from(["PreToolUse", "PostToolUse", "X"])
                  | json_values, "tool": st.sampled_from(list(opencode.CLAUDE_TOOLS)) | json_values,
                  "args": json_values, "result": json_values, "session_id": json_values,
                  "cwd": json_values})


@settings(max_examples=200, deadline=None)
@given(payload=events | json_values)
def test_parse_any_json_is_an_event_or_an_event_error(payload: Any) -> None:
    try:
        event = opencode.parse(payload)
    except EventError:
        return
    event.norm.as_input()
    for decision in (Decision("allow"), Decision("deny", "r"),
                     Decision("modify", "m", updated_input={"a": {"b": 1}})):
        json.loads(opencode.HARNESS.render(decision, event).stdout)


# -- the harness object: capabilities, facts, setup --------------------------------------------

def test_protocol_and_capabilities() -> None:
    harness: Harness = opencode.HARNESS
    pre, post = harness.capabilities("PreToolUse"), harness.capabilities("PostToolUse")
    assert (pre.block, pre.ask, pre.modify, pre.context, pre.halt) == (True, False, True, True,
                                                                        False)
    assert pre.ask_fallback == "deny"  # permission.ask is never triggered: no plugin can ask
    assert (post.block, post.ask, post.modify, post.context) == (True, False, False, True)
    assert post.ask_fallback == "context"
    assert not harness.capabilities("SessionStart").block
    pre_event = opencode.parse(EVENTS["PreToolUse.bash"])
    assert harness.gates(pre_event)
    assert not harness.gates(opencode.parse(EVENTS["PostToolUse.bash"]))
    assert harness.twin_key(pre_event) is None
    assert harness.events == {"PreToolUse": "pre_tool", "PostToolUse": "post_tool"}
    assert harness.facts.tested_versions.startswith("1.18.33")


def test_setup_writes_the_plugin_and_no_config() -> None:
    setup = opencode.HARNESS.setup
    project, home = Path("/p"), Path("/h")
    assert setup.config_path(project, home, False) == project / ".opencode" / "opencode.json"
    assert setup.config_path(project, home, True) == home / ".config/opencode/opencode.json"
    config = {"plugin": ["x"], "model": "m"}
    assert setup.add(config, "watchdog hook --harness opencode", True) == config
    assert setup.remove(config, lambda c: True) == config
    command = '/opt/my venv/bin/watchdog hook --harness opencode --policy-dir "a b"'
    written = setup.files(command)
    assert list(written) == ["plugins/watchdog.js"]
    text = written["plugins/watchdog.js"]
    assert f"const COMMAND = {json.dumps(command)} // watchdog:command" in text
    assert "const FAIL_CLOSED = false // watchdog:fail-closed" in text
    closed = opencode.files(command, fail_closed=True)["plugins/watchdog.js"]
    assert "const FAIL_CLOSED = true // watchdog:fail-closed" in closed
    shipped = (REPO / "watchdog" / "plugins" / "opencode" / "watchdog.js").read_text()
    assert text.count("\n") == shipped.count("\n")


def test_setup_sample_and_denied() -> None:
    setup = opencode.HARNESS.setup
    assert setup.sample is not None and setup.denied is not None
    event = setup.sample(Path("/p"))
    assert opencode.parse(event).norm.command == "rm -rf ~"
    assert setup.denied('{"decision":"deny","reason":"r"}\n', 0)
    assert setup.denied("", 2)
    assert not setup.denied('{"decision":"allow"}\n', 0)
    assert not setup.denied("garbage", 0)


# -- the hook as OpenCode's plugin runs it -------------------------------------------------------

def hook(env: dict[str, str], event: Any, policy_dir: Path,
         extra_env: dict[str, str] | None = None) -> Any:
    stdin = event if isinstance(event, (str, bytes)) else json.dumps(event)
    args = ["hook", "--harness", "opencode", "--policy-dir", str(policy_dir)]
    return run_cli(args, {**env, **(extra_env or {})}, stdin)


def bash_event(command: str, cwd: str = "/tmp") -> dict[str, Any]:
    return {**EVENTS["PreToolUse.bash"], "cwd": cwd, "args": {"command": command}}


def test_shipped_pack_denies_rm_rf_home(env: dict[str, str]) -> None:
    """policies/common/ routes on the normalized names and reads input.watchdog.action."""
    run = hook(env, bash_event("rm -rf ~"), PACK)
    assert run.code == 0
    assert run.json["decision"] == "deny"
    assert run.json["reason"].startswith("Recursively deleting ~ would wipe")
    assert hook(env, bash_event("ls -la"), PACK).stdout == '{"decision":"allow"}\n'
    with_ids = hook(env, bash_event("rm -rf ~"), PACK, {"WATCHDOG_RULE_IDS": "1"})
    assert with_ids.json["reason"].endswith("[WD-DELETE-VITAL]")


def cupcake_rule(verb: str, reason: str, cond: str, **extra: Any) -> str:
    obj = {"rule_id": f"OC-{verb.upper()}", "reason": reason, "severity": "HIGH", **extra}
    return f"{verb} contains {json.dumps(obj)} if {{\n\t{cond}\n}}\n"


@pytest.fixture
def cupcake_root(tmp_path: Path) -> PolicyRoot:
    """`.cupcake/policies/opencode/`, as a Cupcake user has it: rules on Cupcake's input."""
    root = PolicyRoot(tmp_path / "project" / ".cupcake", harness="opencode")
    bash = 'input.tool_name == "Bash"\n\tinput.tool == "bash"\n\t'
    rules = [
        cupcake_rule("deny", "no curl", bash + 'contains(input.tool_input.command, "curl")'),
        cupcake_rule("halt", "stop everything", bash + 'input.tool_input.command == "halt"'),
        cupcake_rule("block", "blocked", bash + 'input.tool_input.command == "block"'),
        cupcake_rule("ask", "are you sure", bash + 'input.tool_input.command == "ask"'),
        cupcake_rule("modify", "pinned the version", bash
                     + 'input.tool_input.command == "npm i x"',
                     updated_input={"command": "npm i x@1.2.3"}),
        'add_context contains "mind the tests" if {\n\tinput.tool_input.command == "ctx"\n}\n',
        cupcake_rule("block", "saw a secret", 'input.hook_event_name == "PostToolUse"\n\t'
                     'contains(input.tool_response.output, "SECRET")'),
    ]
    root.add("rules.rego", rego_policy("cupcake.policies.oc_rules", "\n".join(rules),
                                       events=["PreToolUse", "PostToolUse"], tools=["Bash"]))
    write = cupcake_rule("deny", "no env files", 'input.tool_name == "Write"\n\t'
                         'endswith(input.tool_input.filePath, ".env")')
    root.add("write.rego", rego_policy("cupcake.policies.oc_write", write,
                                       events=["PreToolUse"], tools=["Write"]))
    return root


@pytest.mark.parametrize("command,expected", [
    ("curl x | sh", {"decision": "deny", "reason": "no curl"}),
    ("halt", {"decision": "block", "reason": "stop everything"}),
    ("block", {"decision": "block", "reason": "blocked"}),
    ("ctx", {"context": ["mind the tests"], "decision": "allow"}),
    ("ls", {"decision": "allow"}),
], ids=["deny", "halt", "block", "context", "allow"])
def test_cupcake_policy_gives_cupcakes_answer(env: dict[str, str], cupcake_root: PolicyRoot,
                                              command: str, expected: dict[str, Any]) -> None:
    run = hook(env, bash_event(command), cupcake_root.path)
    assert run.code == 0
    assert run.stdout == json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n"


def test_cupcake_policy_on_opencode_arg_names(env: dict[str, str],
                                              cupcake_root: PolicyRoot) -> None:
    """Write routes on Cupcake's tool_name and reads OpenCode's own `filePath`."""
    event = {**EVENTS["PreToolUse.write"], "cwd": "/tmp", "args": {"filePath": "prod.env",
                                                                  "content": "A=1"}}
    assert hook(env, event, cupcake_root.path).stdout == (
        '{"decision":"deny","reason":"no env files"}\n')


def test_cupcake_modify_adds_updated_args(env: dict[str, str], cupcake_root: PolicyRoot) -> None:
    """Cupcake: allow + context [reason]. We add the merged rewrite, which our plugin applies."""
    event = bash_event("npm i x")
    event["args"]["description"] = "install"
    run = hook(env, event, cupcake_root.path)
    assert run.json == {"context": ["pinned the version"], "decision": "allow",
                        "updated_args": {"command": "npm i x@1.2.3", "description": "install"}}


def test_cupcake_ask_is_a_deny_that_says_why(env: dict[str, str],
                                             cupcake_root: PolicyRoot) -> None:
    """Cupcake prints "ask" and its plugin throws anyway; we say it is a deny and why."""
    run = hook(env, bash_event("ask"), cupcake_root.path)
    assert run.json["decision"] == "deny"
    assert run.json["reason"].startswith("are you sure (a person must approve this, and "
                                         "opencode cannot ask here")


def test_post_tool_block_is_feedback(env: dict[str, str], cupcake_root: PolicyRoot) -> None:
    event = {**EVENTS["PostToolUse.bash"], "cwd": "/tmp"}
    event["result"] = {"success": True, "output": "the SECRET is 42\n", "exit_code": 0}
    run = hook(env, event, cupcake_root.path)
    assert run.stdout == '{"decision":"block","reason":"saw a secret"}\n'


@pytest.mark.parametrize("stdin", [b"", b'{"hook_event_name": "PreToolUse", "tool": "ba',
                                   b'["PreToolUse"]', b'{"tool": "bash"}'],
                         ids=["empty", "truncated", "list", "no-event-name"])
def test_bad_input_fails_open_with_a_message(env: dict[str, str], stdin: bytes) -> None:
    run = hook(env, stdin, PACK)
    assert run.code == 0
    assert run.json["decision"] == "allow"
    assert run.json["message"].startswith("watchdog: not working, no decision made:")


def test_bad_input_fails_closed_with_exit_2(env: dict[str, str]) -> None:
    """The event could not be read, so no answer can be built: exit 2, which the plugin
    always treats as a block."""
    run = hook(env, b"{", PACK, {"WATCHDOG_ON_ERROR": "closed"})
    assert run.code == 2 and run.stdout == ""


def test_broken_policy_fails_closed_as_a_deny(env: dict[str, str], tmp_path: Path) -> None:
    root = PolicyRoot(tmp_path / "broken" / ".cupcake", harness="opencode")
    root.add("bad.rego", rego_policy("cupcake.policies.bad", "deny contains if {",
                                     events=["PreToolUse"], tools=["Bash"]))
    run = hook(env, bash_event("ls"), root.path, {"WATCHDOG_ON_ERROR": "closed"})
    assert run.json["decision"] == "deny"
    assert run.json["reason"].startswith("watchdog failed closed:")


# -- the plugin under node ---------------------------------------------------------------------

def write_plugin(tmp_path: Path, command: str, fail_closed: bool = False) -> Path:
    path = tmp_path / "plugins" / "watchdog.js"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(opencode.plugin_text(command, fail_closed))
    return path


def stub_command(tmp_path: Path, body: str) -> str:
    """A stand-in hook: a Python script that reads the event and prints `body`'s answer."""
    script = tmp_path / f"stub_{abs(hash(body))}.py"
    script.write_text("import json, sys\nevent = json.load(sys.stdin)\n" + body)
    return f"{sys.executable} {script}"


def before(tool: str, args: dict[str, Any], call: str = "call_1") -> dict[str, Any]:
    return {"hook": "tool.execute.before",
            "input": {"tool": tool, "sessionID": "ses_1", "callID": call},
            "output": {"args": args}}


def after(tool: str, args: dict[str, Any], text: str, call: str = "call_1") -> dict[str, Any]:
    return {"hook": "tool.execute.after",
            "input": {"tool": tool, "sessionID": "ses_1", "callID": call, "args": args},
            "output": {"title": "", "output": text, "metadata": {"output": text, "exit": 0}}}


class Driven:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        self.exports: list[str] = data["exports"]
        self.results: list[dict[str, Any]] = data["results"]
        self.stderr = proc.stderr


def drive(plugin: Path, steps: list[dict[str, Any]], env: dict[str, str], cwd: Path,
          extra_env: dict[str, str] | None = None) -> Driven:
    steps_file = plugin.parent / "steps.json"
    steps_file.write_text(json.dumps(steps))
    assert NODE is not None
    proc = subprocess.run([NODE, str(DRIVER), str(plugin), str(steps_file)], cwd=cwd,
                          env={**env, "DRIVE_DIRECTORY": str(cwd), **(extra_env or {})},
                          capture_output=True, text=True, timeout=60)
    return Driven(proc)


def real_hook(policy_dir: Path) -> str:
    return (f"{sys.executable} -m watchdog hook --harness opencode "
            f"--policy-dir {policy_dir}")


@needs_node
def test_plugin_throws_the_deny_reason(env: dict[str, str], tmp_path: Path) -> None:
    """The real hook behind the plugin: the deny is a throw whose message is the reason (what
    OpenCode gives the model); an allowed call passes with its args untouched."""
    plugin = write_plugin(tmp_path, real_hook(PACK))
    run = drive(plugin, [before("bash", {"command": "rm -rf ~"}),
                         before("bash", {"command": "ls"}, "call_2"),
                         after("bash", {"command": "ls"}, "a\n", "call_2")],
                env | {"PYTHONPATH": str(REPO)}, tmp_path)
    assert run.exports == ["WatchdogPlugin"]  # OpenCode calls every export of the file
    denied, allowed, post = run.results
    assert denied["threw"] is not None
    assert denied["threw"].startswith("Recursively deleting ~ would wipe")
    assert allowed["threw"] is None and allowed["args"] == {"command": "ls"}
    assert post["threw"] is None and post["output"]["output"] == "a\n"
    assert "[watchdog]" not in run.stderr


@needs_node
def test_plugin_rewrites_args_in_place_and_delivers_context(env: dict[str, str],
                                                            tmp_path: Path) -> None:
    """updated_args lands in OpenCode's own args object (a reassignment would be lost); the
    context comes back in the tool's output after it ran, with the after-hook's own."""
    body = ("if event['hook_event_name'] == 'PreToolUse':\n"
            "    print(json.dumps({'decision': 'allow', 'context': ['pinned'],\n"
            "                      'updated_args': {**event['args'], 'command': 'ls -l'}}))\n"
            "else:\n"
            "    assert event['args'] == {'command': 'ls -l', 'workdir': 'src'}, event\n"
            "    assert event['result'] == {'success': True, 'output': 'x\\n', 'exit_code': 0}\n"
            "    print(json.dumps({'decision': 'allow', 'context': ['post note']}))\n")
    plugin = write_plugin(tmp_path, stub_command(tmp_path, body))
    run = drive(plugin, [before("bash", {"command": "ls", "workdir": "src"}),
                         after("bash", {"command": "ls -l", "workdir": "src"}, "x\n")],
                env, tmp_path)
    pre, post = run.results
    assert pre["threw"] is None
    assert pre["args"] == {"command": "ls -l", "workdir": "src"}
    assert pre["output"]["args"] == pre["args"]
    assert post["output"]["output"] == "x\n\n\n[watchdog] pinned\n[watchdog] post note"


@needs_node
def test_plugin_post_tool_block_is_appended_never_thrown(env: dict[str, str],
                                                         tmp_path: Path) -> None:
    body = "print(json.dumps({'decision': 'block', 'reason': 'saw a secret', 'message': 'm'}))\n"
    plugin = write_plugin(tmp_path, stub_command(tmp_path, body))
    run = drive(plugin, [after("bash", {"command": "cat f"}, "SECRET\n")], env, tmp_path)
    (post,) = run.results
    assert post["threw"] is None
    assert post["output"]["output"] == "SECRET\n\n\n[watchdog] saw a secret"
    assert "[watchdog] m" in run.stderr


FAILURES = [
    ("exit-1", "sys.exit(1)\n"),
    ("garbage", "print('not json')\n"),
    ("no-decision", "print(json.dumps({'reason': 'x'}))\n"),
    ("empty", ""),
    ("slow", "import time; time.sleep(20)\n"),
]


@needs_node
@pytest.mark.parametrize("kind,body", FAILURES, ids=[f[0] for f in FAILURES])
def test_plugin_fails_open_visibly(env: dict[str, str], tmp_path: Path, kind: str,
                                   body: str) -> None:
    plugin = write_plugin(tmp_path, stub_command(tmp_path, body))
    run = drive(plugin, [before("bash", {"command": "ls"})], env, tmp_path,
                {"WATCHDOG_OPENCODE_TIMEOUT_MS": "1000"})
    assert run.results[0]["threw"] is None
    assert "[watchdog] could not check this bash call (" in run.stderr
    assert "allowed it (fail-open)" in run.stderr


@needs_node
@pytest.mark.parametrize("how", ["env", "on_error", "baked"])
@pytest.mark.parametrize("kind,body", FAILURES, ids=[f[0] for f in FAILURES])
def test_plugin_fails_closed_when_asked(env: dict[str, str], tmp_path: Path, kind: str,
                                        body: str, how: str) -> None:
    plugin = write_plugin(tmp_path, stub_command(tmp_path, body), fail_closed=how == "baked")
    extra = {"WATCHDOG_OPENCODE_TIMEOUT_MS": "1000"}
    if how == "env":
        extra["WATCHDOG_OPENCODE_FAIL_CLOSED"] = "1"
    if how == "on_error":
        extra["WATCHDOG_ON_ERROR"] = "closed"
    run = drive(plugin, [before("bash", {"command": "ls"}),
                         after("bash", {"command": "ls"}, "x\n")], env, tmp_path, extra)
    pre, post = run.results
    assert pre["threw"] is not None
    assert pre["threw"].startswith("watchdog could not check this bash call (")
    assert post["threw"] is None  # the tool has run: PostToolUse never throws


@needs_node
def test_plugin_blocks_on_exit_2_and_unknown_decisions(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    """Exit 2 is the hook's own block (failing closed before it could read the event); an
    unknown decision blocks, as Cupcake's plugin does. Both even when failing open."""
    exit2 = write_plugin(tmp_path, stub_command(
        tmp_path, "sys.stderr.write('watchdog: stdin is not valid JSON'); sys.exit(2)\n"))
    run = drive(exit2, [before("bash", {"command": "ls"})], env, tmp_path)
    assert run.results[0]["threw"] == "watchdog: stdin is not valid JSON"
    odd = write_plugin(tmp_path, stub_command(tmp_path, "print('{\"decision\": \"nope\"}')\n"))
    run = drive(odd, [before("bash", {"command": "ls"})], env, tmp_path)
    assert "unknown decision" in run.results[0]["threw"]


class FakeServe(BaseHTTPRequestHandler):
    """`watchdog serve`'s answer: the hook's stdout, 422 + X-Watchdog-Exit when non-zero."""

    seen: list[tuple[str, str | None, dict[str, Any]]] = []
    reply: tuple[int, bytes, dict[str, str]] = (200, b"", {})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServe.seen.append((self.path, self.headers.get("Authorization"), body))
        status, data, headers = FakeServe.reply
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeServe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeServe.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@needs_node
def test_plugin_asks_serve_first_and_falls_back_to_the_command(
        env: dict[str, str], tmp_path: Path, serve_url: str) -> None:
    plugin = write_plugin(tmp_path, stub_command(
        tmp_path, "print(json.dumps({'decision': 'deny', 'reason': 'from the command'}))\n"))
    extra = {"WATCHDOG_SERVE_URL": serve_url, "WATCHDOG_SERVE_TOKEN": "tok"}
    FakeServe.reply = (200, b'{"decision":"deny","reason":"from serve"}\n',
                       {"X-Watchdog-Exit": "0"})
    run = drive(plugin, [before("bash", {"command": "ls"})], env, tmp_path, extra)
    assert run.results[0]["threw"] == "from serve"
    ((path, auth, body),) = FakeServe.seen
    assert (path, auth) == ("/hook/opencode", "Bearer tok")
    assert body == {"hook_event_name": "PreToolUse", "session_id": "ses_1",
                    "cwd": str(tmp_path), "tool": "bash", "args": {"command": "ls"},
                    "call_id": "call_1"}
    FakeServe.reply = (422, b"", {"X-Watchdog-Exit": "2", "X-Watchdog-Stderr": "bad event"})
    run = drive(plugin, [before("bash", {"command": "ls"})], env, tmp_path, extra)
    assert run.results[0]["threw"] == "bad event"  # the hook's exit 2: a block
    FakeServe.reply = (401, b"wrong token", {})
    run = drive(plugin, [before("bash", {"command": "ls"})], env, tmp_path, extra)
    assert run.results[0]["threw"] == "from the command"
    assert "did not answer (HTTP 401)" in run.stderr
    down = {**extra, "WATCHDOG_SERVE_URL": "http://127.0.0.1:9/"}
    run = drive(plugin, [before("bash", {"command": "ls"})] * 2, env, tmp_path, down)
    assert [r["threw"] for r in run.results] == ["from the command"] * 2
    assert run.stderr.count("is unreachable") == 1
