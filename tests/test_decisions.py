"""Decision sets and synthesis, checked against Cupcake's documented rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.decisions import (
    ALLOW,
    BLOCKING,
    SET_KEYS,
    DecisionObject,
    DecisionSet,
    aggregate_reasons,
    combine,
    deep_merge,
    merge_modifications,
    parse_set,
    synthesize,
)
from watchdog.errors import DecisionFormatError


def d(rule_id: str, severity: str = "HIGH", reason: str | None = None) -> dict[str, Any]:
    return {"rule_id": rule_id, "reason": reason or f"reason {rule_id}", "severity": severity}


def test_priority_order() -> None:
    """Halt > Deny > Block > Ask > Modify > Allow: the first non-empty category wins."""
    full = {
        "halts": [d("H")], "denials": [d("D")], "blocks": [d("B")], "asks": [d("A")],
        "modifications": [{**d("M"), "updated_input": {"x": 1}}], "add_context": ["c"],
    }
    order = ["halts", "denials", "blocks", "asks", "modifications"]
    for i, key in enumerate(order):
        raw = {k: v for k, v in full.items() if k not in order[:i]}
        assert synthesize(parse_set(raw)).verb == dict(SET_KEYS)[key]
    assert synthesize(parse_set({"add_context": ["a", "b"]})).reason == "a\nb"


def test_context_is_kept_beside_a_deny() -> None:
    """Unlike Cupcake we keep add_context on every verb; the harness decides what to show."""
    decision = synthesize(parse_set({"denials": [d("D")], "add_context": ["note"]}))
    assert decision.verb == "deny" and decision.context == ("note",)


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        (["HIGH"], "reason A0"),
        (["HIGH", "critical"], "Multiple high-severity policy violations detected: "
         "[A0] reason A0; [A1] reason A1"),
        (["HIGH", "LOW", "LOW"], "reason A0"),
        (["MEDIUM", "moderate"], "Multiple policy violations detected: [A0] reason A0; "
         "[A1] reason A1"),
        (["LOW", "info"], "Policy guidelines: reason A0; reason A1"),
        (["LOW", "MEDIUM"], "reason A1"),
    ],
)
def test_reason_aggregation(severities: list[str], expected: str) -> None:
    """Cupcake's aggregation: only the highest non-empty severity bucket is reported."""
    objs = [DecisionObject(f"A{i}", f"reason A{i}", s) for i, s in enumerate(severities)]
    assert aggregate_reasons(objs) == expected


def test_modify_merge_by_priority() -> None:
    """Cupcake case 9: deep merge by priority, higher priority wins on conflicts."""
    ds = parse_set({"modifications": [
        {**d("ADD-TIMEOUT", "MEDIUM", "Add timeout"), "priority": 50,
         "updated_input": {"timeout": 30, "nested": {"key2": "value2"}}},
        {**d("SANITIZE-PATH", "MEDIUM", "Sanitize path"), "priority": 80,
         "updated_input": {"path": "/safe/path", "nested": {"key1": "value1"}}},
    ]})
    decision = synthesize(ds)
    assert decision.updated_input == {
        "path": "/safe/path", "timeout": 30, "nested": {"key1": "value1", "key2": "value2"}}
    assert decision.reason == ("Multiple modifications applied: [SANITIZE-PATH] Sanitize path; "
                               "[ADD-TIMEOUT] Add timeout")
    low = {**d("L"), "priority": 10, "updated_input": {"command": "low"}}
    high = {**d("H"), "priority": 100, "updated_input": {"command": "high"}}
    assert synthesize(parse_set({"modifications": [low, high]})).updated_input == {
        "command": "high"}


@pytest.mark.parametrize(
    "raw",
    [
        {"denials": [{"rule_id": "X", "reason": "r"}]},
        {"denials": [{"rule_id": "X", "severity": "HIGH"}]},
        {"asks": [{"reason": "r", "severity": "HIGH"}]},
        {"halts": ["just a string"]},
        {"denials": [{**d("X"), "agent_context": 5}]},
        {"modifications": [d("M")]},
        {"modifications": [{**d("M"), "updated_input": {}, "priority": 300}]},
        {"add_context": [{"not": "a string"}]},
        {"denials": {"not": "a list"}},
        "not an object",
    ],
    ids=["no-severity", "no-reason", "no-rule-id", "string-decision", "agent-context-int",
         "modify-no-input", "priority-300", "context-object", "set-not-list", "not-object"],
)
def test_malformed_sets_are_rejected(raw: Any) -> None:
    """Cupcake refuses a DecisionSet with a missing or mistyped required field."""
    with pytest.raises(DecisionFormatError):
        parse_set(raw)


