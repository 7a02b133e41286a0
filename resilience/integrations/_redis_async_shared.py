"""
The fleet-wide rate limiter and retry budget over ``redis.asyncio``: no round trip holds the loop.

`AsyncRedisRateLimiter` and `AsyncRedisRetryBudget` are `RedisRateLimiter`'s
and `RedisRetryBudget`'s twins for an `AsyncRedisStore`: the same keys, Lua
scripts and reply parsing (those of ``_redis_limiter.py`` and ``redis.py``),
so sync and async processes with the same prefix and name share one limit or
one budget.

The limiter keeps the engine's gate sync and I/O-free, as `AsyncRetryAfterPause`
does: its runner awaits the acquisition script first, in the call's own task,
and hands the reply to the gate's `admit` (through a context variable: the
engine calls `admit` before the runner's first suspension); the engine then
waits, runs the call and reports its outcome as for any gate. The round trips
the outcome owes (a settle's charge or refund, a cancelled waiter's refund, a
Retry-After hold) are awaited after the call; after a cancellation, in a
shielded task of their own, so that a cancel scope cannot cancel the refund.

The budget's `aspend` is awaited by an async `resilience.Retry` (its
``spend`` is a `TypeError`: only an awaited round trip decides).

redis-py's asyncio client runs under asyncio only (anyio's asyncio backend
included): under trio a round trip raises a `RuntimeError` that says so.
Imported by ``resilience.integrations.redis``; needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Callable, Iterable
from datetime import timedelta
from typing import Any, Final, NoReturn, final

from resilience import Clock, Hook, Shape
from resilience.engine import SYSTEM_CLOCK, Wait, astep, bind_gate

from ._redis_async import AsyncRedisStore, _asyncio_only, _cancellations, _swallowed
from ._redis_limiter import Reply, SharedLimiter, _Slot, parse_reply
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


@final
class _Acquired:
    """One call's acquisition, from the awaited round trip to the gate's `admit` and after."""

    __slots__ = ("cost", "generation", "interval", "now", "reply", "slot")

    def __init__(self, cost: float, now: float) -> None:
        self.cost = cost
        self.now = now
        self.reply: Reply | None = None  # None: Redis did not answer (the fallback decides)
        self.interval = 0.0
        self.generation = 0
        self.slot: _Slot | None = None  # the permit Redis granted, once admitted


# The acquisition of the call whose runner is about to enter the engine's gate.
_ACQUIRED: contextvars.ContextVar[_Acquired | None] = contextvars.ContextVar(
    "resilience_redis_acquired", default=None
)
# The acquisitions of the `async with` blocks running in this context, innermost last.
_BLOCKS: contextvars.ContextVar[tuple[tuple[object, _Acquired], ...]] = contextvars.ContextVar(
    "resilience_redis_blocks", default=()
)
# Round trips owed after a cancellation, run in tasks of their own: kept until done.
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
    more for a call settled to another cost, for a waiter cancelled before
    its turn (its refund) and for a rate-limit answer with ``Retry-After``
    under *adapt* (the hold), awaited after the call. A call cancelled while
    its acquisition is in flight may lose the units Redis granted it
    (forfeited: the fleet stays under the limit).

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

    # --- the round trips, awaited around the engine's gate -----------------------------

    async def _acquire(
        self, target: object, args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> _Acquired:
        """Before the gate: the acquisition script (unless Redis is known to be down)."""
        _asyncio_only("AsyncRedisRateLimiter")
        cost = self.price(target, args, kwargs)
        link = self._link
        now = self._template.clock.now()
        acquired = _Acquired(cost, now)
        if link.skip(now):
            return acquired
        acquired.interval, arguments, acquired.generation = self.acquisition(cost)
        epoch = link.epoch
        task, cancelling = _cancellations()
        try:
            reply = parse_reply(await self._script(keys=self._key, args=arguments))
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            link.lost(exc, self._fallback)
            return acquired
        link.answered(epoch)
        if _swallowed(task, cancelling):
            if reply[0]:  # give back what Redis reserved for a call that will not run
                acquired.slot = _Slot(reply[2], cost, now, acquired.interval, acquired.generation)
                self.owe(acquired.slot, "refund", 0.0)
                await self._after(acquired, True)
            raise asyncio.CancelledError
        acquired.reply = reply
        return acquired

    def admit(
        self, target: object, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, /
    ) -> Any:
        """
        Turn the reply awaited before the gate into a permit or a `Wait` (no I/O).

        Raises:
            RateLimitedError: If the wait would be longer than *max_wait* or
                end past the deadline (or Redis is unreachable and *fallback*
                is ``"reject"``).
            RuntimeError: If no acquisition was awaited for this call (the
                engine's gate was driven by something else than this limiter's
                own runner).
        """
        acquired = _ACQUIRED.get()
        if acquired is None:
            raise RuntimeError(
                "AsyncRedisRateLimiter.admit() runs only inside the limiter's own runner "
                "(decorate, compose, acall or `async with`), after its awaited round trip"
            )
        _ACQUIRED.set(None)  # one admission per acquisition
        if acquired.reply is None:
            return self.unreachable(target, args, kwargs)
        permit = self.granted(
            acquired.reply,
            acquired.cost,
            acquired.interval,
            acquired.generation,
            target,
            acquired.now,
        )
        slot = permit.permit if type(permit) is Wait else permit
        acquired.slot = slot if type(slot) is _Slot else None
        return permit

    def owe(self, slot: _Slot, what: str, value: float) -> None:
        """Schedule the round trip: the runner awaits it after the call."""
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

    async def _after(self, acquired: _Acquired, cancelled: bool) -> None:
        """After the call: pay what its permit owes; after a cancellation, shielded."""
        slot = acquired.slot
        if slot is None or slot.todo is None:
            return
        if not cancelled:
            await self._pay(slot)
            return
        task = asyncio.get_running_loop().create_task(self._pay(slot))
        _SHIELDED.add(task)
        task.add_done_callback(_SHIELDED.discard)
        await asyncio.shield(task)

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner for a coroutine or async generator function (see `resilience.Policy`).

        Raises:
            TypeError: If *shape* is sync: use `RedisRateLimiter` with a `RedisStore`.
        """
        if shape is Shape.SYNC or shape is Shape.GEN:
            raise TypeError(
                "AsyncRedisRateLimiter talks to Redis with redis.asyncio: it protects coroutine "
                f"and async generator functions, got a {shape.value}; use RedisRateLimiter with "
                "a RedisStore for sync code (they share a limit of the same name)"
            )
        runner = bind_gate(self, inner, shape)
        acquire, settle = self._acquire, self._after
        if shape is Shape.ASYNC:

            async def run(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                acquired = await acquire(fn, args, kwargs)
                token = _ACQUIRED.set(acquired)
                try:
                    result = await runner(fn, args, kwargs)
                except Exception:
                    _ACQUIRED.reset(token)
                    await settle(acquired, False)
                    raise
                except BaseException:
                    _ACQUIRED.reset(token)
                    await settle(acquired, True)
                    raise
                _ACQUIRED.reset(token)
                if acquired.slot is not None and acquired.slot.todo is not None:
                    await settle(acquired, False)
                return result

            return run

        async def stream(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> AsyncGenerator[Any, Any]:
            acquired = await acquire(fn, args, kwargs)
            it = runner(fn, args, kwargs)
            cancelled = False
            try:
                token = _ACQUIRED.set(acquired)
                try:
                    item = await it.__anext__()  # the engine admits the stream here
                finally:
                    _ACQUIRED.reset(token)
                while True:
                    sent: Any = None
                    thrown: BaseException | None = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
                    item = await astep(it, sent, thrown)
            except StopAsyncIteration:
                return
            except BaseException as exc:
                cancelled = not isinstance(exc, Exception)
                raise
            finally:
                await it.aclose()
                await settle(acquired, cancelled)

        return stream

    async def __aenter__(self) -> AsyncRedisRateLimiter:
        """Take the block's units (one awaited round trip), waiting for room if need be."""
        acquired = await self._acquire(None, (), None)
        token = _ACQUIRED.set(acquired)
        try:
            await super().__aenter__()
        except BaseException as exc:
            _ACQUIRED.reset(token)
            await self._after(acquired, not isinstance(exc, Exception))
            raise
        _ACQUIRED.reset(token)
        _BLOCKS.set((*_BLOCKS.get(), (self, acquired)))
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        """Report the block's outcome, then make the round trips it owes."""
        blocks = _BLOCKS.get()
        acquired = None
        for index in range(len(blocks) - 1, -1, -1):
            if blocks[index][0] is self:
                acquired = blocks[index][1]
                _BLOCKS.set(blocks[:index] + blocks[index + 1 :])
                break
        try:
            await super().__aexit__(*exc_info)
        finally:
            if acquired is not None:
                exc = exc_info[1]
                await self._after(acquired, exc is not None and not isinstance(exc, Exception))

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "AsyncRedisRateLimiter is entered with `async with`; "
            "for `with`, use RedisRateLimiter with a RedisStore"
        )


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
