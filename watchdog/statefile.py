"""Small per-session JSON files in the state dir, changed under an exclusive lock.

Parallel hooks of one session (Claude Code runs PostToolUse hooks of parallel tool calls at
once) read-modify-write the same file; `fcntl.flock` serialises them. Used for the verdicts a
session is owed (escalation/pending.py) and its taints (session.py).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from typing import Any, TypeVar

from watchdog.errors import StateError

T = TypeVar("T", list[Any], dict[str, Any])


def safe_name(session_id: str, limit: int = 128) -> str:
    """A session id made safe as (part of) a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", session_id or "no-session")[:limit]


def session_path(state_dir: str, folder: str, session_id: str) -> str:
    """`<state>/<folder>/<session>.json`, with the session id made safe as a file name."""
    return os.path.join(state_dir, folder, f"{safe_name(session_id)}.json")


def _state_error(exc: OSError, path: str, doing: str) -> StateError:
    reason = exc.strerror or str(exc)
    hint = ("free some disk space" if exc.errno == errno.ENOSPC else
            "fix its permissions, or set WATCHDOG_STATE_DIR to a writable folder")
    return StateError(f"cannot {doing} {path} ({reason}): {hint}.")


@contextlib.contextmanager
def locked_json(path: str, empty: T) -> Iterator[T]:
    """Yield the file's JSON (`empty` when missing, unreadable or of another type) for the caller
    to change in place; it is written back on exit, and an empty value deletes the file.
    File-system failures (EACCES, ENOSPC, EROFS) are StateError, naming the file."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _state_error(exc, path, "open") from exc
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            text = fh.read()
        except OSError as exc:
            raise _state_error(exc, path, "read") from exc
        except UnicodeDecodeError:
            text = ""
        try:
            data = json.loads(text or "null")
        except ValueError:
            data = None
        value: T = data if isinstance(data, type(empty)) else empty
        yield value
        try:
            if value:
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps(value))
                fh.flush()
            else:
                os.unlink(path)
        except OSError as exc:
            raise _state_error(exc, path, "write") from exc
