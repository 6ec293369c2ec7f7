"""Cupcake compatibility of `watchdog hook --harness claude`, through the real hook subprocess.

Expected outputs follow /work/shared/reference/cupcake.md (Cupcake v0.5.2) except where
watchdog/harnesses/claude.py documents that we deliberately differ: context is kept next to
deny/ask and on PreToolUse allow, halt is told apart from deny (`continue: false` +
`stopReason`), modify merges `updatedInput` over the original `tool_input` without a
`permissionDecision` (its reason goes to `additionalContext`), SessionStart ask answers as
SessionStart, and PreCompact deny is `decision: block`. No opinion is `{}` as in Cupcake.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EVALUATE_REGO,
    PolicyRoot,
    bash,
    claude_event,
    isolated_env,
    rego_policy,
    run_cli,
)

# --------------------------------------------------------------------------------------------
# helpers


def decision_rule(
    verb: str, rule_id: str, reason: str, severity: str = "HIGH", cond: str = "true",
    **extra: Any,
) -> str:
    """One `verb contains {...} if { cond }` rule; extra keys are added as JSON values."""
    obj: dict[str, Any] = {"rule_id": rule_id, "reason": reason, "severity": severity, **extra}
    return f"{verb} contains {json.dumps(obj)} if {{\n\t{cond}\n}}\n"


def deny_policy(
    package: str, reason: str, events: list[str], tools: list[str] | None = None,
    cond: str = "true", rule_id: str = "TEST-DENY", severity: str = "HIGH",
) -> str:
    return rego_policy(
        package, decision_rule("deny", rule_id, reason, severity, cond), events=events,
        tools=tools,
    )


def make_env(home: Path) -> dict[str, str]:
    """Same isolation as conftest's `env` fixture, for module-scoped fixtures."""
    return isolated_env(home)


def run_hook(
    env: dict[str, str], event: Any, root: PolicyRoot, extra_env: dict[str, str] | None = None,
) -> Any:
    stdin = event if isinstance(event, (str, bytes)) else json.dumps(event)
    cmd = ["hook", "--harness", "claude", "--policy-dir", str(root.path)]
    return run_cli(cmd, {**env, **(extra_env or {})}, stdin)


def deny_out(reason: str, event: str = "PreToolUse") -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": event, "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def ask_out(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "ask",
            "permissionDecisionReason": reason,
        }
    }


def context_out(event: str, text: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def ok(run: Any) -> dict[str, Any]:
    """The parsed response of a successful hook run (exit 0, one JSON object)."""
    assert run.code == 0, (run.code, run.stdout, run.stderr)
    out = run.json
    assert isinstance(out, dict), run.stdout
    return out


# --------------------------------------------------------------------------------------------
# 1. every verb on every event, exact Claude output

VERB_EVENTS = [
    "PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SessionStart",
    "PermissionRequest", "Notification", "PreCompact",
]
VERBS = ["halt", "deny", "block", "ask", "modify", "add_context"]
ORIGINAL_INPUT = {"command": "rm -rf build", "description": "Clean the build"}
MODIFY_UPDATE = {"command": "echo safe", "extra": {"k": 1}}
MERGED_INPUT = {"command": "echo safe", "description": "Clean the build", "extra": {"k": 1}}

VERBS_POLICY = "\n".join(
    [
        decision_rule("halt", "V-HALT", "R-halt", cond='input.test_verb == "halt"'),
        decision_rule("deny", "V-DENY", "R-deny", cond='input.test_verb == "deny"'),
        decision_rule("block", "V-BLOCK", "R-block", cond='input.test_verb == "block"'),
        decision_rule("ask", "V-ASK", "R-ask", "MEDIUM", cond='input.test_verb == "ask"'),
        decision_rule(
            "modify", "V-MODIFY", "R-modify", "MEDIUM", cond='input.test_verb == "modify"',
            priority=50, updated_input=MODIFY_UPDATE,
        ),
        'add_context contains "ctx-add" if {\n\tinput.test_verb == "add_context"\n}\n',
    ]
)


def verb_event(event: str, verb: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "PreToolUse": {"tool_name": "Bash", "tool_input": ORIGINAL_INPUT, "tool_use_id": "t1"},
        "PostToolUse": {
            "tool_name": "Bash", "tool_input": ORIGINAL_INPUT, "tool_use_id": "t1",
            "tool_response": {"stdout": "", "stderr": "", "interrupted": False},
        },
        "UserPromptSubmit": {"prompt": "hello"},
        "Stop": {"stop_hook_active": False},
        "SessionStart": {"source": "startup"},
        "PermissionRequest": {"tool_name": "Bash", "tool_input": ORIGINAL_INPUT},
        "Notification": {"message": "Claude needs input", "notification_type": "idle_prompt"},
        "PreCompact": {"trigger": "manual", "custom_instructions": ""},
    }[event]
    return claude_event(event, test_verb=verb, **fields)


def _halted(out: dict[str, Any], reason: str) -> dict[str, Any]:
    return {**out, "continue": False, "stopReason": reason}


def expected_verb_output(event: str, verb: str) -> dict[str, Any]:
    """Cupcake's table (cupcake.md §2.1) with our documented differences."""
    reason = f"R-{verb}"
    stop_session = {"continue": False, "stopReason": reason}
    top_block = {"decision": "block", "reason": reason}
    if verb in ("halt", "deny", "block"):
        halt = verb == "halt"
        if event == "PreToolUse":
            out = deny_out(reason)
            return _halted(out, reason) if halt else out
        if event == "PermissionRequest":
            body: dict[str, Any] = {"behavior": "deny", "message": reason}
            if halt:
                body["interrupt"] = True
            out = {"hookSpecificOutput": {"hookEventName": event, "decision": body}}
            return _halted(out, reason) if halt else out
        if event == "Stop":
            return stop_session if halt else top_block
        if event in ("PostToolUse", "UserPromptSubmit", "PreCompact"):
            return _halted(top_block, reason) if halt else top_block
        return stop_session  # SessionStart, Notification
    if verb == "ask":
        if event == "PreToolUse":
            return ask_out(reason)
        if event in ("UserPromptSubmit", "SessionStart", "PostToolUse", "Notification"):
            return context_out(event, reason)
        return {}  # PermissionRequest lets Claude's dialog ask; Stop, PreCompact
    if verb == "modify":
        if event == "PreToolUse":
            return {
                "hookSpecificOutput": {
                    "hookEventName": event, "updatedInput": MERGED_INPUT,
                    "additionalContext": reason,
                }
            }
        if event == "PermissionRequest":
            return {
                "hookSpecificOutput": {
                    "hookEventName": event,
                    "decision": {"behavior": "allow", "updatedInput": MERGED_INPUT},
                }
            }
        if event in ("UserPromptSubmit", "SessionStart"):
            return context_out(event, reason)
        return {}
    assert verb == "add_context"
    if event in ("PreToolUse", "PostToolUse", "UserPromptSubmit", "SessionStart", "Notification"):
        return context_out(event, "ctx-add")
    return {}


@pytest.fixture(scope="module")
def verbs_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Any]]:
    base = tmp_path_factory.mktemp("verbs")
    root = PolicyRoot(base / "project" / ".cupcake")
    root.add("verbs.rego", rego_policy("cupcake.policies.verbs", VERBS_POLICY, events=VERB_EVENTS))
    yield make_env(base / "home"), root


