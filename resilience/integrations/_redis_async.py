"""
Shared circuits and pauses over ``redis.asyncio``: no round trip holds the event loop.

`AsyncRedisStore` is `resilience.integrations.redis.RedisStore`'s twin for a
``redis.asyncio`` client. Given to a `resilience.CircuitBreaker` as its
``store=``, it makes an `AsyncRedisCircuitStore`: the breaker's circuit in
Redis, whose round trips the breaker awaits (it is then an awaiting gate,
`resilience.engine.AwaitingGate`); given to an `AsyncRetryAfterPause`, the
shared pause. Each shares the keys, the Lua scripts and the reply parsing of
``redis.py`` with its sync twin (the circuit's logic is `_CircuitCore`, split
around its round trips), so sync and async processes (or parts of one
process) with the same prefix and name share one circuit, one pause.

The pause's decisions stay sync and I/O-free, on the local cache; its round
trips happen around them, awaited in the call's own task: before the call, a
read when the cache is stale; after it, the write of a pause the call
started. The circuit's decisions are themselves round trips (a probe is
claimed fleet-wide, a failure counted atomically), so they are awaited where
the sync store makes them. Same guarantees, fallbacks and events as the sync
store and pause.

redis-py's asyncio client runs under asyncio only (anyio's asyncio backend
included): under trio a round trip raises a `RuntimeError` that says so.
Imported by ``resilience.integrations.redis``; needs the ``redis`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import redis.asyncio
import redis.asyncio.retry
import redis.backoff

from resilience import CircuitPermit, Clock, Description, ErrorClassifier, Hook
from resilience.engine import (
    SYSTEM_CLOCK,
    check_clock,
    describe_seconds,
    fork_safe_lock,
    pipeline_field,
    rule_lines,
    to_classifier,
    to_hooks,
    to_seconds,
)

from .redis import (
    _LONGEST,
    _LUA_PAUSE,
    _LUA_PAUSE_READ,
    _NO_TRANSITIONS,
    _REDIS_ERRORS,
    _WITH_A_STORE,
    Fallback,
    _check_fallback,
    _check_pause_name,
    _check_prefix,
    _CircuitCore,
    _client_repr,
    _Link,
    _new_lease,
    _PauseGate,
    _Record,
    _Reply,
    _text,
    _to_expire,
    _to_max_pause,
    _to_max_wait,
    _to_probe_lease,
    _to_reconnect,
    _to_refresh,
)

if TYPE_CHECKING:
    from resilience import CircuitBreaker, CircuitRejection, CircuitState
    from resilience import CircuitTransition as Transition

__all__ = ["AsyncRedisCircuitStore", "AsyncRedisStore", "AsyncRetryAfterPause"]

Runner = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _check_async_client(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(getattr(value, "register_script", None)) or not (
        inspect.iscoroutinefunction(getattr(value, "execute_command", None))
    ):
        raise TypeError(
            "client must be a redis.asyncio.Redis client (for a synchronous redis.Redis, "
            f"use RedisStore), got {type(value).__module__}.{type(value).__name__}"
        )


@final
@attrs.frozen(kw_only=True)
class AsyncRedisStore:
    """
    Where a fleet keeps its shared circuits and pauses, for async code: a ``redis.asyncio`` client.

    `RedisStore`'s twin. Pass it as a `resilience.CircuitBreaker`'s ``store=``
    (it is the factory the breaker calls: the breaker then protects
    coroutine functions, async generator functions and ``async with``
    blocks, and awaits each round trip), as an `AsyncRetryAfterPause`'s
    ``store=``, and as an `AsyncRedisRateLimiter`'s or
    `AsyncRedisRetryBudget`'s. The same keys (``{prefix}:circuit:{<name>}``,
    ``{prefix}:pause:{<name>}``, ...), scripts and options as `RedisStore`: a
    sync breaker or pause and an async one with the same *prefix* and *name*
    share one circuit, one pause. Every round trip is awaited in the calling
    task: the event loop keeps running while Redis answers (or does not). It
    runs under asyncio (anyio's asyncio backend included), not trio.

    Args:
        client: A ``redis.asyncio.Redis`` client (positional). Required.
        prefix: The namespace of every key. Default: ``"resilience"``.
        refresh: Seconds a process may act on the state it last read before
            reading it again. ``0`` reads Redis on every call. Default: 0.25.
        reconnect: Seconds between attempts to reach Redis again while it is
            unreachable. Default: 1.0.
        fallback: What a circuit does while Redis is unreachable: ``"local"``,
            ``"admit"`` or ``"reject"``, as with `RedisStore`. Default: ``"local"``.
        probe_lease: Seconds a half-open probe holds its place (as with
            `RedisStore`). Default: 60.0.
        expire: Seconds a circuit's keys live after their last write (as with
            `RedisStore`). Default: 3600.0.

    Raises:
        TypeError: If *client* is not a ``redis.asyncio`` client, or an
            argument has the wrong type.
        ValueError: On an out-of-range value or an unknown *fallback*.

    .. versionadded:: 0.1.0
    """

    client: redis.asyncio.Redis = attrs.field(
        kw_only=False, validator=_check_async_client, repr=_client_repr
    )
    prefix: str = attrs.field(default="resilience", validator=_check_prefix)
    refresh: float = attrs.field(default=0.25, converter=_to_refresh)
    reconnect: float = attrs.field(default=1.0, converter=_to_reconnect)
    fallback: Fallback = attrs.field(default="local", validator=_check_fallback)
    probe_lease: float = attrs.field(default=60.0, converter=_to_probe_lease)
    expire: float = attrs.field(default=3600.0, converter=_to_expire)

    @classmethod
    def from_url(cls, url: str, /, *, timeout: float = 0.25, **options: Any) -> AsyncRedisStore:
        """
        Make a store with a ``redis.asyncio`` client for *url*: short timeouts, no retries.

        Args:
            url: A Redis URL (``redis://host:6379/0``, ``rediss://...``, ``unix://...``).
            timeout: Seconds: the client's socket and connect timeouts. Default: 0.25.
            options: `AsyncRedisStore` options (*prefix*, *refresh*, ...).
        """
        if not isinstance(url, str):
            raise TypeError(f"url must be a Redis URL (a str), got {type(url).__name__}")
        seconds = to_seconds("timeout", timeout)
        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
        )
        return cls(client, **options)

    def __call__(self, breaker: CircuitBreaker) -> AsyncRedisCircuitStore:
        """
        Make the shared store of *breaker*'s circuit (the breaker calls this once).

        Raises:
            ValueError: If the breaker has no usable name, or a *reset_timeout*
                longer than Redis can expire (about 30 years).
        """
        reset = breaker.reset_timeout
        if isinstance(reset, float):
            to_seconds("reset_timeout", reset, zero=True, maximum=_LONGEST, why=_WITH_A_STORE)
        return AsyncRedisCircuitStore(self, breaker)

    def circuit_key(self, name: str) -> str:
        """Return the key of the hash holding the circuit *name* (as `RedisStore`'s)."""
        return f"{self.prefix}:circuit:{{{name}}}"

    def pause_key(self, name: str) -> str:
        """Return the key that exists while the pause *name* lasts (as `RedisStore`'s)."""
        return f"{self.prefix}:pause:{{{name}}}"

    def budget_key(self, name: str) -> str:
        """Return the key of the hash holding the retry budget *name*'s window, as `RedisStore`."""
        return f"{self.prefix}:budget:{{{name}}}"


def _asyncio_only(kind: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"{kind} talks to Redis with redis.asyncio, which runs under asyncio only "
            "(anyio on its asyncio backend included), not under trio"
        ) from None


def _cancellations() -> tuple[asyncio.Task[Any] | None, int]:
    """The current task and its pending cancellations, read before a round trip."""
    task = asyncio.current_task()
    return task, 0 if task is None else task.cancelling()


def _swallowed(task: asyncio.Task[Any] | None, before: int) -> bool:
    """
    Whether a cancellation reached the task during a round trip that returned all the same.

    redis-py's asyncio client (with a socket timeout) lets a round trip return
    its reply when the task is cancelled while the reply is being read: the
    cancellation would be lost, and a cancelled call would go on to wait and
    run. The caller raises it again.
    """
    return task is not None and task.cancelling() > before


_BREAKER: Final = "A CircuitBreaker with an AsyncRedisStore"


@final
class AsyncRedisCircuitStore(_CircuitCore):
    """
    A `resilience.AsyncCircuitStore` in Redis: `RedisCircuitStore`'s twin for async code.

    Made by `AsyncRedisStore` when a breaker is constructed with
    ``store=AsyncRedisStore(...)``; not constructed directly. The breaker's
    ``name`` is the circuit's identity, shared with sync breakers of the same
    name and prefix.

    The same circuit logic as `RedisCircuitStore` (its cache, scripts, period
    ids and rollbacks, the opener's announcement, leased probes, fallbacks and
    events), with each round trip awaited: while the cache is fresh, a
    closed circuit admits calls and a success with nothing pending records
    nothing, without a round trip; a stale read, a failure, a probe or a
    transition is one awaited script. Differences, all due to awaiting:

    - a probe that ends without an outcome (cancelled, or an error the
      breaker does not count) returns its lease in a task of its own: a
      cancelled task cannot wait for Redis (if the loop ends first, the
      lease expires after *probe_lease*);
    - `snapshot` (`CircuitBreaker.state`) answers from the state last read,
      without a round trip;
    - a call cancelled during the round trip that admits it never runs,
      and the lease Redis may have granted it goes back (also when
      redis-py's asyncio client swallows the cancellation while it reads
      the reply: it is raised again);
    - a task that finds another task's read in flight answers from the
      state it replaces when it can (as threads do), else reads Redis too
      instead of waiting: each script is atomic, so this costs a round
      trip, never a decision.
    """

    __slots__ = ("_tasks",)

    sync_refusal: Final = (
        "for sync code, use a breaker with store=RedisStore(a redis.Redis client): "
        "both share the circuit of the same name and prefix"
    )
    """What to use in sync code instead (`resilience.AsyncCircuitStore`)."""

    def __init__(self, config: AsyncRedisStore, breaker: CircuitBreaker) -> None:
        super().__init__(config, breaker)
        self._tasks: set[asyncio.Task[object]] = set()  # probes' leases being returned

    async def _aeval(
        self, script: Any, extra: tuple[object, ...], opens: bool, cause: str = ""
    ) -> _Reply | None:
        """Run *script*, awaited; update the cache and return the reply; `None` if Redis failed."""
        _asyncio_only(_BREAKER)
        args, epoch, begun = self._begin(extra, opens, cause)
        try:
            reply = self._parse(await script(keys=self._keys, args=args))
        except _REDIS_ERRORS as exc:
            self._lost(exc)
            return None
        return self._accept(reply, epoch, begun)

    async def _aeval_or_cancelled(
        self, script: Any, extra: tuple[object, ...], opens: bool, cause: str = ""
    ) -> _Reply | None:
        """`_aeval`, raising again a cancellation redis-py swallowed while it read the reply."""
        _asyncio_only(_BREAKER)
        task, cancelling = _cancellations()
        reply = await self._aeval(script, extra, opens, cause)
        if _swallowed(task, cancelling):
            raise asyncio.CancelledError
        return reply

    async def _arecord(self, record: _Record) -> tuple[Transition, ...]:
        recording = self._recording(record)
        if recording is None:
            return _NO_TRANSITIONS
        reply = await self._aeval_or_cancelled(self._record_script, *recording, record.cause)
        return _NO_TRANSITIONS if reply is None else self._transitions(reply)

    # --- the protocol (resilience.AsyncCircuitStore) ----------------------------

    async def aacquire(self) -> CircuitPermit | CircuitRejection:
        """Admit the call (closed, or a leased probe) or reject it; a round trip when stale."""
        permit = self._permit
        if permit is not None and self._now() < self._stale_at:
            return permit
        answer = self._answer(self._now())
        if answer is not None:
            return answer
        fetch = self._fetch
        alone = fetch.acquire(blocking=False)
        if not alone:
            if self._link.down:
                return self._fallback_acquire()  # another task is trying Redis again
            # Another task is reading Redis: answer from the state it is
            # replacing if that can answer, else read too (never wait on a lock).
            cached = self._cached(self._now(), True)
            if cached is not None:
                return cached
        _asyncio_only(_BREAKER)
        task, cancelling = _cancellations()
        lease = _new_lease()
        try:
            reply = await self._aeval(self._acquire_script, (lease,), False)
        except BaseException:  # cancelled: Redis may have granted the lease all the same
            self._spawn(self._release(lease))
            raise
        finally:
            if alone:
                fetch.release()
        answer = self._acquired(reply, lease)
        if _swallowed(task, cancelling):  # cancelled while the reply was read: never run
            if isinstance(answer, CircuitPermit):
                self.on_ignored(answer)  # a probe's lease goes back
            raise asyncio.CancelledError
        return answer

    async def aon_success(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[Transition, ...]:
        """Record a success; no round trip while closed with nothing pending."""
        if permit is self._permit and self._quiet:
            return _NO_TRANSITIONS
        step = self._success(permit, duration)
        return await self._arecord(step) if isinstance(step, _Record) else step

    async def aon_failure(
        self, permit: CircuitPermit, duration: float | None, cause: tuple[str, str] | None, /
    ) -> tuple[Transition, ...]:
        """Record a failure and its *cause* (kept if it opens the circuit): one round trip."""
        step = self._failure(permit, duration, cause)
        return await self._arecord(step) if isinstance(step, _Record) else step

    def on_ignored(self, permit: CircuitPermit, /) -> tuple[Transition, ...]:
        """Release a permit without an outcome; a probe's lease goes back in a task of its own."""
        step = self._ignored(permit)
        if not isinstance(step, _Record):
            return step
        self._spawn(self._arecord(step))
        return _NO_TRANSITIONS

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run *work* in a task of its own (a cancelled task cannot wait for Redis)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop to run it: a lease expires instead
            work.close()
            return
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, lease: str) -> None:
        """Take *lease* out of the circuit's leases, whatever its period (ids are unique)."""
        client: Any = self._config.client
        with contextlib.suppress(*_REDIS_ERRORS):
            await client.zrem(self._keys[1], lease)

    async def aforce(self, state: CircuitState, /) -> tuple[Transition, ...]:
        """Move the shared circuit by hand; local only while Redis is down."""
        return await self._amanual(self._force_code(state), state)

    async def areset(self) -> tuple[Transition, ...]:
        """Return the shared circuit to its initial state."""
        return await self._amanual("r", None)

    async def _amanual(self, code: str, state: CircuitState | None) -> tuple[Transition, ...]:
        reply = None
        if not self._link.skip(self._now()):
            reply = await self._aeval_or_cancelled(self._force_script, (code,), code == "o")
        return self._forced(reply, state)

    def snapshot(self) -> tuple[CircuitState, float | None]:
        """The state and the seconds until half-open, as last read (no round trip)."""
        if self._link.down:
            return self._unshared()
        return self._last_read()


@final
class _AsyncPause:
    """One shared pause in this process: the end last read, when to read again, what to write."""

    __slots__ = (
        "_fetch",
        "_id",
        "_key",
        "_link",
        "_now",
        "_pause",
        "_pending",
        "_read",
        "_refresh",
        "_stale_at",
        "_until",
        "_waited",
    )

    def __init__(self, owner: AsyncRetryAfterPause) -> None:
        store = owner.store
        self._now = owner.clock.now
        self._key = (store.pause_key(owner.name),)
        self._pause = store.client.register_script(_LUA_PAUSE)
        self._read = store.client.register_script(_LUA_PAUSE_READ)
        self._refresh = store.refresh
        self._link = _Link(owner.name, owner.hooks, self._now, store.reconnect)
        self._fetch = fork_safe_lock()  # one read in flight per process
        self._until = -math.inf  # on this process's clock
        self._id = ""
        self._waited = ""  # as _Pause's: a pause seen to end here is over
        self._stale_at = -math.inf
        self._pending = 0.0  # seconds of a pause started here, not yet written

    def left(self, now: float) -> float:
        """Seconds until the pause ends, from the cache (<= 0: not paused)."""
        if now >= self._until and self._id:
            self._waited = self._id
        return self._until - now

    async def prepare(self) -> None:
        """Before a call: write a pause not yet written; read Redis if the cache is stale."""
        if self._pending:
            await self.settle()
        now = self._now()
        if now < self._stale_at or self._link.skip(now) or not self._fetch.acquire(blocking=False):
            return
        try:
            self.left(now)
            epoch = self._link.epoch
            _asyncio_only("AsyncRetryAfterPause")
            task, cancelling = _cancellations()
            try:
                ms, pause = _parse(await self._read(keys=self._key))
            except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
                self._link.lost(exc, "local")
                return
            self._link.answered(epoch)
            now = self._now()
            if ms > 0 and pause != self._waited:
                self._until, self._id = now + ms / 1000, pause
            else:
                self._until, self._id = -math.inf, ""
            self._stale_at = now + self._refresh
            if _swallowed(task, cancelling):  # cancelled while the reply was read: never run
                raise asyncio.CancelledError
        finally:
            self._fetch.release()

    def start(self, seconds: float) -> None:
        """Pause this process at once for *seconds*; `settle` writes it to Redis."""
        now = self._now()
        if now + seconds > self._until:
            self._until, self._id = now + seconds, ""
        self._pending = max(self._pending, seconds)

    async def settle(self) -> None:
        """After a call: write the pause it started, if any (the pause only grows)."""
        seconds = self._pending
        if not seconds:
            return
        self._pending = 0.0
        if self._link.skip(self._now()):
            return
        epoch = self._link.epoch
        _asyncio_only("AsyncRetryAfterPause")
        task, cancelling = _cancellations()
        try:
            ms, pause = _parse(await self._pause(keys=self._key, args=(math.ceil(seconds * 1000),)))
        except (*_REDIS_ERRORS, TypeError, ValueError, LookupError) as exc:
            self._link.lost(exc, "local")
            return
        self._link.answered(epoch)
        now = self._now()
        self._until, self._id = now + ms / 1000, pause
        self._stale_at = now + self._refresh
        if _swallowed(task, cancelling):  # the pause is written; the cancellation goes on
            raise asyncio.CancelledError


def _parse(reply: Any) -> tuple[int, str]:
    return int(reply[0]), _text(reply[1] or "")


def _check_async_store(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, AsyncRedisStore):
        raise TypeError(
            "store must be an AsyncRedisStore (for a RedisStore, use RetryAfterPause), "
            f"got {type(value).__name__}: {value!r}"
        )


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class AsyncRetryAfterPause(_PauseGate):
    """
    `RetryAfterPause` for async code: the shared ``Retry-After`` pause over ``redis.asyncio``.

    The same policy as `RetryAfterPause` (see it for the semantics: which
    failures start a pause, *max_wait*, the deadline, `PausedError`, the
    events), for coroutine functions, async generator functions and
    ``async with`` blocks; each round trip to Redis is awaited, so the event
    loop runs other tasks meanwhile. Decorating a sync function is a
    `TypeError`: use `RetryAfterPause` with a `RedisStore` there (both share
    a pause of the same name and prefix).

    While Redis is unreachable the pause is this process's own,
    `StoreUnavailable` is emitted, and Redis is tried again every
    ``store.reconnect`` seconds.

    Args:
        on: Which failures start a pause (a retried verdict with a
            ``retry_after``). Required.
        name: The pause's shared identity. Required.
        store: The `AsyncRedisStore` holding it. Required.
        max_wait: Seconds a caller may wait; longer pauses reject the call.
            Default: 60.0. `None`: no limit but the deadline.
        max_pause: Seconds; the longest pause one response can start. Default: 300.0.
        hooks: Callables receiving this policy's events, before the global hooks.
        clock: Where time comes from (the local wait). Default: the system clock.

    .. versionadded:: 0.1.0
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier)
    name: str = attrs.field(validator=_check_pause_name)
    store: AsyncRedisStore = attrs.field(validator=_check_async_store, repr=False)
    max_wait: float | None = attrs.field(default=60.0, converter=_to_max_wait)
    max_pause: float = attrs.field(default=300.0, converter=_to_max_pause)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    _state: _AsyncPause = attrs.field(init=False, repr=False)
    _pipeline: Any = pipeline_field()

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_state", _AsyncPause(self))

    def __repr__(self) -> str:
        return (
            f"AsyncRetryAfterPause(on={self.on!r}, name={self.name!r}, max_wait={self.max_wait!r})"
        )

    def describe(self) -> Description:
        """Return what this pause does, for `resilience.Pipeline.explain` (no round trip)."""
        wait = self.max_wait
        left = self.remaining
        details = [
            "starts a pause, for every process, on a failure it retries that carries "
            "Retry-After (first matching rule decides):",
            *rule_lines(self.on, "retry"),
            f"one pause lasts at most {describe_seconds(self.max_pause)}; "
            f"key {self.store.pause_key(self.name)!r} (redis.asyncio)",
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
            title=(
                f"AsyncRetryAfterPause {self.name!r}: callers wait out a Retry-After shared "
                "via Redis"
            ),
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
        Start (or extend) the pause by hand, here at once and in Redis at the next call.

        Raises:
            ValueError: If *seconds* is not a finite number > 0.
        """
        seconds = to_seconds("seconds", seconds)
        self._started(min(seconds, self.max_pause), None)

    async def flush(self) -> None:
        """Write to Redis a pause started here and not yet written (the calls do it themselves)."""
        await self._state.settle()

    # --- an awaiting gate (resilience.engine.AwaitingGate): the round trips, awaited ----

    @property
    def awaits(self) -> bool:
        """True: the engine awaits `aadmit` and the outcomes (each may make a round trip)."""
        return True

    def sync_refusal(self, what: str) -> str:
        """The message of the `TypeError` that sync use raises: use `RetryAfterPause`."""
        return (
            "AsyncRetryAfterPause talks to Redis with redis.asyncio: it protects coroutine "
            f"and async generator functions and `async with` blocks, got {what}; use "
            "RetryAfterPause with a RedisStore for sync code (they share a pause of the same name)"
        )

    async def aadmit(self, target: object, /) -> object:
        """
        Read a stale pause (one round trip), then admit the call or make it wait it out.

        Raises:
            PausedError: If the pause lasts longer than *max_wait*, or past the deadline.
        """
        await self._state.prepare()
        return self.admit(target)

    async def aon_success(
        self, permit: object, result: object, duration: float | None, target: object, /
    ) -> None:
        """A result the classifier retries with a Retry-After starts a pause, written at once."""
        self.on_success(permit, result, duration, target)
        await self._state.settle()

    async def aon_failure(
        self, permit: object, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """A failure the classifier retries with a Retry-After starts a pause, written at once."""
        self.on_failure(permit, error, duration, target)
        await self._state.settle()


for _cls in (AsyncRedisStore, AsyncRedisCircuitStore, AsyncRetryAfterPause):
    _cls.__module__ = "resilience.integrations.redis"
del _cls
