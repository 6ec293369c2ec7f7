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
* `budget:call`  the worst case of the latest reservation asked for (micro-dollars), so that
  `state()` can say whether one more call fits without pricing a prompt (the hook cannot:
  pricing needs litellm); expires `DAY_TTL_S` after its last write

**Refusals say why.** A refused reservation returns a `Refusal`: the cap is 0 (`off`); it is
below one call's worst case (`below_call`: a configuration error, which `verdicts.check_caps`
also reports at worker start and in `watchdog doctor`); it is spent (`spent`: spent + reserved
reach it); or what is left is less than the call's worst case, because calls in flight hold
the rest (`in_flight`) or because less than one call's worst case remains (`short`). `state()`
applies the same rule to the latest call's worst case, so `exhausted` and its `why` agree with
what the next reservation meets.

Settling charges the buckets of the reservation (its day and session), not those of the moment
of settling. Caps are not stored in Redis: every call passes the caller's, so a worker with a
lower cap enforces it. The scripts touch keys they derive from a reservation, so they need a
single Redis (as RQ does), not Redis Cluster.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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

# KEYS: reservation, day bucket, session bucket, total bucket, open set, call worst case
# ARGV: job id, amount, day, session, day cap, session cap, total cap, now, stale before,
#       prefix, day ttl, session ttl, record ttl, reap limit
# Returns {1} (reserved), {2} (already reserved: a retry), or {-1/-2/-3, spent, reserved}
# (refused by day/session/total, with that bucket's counters as the script saw them).
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
redis.call('SET', KEYS[6], ARGV[2], 'EX', ARGV[11])
if redis.call('HGET', KEYS[1], 'state') == 'reserved' then return {2} end
local amount = tonumber(ARGV[2])
local buckets = {KEYS[2], KEYS[3], KEYS[4]}
local caps = {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
for i = 1, 3 do
  local v = redis.call('HMGET', buckets[i], 'spent', 'reserved')
  local spent, reserved = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if caps[i] <= 0 or spent + reserved + amount > caps[i] then return {-i, spent, reserved} end
end
for i = 1, 3 do add(buckets[i], 'reserved', amount) end
redis.call('EXPIRE', KEYS[2], ARGV[11])
redis.call('EXPIRE', KEYS[3], ARGV[12])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'amount', ARGV[2], 'session', ARGV[4], 'day', ARGV[3],
           'state', 'reserved', 't', ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[1])
return {1}
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

DIMENSIONS = ("daily", "session", "total")
_REFUSED_BY = {-1: "daily", -2: "session", -3: "total"}
# What a user sets for each cap, and what to do when it is used up.
CAP_VARS = {"daily": "WATCHDOG_BUDGET_DAILY_USD", "session": "WATCHDOG_BUDGET_SESSION_USD",
            "total": "WATCHDOG_BUDGET_TOTAL_USD"}
_REFILL = {"daily": "it starts again at 00:00 UTC, or raise WATCHDOG_BUDGET_DAILY_USD",
           "session": "a new session starts with a fresh cap, or raise "
                      "WATCHDOG_BUDGET_SESSION_USD",
           "total": "raise WATCHDOG_BUDGET_TOTAL_USD"}
def to_micros(usd: float) -> int:
    """USD to integer micro-dollars (rounded); refuses negative, NaN and infinite amounts."""
    if not isinstance(usd, int | float) or not math.isfinite(usd) or usd < 0:
        raise ValueError(f"a USD amount must be a finite number >= 0, not {usd!r}")
    return round(usd * MICROS_PER_USD)


def to_usd(micros: int) -> float:
    return round(micros / MICROS_PER_USD, 6)


def usd_text(micros: int) -> str:
    """`$5.00`, `$0.006`, `$0.003726`: cents when whole, else every micro-dollar digit."""
    if micros % 10_000 == 0:
        return f"${micros / MICROS_PER_USD:,.2f}"
    return f"${micros / MICROS_PER_USD:,.6f}".rstrip("0")


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


class Refusal(NamedTuple):
    """Why a call of `needed` micro-dollars does not fit under one cap (see the module
    docstring for the kinds); `message` says it, and what to do, for people."""

    dimension: str  # daily | session | total
    kind: str  # off | below_call | spent | in_flight | short
    cap: int
    spent: int
    reserved: int
    needed: int

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.spent - self.reserved)

    @property
    def message(self) -> str:
        dim, cap, need = self.dimension, usd_text(self.cap), usd_text(self.needed)
        spent, reserved = usd_text(self.spent), usd_text(self.reserved)
        if self.kind == "off":
            return (f"the {dim} budget cap is $0, which turns the judge off: set "
                    f"{CAP_VARS[dim]} above 0 to turn it on")
        if self.kind == "below_call":
            return (f"the {dim} budget cap ({cap}) is below one call's worst case ({need}), so "
                    f"no call can be made: a configuration error. Raise {CAP_VARS[dim]} to at "
                    "least that, or lower WATCHDOG_JUDGE_MAX_TOKENS or pick a cheaper "
                    "WATCHDOG_JUDGE_MODEL")
        if self.kind == "spent":
            held = f" and {reserved} reserved for calls in flight" if self.reserved else ""
            return f"the {dim} budget cap ({cap}) is spent: {spent} spent{held}; {_REFILL[dim]}"
        left = usd_text(self.remaining)
        if self.kind == "in_flight":
            return (f"{left} of the {dim} budget cap ({cap}) is free, less than one call's "
                    f"worst case ({need}): the rest is reserved for calls in flight "
                    f"({reserved}), and calls go through again as those settle")
        held = f" and {reserved} reserved" if self.reserved else ""
        return (f"less than one call's worst case remains: {left} of the {dim} budget cap "
                f"({cap}) is left after {spent} spent{held}, and a call may cost up to {need}; "
                f"{_REFILL[dim]}")


