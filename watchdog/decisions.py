"""Decision sets, their validation, and Cupcake's synthesis of one final decision.

Policies return verb sets (`halt`, `deny`, `block`, `ask`, `modify`, `add_context`, and our
`escalate`). `parse_set` validates them with Cupcake's rules (decision objects need string
`rule_id`, `reason` and `severity`; unknown keys are ignored), and `synthesize` picks one
decision with Cupcake's priority, Halt > Deny > Block > Ask > Modify > Allow(+context), its
reason aggregation by severity, and its priority-ordered deep merge of `updated_input`.
Everything here is pure: no I/O, no clock.

Unlike Cupcake, a Decision keeps the context strings and agent messages whatever the verb, so a
harness that can show context next to a deny does; Cupcake drops them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog.errors import DecisionFormatError

if TYPE_CHECKING:  # annotations only
    from watchdog.escalation.records import VerdictRecord


HALT, DENY, BLOCK, ASK, MODIFY, ALLOW = "halt", "deny", "block", "ask", "modify", "allow"
BLOCKING = (HALT, DENY, BLOCK)
#: DecisionSet key -> verb name, in priority order (the keys `system/evaluate.rego` returns).
SET_KEYS = (
    ("halts", HALT),
    ("denials", DENY),
    ("blocks", BLOCK),
    ("asks", ASK),
    ("modifications", MODIFY),
)
VERB_NAMES = ("halt", "deny", "block", "ask", "modify", "add_context", "escalate")
DEFAULT_RUBRIC = "general"


class DecisionObject(NamedTuple):
    """One policy's verdict: the members of a `deny`/`halt`/... set."""

    rule_id: str
    reason: str
    severity: str
    agent_context: str | None = None
    updated_input: dict[str, Any] | None = None  # modify only
    priority: int = 50  # modify only; higher wins
    rubric: str = DEFAULT_RUBRIC  # escalate only: which judge prompt
    wait: bool = False  # escalate only: does the hook wait for the verdict


class DecisionSet(NamedTuple):
    halts: list[DecisionObject]
    denials: list[DecisionObject]
    blocks: list[DecisionObject]
    asks: list[DecisionObject]
    modifications: list[DecisionObject]
    add_context: list[str]
    escalations: list[DecisionObject]

    def of(self, key: str) -> list[DecisionObject]:
        value: list[DecisionObject] = getattr(self, key)
        return value


EMPTY_SET = DecisionSet([], [], [], [], [], [], [])


class Decision(NamedTuple):
    """The synthesized outcome a harness renders."""

    verb: str  # halt | deny | block | ask | modify | allow
    reason: str | None = None
    rule_ids: tuple[str, ...] = ()
    agent_messages: tuple[str, ...] = ()
    context: tuple[str, ...] = ()  # add_context strings, kept whatever the verb
    updated_input: dict[str, Any] | None = None
    escalations: tuple[DecisionObject, ...] = ()
    severity: str | None = None  # highest severity among the winning decisions
    notices: tuple[str, ...] = ()  # for the user, not the model (judge warnings, failures)
    escalated: tuple[str, ...] = ()  # rule ids a twin event already escalated (twins.py)

    @property
    def blocking(self) -> bool:
        return self.verb in BLOCKING


ALLOW_DECISION = Decision(ALLOW)


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in obj else f"a {type(value).__name__}"
        raise DecisionFormatError(
            f"{where}: '{key}' must be a string but is {got}. Every decision needs string "
            "'rule_id', 'reason' and 'severity'."
        )
    return value


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecisionFormatError(f"{where}: '{key}' must be a string when present.")
    return value


def _where(verb: str, obj: Any) -> str:
    rid = obj.get("rule_id") if isinstance(obj, dict) else None
    return f"{verb} decision {rid!r}" if isinstance(rid, str) else f"a {verb} decision"