@pytest.mark.parametrize("event", VERB_EVENTS)
@pytest.mark.parametrize("verb", VERBS)
def test_verb_output_per_event(verbs_root: Any, verb: str, event: str) -> None:
    """Each verb on each event prints Cupcake's Claude response, or our documented variant."""
    env, root = verbs_root
    out = ok(run_hook(env, verb_event(event, verb), root))
    assert out == expected_verb_output(event, verb)


def test_no_decision_prints_empty_object(verbs_root: Any) -> None:
    """A routed event where no rule fires prints `{}` on every event."""
    env, root = verbs_root
    for event in VERB_EVENTS:
        run = run_hook(env, verb_event(event, "none"), root)
        assert run.code == 0 and run.stdout == "{}\n", (event, run.stdout)


def test_halt_on_pre_tool_use_is_deny_plus_stop(verbs_root: Any) -> None:
    """Halt on PreToolUse denies the pending tool and stops the session (continue false)."""
    env, root = verbs_root
    out = ok(run_hook(env, verb_event("PreToolUse", "halt"), root))
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert out["continue"] is False
    assert out["stopReason"] == "R-halt"


# --------------------------------------------------------------------------------------------
# 2. routing


def test_routing_by_event_only(root: PolicyRoot, hook: Any) -> None:
    """A policy routed to an event fires on that event and is not evaluated on others."""
    root.add("p.rego", deny_policy("cupcake.policies.p", "prompt denied", ["UserPromptSubmit"]))
    out = ok(hook(claude_event("UserPromptSubmit", prompt="x"), policy_dir=root))
    assert out == {"decision": "block", "reason": "prompt denied"}
    assert ok(hook(claude_event("Stop", stop_hook_active=False), policy_dir=root)) == {}


def test_routing_by_event_and_tool(root: PolicyRoot, hook: Any) -> None:
    """A policy routed to PreToolUse/Bash fires for Bash only."""
    root.add("p.rego", deny_policy("cupcake.policies.p", "bash denied", ["PreToolUse"], ["Bash"]))
    assert ok(hook(bash("ls"), policy_dir=root)) == deny_out("bash denied")
    write = claude_event(
        "PreToolUse", tool_name="Write", tool_input={"file_path": "/tmp/a", "content": "x"}
    )
    assert ok(hook(write, policy_dir=root)) == {}


def test_routing_wildcard_alone_does_not_route(root: PolicyRoot, hook: Any) -> None:
    """Cupcake quirk: a `*` tool policy alone is not found for a tool no other policy names."""
    root.add("w.rego", deny_policy("cupcake.policies.w", "wildcard", ["PreToolUse"], ["*"]))
    assert ok(hook(bash("ls"), policy_dir=root)) == {}


