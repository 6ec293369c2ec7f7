"""The RQ job a worker runs for each escalated event: cache, budget, judge, verdict.

    payload -> verdict cache? -> budget.reserve(worst case) -> judge (litellm) -> budget.settle
            -> cache.put -> result:<job id> (read by the hook that waits, or at the next event)

Workers import this module once at start-up (workers/settings.py), so litellm's import (about
5 s) is paid once per worker, not per job: RQ forks a work horse per job and the horse inherits
the loaded modules. Transient model errors (429, 5xx, timeouts) release the reservation and
raise, so RQ retries with backoff; a permanent error or output that is not a verdict becomes an
`unknown` verdict, delivered to the user as a warning. Budget reservations are keyed by the
hook's request id, which survives retries: a worker killed mid-call is not charged twice.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from rq import get_current_job

from watchdog import config
from watchdog.errors import JudgeError, JudgeTransient
from watchdog.escalation import judge, rubric
from watchdog.escalation.budget import Budget
from watchdog.escalation.cache import VerdictCache
from watchdog.escalation.pending import result_key

logger = logging.getLogger(__name__)
VERDICT_LOG_MAX = 10_000


@functools.cache
def settings() -> config.Settings:
    return config.load()


def budget_for(conn: Any, s: config.Settings) -> Budget:
    return Budget(conn, s.redis_prefix, s.budget_daily_usd, s.budget_session_usd,
                  s.budget_total_usd)


def _finish(conn: Any, s: config.Settings, job_id: str, record: dict[str, Any],
            payload: dict[str, Any]) -> dict[str, Any]:
    record = {
        **record,
        "label": payload.get("label"),
        "rubric": payload.get("rubric"),
        "session_id": payload.get("session_id"),
        "judged_at": time.time(),
    }
    text = json.dumps(record)
    pipe = conn.pipeline()
    pipe.set(result_key(s.redis_prefix, job_id), text, ex=max(s.verdict_ttl_s, 24 * 3600))
    pipe.lpush(f"{s.redis_prefix}verdicts", text)
    pipe.ltrim(f"{s.redis_prefix}verdicts", 0, VERDICT_LOG_MAX - 1)
    pipe.execute()
    logger.info("verdict %s", json.dumps({k: record.get(k) for k in (
        "decision", "label", "rubric", "model", "cost_usd", "cached", "confidence")}))
    return record


def fallback(payload: dict[str, Any], s: config.Settings, why: str) -> dict[str, Any]:
    """What applies when no model call is made (the budget is out)."""
    critical = payload.get("rubric") in s.critical_rubrics or s.budget_fallback == "ask"
    if critical:
        return {"decision": "ask", "confidence": 0.0, "reason": why,
                "question": f"The watchdog judge is off ({why}). Allow this action?"}
    return {"decision": "add_context", "confidence": 0.0,
            "reason": f"the judge is off ({why}); this action was not reviewed"}


def judge_event(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: judge one escalated event and store the verdict for its session."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("judge_event runs inside an RQ worker")
    conn, job_id, s = job.connection, job.id, settings()
    key = payload["key"]
    cache = VerdictCache(conn, s.redis_prefix, s.verdict_ttl_s)
    hit = cache.get(key)
    if hit is not None:
        return _finish(conn, s, job_id, {**hit, "cached": True}, payload)
    budget = budget_for(conn, s)
    messages = rubric.render(payload["rubric"], payload)
    # judge() may call each model twice (one corrective retry) and try every fallback.
    calls = 2 * (1 + len(s.judge_fallbacks))
    worst = calls * max(judge.worst_case_cost(m, messages, s.judge_max_tokens)
                        for m in (s.judge_model, *s.judge_fallbacks))
    reservation = payload["request_id"]
    if not budget.reserve(reservation, payload.get("session_id") or "-", worst):
        state = budget.state(payload.get("session_id"))
        which = [k for k in ("daily", "session", "total") if k in state
                 and state[k]["remaining_usd"] < worst]
        why = f"the {'/'.join(which) or 'judge'} budget cap is reached"
        return _finish(conn, s, job_id, {**fallback(payload, s, why), "budget": True}, payload)
    try:
        result = judge.judge(payload, s)
    except JudgeTransient:
        budget.release(reservation)
        raise
    except JudgeError as exc:
        budget.release(reservation)
        return _finish(conn, s, job_id, {"decision": "unknown", "confidence": 0.0,
                                         "reason": f"the judge failed: {exc}"}, payload)
    # A model litellm cannot price keeps its worst-case charge: the budget must still bind.
    budget.settle(reservation, result.cost_usd if result.priced else worst)
    record = {**result.verdict.model_dump(), "model": result.model, "cost_usd": result.cost_usd,
              "latency_ms": result.latency_ms, "cached": False}
    if result.verdict.decision != "unknown":
        cache.put(key, record)
    return _finish(conn, s, job_id, record, payload)


def on_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """A job that failed for good still owes its session an answer: an `unknown` verdict."""
    if job.retries_left:
        return  # RQ will run it again
    payload = job.args[0] if job.args else {}
    _finish(connection, settings(), job.id, {
        "decision": "unknown", "confidence": 0.0,
        "reason": f"the judge could not be reached after retries ({exc_type.__name__}: {exc})",
    }, payload)
