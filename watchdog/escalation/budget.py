"""The judge's spending caps: USD per UTC day, per session and in total, shared by every worker.

A worker reserves the worst-case cost of a model call before making it and settles with the
real cost afterwards (or releases the reservation when the call failed before costing
anything). Reservations count against the caps exactly like spending does, so however many
workers race, the money committed (spent + reserved) never passes a cap.

**Why Lua.** Workers run on several machines against one Redis, so no process-local lock can
serialize them, and "read the counters, compare, then increment" from Python would let two
workers both see room for one more call. Each operation is one Lua script (`register_script`,
sent by SHA): Redis runs a script without interleaving any other command, so the check and the
charge are one atomic step for every client on every machine, in one round trip. WATCH/MULTI
would be atomic too, but retries under contention, which is exactly when it matters.

**Why micro-dollars.** Counters are integers (HINCRBY) in millionths of a dollar: adding
0.1 ten times in floating point is not 1.0, and a cap check that drifts with the number of
calls would let the tenth $0.10 call fail against a $1.00 cap, or an extra one pass. The API
takes and returns USD floats, rounded to the micro-dollar.

**Retries.** A reservation is keyed by the job's id. If a worker is killed mid-call, RQ runs the
job again with the same id; `reserve` finds the reservation still `reserved` and answers True
without charging again. `settle` and `release` act once: a second call, or one for an unknown
id, does nothing. Once a reservation is settled or released, a new `reserve` with the same id is
a new model call and is charged again. Reservations nobody settles (a worker killed for good)
are returned to the caps after `stale_after_s` by the next `reserve` (state `expired`); if the
slow worker settles after all, its real cost is still recorded as spent.

Keys (all under the configured prefix; hashes with integer fields `spent` and `reserved`, in
micro-dollars):

* `budget:day:<YYYY-MM-DD>`  the UTC day of the reservation; expires `DAY_TTL_S` after its last
  write
* `budget:session:<session id>`  expires `SESSION_TTL_S` after its last write
* `budget:total`  never expires
* `budget:res:<job id>`  the reservation: `amount` (micro-dollars), `session`, `day`, `state`
  (`reserved`, `settled`, `released`, `expired`), `t` (when reserved), `actual` once settled;
  kept `RECORD_TTL_S` after it is settled or released, so duplicates are recognised
* `budget:open`  sorted set of reserved job ids by reservation time, for expiring stale ones

Settling charges the buckets of the reservation (its day and session), not those of the moment
of settling. Caps are not stored in Redis: every call passes the caller's, so a worker with a
lower cap enforces it. The scripts touch keys they derive from a reservation, so they need a
single Redis (as RQ does), not Redis Cluster.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.commands.core import Script

from watchdog.escalation.redis_errors import redis_errors

logger = logging.getLogger(__name__)

MICROS_PER_USD = 1_000_000
DAY_TTL_S = 4 * 24 * 3600  # today, plus a few days to look back at
SESSION_TTL_S = 30 * 24 * 3600
RECORD_TTL_S = 2 * 24 * 3600  # a settled or released reservation, for idempotency
STALE_AFTER_S = 3600.0  # far above job_timeout_s x (job_retries + 1) plus the retry backoff
REAP_LIMIT = 50  # stale reservations returned per reserve call, to bound the script's work

_LUA_HELPERS = """
local function add(key, field, n)
  if n ~= 0 then redis.call('HINCRBY', key, field, string.format('%d', n)) end
end
local function unreserve(key, n)
  if redis.call('EXISTS', key) == 1 then add(key, 'reserved', -n) end
end
"""

# KEYS: reservation, day bucket, session bucket, total bucket, open set
# ARGV: job id, amount, day, session, day cap, session cap, total cap, now, stale before,
#       prefix, day ttl, session ttl, record ttl, reap limit
# Returns 1 (reserved), 2 (already reserved: a retry), or -1/-2/-3 (refused by day/session/total).
_RESERVE_LUA = _LUA_HELPERS + """
local prefix = ARGV[10]
local stale = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[9], 'LIMIT', 0, ARGV[14])
for _, jid in ipairs(stale) do
  local rk = prefix .. 'budget:res:' .. jid
  local r = redis.call('HMGET', rk, 'state', 'amount', 'day', 'session')
  if r[1] == 'reserved' then
    local n = tonumber(r[2])
    unreserve(prefix .. 'budget:day:' .. r[3], n)
    unreserve(prefix .. 'budget:session:' .. r[4], n)
    unreserve(KEYS[4], n)
    redis.call('HSET', rk, 'state', 'expired')
    redis.call('EXPIRE', rk, ARGV[13])
  end
  redis.call('ZREM', KEYS[5], jid)