def test_routing_wildcard_joins_named_tools(root: PolicyRoot, hook: Any) -> None:
    """A `*` policy routes a tool as soon as another policy names that tool, and only then."""
    root.add("w.rego", deny_policy("cupcake.policies.w", "wildcard", ["PreToolUse"], ["*"]))
    root.add(
        "s.rego",
        deny_policy(
            "cupcake.policies.s", "never", ["PreToolUse"], ["Bash"],
            cond='input.tool_input.command == "never-matches"',
        ),
    )
    assert ok(hook(bash("ls"), policy_dir=root)) == deny_out("wildcard")
    read = claude_event("PreToolUse", tool_name="Read", tool_input={"file_path": "/tmp/a"})
    assert ok(hook(read, policy_dir=root)) == {}


def test_routing_event_only_pre_tool_use_matches_every_tool(root: PolicyRoot, hook: Any) -> None:
    """An event-only PreToolUse policy routes every tool, named elsewhere or not, MCP included."""
    root.add("all.rego", deny_policy("cupcake.policies.all", "every tool", ["PreToolUse"]))
    root.add(
        "s.rego",
        deny_policy(
            "cupcake.policies.s", "never", ["PreToolUse"], ["Bash"],
            cond='input.tool_input.command == "never-matches"',
        ),
    )
    for tool, tool_input in [
        ("Bash", {"command": "ls"}),
        ("Write", {"file_path": "/tmp/a", "content": "x"}),
        ("mcp__github__create_issue", {"title": "t"}),
    ]:
        event = claude_event("PreToolUse", tool_name=tool, tool_input=tool_input)
        assert ok(hook(event, policy_dir=root)) == deny_out("every tool"), tool


def test_routing_unrouted_event_gives_empty(root: PolicyRoot, hook: Any) -> None:
    """An event no policy routes prints `{}` even though an unconditional deny is loaded."""
    root.add("p.rego", deny_policy("cupcake.policies.p", "denied", ["PreToolUse"]))
    run = hook(claude_event("SessionEnd", reason="other"), policy_dir=root)
    assert run.code == 0 and run.stdout == "{}\n"


def test_routing_is_a_gate_all_policies_evaluated(root: PolicyRoot, hook: Any) -> None:
    """Once any policy routes, every loaded policy is evaluated, even one routed elsewhere."""
    root.add(
        "gate.rego",
        deny_policy(
            "cupcake.policies.gate", "never", ["PreToolUse"], ["Bash"],
            cond='input.tool_input.command == "never-matches"',
        ),
    )
    root.add(
        "other.rego",
        deny_policy(
            "cupcake.policies.other", "other fired", ["UserPromptSubmit"],
            cond='contains(input.tool_input.command, "danger")',
        ),
    )
    assert ok(hook(bash("echo danger"), policy_dir=root)) == deny_out("other fired")
    assert ok(hook(bash("echo fine"), policy_dir=root)) == {}
    edit = claude_event(
        "PreToolUse", tool_name="Edit",
        tool_input={"file_path": "/tmp/a", "old_string": "a", "new_string": "danger"},
    )
    assert ok(hook(edit, policy_dir=root)) == {}  # nothing routes Edit: no evaluation at all


# --------------------------------------------------------------------------------------------
# 3. global policies before project policies


def global_root(env: dict[str, str], kind: str = "watchdog") -> PolicyRoot:
    return PolicyRoot(Path(env["XDG_CONFIG_HOME"]) / kind)


@pytest.mark.parametrize("kind", ["watchdog", "cupcake"])
def test_global_deny_wins_over_project_allow(
    env: dict[str, str], root: PolicyRoot, hook: Any, kind: str
) -> None:
    """A global deny (watchdog or cupcake global dir) wins over a project allow with context."""
    global_root(env, kind).add(
        "g.rego", deny_policy("cupcake.policies.g", "global says no", ["PreToolUse"], ["Bash"])
    )
    root.add(
        "p.rego",
        rego_policy(
            "cupcake.policies.p", 'add_context contains "project ctx" if { true }',
            events=["PreToolUse"], tools=["Bash"],
        ),
    )
    assert ok(hook(bash("ls"), policy_dir=root)) == deny_out("global says no")


def test_global_ask_and_context_discarded_when_project_routes(
    env: dict[str, str], root: PolicyRoot, hook: Any
) -> None:
    """A global ask and add_context are dropped; the routed project set decides."""
    global_root(env).add(
        "g.rego",
        rego_policy(
            "cupcake.policies.g",
            decision_rule("ask", "G-ASK", "global asks")
            + 'add_context contains "global ctx" if { true }\n',
            events=["PreToolUse", "UserPromptSubmit"],
        ),
    )
    root.add(
        "p.rego",
        rego_policy(
            "cupcake.policies.p",
            'add_context contains "project ctx" if { input.hook_event_name == "UserPromptSubmit" }',
            events=["PreToolUse", "UserPromptSubmit"],
        ),
    )
    assert ok(hook(bash("ls"), policy_dir=root)) == {}
    out = ok(hook(claude_event("UserPromptSubmit", prompt="hi"), policy_dir=root))
    assert out == context_out("UserPromptSubmit", "project ctx")


