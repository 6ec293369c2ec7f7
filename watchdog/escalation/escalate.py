"""The hook's side of escalation (`--watchdog`): deliver owed verdicts, escalate this event.

    Decision -> [verdicts owed to this session, merged] -> [escalate?] -> Decision

An event escalates when a policy put something in `escalate` and no policy halted, denied or
blocked it (a block wins and nothing is enqueued). A cached verdict answers at once. Otherwise
the event becomes an RQ job; with `wait` the hook holds the event up to `wait_deadline_s` for
the verdict, and past the deadline (or without `wait`) the verdict is delivered at the
session's next event. Any queue failure leaves the policy decision as it is, with a notice for
the user and a log record: the judge never stands in the way.

redis and rq are imported here, and this module is imported only when there is something to
deliver or to escalate.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from watchdog import logs
from watchdog.config import Settings
from watchdog.decisions import Decision, merge_advisory
from watchdog.errors import WatchdogError
from watchdog.escalation import delivery, pending, queue
from watchdog.events import Event

if TYPE_CHECKING:
    from watchdog.escalation.records import (
        VerdictRecord,  # annotations only: the TypedDicts cost ~2 ms to create
    )
    from watchdog.policies.manifest import Manifest



def _log_verdict(settings: Settings, event: Event, record: VerdictRecord, how: str) -> None:
    logs.write(
        settings.state_dir, "warning" if record.get("decision") in ("warn", "unknown", "ask")
        else "info", "verdict", how=how, session_id=event.session_id, hook_event=event.name,
        label=record.get("label"), decision=record.get("decision"),
        reason=str(record.get("reason", ""))[:500], model=record.get("model"),
        cached=record.get("cached"), stale=record.get("stale"),
    )


def _snapshot_budget(conn: Any, settings: Settings, session_id: str) -> None:
    """Keep `input.watchdog.budget` current without a Redis round trip on every event."""
    from watchdog.escalation.budget import Budget

    try:
        state = Budget(conn, settings.redis_prefix, settings.budget_daily_usd,
                       settings.budget_session_usd, settings.budget_total_usd).state(session_id)
        path = os.path.join(settings.state_dir, pending.BUDGET_SNAPSHOT)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - a snapshot is a convenience, never a failure
        pass


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; 0 elsewhere). The wait deadline counts
    from the agent's point of view, so interpreter start-up and imports are part of it."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, uptime - started)


def run(event: Event, decision: Decision, manifest: Manifest, settings: Settings,
        trace: Any, deliver: bool = True) -> Decision:
    """Apply escalation to a policy decision; never raises for queue, state or judge trouble.

    `deliver` is False on events whose answer cannot carry context to the model (Claude Code's
    Stop, say): verdicts owed to the session then wait for the next event that can. Whatever
    fails here (Redis in any way, the state dir, the request), the answer is the decision so
    far, never weaker than the policy's, with a notice that says what failed and what to do.
    """
    wants = bool(decision.escalations) and not decision.blocking
    started = time.monotonic() - process_age_s()
    conn: Any = None
    owed = False
    try:
        edited = delivery.edits_file(event.norm)
        if edited:
            pending.note_edit(settings.state_dir, event.session_id, edited)
        owed = deliver and pending.has_pending(settings.state_dir, event.session_id)
        if not owed and not wants:
            return decision
        conn = queue.connect(settings, timeout_s=min(2.0, settings.wait_deadline_s))
        if owed:
            status = functools.partial(queue.job_status, conn)
            for record in pending.collect(conn, settings.redis_prefix, settings.state_dir,
                                          event.session_id, status=status,
                                          lost_after_s=settings.verdict_lost_after_s,
                                          queue_name=settings.queue):
                trace(f"delivered earlier verdict: {record.get('decision')} "
                      f"on {record.get('label')}")
                _log_verdict(settings, event, record, "lost" if record.get("lost") else "later")
                decision = merge_advisory(decision, record, later=True)
        if wants:
            decision, from_cache = _escalate(
                conn, event, decision, manifest, settings, trace, started
            )
            if not from_cache:  # a cache hit spends nothing: the snapshot is still right
                _snapshot_budget(conn, settings, event.session_id)
    except WatchdogError as exc:
        logs.write(settings.state_dir, "error", exc.kind, message=str(exc),
                   session_id=event.session_id, hook_event=event.name,
                   step="escalate" if wants else "deliver")
        trace(f"escalation unavailable: {exc}")
        what = "judge unavailable" if wants else "earlier verdicts not delivered"
        note = f"watchdog: {what}, policy decision only: {exc}"
        decision = decision._replace(notices=decision.notices + (note,))
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
    return decision


def _escalate(conn: Any, event: Event, decision: Decision, manifest: Manifest,
              settings: Settings, trace: Any, started: float) -> tuple[Decision, bool]:
    """The decision with the verdict merged (when there is one yet), and whether it came from
    the cache. The request builder (redaction: detect-secrets, ~55 ms of imports) and the
    cache load here, so an event that only collects owed verdicts does not pay for them."""
    from watchdog.escalation import request
    from watchdog.escalation.cache import VerdictCache

    payload = request.build(event, decision, manifest, settings)
    key = payload["key"]
    hit = VerdictCache(conn, settings.redis_prefix, settings.verdict_ttl_s).get(key)
    if hit is not None:
        trace(f"verdict cache hit: {hit.get('decision')}")
        record: VerdictRecord = {**hit, "cached": True, "label": payload["label"]}
        _log_verdict(settings, event, record, "cache")
        return merge_advisory(decision, record), True
    job = queue.enqueue(queue.queue(conn, settings), payload["job_id"], payload, settings)
    trace(f"enqueued {job.id[:19]}... rubric={payload['rubric']} wait={payload['wait']}")
    workers = queue.live_workers(conn, settings.queue)
    if not workers:
        note = (f"watchdog: no worker serves queue '{settings.queue}', so the judge has not "
                "seen this event: start one with 'watchdog worker'. Its verdict comes at a "
                "later event once a worker runs.")
        decision = decision._replace(notices=decision.notices + (note,))
        logs.write(settings.state_dir, "warning", "no_worker", queue=settings.queue,
                   session_id=event.session_id, hook_event=event.name)
        trace("no live worker on the queue: not waiting")
    if payload["wait"] and workers:
        deadline = started + settings.wait_deadline_s
        raw = queue.wait_for(
            conn, pending.result_key(settings.redis_prefix, payload["job_id"]), deadline
        )
        if raw is not None:
            record = pending.parse_result(raw, payload["label"])
            record["label"] = payload["label"]
            trace(f"verdict in time: {record.get('decision')}")
            _log_verdict(settings, event, record, "wait")
            return merge_advisory(decision, record), False
        trace("no verdict before the deadline: it will come at the next event")
    pending.remember(settings.state_dir, event.session_id, pending.Entry(
        job_id=payload["job_id"], request_id=payload["request_id"], label=payload["label"],
        path=delivery.touched_path(event.norm), created=time.time(),
    ))
    return decision, False
