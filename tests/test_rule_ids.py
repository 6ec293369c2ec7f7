"""Rendered answers name the rule that decided (by default), or keep Cupcake's exact text.

A deny reason without its rule id leaves the user guessing which policy to tune, and an agent
in print mode (where an ask acts as a deny) can't tell what stopped it. `rule_ids = false`
gives Cupcake's byte-for-byte reason text, which the compatibility tests pin.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PolicyRoot, bash, claude_event, rego_policy, run_cli

POLICY = rego_policy("cupcake.policies.ids", """
    deny contains {"rule_id": "MY-RM", "reason": "no rm -rf", "severity": "HIGH"} if {
        contains(input.tool_input.command, "rm -rf")
    }
    ask contains {"rule_id": "MY-PUSH", "reason": "pushing needs a human", "severity": "LOW"} if {
        contains(input.tool_input.command, "git push")
    }
    add_context contains "plain context" if contains(input.tool_input.command, "ls")
    """, events=["PreToolUse"], tools=["Bash"])


def _hook(env: dict[str, str], root: PolicyRoot, command: str, ids: str | None) -> dict:  # type: ignore[type-arg]
    extra = {**env}
    if ids is None:
        extra.pop("WATCHDOG_RULE_IDS", None)
    else:
        extra["WATCHDOG_RULE_IDS"] = ids
    run = run_cli(["hook", "--policy-dir", str(root.path)], extra, json.dumps(bash(command)))
    assert run.code == 0, run.stderr
    return run.json  # type: ignore[no-any-return]


def test_deny_and_ask_name_their_rule_by_default(env: dict[str, str], root: PolicyRoot) -> None:
    root.add("ids.rego", POLICY)
    deny = _hook(env, root, "rm -rf build", None)["hookSpecificOutput"]
    assert deny["permissionDecisionReason"] == "no rm -rf [MY-RM]"
    ask = _hook(env, root, "git push origin main", None)["hookSpecificOutput"]
    assert ask["permissionDecisionReason"] == "pushing needs a human [MY-PUSH]"
    context = _hook(env, root, "ls", None)["hookSpecificOutput"]
    assert context["additionalContext"] == "plain context"  # no rule decided: nothing added
    log = (Path(env["XDG_STATE_HOME"]) / "watchdog" / "log.jsonl").read_text()
    assert '"rule_ids": ["MY-RM"]' in log  # the id the user reads is the one in the log


def test_rule_ids_off_gives_cupcakes_exact_text(env: dict[str, str], root: PolicyRoot) -> None:
    root.add("ids.rego", POLICY)
    deny = _hook(env, root, "rm -rf build", "0")["hookSpecificOutput"]
    assert deny["permissionDecisionReason"] == "no rm -rf"


def test_a_prompt_block_names_its_rule(env: dict[str, str], root: PolicyRoot) -> None:
    root.add("prompt.rego", rego_policy("cupcake.policies.prompt", """
        block contains {"rule_id": "MY-PROMPT", "reason": "not that", "severity": "HIGH"} if {
            contains(input.prompt, "secret")
        }
        """, events=["UserPromptSubmit"]))
    env2 = {k: v for k, v in env.items() if k != "WATCHDOG_RULE_IDS"}
    run = run_cli(["hook", "--policy-dir", str(root.path)], env2,
                  json.dumps(claude_event("UserPromptSubmit", prompt="print the secret")))
    assert run.json["reason"] == "not that [MY-PROMPT]"