def refusal(dimension: str, cap: int, spent: int, reserved: int, needed: int) -> Refusal | None:
    """None when a call of `needed` micro-dollars fits under the cap (as the reserve script
    decides: spent + reserved + needed <= cap, and the cap above 0); else why it does not."""
    if cap > 0 and spent + reserved + needed <= cap:
        return None
    if cap <= 0:
        kind = "off"
    elif needed > cap:
        kind = "below_call"
    elif spent + reserved >= cap:
        kind = "spent"
    elif reserved and spent + needed <= cap:
        kind = "in_flight"
    else:
        kind = "short"
    return Refusal(dimension, kind, cap, spent, reserved, needed)


def first_reason(refusals: Sequence[Refusal | None]) -> Refusal | None:
    """The refusal to tell: a cap of 0 or below one call comes before a spent one, since it
    outlasts it (tomorrow's budget is refused too); otherwise the first, in DIMENSIONS order."""
    found = [r for r in refusals if r is not None]
    return next((r for r in found if r.kind in ("off", "below_call")), found[0] if found else None)


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

    def call_key(self) -> str:
        return f"{self.prefix}budget:call"

    def reserve(self, job_id: str, session_id: str, amount_usd: float) -> bool:
        """Reserve amount_usd for job_id's model call; False (nothing charged) if a cap is hit.

        True without a second charge when job_id already holds a live reservation (a retry).
        """
        return self.try_reserve(job_id, session_id, amount_usd) is None

    def try_reserve(self, job_id: str, session_id: str, amount_usd: float) -> Refusal | None:
        """`reserve`, answering None when reserved and the `Refusal` (why not) otherwise.

        A cap of 0 or below the amount is named before the cap the script stopped at: a
        configuration error outlasts a spent day."""
        amount = to_micros(amount_usd)
        now = self.clock()
        day = utc_day(now)
        with redis_errors("reserving judge budget"):
            reply = self._reserve(
                keys=[self.reservation_key(job_id), self.day_key(day),
                      self.session_key(session_id), self.total_key(), self.open_key(),
                      self.call_key()],
                args=[job_id, amount, day, session_id, self.caps["daily"],
                      self.caps["session"], self.caps["total"], repr(now),
                      repr(now - self.stale_after_s), self.prefix, DAY_TTL_S, SESSION_TTL_S,
                      RECORD_TTL_S, REAP_LIMIT],
            )
        code = int(reply[0])
        if code > 0:
            return None
        name, spent, reserved = _REFUSED_BY[code], int(reply[1]), int(reply[2])
        # The script stops at the first cap that refuses; one of 0 or below the amount may
        # come later (its counters do not matter for those two kinds).
        why = first_reason([
            refusal(dim, self.caps[dim], spent, reserved, amount) if dim == name
            else refusal(dim, self.caps[dim], 0, 0, amount) for dim in DIMENSIONS])
        if why is None:  # cannot happen: the script refused what the same rule accepts
            why = Refusal(name, "spent", self.caps[name], spent, reserved, amount)
        logger.debug("budget_refused cap=%s kind=%s job=%s", why.dimension, why.kind,
                     job_id[:16])
        return why

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

    def state(self, session_id: str | None = None,
              call_usd: float | None = None) -> dict[str, Any]:
        """The budget as policies see it (`input.watchdog.budget`), JSON-simple:

        {"day": "YYYY-MM-DD" (UTC),
         "daily"/"session"/"total": {"spent_usd", "reserved_usd", "cap_usd", "remaining_usd"},
         "call_usd": one call's worst case, "exhausted": bool, "why": str | None}

        `session` is present only when session_id is given. `remaining_usd` is cap - spent -
        reserved, never below 0. `call_usd` is the given one, else the worst case of the latest
        reservation asked for (None before any). `exhausted` is true when a call of that much
        would be refused by one of the dimensions shown (with no call known yet: when one has
        nothing left; always with a cap of 0), and `why` is then the refusal's message.
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
            pipe.get(self.call_key())
            *rows, call_raw = pipe.execute()
        call = to_micros(call_usd) if call_usd is not None else (
            int(call_raw) if call_raw is not None else None)
        out: dict[str, Any] = {"day": day}
        refusals = []
        for (name, _), (spent_raw, reserved_raw) in zip(dims, rows, strict=True):
            spent, reserved, cap = int(spent_raw or 0), int(reserved_raw or 0), self.caps[name]
            # No call known yet: the smallest one, so only an empty dimension is exhausted.
            refusals.append(refusal(name, cap, spent, reserved, 1 if call is None else call))
            out[name] = {
                "spent_usd": to_usd(spent),
                "reserved_usd": to_usd(reserved),
                "cap_usd": to_usd(cap),
                "remaining_usd": to_usd(max(0, cap - spent - reserved)),
            }
        why = first_reason(refusals)
        out["call_usd"] = None if call is None else to_usd(call)
        out["exhausted"] = why is not None
        out["why"] = None if why is None else why.message
        return out
