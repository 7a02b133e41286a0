"""
RedisRateLimiter: one rate limit for a whole fleet, kept in Redis (re-exported by `.redis`).

The same GCRA as `resilience.RateLimiter`, with its one number (the
theoretical arrival time, in microseconds of the Redis server's clock) in a
Redis key, decided by one Lua script per acquisition on the server's ``TIME``.

`SharedLimiter` holds everything but the I/O: the settings, the decision a
script's reply makes, the fallbacks and the learning (settle, adapt). The
sync `RedisRateLimiter` makes its round trips inline; the redis.asyncio twin
(``_redis_async_shared``) awaits the same scripts around the engine's sync gate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar, Final, NoReturn, cast, final

from resilience import (
    Clock,
    Description,
    ErrorClassifier,
    Hook,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    RateLimitPermit,
    RateLimitWaited,
)
from resilience.deadline import remaining
from resilience.engine import (
    NO_RESULT,
    SYSTEM_CLOCK,
    GatePolicy,
    Wait,
    describe_seconds,
    emit,
    fork_safe_lock,
    refuse,
    target_name,
    to_hooks,
)

from .redis import _REDIS_ERRORS, Fallback, RedisStore, _bounded_seconds, _check_name, _Link

__all__ = ["RedisRateLimiter"]

# KEYS[1] the arrival time (µs, as text). ARGV: 1 µs per unit, 2 cost (units), 3 the
# burst in µs (burst x µs per unit), 4 the longest wait (µs; -1: any), 5 the key's
# time to live beyond the arrival time (ms). Replies {1, wait µs, new arrival time}
# when the call is admitted (at once: wait 0) or {0, wait µs} when it would wait too long.
_LUA_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + tonumber(ARGV[2]) * tonumber(ARGV[1])
local wait = new - tonumber(ARGV[3]) - now
if wait < 0 then wait = 0 end
local longest = tonumber(ARGV[4])
if wait > 0 and longest >= 0 and wait > longest then
  return {0, string.format('%.0f', wait)}
end
local stamp = string.format('%.3f', new)
redis.call('SET', KEYS[1], stamp, 'PX', math.ceil((new - now) / 1000) + tonumber(ARGV[5]))
return {1, string.format('%.0f', wait), stamp}
"""

# KEYS[1] as above. ARGV: 1 the arrival time the permit set (text), 2 µs to give back.
# Only when nobody reserved after it: then the refund is exact, else it is forfeited.
_LUA_REFUND: Final = """
local tat = redis.call('GET', KEYS[1])
if tat ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.3f', tonumber(tat) - tonumber(ARGV[2])), 'PX', ttl)
return 1
"""

# KEYS[1] as above. ARGV: 1 the arrival time the permit set (text), 2 µs to charge (> 0)
# or give back (< 0), 3 the key's time to live beyond the arrival time (ms). A charge moves
# the arrival time on: from where the permit left it if nobody reserved after it, else
# from max(arrival time, now). A refund only when nobody reserved after it (else it is
# forfeited). Replies the new arrival time when the permit is still the last, else nil.
_LUA_SETTLE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
local last = stored == ARGV[1]
local extra = tonumber(ARGV[2])
local tat = tonumber(stored or '0')
if extra < 0 and not last then return nil end
if not last and tat < now then tat = now end
local new = tat + extra
local stamp = string.format('%.3f', new)
local ttl = math.ceil((new - now) / 1000) + tonumber(ARGV[3])
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], stamp, 'PX', ttl)
if last then return stamp end
return nil
"""

# KEYS[1] as above. ARGV: 1 µs from now that the arrival time must reach (a server's
# Retry-After, from an empty bucket), 2 the key's time to live beyond it (ms). Only
# moves the arrival time on; replies 1 if it did.
_LUA_HOLD: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = now + tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') >= hold then return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', hold), 'PX',
  math.ceil((hold - now) / 1000) + tonumber(ARGV[2]))
return 1
"""

_FALLBACKS: Final = ("local", "admit", "reject")

Todo = list[tuple[str, float]]
"""Round trips a permit still owes Redis: ("charge", real cost), ("refund", 0), ("hold", µs)."""


