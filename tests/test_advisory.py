"""The judge only adds: merging a verdict never weakens the policy's decision."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from watchdog import config
from watchdog.decisions import STRENGTH, Decision, merge_advisory
from watchdog.escalation import verdicts as judging

VERBS = list(STRENGTH)
verdicts = st.fixed_dictionaries(
    {"decision": st.sampled_from(["allow", "ask", "add_context", "warn", "unknown", "bogus"]),
     "reason": st.text(max_size=20)},
    optional={"question": st.text(max_size=10), "label": st.text(max_size=10),
              "stale": st.booleans(), "path": st.text(max_size=10)},
)


@given(verb=st.sampled_from(VERBS), verdict=verdicts, later=st.booleans())
def test_merge_never_weakens(verb: str, verdict: dict[str, Any], later: bool) -> None:
    policy = Decision(verb, "policy reason", ("P",), context=("c",))
    merged = merge_advisory(policy, verdict, later=later)
    assert STRENGTH[merged.verb] >= STRENGTH[policy.verb]
    if policy.blocking:
        assert (merged.verb, merged.reason, merged.rule_ids) == (verb, "policy reason", ("P",))
    assert merged.context[: len(policy.context)] == policy.context


def test_a_judge_ask_says_it_held_the_call_why_and_which_rule() -> None:
    """In print mode an ask acts as a deny: the reason alone tells the agent and the user that
    the call was held, why, and which policy rule sent it to the judge (to find in the log)."""
    from watchdog.decisions import DecisionObject

    escalation = DecisionObject("WD-NET-UPLOAD", "uploads a file", "MEDIUM")
    policy = Decision("allow", escalations=(escalation,))
    ask = {"decision": "ask", "reason": "sends ~/.ssh to an unknown host",
           "question": "Allow uploading ~/.ssh/id_rsa to paste.example?"}
    merged = merge_advisory(policy, ask)
    assert merged.verb == "ask" and merged.reason is not None
    for part in ("Allow uploading", "sends ~/.ssh to an unknown host", "held for confirmation",
                 "WD-NET-UPLOAD", "WATCHDOG-JUDGE"):
        assert part in merged.reason, part


def test_ask_turns_allow_into_ask_but_not_later() -> None:
    ask = {"decision": "ask", "reason": "r", "question": "Really?"}
    now = merge_advisory(Decision("allow"), ask)
    assert now.verb == "ask" and "Really?" in (now.reason or "")
    after = merge_advisory(Decision("allow"), {**ask, "label": "PreToolUse:Bash x"}, later=True)
    assert after.verb == "allow" and after.notices and "would have asked" in after.notices[0]


def test_warn_reaches_the_user_and_stale_is_said() -> None:
    merged = merge_advisory(Decision("allow"), {"decision": "warn", "reason": "odd",
                                                "stale": True, "path": "/a/ci.yml"})
    assert merged.notices and "stale: /a/ci.yml" in merged.notices[0]


def test_budget_fallback_asks_for_critical_rubrics() -> None:
    """Out of budget: a note for ordinary rubrics, an ask for rubrics marked critical."""
    s = config.Settings()
    assert judging.fallback({"rubric": "general"}, s, "cap")["decision"] == "add_context"
    assert judging.fallback({"rubric": "exfiltration"}, s, "cap")["decision"] == "ask"
    assert judging.fallback({"rubric": "general"}, s._replace(budget_fallback="ask"),
                         "cap")["decision"] == "ask"