def _parse_object(verb: str, obj: Any) -> DecisionObject:
    where = _where(verb, obj)
    if not isinstance(obj, dict):
        raise DecisionFormatError(
            f"{where} is a {type(obj).__name__}, not an object. Verbs are sets of objects: "
            f'`{verb} contains {{"rule_id": ..., "reason": ..., "severity": ...}} if {{ ... }}`.'
        )
    reason = _require_str(obj, "reason", where)
    rule_id = _require_str(obj, "rule_id", where)
    agent_context = _optional_str(obj, "agent_context", where)
    if verb == MODIFY:
        severity = obj.get("severity", "MEDIUM")
        if not isinstance(severity, str):
            raise DecisionFormatError(f"{where}: 'severity' must be a string when present.")
        if "updated_input" not in obj:
            raise DecisionFormatError(f"{where}: modify decisions need 'updated_input'.")
        priority = obj.get("priority", 50)
        if isinstance(priority, float) and priority.is_integer():
            priority = int(priority)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255:
            raise DecisionFormatError(f"{where}: 'priority' must be an integer from 0 to 255.")
        updated = obj["updated_input"]
        return DecisionObject(
            rule_id, reason, severity, agent_context,
            updated if isinstance(updated, dict) else {}, priority,
        )
    severity = _require_str(obj, "severity", where)
    if verb == "escalate":
        rubric = obj.get("rubric", DEFAULT_RUBRIC)
        wait = obj.get("wait", False)
        if not isinstance(rubric, str) or not rubric.replace("_", "").replace("-", "").isalnum():
            raise DecisionFormatError(
                f"{where}: 'rubric' must name a prompt in prompts/ (letters, digits, - and _)."
            )
        if not isinstance(wait, bool):
            raise DecisionFormatError(f"{where}: 'wait' must be true or false.")
        return DecisionObject(rule_id, reason, severity, agent_context, rubric=rubric, wait=wait)
    return DecisionObject(rule_id, reason, severity, agent_context)