end
if redis.call('HGET', KEYS[1], 'state') == 'reserved' then return 2 end
local amount = tonumber(ARGV[2])
local buckets = {KEYS[2], KEYS[3], KEYS[4]}
local caps = {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
for i = 1, 3 do
  if caps[i] <= 0 then return -i end
  local v = redis.call('HMGET', buckets[i], 'spent', 'reserved')
  if (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + amount > caps[i] then return -i end
end
for i = 1, 3 do add(buckets[i], 'reserved', amount) end
redis.call('EXPIRE', KEYS[2], ARGV[11])
redis.call('EXPIRE', KEYS[3], ARGV[12])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'amount', ARGV[2], 'session', ARGV[4], 'day', ARGV[3],
           'state', 'reserved', 't', ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[1])
return 1
"""

# KEYS: reservation, total bucket, open set
# ARGV: job id, actual, prefix, day ttl, session ttl, record ttl
# Returns 1 (settled), 0 (unknown or already settled/released: nothing done).
_SETTLE_LUA = _LUA_HELPERS + """
local r = redis.call('HMGET', KEYS[1], 'state', 'amount', 'day', 'session')
if r[1] ~= 'reserved' and r[1] ~= 'expired' then return 0 end
local day = ARGV[3] .. 'budget:day:' .. r[3]
local session = ARGV[3] .. 'budget:session:' .. r[4]
if r[1] == 'reserved' then
  local n = tonumber(r[2])
  unreserve(day, n)
  unreserve(session, n)
  unreserve(KEYS[2], n)
end
local actual = tonumber(ARGV[2])
add(day, 'spent', actual)
add(session, 'spent', actual)
add(KEYS[2], 'spent', actual)
redis.call('EXPIRE', day, ARGV[4])
redis.call('EXPIRE', session, ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'settled', 'actual', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

# KEYS: reservation, total bucket, open set
# ARGV: job id, prefix, record ttl
# Returns 1 (released), 0 (unknown or already settled/released: nothing done).
_RELEASE_LUA = _LUA_HELPERS + """
local r = redis.call('HMGET', KEYS[1], 'state', 'amount', 'day', 'session')
if r[1] == 'reserved' then
  local n = tonumber(r[2])
  unreserve(ARGV[2] .. 'budget:day:' .. r[3], n)
  unreserve(ARGV[2] .. 'budget:session:' .. r[4], n)
  unreserve(KEYS[2], n)
elseif r[1] ~= 'expired' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'released')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

_REFUSED_BY = {-1: "daily", -2: "session", -3: "total"}


def to_micros(usd: float) -> int:
    """USD to integer micro-dollars (rounded); refuses negative, NaN and infinite amounts."""
    if not isinstance(usd, int | float) or not math.isfinite(usd) or usd < 0:
        raise ValueError(f"a USD amount must be a finite number >= 0, not {usd!r}")
    return round(usd * MICROS_PER_USD)


def to_usd(micros: int) -> float:
    return round(micros / MICROS_PER_USD, 6)


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


class Budget:
    """Atomic reserve / settle / release against daily, per-session and total USD caps.

    A cap of 0 means no judge calls at all. `clock` gives the time (seconds since the epoch);
    tests inject one to cross midnight.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str,
        daily_usd: float,
        session_usd: float,
        total_usd: float,
        clock: Callable[[], float] = time.time,
        *,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.redis = redis_client
        self.prefix = prefix
        self.caps = {
            "daily": to_micros(daily_usd),
            "session": to_micros(session_usd),
            "total": to_micros(total_usd),
        }
        self.clock = clock
        self.stale_after_s = stale_after_s
        self._reserve: Script = redis_client.register_script(_RESERVE_LUA)
        self._settle: Script = redis_client.register_script(_SETTLE_LUA)
        self._release: Script = redis_client.register_script(_RELEASE_LUA)

    # Key names, public so tests and `watchdog` commands can inspect them.
    def day_key(self, day: str) -> str:
        return f"{self.prefix}budget:day:{day}"

    def session_key(self, session_id: str) -> str:
        return f"{self.prefix}budget:session:{session_id}"

    def total_key(self) -> str:
        return f"{self.prefix}budget:total"

    def reservation_key(self, job_id: str) -> str:
        return f"{self.prefix}budget:res:{job_id}"

    def open_key(self) -> str:
        return f"{self.prefix}budget:open"

    def reserve(self, job_id: str, session_id: str, amount_usd: float) -> bool:
        """Reserve amount_usd for job_id's model call; False (nothing recorded) if a cap is hit.

        True without a second charge when job_id already holds a live reservation (a retry).
        """
        amount = to_micros(amount_usd)
        now = self.clock()
        day = utc_day(now)
        with redis_errors("reserving judge budget"):
            code = int(self._reserve(
                keys=[self.reservation_key(job_id), self.day_key(day),
                      self.session_key(session_id), self.total_key(), self.open_key()],
                args=[job_id, amount, day, session_id, self.caps["daily"],
                      self.caps["session"], self.caps["total"], repr(now),
                      repr(now - self.stale_after_s), self.prefix, DAY_TTL_S, SESSION_TTL_S,
                      RECORD_TTL_S, REAP_LIMIT],
            ))
        if code < 0:
            logger.debug("budget_refused cap=%s job=%s", _REFUSED_BY.get(code), job_id[:16])
        return code > 0

    def settle(self, job_id: str, actual_usd: float) -> None:
        """Replace job_id's reservation by its real cost; a repeat or unknown id does nothing."""
        actual = to_micros(actual_usd)
        with redis_errors("settling judge budget"):
            self._settle(
                keys=[self.reservation_key(job_id), self.total_key(), self.open_key()],
                args=[job_id, actual, self.prefix, DAY_TTL_S, SESSION_TTL_S, RECORD_TTL_S],
            )

    def release(self, job_id: str) -> None:
        """Drop job_id's reservation (the call failed before costing anything); idempotent."""
        with redis_errors("releasing judge budget"):
            self._release(
                keys=[self.reservation_key(job_id), self.total_key(), self.open_key()],
                args=[job_id, self.prefix, RECORD_TTL_S],
            )

    def state(self, session_id: str | None = None) -> dict[str, Any]:
        """The budget as policies see it (`input.watchdog.budget`), JSON-simple:

        {"day": "YYYY-MM-DD" (UTC),
         "daily"/"session"/"total": {"spent_usd", "reserved_usd", "cap_usd", "remaining_usd"},
         "exhausted": bool}

        `session` is present only when session_id is given. `remaining_usd` is cap - spent -
        reserved, never below 0. `exhausted` is true when any of the dimensions shown has
        nothing left (always with a cap of 0); a call can still be refused while it is false,
        when its worst case is larger than what remains.
        """
        day = utc_day(self.clock())
        dims = [("daily", self.day_key(day))]
        if session_id is not None:
            dims.append(("session", self.session_key(session_id)))
        dims.append(("total", self.total_key()))
        with redis_errors("reading judge budget"):
            pipe = self.redis.pipeline(transaction=False)
            for _, key in dims:
                pipe.hmget(key, ["spent", "reserved"])
            rows = pipe.execute()
        out: dict[str, Any] = {"day": day}
        exhausted = False
        for (name, _), (spent_raw, reserved_raw) in zip(dims, rows, strict=True):
            spent, reserved, cap = int(spent_raw or 0), int(reserved_raw or 0), self.caps[name]
            remaining = max(0, cap - spent - reserved)
            exhausted = exhausted or remaining == 0
            out[name] = {
                "spent_usd": to_usd(spent),
                "reserved_usd": to_usd(reserved),
                "cap_usd": to_usd(cap),
                "remaining_usd": to_usd(remaining),
            }
        out["exhausted"] = exhausted
        return out
