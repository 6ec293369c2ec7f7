"""Verdicts still owed to a session, and their delivery at its next hook event, once.

Workers write each verdict to Redis (`<prefix>result:<job id>`); the hook that escalated keeps
a small marker file per session in the state dir listing the jobs it is owed. The hook's next
event for that session sees the marker with one `stat` (no Redis import when nothing is owed),
fetches the finished verdicts, claims each with `SET NX` so that parallel hooks deliver it once,
and removes it from the marker; unfinished ones stay until they finish. The marker lives on the
machine where the agent runs, so workers anywhere can answer. Each entry remembers the file an
action touched: if that file is edited again before delivery, the verdict says it is stale.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from watchdog import logs
from watchdog.statefile import locked_json, session_path

if TYPE_CHECKING:  # annotations only
    from watchdog.escalation.records import VerdictRecord


MARKER_DIR = "pending"
LOST_AFTER_S = 600  # default: a verdict still not there after 10 minutes is reported as lost
VANISHED_GRACE_S = 2.0  # a job that does not exist this long after enqueueing is gone
BUDGET_SNAPSHOT = "budget.json"  # the judge budget as the last escalating hook saw it


class Entry(NamedTuple):
    job_id: str
    request_id: str
    label: str
    path: str | None
    created: float
    stale: bool = False


def marker_path(state_dir: str, session_id: str) -> str:
    return session_path(state_dir, MARKER_DIR, session_id)


def has_pending(state_dir: str, session_id: str) -> bool:
    """The hook's cheap check: one stat, no Redis."""
    return os.path.exists(marker_path(state_dir, session_id))


def _entry(item: Any) -> Entry | None:
    """An entry as written by `remember`, or None for anything else (another version, a hand
    edit, a damaged file): types are checked here so that no later arithmetic can fail."""
    if not isinstance(item, list) or not 5 <= len(item) <= 6:
        return None
    job_id, request_id, label, path, created, *rest = item
    stale = rest[0] if rest else False
    if not (isinstance(job_id, str) and isinstance(request_id, str) and isinstance(label, str)
            and (path is None or isinstance(path, str)) and isinstance(stale, bool)
            and isinstance(created, int | float) and not isinstance(created, bool)
            and math.isfinite(created)):
        return None
    return Entry(job_id, request_id, label, path, float(created), stale)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[list[Entry]]:
    """Read-modify-write the marker under an exclusive lock; an empty list deletes it.
    Entries that are not well-formed are dropped, and the drop is logged: their verdicts can't
    be matched to a job any more."""
    with locked_json(path, []) as raw:
        entries = [e for e in map(_entry, raw) if e is not None]
        if len(entries) != len(raw):
            state_dir = os.path.dirname(os.path.dirname(path))
            logs.write(state_dir, "warning", "pending_marker_damaged", path=path,
                       dropped=len(raw) - len(entries),
                       message="entries of the owed-verdict marker were not well-formed; "
                               "their verdicts are still in the verdict log")
        yield entries
        raw[:] = [list(e) for e in entries]


def remember(state_dir: str, session_id: str, entry: Entry) -> None:
    with _locked(marker_path(state_dir, session_id)) as entries:
        if all(e.request_id != entry.request_id for e in entries):
            entries.append(entry)


def note_edit(state_dir: str, session_id: str, path: str) -> None:
    """An edit to a file with a verdict pending makes that verdict stale (delivery.py)."""
    if not path or not has_pending(state_dir, session_id):
        return
    with _locked(marker_path(state_dir, session_id)) as entries:
        for i, e in enumerate(entries):
            if e.path == path and not e.stale:
                entries[i] = e._replace(stale=True)


def result_key(prefix: str, job_id: str) -> str:
    return f"{prefix}result:{job_id}"


def claim_key(prefix: str, request_id: str) -> str:
    return f"{prefix}delivered:{request_id}"


def _lost(e: Entry, reason: str) -> VerdictRecord:
    return {"decision": "unknown", "confidence": 0.0, "label": e.label, "lost": True,
            "reason": reason}


def parse_result(raw: Any, label: str) -> VerdictRecord:
    """A stored verdict; garbage in the result key is an explicit `unknown`, never dropped."""
    from watchdog.escalation.records import from_json

    try:
        record = from_json(json.loads(raw))
    except (ValueError, TypeError):
        record = None
    if record is None:
        return {"decision": "unknown", "confidence": 0.0, "label": label, "lost": True,
                "reason": "the judge's stored verdict is not valid JSON (see the worker's log)"}
    return record


def collect(conn: Any, prefix: str, state_dir: str, session_id: str,
            now: float | None = None, lost_after_s: float = LOST_AFTER_S,
            status: Callable[[str], str | None] | None = None,
            queue_name: str = "watchdog") -> list[VerdictRecord]:
    """Finished verdicts owed to this session, each returned by exactly one caller.

    A verdict that cannot come any more is an explicit `unknown` at once: its job failed, or
    the job vanished (Redis restarted without persistence, someone deleted it). One that is
    still queued or running past `lost_after_s` is reported too (no worker, or one stuck), so
    an escalated event never ends in silence. `status` is the RQ job status lookup (None when
    the job does not exist); without it only the age is checked. Redis failures propagate as
    QueueUnavailable (the caller maps them with redis_errors).
    """
    from watchdog.escalation.redis_errors import redis_errors

    now = time.time() if now is None else now
    out: list[VerdictRecord] = []
    with _locked(marker_path(state_dir, session_id)) as entries:
        keep: list[Entry] = []
        for e in entries:
            with redis_errors("collecting the verdicts owed to this session"):
                raw = conn.get(result_key(prefix, e.job_id))
            if raw is not None:
                record = parse_result(raw, e.label)
            else:
                age = now - e.created
                state = status(e.job_id) if status is not None else "queued"
                if state is None and age >= VANISHED_GRACE_S:
                    record = _lost(e, "the judge's job vanished before it answered (Redis "
                                      "restarted without persistence, or the job was "
                                      "deleted); the event was not judged")
                elif state in ("failed", "stopped", "canceled"):
                    record = _lost(e, f"the judge's job {state} without a verdict (see 'rq "
                                      "info' and the failed job registry)")
                elif age >= lost_after_s:
                    if state in ("queued", "scheduled", "deferred"):
                        where = f"still {state}: no worker took it"
                    else:
                        where = f"{state} but never finished: its worker may have died"
                    record = _lost(e, f"no verdict after {int(age)} s; the job is {where}. "
                                      f"Start one with 'watchdog worker' (queue {queue_name})")
                else:
                    keep.append(e)
                    continue
            with redis_errors("claiming a verdict for delivery"):
                claimed = conn.set(claim_key(prefix, e.request_id), "1", nx=True,
                                   ex=7 * 24 * 3600)
            if not claimed:
                continue  # a parallel hook of this session delivered it
            record["label"] = record.get("label") or e.label
            record["stale"], record["path"] = e.stale, e.path
            out.append(record)
        entries[:] = keep
    return out


def read_budget_snapshot(state_dir: str) -> dict[str, Any] | None:
    """`input.watchdog.budget` for policies, without a Redis round trip on every event."""
    try:
        with open(os.path.join(state_dir, BUDGET_SNAPSHOT), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
