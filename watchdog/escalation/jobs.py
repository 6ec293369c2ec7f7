"""The RQ job a worker runs for each escalated event: cache, budget, judge, verdict.

    payload -> verdict cache? -> budget.reserve(worst case) -> judge (litellm) -> budget.settle
            -> cache.put -> result:<job id> (read by the hook that waits, or at the next event)

Workers import this module once at start-up (workers/settings.py), so litellm's import (about
5 s) is paid once per worker, not per job: RQ forks a work horse per job and the horse inherits
the loaded modules. Transient model errors (429, 5xx, timeouts) release the reservation and
raise, so RQ retries with backoff; a permanent error or output that is not a verdict becomes an
`unknown` verdict, delivered to the user as a warning. Budget reservations are keyed by the
hook's request id, which survives retries: a worker killed mid-call is not charged twice.

`cupcake_watchdog` runs Cupcake's watchdog through the same cache and budget: one call on the
hook's rendered prompt, the answer (or the failure) back to the hook that waits for it.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

from rq import get_current_job

from watchdog import config
from watchdog.errors import JudgeError
from watchdog.escalation import cupcake_watchdog as cw
from watchdog.escalation import judge, verdicts
from watchdog.escalation.cache import VerdictCache
from watchdog.escalation.pending import result_key
from watchdog.escalation.records import VerdictRecord
from watchdog.escalation.verdicts import budget_for

logger = logging.getLogger(__name__)
VERDICT_LOG_MAX = 10_000


@functools.cache
def settings() -> config.Settings:
    return config.load()


def _finish(conn: Any, s: config.Settings, job_id: str, record: VerdictRecord,
            payload: dict[str, Any]) -> VerdictRecord:
    record = {
        **record,
        "label": str(payload.get("label") or ""),
        "rubric": str(payload.get("rubric") or ""),
        "session_id": str(payload.get("session_id") or ""),
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


def judge_event(payload: dict[str, Any]) -> VerdictRecord:
    """RQ entry point: judge one escalated event and store the verdict for its session.

    Cache, budget and judge are `verdicts.judge_payload`, the same function the eval harness
    calls in-process; a transient model error propagates so RQ retries the job.
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("judge_event runs inside an RQ worker")
    conn, s = job.connection, settings()
    return _finish(conn, s, job.id, verdicts.judge_payload(conn, s, payload), payload)


def on_failure(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """A job that failed for good still owes its session an answer: an `unknown` verdict."""
    if job.retries_left:
        return  # RQ will run it again
    payload = job.args[0] if job.args else {}
    _finish(connection, settings(), job.id, {
        "decision": "unknown", "confidence": 0.0,
        "reason": f"the judge could not be reached after retries ({exc_type.__name__}: {exc})",
    }, payload)


# -- Cupcake's watchdog ------------------------------------------------------------------------


def _cupcake_finish(conn: Any, payload: dict[str, Any], record: dict[str, Any]
                    ) -> dict[str, Any]:
    """Hand the answer (`output`) or the failure (`error`) to the hook that waits for it."""
    conn.set(payload["result_key"], json.dumps(record), ex=cw.RESULT_TTL_S)
    logger.info("cupcake_watchdog %s", json.dumps({
        "label": payload.get("label"), "model": payload.get("model"),
        "cached": record.get("cached"), "error": record.get("error"),
        "allow": (record.get("output") or {}).get("allow")}))
    return record


def cupcake_watchdog(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: Cupcake's watchdog call for one event, rendered and redacted by the hook.

    One call, no corrective retry and no RQ retry (Cupcake makes one call while the hook
    waits); a model error or a reply that is not a watchdog answer goes back as `error`, which
    the hook turns into Cupcake's failure object. Only answers are cached.
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("cupcake_watchdog runs inside an RQ worker")
    conn, s = job.connection, settings()
    key, reservation = payload["key"], payload["request_id"]
    cache = VerdictCache(conn, s.redis_prefix, s.verdict_ttl_s)
    hit = cache.get(key)
    if hit is not None and isinstance(hit.get("output"), dict):
        return _cupcake_finish(conn, payload, {**hit, "cached": True})
    model, messages = payload["model"], payload["messages"]
    max_tokens = max(s.judge_max_tokens, cw.MAX_TOKENS)
    worst = judge.worst_case_cost(model, messages, max_tokens)
    budget = budget_for(conn, s)
    refusal = budget.try_reserve(reservation, payload.get("session_id") or "-", worst)
    if refusal is not None:
        return _cupcake_finish(conn, payload, {"error": refusal.message})
    call_settings = s._replace(judge_timeout_s=float(payload["timeout_s"]))
    try:
        text, cost, priced = judge.complete_text(
            model, messages, call_settings, api_key=cw.api_key(payload["api_key_env"]),
            max_tokens=max_tokens)
    except JudgeError as exc:
        budget.release(reservation)
        return _cupcake_finish(conn, payload, {"error": cw.describe(exc)})
    budget.settle(reservation, cost if priced else worst)
    try:
        output = cw.parse_output(text)
    except JudgeError as exc:
        return _cupcake_finish(conn, payload, {"error": str(exc), "cost_usd": cost})
    record = {"output": output, "model": model, "cost_usd": cost, "cached": False}
    cache.put(key, record)
    return _cupcake_finish(conn, payload, record)


def cupcake_watchdog_failed(job: Any, connection: Any, exc_type: Any, exc: Any,
                            tb: Any) -> None:
    """A crashed job (Redis trouble, a killed work horse) still answers the waiting hook."""
    payload = job.args[0] if job.args else {}
    if "result_key" in payload:
        _cupcake_finish(connection, payload, {
            "error": f"the watchdog job failed ({exc_type.__name__}: {exc})"})
