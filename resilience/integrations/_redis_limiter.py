"""
RedisRateLimiter: one rate limit for a whole fleet, kept in Redis (re-exported by `.redis`).

The same GCRA as `resilience.RateLimiter`, with its one number (the
theoretical arrival time, in microseconds of the Redis server's clock) in a
Redis key, decided by one Lua script per acquisition on the server's ``TIME``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Final, NoReturn, final

from resilience import (
    Clock,
    Description,
    Hook,
    Pipeline,
    RateLimitedError,
    RateLimiter,
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

_FALLBACKS: Final = ("local", "admit", "reject")


@final
class _Slot:
    """A permit of the shared limit: the arrival time it set (as Redis holds it) and its cost."""

    __slots__ = ("cost", "stamp", "start")

    def __init__(self, stamp: bytes, cost: float, start: float) -> None:
        self.stamp = stamp
        self.cost = cost
        self.start = start  # when the call may start, on the limiter's clock


_ADMITTED: Final[Any] = object()
"""The permit of a call admitted by the "admit" fallback."""


class RedisRateLimiter(GatePolicy):
    """
    A `resilience.RateLimiter` whose bucket is kept in Redis: one limit for the whole fleet.

    Every process that uses a limiter of the same *name* (and store prefix)
    takes its units from one GCRA bucket: at most ``burst + rate * d / per``
    units start in any *d* seconds, fleet-wide, as `resilience.RateLimiter`
    documents for one process. A call that does not fit waits its turn (its
    slot is reserved at once, so the fleet is served first come, first
    served) if the wait lasts at most *max_wait* and ends before the
    deadline; otherwise it gets `resilience.RateLimitedError` at once.

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
        fallback: ``"local"``, ``"admit"`` or ``"reject"``. Default: ``"local"``.
        share: The part of *rate* and *burst* this process takes alone while
            Redis is unreachable (``"local"``), in (0, 1]; with *n* processes,
            ``1 / n`` keeps the fleet under the limit. Default: 1.0.
        hooks: Callables receiving this limiter's events, before the global hooks.
        clock: What waits sleep on, and the local fallback's time. Default:
            the system clock.

    Raises:
        TypeError: On an argument of the wrong type.
        ValueError: On an out-of-range value, as `resilience.RateLimiter`
            says, a *fallback* not among the three, or a *share* outside (0, 1].

    .. versionadded:: 0.2.0
    """

    __slots__ = (
        "_args",
        "_fallback",
        "_hooks",
        "_key",
        "_label",
        "_link",
        "_local",
        "_name",
        "_pipeline",
        "_refund",
        "_script",
        "_settle",
        "_store",
        "_template",
        "share",
    )

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
        fallback: Fallback = "local",
        share: float = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._name = _check_name("rate limiter", name)
        if not isinstance(store, RedisStore):
            raise TypeError(f"store must be a RedisStore, got {type(store).__name__}: {store!r}")
        if fallback not in _FALLBACKS:
            raise ValueError(f"fallback must be 'local', 'admit' or 'reject', got {fallback!r}")
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise TypeError(f"share must be a number in (0, 1], got {type(share).__name__}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self._hooks = to_hooks(hooks)
        # The limiter's settings, checked as RateLimiter checks them (the errors name them).
        template = RateLimiter(
            rate=rate,
            per=per,
            burst=burst,
            cost=cost,
            settle=settle,
            max_wait=max_wait,
            name=name,
            clock=clock,
        )
        _bounded_seconds("per", template.per)
        if template.max_wait is not None:
            _bounded_seconds("max_wait", template.max_wait, zero=True)
        self._template = template
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
            name=name,
            hooks=self._hooks,
            clock=clock,
        )
        self.share = share
        self._store = store
        self._fallback = fallback
        self._label = name
        self._key = (f"{store.prefix}:ratelimit:{{{name}}}",)
        self._script = store.client.register_script(_LUA_ACQUIRE)
        self._refund = store.client.register_script(_LUA_REFUND)
        self._settle = None if settle is None else store.client.register_script(_LUA_SETTLE)
        interval = template.per * 1e6 / template.rate  # µs per unit
        self._args = (repr(interval), repr(template.burst * interval))
        self._link = _Link(name, self._hooks, clock.now, store.reconnect)
        object.__setattr__(self, "_pipeline", Pipeline((self,)))  # the slot, not the property

    def __repr__(self) -> str:
        t = self._template
        return (
            f"RedisRateLimiter(name={self._name!r}, rate={t.rate:g}, per={t.per:g}, "
            f"burst={t.burst:g}, fallback={self._fallback!r})"
        )

    # --- settings ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The limit's shared identity."""
        return self._name

    @property
    def store(self) -> RedisStore:
        """The `RedisStore` holding it."""
        return self._store

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

    def describe(self) -> Description:
        """What this limiter does, for `resilience.Pipeline.explain`."""
        t = self._template
        wait = "as the deadline allows" if t.max_wait is None else describe_seconds(t.max_wait)
        return Description(
            title=(
                f"RedisRateLimiter {self._name!r}: at most {t.rate:g} units per "
                f"{describe_seconds(t.per)}, for the whole fleet"
            ),
            details=[
                f"bursts of up to {t.burst:g} units; a call waits its turn {wait}, "
                "else RateLimitedError",
                "one Redis round trip per call, on the server's clock",
                *(
                    []
                    if t.settle is None
                    else [
                        f"settled after the call: {target_name(t.settle)}(result), "
                        "one more round trip"
                    ]
                ),
                f"Redis unreachable: {self._fallback}"
                + (f" ({self.share:g} of the rate)" if self._fallback == "local" else ""),
            ],
            sleeps=t.max_wait,
        )

    # --- the gate ---------------------------------------------------------------------

    @property
    def arguments(self) -> bool:
        """Whether `admit` receives the call's arguments: when *cost* is a callable."""
        return callable(self._template.cost)

    @property
    def results(self) -> bool:
        """Whether every result is seen: to settle it (*settle*)."""
        return self._settle is not None

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
        template = self._template
        price = template.cost
        if callable(price):
            if target is None:
                raise TypeError(
                    "a rate limiter whose cost is a callable over the call's arguments cannot "
                    "price a with-block: give it a fixed cost"
                )
            cost = template._priced(price(*args, **(kwargs or {})), "cost")
        else:
            cost = price
        link = self._link
        now = template.clock.now()
        if link.skip(now):
            return self._unreachable(target, args, kwargs)
        longest = template.max_wait
        left = remaining()
        if left is not None:
            longest = max(left, 0.0) if longest is None else min(longest, max(left, 0.0))
        epoch = link.epoch
        try:
            reply = self._script(
                keys=self._key,
                args=(
                    self._args[0],
                    repr(cost),
                    self._args[1],
                    -1 if longest is None else f"{longest * 1e6:.0f}",
                    math.ceil(self._store.reconnect * 1000),
                ),
            )
            admitted, wait = int(reply[0]), int(reply[1]) / 1e6
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, self._fallback)
            return self._unreachable(target, args, kwargs)
        link.answered(epoch)
        if not admitted:
            self._refuse(target, wait, cost)
        slot = _Slot(reply[2], cost, now + wait)
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

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Settle the real cost from *result* (*settle*): one more round trip."""
        if type(permit) is _Slot:
            if self._settle is not None and result is not NO_RESULT:
                actual = self._template._settled(result)
                if actual is not None and actual != permit.cost:
                    self._charge(permit, actual)
        elif permit is not _ADMITTED:
            self._local.on_success(permit, result, duration, target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """A caller cancelled before its turn gives its units back (exactly if it was last)."""
        if type(permit) is _Slot:
            if self._template.clock.now() < permit.start:
                self._give_back(permit)
        elif permit is not _ADMITTED:
            self._local.on_cancel(permit, error, duration, target)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """A wait that cannot end before the deadline gives its units back, refused."""
        permit = wait.permit
        if type(permit) is _Slot:
            self._give_back(permit)
            self._refuse(target, wait.seconds or 0.0, permit.cost)
        self._local.on_expired(wait, target)

    # --- the slow paths ---------------------------------------------------------------

    def _charge(self, slot: _Slot, actual: float) -> None:
        """Charge (> estimate) or refund (< estimate, if still the last) the difference."""
        interval = float(self._args[0])
        extra = (actual - slot.cost) * interval
        script = self._settle
        assert script is not None
        try:
            stamp = script(
                keys=self._key,
                args=(slot.stamp, repr(extra), math.ceil(self._store.reconnect * 1000)),
            )
        except _REDIS_ERRORS:  # the estimate stands
            return
        slot.cost = actual
        if stamp is not None:
            slot.stamp = stamp

    def _give_back(self, slot: _Slot) -> None:
        interval = float(self._args[0])
        try:
            self._refund(keys=self._key, args=(slot.stamp, repr(slot.cost * interval)))
        except _REDIS_ERRORS:  # the units stay spent: the fleet stays under the limit
            pass

    def _unreachable(
        self, target: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> Any:
        fallback = self._fallback
        if fallback == "admit":
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


RedisRateLimiter.__module__ = "resilience.integrations.redis"
