"""One mapping of Redis failures to QueueUnavailable, for every module that talks to Redis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from watchdog.errors import QueueUnavailable


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Map an unreachable Redis to QueueUnavailable, keeping the cause and saying what to do."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise QueueUnavailable(
            f"Redis is unreachable while {what} ({exc}). Start it ('redis-server "
            "--daemonize yes') or point WATCHDOG_REDIS_URL at a running one."
        ) from exc
