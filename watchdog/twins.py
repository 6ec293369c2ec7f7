"""Twin events: one action that a harness announces twice gets one decision.

Cursor fires `preToolUse` and then `beforeShellExecution` (or `beforeMCPExecution`) for the same
shell or MCP call. Deciding twice would escalate twice and could answer the two differently
(a session taint recorded in between); so the first decision is kept for a short while under the
harness's `twin_key` and the twin is answered from it, rendered in its own event's shape.

The store is one small JSON file per key in the state dir, written atomically; a missing,
stale or damaged file just means the twin is evaluated again, which is never weaker.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from typing import Any

from watchdog.decisions import Decision

#: How long a decision answers its twin (Cursor sends the two within milliseconds).
MAX_AGE_S = 120.0
_FIELDS = ("verb", "reason", "rule_ids", "agent_messages", "context", "updated_input",
           "severity")


def _path(state_dir: str, key: str) -> str:
    data = key.encode("utf-8", "replace")  # the record holds the whole key: a clash is a miss
    digest = f"{zlib.crc32(data):08x}{zlib.crc32(data[::-1]):08x}"
    return os.path.join(state_dir, "twins", f"{digest}.json")


def remember(state_dir: str, key: str, decision: Decision) -> None:
    """Keep `decision` for the twin (notices and escalations stay with the first event)."""
    path = _path(state_dir, key)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    record: dict[str, Any] = {"key": key, "at": time.time()}
    record.update({f: getattr(decision, f) for f in _FIELDS})
    record["escalated"] = [e.rule_id for e in decision.escalations]
    import threading  # only when writing: the hook path stays free of it

    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh)
    os.replace(tmp, path)
    _prune(os.path.dirname(path))


def recall(state_dir: str, key: str, max_age_s: float = MAX_AGE_S) -> Decision | None:
    """The twin's decision, or None when there is none fresh and intact (then evaluate)."""
    path = _path(state_dir, key)
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    at = record.get("at")
    if not isinstance(at, int | float) or not 0 <= time.time() - at <= max_age_s:
        return None
    verb, reason = record.get("verb"), record.get("reason")
    if verb not in ("halt", "deny", "block", "ask", "modify", "allow"):
        return None
    updated = record.get("updated_input")
    return Decision(
        verb=verb, reason=reason if isinstance(reason, str) else None,
        rule_ids=tuple(str(r) for r in record.get("rule_ids") or ()),
        agent_messages=tuple(str(m) for m in record.get("agent_messages") or ()),
        context=tuple(str(c) for c in record.get("context") or ()),
        updated_input=updated if isinstance(updated, dict) else None,
        severity=record.get("severity") if isinstance(record.get("severity"), str) else None,
        escalated=tuple(str(r) for r in record.get("escalated") or ()),
    )


def _prune(folder: str, keep_s: float = 10 * MAX_AGE_S) -> None:
    """Drop old records now and then (1 call in 32), so the folder stays small."""
    if time.monotonic_ns() % 32:
        return
    cutoff = time.time() - keep_s
    try:
        for entry in os.scandir(folder):
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
    except OSError:
        pass