def test_unknown_keys_are_ignored() -> None:
    """Extra keys (docs' `question` on ask) and unknown set keys are ignored."""
    ds = parse_set({"asks": [{**d("A"), "question": "really?"}], "surprise": [1]})
    assert synthesize(ds).verb == "ask"


def test_escalate_is_parsed_and_validated() -> None:
    """escalate objects need the usual keys; rubric defaults to general, wait to false."""
    ds = parse_set({}, [d("E")])
    assert ds.escalations[0].rubric == "general" and ds.escalations[0].wait is False
    assert parse_set({}, [{**d("E"), "rubric": "ci-edits", "wait": True}]).escalations[0].wait
    with pytest.raises(DecisionFormatError):
        parse_set({}, [{**d("E"), "rubric": "../etc/passwd"}])
    with pytest.raises(DecisionFormatError):
        parse_set({}, [{**d("E"), "wait": "yes"}])
    assert synthesize(parse_set({}, [d("E")])).verb == ALLOW


def test_global_blocking_wins_and_global_advice_is_discarded() -> None:
    """Cupcake §3.5: a global halt/deny/block short-circuits; global ask/context are dropped."""
    deny = parse_set({"denials": [d("G")]})
    ask = parse_set({"asks": [d("GA")], "add_context": ["global note"]})
    project = parse_set({"add_context": ["project note"]})
    assert combine(deny, project).rule_ids == ("G",)
    assert combine(ask, project).context == ("project note",)
    assert combine(ask, None).verb == ALLOW
    assert combine(None, None).verb == ALLOW


objects = st.builds(
    lambda rid, sev: d(rid, sev),
    st.text("ABCDEFGH", min_size=1, max_size=3),
    st.sampled_from(["HIGH", "CRITICAL", "MEDIUM", "LOW", "info", "moderate"]),
)
sets = st.fixed_dictionaries({
    "halts": st.lists(objects, max_size=2), "denials": st.lists(objects, max_size=2),
    "blocks": st.lists(objects, max_size=2), "asks": st.lists(objects, max_size=2),
    "modifications": st.lists(
        st.builds(lambda o, p, u: {**o, "priority": p, "updated_input": u}, objects,
                  st.integers(0, 255), st.dictionaries(st.sampled_from("abc"), st.integers())),
        max_size=3),
    "add_context": st.lists(st.text(max_size=5), max_size=3),
})


@given(sets)
def test_synthesis_picks_the_strongest_non_empty_category(raw: dict[str, Any]) -> None:
    """Property: the verb is the first non-empty category; its rule ids are that category's."""
    decision = synthesize(parse_set(raw))
    expected = next((verb for key, verb in SET_KEYS if raw[key]), ALLOW)
    assert decision.verb == expected
    if expected != ALLOW:
        key = next(k for k, v in SET_KEYS if v == expected)
        assert sorted(decision.rule_ids) == sorted(o["rule_id"] for o in raw[key])
    if decision.verb in BLOCKING:
        assert decision.reason


@given(st.lists(st.tuples(st.integers(0, 255), st.dictionaries(
    st.sampled_from("abcd"), st.integers() | st.dictionaries(st.sampled_from("xy"), st.integers()),
)), max_size=5))
def test_merge_takes_each_leaf_from_the_highest_priority(
    mods: list[tuple[int, dict[str, Any]]],
) -> None:
    """Property: every top-level scalar comes from the first (highest-priority) mod that has it."""
    objs = [DecisionObject(f"M{i}", "r", "LOW", updated_input=u, priority=p)
            for i, (p, u) in enumerate(mods)]
    merged, _ = merge_modifications(objs)
    ordered = sorted(objs, key=lambda m: -m.priority)
    for key, value in merged.items():
        first = next(m.updated_input[key] for m in ordered if key in (m.updated_input or {}))
        if not isinstance(first, dict):
            assert value == first
    assert deep_merge({}, {}) == {}


def test_empty_set_allows() -> None:
    assert synthesize(DecisionSet([], [], [], [], [], [], [])).verb == ALLOW
