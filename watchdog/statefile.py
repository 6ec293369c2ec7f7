"""Small per-session JSON files in the state dir, changed under an exclusive lock.

Parallel hooks of one session (Claude Code runs PostToolUse hooks of parallel tool calls at
once) read-modify-write the same file; `fcntl.flock` serialises them. Used for the verdicts a
session is owed (escalation/pending.py) and its taints (session.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T", list[Any], dict[str, Any])


def session_path(state_dir: str, folder: str, session_id: str) -> str:
    """`<state>/<folder>/<session>.json`, with the session id made safe as a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id or "no-session")[:128]
    return os.path.join(state_dir, folder, f"{safe}.json")


@contextlib.contextmanager
def locked_json(path: str, empty: T) -> Iterator[T]:
    """Yield the file's JSON (`empty` when missing, unreadable or of another type) for the caller
    to change in place; it is written back on exit, and an empty value deletes the file."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        try:
            data = json.loads(fh.read() or "null")
        except ValueError:
            data = None
        value: T = data if isinstance(data, type(empty)) else empty
        yield value
        if value:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(value))
        else:
            os.unlink(path)
