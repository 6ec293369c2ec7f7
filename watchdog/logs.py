"""The JSON-lines log in the state dir: one decision record per hook event, and every failure.

Records have stable keys (`v`, `ts`, `level`, `event`, then fields) so `grep '"event":
"policy_compile_error"'` and the eval harness can read them. Written with a single `O_APPEND`
write rather than through `logging` (5 ms to import, on a path that runs on every tool call).
The file rolls over to `log.jsonl.1` past 10 MB. Logging never raises: a hook must not fail
because its log could not be written.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

LOG_NAME = "log.jsonl"
MAX_BYTES = 10 * 1024 * 1024
RECORD_VERSION = 1


def log_path(state_dir: str) -> str:
    return os.path.join(state_dir, LOG_NAME)


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def write(state_dir: str, level: str, event: str, **fields: Any) -> None:
    """Append one record; fields must already be redacted (never pass raw tool input)."""
    now = time.time()
    record = {"v": RECORD_VERSION, "ts": _timestamp(now), "level": level, "event": event}
    record.update(fields)
    line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode(
        "utf-8", "backslashreplace")  # a lone surrogate must not make logging raise
    path = log_path(state_dir)
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size > MAX_BYTES:
                os.replace(path, path + ".1")
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def read(state_dir: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Records from the current log file, oldest first; unreadable lines are skipped."""
    try:
        with open(log_path(state_dir), encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError:
        return []
    if limit is not None:
        lines = lines[-limit:]
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