def test_global_deny_short_circuits_project_ask(
    env: dict[str, str], root: PolicyRoot, hook: Any
) -> None:
    """A global deny is returned at once; the project's ask never shows."""
    global_root(env).add(
        "g.rego", deny_policy("cupcake.policies.g", "global deny", ["PreToolUse"], ["Bash"])
    )
    root.add(
        "p.rego",
        rego_policy(
            "cupcake.policies.p", decision_rule("ask", "P-ASK", "project asks"),
            events=["PreToolUse"], tools=["Bash"],
        ),
    )
    assert ok(hook(bash("ls"), policy_dir=root)) == deny_out("global deny")


def test_global_and_project_same_package_name(
    env: dict[str, str], root: PolicyRoot, hook: Any
) -> None:
    """Global files are renamed to cupcake.global.*, so a project package of the same name
    neither clashes nor is mixed into the global set."""
    global_root(env).add(
        "x.rego",
        deny_policy(
            "cupcake.policies.x", "global x", ["PreToolUse"], ["Bash"],
            cond='contains(input.tool_input.command, "global")',
        ),
    )
    root.add(
        "x.rego",
        deny_policy(
            "cupcake.policies.x", "project x", ["PreToolUse"], ["Bash"],
            cond='contains(input.tool_input.command, "project")',
        ),
    )
    assert ok(hook(bash("echo global"), policy_dir=root)) == deny_out("global x")
    assert ok(hook(bash("echo project"), policy_dir=root)) == deny_out("project x")
    assert ok(hook(bash("echo neither"), policy_dir=root)) == {}


# --------------------------------------------------------------------------------------------
# 4. modify merge by priority (cupcake.md §3.4, case 9)

SANITIZE = decision_rule(
    "modify", "SANITIZE-PATH", "Sanitize path", "MEDIUM", priority=80,
    updated_input={"path": "/safe/path", "nested": {"key1": "value1"}},
)
ADD_TIMEOUT = decision_rule(
    "modify", "ADD-TIMEOUT", "Add timeout", "MEDIUM", priority=50,
    updated_input={"timeout": 30, "nested": {"key2": "value2"}},
)


def test_modify_merge_by_priority(root: PolicyRoot, hook: Any) -> None:
    """Two modifies merge deeply (p80 before p50), then over the original tool_input, with
    Cupcake's combined reason in additionalContext and no permissionDecision."""
    root.add("a.rego", rego_policy("cupcake.policies.a", SANITIZE, ["PreToolUse"], ["Bash"]))
    root.add("b.rego", rego_policy("cupcake.policies.b", ADD_TIMEOUT, ["PreToolUse"], ["Bash"]))
    event = claude_event(
        "PreToolUse", tool_name="Bash", tool_use_id="t1",
        tool_input={"command": "ls", "timeout": 5, "nested": {"orig": True}},
    )
    hso = ok(hook(event, policy_dir=root))["hookSpecificOutput"]
    assert hso == {
        "hookEventName": "PreToolUse",
        "updatedInput": {
            "command": "ls",
            "path": "/safe/path",
            "timeout": 30,
            "nested": {"key1": "value1", "key2": "value2", "orig": True},
        },
        "additionalContext": (
            "Multiple modifications applied: [SANITIZE-PATH] Sanitize path; "
            "[ADD-TIMEOUT] Add timeout"
        ),
    }


def test_modify_higher_priority_wins_conflict(root: PolicyRoot, hook: Any) -> None:
    """On a conflicting key the higher-priority modify wins, whatever the file order."""
    body = decision_rule(
        "modify", "LOW", "low", priority=10, updated_input={"command": "low-priority-command"}
    ) + decision_rule(
        "modify", "HIGH", "high", priority=100, updated_input={"command": "high-priority-command"}
    )
    root.add("m.rego", rego_policy("cupcake.policies.m", body, ["PreToolUse"], ["Bash"]))
    hso = ok(hook(bash("original"), policy_dir=root))["hookSpecificOutput"]
    assert hso["updatedInput"] == {"command": "high-priority-command"}
    assert hso["additionalContext"] == "Multiple modifications applied: [HIGH] high; [LOW] low"
    assert "permissionDecision" not in hso


def test_modify_below_ask(root: PolicyRoot, hook: Any) -> None:
    """Ask outranks modify: an ask and a modify together give the ask."""
    body = SANITIZE + decision_rule("ask", "ASK-1", "please confirm", "MEDIUM")
    root.add("m.rego", rego_policy("cupcake.policies.m", body, ["PreToolUse"], ["Bash"]))
    assert ok(hook(bash("ls"), policy_dir=root)) == ask_out("please confirm")


# --------------------------------------------------------------------------------------------
# 5. reason aggregation by severity (cupcake.md §3.3)

SEVERITY_POLICY = "".join(
    decision_rule("deny", rid, reason, sev, cond=f'contains(input.tool_input.command, "{key}")')
    for key, rid, reason, sev in [
        ("h1", "H-1", "high one", "HIGH"),
        ("h2", "H-2", "critical two", "Critical"),
        ("m1", "M-1", "medium one", "MEDIUM"),
        ("m2", "M-2", "moderate two", "moderate"),
        ("l1", "L-1", "low one", "LOW"),
        ("l2", "L-2", "info two", "INFO"),
    ]
)


@pytest.fixture(scope="module")
def severity_root(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], Any]]:
    base = tmp_path_factory.mktemp("severity")
    root = PolicyRoot(base / "project" / ".cupcake")
    root.add(
        "sev.rego", rego_policy("cupcake.policies.sev", SEVERITY_POLICY, ["PreToolUse"], ["Bash"])
    )
    yield make_env(base / "home"), root