@final
class _Slot:
    """A permit of the shared limit: the arrival time it set (as Redis holds it) and its cost."""

    __slots__ = ("cost", "generation", "interval", "stamp", "start", "todo")

    def __init__(
        self, stamp: bytes, cost: float, start: float, interval: float, generation: int
    ) -> None:
        self.stamp = stamp
        self.cost = cost
        self.start = start  # when the call may start, on the limiter's clock
        self.interval = interval  # µs per unit it was charged at (adapt moves it)
        self.generation = generation  # the adaptive rate's decreases before it
        self.todo: Todo | None = None  # the async limiter's round trips, made after the call


_ADMITTED: Final[Any] = object()
"""The permit of a call admitted by the "admit" fallback."""

Reply = tuple[bool, float, Any]
"""An acquisition script's reply, parsed: admitted?, the wait in seconds, the arrival time."""


def parse_reply(reply: Any) -> Reply:
    """Parse `_LUA_ACQUIRE`'s reply (a malformed one raises, as an unreachable Redis)."""
    admitted = int(reply[0]) == 1
    return admitted, int(reply[1]) / 1e6, reply[2] if admitted else None


class SharedLimiter(GatePolicy):
    """
    The I/O-free half of the fleet-wide rate limiters, sync and async.

    Settings, the decision an acquisition's reply makes (`granted`), the
    fallbacks, and what a call's outcome teaches (settle, adapt). Round trips
    after the call (a settle's charge or refund, a cancelled waiter's refund,
    a Retry-After hold) go through `owe`: the sync limiter makes them at once,
    the async one after the call, awaited.
    """

    __slots__ = (
        "__weakref__",  # metrics.watch() holds it weakly
        "_admitted",
        "_args",
        "_count",
        "_fallback",
        "_hold",
        "_hooks",
        "_key",
        "_label",
        "_link",
        "_local",
        "_name",
        "_pace",
        "_pipeline",
        "_refund",
        "_script",
        "_settle",
        "_store",
        "_template",
        "_ttl",
        "share",
    )

    _kind: ClassVar[str]

    def __init__(
        self,
        *,
        name: str,
        store: Any,
        rate: float,
        per: float | timedelta = 60.0,
        burst: float | None = None,
        cost: float | Callable[..., float] = 1,
        settle: Callable[[Any], float] | None = None,
        max_wait: float | timedelta | None = None,
        adapt: object = None,
        fallback: Fallback = "local",
        share: float = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._name = _check_name("rate limiter", name)
        if fallback not in _FALLBACKS:
            raise ValueError(f"fallback must be 'local', 'admit' or 'reject', got {fallback!r}")
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError(f"share must be a number in (0, 1], got {type(share).__name__}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self._hooks = to_hooks(hooks)
        # The limiter's settings, checked as RateLimiter checks them (the errors name them).
        # With *adapt*, it is also the fleet rate's brain: its rate moves as rs.RateLimiter's.
        template = RateLimiter(
            rate=rate,
            per=per,
            burst=burst,
            cost=cost,
            settle=settle,
            max_wait=max_wait,
            adapt=adapt,
            name=name,
            hooks=self._hooks,
            clock=clock,
        )
        _bounded_seconds("per", template.per)
        if template.max_wait is not None:
            _bounded_seconds("max_wait", template.max_wait, zero=True)
        self._template = template
        self._pace = template if template.adapt is not None else None
        local_burst = template.burst * share
        if not callable(template.cost):  # a fixed cost must still fit in the local bucket
            local_burst = max(local_burst, template.cost)
        self._local = RateLimiter(
            rate=template.rate * share,
            per=template.per,
            burst=local_burst,
            cost=cost,
            settle=settle,
            max_wait=template.max_wait,
            adapt=adapt,
            name=name,
            hooks=self._hooks,
            clock=clock,
        )
        self.share = share
        self._store = store
        self._fallback = fallback
        self._label = name
        self._key = (f"{store.prefix}:ratelimit:{{{name}}}",)
        client = store.client
        self._script = client.register_script(_LUA_ACQUIRE)
        self._refund = client.register_script(_LUA_REFUND)
        self._settle = None if settle is None else client.register_script(_LUA_SETTLE)
        self._hold = None if template.adapt is None else client.register_script(_LUA_HOLD)
        interval = template.per * 1e6 / template.rate  # µs per unit
        self._args = (interval, repr(template.burst * interval), repr(interval))
        self._ttl = math.ceil(store.reconnect * 1000)
        self._link = _Link(name, self._hooks, clock.now, store.reconnect)
        self._count = fork_safe_lock()
        self._admitted = 0.0
        object.__setattr__(self, "_pipeline", Pipeline((self,)))  # the slot, not the property

    def __repr__(self) -> str:
        t = self._template
        return (
            f"{self._kind}(name={self._name!r}, rate={t.rate:g}, per={t.per:g}, "
            f"burst={t.burst:g}, fallback={self._fallback!r})"
        )

    # --- settings ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The limit's shared identity."""
        return self._name

    @property
    def rate(self) -> float:
        """Units per *per* seconds, fleet-wide."""
        return self._template.rate

    @property
    def per(self) -> float:
        """The window, in seconds."""
        return self._template.per

    @property
    def burst(self) -> float:
        """Units that may go at once after a quiet spell."""
        return self._template.burst

    @property
    def settle(self) -> Callable[[Any], float] | None:
        """What tells a call's real cost from its result (`None`: the estimate stands)."""
        return self._template.settle

    @property
    def adapt(self) -> ErrorClassifier | None:
        """What tells a rate-limit answer (`None`: a fixed rate)."""
        return self._template.adapt

    @property
    def max_wait(self) -> float | None:
        """Seconds a call may wait for room (`None`: as the deadline allows)."""
        return self._template.max_wait

    @property
    def fallback(self) -> str:
        """What happens while Redis is unreachable: ``"local"``, ``"admit"`` or ``"reject"``."""
        return self._fallback

    @property
    def clock(self) -> Clock:
        """What waits sleep on."""
        return self._template.clock

    @property
    def current_rate(self) -> float:
        """Units per *per* this process paces its calls at: *rate*, less while *adapt* backs off."""
        return self._template.current_rate

    @property
    def admitted(self) -> float:
        """
        Units taken by the calls this process admitted through this limiter: a counter.

        As `resilience.RateLimiter.admitted`, for this process's calls (the
        fleet's total is the sum over its processes): a call counts its cost
        when Redis grants it (at once or by reserving its turn), a waiter that
        gives up takes it back out, a `settle` Redis accepted moves it to the
        real cost; calls the local fallback admitted count too, the ``"admit"``
        fallback's count their estimate. `MetricsCollector.watch` reports it
        as ``rate_admitted``.
        """
        return self._admitted + self._local.admitted

    def describe(self) -> Description:
        """What this limiter does, for `resilience.Pipeline.explain`."""
        t = self._template
        wait = "as the deadline allows" if t.max_wait is None else describe_seconds(t.max_wait)
        io = "awaited, redis.asyncio" if self._kind.startswith("Async") else "on the server's clock"
        details = [
            f"bursts of up to {t.burst:g} units; a call waits its turn {wait}, "
            "else RateLimitedError",
            f"one Redis round trip per call, {io}",
        ]
        if t.settle is not None:
            details.append(
                f"settled after the call: {target_name(t.settle)}(result), one more round trip"
            )
        if t.adapt is not None:
            details.append(
                f"adaptive: a rate-limit answer lowers this process's pace (now "
                f"{t.current_rate:g}) and holds the fleet for its Retry-After (one round trip)"
            )
        details.append(
            f"Redis unreachable: {self._fallback}"
            + (f" ({self.share:g} of the rate)" if self._fallback == "local" else "")
        )
        return Description(
            title=(
                f"{self._kind} {self._name!r}: at most {t.rate:g} units per "
                f"{describe_seconds(t.per)}, for the whole fleet"
            ),
            details=details,
            sleeps=t.max_wait,
        )

    # --- the decision, I/O-free ----------------------------------------------------------

    @property
    def arguments(self) -> bool:
        """Whether `admit` receives the call's arguments: when *cost* is a callable."""
        return callable(self._template.cost)

    @property
    def results(self) -> bool:
        """Whether every result is seen: to settle it (*settle*) or judge it (*adapt*)."""
        return self._settle is not None or self._pace is not None

    def price(self, target: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> float:
        """The call's cost: the fixed one, or the callable's over the call's arguments."""
        template = self._template
        price = template.cost
        if not callable(price):
            return price
        if target is None:
            raise TypeError(
                "a rate limiter whose cost is a callable over the call's arguments cannot "
                "price a with-block: give it a fixed cost"
            )
        return template._priced(price(*args, **(kwargs or {})), "cost")

    def acquisition(self, cost: float) -> tuple[float, tuple[Any, ...], int]:
        """µs per unit charged now, the acquisition script's arguments, the pace's generation."""
        interval, text = self._args[0], self._args[2]
        pace = self._pace
        generation = 0
        if pace is not None:
            generation = pace._bucket.generation
            current = pace.current_rate
            if current < pace.rate:  # backing off: this process's units cost more time
                interval *= pace.rate / current
                text = repr(interval)
        longest = self._template.max_wait
        left = remaining()
        if left is not None:
            longest = max(left, 0.0) if longest is None else min(longest, max(left, 0.0))
        arguments = (
            text,
            repr(cost),
            self._args[1],
            -1 if longest is None else f"{longest * 1e6:.0f}",
            self._ttl,
        )
        return interval, arguments, generation

    def granted(
        self,
        reply: Reply,
        cost: float,
        interval: float,
        generation: int,
        target: object,
        now: float,
    ) -> Any:
        """What Redis's answer makes of the call: a permit, a `Wait`, or `RateLimitedError`."""
        admitted, wait, stamp = reply
        if not admitted:
            self._refuse(target, wait, cost)
        self._counted(cost)
        slot = _Slot(stamp, cost, now + wait, interval, generation)
        if wait <= 0:
            return slot
        emit(
            self._hooks,
            RateLimitWaited,
            name=self._name,
            target=None if target is None else target_name(target),
            delay=wait,
            cost=cost,
        )
        return Wait(wait, slot)

    def _counted(self, units: float) -> None:
        with self._count:
            self._admitted += units

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Settle the real cost from *result* (*settle*); *adapt* learns from it."""
        if type(permit) is _Slot:
            if result is not NO_RESULT:
                if self._settle is not None:
                    actual = self._template._settled(result)
                    if actual is not None and actual != permit.cost:
                        self.owe(permit, "charge", actual)
                pace = self._pace
                if pace is not None and pace.adapt.handles_results:  # type: ignore[union-attr]
                    verdict = pace.adapt.classify(result)  # type: ignore[union-attr]
                    if verdict.kind == "rate_limit":
                        self._limited(permit, verdict.retry_after, target)
                        return
            if self._pace is not None:
                self._pace._raise(cast(RateLimitPermit, permit), target)
        elif permit is _ADMITTED:
            pass
        else:
            self._local.on_success(permit, result, duration, target)

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """The units stay spent; with *adapt*, a rate-limit answer lowers the pace."""
        if type(permit) is _Slot:
            pace = self._pace
            if pace is not None:
                verdict = pace.adapt.classify(error)  # type: ignore[union-attr]
                if verdict.kind == "rate_limit":
                    self._limited(permit, verdict.retry_after, target)
        elif permit is not _ADMITTED:
            self._local.on_failure(permit, error, duration, target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """A caller cancelled before its turn gives its units back (exactly if it was last)."""
        if type(permit) is _Slot:
            if self._template.clock.now() < permit.start:
                self._counted(-permit.cost)
                self.owe(permit, "refund", 0.0)
        elif permit is not _ADMITTED:
            self._local.on_cancel(permit, error, duration, target)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """A wait that cannot end before the deadline gives its units back, refused."""
        permit = wait.permit
        if type(permit) is _Slot:
            self._counted(-permit.cost)
            self.owe(permit, "refund", 0.0)
            self._refuse(target, wait.seconds or 0.0, permit.cost)
        self._local.on_expired(wait, target)

    def _limited(self, slot: _Slot, retry_after: float | None, target: object) -> None:
        """A rate-limit answer: lower this process's pace; hold the fleet for its Retry-After."""
        pace = self._pace
        assert pace is not None
        pace._lower(cast(RateLimitPermit, slot), None, target)
        if retry_after is not None and retry_after > 0:
            # As rs.RateLimiter: from an empty bucket, a call of this cost fits once it passed.
            burst = self._template.burst
            ahead = retry_after * 1e6 + (burst - min(slot.cost, burst)) * self._args[0]
            self.owe(slot, "hold", ahead)

    def owe(self, slot: _Slot, what: str, value: float) -> None:  # pragma: no cover - abstract
        """Make (sync) or schedule (async) a round trip after the call: see `Todo`."""
        raise NotImplementedError

    def round_trip(self, slot: _Slot, what: str, value: float) -> tuple[Any, tuple[Any, ...]]:
        """The script and arguments of a round trip *slot* owes."""
        if what == "charge":
            extra = (value - slot.cost) * slot.interval
            return self._settle, (slot.stamp, repr(extra), self._ttl)
        if what == "refund":
            return self._refund, (slot.stamp, repr(slot.cost * slot.interval))
        return self._hold, (f"{value:.0f}", self._ttl)

    def answered(self, slot: _Slot, what: str, value: float, reply: Any) -> None:
        """Redis made the round trip: a charge (or refund) settled the permit's cost."""
        if what == "charge":
            self._counted(value - slot.cost)
            slot.cost = value
            if reply is not None:
                slot.stamp = reply

    def unreachable(
        self, target: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> Any:
        """Redis does not answer: the fallback decides (a permit, a `Wait`, or a refusal)."""
        fallback = self._fallback
        if fallback == "admit":
            if not callable(self._template.cost):
                self._counted(self._template.cost)
            return _ADMITTED
        if fallback == "reject":
            self._refuse(target, self._store.reconnect, 1.0)
        local = self._local
        if local.arguments and target is not None:
            return local.admit(target, args, kwargs or {})
        return local.admit(target)

    def _refuse(self, target: object, delay: float, cost: float) -> NoReturn:
        refuse(
            self._hooks,
            RateLimitedError(self._label, delay, cost),
            name=self._name,
            target=target,
            reason="rate_limited",
            retry_after=delay,
        )


@final
class RedisRateLimiter(SharedLimiter):
    """
    A `resilience.RateLimiter` whose bucket is kept in Redis: one limit for the whole fleet.

    Every process that uses a limiter of the same *name* (and store prefix)
    takes its units from one GCRA bucket: at most ``burst + rate * d / per``
    units start in any *d* seconds, fleet-wide, as `resilience.RateLimiter`
    documents for one process. A call that does not fit waits its turn (its
    slot is reserved at once, so the fleet is served first come, first
    served) if the wait lasts at most *max_wait* and ends before the
    deadline; otherwise it gets `resilience.RateLimitedError` at once.

    For async code, `AsyncRedisRateLimiter` with an `AsyncRedisStore` is the
    same limit over ``redis.asyncio`` (both share a bucket of the same name).

    **Cost.** One Lua script round trip per call (``EVALSHA``), decided on
    the Redis server's clock (``TIME``): the hosts' clocks are never
    compared, and a wait is a duration the caller sleeps on its own clock.
    No local pre-fetch of units: nothing is ever admitted beyond the bound,
    at the price of that round trip. A caller cancelled while it waits gives
    its units back with a second round trip, exactly if nobody reserved
    after it, else they are forfeited (the fleet stays under the limit).

    **Settled after.** With *settle* (a callable over the call's result
    returning its real cost), a call that succeeded is charged or refunded
    the difference to its estimate with one more round trip (a second Lua
    script, only for the calls settled): a charge moves the shared arrival
    time on (a debt the fleet's next callers wait out); a refund comes back
    only while the call's reservation is still the last one, else it is
    forfeited, as for a cancelled waiter. If *settle* raises, returns a bad
    cost, or Redis does not answer, the estimate stands.

    **Adaptive.** With *adapt* (an `ErrorClassifier`), a call whose outcome
    is a verdict of kind ``"rate_limit"`` (a 429) lowers the rate this
    process paces its calls at, as `resilience.RateLimiter` does (0.8 times
    itself, never below 1 % of *rate*; successes raise it back by 2 % of
    *rate* per window's worth of units): each of its units then takes
    ``rate / current_rate`` times as long in the shared bucket, so the whole
    fleet slows while this process backs off. A ``Retry-After`` on the
    answer holds the shared bucket (one more round trip): no call of the
    fleet starts before it has passed. `RateChanged` reports the changes.

    **Keys.** ``{prefix}:ratelimit:{<name>}``: one string, with a Redis
    Cluster hash tag on the name, expiring once its bucket is full again.

    **Redis unreachable.** *fallback* decides: ``"local"`` (default) limits
    this process alone to *share* of the rate and burst with a
    `resilience.RateLimiter` of its own; ``"admit"`` lets every call through;
    ``"reject"`` refuses every call with `resilience.RateLimitedError`. The
    limiter emits `StoreUnavailable` once, tries Redis again every
    ``store.reconnect`` seconds and emits `StoreRecovered` when it answers.

    Args:
        name: The limit's shared identity (no braces). Required.
        store: The `RedisStore` holding it. Required.
        rate: Units per *per* seconds, for the fleet (a number > 0). Required.
        per: The window, in seconds (a number or a `datetime.timedelta`).
            Default: 60.0.
        burst: Units that may go at once after a quiet spell. Default: *rate*.
        cost: Units a call takes: a number > 0, or a callable over the call's
            arguments. Default: 1.
        settle: A callable over a call's result returning its real cost, or
            `None`. Default: `None`.
        max_wait: Seconds a call may wait; 0: never; `None`: as long as the
            deadline allows. Default: `None`.
        adapt: What tells a rate-limit answer (verdict kind ``"rate_limit"``):
            an `ErrorClassifier` (`resilience.transient`), or `None` for a
            fixed rate. Default: `None`.
        fallback: ``"local"``, ``"admit"`` or ``"reject"``. Default: ``"local"``.
        share: The part of *rate* and *burst* this process takes alone while
            Redis is unreachable (``"local"``), in (0, 1]; with *n* processes,
            ``1 / n`` keeps the fleet under the limit. Default: 1.0.
        hooks: Callables receiving this limiter's events, before the global hooks.
        clock: What waits sleep on, and the local fallback's time. Default:
            the system clock.

    Raises:
        TypeError: On an argument of the wrong type (*store* not a `RedisStore`).
        ValueError: On an out-of-range value, as `resilience.RateLimiter`
            says, a *fallback* not among the three, or a *share* outside (0, 1].

    .. versionadded:: 0.2.0
    """

    __slots__ = ()

    _kind = "RedisRateLimiter"

    def __init__(
        self,
        *,
        name: str,
        store: RedisStore,
        rate: float,
        per: float | timedelta = 60.0,
        burst: float | None = None,
        cost: float | Callable[..., float] = 1,
        settle: Callable[[Any], float] | None = None,
        max_wait: float | timedelta | None = None,
        adapt: object = None,
        fallback: Fallback = "local",
        share: float = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(store, RedisStore):
            raise TypeError(
                "store must be a RedisStore (for an AsyncRedisStore, use AsyncRedisRateLimiter), "
                f"got {type(store).__name__}: {store!r}"
            )
        super().__init__(
            name=name,
            store=store,
            rate=rate,
            per=per,
            burst=burst,
            cost=cost,
            settle=settle,
            max_wait=max_wait,
            adapt=adapt,
            fallback=fallback,
            share=share,
            hooks=hooks,
            clock=clock,
        )

    @property
    def store(self) -> RedisStore:
        """The `RedisStore` holding it."""
        return cast(RedisStore, self._store)

    def admit(
        self, target: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, /
    ) -> Any:
        """
        Take the call's units in Redis (one round trip), or reserve them and return a `Wait`.

        Raises:
            RateLimitedError: If the wait would be longer than *max_wait* or
                end past the deadline (or Redis is unreachable and *fallback*
                is ``"reject"``).
        """
        cost = self._template.cost
        if callable(cost):
            cost = self.price(target, args, kwargs)
        link = self._link
        now = self._template.clock.now()
        if link.skip(now):
            return self.unreachable(target, args, kwargs)
        if self._pace is None:  # `acquisition`, inlined for a fixed rate
            interval, generation = self._args[0], 0
            longest = self._template.max_wait
            left = remaining()
            if left is not None:
                longest = max(left, 0.0) if longest is None else min(longest, max(left, 0.0))
            arguments: tuple[Any, ...] = (
                self._args[2],
                repr(cost),
                self._args[1],
                -1 if longest is None else f"{longest * 1e6:.0f}",
                self._ttl,
            )
        else:
            interval, arguments, generation = self.acquisition(cost)
        epoch = link.epoch
        try:
            reply = self._script(keys=self._key, args=arguments)
            admitted, wait = int(reply[0]) == 1, int(reply[1]) / 1e6
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, self._fallback)
            return self.unreachable(target, args, kwargs)
        link.answered(epoch)
        if admitted and wait <= 0:  # the common case, inlined: admitted at once
            with self._count:
                self._admitted += cost
            return _Slot(reply[2], cost, now, interval, generation)
        return self.granted(
            (admitted, wait, reply[2] if admitted else None),
            cost,
            interval,
            generation,
            target,
            now,
        )

    def owe(self, slot: _Slot, what: str, value: float) -> None:
        """Make the round trip at once: a charge or refund that fails leaves things as they are."""
        script, arguments = self.round_trip(slot, what, value)
        try:
            reply = script(keys=self._key, args=arguments)
        except _REDIS_ERRORS:  # the estimate stands; refunded units stay spent
            return
        self.answered(slot, what, value, reply)


RedisRateLimiter.__module__ = "resilience.integrations.redis"
