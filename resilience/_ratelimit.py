"""
RateLimiter: at most *rate* units per *per* seconds, exact, weighted by cost, settled after.

A gate on the engine (`resilience.engine`). The state is one number, the
*theoretical arrival time* of GCRA (the generic cell rate algorithm), kept in
**units** rather than seconds: the bucket's clock runs at *rate* / *per* units
per second, a call of cost *c* moves the arrival time *c* units on, and a call
may start once the arrival time is at most *burst* units ahead of now. Costs
that are whole numbers add up without rounding, so a steady caller at exactly
the rate is never refused by a rounding error; the only rounding is the one
multiplication that turns the clock's seconds into units, absorbed by a slack
of ``1e-9`` units.

A call that must wait reserves its slot at once (the arrival time moves on
for it), so callers are served in the order they came; the engine then sleeps
on the limiter's clock, never past the deadline. A caller that gives its
reservation back (cancelled while it waits, or settled below its estimate)
returns its units exactly when nobody reserved after it; otherwise it returns
what cannot let the calls already scheduled and the next ones exceed the
bound (see `RateLimiter`, "Exactness").
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, NoReturn, Self, cast, final

import attrs

from ._classify import ErrorClassifier, to_classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DEADLINE, time_left
from ._events import Hook, RateChanged, RateLimitWaited, emit, log_ignored
from ._exceptions import RateLimitedError
from ._explain import Description, condition, seconds
from ._fork import fork_safe_lock
from ._gate import NO_RESULT, GatePolicy, Wait, refuse, rejected, wait_async, wait_sync
from ._gate import _enter as enter_block
from ._gate import _exit as exit_block
from ._pipeline import Shape, pipeline_field, target_name
from ._validate import check_clock, check_name, to_amount, to_hooks, to_seconds

__all__ = ["RateLimitPermit", "RateLimiter"]

_SLACK: Final = 1e-9
"""Units: what the float conversion of seconds to units may be off by."""

_DECREASE: Final = 0.8
"""An adaptive limiter's rate after a 429, as a share of the rate before it."""

_INCREASE: Final = 0.02
"""An adaptive limiter's rate grows by this share of *rate* per window of successes."""

_FLOOR: Final = 0.01
"""An adaptive limiter's rate never goes below this share of *rate*."""

_NO_KWARGS: Final[dict[str, Any]] = {}


def _to_rate(value: object) -> float:
    return to_amount("rate", value)


def _to_per(value: object) -> float:
    return to_seconds("per", value)


def _to_burst(value: object) -> float | None:
    return to_amount("burst", value, none=True)


def _default_burst(self: RateLimiter) -> float:
    return self.rate


def _to_cost(value: object) -> float | Callable[..., float]:
    if callable(value) and not isinstance(value, numbers.Real):
        return value
    try:
        return to_amount("cost", value)
    except TypeError:
        raise TypeError(
            "cost must be a number or a callable over the call's arguments, "
            f"got {type(value).__name__}: {value!r}"
        ) from None


def _to_max_wait(value: object) -> float | None:
    return to_seconds("max_wait", value, zero=True, none=True)


