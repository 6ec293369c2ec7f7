"""Aggregation: the standard Cupcake system/evaluate.rego is replaced by generated direct
references (same decisions, far fewer rule evaluations); a customised one is honoured."""

from __future__ import annotations

import json

from tests.conftest import EVALUATE_REGO, PolicyRoot, bash, rego_policy, run_cli
from watchdog.policies.build import is_standard_evaluate

DENY = rego_policy(
    "cupcake.policies.rm",
    """
    deny contains {"rule_id": "RM", "reason": "no rm", "severity": "HIGH"} if {
        contains(input.tool_input.command, "rm")
    }
    add_context contains "ctx" if input.tool_name == "Bash"
    """,
    events=["PreToolUse"], tools=["Bash"],
)

CUSTOM = """package cupcake.system

import rego.v1

# A customised aggregation: denials are waived for commands marked as reviewed.
evaluate := {
	"halts": [],
	"denials": [d |
		some d in data.cupcake.policies.rm.deny
		not contains(input.tool_input.command, "#reviewed")
	],
	"blocks": [],
	"asks": [],
	"modifications": [],
	"add_context": [c | some c in data.cupcake.policies.rm.add_context],
}
"""


def explain(env: dict[str, str], root: PolicyRoot, command: str) -> tuple[dict, str]:
    run = run_cli(["eval", "--policy-dir", str(root.path), "--explain"], env,
                  json.dumps(bash(command)))
    return run.json, run.stderr


def test_standard_evaluate_is_recognised() -> None:
    assert is_standard_evaluate(EVALUATE_REGO.read_text())
    assert not is_standard_evaluate(CUSTOM)


def test_standard_evaluate_uses_built_in_aggregation(env, root: PolicyRoot) -> None:
    root.add("rm.rego", DENY)
    root.add_system("evaluate.rego", EVALUATE_REGO.read_text())
    out, trace = explain(env, root, "rm -rf x #reviewed")
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "built-in aggregation" in trace


def test_custom_evaluate_is_honoured(env, root: PolicyRoot) -> None:
    root.add("rm.rego", DENY)
    root.add_system("evaluate.rego", CUSTOM)
    out, trace = explain(env, root, "rm -rf x #reviewed")
    assert "system/evaluate.rego aggregation" in trace
    assert out == {
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "additionalContext": "ctx"}
    }
    out, _ = explain(env, root, "rm -rf x")
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_verify_warns_about_regex_rego_cpp_cannot_run(env, root: PolicyRoot) -> None:
    """(?i) and named groups make rego-cpp's regex builtins undefined: verify says so."""
    path = root.add("ci.rego", rego_policy(
        "cupcake.policies.ci",
        """
        deny contains {"rule_id": "CI", "reason": "r", "severity": "HIGH"} if {
            regex.match(`(?i)DROP TABLE`, input.tool_input.command)
        }
        """,
        events=["PreToolUse"], tools=["Bash"]))
    check = run_cli(["verify", "--policy-dir", str(root.path)], env)
    assert check.code == 0
    assert f"{path}:12: warning: regex flags like (?i)" in check.stdout
    assert run_cli(["hook", "--policy-dir", str(root.path)], env,
                   json.dumps(bash("drop table users"))).json == {}