def _reason(env: dict[str, str], root: PolicyRoot, command: str) -> str:
    hso = ok(run_hook(env, bash(command), root))["hookSpecificOutput"]
    assert hso["permissionDecision"] == "deny"
    reason: str = hso["permissionDecisionReason"]
    return reason


def _parts(reason: str, prefix: str) -> set[str]:
    assert reason.startswith(prefix), reason
    return set(reason[len(prefix):].split("; "))


def test_reason_single_verbatim(severity_root: Any) -> None:
    """One decision gives its reason verbatim."""
    assert _reason(*severity_root, "l1") == "low one"


def test_reason_multiple_high(severity_root: Any) -> None:
    """Several HIGH/CRITICAL (case-insensitive) give the high-severity summary with rule ids."""
    reason = _reason(*severity_root, "h1 h2 m1 l1")
    prefix = "Multiple high-severity policy violations detected: "
    assert _parts(reason, prefix) == {"[H-1] high one", "[H-2] critical two"}


def test_reason_one_high_hides_lower(severity_root: Any) -> None:
    """One HIGH with LOW ones gives only the HIGH reason."""
    assert _reason(*severity_root, "h1 l1 l2") == "high one"


def test_reason_multiple_medium(severity_root: Any) -> None:
    """Several MEDIUM/MODERATE give the policy-violations summary with rule ids."""
    reason = _reason(*severity_root, "m1 m2 l1")
    prefix = "Multiple policy violations detected: "
    assert _parts(reason, prefix) == {"[M-1] medium one", "[M-2] moderate two"}


def test_reason_multiple_low(severity_root: Any) -> None:
    """Several low-bucket decisions give "Policy guidelines: r; r" without rule ids."""
    reason = _reason(*severity_root, "l1 l2")
    assert _parts(reason, "Policy guidelines: ") == {"low one", "info two"}


# --------------------------------------------------------------------------------------------
# 6. policies without routing are skipped, and verify reports them

NO_METADATA = """package cupcake.policies.nometa

import rego.v1

deny contains {"rule_id": "NOMETA", "reason": "unrouted fired", "severity": "HIGH"} if {
\ttrue
}
"""
NO_ROUTING = """# METADATA
# scope: package
# title: has metadata but no routing
package cupcake.policies.norouting

import rego.v1

deny contains {"rule_id": "NOROUTING", "reason": "unrouted fired", "severity": "HIGH"} if {
\ttrue
}
"""
GATE = deny_policy(
    "cupcake.policies.gate", "never", ["PreToolUse"], ["Bash"],
    cond='input.tool_input.command == "never-matches"',
)


@pytest.mark.parametrize("text", [NO_METADATA, NO_ROUTING], ids=["no-metadata", "no-routing"])
def test_unrouted_policy_is_skipped(root: PolicyRoot, hook: Any, text: str) -> None:
    """A cupcake.policies.* file without routing is not loaded: its deny never fires."""
    root.add("gate.rego", GATE)
    root.add("unrouted.rego", text)
    assert ok(hook(bash("ls"), policy_dir=root)) == {}


def verify(env: dict[str, str], root: PolicyRoot, cwd: Path) -> Any:
    cmd = ["verify", "--harness", "claude", "--policy-dir", str(root.path)]
    return run_cli(cmd, env, cwd=cwd)


@pytest.mark.parametrize("text", [NO_METADATA, NO_ROUTING], ids=["no-metadata", "no-routing"])
def test_verify_reports_unrouted_policy(
    env: dict[str, str], root: PolicyRoot, tmp_path: Path, text: str
) -> None:
    """`watchdog verify` prints `path:line: message` for the unrouted file and exits 1."""
    root.add("gate.rego", GATE)
    root.add("unrouted.rego", text)
    run = verify(env, root, tmp_path)
    assert run.code == 1, (run.stdout, run.stderr)
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "unrouted.rego" in ln]
    assert lines, run.stdout + run.stderr
    assert any(re.search(r"unrouted\.rego:\d+: \S", ln) for ln in lines), lines


def test_verify_clean_root_exits_zero(
    env: dict[str, str], root: PolicyRoot, tmp_path: Path
) -> None:
    """`watchdog verify` exits 0 on a root whose policies all route and compile."""
    root.add("gate.rego", GATE)
    root.add("p.rego", deny_policy("cupcake.policies.p", "denied", ["UserPromptSubmit"]))
    run = verify(env, root, tmp_path)
    assert run.code == 0, (run.stdout, run.stderr)


# --------------------------------------------------------------------------------------------
# 7. builtins load only when enabled in rulebook.yml

NO_VERIFY_BUILTIN = rego_policy(
    "cupcake.policies.builtins.git_block_no_verify",
    decision_rule(
        "deny", "BUILTIN-GIT-BLOCK-NO-VERIFY", "no --no-verify",
        cond='contains(input.tool_input.command, "--no-verify")',
    ),
    events=["PreToolUse"], tools=["Bash"],
)