def _check_settle(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(
            "settle must be a callable taking the call's result and returning its real cost, "
            f"got {type(value).__name__}: {value!r}"
        )


def _to_adapt(value: object) -> ErrorClassifier | None:
    return None if value is None else to_classifier(value, "adapt")


def _rate_limit_lines(classifier: ErrorClassifier) -> list[str]:
    """The rules whose verdict is a rate-limit answer (kind ``"rate_limit"``), one per line."""
    rules = [f"  {condition(rule)}" for rule in classifier.rules if rule.kind == "rate_limit"]
    return rules or ["  (no rule of kind 'rate_limit': the rate never moves)"]


def _actual(name: str, value: object) -> float:
    """A cost reported at call time (callable cost, `acquire`, `settle`): a number >= 0."""
    return to_amount(name, value, zero=True)


@final
class RateLimitPermit:
    """
    The units one admitted call holds: what `RateLimiter.acquire` yields, with `settle`.

    Attributes:
        cost: The units charged for the call so far: its estimate, then what
            `settle` reported.
    """

    __slots__ = ("_limiter", "cost", "end", "generation", "start")

    def __init__(
        self, limiter: RateLimiter, cost: float, end: float, start: float, generation: int
    ) -> None:
        self._limiter = limiter
        self.cost = cost
        self.end = end  # the arrival time, in units, right after this reservation
        self.start = start  # when the call may start, in units
        self.generation = generation  # the adaptive rate's decreases before it

    def __repr__(self) -> str:
        return f"<RateLimitPermit cost={self.cost:g}>"

    def settle(self, actual: float) -> None:
        """
        Charge the call its real cost: the difference to `cost` is charged or refunded.

        A charge above the estimate is a debt that later callers wait out; a
        refund gives units back (see `RateLimiter`, "Exactness"). May be
        called again: each call settles the difference to the last.

        Args:
            actual: The real cost, in units (a number >= 0).

        Raises:
            TypeError: If *actual* is not a number.
            ValueError: If *actual* is negative, NaN or infinite.
        """
        self._limiter._settle(self, _actual("actual", actual))


_FREE: Final[Any] = object()
"""The permit of a call admitted at once by a limiter that learns nothing after it."""


@final
class _Bucket:
    """
    The limiter's state, under one lock: the arrival time, in units, and how units map to time.

    Units now are ``(clock - origin) * scale``; an adaptive rate moves
    *origin* with *scale* so that units stay continuous when the rate changes.
    """

    __slots__ = (
        "admitted",
        "burst",
        "generation",
        "horizon",
        "last",
        "lent",
        "lock",
        "max_cost",
        "min_cost",
        "now",
        "origin",
        "rate",
        "scale",
        "tat",
    )

    def __init__(self, rate: float, per: float, burst: float, cost: float, clock: Clock) -> None:
        self.lock = fork_safe_lock()
        self.now = clock.now
        self.rate = rate  # the current rate, units per `per`
        self.scale = rate / per  # units per second
        self.origin = self.now()  # the clock's reading at 0 units
        self.tat = 0.0
        self.admitted = 0.0  # units taken by calls, settled: see `RateLimiter.admitted`
        self.burst = burst
        self.max_cost = cost  # the largest cost reserved: bounds a refund out of turn
        self.min_cost = cost or math.inf  # the smallest cost reserved or settled: likewise
        self.generation = 0
        self.last: RateLimitPermit | None = None  # the last reservation made with a permit
        # Units given back out of turn, while calls reserved before them are still
        # ahead: together they must fit the bounds a single refund does. Forgotten
        # once now passes *horizon*, the arrival time before the first of them.
        self.lent = 0.0
        self.horizon = -math.inf

    def units(self) -> float:
        """Units now (lock held, or a snapshot)."""
        return (self.now() - self.origin) * self.scale


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class RateLimiter(GatePolicy):
    """
    Let at most *rate* units through per *per* seconds, with bursts of up to *burst* units.

    A `RateLimiter` is **one limit**: shared, mutable state. Every call
    through it, from any thread or task, takes *cost* units (1 by default: a
    requests-per-minute limit; a number of tokens: a tokens-per-minute
    limit). A call that fits is admitted at once; one that does not waits
    until it fits, first come first served, if that wait lasts at most
    *max_wait* and ends before the current deadline (`resilience.deadline`);
    otherwise it is refused at once with `RateLimitedError`, whose
    ``retry_after`` says when it would fit, and nothing runs. Sync callers
    sleep on the limiter's clock, async callers without blocking the loop.
    A caller cancelled while it waits gives its units back.

    The state is one number (GCRA's theoretical arrival time): no timestamps
    per call, no background thread.

    **Exactness.** In any interval of *d* seconds (both ends included), the
    units of the calls that start in it are at most
    ``burst + rate * d / per``; over a window of *per* seconds, at most
    ``burst + rate``, and a caller that keeps asking gets exactly *rate*
    units per *per* in the long run. (To stay under a server that counts
    *limit* units over a sliding window of *per* seconds, keep
    ``burst + rate <= limit``; a server that refills a bucket of *limit*
    units continuously, as LLM APIs do, is matched by ``rate=limit``.) Units
    given back by a caller that was not the last to reserve are returned only
    as far as this bound allows for the calls already scheduled (at most what
    its own call still held ahead of now, and at most *burst* less the
    largest cost reserved); the rest is forfeited, never lent. A `settle` above the
    estimate is a debt that the next callers wait out: the window in which
    the call ran may exceed the bound by the shortfall, the long-run rate
    does not. Times are rounded to ``1e-9`` units.

    **Cost.** *cost* is a number, or a callable over the call's arguments
    (the function's own ``*args, **kwargs``, ``self`` included for a
    method): an estimate, such as prompt tokens plus ``max_tokens``. *settle*,
    given the call's result, returns the real cost (``lambda r:
    r.usage.total_tokens``); the difference is charged or refunded. A block
    takes its cost with ``with limiter.acquire(cost) as permit:`` and
    settles with ``permit.settle(actual)``. A cost above *burst* can never
    fit: a fixed one is refused at construction, one reported at call time
    raises `ValueError`.

    **Adaptive.** With *adapt* (an `ErrorClassifier`: `resilience.transient`
    is a ready one), a call whose outcome is a verdict of kind
    ``"rate_limit"`` (a 429) lowers the current rate to 0.8 times itself
    (once per 429 of a call admitted since the last decrease, never below
    1 % of *rate*); a server's ``Retry-After`` also holds every call until
    it has passed. Each success raises the rate back by 2 % of *rate* per
    window's worth of units, up to *rate*. `RateChanged` reports the
    changes.

    Use it as a decorator (functions, methods, coroutine functions, (async)
    generator functions: a stream takes its units when it starts), through
    `limiter.call` / `limiter.acall`, in `compose`, or around a block with
    ``with limiter:`` / ``async with limiter:``.

    Args:
        rate: Units per *per* seconds (a number > 0). Required.
        per: The window, in seconds (a number or a `datetime.timedelta`).
            Default: 60.0.
        burst: Units that may go at once after a quiet spell (the bucket's
            size). Default: `None`: *rate*.
        cost: Units a call takes: a number > 0, or a callable over the call's
            arguments returning a number >= 0. Default: 1.
        settle: A callable over a call's result returning its real cost, or
            `None`. Default: `None`.
        max_wait: Seconds a call may wait for room; 0: never wait; `None`:
            as long as the deadline allows. Default: `None`.
        adapt: What tells a rate-limit answer (verdict kind ``"rate_limit"``):
            an `ErrorClassifier`, or `None` for a fixed rate. Default: `None`.
        name: A label for events and `RateLimitedError`. Default: `None`.
        hooks: Callables receiving this limiter's events, before the global hooks.
        clock: Where time comes from, and what waits sleep on. Default: the
            system clock.

    Raises:
        TypeError: On an argument of the wrong type (``bool`` is not a number).
        ValueError: On a *rate*, *per*, *burst* or *cost* that is not > 0, a
            negative *max_wait*, or a fixed *cost* above *burst*.

    .. versionadded:: 0.2.0
    """

    rate: float = attrs.field(converter=_to_rate)
    per: float = attrs.field(default=60.0, converter=_to_per)
    burst: float = attrs.field(
        default=attrs.Factory(_default_burst, takes_self=True), converter=_to_burst
    )
    cost: float | Callable[..., float] = attrs.field(default=1, converter=_to_cost)
    settle: Callable[[Any], float] | None = attrs.field(
        default=None, validator=_check_settle, repr=False
    )
    max_wait: float | None = attrs.field(default=None, converter=_to_max_wait)
    adapt: ErrorClassifier | None = attrs.field(default=None, converter=_to_adapt, repr=False)
    name: str | None = attrs.field(default=None, validator=check_name)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    _bucket: _Bucket = attrs.field(init=False, repr=False)
    _label: str = attrs.field(init=False, repr=False)
    _plain: bool = attrs.field(init=False, repr=False)
    _fixed: float | None = attrs.field(init=False, repr=False)
    _pipeline: Any = pipeline_field()

    def __attrs_post_init__(self) -> None:
        if cast("float | None", self.burst) is None:  # burst=None said explicitly
            object.__setattr__(self, "burst", self.rate)
        fixed = not callable(self.cost)
        if fixed and self.cost > self.burst:  # type: ignore[operator]
            raise ValueError(
                f"cost must be <= burst ({self.burst:g}): a call of more units than the "
                f"bucket holds could never run, got {self.cost!r}"
            )
        largest = self.cost if fixed else 0.0
        bucket = _Bucket(self.rate, self.per, self.burst, largest, self.clock)  # type: ignore[arg-type]
        object.__setattr__(self, "_bucket", bucket)
        object.__setattr__(self, "_label", self.name if self.name is not None else "<unnamed>")
        object.__setattr__(self, "_plain", self.settle is None and self.adapt is None)
        object.__setattr__(self, "_fixed", self.cost if fixed else None)

    def __repr__(self) -> str:
        parts = [f"rate={self.rate:g}", f"per={self.per:g}"]
        if self.name is not None:
            parts.insert(0, f"name={self.name!r}")
        if self.burst != self.rate:
            parts.append(f"burst={self.burst:g}")
        if callable(self.cost):
            parts.append(f"cost={self.cost!r}")
        elif self.cost != 1:
            parts.append(f"cost={self.cost:g}")
        if self.max_wait is not None:
            parts.append(f"max_wait={self.max_wait!r}")
        if self.adapt is not None:
            parts.append(f"adaptive, now {self.current_rate:g}")
        return f"<RateLimiter {', '.join(parts)}: {self.available:g} units available>"

    # --- state ---------------------------------------------------------------

    @property
    def current_rate(self) -> float:
        """Units per *per* now: *rate*, or less while an adaptive limiter backs off."""
        return self._bucket.rate

    @property
    def admitted(self) -> float:
        """
        Units taken by the calls this limiter admitted since it was made: a counter.

        A call counts its cost when it takes its units, at once or by
        reserving its turn to wait; a waiter that gives up (cancelled, or its
        wait cannot end before the deadline) takes its cost back out, and a
        `settle` moves its call's count to the real cost (whatever the bucket
        could give back of a refund). Refused calls and `try_acquire` calls
        that did not fit count nothing. Kept under the lock the admission
        takes anyway; `MetricsCollector.watch` reports it as ``rate_admitted``.
        """
        return self._bucket.admitted

    @property
    def available(self) -> float:
        """Units a call could take now without waiting (negative: reserved ahead of now)."""
        bucket = self._bucket
        with bucket.lock:
            return bucket.burst - max(bucket.tat - bucket.units(), 0.0)

    def describe(self) -> Description:
        """
        Return what this limiter does, for `resilience.Pipeline.explain`.

        Its rate, burst and cost, how long a call may wait for room, what
        makes it adapt, and its state now. It adds no attempts; a call may
        wait *max_wait* (unbounded without it, but for the deadline).
        """
        label = f"RateLimiter {self.name!r}" if self.name is not None else "RateLimiter"
        cost = self.cost
        unit = "calls" if cost == 1 and self.settle is None else "units"
        title = f"{label}: at most {self.rate:g} {unit} per {seconds(self.per)}"
        details = [f"bursts of up to {self.burst:g} units after a quiet spell"]
        if callable(cost):
            details.append(f"a call's cost: {target_name(cost)}(*args, **kwargs)")
        elif cost != 1:
            details.append(f"a call costs {cost:g} units")
        if self.settle is not None:
            details.append(f"settled after the call: {target_name(self.settle)}(result)")
        if self.max_wait == 0:
            details.append("a call that does not fit is refused at once with RateLimitedError")
        else:
            wait = (
                "as long as the deadline allows"
                if self.max_wait is None
                else f"at most {seconds(self.max_wait)}"
            )
            details.append(
                f"a call that does not fit waits its turn, first come first served, {wait}; "
                "else it is refused at once with RateLimitedError"
            )
        if self.adapt is not None:
            details += [
                f"adaptive: a rate-limit answer lowers the rate (now {self.current_rate:g}), "
                "successes raise it back; what counts (first matching rule decides):",
                *_rate_limit_lines(self.adapt),
            ]
        details.append(f"now: {self.available:g} units available")
        return Description(title=title, details=details, sleeps=self.max_wait)

    # --- the gate (see resilience.engine.Gate) --------------------------------------

    @property
    def arguments(self) -> bool:
        """Whether `admit` receives the call's arguments: when *cost* is a callable."""
        return callable(self.cost)

    @property
    def results(self) -> bool:
        """Whether every result is seen: to settle it, or to judge it (*adapt*)."""
        return not self._plain

    def admit(
        self,
        target: object,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] = _NO_KWARGS,
        /,
    ) -> Any:
        """
        Take the call's units now (the permit), or reserve them and return a `Wait`.

        Raises:
            RateLimitedError: If the call would wait longer than *max_wait*,
                or past the current deadline.
            ValueError: If a callable *cost* returns more than *burst*, or a
                negative number.
            TypeError: For a ``with`` block when *cost* is a callable (use
                `acquire`).
        """
        cost = self._fixed
        if cost is None:
            price = cast("Callable[..., float]", self.cost)
            if target is None:
                raise TypeError(
                    "a RateLimiter whose cost is a callable over the call's arguments cannot "
                    "price a with-block: use `with limiter.acquire(cost):`"
                )
            return self._reserve(self._priced(price(*args, **kwargs), "cost"), target, False)
        if self._plain:  # the common case, inlined: a call that fits takes its units
            bucket = self._bucket
            clock = bucket.now()  # read before the lock: a stale reading only admits less
            lock = bucket.lock
            lock.acquire()  # nothing below raises: no try/finally to pay for
            now = (clock - bucket.origin) * bucket.scale
            tat = bucket.tat
            end = (tat if tat > now else now) + cost
            start = end - bucket.burst
            if start <= now + _SLACK:
                bucket.tat = end
                bucket.admitted += cost
                lock.release()
                return _FREE
            delay = (start - now) / bucket.scale
            lock.release()
            max_wait = self.max_wait
            if max_wait is not None and delay > max_wait:  # refused: nothing to reserve
                raise rejected(
                    self.hooks,
                    RateLimitedError(self._label, delay, cost),
                    name=self.name,
                    target=target,
                    reason="rate_limited",
                    retry_after=delay,
                )
        return self._reserve(cost, target, False)

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Settle the real cost from *result* (*settle*); an adaptive limiter learns."""
        if permit is _FREE:
            return
        adapt = self.adapt
        if result is not NO_RESULT:
            if self.settle is not None:
                actual = self._settled(result)
                if actual is not None:
                    self._settle(permit, actual)
            if adapt is not None and adapt.handles_results:
                verdict = adapt.classify(result)
                if verdict.kind == "rate_limit":
                    self._lower(permit, verdict.retry_after, target)
                    return
        if adapt is not None:
            self._raise(permit, target)

    def _settled(self, result: Any) -> float | None:
        """*settle*'s real cost of *result*; `None` (logged) if it fails: the estimate stands."""
        try:
            return _actual("settle's result", self.settle(result))  # type: ignore[misc]
        except Exception as error:  # the call succeeded: the estimate stands
            message = "resilience: rate limiter %r: settle() failed; the estimate stands"
            log_ignored(error, message, self._label)
            return None

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """The units stay spent; an adaptive limiter lowers its rate on a rate-limit answer."""
        adapt = self.adapt
        if adapt is not None and permit is not _FREE:
            verdict = adapt.classify(error)
            if verdict.kind == "rate_limit":
                self._lower(permit, verdict.retry_after, target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """A caller cancelled before its turn gives its units back; a started call keeps them."""
        if permit is _FREE:
            return
        bucket = self._bucket
        with bucket.lock:
            waiting = bucket.units() < permit.start - _SLACK
            if waiting:
                bucket.admitted -= permit.cost
                self._refund(permit, permit.cost, False)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """A wait that cannot end before the deadline gives its units back, refused."""
        permit = cast("RateLimitPermit", wait.permit)
        bucket = self._bucket
        with bucket.lock:
            bucket.admitted -= permit.cost
            self._refund(permit, permit.cost, False)
        self._refuse(target, wait.seconds or 0.0, permit.cost)

    def closure(self, fn: Callable[..., Any], shape: Shape) -> Callable[..., Any] | None:
        """
        The decorator's one-frame wrapper for *fn*, when this limiter decorates alone.

        Only for a fixed cost with nothing to learn after the call (no
        *settle*, no *adapt*), on functions and coroutine functions: a call
        that fits takes its units under the lock and runs; any other goes
        through the engine's runner, as ``bind(CALL, shape)`` would.
        """
        cost = self._fixed
        if cost is None or not self._plain or shape not in (Shape.SYNC, Shape.ASYNC):
            return None
        bucket = self._bucket
        lock, clock = bucket.lock, bucket.now
        run = self._pipeline.runner(shape)
        # Without adapt, the clock's conversion to units never changes: constants here.
        # A call fits when the arrival time is at most *headroom* units ahead of now.
        origin, scale = bucket.origin, bucket.scale
        headroom = bucket.burst - cost + _SLACK

        if shape is Shape.SYNC:

            def limited(*args: Any, **kwargs: Any) -> Any:
                now = (clock() - origin) * scale  # before the lock: a stale reading admits less
                lock.acquire()  # nothing below raises: no try/finally to pay for
                tat = bucket.tat
                if tat <= now + headroom:
                    bucket.tat = (tat if tat > now else now) + cost
                    bucket.admitted += cost
                    lock.release()
                    return fn(*args, **kwargs)
                lock.release()
                return run(fn, args, kwargs)

            return limited

        async def alimited(*args: Any, **kwargs: Any) -> Any:
            now = (clock() - origin) * scale
            lock.acquire()
            tat = bucket.tat
            if tat <= now + headroom:
                bucket.tat = (tat if tat > now else now) + cost
                bucket.admitted += cost
                lock.release()
                return await fn(*args, **kwargs)
            lock.release()
            return await run(fn, args, kwargs)

        return alimited

    # A block learns nothing after it unless the limiter adapts (a block has no result
    # to settle, and a block that started keeps its units whatever it raised): then
    # ``with`` costs the admission alone. An adaptive limiter hands the block's
    # outcome to the engine's bookkeeping, keyed by the frame as `GatePolicy` does.

    def __enter__(self) -> Self:
        """Take the block's units, waiting for room if need be; return the limiter."""
        permit = self.admit(None)
        if type(permit) is Wait:
            permit = wait_sync(self, permit, None)
        if self.adapt is not None:
            enter_block(self, id(sys._getframe(1)), permit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """An adaptive limiter learns the block's outcome; otherwise nothing to do."""
        if self.adapt is not None:
            exit_block(self, id(sys._getframe(1)), exc)

    async def __aenter__(self) -> Self:
        """As ``__enter__``, waiting without blocking the event loop."""
        permit = self.admit(None)
        if type(permit) is Wait:
            permit = await wait_async(self, permit, None)
        if self.adapt is not None:
            enter_block(self, id(sys._getframe(1)), permit)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """As ``__exit__``, for ``async with``."""
        if self.adapt is not None:
            exit_block(self, id(sys._getframe(1)), exc)

    # --- the explicit form -----------------------------------------------------------

    def try_acquire(self, cost: float | None = None) -> bool:
        """
        Take *cost* units if they fit now: never wait, never raise for want of room.

        For code that sheds load itself (a queue consumer that leaves a
        message for later): the question "may I go now?" answered in a
        boolean. A refusal here is no refused call: no `CallRejected`.

        Args:
            cost: Units to take, a number >= 0. Default: `None`: the
                limiter's own *cost* (which must then be a number).

        Returns:
            `True` if the units were taken, `False` if they do not fit now.

        Raises:
            TypeError: If *cost* is not a number, or is `None` while the
                limiter's cost is a callable.
            ValueError: If *cost* is negative or above *burst*.
        """
        units = self._fixed if cost is None else None
        if units is None:
            units = self._units(cost)
        bucket = self._bucket
        reading = bucket.now()
        with bucket.lock:
            now = (reading - bucket.origin) * bucket.scale
            tat = bucket.tat
            end = (tat if tat > now else now) + units
            if end - bucket.burst <= now + _SLACK:
                bucket.tat = end
                bucket.admitted += units
                if units > bucket.max_cost:
                    bucket.max_cost = units
                if units < bucket.min_cost:
                    bucket.min_cost = units
                return True
        return False

    def _units(self, cost: float | None) -> float:
        """What `acquire` and `try_acquire` take: *cost*, checked, or the limiter's own."""
        if cost is not None:
            return self._priced(cost, "cost")
        if self._fixed is None:
            raise TypeError(
                "acquire() needs a cost: this limiter's cost is a callable over a call's "
                "arguments, and a block has none"
            )
        return self._fixed

    def acquire(self, cost: float | None = None) -> _Acquisition:
        """
        Take *cost* units around a block: ``with limiter.acquire(cost) as permit:``.

        The block waits for room as a call would (``async with`` without
        blocking the loop), gets a `RateLimitPermit`, and may settle its real
        cost with ``permit.settle(actual)``.

        Args:
            cost: Units the block takes, a number >= 0. Default: `None`: the
                limiter's own *cost* (which must then be a number).

        Returns:
            A context manager for ``with`` and ``async with``, yielding the permit.

        Raises:
            TypeError: If *cost* is not a number, or is `None` while the
                limiter's cost is a callable.
            ValueError: If *cost* is negative or above *burst* (it could never fit).
        """
        return _Acquisition(self, self._units(cost))

    # --- the slow paths -----------------------------------------------------------

    def _priced(self, value: object, name: str) -> float:
        """A cost reported at call time, checked: a number >= 0, at most *burst*."""
        units = _actual(name, value)
        if units > self.burst:
            raise ValueError(
                f"{name} must be <= burst ({self.burst:g}) of rate limiter {self._label!r}: "
                f"a call of more units could never run, got {value!r}"
            )
        return units

    def _reserve(self, cost: float, target: object, permit: bool) -> Any:
        """Take *cost* units now, or reserve them and return a `Wait`; refuse if too late."""
        bucket = self._bucket
        with bucket.lock:
            now = (bucket.now() - bucket.origin) * bucket.scale
            tat = bucket.tat
            if tat < now:
                tat = now
            end = tat + cost
            start = end - bucket.burst
            if start <= now + _SLACK:
                bucket.tat = end
                bucket.admitted += cost
                if self._plain and not permit:
                    return _FREE
                if cost > bucket.max_cost:
                    bucket.max_cost = cost
                if cost < bucket.min_cost:
                    bucket.min_cost = cost
                bucket.last = admitted = RateLimitPermit(self, cost, end, now, bucket.generation)
                return admitted
            delay = (start - now) / bucket.scale
            max_wait = self.max_wait
            too_late = max_wait is not None and delay > max_wait
            if not too_late:
                deadline = DEADLINE.get()
                too_late = deadline is not None and delay >= time_left(deadline)
            if not too_late:
                bucket.tat = end
                bucket.admitted += cost
                if cost > bucket.max_cost:
                    bucket.max_cost = cost
                if cost < bucket.min_cost:
                    bucket.min_cost = cost
                bucket.last = reserved = RateLimitPermit(self, cost, end, start, bucket.generation)
        if too_late:
            refuse(
                self.hooks,
                RateLimitedError(self._label, delay, cost),
                name=self.name,
                target=target,
                reason="rate_limited",
                retry_after=delay,
            )
        emit(
            self.hooks,
            RateLimitWaited,
            name=self.name,
            target=None if target is None else target_name(target),
            delay=delay,
            cost=cost,
        )
        return Wait(delay, reserved)

    def _refund(self, permit: RateLimitPermit, units: float, ran: bool) -> None:
        """
        Give *units* of *permit* back (lock held): all of them if nobody reserved after it.

        Otherwise the calls scheduled after it keep their times, and the units
        can come back only as far as the bucket would have been ahead of now
        anyway: a call that *ran* from its start for its (settled) cost keeps
        the arrival time at least at ``start + cost``; a waiter that never ran,
        at ``start - cost`` plus the smallest cost (where the call reserved
        before it ended, at the earliest). Nor more
        than *burst* less the largest cost reserved, or the next callers could
        start beside the ones already scheduled beyond the bound; refunds out
        of turn count together against both while the calls scheduled before
        them are ahead. The rest is forfeited (the property tests hold every
        interval to the bound).
        """
        bucket = self._bucket
        if bucket.last is permit and permit.end == bucket.tat:
            bucket.tat -= units
            permit.end -= units
            return
        now = bucket.units()
        if now >= bucket.horizon:
            bucket.lent = 0.0
        floor = permit.start + (permit.cost if ran else bucket.min_cost - permit.cost)
        lent = bucket.lent
        back = min(units, floor - now - lent, bucket.burst - bucket.max_cost - lent)
        if back > 0:
            if bucket.tat > bucket.horizon:
                bucket.horizon = bucket.tat
            bucket.tat -= back
            bucket.lent = lent + back

    def _settle(self, permit: RateLimitPermit, actual: float) -> None:
        """Charge (a debt later callers wait out) or refund the difference to the estimate."""
        if permit is _FREE:
            raise TypeError("this call's permit cannot be settled")  # pragma: no cover
        bucket = self._bucket
        with bucket.lock:
            extra = actual - permit.cost
            permit.cost = actual
            bucket.admitted += extra
            if actual < bucket.min_cost:
                bucket.min_cost = actual
            if extra > 0:
                if permit.end == bucket.tat:
                    bucket.tat += extra
                    permit.end += extra
                else:
                    now = bucket.units()
                    bucket.tat = max(bucket.tat, now) + extra
            elif extra < 0:
                self._refund(permit, -extra, True)

    def _refuse(self, target: object, delay: float, cost: float) -> NoReturn:
        refuse(
            self.hooks,
            RateLimitedError(self._label, delay, cost),
            name=self.name,
            target=target,
            reason="rate_limited",
            retry_after=delay,
        )

    def _move(self, rate: float) -> None:
        """Set the current rate (lock held), keeping units continuous."""
        bucket = self._bucket
        now = bucket.now()
        units = (now - bucket.origin) * bucket.scale
        bucket.rate = rate
        bucket.scale = scale = rate / self.per
        bucket.origin = now - units / scale

    def _lower(self, permit: RateLimitPermit, retry_after: float | None, target: object) -> None:
        """A rate-limit answer: lower the rate, once per answer of a call admitted since."""
        bucket = self._bucket
        with bucket.lock:
            if permit.generation != bucket.generation:  # admitted before the last decrease
                return
            previous = bucket.rate
            self._move(max(previous * _DECREASE, self.rate * _FLOOR))
            bucket.generation += 1
            if retry_after is not None and retry_after > 0:
                # Hold every call until the server's wait is over, from an empty bucket.
                hold = bucket.units() + retry_after * bucket.scale + bucket.burst
                bucket.tat = max(bucket.tat, hold - min(permit.cost, bucket.burst))
            rate = bucket.rate
        emit(
            self.hooks,
            RateChanged,
            name=self.name,
            target=None if target is None else target_name(target),
            rate=rate,
            previous=previous,
            reason="rate_limit",
        )

    def _raise(self, permit: RateLimitPermit, target: object) -> None:
        """A success: raise the rate by a share of *rate* per window's worth of units."""
        bucket = self._bucket
        if bucket.rate >= self.rate:
            return
        with bucket.lock:
            previous = bucket.rate
            if previous >= self.rate:
                return
            step = _INCREASE * self.rate * max(permit.cost, 1.0) / previous
            rate = min(self.rate, previous + step)
            self._move(rate)
        if rate >= self.rate:
            emit(
                self.hooks,
                RateChanged,
                name=self.name,
                target=None if target is None else target_name(target),
                rate=rate,
                previous=previous,
                reason="recovered",
            )


RateLimiter.__module__ = "resilience"
RateLimitPermit.__module__ = "resilience"


@final
class _Acquisition:
    """``with limiter.acquire(cost) as permit:``: the block's units, waited for; its outcome."""

    __slots__ = ("_cost", "_limiter", "_permit")

    def __init__(self, limiter: RateLimiter, cost: float) -> None:
        self._limiter = limiter
        self._cost = cost
        self._permit: RateLimitPermit | None = None

    def __repr__(self) -> str:
        return f"<acquire {self._cost:g} units of {self._limiter!r}>"

    def __enter__(self) -> RateLimitPermit:
        limiter = self._limiter
        permit = limiter._reserve(self._cost, None, True)
        if type(permit) is Wait:
            permit = wait_sync(limiter, permit, None)
        self._permit = permit
        return permit  # type: ignore[no-any-return]

    async def __aenter__(self) -> RateLimitPermit:
        limiter = self._limiter
        permit = limiter._reserve(self._cost, None, True)
        if type(permit) is Wait:
            permit = await wait_async(limiter, permit, None)
        self._permit = permit
        return permit  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit, self._permit = self._permit, None
        if permit is None:
            raise RuntimeError("acquire(): __exit__ without a matching __enter__")
        limiter = self._limiter
        if exc is None:
            limiter.on_success(permit, NO_RESULT, None, None)
        elif isinstance(exc, Exception):
            limiter.on_failure(permit, exc, None, None)
        else:
            limiter.on_cancel(permit, exc, None, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
