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
`budget: true` when no call was made because a cap was reached. Transient model errors (429,
5xx, timeouts) release the reservation and raise `JudgeTransient`, so the caller can retry
(RQ does it with backoff); a permanent error becomes an `unknown` record, never "looks fine".

A tool call too long for the judge's prompt is shown in part (head and tail of each long
string, see rubric.py), and a verdict on it says how much the judge saw: an `allow` becomes a
`warn` ("allowed on a partial view: the judge saw only N of M characters"), delivered to the
user, because what was cut may hide anything; other decisions keep theirs and gain the note.
The record then has `cut: {shown, total}`.

litellm (through `judge`) is imported only when a model is actually called: a cache hit costs
one Redis round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from watchdog.config import Settings
from watchdog.errors import JudgeError, JudgeTransient
from watchdog.escalation.budget import Budget
from watchdog.escalation.cache import VerdictCache
from watchdog.escalation.verdict import MAX_TEXT_CHARS

# The most characters of a tool call the judge may miss and still allow it silently: none.
MAX_SILENT_UNSEEN_CHARS = 0


def budget_for(conn: Any, settings: Settings, clock: Callable[[], float] = time.time) -> Budget:
    """The budget with the configured caps; `clock` gives the time the UTC day is taken from."""
    return Budget(conn, settings.redis_prefix, settings.budget_daily_usd,
                  settings.budget_session_usd, settings.budget_total_usd, clock)


def fallback(payload: dict[str, Any], settings: Settings, why: str) -> dict[str, Any]:
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


def unknown(reason: str) -> dict[str, Any]:
    """The record for a judge that could not decide; delivered to the user as a warning."""
    return {"decision": "unknown", "confidence": 0.0, "reason": reason}


def seen_in_part(record: dict[str, Any], shown: int, total: int) -> dict[str, Any]:
    """`record` for a tool call the judge saw only `shown` of `total` characters of: it says
    so, and an `allow` becomes a `warn` (see the module docstring)."""
    if total - shown <= MAX_SILENT_UNSEEN_CHARS or record.get("decision") == "unknown":
        return record
    note = f"the judge saw only {shown:,} of the tool call's {total:,} characters"
    out = {**record, "cut": {"shown": shown, "total": total}}
    if record.get("decision") == "allow":
        out.update(decision="warn", reason=f"allowed on a partial view: {note}; "
                                           f"{record.get('reason', '')}"[:MAX_TEXT_CHARS])
    else:
        out["reason"] = f"{record.get('reason', '')} ({note})"[:MAX_TEXT_CHARS]
    return out


def judge_payload(conn: Any, settings: Settings, payload: dict[str, Any], *,
                  use_cache: bool = True,
                  clock: Callable[[], float] = time.time) -> dict[str, Any]:
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
    # judge() may call each model twice (one corrective retry) and try every fallback.
    calls = 2 * (1 + len(settings.judge_fallbacks))
    worst = calls * max(judge.worst_case_cost(m, messages, settings.judge_max_tokens)
                        for m in (settings.judge_model, *settings.judge_fallbacks))
    reservation = payload["request_id"]
    session = payload.get("session_id") or "-"
    if not budget.reserve(reservation, session, worst):
        state = budget.state(payload.get("session_id"))
        which = [k for k in ("daily", "session", "total") if k in state
                 and state[k]["remaining_usd"] < worst]
        why = f"the {'/'.join(which) or 'judge'} budget cap is reached"
        return {**fallback(payload, settings, why), "budget": True}
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
    record = {**result.verdict.model_dump(), "model": result.model, "cost_usd": result.cost_usd,
              "latency_ms": result.latency_ms, "cached": False}
    cut = rubric.tool_call_cut(payload)
    record = seen_in_part(record, cut.shown, cut.total)
    if use_cache and result.verdict.decision != "unknown":
        cache.put(key, record)
    return record
