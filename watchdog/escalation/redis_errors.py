"""One mapping of Redis and RQ failures to QueueUnavailable, for every module that talks to Redis.

A call into redis-py or rq is wrapped where it is made (`with redis_errors("what"):`), as httpx
maps transport errors at its boundary: connection refused is one failure among many. After a
connection is up, Redis can still time out, answer an error (`OOM`, `READONLY`, `MISCONF`,
`NOAUTH`, `BUSY`), or answer bytes that are not its protocol (a proxy, a wrong port); rq can
fail to deserialize a job someone else wrote. Each becomes QueueUnavailable with what to do, so
the hook's escalation step falls back to the policy's decision instead of losing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from rq import exceptions as rq_exceptions

from watchdog.errors import QueueUnavailable

_START = ("Start it ('redis-server --daemonize yes') or point WATCHDOG_REDIS_URL at a running "
          "one.")

# Exceptions redis-py lets through unwrapped when a reply is not RESP (seen with a proxy in
# front of Redis answering garbage), and the ones rq raises for jobs it cannot read.
FOREIGN: tuple[type[BaseException], ...] = (
    redis.RedisError,
    OSError,
    ValueError,  # includes UnicodeDecodeError and int() of a garbage length prefix
    IndexError,
    KeyError,
    TypeError,
    rq_exceptions.DeserializationError,
    rq_exceptions.InvalidJobOperation,
    rq_exceptions.InvalidJobOperationError,
    rq_exceptions.TimeoutFormatError,
)


def describe(exc: BaseException, what: str) -> str:
    """One line: what failed, why, and what to do next."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, redis.TimeoutError):
        return (f"Redis did not answer in time while {what} ({text}). Check that the server "
                "is not stalled or overloaded (`redis-cli --latency`), or raise "
                "WATCHDOG_WAIT_DEADLINE_S.")
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return (f"Redis refused our credentials while {what} ({text}). Put the password in "
                "WATCHDOG_REDIS_URL (redis://:PASSWORD@host:port/0).")
    if isinstance(exc, redis.ConnectionError):
        return f"Redis is unreachable while {what} ({text}). {_START}"
    if isinstance(exc, redis.ResponseError):
        upper = text.upper()
        if upper.startswith("OOM"):
            hint = ("Redis is out of memory (maxmemory): raise maxmemory, set an eviction "
                    "policy, or free keys.")
        elif upper.startswith("READONLY"):
            hint = "this Redis is a read-only replica: point WATCHDOG_REDIS_URL at the primary."
        elif upper.startswith("MISCONF"):
            hint = ("Redis cannot write its snapshot and refuses writes: fix its disk, or "
                    "'CONFIG SET stop-writes-on-bgsave-error no'.")
        elif upper.startswith(("NOAUTH", "WRONGPASS")):
            hint = "put the password in WATCHDOG_REDIS_URL (redis://:PASSWORD@host:port/0)."
        elif upper.startswith(("BUSY", "LOADING")):
            hint = "Redis is busy (a long script, or loading its data): retry shortly."
        else:
            hint = "see the Redis server's log."
        return f"Redis answered an error while {what} ({text}): {hint}"
    if isinstance(exc, redis.RedisError | ValueError | IndexError | KeyError | TypeError):
        return (f"Redis answered something that is not the Redis protocol while {what} "
                f"({type(exc).__name__}: {text}). Is WATCHDOG_REDIS_URL really a Redis server?")
    if isinstance(exc, OSError):
        return f"a socket error while {what} ({text}). {_START}"
    return f"RQ could not handle a job while {what} ({type(exc).__name__}: {text})."


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Map any Redis or RQ failure inside the block to QueueUnavailable, keeping the cause."""
    try:
        yield
    except QueueUnavailable:
        raise
    except FOREIGN as exc:
        raise QueueUnavailable(describe(exc, what)) from exc
