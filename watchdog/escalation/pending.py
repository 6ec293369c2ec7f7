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
import os
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from watchdog.statefile import locked_json, session_path

MARKER_DIR = "pending"
LOST_AFTER_S = 24 * 3600  # an entry whose verdict never appeared is reported as lost
EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
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


@contextlib.contextmanager
def _locked(path: str) -> Iterator[list[Entry]]:
    """Read-modify-write the marker under an exclusive lock; an empty list deletes it."""
    with locked_json(path, []) as raw:
        try:
            entries = [Entry(*item) for item in raw if isinstance(item, list)]
        except TypeError:  # written by another version: start afresh
            entries = []
        yield entries
        raw[:] = [list(e) for e in entries]


def remember(state_dir: str, session_id: str, entry: Entry) -> None:
    with _locked(marker_path(state_dir, session_id)) as entries:
        if all(e.request_id != entry.request_id for e in entries):
            entries.append(entry)


def note_edit(state_dir: str, session_id: str, tool: str | None, path: str | None) -> None:
    """An edit to a file with a verdict pending makes that verdict stale."""
    if tool not in EDIT_TOOLS or not path or not has_pending(state_dir, session_id):
        return
    with _locked(marker_path(state_dir, session_id)) as entries:
        for i, e in enumerate(entries):
            if e.path == path and not e.stale:
                entries[i] = e._replace(stale=True)


def result_key(prefix: str, job_id: str) -> str:
    return f"{prefix}result:{job_id}"


def claim_key(prefix: str, request_id: str) -> str:
    return f"{prefix}delivered:{request_id}"


def collect(conn: Any, prefix: str, state_dir: str, session_id: str,
            now: float | None = None) -> list[dict[str, Any]]:
    """Finished verdicts owed to this session, each returned by exactly one caller."""
    now = time.time() if now is None else now
    out: list[dict[str, Any]] = []
    with _locked(marker_path(state_dir, session_id)) as entries:
        keep: list[Entry] = []
        for e in entries:
            raw = conn.get(result_key(prefix, e.job_id))
            if raw is None:
                if now - e.created < LOST_AFTER_S:
                    keep.append(e)
                    continue
                record: dict[str, Any] = {
                    "decision": "unknown", "confidence": 0.0, "label": e.label,
                    "reason": "the judge's verdict never arrived (is a worker running? see "
                              "'rq info' and the failed job registry)",
                }
            else:
                record = json.loads(raw)
            if not conn.set(claim_key(prefix, e.request_id), "1", nx=True, ex=7 * 24 * 3600):
                continue  # a parallel hook of this session delivered it
            record = {**record, "label": record.get("label") or e.label, "stale": e.stale,
                      "path": e.path}
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
