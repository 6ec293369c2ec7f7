"""One escalated payload to one verdict record, through the verdict cache and the USD budget.

    payload -> verdict cache? -> budget.reserve(worst case) -> judge (litellm) -> budget.settle
            -> cache.put -> record

This is the single code path that turns a judge payload into a verdict: the RQ job
(`jobs.judge_event`) stores the record for the session that escalated, and the offline eval
harness (`watchdog.evals`) replays recorded sessions through it in-process. Keeping it in one
place means an eval measures the cache keys, the worst-case reservations and the budget
fallbacks that production uses, not a copy of them.

A record is JSON-simple: the verdict's `decision`, `reason`, `question`, `confidence`, plus
`model`, `cost_usd`, `latency_ms` and `cached` when a model answered or the cache did, and
`budget: true` (and `budget_why`, the kind of `budget.Refusal`) when no call was made because
the budget could not pay for it; the reason then says which cap and why. Transient model
errors (429, 5xx, timeouts) release the reservation and raise `JudgeTransient`, so the caller
can retry (RQ does it with backoff); a permanent error becomes an `unknown` record, never
"looks fine".

The worst case reserved per call is `call_worst_case`; `check_caps` prices a typical call with
it and lists the caps that cannot pay for one, for `watchdog doctor` and for worker start-up
(`report_caps`), because such a cap refuses every call: a configuration error, not a budget
that ran out.

A tool call too long for the judge's prompt is shown in part (head and tail of each long
string, see rubric.py), and a verdict on it says how much the judge saw: an `allow` becomes a
`warn` ("allowed on a partial view: the judge saw only N of M characters"), delivered to the
user, because what was cut may hide anything; other decisions keep theirs and gain the note.
The record then has `cut: {shown, total}`.

litellm (through `judge`) is imported only when a model is actually called: a cache hit costs
one Redis round trip.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from watchdog.config import Settings
from watchdog.errors import JudgeError, JudgeTransient
from watchdog.escalation.budget import CAP_VARS, Budget, to_micros, usd_text
from watchdog.escalation.cache import VerdictCache
from watchdog.escalation.records import VerdictRecord, from_dump
from watchdog.escalation.verdict import MAX_TEXT_CHARS

logger = logging.getLogger(__name__)

# The most characters of a tool call the judge may miss and still allow it silently: none.
MAX_SILENT_UNSEEN_CHARS = 0

# A short escalated tool call, the prompt `check_caps` prices: real calls are rarely smaller.
TYPICAL_PAYLOAD: dict[str, Any] = {
    "event": {"hook_event_name": "PreToolUse", "tool_name": "Bash", "cwd": "/home/user/app",
              "tool_input": {"command": "curl -sS -X POST https://api.example.com/v1/upload "
                                        "-F file=@build/report.tar.gz",
                             "description": "Upload the build report"}},
    "user_prompts": ["Build the project and send the report to the team's dashboard."],
    "escalations": [{"rule_id": "WD-UPLOAD", "reason": "Uploads a file to a remote host.",
                     "severity": "MEDIUM", "rubric": "general", "wait": False}],
    "policy_decision": {"verb": "allow", "reason": None, "rule_ids": []},
}


def budget_for(conn: Any, settings: Settings, clock: Callable[[], float] = time.time) -> Budget:
    """The budget with the configured caps; `clock` gives the time the UTC day is taken from."""
    return Budget(conn, settings.redis_prefix, settings.budget_daily_usd,
                  settings.budget_session_usd, settings.budget_total_usd, clock)


def fallback(payload: dict[str, Any], settings: Settings, why: str) -> VerdictRecord:
    """What applies when no model call is made (the budget is out): `ask` for a rubric marked
    `critical` (in its file or in `critical_rubrics`) or with `budget_fallback = "ask"`, else
    an `add_context` note that the action was not reviewed."""
    from watchdog.escalation import rubric

    name = str(payload.get("rubric") or "general")
    try:
        marked = rubric.load_rubric(name).critical
    except JudgeError:
        marked = False
    if marked or name in settings.critical_rubrics or settings.budget_fallback == "ask":
        return {"decision": "ask", "confidence": 0.0, "reason": why,
                "question": f"The watchdog judge is off ({why}). Allow this action?"}
    return {"decision": "add_context", "confidence": 0.0,
            "reason": f"the judge is off ({why}); this action was not reviewed"}


def unknown(reason: str) -> VerdictRecord:
    """The record for a judge that could not decide; delivered to the user as a warning."""
    return {"decision": "unknown", "confidence": 0.0, "reason": reason}


def seen_in_part(record: VerdictRecord, shown: int, total: int) -> VerdictRecord:
    """`record` for a tool call the judge saw only `shown` of `total` characters of: it says
    so, and an `allow` becomes a `warn` (see the module docstring)."""
    if total - shown <= MAX_SILENT_UNSEEN_CHARS or record.get("decision") == "unknown":
        return record
    note = f"the judge saw only {shown:,} of the tool call's {total:,} characters"
    out: VerdictRecord = {**record, "cut": {"shown": shown, "total": total}}
    if record.get("decision") == "allow":
        out["decision"] = "warn"
        out["reason"] = (f"allowed on a partial view: {note}; "
                         f"{record.get('reason', '')}")[:MAX_TEXT_CHARS]
    else:
        out["reason"] = f"{record.get('reason', '')} ({note})"[:MAX_TEXT_CHARS]
    return out


def judge_payload(conn: Any, settings: Settings, payload: dict[str, Any], *,
                  use_cache: bool = True,
                  clock: Callable[[], float] = time.time) -> VerdictRecord:
    """The verdict record for one payload (see the module docstring).

    `use_cache=False` neither reads nor writes the cache (the eval harness's repeated calls,
    which measure the judge's consistency); the budget applies either way.
    """
    key = payload["key"]
    cache = VerdictCache(conn, settings.redis_prefix, settings.verdict_ttl_s)
    if use_cache:
        hit = cache.get(key)
        if hit is not None:
            return {**hit, "cached": True}
    from watchdog.escalation import judge, rubric  # litellm: only when a model is called

    try:
        messages = rubric.render(payload["rubric"], payload)
    except JudgeError as exc:  # an unknown or broken rubric file: no call can be made
        return unknown(f"the judge prompt could not be built: {exc}")
    budget = budget_for(conn, settings, clock)
    worst = call_worst_case(settings, messages)
    reservation = payload["request_id"]
    session = payload.get("session_id") or "-"
    refused = budget.try_reserve(reservation, session, worst)
    if refused is not None:
        return {**fallback(payload, settings, refused.message), "budget": True,
                "budget_why": refused.kind}
    try:
        result = judge.judge(payload, settings)
    except JudgeTransient:
        budget.release(reservation)
        raise
    except JudgeError as exc:
        budget.release(reservation)
        return unknown(f"the judge failed: {exc}")
    # A model litellm cannot price keeps its worst-case charge: the budget must still bind.
    budget.settle(reservation, result.cost_usd if result.priced else worst)
    record = from_dump({**result.verdict.model_dump(), "model": result.model,
                        "cost_usd": result.cost_usd, "latency_ms": result.latency_ms,
                        "cached": False})
    cut = rubric.tool_call_cut(payload)
    record = seen_in_part(record, cut.shown, cut.total)
    if use_cache and result.verdict.decision != "unknown":
        cache.put(key, record)
    return record


# -- what one call may cost, and caps that cannot pay for one ----------------------------------


def call_worst_case(settings: Settings, messages: Sequence[Mapping[str, Any]]) -> float:
    """USD to reserve before one `judge()` call on `messages`: it may call each model twice (one
    corrective retry) and try every fallback, so that many calls at the dearest model's worst
    case. Imports litellm (through judge.py): workers and `watchdog doctor` only."""
    from watchdog.escalation import judge

    calls = 2 * (1 + len(settings.judge_fallbacks))
    return calls * max(judge.worst_case_cost(m, messages, settings.judge_max_tokens)
                       for m in (settings.judge_model, *settings.judge_fallbacks))


def typical_call_usd(settings: Settings) -> float:
    """One call's worst case on a short tool call (TYPICAL_PAYLOAD), under the dearest rubric:
    a cap below it can pay for almost no call at all."""
    from watchdog.escalation import rubric

    costs = []
    for name in rubric.available_rubrics():
        try:
            messages = rubric.render(name, TYPICAL_PAYLOAD)
        except JudgeError:
            continue  # a broken rubric file is the worker's `unknown` verdict, not a cost
        costs.append(call_worst_case(settings, messages))
    return max(costs, default=0.0)


def check_caps(settings: Settings) -> list[str]:
    """The configured caps that cannot pay for one typical call (a configuration error: every
    escalation would get the budget fallback), each with what to do. A cap of 0 turns the
    judge off on purpose and is not listed."""
    try:
        worst = typical_call_usd(settings)
    except ImportError as exc:
        return [f"the judge's calls cannot be priced: {exc}. Install the judge's clients "
                "(pip install -e '.[judge]')."]
    needed = to_micros(worst)
    fallbacks = len(settings.judge_fallbacks)
    calls = 2 * (1 + fallbacks)
    how = (f"{settings.judge_model} with judge_max_tokens = {settings.judge_max_tokens} on a "
           f"typical prompt, times {calls} for the corrective retry"
           + (f" and {fallbacks} fallback(s)" if fallbacks else ""))
    problems = []
    for dim, cap_usd in (("daily", settings.budget_daily_usd),
                         ("session", settings.budget_session_usd),
                         ("total", settings.budget_total_usd)):
        cap = to_micros(cap_usd)
        if 0 < cap < needed:
            problems.append(
                f"budget_{dim}_usd = {usd_text(cap)} is below one judge call's worst case "
                f"({usd_text(needed)}: {how}), so no call can be made. Raise {CAP_VARS[dim]} "
                f"to at least {usd_text(needed)}, or lower WATCHDOG_JUDGE_MAX_TOKENS or pick a "
                "cheaper WATCHDOG_JUDGE_MODEL.")
    return problems


def report_caps(settings: Settings) -> None:
    """At worker start: each `check_caps` problem as one line on stderr. Never raises: a
    worker that cannot price its model still serves (and refuses with the reason)."""
    try:
        problems = check_caps(settings)
    except Exception as exc:  # noqa: BLE001 - a start-up check must not stop the worker
        logger.warning("budget caps not checked: %s", exc)
        return
    for problem in problems:
        sys.stderr.write(f"watchdog worker: configuration error: {problem}\n")
    sys.stderr.flush()