def _members(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecisionFormatError(f"the decision set's '{key}' is not a list.")
    return value


def parse_set(raw: Any, escalations: Any = None) -> DecisionSet:
    """Validate what the entrypoint returned; raise DecisionFormatError saying what is wrong."""
    if not isinstance(raw, dict):
        raise DecisionFormatError(
            "the evaluate entrypoint did not return an object with halts/denials/blocks/asks/"
            "modifications/add_context. Check system/evaluate.rego."
        )
    halts, denials, blocks, asks, mods = (
        [_parse_object(verb, o) for o in _members(raw, key)] for key, verb in SET_KEYS
    )
    context: list[str] = []
    for item in _members(raw, "add_context"):
        if not isinstance(item, str):
            raise DecisionFormatError(
                f"add_context holds a {type(item).__name__}; add_context entries are strings: "
                '`add_context contains "text" if { ... }`.'
            )
        context.append(item)
    esc = [_parse_object("escalate", o) for o in (escalations or [])]
    return DecisionSet(halts, denials, blocks, asks, mods, context, esc)


def _bucket(severity: str) -> int:
    sev = severity.upper()
    if sev in ("HIGH", "CRITICAL"):
        return 0
    if sev in ("MEDIUM", "MODERATE"):
        return 1
    return 2


def aggregate_reasons(decisions: list[DecisionObject]) -> str:
    """Cupcake's reason text: verbatim for one, else only the highest non-empty severity bucket."""
    if not decisions:
        return "Policy evaluation completed"
    if len(decisions) == 1:
        return decisions[0].reason
    buckets: list[list[DecisionObject]] = [[], [], []]
    for d in decisions:
        buckets[_bucket(d.severity)].append(d)
    high, medium, low = buckets
    if high:
        if len(high) == 1:
            return high[0].reason
        joined = "; ".join(f"[{d.rule_id}] {d.reason}" for d in high)
        return f"Multiple high-severity policy violations detected: {joined}"
    if medium:
        if len(medium) == 1:
            return medium[0].reason
        joined = "; ".join(f"[{d.rule_id}] {d.reason}" for d in medium)
        return f"Multiple policy violations detected: {joined}"
    if len(low) == 1:
        return low[0].reason
    return "Policy guidelines: " + "; ".join(d.reason for d in low)


def deep_merge(base: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Merge incoming into a copy of base; base's values win on conflict, objects recurse."""
    out = dict(base)
    for key, value in incoming.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = deep_merge(out[key], value)
    return out


def merge_modifications(mods: list[DecisionObject]) -> tuple[dict[str, Any], str]:
    """Cupcake's modify merge: highest priority first (stable), earlier values win."""
    ordered = sorted(mods, key=lambda m: -m.priority)
    merged: dict[str, Any] = {}
    for m in ordered:
        merged = deep_merge(merged, m.updated_input or {})
    if len(ordered) == 1:
        reason = ordered[0].reason
    else:
        reason = "Multiple modifications applied: " + "; ".join(
            f"[{m.rule_id}] {m.reason}" for m in ordered
        )
    return merged, reason


_SEVERITY_ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "MODERATE": 2, "LOW": 3, "INFO": 4}


def _top_severity(decisions: list[DecisionObject]) -> str | None:
    if not decisions:
        return None
    return min((d.severity for d in decisions), key=lambda s: _SEVERITY_ORDER.get(s.upper(), 5))


def synthesize(ds: DecisionSet) -> Decision:
    """One decision from one set: the first non-empty category in priority order wins."""
    context, escalations = tuple(ds.add_context), tuple(ds.escalations)
    for key, verb in SET_KEYS:
        decisions = ds.of(key)
        if not decisions:
            continue
        agent = tuple(d.agent_context for d in decisions if d.agent_context)
        ids = tuple(d.rule_id for d in decisions)
        if verb == MODIFY:
            merged, reason = merge_modifications(decisions)
            return Decision(
                MODIFY, reason, ids, agent, context, merged, escalations, _top_severity(decisions)
            )
        return Decision(
            verb, aggregate_reasons(decisions), ids, agent, context, None, escalations,
            _top_severity(decisions),
        )
    allow_reason: str | None = "\n".join(ds.add_context) if ds.add_context else None
    return Decision(ALLOW, allow_reason, context=context, escalations=escalations)


def combine(global_set: DecisionSet | None, project_set: DecisionSet | None) -> Decision:
    """Cupcake's global-then-project rule.

    A routed global set that halts, denies or blocks wins at once; otherwise its ask, modify and
    context are discarded (as Cupcake does) and the routed project set decides. `None` means
    that side had no policy routed for this event: no evaluation, an allow.
    """
    if global_set is not None:
        decision = synthesize(global_set)
        if decision.blocking:
            return decision
    if project_set is None:
        return ALLOW_DECISION
    return synthesize(project_set)


STRENGTH = {HALT: 5, DENY: 4, BLOCK: 3, ASK: 2, MODIFY: 1, ALLOW: 0}
JUDGE_RULE_ID = "WATCHDOG-JUDGE"


def merge_advisory(policy: Decision, verdict: VerdictRecord, later: bool = False) -> Decision:
    """Add a judge's verdict to the policy's decision; the result is never weaker.

    The judge only adds: `allow` changes nothing, `add_context` adds context, `warn` and
    `unknown` add context and a notice for the user, and `ask` turns an allow or modify into an
    ask. A halt, deny or block stays exactly as the policy said. A verdict delivered `later`
    (about an earlier event) can no longer ask about that action, so it becomes a warning.
    """
    kind = verdict.get("decision")
    if kind == ALLOW or kind not in ("add_context", "warn", "unknown", ASK):
        return policy
    reason = str(verdict.get("reason") or "no reason given")
    label = verdict.get("label")
    head = f"watchdog judge on earlier {label}" if later and label else "watchdog judge"
    if verdict.get("stale") and verdict.get("path"):
        reason += f" (stale: {verdict['path']} was edited again after this was judged)"
    text = f"{head}: {reason}"
    if kind == "add_context":
        return policy._replace(context=policy.context + (text,))
    if kind == ASK and not later and policy.verb in (ALLOW, MODIFY):
        question = str(verdict.get("question") or reason)
        # In Claude Code's print mode an ask acts as a deny: the reason alone must tell the
        # agent (and the user reading it) that the call was held, why, and which rule sent it
        # to the judge, so the rule can be found in the log and tuned.
        rules = ", ".join(e.rule_id for e in policy.escalations) or "a policy"
        why = f" Why: {reason}." if question != reason else ""
        held = (f"watchdog judge: {question}{why} (held for confirmation; escalated by "
                f"{rules}, rule {JUDGE_RULE_ID})")
        return Decision(
            ASK, held, policy.rule_ids + (JUDGE_RULE_ID,),
            policy.agent_messages, policy.context, None, policy.escalations, policy.severity,
            policy.notices,
        )
    if kind == ASK:
        text = f"{head} would have asked: {verdict.get('question') or reason}"
    return policy._replace(context=policy.context + (text,), notices=policy.notices + (text,))
