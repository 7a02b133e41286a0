"""
The fleet-wide rate limiter and retry budget over ``redis.asyncio``: no round trip holds the loop.

`AsyncRedisRateLimiter` and `AsyncRedisRetryBudget` are `RedisRateLimiter`'s
and `RedisRetryBudget`'s twins for an `AsyncRedisStore`: the same keys, Lua
scripts and reply parsing (those of ``_redis_limiter.py`` and ``redis.py``),
so sync and async processes with the same prefix and name share one limit or
one budget.

The limiter is an awaiting gate (`resilience.engine.AwaitingGate`), as
`AsyncRetryAfterPause` and the async breaker are: its ``aadmit`` awaits the
acquisition script in the call's own task and turns the reply into a permit or
a `Wait` (the engine waits it out, runs the call and reports the outcome); its
``aon_success`` and ``aon_failure`` await the round trips the outcome owes (a
settle's charge or refund, a Retry-After hold). A cancelled call, or a wait
that expires, cannot await: its refund runs in a task of its own, which a
cancel scope cannot cancel.

The budget's `aspend` is awaited by an async `resilience.Retry` (its
``spend`` is a `TypeError`: only an awaited round trip decides).

redis-py's asyncio client runs under asyncio only (anyio's asyncio backend
included): under trio a round trip raises a `RuntimeError` that says so.
Imported by ``resilience.integrations.redis``; needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Final, NoReturn, final

from resilience import Clock, Hook
from resilience.engine import SYSTEM_CLOCK, Wait

from ._redis_async import AsyncRedisStore, _asyncio_only, _cancellations, _swallowed
from ._redis_limiter import SharedLimiter, _Slot, parse_reply
from .redis import _REDIS_ERRORS, Fallback, _SharedBudget

__all__ = ["AsyncRedisRateLimiter", "AsyncRedisRetryBudget"]

Runner = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _check_store(kind: str, twin: str, store: object) -> None:
    if not isinstance(store, AsyncRedisStore):
        raise TypeError(
            f"store must be an AsyncRedisStore (for a RedisStore, use {twin}), "
            f"got {type(store).__name__}: {store!r}"
        )


# --- the rate limiter ----------------------------------------------------------------------


# Refunds owed after a cancellation or an expired wait, run in tasks of their own: kept until done.
_SHIELDED: Final[set[asyncio.Task[None]]] = set()


@final
class AsyncRedisRateLimiter(SharedLimiter):
    """
    `RedisRateLimiter` for async code: one fleet-wide rate limit over ``redis.asyncio``.

    The same limit as `RedisRateLimiter` (see it for the guarantees: the
    bound, first come first served, *max_wait* and the deadline,
    `resilience.RateLimitedError` with ``retry_after``, *settle*, *adapt*,
    the fallbacks and their events), for coroutine functions, async generator
    functions and ``async with`` blocks; every round trip is awaited in the
    calling task, so the event loop runs other tasks meanwhile. It shares the
    key, the scripts and the bucket of a `RedisRateLimiter` with the same
    name and store prefix. Decorating a sync function, or ``with``, is a
    `TypeError`: use `RedisRateLimiter` with a `RedisStore` there.

    **Cost.** One awaited round trip per call (the acquisition script); one
    more for a call settled to another cost and for a rate-limit answer with
    ``Retry-After`` under *adapt* (the hold), awaited after the call, and
    for a waiter cancelled before its turn (its refund, in a task of its
    own). A call cancelled while its acquisition is in flight may lose the
    units Redis granted it (forfeited: the fleet stays under the limit).

    Args:
        name: The limit's shared identity (no braces). Required.
        store: The `AsyncRedisStore` holding it. Required.
        rate: Units per *per* seconds, for the fleet (a number > 0). Required.
        per: The window, in seconds. Default: 60.0.
        burst: Units that may go at once after a quiet spell. Default: *rate*.
        cost: Units a call takes: a number > 0, or a callable over the call's
            arguments. Default: 1.
        settle: A callable over a call's result returning its real cost, or
            `None`. Default: `None`.
        max_wait: Seconds a call may wait; 0: never; `None`: as long as the
            deadline allows. Default: `None`.
        adapt: What tells a rate-limit answer (an `ErrorClassifier`), or
            `None` for a fixed rate. Default: `None`.
        fallback: ``"local"``, ``"admit"`` or ``"reject"``. Default: ``"local"``.
        share: The part of *rate* and *burst* this process takes alone while
            Redis is unreachable (``"local"``), in (0, 1]. Default: 1.0.
        hooks: Callables receiving this limiter's events, before the global hooks.
        clock: What waits sleep on, and the local fallback's time. Default:
            the system clock.

    Raises:
        TypeError: On an argument of the wrong type (*store* not an `AsyncRedisStore`).
        ValueError: On an out-of-range value, as `RedisRateLimiter` says.

    .. versionadded:: 0.2.0
    """

    __slots__ = ()

    _kind = "AsyncRedisRateLimiter"

    def __init__(
        self,
        *,
        name: str,
        store: AsyncRedisStore,
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
        _check_store("AsyncRedisRateLimiter", "RedisRateLimiter", store)
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
    def store(self) -> AsyncRedisStore:
        """The `AsyncRedisStore` holding it."""
        return self._store  # type: ignore[no-any-return]

    # --- an awaiting gate (resilience.engine.AwaitingGate): the round trips, awaited ----

    @property
    def awaits(self) -> bool:
        """True: the engine awaits `aadmit` and the outcomes (each may make a round trip)."""
        return True

    def sync_refusal(self, what: str) -> str:
        """The message of the `TypeError` that sync use raises: use `RedisRateLimiter`."""
        return (
            "AsyncRedisRateLimiter talks to Redis with redis.asyncio: it protects coroutine "
            f"and async generator functions and `async with` blocks, got {what}; use "
            "RedisRateLimiter with a RedisStore for sync code (they share a limit of the same name)"
        )

    def admit(
        self, target: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, /
    ) -> NoReturn:
        """
        Refuse: the limiter decides with an awaited round trip (`aadmit`).

        Raises:
            RuntimeError: Always (the engine awaits `aadmit` instead).
        """
        raise RuntimeError(
            "AsyncRedisRateLimiter admits with an awaited round trip: the engine awaits "
            "aadmit() (decorate, compose, acall or `async with`), never admit()"
        )

    async def aadmit(
        self, target: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, /
    ) -> Any:
        """
        Take the call's units: one awaited acquisition script; a permit, or a `Wait` for room.

        Raises:
            RateLimitedError: If the wait would be longer than *max_wait* or
                end past the deadline (or Redis is unreachable and *fallback*
                is ``"reject"``).
            RuntimeError: Under trio (redis.asyncio runs under asyncio only).
        """
        _asyncio_only("AsyncRedisRateLimiter")
        cost = self.price(target, args, kwargs)
        link = self._link
        now = self._template.clock.now()
        if link.skip(now):
            return self.unreachable(target, args, kwargs)
        interval, arguments, generation = self.acquisition(cost)
        epoch = link.epoch
        task, cancelling = _cancellations()
        try:
            reply = parse_reply(await self._script(keys=self._key, args=arguments))
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, self._fallback)
            return self.unreachable(target, args, kwargs)
        link.answered(epoch)
        if _swallowed(task, cancelling):
            if reply[0]:  # give back what Redis reserved for a call that will not run
                slot = _Slot(reply[2], cost, now, interval, generation)
                self.owe(slot, "refund", 0.0)
                refund = self._spawn(slot)
                if refund is not None:
                    await asyncio.shield(refund)
            raise asyncio.CancelledError
        return self.granted(reply, cost, interval, generation, target, now)

    async def aon_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Learn the result (see `RedisRateLimiter`), then make the round trips it owes."""
        self.on_success(permit, result, duration, target)
        if type(permit) is _Slot and permit.todo is not None:
            await self._pay(permit)

    async def aon_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """Learn the failure (see `RedisRateLimiter`), then make the round trips it owes."""
        self.on_failure(permit, error, duration, target)
        if type(permit) is _Slot and permit.todo is not None:
            await self._pay(permit)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """A caller cancelled before its turn gives its units back, in a task of its own."""
        super().on_cancel(permit, error, duration, target)
        if type(permit) is _Slot and permit.todo is not None:
            self._spawn(permit)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """A wait that cannot end before the deadline gives its units back (in a task), refused."""
        permit = wait.permit
        try:
            super().on_expired(wait, target)
        finally:
            if type(permit) is _Slot and permit.todo is not None:
                self._spawn(permit)

    def owe(self, slot: _Slot, what: str, value: float) -> None:
        """Schedule the round trip: awaited after the outcome, or run in a task of its own."""
        if slot.todo is None:
            slot.todo = [(what, value)]
        else:
            slot.todo.append((what, value))

    async def _pay(self, slot: _Slot) -> None:
        """Make the round trips *slot* owes (one that fails leaves things as they are)."""
        todo, slot.todo = slot.todo, None
        task, cancelling = _cancellations()
        for what, value in todo or ():
            script, arguments = self.round_trip(slot, what, value)
            try:
                reply = await script(keys=self._key, args=arguments)
            except _REDIS_ERRORS:
                continue
            self.answered(slot, what, value, reply)
        if _swallowed(task, cancelling):
            raise asyncio.CancelledError

    def _spawn(self, slot: _Slot) -> asyncio.Task[None] | None:
        """Pay what *slot* owes in a task of its own (a cancelled task cannot wait for Redis)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to run it: the units are forfeited
            return None
        task = loop.create_task(self._pay(slot))
        _SHIELDED.add(task)
        task.add_done_callback(_SHIELDED.discard)
        return task


# --- the retry budget ------------------------------------------------------------------------


@final
class AsyncRedisRetryBudget(_SharedBudget):
    """
    `RedisRetryBudget` for async code: the fleet-wide retry budget over ``redis.asyncio``.

    The same budget as `RedisRetryBudget` (see it for the window, the
    approximation, the key and the local fallback with its events), decided
    by an awaited round trip: an async `resilience.Retry` (coroutine
    functions, async generator functions, ``async for attempt in
    retry.attempts()`` with ``async with attempt:``) awaits `aspend` before
    each retry. `first`, on the success path, is a local counter, as for the
    sync budget. It shares the key and the window of a `RedisRetryBudget`
    with the same name and store prefix:

    ```python
    budget = AsyncRedisRetryBudget(name="saas-api", store=fleet_async, ratio=0.1)
    retry = rs.Retry(on=rs.transient, budget=budget)   # decorate coroutine functions
    ```

    A sync Retry cannot await it: decorating a sync function (or a sync
    generator function) with a Retry that holds it is a `TypeError`, and so
    is `spend`; use `RedisRetryBudget` with a `RedisStore` there.

    Args:
        name: The budget's shared identity (no braces). Required.
        store: The `AsyncRedisStore` holding it. Required.
        ratio: Retries allowed per first attempt, a number >= 0. Default: 0.1.
        minimum: Retries allowed per window whatever the traffic (fleet-wide),
            an int >= 0. Default: 10.
        per: The window, in seconds, from 0.01 to 1e9. Default: 1.0.
        hooks: Callables receiving this budget's events (`StoreUnavailable`,
            `StoreRecovered`), before the global hooks.
        clock: Where time comes from. Default: the system clock.

    Raises:
        TypeError: A parameter has the wrong type (*store* not an `AsyncRedisStore`).
        ValueError: As `RedisRetryBudget` says.

    .. versionadded:: 0.2.0
    """

    __slots__ = ()

    _kind = "AsyncRedisRetryBudget"

    def __init__(
        self,
        *,
        name: str,
        store: AsyncRedisStore,
        ratio: float = 0.1,
        minimum: int = 10,
        per: float | timedelta = 1.0,
        hooks: Iterable[Hook] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_store("AsyncRedisRetryBudget", "RedisRetryBudget", store)
        super().__init__(
            name=name, store=store, ratio=ratio, minimum=minimum, per=per, hooks=hooks, clock=clock
        )

    @property
    def store(self) -> AsyncRedisStore:
        """The `AsyncRedisStore` holding it."""
        return self._store  # type: ignore[no-any-return]

    def spend(self) -> bool:
        """
        Refuse: this budget decides with an awaited round trip (`aspend`).

        Raises:
            TypeError: Always, naming what to use instead.
        """
        raise TypeError(
            "AsyncRedisRetryBudget decides with a redis.asyncio round trip that only an async "
            "Retry awaits (aspend; in `async for attempt in retry.attempts()`, use "
            "`async with attempt:`); for sync code use RedisRetryBudget with a RedisStore "
            "(they share a budget of the same name)"
        )

    async def aspend(self) -> bool:
        """
        Return whether a retry may happen now, fleet-wide, counting it if so (see `Budget.spend`).

        One awaited Lua script round trip (none while Redis is down, between
        reconnect attempts).

        Raises:
            RuntimeError: Under trio (redis.asyncio runs under asyncio only).
        """
        _asyncio_only("AsyncRedisRetryBudget")
        now, new, arguments = self.take()
        link = self._link
        if link.skip(now):
            return self.fallback(new)
        epoch = link.epoch
        task, cancelling = _cancellations()
        try:
            reply = await self._script(keys=self._key, args=arguments)
            allowed = int(reply[0]) == 1
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, "local")
            return self.fallback(new)
        link.answered(epoch)
        if _swallowed(task, cancelling):
            raise asyncio.CancelledError  # the retry it counted is forfeited
        return allowed


for _cls in (AsyncRedisRateLimiter, AsyncRedisRetryBudget):
    _cls.__module__ = "resilience.integrations.redis"
del _cls
