"""Every harness x every sample event x every verb: the answer is one the harness accepts.

Each decision goes through the pipeline's own two steps (`degrade` from the capability matrix,
then `render`), as `pipeline.run` does. Checked for each: the answer is one JSON object and a
newline with exit 0 or 2, it uses only keys the harness reads (the lists below are taken
from each harness's documented output schema, independently of the harness modules), and
where the matrix says an event can block, a deny answers differently from an allow: the block
is really expressed, never degraded away. The docs' matrix is the generated one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from watchdog import harnesses, matrix
from watchdog.decisions import Decision, DecisionObject
from watchdog.harnesses.degrade import degrade

SHARED = REPO.parent / "shared" / "reference"
CLAUDE_KEYS = {"continue", "stopReason", "suppressOutput", "systemMessage", "decision",
               "reason", "hookSpecificOutput"}
CLAUDE_HSO = {"hookEventName", "permissionDecision", "permissionDecisionReason",
              "additionalContext", "updatedInput", "decision"}
ALLOWED: dict[str, set[str]] = {
    "claude": CLAUDE_KEYS,
    "factory": CLAUDE_KEYS,
    "cursor": {"permission", "user_message", "agent_message", "question", "continue",
               "followup_message", "additional_context", "updated_input"},
    "opencode": {"decision", "reason", "context", "updated_args", "message"},
}


def _samples(name: str) -> list[tuple[str, dict[str, Any]]]:
    folder = SHARED / "claude-hook-samples" if name == "claude" else \
        REPO / "tests" / "fixtures" / name
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        payload = data.get("payload", data) if isinstance(data, dict) else data
        if isinstance(payload, dict):
            out.append((path.stem, payload))
    return out


def _decisions() -> dict[str, tuple[Decision, Decision]]:
    """label -> (decision, the policy's decision it came from)."""
    esc = DecisionObject("R-ESC", "borderline", "MEDIUM", rubric="general")
    base = {"reason": "R-reason", "rule_ids": ("R-1",), "agent_messages": ("A-msg",),
            "context": ("C-ctx",), "notices": ("N-note",)}
    allow = Decision("allow", context=("C-ctx",))
    out = {verb: (Decision(verb, **base), Decision(verb, **base))  # type: ignore[arg-type]
           for verb in ("halt", "deny", "block", "ask")}
    modify = Decision("modify", updated_input={"command": "ls"}, **base)  # type: ignore[arg-type]
    out["modify"] = (modify, modify)
    out["allow"] = (allow, allow)
    out["judge-ask"] = (Decision("ask", reason="judge asks", escalations=(esc,)),
                        Decision("allow", escalations=(esc,)))
    return out


CASES = [(h, label, payload) for h in harnesses.NAMES for label, payload in _samples(h)]


def _answer(name: str, payload: dict[str, Any], decision: Decision,
            policy: Decision) -> tuple[dict[str, Any], int]:
    harness = harnesses.get(name)
    event = harness.parse(payload)
    caps = harness.capabilities(event.name)
    said, _ = degrade(decision, policy, caps, harness.name, event.name, event.norm.kind)
    reply = harness.render(said, event)
    assert reply.stdout.endswith("\n") and reply.stdout.count("\n") == 1, reply.stdout
    assert reply.exit_code in (0, 2)
    out = json.loads(reply.stdout)
    assert isinstance(out, dict)
    return out, reply.exit_code


def test_every_harness_has_samples() -> None:
    for name in harnesses.NAMES:
        assert len(_samples(name)) >= 5, name


@pytest.mark.parametrize("name,label,payload", CASES, ids=[f"{h}-{lb}" for h, lb, _ in CASES])
def test_answers_use_only_accepted_keys(name: str, label: str, payload: dict[str, Any]) -> None:
    for verb, (decision, policy) in _decisions().items():
        out, _ = _answer(name, payload, decision, policy)
        assert set(out) <= ALLOWED[name], (verb, out)
        hso = out.get("hookSpecificOutput")
        if hso is not None:
            assert set(hso) <= CLAUDE_HSO, (verb, out)
            assert hso["hookEventName"] == harnesses.get(name).parse(payload).name


@pytest.mark.parametrize("name,label,payload", CASES, ids=[f"{h}-{lb}" for h, lb, _ in CASES])
def test_a_block_is_expressed_wherever_the_matrix_says_it_can_be(
        name: str, label: str, payload: dict[str, Any]) -> None:
    harness = harnesses.get(name)
    caps = harness.capabilities(harness.parse(payload).name)
    allow = _answer(name, payload, *_decisions()["allow"])
    for verb in ("deny", "halt"):
        if caps.block or caps.halt:
            assert _answer(name, payload, *_decisions()[verb]) != allow, verb


def test_docs_matrix_is_the_generated_one() -> None:
    """docs/harnesses.md holds `watchdog harnesses --markdown` between its markers."""
    text = (REPO / "docs" / "harnesses.md").read_text(encoding="utf-8")
    start, end = text.index(matrix.BEGIN), text.index(matrix.END) + len(matrix.END)
    assert text[start:end] + "\n" == matrix.markdown(list(harnesses.NAMES)), \
        "regenerate it: watchdog harnesses --markdown"


def test_cli_names_every_harness_and_prints_the_matrix(env: dict[str, str]) -> None:
    from conftest import run_cli

    from watchdog import cli

    assert list(harnesses.NAMES) == cli.HARNESS_NAMES
    shown = run_cli(["harnesses"], env)
    assert shown.code == 0
    for name in harnesses.NAMES:
        assert f"{name}: timeout" in shown.stdout
    assert "beforeShellExecution" in shown.stdout and "PreToolUse" in shown.stdout
    md = run_cli(["harnesses", "--markdown"], env)
    assert md.stdout == matrix.markdown(list(harnesses.NAMES))