def test_builtin_not_loaded_without_rulebook(root: PolicyRoot, hook: Any) -> None:
    """A file in builtins/ is not loaded when no rulebook.yml enables it."""
    root.add("gate.rego", GATE)
    root.add("builtins/git_block_no_verify.rego", NO_VERIFY_BUILTIN)
    assert ok(hook(bash("git commit --no-verify -m x"), policy_dir=root)) == {}


def test_builtin_not_loaded_when_disabled(root: PolicyRoot, hook: Any) -> None:
    """A builtin configured with `enabled: false` (or without `enabled`) stays unloaded."""
    root.add("gate.rego", GATE)
    root.add("builtins/git_block_no_verify.rego", NO_VERIFY_BUILTIN)
    root.rulebook("builtins:\n  git_block_no_verify:\n    enabled: false\n")
    assert ok(hook(bash("git commit --no-verify -m x"), policy_dir=root)) == {}


def test_builtin_loaded_when_enabled(root: PolicyRoot, hook: Any) -> None:
    """`builtins: {git_block_no_verify: {enabled: true}}` loads its file from builtins/."""
    root.add("builtins/git_block_no_verify.rego", NO_VERIFY_BUILTIN)
    root.rulebook("builtins:\n  git_block_no_verify:\n    enabled: true\n")
    out = ok(hook(bash("git commit --no-verify -m x"), policy_dir=root))
    assert out == deny_out("no --no-verify")
    assert ok(hook(bash("git commit -m x"), policy_dir=root)) == {}


def test_builtin_config_injected(root: PolicyRoot, hook: Any) -> None:
    """An enabled builtin's rulebook config reaches the policy at input.builtin_config.<name>."""
    body = (
        "deny contains decision if {\n"
        '\tcontains(input.tool_input.command, "--no-verify")\n'
        "\tdecision := {\n"
        '\t\t"rule_id": "BUILTIN-GIT-BLOCK-NO-VERIFY",\n'
        '\t\t"reason": input.builtin_config.git_block_no_verify.message,\n'
        '\t\t"severity": "HIGH",\n'
        "\t}\n"
        "}\n"
    )
    root.add(
        "builtins/git_block_no_verify.rego",
        rego_policy("cupcake.policies.builtins.git_block_no_verify", body, ["PreToolUse"],
                    ["Bash"]),
    )
    root.rulebook(
        "builtins:\n  git_block_no_verify:\n    enabled: true\n    message: hooks must run\n"
    )
    assert ok(hook(bash("git push --no-verify"), policy_dir=root)) == deny_out("hooks must run")


# --------------------------------------------------------------------------------------------
# 8. the user's own system/evaluate.rego works unmodified

EVAL_POLICIES = {
    "deny.rego": deny_policy(
        "cupcake.policies.d", "no rm", ["PreToolUse"], ["Bash"],
        cond='contains(input.tool_input.command, "rm -rf")',
    ),
    "ask.rego": rego_policy(
        "cupcake.policies.a",
        decision_rule("ask", "ASK", "sure?", "MEDIUM", cond='input.tool_input.file_path == ".env"'),
        ["PreToolUse"], ["Write"],
    ),
    "modify.rego": rego_policy(
        "cupcake.policies.nested.m",
        decision_rule(
            "modify", "MOD", "quiet", cond='contains(input.tool_input.command, "npm")',
            updated_input={"command": "npm --silent"},
        ),
        ["PreToolUse"], ["Bash"],
    ),
    "ctx.rego": rego_policy(
        "cupcake.policies.c",
        'add_context contains "be careful" if { input.hook_event_name == "UserPromptSubmit" }',
        ["UserPromptSubmit"],
    ),
}
EVAL_EVENTS = [
    bash("rm -rf /"),
    bash("ls"),
    bash("npm install"),
    claude_event("PreToolUse", tool_name="Write", tool_input={"file_path": ".env", "content": "x"}),
    claude_event("UserPromptSubmit", prompt="hi"),
    claude_event("Stop", stop_hook_active=False),
]


def test_user_system_evaluate_rego_unmodified(root: PolicyRoot, hook: Any, tmp_path: Path) -> None:
    """With Cupcake's system/evaluate.rego on disk the decisions are the same as without it."""
    plain = PolicyRoot(tmp_path / "plain" / ".cupcake")
    for name, text in EVAL_POLICIES.items():
        root.add(name, text)
        plain.add(name, text)
    root.add_system("evaluate.rego", EVALUATE_REGO.read_text())
    with_user = [ok(hook(e, policy_dir=root)) for e in EVAL_EVENTS]
    builtin = [ok(hook(e, policy_dir=plain)) for e in EVAL_EVENTS]
    assert with_user == builtin
    assert with_user[0] == deny_out("no rm")
    assert with_user[1] == {}
    assert with_user[2]["hookSpecificOutput"]["updatedInput"] == {"command": "npm --silent"}
    assert with_user[3] == ask_out("sure?")
    assert with_user[4] == context_out("UserPromptSubmit", "be careful")


# --------------------------------------------------------------------------------------------
# 9. malformed decisions fail open (or closed when configured)

MALFORMED = rego_policy(
    "cupcake.policies.bad",
    'deny contains {"rule_id": "BAD-1", "reason": "missing severity"} if { true }',
    events=["PreToolUse"], tools=["Bash"],
)


