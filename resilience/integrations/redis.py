"""
Shared state for fleets: a Redis-backed circuit store, a shared Retry-After pause, a retry budget.

When an application runs as many processes on many hosts, a breaker in each
process learns on its own that an upstream is failing, and a 429 storm
multiplies by the number of processes. With a `RedisStore`, the breakers of a
fleet that share a ``name`` are **one circuit**, a `RetryAfterPause` makes
every caller wait out a ``Retry-After`` that one caller received, and a
`RedisRetryBudget` caps the retries of the whole fleet.

```python
import redis
import resilience as rs
from resilience.integrations.redis import RedisStore, RetryAfterPause

fleet = RedisStore.from_url("redis://cache:6379/0")   # short timeouts, no client retries
breaker = rs.CircuitBreaker(on=rs.transient, name="saas-api", store=fleet)
pause = RetryAfterPause(on=rs.transient, name="saas-api", store=fleet)
pipeline = rs.compose(rs.Retry(on=rs.transient), pause, breaker, rs.Timeout(10.0))
```

What the circuit store guarantees (see ``docs/fleet.md``):

- **Atomic steps.** Every decision (admit, count, open, close, lease a probe) is
  one Lua script: no read-modify-write races between processes.
- **Leased probes.** A half-open circuit admits exactly ``half_open_max_calls``
  probes across the fleet; each holds a lease that expires after
  *probe_lease* seconds, so a process that dies mid-probe frees its place.
- **One clock.** Open periods and leases are measured on the Redis server's
  clock (``TIME`` inside the scripts); the hosts' clocks are never compared.
- **Namespaced keys that expire.** ``{prefix}:circuit:{<name>}`` (a hash) and
  ``{prefix}:circuit:{<name>}:leases`` (a sorted set), with a Redis Cluster hash
  tag on the name; both expire *expire* seconds after their last write (after
  the open period, for an open circuit). An isolated circuit never expires: a
  kill switch must not lapse.
- **No round trip on the closed success path.** Each process caches the state
  for at most *refresh* seconds (plus one round trip); failures, transitions
  and probes always go to Redis.
- **Redis is never the reason a call fails.** When Redis cannot be reached the
  store falls back (by default to a local in-memory circuit), emits
  `StoreUnavailable`, tries Redis again every *reconnect* seconds, and emits
  `StoreRecovered` when it answers.

For async code, `AsyncRedisStore` is `RedisStore`'s twin over
``redis.asyncio``: a breaker given one (``store=AsyncRedisStore(client)``)
awaits its round trips, and `AsyncRetryAfterPause` is the pause that uses it;
they share the keys, scripts and guarantees above with the sync store.

Needs the ``redis`` extra (``redis>=5``) and Redis >= 5.0; importing
`resilience` never imports this module nor ``redis``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import inspect
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, NamedTuple, NoReturn, final

import attrs
import redis
import redis.backoff
import redis.exceptions
import redis.retry

from resilience import (
    CircuitOpened,
    CircuitPermit,
    CircuitRejection,
    CircuitState,
    CircuitTransition,
    Clock,
    Description,
    ErrorClassifier,
    Event,
    Hook,
    InMemoryCircuitStore,
    RejectedError,
    RetryBudget,
    SlowCallRate,
)
from resilience.deadline import remaining
from resilience.engine import (
    NO_RESULT,
    SYSTEM_CLOCK,
    FastPath,
    GatePolicy,
    Wait,
    check_clock,
    describe_seconds,
    emit,
    fork_safe_lock,
    pipeline_field,
    refuse,
    rule_lines,
    seconds_text,
    target_name,
    testing_enabled,
    to_classifier,
    to_hooks,
    to_seconds,
    trip_window,
)

if TYPE_CHECKING:
    from resilience import CircuitBreaker

    from ._redis_async import AsyncRedisStore

__all__ = [
    "AsyncRedisCircuitStore",
    "AsyncRedisRateLimiter",
    "AsyncRedisRetryBudget",
    "AsyncRedisStore",
    "AsyncRetryAfterPause",
    "CallDelayed",
    "PauseStarted",
    "PausedError",
    "RedisCircuitStore",
    "RedisRateLimiter",
    "RedisRetryBudget",
    "RedisStore",
    "RetryAfterPause",
    "StoreRecovered",
    "StoreRolledBack",
    "StoreUnavailable",
]

CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN
ISOLATED: Final = CircuitState.ISOLATED

Fallback = Literal["local", "admit", "reject"]
"""What a store does while Redis cannot be reached (see `RedisStore`)."""

_FALLBACKS: Final = ("local", "admit", "reject")

_NO_TRANSITIONS: Final[tuple[CircuitTransition, ...]] = ()

# Errors that mean "Redis did not answer as it should": never the protected call's business.
_REDIS_ERRORS: Final = (redis.exceptions.RedisError, OSError)


# --- events and the exception ------------------------------------------------------


@attrs.frozen(kw_only=True)
class StoreUnavailable(Event):
    """
    Redis could not be reached: the circuit, pause or budget named *name* fell back to *fallback*.

    Emitted once per outage and per circuit (or pause, or retry budget), with
    the error that revealed it. Logged at WARNING by the default hook.

    Attributes:
        fallback: ``"local"``, ``"admit"`` or ``"reject"`` for a circuit (see
            `RedisStore`); ``"local"`` for a pause (this process's own pauses
            only) and for a `RedisRetryBudget` (a `resilience.RetryBudget` of
            this process's own).
        error: The exception the Redis client raised.
    """

    level: ClassVar[int] = logging.WARNING

    fallback: str
    error: BaseException | None = attrs.field(default=None, eq=False)

    def message(self) -> str:
        return (
            f"{self.name!r}: Redis unreachable ({type(self.error).__name__}); "
            f"falling back to {self.fallback}"
        )


@attrs.frozen(kw_only=True)
class StoreRecovered(Event):
    """
    Redis answered again: the circuit, pause or budget named *name* uses the shared state again.

    Attributes:
        downtime: Seconds since the outage was noticed, on the policy's clock.
    """

    downtime: float

    def message(self) -> str:
        return f"{self.name!r}: Redis reachable again after {seconds_text(self.downtime)} s"


@attrs.frozen(kw_only=True)
class StoreRolledBack(Event):
    """
    Redis went back to an older state of the circuit *name*: this process adopts it.

    A Redis restarted from an older snapshot, or a failover to a replica that
    lagged, holds an older period than the one this process last read (a
    lower period id). Each process adopts the server's state at its first
    round trip after the rollback, and says so with this event: once per
    process and rollback. An outcome in flight at that moment is not counted.
    Logged at WARNING by the default hook.

    Attributes:
        state: The state adopted, Redis's.
    """

    level: ClassVar[int] = logging.WARNING

    state: CircuitState

    def message(self) -> str:
        return (
            f"{self.name!r}: Redis went back to an older state of the circuit "
            f"(a restore or a failover); adopting it: {self.state.name}"
        )


@attrs.frozen(kw_only=True)
class PauseStarted(Event):
    """
    A failure carried ``Retry-After``: every caller sharing the pause waits *retry_after* seconds.

    Emitted by the process whose call received it (extending a pause counts too).

    Attributes:
        retry_after: The seconds the server asked for (capped at ``max_pause``).
    """

    retry_after: float

    def message(self) -> str:
        return f"{self.name!r}: shared pause of {seconds_text(self.retry_after)} s started"


@attrs.frozen(kw_only=True)
class CallDelayed(Event):
    """
    A call waited *delay* seconds for a shared pause before it ran.

    Attributes:
        delay: Seconds waited.
    """

    delay: float

    def message(self) -> str:
        return f"{self.name!r}: call delayed {seconds_text(self.delay)} s by the shared pause"


@final
class PausedError(RejectedError):
    """
    The shared pause *name* lasts longer than the caller may wait; the call did not run.

    Raised by `RetryAfterPause` when the pause would end after the innermost
    deadline or after ``max_wait`` seconds.

    Attributes:
        name: The pause's name.
        retry_after: Seconds until the pause ends.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(
            f"{name!r} is paused for another {seconds_text(retry_after)} s (Retry-After)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.retry_after), self.__dict__)


# --- Lua ----------------------------------------------------------------------------
#
# One hash per circuit: s state (c, o, h, i), g generation (the period's id: a
# server time in microseconds, strictly increasing), f consecutive failures, u
# the end of the open period (server microseconds), n openings since last
# closed, d the last open period (seconds, as text), k probe successes in this
# half-open period, c what opened the circuit ('' when unknown or closed: the
# failure's type name, a newline, its redacted message), o the last opening and
# who made it (the opener's token, the period id, the reason, the period in
# seconds, separated by |). Probe leases live in a sorted set scored by their expiry.
# Integers are formatted with %.0f: Lua's own number-to-text conversion keeps
# 14 digits, fewer than a microsecond timestamp has.
#
# Common ARGV: 1 expire (ms), 2 probe lease (µs), 3 half_open_max_calls,
# 4 the open period this process would set (µs), 5 the same in seconds (text),
# 6 the caller's token (one per store and process), 7 the cause of an opening
# this request may make ('' when none).
# Every reply carries the cause of the current open or half-open period, and,
# when the caller made the last opening, that opening (period id|reason|period):
# only the opener announces an opening, and it announces one its reply to which
# was lost when a later reply shows it (see docs/fleet.md, Events).
# Every reply ends with the server's time (µs), from which a process estimates
# it; the call path's scripts take a last ARGV, the server time (µs) after
# which the client may have given up waiting (0: none): a request that runs
# later (Redis was busy: a slow command, DEBUG SLEEP, a fork) changes nothing
# and replies with admitted = -1. A change applied after its client stopped
# waiting would be announced by no one.

_LUA_PRELUDE: Final = """
local KEY, LEASES = KEYS[1], KEYS[2]
local EXPIRE, LEASE, PROBES = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ME, CAUSE = ARGV[6], ARGV[7]
local function fmt(x) return string.format('%.0f', x) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local save
local function load(now)
  local v = redis.call('HMGET', KEY, 's', 'g', 'f', 'u', 'n', 'd', 'k', 'c', 'o')
  if not v[1] then
    -- No circuit (never used, expired, flushed, a restarted server): a new
    -- closed period, saved now, whose id is later than any id handed out
    -- before (ids are server microseconds), so that processes holding the
    -- old state take the new one instead of discarding it as stale.
    local st = {s = 'c', g = now, f = 0, u = 0, n = 0, d = '0', k = 0, c = '', o = ''}
    redis.call('DEL', LEASES)
    save(st, now)
    return st
  end
  return {s = v[1], g = tonumber(v[2]) or 0, f = tonumber(v[3]) or 0,
          u = tonumber(v[4]) or 0, n = tonumber(v[5]) or 0, d = v[6] or '0',
          k = tonumber(v[7]) or 0, c = v[8] or '', o = v[9] or ''}
end
save = function(st, now)
  redis.call('HSET', KEY, 's', st.s, 'g', fmt(st.g), 'f', fmt(st.f), 'u', fmt(st.u),
             'n', fmt(st.n), 'd', st.d, 'k', fmt(st.k))
  if st.w then redis.call('HSET', KEY, 'c', st.c, 'o', st.o) end  -- w: c or o changed
  if st.s == 'i' then
    redis.call('PERSIST', KEY)
    return
  end
  local ttl = EXPIRE
  if st.s == 'o' then ttl = ttl + math.ceil((st.u - now) / 1000) end
  if st.s == 'h' then ttl = ttl + math.ceil(LEASE / 1000) end
  redis.call('PEXPIRE', KEY, fmt(ttl))
end
local function newgen(st, now)
  if now > st.g then return now end
  return st.g + 1
end
local function open(st, now, reason)
  st.s = 'o'; st.g = newgen(st, now); st.u = now + tonumber(ARGV[4])
  st.n = st.n + 1; st.d = ARGV[5]; st.f = 0; st.k = 0; st.c = CAUSE; st.w = true
  st.o = ME .. '|' .. fmt(st.g) .. '|' .. reason .. '|' .. ARGV[5]
  redis.call('DEL', LEASES)
  save(st, now)
  return 'o:' .. reason
end
local function close(st, now, reason)
  st.s = 'c'; st.g = newgen(st, now); st.u = 0; st.n = 0; st.d = '0'; st.f = 0; st.k = 0
  st.c = ''; st.w = true
  redis.call('DEL', LEASES)
  save(st, now)
  return 'c:' .. reason
end
local function reply(st, now, ev, admitted)
  local rem, left = -1, -1
  if st.s == 'o' then rem = st.u - now end
  if st.s == 'h' then
    left = PROBES - st.k - redis.call('ZCOUNT', LEASES, '(' .. fmt(now), '+inf')
  end
  local cause, mine = '', ''
  if st.s == 'o' or st.s == 'h' then cause = st.c end
  if string.sub(st.o, 1, #ME + 1) == ME .. '|' then mine = string.sub(st.o, #ME + 2) end
  return {st.s, st.g, st.f, rem, st.n, st.d, ev, admitted, left, now, cause, mine}
end
local function late(due, now)
  due = tonumber(due) or 0
  return due > 0 and now > due
end
"""

# ARGV 8: a new lease's id, 9 the client's deadline.
_LUA_ACQUIRE: Final = (
    _LUA_PRELUDE
    + """
local now = now_us()
local st = load(now)
local ev = ''
if late(ARGV[9], now) then return reply(st, now, ev, -1) end
if st.s == 'o' then
  if now < st.u then return reply(st, now, ev, 0) end
  st.s = 'h'; st.g = newgen(st, now); st.k = 0
  redis.call('DEL', LEASES)
  save(st, now)
  ev = 'h:reset_timeout'
end
if st.s == 'h' then
  redis.call('ZREMRANGEBYSCORE', LEASES, '-inf', fmt(now))
  if PROBES - st.k - redis.call('ZCARD', LEASES) > 0 then
    redis.call('ZADD', LEASES, fmt(now + LEASE), ARGV[8])
    redis.call('PEXPIRE', LEASES, fmt(EXPIRE + math.ceil(LEASE / 1000)))
    save(st, now)
    return reply(st, now, ev, 1)
  end
  return reply(st, now, ev, 0)
end
if st.s == 'c' then return reply(st, now, ev, 1) end
return reply(st, now, ev, 0)
"""
)

# ARGV 8 generation, 9 lease ('' for a closed-state call), 10 outcome (s success,
# f failure, i ignored), 11 failure_threshold (0: none), 12 success_threshold,
# 13 the local window that tripped ('' when none), 14 the client's deadline.
_LUA_RECORD: Final = (
    _LUA_PRELUDE
    + """
local now = now_us()
local st = load(now)
local ev = ''
if late(ARGV[14], now) then return reply(st, now, ev, -1) end
local lease, outcome, trip = ARGV[9], ARGV[10], ARGV[13]
if st.g ~= tonumber(ARGV[8]) then return reply(st, now, ev, 0) end
if lease == '' then
  if st.s ~= 'c' then return reply(st, now, ev, 0) end
  if outcome == 'f' then
    st.f = st.f + 1
    local threshold = tonumber(ARGV[11])
    if threshold > 0 and st.f >= threshold then
      ev = open(st, now, 'failures')
    elseif trip ~= '' then
      ev = open(st, now, trip)
    else
      save(st, now)
    end
  elseif outcome == 's' then
    if trip ~= '' then
      ev = open(st, now, trip)
    elseif st.f > 0 then
      st.f = 0
      save(st, now)
    end
  end
  return reply(st, now, ev, 0)
end
if st.s ~= 'h' then return reply(st, now, ev, 0) end
redis.call('ZREMRANGEBYSCORE', LEASES, '-inf', fmt(now))
if redis.call('ZREM', LEASES, lease) == 0 then return reply(st, now, ev, 0) end
if outcome == 's' then
  st.k = st.k + 1
  if st.k >= tonumber(ARGV[12]) then
    ev = close(st, now, 'probes_succeeded')
  else
    save(st, now)
  end
elseif outcome == 'f' then
  ev = open(st, now, 'half_open_failure')
end
return reply(st, now, ev, 0)
"""
)

# ARGV 8 target: c (close), o (open), i (isolate), r (reset).
_LUA_FORCE: Final = (
    _LUA_PRELUDE
    + """
local now = now_us()
local st = load(now)
local ev = ''
local target = ARGV[8]
if target == 'c' then
  if st.s ~= 'c' then ev = close(st, now, 'manual') end
elseif target == 'o' then
  if st.s ~= 'i' then ev = open(st, now, 'manual') end
elseif target == 'i' then
  if st.s ~= 'i' then
    st.s = 'i'; st.g = newgen(st, now); st.f = 0; st.k = 0; st.u = 0; st.c = ''; st.w = true
    redis.call('DEL', LEASES)
    save(st, now)
    ev = 'i:isolated'
  end
else
  local was = st.s
  ev = close(st, now, 'reset')
  if was == 'c' then ev = '' end
end
return reply(st, now, ev, 0)
"""
)

_LUA_READ: Final = (
    _LUA_PRELUDE
    + """
local now = now_us()
return reply(load(now), now, '', 0)
"""
)

# The pause is one key whose time to live is the pause: it exists while the
# fleet is paused and expires, on the server's clock, when the pause ends.
# ARGV 1: milliseconds to pause; the pause only ever grows.
# A pause is a string whose time to live is the pause; its value identifies it:
# the server time (µs) it ends at. Both scripts reply {ms left, that id}.
_LUA_PAUSE: Final = """
local left = redis.call('PTTL', KEYS[1])
local want = tonumber(ARGV[1])
if left < want then
  local t = redis.call('TIME')
  local id = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2]) + want * 1000)
  redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
  return {want, id}
end
return {left, redis.call('GET', KEYS[1])}
"""

_LUA_PAUSE_READ: Final = """
return {redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1]) or ''}
"""

# A retry budget is one hash: h the newest bucket (an index: server µs / width),
# f0..f9 the first attempts per bucket (fractions: they are spread over time),
# r0..r9 the retries allowed per bucket. The key expires *per* after its last
# write: by then every bucket it holds has left the window.
# ARGV 1 first attempts counted by the caller since its previous call, 2 the
# seconds (µs) they were counted over, 3 a bucket's width (µs), 4 ratio,
# 5 minimum, 6 the key's time to live (ms). Replies {1 allowed or 0, the
# retries allowed in the window, its first attempts (text)}.
_LUA_BUDGET: Final = """
local KEY, N = KEYS[1], 10
local NEW, SPAN, W = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local RATIO, MINIMUM = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local index = math.floor(now / W)
local fields = {'h'}
for i = 0, N - 1 do fields[#fields + 1] = 'f' .. i end
for i = 0, N - 1 do fields[#fields + 1] = 'r' .. i end
local v = redis.call('HMGET', KEY, unpack(fields))
local head = tonumber(v[1]) or index
local f, r = {}, {}
for i = 0, N - 1 do
  f[i] = tonumber(v[i + 2]) or 0
  r[i] = tonumber(v[i + 2 + N]) or 0
end
if index > head then
  for b = head + 1, math.min(index, head + N) do
    f[b % N] = 0
    r[b % N] = 0
  end
  head = index
end
if NEW > 0 then
  -- Spread evenly over (now - SPAN, now]; the share before the window is gone.
  local start = math.max(now - SPAN, (head - N + 1) * W)
  if index < head or SPAN <= 0 or start >= now then
    f[head % N] = f[head % N] + NEW  -- the server's clock went back, or no span
  else
    local rate = NEW / SPAN
    for b = math.floor(start / W), head do
      local overlap = math.min(now, (b + 1) * W) - math.max(start, b * W)
      if overlap > 0 then f[b % N] = f[b % N] + rate * overlap end
    end
  end
end
local firsts, retries = 0, 0
for i = 0, N - 1 do
  firsts = firsts + f[i]
  retries = retries + r[i]
end
local allowed = 0
-- A tiny tolerance: spread counts are sums of fractions.
if retries + 1 <= MINIMUM + RATIO * firsts + 1e-9 then
  allowed = 1
  retries = retries + 1
  r[head % N] = r[head % N] + 1
end
local out = {'h', string.format('%.0f', head)}
for i = 0, N - 1 do
  out[#out + 1] = 'f' .. i
  out[#out + 1] = string.format('%.17g', f[i])
  out[#out + 1] = 'r' .. i
  out[#out + 1] = string.format('%.0f', r[i])
end
redis.call('HSET', KEY, unpack(out))
redis.call('PEXPIRE', KEY, ARGV[6])
return {allowed, retries, string.format('%.17g', firsts)}
"""

_STATES: Final = {"c": CLOSED, "o": OPEN, "h": HALF_OPEN, "i": ISOLATED}
_FORCE_CODES: Final = {CLOSED: "c", OPEN: "o", ISOLATED: "i"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- configuration -------------------------------------------------------------------


def _check_client(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(getattr(value, "register_script", None)):
        raise TypeError(
            f"client must be a redis.Redis client (with register_script), "
            f"got {type(value).__name__}: {value!r}"
        )
    if inspect.iscoroutinefunction(getattr(value, "execute_command", None)):
        raise TypeError(
            "client must be a synchronous redis.Redis client, not a redis.asyncio one "
            "(for a redis.asyncio client, use AsyncRedisStore), "
            f"got {type(value).__module__}.{type(value).__name__}"
        )


def _client_repr(client: object) -> str:
    # Where it connects, never how it authenticates (nor redis-py's long repr).
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    return f"<{type(client).__name__} {where} db={kwargs.get('db', 0)}>"


def _check_prefix(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"prefix must be a non-empty str, got {type(value).__name__}: {value!r}")
    if "{" in value or "}" in value:
        raise ValueError(f"prefix must not contain braces (Redis Cluster hash tags), got {value!r}")


def _check_fallback(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _FALLBACKS:
        raise ValueError(f"fallback must be 'local', 'admit' or 'reject', got {value!r}")


# Durations become Redis expiries in milliseconds, added to the server's clock:
# beyond about 30 years they overflow Redis's integers, and every round trip
# would fail as if Redis were down.
_LONGEST: Final = 1e9
_OVERFLOW: Final = "Redis expiries overflow beyond that"
_WITH_A_STORE: Final = "with a RedisStore: Redis expiries overflow beyond that"


def _bounded_seconds(name: str, value: object, *, zero: bool = False) -> float:
    """Seconds > 0 (or 0 when *zero* allows it), at most `_LONGEST`, or an error naming *name*."""
    return to_seconds(name, value, zero=zero, maximum=_LONGEST, why=_OVERFLOW)


def _to_refresh(value: object) -> float:
    return _bounded_seconds("refresh", value, zero=True)  # 0: read Redis on every call


def _to_reconnect(value: object) -> float:
    return _bounded_seconds("reconnect", value)


def _to_probe_lease(value: object) -> float:
    return _bounded_seconds("probe_lease", value)


def _to_expire(value: object) -> float:
    return _bounded_seconds("expire", value)


def _to_max_wait(value: object) -> float | None:
    if value is None:
        return None
    return _bounded_seconds("max_wait", value, zero=True)  # 0: never wait, reject while paused


def _to_max_pause(value: object) -> float:
    return _bounded_seconds("max_pause", value)


def _check_name(kind: str, name: object) -> str:
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"a {kind} shared through Redis needs a name (a str): it is the key every "
            f"process shares, got {type(name).__name__}: {name!r}"
        )
    if not name:
        raise ValueError(
            f"a {kind} shared through Redis needs a name: it is the key every process "
            f"shares, got name={name!r}"
        )
    if "{" in name or "}" in name:
        raise ValueError(f"name must not contain braces (Redis Cluster hash tags), got {name!r}")
    try:
        name.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"name must be encodable as UTF-8 (it becomes a Redis key), got {name!r}"
        ) from None
    return name


@final
@attrs.frozen(kw_only=True)
class RedisStore:
    """
    Where a fleet keeps its shared circuits and pauses: a Redis client and the rules for using it.

    Pass it as a breaker's ``store=`` (it is the factory the breaker calls) and
    as a `RetryAfterPause`'s ``store=``. Breakers and pauses with the same
    *name* and *prefix* share their state across every process using the same
    Redis. Configure the breakers of one name alike everywhere: each process
    applies its own thresholds and periods to the shared counts.

    The store uses the client's synchronous API from every driver, async ones
    included: a round trip (a refresh, a failure, a transition) holds the
    event loop for its duration, bounded by the client's ``socket_timeout``.
    For async code, `AsyncRedisStore` (a ``redis.asyncio`` client) is its
    twin whose round trips are awaited; both share the circuits and pauses
    of the same names. Give the client short timeouts and no retries of its
    own (see `from_url`); redis-py's defaults (5 s timeouts, 3 retries) could
    stall a call for many seconds while Redis is down.

    Args:
        client: A ``redis.Redis`` client (positional). Required.
        prefix: The namespace of every key. Default: ``"resilience"``.
        refresh: Seconds a process may act on the state it last read before
            reading it again: the freshness bound of the local cache. ``0``
            reads Redis on every call. Default: 0.25.
        reconnect: Seconds between attempts to reach Redis again while it is
            unreachable. Default: 1.0.
        fallback: What a circuit does while Redis is unreachable: ``"local"``
            (a circuit of this process alone, seeded with the last state
            read), ``"admit"`` (every call runs, nothing is counted) or
            ``"reject"`` (every call is rejected with `CircuitOpenError`).
            Default: ``"local"``.
        probe_lease: Seconds a half-open probe holds its place; a probe whose
            process died frees it after that. Make it longer than the
            protected call can take (a `Timeout` inside the breaker bounds it).
            Default: 60.0.
        expire: Seconds a circuit's keys live after their last write (after
            the end of the open period, for an open circuit). Default: 3600.0.

    Raises:
        TypeError: If *client* is not a Redis client, or an argument has the wrong type.
        ValueError: On an out-of-range value (a duration is at most 1e9 seconds,
            about 30 years: Redis expiries overflow beyond) or an unknown *fallback*.

    .. versionadded:: 0.1.0
    """

    client: redis.Redis = attrs.field(kw_only=False, validator=_check_client, repr=_client_repr)
    prefix: str = attrs.field(default="resilience", validator=_check_prefix)
    refresh: float = attrs.field(default=0.25, converter=_to_refresh)
    reconnect: float = attrs.field(default=1.0, converter=_to_reconnect)
    fallback: Fallback = attrs.field(default="local", validator=_check_fallback)
    probe_lease: float = attrs.field(default=60.0, converter=_to_probe_lease)
    expire: float = attrs.field(default=3600.0, converter=_to_expire)

    @classmethod
    def from_url(cls, url: str, /, *, timeout: float = 0.25, **options: Any) -> RedisStore:
        """
        Make a store with a client for *url* whose timeouts suit a breaker.

        The client gets *timeout* as its socket and connect timeouts and no
        retries of its own, so that a Redis that does not answer costs a call
        at most *timeout* seconds, once per *reconnect* interval.

        Args:
            url: A Redis URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
            timeout: Seconds. Default: 0.25.
            options: `RedisStore` options (*prefix*, *refresh*, ...).
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a Redis URL (a str), got {type(url).__name__}")
        seconds = to_seconds("timeout", timeout)
        client = redis.Redis.from_url(
            url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        return cls(client, **options)

    def __call__(self, breaker: CircuitBreaker) -> RedisCircuitStore:
        """
        Make the shared store of *breaker*'s circuit (the breaker calls this once).

        Raises:
            ValueError: If the breaker has no usable name, or a *reset_timeout*
                longer than Redis can expire (about 30 years).
        """
        reset = breaker.reset_timeout
        if isinstance(reset, float):
            to_seconds("reset_timeout", reset, zero=True, maximum=_LONGEST, why=_WITH_A_STORE)
        return RedisCircuitStore(self, breaker)

    def circuit_key(self, name: str) -> str:
        """Return the key of the hash holding the circuit *name* (its leases add ``:leases``)."""
        return f"{self.prefix}:circuit:{{{name}}}"

    def pause_key(self, name: str) -> str:
        """Return the key that exists while the pause *name* lasts."""
        return f"{self.prefix}:pause:{{{name}}}"

    def budget_key(self, name: str) -> str:
        """Return the key of the hash holding the retry budget *name*'s window."""
        return f"{self.prefix}:budget:{{{name}}}"


# --- outage bookkeeping shared by circuits and pauses -----------------------------------


@final
class _Link:
    """
    Whether Redis answers, for one circuit or pause; emits the events of outages.

    Every failed round trip starts a new epoch. A reply ends an outage only if
    its round trip began in the current epoch, after the last failure: a reply
    that was already on its way when Redis went down proves nothing.
    """

    __slots__ = (
        "_down",
        "_epoch",
        "_hooks",
        "_lock",
        "_name",
        "_now",
        "_reconnect",
        "_retry_at",
        "_since",
    )

    def __init__(
        self, name: str, hooks: tuple[Hook, ...], now: Callable[[], float], reconnect: float
    ) -> None:
        self._name = name
        self._hooks = hooks
        self._now = now
        self._reconnect = reconnect
        self._lock = fork_safe_lock()
        self._down = False
        self._epoch = 0
        self._since = 0.0
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        return self._down

    @property
    def epoch(self) -> int:
        """Read before a round trip, handed to `answered` after it."""
        return self._epoch

    def skip(self, now: float) -> bool:
        """Whether to leave Redis alone now (down, and not yet time to try again)."""
        return self._down and now < self._retry_at

    def lost(self, error: BaseException, fallback: str) -> bool:
        """Record a failed round trip; return whether it began an outage (emitting the event)."""
        now = self._now()
        with self._lock:
            self._epoch += 1
            began = not self._down
            if began:
                self._down = True
                self._since = now
            self._retry_at = now + self._reconnect
        if began:
            emit(self._hooks, StoreUnavailable, name=self._name, fallback=fallback, error=error)
        return began

    def answered(self, epoch: int) -> None:
        """Record a reply to a round trip begun in *epoch*; it may end an outage (an event)."""
        if not self.down:
            return
        with self._lock:
            ended = self._down and epoch == self._epoch
            if ended:
                self._down = False
            downtime = self._now() - self._since
        if ended:
            emit(self._hooks, StoreRecovered, name=self._name, downtime=max(downtime, 0.0))


# --- the circuit store -------------------------------------------------------------------


@final
class _Ticket:
    """A Redis permit's token: the period it belongs to and, for a probe, its lease."""

    __slots__ = ("gen", "lease")

    def __init__(self, gen: int, lease: str | None) -> None:
        self.gen = gen
        self.lease = lease

    def __repr__(self) -> str:
        return f"<ticket gen={self.gen} lease={self.lease!r}>"


# Issued by the "admit" fallback: its outcome changes nothing.
_ADMIT: Final = CircuitPermit()

# state, period id, failures, open until (local clock), openings, last open period,
# transition ('' or 'code:reason'), admitted, probe places left, late (not applied),
# what opened the circuit (type name, message), the last opening if the caller made
# it (period id, reason, period in seconds).
_Reply = tuple[
    CircuitState,
    int,
    int,
    float,
    int,
    float,
    str,
    bool,
    int,
    bool,
    tuple[str, str] | None,
    tuple[int, str, float] | None,
]

# Longest type name kept as a circuit's cause (a message is cut to 200 by `describe_text`).
_CAUSE_TYPE_LIMIT: Final = 100


def _late_after(client: object) -> int:
    """Microseconds after sending when a request is late: half the client's socket timeout."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    if not isinstance(timeout, int | float) or not 0 < timeout < _LONGEST:
        return 0  # no timeout: the client waits for every reply, none is late
    # Half: the other half is for the reply's way back. A request run later than
    # that may find its client gone, and what it changed would be announced by no one.
    return math.ceil(timeout * 1e6 / 2)


class _Record(NamedTuple):
    """An outcome to record in Redis: the permit's ticket, the outcome, what tripped, the cause."""

    ticket: _Ticket
    outcome: str  # s success, f failure, i ignored
    trip: str | None  # the local window that tripped
    cause: str  # what opens the circuit if this outcome opens it ('' when none)


class _CircuitCore:
    """
    The circuit logic a Redis circuit store runs in this process, without its round trips.

    `RedisCircuitStore` (the client's sync API) and
    `resilience.integrations.redis.AsyncRedisCircuitStore` (``redis.asyncio``,
    awaited) share it: the cache, the replies' parsing and adoption (period
    ids, rollbacks, the opener's announcement), the local trip windows, the
    fallbacks. Each step is split around its round trip: what decides
    whether one is needed and builds its arguments, then what the reply
    changes; a subclass makes the round trip in between, its own way.
    """

    __slots__ = (
        "__weakref__",
        "_acquire_script",
        "_announced",
        "_args",
        "_breaker",
        "_cause",
        "_config",
        "_delay",
        "_failures",
        "_fallback",
        "_fetch",
        "_force_script",
        "_gen",
        "_keys",
        "_known_at",
        "_late_after",
        "_left",
        "_link",
        "_local",
        "_lock",
        "_now",
        "_offset",
        "_opens",
        "_permit",
        "_plain",
        "_quiet",
        "_read_script",
        "_record_script",
        "_refresh",
        "_replies",
        "_serial",
        "_slow_probe",
        "_stale_at",
        "_state",
        "_timed_windows",
        "_until",
        "_windows",
    )

    def __init__(self, config: RedisStore | AsyncRedisStore, breaker: CircuitBreaker) -> None:
        name = _check_name("circuit breaker", breaker.name)
        self._config = config
        self._breaker = breaker
        self._now = breaker.clock.now
        self._refresh = config.refresh
        self._fallback = config.fallback
        key = config.circuit_key(name)
        self._keys = (key, f"{key}:leases")
        client: Any = config.client
        self._acquire_script = client.register_script(_LUA_ACQUIRE)
        self._record_script = client.register_script(_LUA_RECORD)
        self._force_script = client.register_script(_LUA_FORCE)
        self._read_script = client.register_script(_LUA_READ)
        self._args = (
            math.ceil(config.expire * 1000),
            math.ceil(config.probe_lease * 1e6),
            breaker.half_open_max_calls,
        )
        self._lock = fork_safe_lock()
        self._fetch = fork_safe_lock()  # one refresh in flight per process
        self._link = _Link(name, breaker.hooks, self._now, config.reconnect)
        self._local = InMemoryCircuitStore(breaker) if config.fallback == "local" else None
        conditions = breaker.trip
        self._windows = tuple(trip_window(c) for c in conditions)
        self._timed_windows = any(c.seconds is not None for c in conditions)
        self._plain = not self._windows
        slow = [c.slower_than for c in conditions if isinstance(c, SlowCallRate)]
        self._slow_probe: float | None = min(slow) if slow else None
        # The cache: nothing read yet, so the first call goes to Redis.
        self._state = CLOSED
        self._gen = -1
        self._failures = 0
        self._opens = 0
        self._delay = 0.0
        self._until = 0.0
        self._left = -1
        self._permit: CircuitPermit | None = None
        self._quiet = False
        self._stale_at = -math.inf
        self._cause: tuple[str, str] | None = None
        # Openings: this store's token in Redis is the process's token and this
        # number; the period id of the last opening it made and announced.
        self._serial = next(_STORES)
        self._announced = 0
        # Rollbacks: replies applied so far, and the count when the cached period
        # was learned. A reply with an older period whose round trip began after
        # that is no race lost: Redis went back in time (a restore, a failover).
        self._replies = 0
        self._known_at = 0
        # Deadlines on the server's clock: its time minus this host's monotonic
        # clock (µs), as of the last reply (None: no reply yet).
        self._late_after = _late_after(client)
        self._offset: float | None = None

    def __repr__(self) -> str:
        down = ", Redis unreachable" if self._link.down else ""
        return f"<{type(self).__name__} {self._keys[0]!r} {self._state.name}{down}>"

    # --- around a round trip -------------------------------------------------

    def _open_period(self) -> float:
        """The open period this process would set if its next step opens the circuit."""
        reset = self._breaker.reset_timeout
        if isinstance(reset, float):
            return reset
        opens = self._opens + 1
        delay = reset(opens, self._delay, self._breaker.rng)
        if not (delay >= 0 and math.isfinite(delay)):
            raise ValueError(
                f"reset_timeout {reset!r} returned {delay!r} for opening {opens}; "
                "an open period must be a finite number of seconds >= 0"
            )
        return min(float(delay), _LONGEST)  # a growing period: at most what Redis can expire

    def _begin(
        self, extra: tuple[object, ...], opens: bool, cause: str
    ) -> tuple[tuple[object, ...], int, int]:
        """A script's arguments, and the link's epoch and the reply count when it is sent.

        *cause* is what opens the circuit if this request opens it: a failure's
        type name, a newline and its redacted message.
        """
        delay = self._open_period() if opens else 0.0
        offset, after = self._offset, self._late_after
        # Estimated from a reply's server time, which is older than its arrival:
        # the deadline errs early, never late.
        due = 0 if offset is None or not after else int(_monotonic_us() + offset) + after
        me = f"{_PROCESS}:{self._serial}"  # read at each call: a forked child has its own
        args = (*self._args, math.ceil(delay * 1e6), repr(delay), me, cause, *extra, due)
        return args, self._link.epoch, self._replies

    def _lost(self, exc: BaseException) -> None:
        """A round trip failed: an outage may begin (the fallback decides from now on)."""
        if self._link.lost(exc, self._fallback):
            self._stale_at = -math.inf
            self._seed_fallback()

    def _accept(self, reply: _Reply, epoch: int, begun: int) -> _Reply:
        """A reply to a round trip begun in *epoch*: adopt it, announce an opening it shows."""
        self._link.answered(epoch)
        reply = self._apply(reply, begun)
        return reply if reply[11] is None else self._claim(reply)

    def _parse(self, raw: Any) -> _Reply:
        """Decode a script's reply; a reply that cannot be read is a Redis failure too."""
        try:
            state = _STATES[_text(raw[0])]
            remaining = int(raw[3])
            until = self._now() + remaining / 1e6 if state is OPEN else 0.0
            admitted = int(raw[7])
            parsed = (
                state,
                int(raw[1]),
                int(raw[2]),
                until,
                int(raw[4]),
                float(_text(raw[5])),
                _text(raw[6]),
                admitted == 1,
                int(raw[8]),
                admitted == -1,
                _parse_cause(raw[10]),
                _parse_opening(raw[11]),
            )
            self._offset = int(raw[9]) - _monotonic_us()
        except (LookupError, TypeError, ValueError) as exc:
            raise redis.exceptions.ResponseError(f"unreadable reply {raw!r}") from exc
        return parsed

    def _apply(self, reply: _Reply, begun: int) -> _Reply:
        now = self._now()
        state, gen, failures, until, opens, delay, _, _, left, _, cause, _ = reply
        rolled_back = False
        with self._lock:
            self._replies += 1
            if gen < self._gen:
                if self._known_at > begun:
                    return reply  # older news than the cache holds (a reply that lost a race)
                rolled_back = True  # asked after learning the newer period: Redis went back
            if gen != self._gen:
                self._known_at = self._replies
                for window in self._windows:
                    window.clear()  # a new period: the windows start empty
                if state is not CLOSED:
                    self._permit = None  # first, for the lock-free readers
            self._gen = gen
            self._state = state
            self._failures = failures
            self._opens = opens
            self._delay = delay
            self._until = until
            self._left = left
            self._cause = cause
            self._quiet = self._plain and not failures
            if state is CLOSED:
                permit = self._permit
                ticket = None if permit is None else permit.token
                if not isinstance(ticket, _Ticket) or ticket.gen != gen:
                    self._permit = CircuitPermit(_Ticket(gen, None))
            self._stale_at = now + self._refresh
        if rolled_back:
            emit(self._breaker.hooks, StoreRolledBack, name=self._breaker.name, state=state)
        return reply

    def _claim(self, reply: _Reply) -> _Reply:
        """
        Announce each opening this store made once: by the reply that made it, or,
        when that reply was lost (Redis ran the request, the client had given up
        waiting), by the first later reply that shows it. Returns *reply*, without
        its opening if another thread's reply has announced it already.
        """
        opening, event = reply[11], reply[6]
        opened = event.startswith("o:")
        with self._lock:
            claimed = opening is not None and opening[0] > self._announced
            if claimed:
                assert opening is not None
                self._announced = opening[0]
        if opened:
            return reply if claimed else (*reply[:6], "", *reply[7:])
        if claimed:
            assert opening is not None
            _, reason, seconds = opening
            emit(
                self._breaker.hooks,
                CircuitOpened,
                name=self._breaker.name,
                target=None,
                reason=reason,
                retry_after=seconds,
            )
        return reply

    @staticmethod
    def _transitions(reply: _Reply) -> tuple[CircuitTransition, ...]:
        event = reply[6]
        if not event:
            return _NO_TRANSITIONS
        code, _, reason = event.partition(":")
        state = _STATES[code]
        return (CircuitTransition(state, reason, reply[5] if state is OPEN else None),)

    # --- falling back ---------------------------------------------------------

    def _seed_fallback(self) -> None:
        """Start the local circuit from the last shared state read (an outage began)."""
        local = self._local
        if local is None:
            return
        # Their transitions mirror the shared state; they are not events of this process.
        state = self._state
        if state is OPEN or state is ISOLATED:
            local.force(state)
        else:
            local.reset()

    def _fallback_acquire(self) -> CircuitPermit | CircuitRejection:
        local = self._local
        if local is not None:
            return local.acquire()
        if self._fallback == "admit":
            return _ADMIT
        return CircuitRejection(OPEN, None)

    # --- the steps, around their round trips ---------------------------------

    def _answer(self, now: float) -> CircuitPermit | CircuitRejection | None:
        """Answer `acquire` without Redis (down, or a fresh cache that can), else `None`."""
        link = self._link
        if link.skip(now):
            return self._fallback_acquire()
        if not link.down:
            return self._cached(now, now < self._stale_at)
        return None

    def _cached(self, now: float, fresh: bool) -> CircuitPermit | CircuitRejection | None:
        """Answer from the cache if it can, else `None` (go to Redis)."""
        if not fresh:
            return None
        state = self._state
        if state is CLOSED:
            return self._permit
        if state is OPEN:
            left = self._until - now
            return CircuitRejection(OPEN, left, self._cause) if left > 0 else None
        if state is ISOLATED:
            return CircuitRejection(ISOLATED, None)
        return CircuitRejection(HALF_OPEN, None, self._cause) if self._left == 0 else None

    def _acquired(self, reply: _Reply | None, lease: str) -> CircuitPermit | CircuitRejection:
        """What the acquire script's *reply* (`None`: Redis failed) decides."""
        if reply is None:
            return self._fallback_acquire()
        state, gen, _, until, _, _, _, admitted, _, late, _, _ = reply
        if late:  # Redis ran it too late to admit anyone: answer from what it said
            cached = self._cached(self._now(), True)
            return cached if cached is not None else CircuitRejection(state, None, self._cause)
        if admitted:
            if state is CLOSED:
                return self._permit or CircuitPermit(_Ticket(gen, None))
            return CircuitPermit(_Ticket(gen, lease), self._transitions(reply))
        if state is OPEN:
            return CircuitRejection(OPEN, max(until - self._now(), 0.0), self._cause)
        return CircuitRejection(state, None, self._cause)

    def _recording(self, record: _Record) -> tuple[tuple[object, ...], bool] | None:
        """The record script's arguments and whether it may open the circuit; `None`: Redis down."""
        if self._link.skip(self._now()):
            return None  # Redis is down: the outcome is lost, a lease expires
        ticket, outcome, trip, _ = record
        breaker = self._breaker
        extra = (
            ticket.gen,
            ticket.lease or "",
            outcome,
            breaker.failure_threshold or 0,
            breaker.success_threshold,
            trip or "",
        )
        return extra, outcome == "f" or trip is not None

    def _judge(self, ticket: _Ticket, failed: bool, duration: float | None) -> str | None:
        """Record a closed-state call in the local windows; return the reason if one tripped."""
        with self._lock:
            if ticket.gen != self._gen:
                return None  # a closed period that has ended
            now = self._now() if self._timed_windows else 0.0
            for window in self._windows:
                limit = window.slower_than
                if limit is None:
                    window.record(now, failed)
                else:
                    window.record(now, duration is not None and duration > limit)
            for window in self._windows:
                if window.tripped():
                    return window.reason
        return None

    def _success(
        self, permit: CircuitPermit, duration: float | None
    ) -> tuple[CircuitTransition, ...] | _Record:
        """A success: what it changes here, or the record to make in Redis."""
        ticket = permit.token
        if not isinstance(ticket, _Ticket):
            return self._local_outcome(permit, "s", duration)
        if ticket.lease is not None:
            limit = self._slow_probe
            slow = limit is not None and duration is not None and duration > limit
            return _Record(ticket, "f" if slow else "s", None, "")
        trip = self._judge(ticket, False, duration) if self._windows else None
        if trip is None and not (self._failures and ticket.gen == self._gen):
            return _NO_TRANSITIONS
        return _Record(ticket, "s", trip, "")

    def _failure(
        self, permit: CircuitPermit, duration: float | None, cause: tuple[str, str] | None
    ) -> tuple[CircuitTransition, ...] | _Record:
        """A failure: what it changes here (a fallback permit), or the record to make in Redis."""
        ticket = permit.token
        if not isinstance(ticket, _Ticket):
            transitions = self._local_outcome(permit, "f", duration)
            local = self._local
            if cause is not None and local is not None and transitions:
                local.note_opening(cause)  # ignored unless the local circuit opened
            return transitions
        trip = None
        if ticket.lease is None and self._windows:
            trip = self._judge(ticket, True, duration)
        return _Record(ticket, "f", trip, _cause_text(cause))

    def _ignored(self, permit: CircuitPermit) -> tuple[CircuitTransition, ...] | _Record:
        """A permit released without an outcome: a probe's lease goes back in Redis."""
        ticket = permit.token
        if not isinstance(ticket, _Ticket):
            return self._local_outcome(permit, "i", None)
        if ticket.lease is None:
            return _NO_TRANSITIONS
        return _Record(ticket, "i", None, "")

    def _local_outcome(
        self, permit: CircuitPermit, outcome: str, duration: float | None
    ) -> tuple[CircuitTransition, ...]:
        local = self._local
        if local is None or permit is _ADMIT:
            return _NO_TRANSITIONS
        if outcome == "s":
            return local.on_success(permit, duration)
        if outcome == "f":
            return local.on_failure(permit, duration)
        return local.on_ignored(permit)

    @staticmethod
    def _force_code(state: CircuitState) -> str:
        code = _FORCE_CODES.get(state)
        if code is None:
            raise ValueError(
                f"state must be CircuitState.CLOSED, OPEN or ISOLATED, got {state!r} "
                "(a circuit becomes half-open only when its open period ends)"
            )
        return code

    def _forced(
        self, reply: _Reply | None, state: CircuitState | None
    ) -> tuple[CircuitTransition, ...]:
        """What a manual step did: Redis's transitions, or the local circuit's while it is down."""
        if reply is not None:
            return self._transitions(reply)
        local = self._local
        if local is None:
            return _NO_TRANSITIONS
        return local.reset() if state is None else local.force(state)

    def _unshared(self) -> tuple[CircuitState, float | None]:
        """The state while Redis is unreachable: the fallback's."""
        local = self._local
        if local is not None:
            return local.snapshot()
        return (CLOSED, None) if self._fallback == "admit" else (OPEN, None)

    def _last_read(self) -> tuple[CircuitState, float | None]:
        """The state as last read from Redis."""
        state = self._state
        if state is OPEN:
            left = self._until - self._now()
            return (HALF_OPEN, None) if left <= 0 else (OPEN, left)
        return state, None


@final
class RedisCircuitStore(_CircuitCore):
    """
    A `resilience.CircuitStore` whose circuit lives in Redis, shared by every process.

    Made by `RedisStore` when a breaker is constructed with ``store=RedisStore(...)``;
    not constructed directly. The breaker's ``name`` is the circuit's identity.

    Local state: the last reply from Redis, trusted for *refresh* seconds of
    the breaker's clock. While it is fresh, a closed circuit admits calls and
    a success with no failure pending records nothing (no round trip, no
    lock); an open, isolated or fully probed circuit rejects calls without a
    round trip. Failures, probes, transitions and stale reads go to Redis.
    Consecutive failures are counted fleet-wide, in Redis; windowed trip
    conditions (`FailureRate`, `SlowCallRate`) are judged per process on its
    own calls, and the opening they cause is shared.
    """

    __slots__ = ()

    def _eval(
        self, script: Any, extra: tuple[object, ...], opens: bool, cause: str = ""
    ) -> _Reply | None:
        """Run *script*, update the cache and return the reply; `None` if Redis failed."""
        args, epoch, begun = self._begin(extra, opens, cause)
        try:
            reply = self._parse(script(keys=self._keys, args=args))
        except _REDIS_ERRORS as exc:
            self._lost(exc)
            return None
        return self._accept(reply, epoch, begun)

    def _record(self, record: _Record) -> tuple[CircuitTransition, ...]:
        recording = self._recording(record)
        if recording is None:
            return _NO_TRANSITIONS
        reply = self._eval(self._record_script, *recording, record.cause)
        return _NO_TRANSITIONS if reply is None else self._transitions(reply)

    # --- the protocol ------------------------------------------------------

    def acquire(self) -> CircuitPermit | CircuitRejection:
        """Admit the call (closed, or a leased probe) or reject it (see `CircuitStore`)."""
        permit = self._permit
        if permit is not None and self._now() < self._stale_at:
            return permit
        return self._acquire()

    def _acquire(self) -> CircuitPermit | CircuitRejection:
        answer = self._answer(self._now())
        if answer is not None:
            return answer
        if not self._fetch.acquire(blocking=False):
            if self._link.down:
                return self._fallback_acquire()  # another thread is trying Redis again
            # Another thread of this process is reading Redis: answer from the
            # state it is replacing, if that can answer (stale by one round trip).
            cached = self._cached(self._now(), True)
            if cached is not None:
                return cached
            self._fetch.acquire()
        try:
            answer = self._answer(self._now())  # refreshed meanwhile?
            if answer is not None:
                return answer
            lease = _new_lease()
            reply = self._eval(self._acquire_script, (lease,), False)
        finally:
            self._fetch.release()
        return self._acquired(reply, lease)

    def on_success(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """Record a success (see `CircuitStore`); no round trip while closed, nothing pending."""
        if permit is self._permit and self._quiet:
            return _NO_TRANSITIONS
        step = self._success(permit, duration)
        return self._record(step) if isinstance(step, _Record) else step

    def on_failure(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """Record a failure (see `CircuitStore`): always one round trip."""
        return self.on_failure_caused(permit, duration, None)

    def on_failure_caused(
        self, permit: CircuitPermit, duration: float | None, cause: tuple[str, str] | None, /
    ) -> tuple[CircuitTransition, ...]:
        """
        Record a failure and what it was, kept as the circuit's cause if it opens it.

        The breaker calls this instead of `on_failure`: the cause, the failure's
        type name and redacted message, goes to Redis in the same round trip,
        and every process's rejections carry it.
        """
        step = self._failure(permit, duration, cause)
        return self._record(step) if isinstance(step, _Record) else step

    def on_ignored(self, permit: CircuitPermit, /) -> tuple[CircuitTransition, ...]:
        """Release a permit without an outcome: a probe's lease is returned (see `CircuitStore`)."""
        step = self._ignored(permit)
        return self._record(step) if isinstance(step, _Record) else step

    def force(self, state: CircuitState, /) -> tuple[CircuitTransition, ...]:
        """Move the shared circuit by hand (see `CircuitStore`); local only while Redis is down."""
        return self._manual(self._force_code(state), state)

    def reset(self) -> tuple[CircuitTransition, ...]:
        """Return the shared circuit to its initial state (see `CircuitStore`)."""
        return self._manual("r", None)

    def _manual(self, code: str, state: CircuitState | None) -> tuple[CircuitTransition, ...]:
        reply = None
        if not self._link.skip(self._now()):
            reply = self._eval(self._force_script, (code,), code == "o")
        return self._forced(reply, state)

    def snapshot(self) -> tuple[CircuitState, float | None]:
        """Return the state and the seconds until half-open (see `CircuitStore`)."""
        now = self._now()
        if self._link.skip(now) or (
            now >= self._stale_at and self._eval(self._read_script, (), False) is None
        ):
            return self._unshared()
        return self._last_read()


def _parse_cause(raw: Any) -> tuple[str, str] | None:
    """A reply's cause: ``b"Type\\nmessage"`` as ``("Type", "message")``, `None` when empty."""
    if not raw:
        return None
    kind, _, message = _text(raw).partition("\n")
    return kind, message


def _parse_opening(raw: Any) -> tuple[int, str, float] | None:
    """A reply's opening made by the caller: ``b"id|reason|seconds"``, `None` when empty."""
    if not raw:
        return None
    gen, reason, seconds = _text(raw).split("|")
    return int(gen), reason, float(seconds)


def _cause_text(cause: tuple[str, str] | None) -> str:
    """A cause as the scripts keep it: the type name (bounded), a newline, the message."""
    if cause is None:
        return ""
    kind, message = cause
    return f"{kind[:_CAUSE_TYPE_LIMIT]}\n{message[:200]}"


def _monotonic_us() -> float:
    return time.monotonic() * 1e6


# Lease ids are unique across the fleet: a random token per process and a counter
# shared by every store of the process (next() on a count is atomic). A forked
# child draws its own token: with its parent's, the children of one fork (a
# multiprocessing pool, gunicorn --preload) would hand out the same lease ids,
# and Redis would count several probes as one.
_PROCESS = os.urandom(8).hex()
_LEASES = itertools.count()
_STORES = itertools.count(1)  # a number per circuit store, for its token in Redis


def _new_lease() -> str:
    """A lease id no other probe of the fleet has (a forked child has its own token)."""
    return f"{_PROCESS}:{next(_LEASES)}"


def _new_process_token() -> None:
    global _PROCESS, _LEASES
    _PROCESS = os.urandom(8).hex()
    _LEASES = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process_token)


# --- the shared Retry-After pause --------------------------------------------------------


@final
class _Pause:
    """The state of one shared pause in this process: the end last read, and when to read again."""

    __slots__ = (
        "_fetch",
        "_id",
        "_key",
        "_link",
        "_now",
        "_pause",
        "_read",
        "_refresh",
        "_stale_at",
        "_until",
        "_waited",
    )

    def __init__(self, owner: RetryAfterPause) -> None:
        store = owner.store
        self._now = owner.clock.now
        self._key = (store.pause_key(owner.name),)
        self._pause = store.client.register_script(_LUA_PAUSE)
        self._read = store.client.register_script(_LUA_PAUSE_READ)
        self._refresh = store.refresh
        self._link = _Link(owner.name, owner.hooks, self._now, store.reconnect)
        self._fetch = fork_safe_lock()
        self._until = -math.inf  # on this process's clock
        self._id = ""  # the pause _until belongs to ("" for one kept only here)
        # The last pause seen to end on this process's clock: read again (its key
        # outlives it on a clock that runs ahead, a FakeClock's), it is over.
        self._waited = ""
        self._stale_at = -math.inf

    def left(self, now: float) -> float:
        """Seconds until the pause ends (<= 0: not paused); reads Redis when the cache is stale."""
        if now >= self._until and self._id:
            self._waited = self._id
        if now < self._stale_at or self._link.skip(now) or not self._fetch.acquire(blocking=False):
            return self._until - now
        try:
            epoch = self._link.epoch
            try:
                ms, pause = self._parse(self._read(keys=self._key))
            except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
                self._link.lost(exc, "local")
                return self._until - now
            self._link.answered(epoch)
            now = self._now()
            # Redis is the authority once it answers (a pause kept only here
            # during an outage ends with it).
            if ms > 0 and pause != self._waited:
                self._until, self._id = now + ms / 1000, pause
            else:
                self._until, self._id = -math.inf, ""
            self._stale_at = now + self._refresh
            return self._until - now
        finally:
            self._fetch.release()

    @staticmethod
    def _parse(reply: Any) -> tuple[int, str]:
        return int(reply[0]), _text(reply[1] or "")

    def start(self, seconds: float) -> None:
        """Pause every caller for *seconds* from now (the pause only grows)."""
        now = self._now()
        if now + seconds > self._until:  # this process, at once
            self._until, self._id = now + seconds, ""
        if self._link.skip(now):
            return
        epoch = self._link.epoch
        try:
            ms, pause = self._parse(self._pause(keys=self._key, args=(math.ceil(seconds * 1000),)))
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            self._link.lost(exc, "local")
            return
        self._link.answered(epoch)
        now = self._now()
        # The longer of the pause in force and this one.
        self._until, self._id = now + ms / 1000, pause
        self._stale_at = now + self._refresh


def _check_store(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, RedisStore):
        raise TypeError(f"store must be a RedisStore, got {type(value).__name__}: {value!r}")


def _check_pause_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_name("pause", value)


class _PauseGate(GatePolicy):
    """
    The gate half of `RetryAfterPause` and its redis.asyncio twin: sync and I/O-free.

    Both read the pause from the cache of their ``_state`` (which the sync
    pause refreshes inside ``left`` and the async one around the call), so
    their decisions are the same code.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        on: ErrorClassifier
        name: str
        max_wait: float | None
        max_pause: float
        hooks: tuple[Hook, ...]
        clock: Clock
        _state: Any

    def _started(self, seconds: float, fn: object) -> None:
        self._state.start(seconds)
        emit(
            self.hooks,
            PauseStarted,
            name=self.name,
            target=None if fn is None else target_name(fn),
            retry_after=seconds,
        )

    def _failed(self, outcome: object, fn: object) -> None:
        """Start a pause if *outcome* (a failure, or a result) asks for one."""
        verdict = self.on.classify(outcome)
        after = verdict.retry_after
        if verdict.retry and after is not None and after > 0:
            self._started(min(after, self.max_pause), fn)

    def _refuse(self, left: float, fn: object) -> NoReturn:
        error = PausedError(self.name, left)
        refuse(self.hooks, error, name=self.name, target=fn, reason="paused", retry_after=left)

    def _delay(self, left: float, target: object) -> Wait:
        """A call meets a pause of *left* seconds: a `Wait`, or `PausedError` if too long."""
        limit = self.max_wait
        deadline = remaining()
        if (limit is not None and left > limit) or (deadline is not None and left >= deadline):
            self._refuse(left, target)
        emit(
            self.hooks,
            CallDelayed,
            name=self.name,
            target=None if target is None else target_name(target),
            delay=0.0 if testing_enabled() else left,
        )
        return Wait(left, _PASSED)

    # --- the gate (see resilience.engine.Gate): the engine waits and runs the call ----

    @property
    def results(self) -> bool:
        """Whether returned results are classified too (a 429 response that did not raise)."""
        return self.on.handles_results

    @property
    def fast(self) -> FastPath:
        """Every call asks `admit` (the pause is read on the clock); a success changes nothing."""
        return _PAUSE_FAST

    def admit(self, target: object, /) -> object:
        """
        Admit the call at once, or after the pause it sees (a `resilience.engine.Wait`).

        Raises:
            PausedError: If the pause lasts longer than *max_wait*, or past the deadline.
        """
        left = self._state.left(self.clock.now())
        return _PASSED if left <= 0 else self._delay(left, target)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """The deadline comes before the pause ends: refuse with `PausedError`."""
        self._refuse(wait.seconds or 0.0, target)

    def on_success(
        self, permit: object, result: object, duration: object, target: object, /
    ) -> None:
        """A result the classifier retries with a Retry-After (a 429 response) starts a pause."""
        if result is not NO_RESULT:
            self._failed(result, target)

    def on_failure(
        self, permit: object, error: Exception, duration: object, target: object, /
    ) -> None:
        """A failure the classifier retries with a Retry-After starts a pause."""
        self._failed(error, target)


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class RetryAfterPause(_PauseGate):
    """
    Make every caller sharing *name* wait out a ``Retry-After`` that one of them received.

    A policy: when a call fails with an outcome the classifier retries and
    that carries ``Retry-After`` (a 429, a 503), the pause starts, in Redis,
    for that many seconds; from then on every call through a pause of the
    same name, in any process, first waits until the pause ends, sync
    (``clock.sleep``) or async (``await clock.asleep``). A pause is one Redis
    key that expires, on the server's clock, when the pause ends; it only
    ever grows. Each process reads it at most every ``store.refresh``
    seconds, so a call may start up to that long after another process
    started a pause (it then receives its own 429, and its own pause).

    A caller that would wait past the innermost deadline, or more than
    *max_wait* seconds, is rejected at once with `PausedError` (a
    `RejectedError`: nothing ran). A caller waits out the pause it saw; an
    extension made while it waited applies to its next call. Cancellation and
    interpreter exits are never classified. In testing mode
    (`resilience.testing.set_testing`) waits are zero.

    Place it inside `Retry` and outside the breaker, so that each attempt
    waits and a waiting call holds no probe place:

    ```python
    rs.compose(rs.Retry(on=rs.transient), pause, breaker, rs.Timeout(10.0))
    ```

    While Redis is unreachable the pause is this process's own (its calls
    still pause each other), `StoreUnavailable` is emitted, and Redis is tried
    again every ``store.reconnect`` seconds.

    Args:
        on: Which failures start a pause: those whose verdict has ``retry``
            and a ``retry_after``. An `ErrorClassifier` (`resilience.transient`
            reads ``Retry-After``), an exception type, a `Rule` or a predicate.
            Required.
        name: The pause's shared identity. Required.
        store: The `RedisStore` holding it. Required.
        max_wait: Seconds a caller may wait; longer pauses reject the call.
            Default: 60.0. `None`: no limit but the deadline.
        max_pause: Seconds; the longest pause one response can start (a
            ``Retry-After`` beyond it pauses the fleet this long). Default: 300.0.
        hooks: Callables receiving this policy's events, before the global hooks.
        clock: Where time comes from (the local wait). Default: the system clock.

    .. versionadded:: 0.1.0
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier)
    name: str = attrs.field(validator=_check_pause_name)
    store: RedisStore = attrs.field(validator=_check_store, repr=False)
    max_wait: float | None = attrs.field(default=60.0, converter=_to_max_wait)
    max_pause: float = attrs.field(default=300.0, converter=_to_max_pause)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    _state: _Pause = attrs.field(init=False, repr=False)
    _pipeline: Any = pipeline_field()

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_state", _Pause(self))

    def __repr__(self) -> str:
        return f"RetryAfterPause(on={self.on!r}, name={self.name!r}, max_wait={self.max_wait!r})"

    def describe(self) -> Description:
        """
        Return what this pause does, for `resilience.Pipeline.explain`.

        Which failures start a pause (rule by rule), how long one may last,
        how long a caller waits at most, and the pause now (one Redis read
        when the cache is stale). It adds no attempts; its waits happen only
        when a server asked for them.
        """
        wait = self.max_wait
        left = self.remaining
        details = [
            "starts a pause, for every process, on a failure it retries that carries "
            "Retry-After (first matching rule decides):",
            *rule_lines(self.on, "retry"),
            f"one pause lasts at most {describe_seconds(self.max_pause)}; "
            f"key {self.store.pause_key(self.name)!r}",
            (
                "a call waits for the pause, however long (only a deadline cuts it short)"
                if wait is None
                else f"a call waits at most {describe_seconds(wait)}; a longer pause rejects it "
                "at once with PausedError"
            ),
            "never waits past a deadline: rejects at once instead",
            f"paused now: {'for ' + describe_seconds(left) if left > 0 else 'no'}",
        ]
        return Description(
            title=f"RetryAfterPause {self.name!r}: callers wait out a Retry-After shared via Redis",
            details=details,
            sleeps=0.0,
            sleeps_retry_after=wait,
        )

    @property
    def remaining(self) -> float:
        """Seconds until the shared pause ends, as this process last read it; 0.0 if not paused."""
        return max(self._state.left(self.clock.now()), 0.0)

    def start(self, seconds: float) -> None:
        """
        Start (or extend) the shared pause by hand: every caller waits *seconds* from now.

        Raises:
            ValueError: If *seconds* is not a finite number > 0.
        """
        seconds = to_seconds("seconds", seconds)
        self._started(min(seconds, self.max_pause), None)

    # --- the gate: the shared pause read from a cache kept fresh inline ----

    def admit(self, target: object, /) -> object:
        """
        Admit the call at once, or after the pause it sees (a `resilience.engine.Wait`).

        Raises:
            PausedError: If the pause lasts longer than *max_wait*, or past the deadline.
        """
        t = self.clock.now()
        state = self._state
        # A fresh cache needs no method call.
        left = state._until - t if t < state._stale_at else state.left(t)
        if left <= 0:
            return _PASSED
        return self._delay(left, target)


@final
class _PauseFast:
    __slots__ = ()
    ready: Final = None
    settled: Final = True


_PAUSE_FAST: Final = _PauseFast()
_PASSED: Final = True  # the permit of every call through a pause


# --- the fleet-wide retry budget ---------------------------------------------------------

_NEVER: Final = object()  # what a budget's counter never returns

# The window is 10 buckets of at least a millisecond on the server's clock (its key's
# time to live is the window, in milliseconds).
_SHORTEST_WINDOW: Final = 0.01


def _feed(first: Callable[[], object], count: int) -> None:
    """Call *first* *count* times, in C: first attempts handed to the local fallback."""
    collections.deque(itertools.islice(iter(first, _NEVER), count), maxlen=0)


class _SharedBudget:
    """
    The I/O-free half of the fleet-wide retry budgets, sync and async.

    The settings, the local count of first attempts (`first`), what one
    `spend` hands to the script (`take`), and the local fallback.
    """

    __slots__ = (
        "_args",
        "_count",
        "_hooks",
        "_key",
        "_last",
        "_link",
        "_local",
        "_lock",
        "_name",
        "_now",
        "_script",
        "_seen",
        "_store",
        "first",
    )

    _kind: ClassVar[str]

    def __init__(
        self,
        *,
        name: str,
        store: Any,
        ratio: float = 0.1,
        minimum: int = 10,
        per: float | timedelta = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._name = _check_name("retry budget", name)
        # The fallback checks ratio, minimum, per and clock (the errors name them).
        local = RetryBudget(ratio=ratio, minimum=minimum, per=per, clock=clock)
        seconds = local.per
        if seconds < _SHORTEST_WINDOW:
            raise ValueError(
                f"per must be at least {_SHORTEST_WINDOW} seconds with a RedisStore "
                f"(10 buckets of at least a millisecond on the server's clock), got {per!r}"
            )
        _bounded_seconds("per", seconds)
        self._local = local
        self._store = store
        self._hooks = to_hooks(hooks)
        self._now = clock.now
        self._key = (store.budget_key(self._name),)
        self._script = store.client.register_script(_LUA_BUDGET)
        self._args = (
            repr(seconds * 1e6 / 10),  # a bucket's width, µs
            repr(local.ratio),
            local.minimum,
            math.ceil(seconds * 1000),  # the key's time to live, ms
        )
        self._link = _Link(self._name, self._hooks, self._now, store.reconnect)
        self._lock = fork_safe_lock()
        self._count = itertools.count()
        # The success path: a bound C method, called without a lock.
        self.first = self._count.__next__
        self._seen = 0  # first attempts handed on so far (and own reads)
        self._last = self._now()  # when they were last handed on

    def __repr__(self) -> str:
        local = self._local
        return (
            f"{self._kind}(name={self._name!r}, ratio={local.ratio!r}, "
            f"minimum={local.minimum!r}, per={local.per!r})"
        )

    @property
    def name(self) -> str:
        """The budget's shared identity."""
        return self._name

    @property
    def ratio(self) -> float:
        """Retries allowed per first attempt."""
        return self._local.ratio

    @property
    def minimum(self) -> int:
        """Retries allowed per window whatever the traffic."""
        return self._local.minimum

    @property
    def per(self) -> float:
        """The window, in seconds."""
        return self._local.per

    def take(self) -> tuple[float, int, tuple[Any, ...]]:
        """
        Before a round trip: now, the first attempts counted since the last, the script's args.
        """
        with self._lock:
            now = self._now()
            # next() counts this read too: `_seen` absorbs it.
            total = next(self._count)
            new = total - self._seen
            self._seen = total + 1
            span = max(now - self._last, 0.0)
            self._last = max(now, self._last)
        return now, new, (new, f"{span * 1e6:.0f}", *self._args)

    def fallback(self, new: int) -> bool:
        """Redis does not answer: the local budget decides, told of the *new* first attempts."""
        local = self._local
        _feed(local.first, new)
        return local.spend()


@final
class RedisRetryBudget(_SharedBudget):
    """
    A `resilience.RetryBudget` whose window is kept in Redis: one budget for the whole fleet.

    Retries asked for by any process through a budget of the same *name* (and
    store prefix) may add at most *ratio* of the first attempts of every
    process, plus *minimum*, per *per* seconds. Pass it as a Retry's budget,
    one per dependency, in every process:

    ```python
    budget = RedisRetryBudget(name="saas-api", store=fleet, ratio=0.1, minimum=10)
    retry = rs.Retry(on=rs.transient, budget=budget)
    ```

    **Cost.** `first` (every call, the success path) is a local C-level
    counter: no round trip, no lock. `spend` (each retry asked for, the
    failure path) is one Lua script round trip: it adds the first attempts
    this process counted since its previous `spend` to the shared window
    (spread evenly over the time since then), then decides and counts the
    retry, atomically, on the server's clock (``TIME``).

    **Approximation.** First attempts reach Redis only when the process that
    counted them next asks for a retry: a process whose calls all succeed
    adds nothing to the shared window until one fails, so the fleet's window
    may undercount the first attempts (it never overcounts them). The budget
    then errs toward fewer retries; *minimum* is the floor. In a storm, every
    process asks often and the count is nearly exact.

    **Keys.** ``{prefix}:budget:{<name>}`` (`RedisStore.budget_key`), one hash of
    10 buckets with a Redis Cluster hash tag on the name, expiring *per*
    seconds after its last write (its buckets have all left the window by
    then).

    **Redis unreachable.** `spend` falls back to a local `resilience.RetryBudget`
    with the same settings (this process's retries against this process's
    first attempts, counted from the outage on), emits `StoreUnavailable`
    (``fallback="local"``) once, tries Redis again every ``store.reconnect``
    seconds and emits `StoreRecovered` when it answers. Redis is never the
    reason a call fails.

    For async code, `AsyncRedisRetryBudget` with an `AsyncRedisStore` is the
    same budget over ``redis.asyncio`` (both share a window of the same name).

    Thread-safe; the round trip is made outside any lock. Configure the
    budgets of one name alike everywhere: each process applies its own
    *ratio* and *minimum* to the shared counts.

    Args:
        name: The budget's shared identity (no braces). Required.
        store: The `RedisStore` holding it. Required.
        ratio: Retries allowed per first attempt, a number >= 0. Default: 0.1.
        minimum: Retries allowed per window whatever the traffic (fleet-wide),
            an int >= 0. Default: 10.
        per: The window, in seconds (or a `datetime.timedelta`), from 0.01 to
            1e9. Default: 1.0.
        hooks: Callables receiving this budget's events (`StoreUnavailable`,
            `StoreRecovered`), before the global hooks.
        clock: Where time comes from (the spreading of first attempts, the
            fallback, the reconnect interval). Default: the system clock.

    Raises:
        TypeError: A parameter has the wrong type (*store* not a `RedisStore`,
            *name* not a str).
        ValueError: *name* is empty or has braces, *ratio* is negative or not
            finite, *minimum* is negative, or *per* is out of range.

    .. versionadded:: 0.2.0
    """

    __slots__ = ()

    _kind = "RedisRetryBudget"

    def __init__(
        self,
        *,
        name: str,
        store: RedisStore,
        ratio: float = 0.1,
        minimum: int = 10,
        per: float | timedelta = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(
                "store must be a RedisStore (for an AsyncRedisStore, use AsyncRedisRetryBudget), "
                f"got {type(store).__name__}: {store!r}"
            )
        super().__init__(
            name=name, store=store, ratio=ratio, minimum=minimum, per=per, hooks=hooks, clock=clock
        )

    @property
    def store(self) -> RedisStore:
        """The `RedisStore` holding it."""
        return self._store  # type: ignore[no-any-return]

    def spend(self) -> bool:
        """
        Return whether a retry may happen now, fleet-wide, counting it if so (see `Budget.spend`).

        One Lua script round trip (none while Redis is down, between reconnect attempts).
        """
        now, new, arguments = self.take()
        link = self._link
        if link.skip(now):
            return self.fallback(new)
        epoch = link.epoch
        try:
            reply = self._script(keys=self._key, args=arguments)
            allowed = int(reply[0]) == 1
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, "local")
            return self.fallback(new)
        link.answered(epoch)
        return allowed


for _cls in (
    RedisStore,
    RedisCircuitStore,
    RetryAfterPause,
    RedisRetryBudget,
    PausedError,
    StoreUnavailable,
    StoreRecovered,
    PauseStarted,
    CallDelayed,
):
    _cls.__module__ = __name__
del _cls


# The redis.asyncio twins, in modules of their own; imported last (they use the above).
from ._redis_async import (  # noqa: E402
    AsyncRedisCircuitStore,
    AsyncRedisStore,
    AsyncRetryAfterPause,
)
from ._redis_async_shared import AsyncRedisRateLimiter, AsyncRedisRetryBudget  # noqa: E402

# The fleet-wide rate limiter lives in a module of its own; it is part of this namespace.
from ._redis_limiter import RedisRateLimiter as RedisRateLimiter  # noqa: E402