def test_malformed_decision_fails_open(root: PolicyRoot, hook: Any) -> None:
    """A deny without severity: exit 0 and only a systemMessage naming the problem."""
    root.add("bad.rego", MALFORMED)
    run = hook(bash("ls"), policy_dir=root)
    out = ok(run)
    assert list(out) == ["systemMessage"], out
    assert "severity" in out["systemMessage"]


def test_malformed_decision_fails_closed(root: PolicyRoot, hook: Any) -> None:
    """With WATCHDOG_ON_ERROR=closed the PreToolUse is denied with a reason naming the failure."""
    root.add("bad.rego", MALFORMED)
    run = hook(bash("ls"), policy_dir=root, extra_env={"WATCHDOG_ON_ERROR": "closed"})
    hso = ok(run)["hookSpecificOutput"]
    assert hso["hookEventName"] == "PreToolUse"
    assert hso["permissionDecision"] == "deny"
    assert "severity" in hso["permissionDecisionReason"]


# --------------------------------------------------------------------------------------------
# 10. Cupcake's input preprocessing


def test_preprocessing_collapses_whitespace(root: PolicyRoot, hook: Any) -> None:
    """Extra spaces and tabs in a Bash command are collapsed before policies see it."""
    root.add(
        "nv.rego",
        deny_policy(
            "cupcake.policies.nv", "no-verify", ["PreToolUse"], ["Bash"],
            cond='contains(input.tool_input.command, "git commit --no-verify")',
        ),
    )
    commands = [
        "git  commit   --no-verify", "git\tcommit --no-verify -m x", "  git commit  --no-verify",
    ]
    for command in commands:
        assert ok(hook(bash(command), policy_dir=root)) == deny_out("no-verify"), command
    assert ok(hook(bash("echo 'git  commit   --no-verify'"), policy_dir=root)) == {}


def test_preprocessing_resolved_file_path(root: PolicyRoot, hook: Any, tmp_path: Path) -> None:
    """A relative file_path gets resolved_file_path joined to the event's cwd."""
    body = (
        "deny contains decision if {\n"
        "\tinput.original_file_path\n"
        '\tdecision := {"rule_id": "PATH", "severity": "HIGH", "reason": concat("|", '
        "[input.resolved_file_path, input.original_file_path])}\n"
        "}\n"
    )
    root.add("path.rego", rego_policy("cupcake.policies.path", body, ["PreToolUse"], ["Write"]))
    work = tmp_path / "work"
    work.mkdir()
    event = claude_event(
        "PreToolUse", cwd=str(work), tool_name="Write",
        tool_input={"file_path": "sub/a.txt", "content": "x"},
    )
    reason = ok(hook(event, policy_dir=root))["hookSpecificOutput"]["permissionDecisionReason"]
    expected = os.path.join(os.path.realpath(work), "sub", "a.txt")
    assert reason == f"{expected}|sub/a.txt"


# --------------------------------------------------------------------------------------------
# 11. Cupcake's ten compatibility cases (cupcake.md §9) that apply to Claude


def test_case1_deny(root: PolicyRoot, hook: Any) -> None:
    """Case 1: a CRITICAL deny on `rm -rf /` gives the PreToolUse deny (minimal payload)."""
    root.add(
        "d.rego",
        deny_policy(
            "cupcake.policies.d", "Dangerous command blocked", ["PreToolUse"], ["Bash"],
            cond='contains(input.tool_input.command, "rm -rf /")', rule_id="TEST-DENY-001",
            severity="CRITICAL",
        ),
    )
    event = {
        "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "rm -rf /"},
        "session_id": "test-session", "cwd": "/tmp",
    }
    run = hook(event, policy_dir=root)
    assert run.code == 0
    assert run.json == deny_out("Dangerous command blocked")


def test_case2_halt_prompt(root: PolicyRoot, hook: Any) -> None:
    """Case 2: halt on UserPromptSubmit blocks the prompt (and, ours, also stops the session)."""
    root.add(
        "h.rego",
        rego_policy(
            "cupcake.policies.h",
            decision_rule(
                "halt", "TEST-HALT", "Dangerous prompt blocked", "CRITICAL",
                cond='contains(input.prompt, "dangerous")',
            ),
            ["UserPromptSubmit"],
        ),
    )
    out = ok(hook(claude_event("UserPromptSubmit", prompt="do something dangerous"),
                  policy_dir=root))
    assert out == {
        "decision": "block", "reason": "Dangerous prompt blocked",
        "continue": False, "stopReason": "Dangerous prompt blocked",
    }


def test_case3_ask_write(root: PolicyRoot, hook: Any) -> None:
    """Case 3: ask on a Write to an important file; the extra `question` key is ignored."""
    root.add(
        "a.rego",
        rego_policy(
            "cupcake.policies.a",
            decision_rule(
                "ask", "TEST-ASK", "Modifying important file", "MEDIUM",
                cond='contains(input.tool_input.file_path, "important")',
                question="Are you sure?",
            ),
            ["PreToolUse"], ["Write"],
        ),
    )
    event = claude_event(
        "PreToolUse", tool_name="Write",
        tool_input={"file_path": "/path/to/important.txt", "content": "new content"},
    )
    assert ok(hook(event, policy_dir=root)) == ask_out("Modifying important file")


def test_case4_allow_with_context(root: PolicyRoot, hook: Any) -> None:
    """Case 4: add_context on UserPromptSubmit becomes additionalContext."""
    body = (
        "add_context contains msg if {\n\tinput.prompt\n"
        '\tmsg := "This is additional context from Cupcake"\n}\n'
    )
    root.add("c.rego", rego_policy("cupcake.policies.c", body, ["UserPromptSubmit"]))
    out = ok(hook(claude_event("UserPromptSubmit", prompt="test prompt"), policy_dir=root))
    assert out == context_out("UserPromptSubmit", "This is additional context from Cupcake")


def test_case5_routing_specificity(root: PolicyRoot, hook: Any) -> None:
    """Case 5: an Edit deny and an all-tools add_context both route; deny wins, and (ours)
    the context is kept next to it."""
    root.add(
        "a.rego",
        deny_policy("cupcake.policies.a", "Specific Edit policy fired", ["PreToolUse"], ["Edit"]),
    )
    root.add(
        "b.rego",
        rego_policy(
            "cupcake.policies.b", 'add_context contains "general context" if { true }',
            ["PreToolUse"],
        ),
    )
    event = claude_event(
        "PreToolUse", tool_name="Edit",
        tool_input={"file_path": "/tmp/a.py", "old_string": "a", "new_string": "b"},
    )
    out = ok(hook(event, policy_dir=root))
    assert out == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "deny",
            "permissionDecisionReason": "Specific Edit policy fired",
            "additionalContext": "general context",
        }
    }


def test_case8_git_no_verify_spacing(root: PolicyRoot, hook: Any) -> None:
    """Case 8: the enabled git_block_no_verify builtin denies --no-verify however it is spaced."""
    body = decision_rule(
        "deny", "BUILTIN-GIT-BLOCK-NO-VERIFY", "Git operations with --no-verify are not permitted.",
        cond='regex.match(`git (commit|push|merge) .*--no-verify`, input.tool_input.command)',
    )
    root.add(
        "builtins/git_block_no_verify.rego",
        rego_policy("cupcake.policies.builtins.git_block_no_verify", body, ["PreToolUse"],
                    ["Bash"]),
    )
    root.rulebook("builtins:\n  git_block_no_verify:\n    enabled: true\n")
    denied = deny_out("Git operations with --no-verify are not permitted.")
    for command in [
        "git  commit --no-verify -m 'test'",
        "git\tcommit --no-verify -m 'test'",
        "git   commit   --no-verify   -m   'test'",
    ]:
        assert ok(hook(bash(command), policy_dir=root)) == denied, command
    for command in ["git commit -m 'test'", "git status", "git push"]:
        assert ok(hook(bash(command), policy_dir=root)) == {}, command


def test_case9_modify_merge(root: PolicyRoot, hook: Any) -> None:
    """Case 9: two modifies merge by priority into one updatedInput with the combined reason."""
    body = SANITIZE + ADD_TIMEOUT
    root.add("m.rego", rego_policy("cupcake.policies.m", body, ["PreToolUse"]))
    event = claude_event("PreToolUse", tool_name="Bash", tool_input={"command": "ls"})
    hso = ok(hook(event, policy_dir=root))["hookSpecificOutput"]
    assert hso["updatedInput"] == {
        "command": "ls", "path": "/safe/path", "timeout": 30,
        "nested": {"key1": "value1", "key2": "value2"},
    }
    assert hso["additionalContext"] == (
        "Multiple modifications applied: [SANITIZE-PATH] Sanitize path; [ADD-TIMEOUT] Add timeout"
    )


# --------------------------------------------------------------------------------------------
# 12. output bytes


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def test_output_bytes(root: PolicyRoot, hook: Any) -> None:
    """One compact JSON line, keys sorted at every level, non-ASCII raw, trailing newline."""
    reason = "Löschen verboten ✋ — 削除禁止"
    root.add(
        "d.rego",
        deny_policy(
            "cupcake.policies.d", reason, ["PreToolUse"], ["Bash"],
            cond='contains(input.tool_input.command, "rm")',
        ),
    )
    root.add(
        "m.rego",
        rego_policy(
            "cupcake.policies.m",
            decision_rule(
                "modify", "M", "reorder", cond='contains(input.tool_input.command, "npm")',
                updated_input={"zeta": 1, "alpha": {"z": 1, "a": 2}, "command": "npm ci"},
            ),
            ["PreToolUse"], ["Bash"],
        ),
    )
    run = hook(bash("rm -rf x"), policy_dir=root)
    assert run.code == 0
    assert run.stdout == canonical(deny_out(reason))
    assert run.stdout.count("\n") == 1 and run.stdout.endswith("}\n")
    assert "✋" in run.stdout and "\\u" not in run.stdout
    run = hook(bash("npm install"), policy_dir=root)
    assert run.stdout == canonical(run.json)
    assert run.stdout.index('"alpha"') < run.stdout.index('"command"') < run.stdout.index('"zeta"')
    assert ": " not in run.stdout and ", " not in run.stdout
    run = hook(bash("ls"), policy_dir=root)
    assert run.stdout == "{}\n"
