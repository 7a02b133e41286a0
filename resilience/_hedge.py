"""
Hedge: start another copy of a slow call, take the first acceptable outcome.

A hedged call runs as a task; if it has not finished after *delay* seconds, a
second copy starts, then a third *delay* later, up to ``max_hedges`` extra
copies. The first result (or failure the classifier does not retry) wins; the
other copies are cancelled and awaited before the caller sees the outcome, so
no task outlives the call. Waiting is done by the running library (under
asyncio, `asyncio.wait` with a timeout; under trio, in a nursery the call
opens, each copy in a cancel scope of its own: an `_aio.Crew`); the policy's
clock only measures durations, for an adaptive delay (`PercentileDelay`).

Copies are tasks created in the caller's context (`contextvars` are copied),
so the deadline of an enclosing Timeout is visible inside every copy, and no
copy starts once that deadline would have passed.
"""

from __future__ import annotations

import bisect
import collections
import datetime
import math
import numbers
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol, final, runtime_checkable

import attrs

from . import _aio
from ._classify import REQUIRED, ErrorClassifier, to_classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DEADLINE, time_left
from ._events import HedgeStarted, Hook, emit
from ._explain import Description, rule_lines, seconds
from ._fork import fork_safe_lock
from ._lazy import lazy_module
from ._notes import set_note
from ._pipeline import CALL, PolicyMixin, Runner, Shape, pipeline_field, target_name
from ._validate import check_clock, check_name, to_count, to_hooks, to_seconds

if TYPE_CHECKING:
    import asyncio
else:  # imported on first use: sync code never needs it
    asyncio = lazy_module("asyncio", globals())

__all__ = ["Hedge", "HedgeDelay", "PercentileDelay"]

MAX_HEDGES: Final = 10
"""The most extra copies a Hedge may start: more is a load multiplier, not a hedge."""


# --- adaptive delays ------------------------------------------------------------------


@runtime_checkable
class HedgeDelay(Protocol):
    """
    An adaptive ``delay=`` for `Hedge`: how long to wait now, learning from durations.

    `PercentileDelay` (from `Hedge.percentile`) is the builtin one. Both methods
    may be called from several threads and tasks at once.
    """

    def current(self) -> float:
        """Return the seconds to wait before the next hedge of a call starting now."""
        ...

    def record(self, seconds: float, /) -> None:
        """Learn the duration, in seconds, of a call that returned a result."""
        ...


_LONGEST_WINDOW: Final = 10**7


def _to_percentile(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"percentile must be a number in (0, 100], got {type(value).__name__}: {value!r}"
        )
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float: out of range, said as such
        number = math.inf
    if not 0 < number <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {value!r}")
    return number


def _check_window(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    to_count("window", value, maximum=_LONGEST_WINDOW, why="the window keeps every sample")


def _to_initial(value: object) -> float:
    return to_seconds("initial", value, zero=True)


def _check_min_samples(
    instance: PercentileDelay, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is None:
        return
    count = to_count("min_samples", value)
    if count > instance.window:
        raise ValueError(
            f"min_samples must be <= window ({instance.window}), got {value!r}: "
            "the window never holds more samples than that"
        )


@final
@attrs.define(kw_only=True, eq=False, repr=False)
class PercentileDelay:
    """
    A hedge delay that follows a percentile of recent latency (a `HedgeDelay`).

    It keeps the durations of the last *window* calls that returned a result
    (measured on the Hedge's clock, from the call's start to its result, as
    the caller waited) and answers their *percentile* (nearest rank): with
    ``percentile=95``, about one call in twenty is hedged. Until it holds
    *min_samples* durations it answers *initial*.

    It holds state: share one between the calls that should learn from each
    other (one endpoint), not between unrelated ones. Thread-safe: one lock
    guards the samples, held for a few list operations, never across a call.
    Build one with `Hedge.percentile`.

    Args:
        percentile: Which percentile, in (0, 100]. 100 is the slowest in the window.
        window: How many recent durations it keeps, at most 10**7. Default: 100.
        initial: Seconds to wait until it has enough samples. Default: 0.5.
        min_samples: Durations needed before the percentile is used, at most
            *window*. Default: `None`: ``min(window, 20)``.

    Raises:
        TypeError: On an argument of the wrong type.
        ValueError: On a percentile outside (0, 100], a window below 1, an
            *initial* negative, NaN or infinite, *min_samples* above *window*.

    .. versionadded:: 0.2.0
    """

    percentile: float = attrs.field(converter=_to_percentile)
    window: int = attrs.field(default=100, validator=_check_window)
    initial: float = attrs.field(default=0.5, converter=_to_initial)
    min_samples: int | None = attrs.field(default=None, validator=_check_min_samples)
    _order: collections.deque[float] = attrs.field(init=False)
    _sorted: list[float] = attrs.field(init=False, factory=list)
    _lock: threading.Lock = attrs.field(init=False, factory=fork_safe_lock)
    _need: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._order = collections.deque(maxlen=self.window)
        self._need = min(self.window, 20) if self.min_samples is None else self.min_samples

    def __repr__(self) -> str:
        return (
            f"Hedge.percentile({self.percentile!r}, window={self.window!r}, "
            f"initial={self.initial!r})"
        )

    @property
    def samples(self) -> int:
        """How many durations it holds now (at most *window*)."""
        return len(self._order)

    def current(self) -> float:
        """Return the seconds to wait: the percentile of the window, or *initial*."""
        ranked = self._sorted
        with self._lock:
            n = len(ranked)
            if n < self._need:
                return self.initial
            # Nearest rank: the smallest sample with at least percentile % at or below it.
            return ranked[max(math.ceil(self.percentile / 100 * n), 1) - 1]

    def record(self, seconds: float, /) -> None:
        """Add the duration of a call that returned a result; the oldest leaves a full window."""
        if not seconds >= 0:  # NaN or a clock that went backwards: not a duration
            return
        ranked = self._sorted
        with self._lock:
            order = self._order
            if len(order) == order.maxlen:
                del ranked[bisect.bisect_left(ranked, order[0])]
            order.append(seconds)
            bisect.insort(ranked, seconds)


PercentileDelay.__module__ = "resilience"
HedgeDelay.__module__ = "resilience"


# --- validation -------------------------------------------------------------------------


def _to_delay(value: object) -> float | HedgeDelay:
    if isinstance(value, datetime.timedelta | numbers.Real) or value is None:
        return to_seconds(
            "delay",
            value,
            zero=True,
            expected="seconds (a number or a datetime.timedelta) or a HedgeDelay "
            "(Hedge.percentile(...))",
        )
    if callable(getattr(value, "current", None)) and callable(getattr(value, "record", None)):
        return value  # type: ignore[return-value]
    raise TypeError(
        "delay must be seconds (a number or a datetime.timedelta) or a HedgeDelay "
        f"(Hedge.percentile(...)), got {type(value).__name__}: {value!r}"
    )


def _check_max_hedges(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    to_count("max_hedges", value)
    if value > MAX_HEDGES:  # type: ignore[operator]
        raise ValueError(
            f"max_hedges must be <= {MAX_HEDGES} (each copy multiplies the load), got {value!r}"
        )


def _copies(n: int) -> str:
    return f"{n} cop{'ies' if n != 1 else 'y'}"


# --- the policy -------------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True, repr=False)
class Hedge(PolicyMixin):
    """
    Start another copy of a coroutine call that is slow to answer; the first acceptable one wins.

    **Only for idempotent calls**: a hedged call may run twice (or more) at the
    server, even when the caller sees one outcome. Reads are the use case.

    If the call has not finished after *delay* seconds, a second copy starts;
    each further copy starts *delay* after the previous one, up to
    *max_hedges* extra copies. The first *acceptable* outcome wins: a result
    (results are not classified), or a failure that *on* does not retry. The
    other copies are then cancelled and awaited before the caller sees the
    outcome: no copy outlives the call. A failure that *on* retries does not
    end the call: the other copies go on, and the next hedge (if any is left)
    starts at once. When every copy has failed so, the last failure is raised
    with a note saying how many copies ran.

    No copy starts after the current deadline (an enclosing `Timeout`, see
    `resilience.deadline`): a hedge that would start after it is not started.
    Copies run in tasks created in the caller's context, so they see its
    deadline and context variables. An outer cancellation (a ``task.cancel()``,
    an enclosing cancel scope or Timeout expiring) cancels every copy, awaits
    them and propagates. A copy that suppresses its cancellation delays the
    caller until it ends, as in an `asyncio.TaskGroup`.

    Under asyncio the copies are asyncio tasks; under trio (and anyio on
    trio) they run in a nursery the call opens and closes, each in its own
    cancel scope, and a copy's failure reaches the caller as itself, never in
    an `ExceptionGroup`. The waits between copies run on the running
    library's clock; *clock* measures only the durations an adaptive delay
    learns from.

    A `Hedge` is configuration: immutable, hashable, safe to share. Only
    coroutine functions can be hedged (use it as a decorator, through
    `acall`, or in `resilience.compose`).

    Args:
        delay: When to start each hedge: seconds after the previous copy
            started (a number >= 0 or a `datetime.timedelta`; 0 starts every
            copy at once), or a `HedgeDelay` such as
            ``Hedge.percentile(95, window=100, initial=0.5)``, asked once per
            call and told the duration of each call that returns a result.
            Required.
        max_hedges: Extra copies at most, 1 to 10. Default: 1.
        on: Which failures let the other copies go on: an `ErrorClassifier`
            (`resilience.transient` is a ready one), an exception type or
            tuple of types, a `Rule`, or a predicate over the exception.
            Required.
        name: A label for events and notes. Default: `None`.
        hooks: Callables receiving this policy's events (`HedgeStarted`),
            before the global hooks. Default: none.
        clock: Measures call durations for an adaptive *delay*. Default: the
            system clock.

    Raises:
        TypeError: On an argument of the wrong type; when binding to anything
            but a coroutine function.
        ValueError: On a *delay* negative, NaN or infinite, or *max_hedges*
            outside 1..10.

    .. versionadded:: 0.2.0
    """

    delay: float | HedgeDelay = attrs.field(converter=_to_delay)
    max_hedges: int = attrs.field(default=1, validator=_check_max_hedges)
    on: ErrorClassifier = attrs.field(converter=to_classifier, **REQUIRED)
    name: str | None = attrs.field(default=None, validator=check_name)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock)
    _pipeline: Any = pipeline_field()

    @staticmethod
    def percentile(
        percentile: float,
        *,
        window: int = 100,
        initial: float | datetime.timedelta = 0.5,
        min_samples: int | None = None,
    ) -> PercentileDelay:
        """
        Return a delay that follows the *percentile* of recent call durations.

        See `PercentileDelay`: the last *window* durations of calls that
        returned a result, *initial* seconds until *min_samples* of them
        (default ``min(window, 20)``) are known.
        """
        return PercentileDelay(
            percentile=percentile, window=window, initial=initial, min_samples=min_samples
        )

    def __repr__(self) -> str:
        parts = [f"delay={self.delay!r}", f"max_hedges={self.max_hedges!r}", f"on={self.on!r}"]
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        return f"Hedge({', '.join(parts)})"

    def describe(self) -> Description:
        """
        Return what this Hedge does, for `resilience.Pipeline.explain`.

        It may run what it wraps ``1 + max_hedges`` times (concurrently); it
        sleeps nothing of its own, and a call ends within ``1 + max_hedges``
        times the longest run.
        """
        label = f"Hedge {self.name!r}" if self.name is not None else "Hedge"
        n = self.max_hedges
        delay = self.delay
        when = f"{seconds(delay)} apart" if isinstance(delay, float) else f"{delay!r} apart"
        details = [
            "only for idempotent calls: copies may all reach the server",
            "first result (or failure not retried) wins; the other copies are cancelled",
            "a failure the rules retry lets the other copies go on and starts the next at once:",
            *rule_lines(self.on, "retry"),
            "no copy starts after the deadline",
        ]
        # Copy k starts at most k * min(delay, t) after the call (a hedge starts
        # while the previous copy runs, or once it failed), so the call ends by
        # (max_hedges + 1) * t: the bound of attempts=n + 1 with no sleeps holds.
        return Description(
            title=f"{label}: up to {n} extra {'copies' if n != 1 else 'copy'}, {when}",
            details=details,
            attempts=n + 1,
        )

    # --- binding (the policy protocol) ------------------------------------------------

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner that hedges *inner* (see `resilience.Policy`).

        Raises:
            TypeError: If *shape* is not a coroutine function.
        """
        if shape is not Shape.ASYNC:
            raise TypeError(
                "Hedge races copies of a call as tasks: it needs a coroutine function "
                f"(async def), got a {shape.value}"
            )
        return self._bind_async(inner)

    def _bind_async(self, inner: Runner) -> Runner:
        delay = self.delay
        fixed = isinstance(delay, float)
        fixed_delay = delay if isinstance(delay, float) else 0.0
        adaptive: HedgeDelay | None = None if isinstance(delay, float) else delay
        now = self.clock.now
        classify = self.on.classify
        direct = inner is CALL
        wait = asyncio.wait
        running_loop = asyncio.get_running_loop
        race = self._race

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if fixed:
                d, start = fixed_delay, 0.0
            else:
                assert adaptive is not None
                d, start = adaptive.current(), now()
            try:
                loop = running_loop()
            except RuntimeError:  # not asyncio: trio (anyio on trio too) races in a nursery
                async with _aio.crew() as crew:
                    first = await crew.start(
                        fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                    )
                    return await race(
                        crew,
                        inner,
                        fn,
                        args,
                        kwargs,
                        [first],
                        None,
                        crew.time(),
                        d,
                        start,
                        adaptive,
                    )
            first = loop.create_task(fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            try:
                await wait((first,), timeout=d)
            except BaseException:
                await _aio.crew(loop).abandon((first,))
                raise
            if not first.done():
                return await race(
                    _aio.crew(loop), inner, fn, args, kwargs, [first], None, loop.time() - d, d,
                    start, adaptive,
                )  # fmt: skip
            error = first.exception()  # raises CancelledError if the copy was cancelled
            if error is None:
                if adaptive is not None:
                    adaptive.record(now() - start)
                return first.result()
            if not isinstance(error, Exception) or not classify(error).retry:
                raise error
            return await race(
                _aio.crew(loop), inner, fn, args, kwargs, [], error, -math.inf, d, start, adaptive
            )

        return run

    async def _race(
        self,
        crew: _aio.Crew,
        inner: Runner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        running: list[_aio.Copy],
        last: Exception | None,
        previous: float,
        d: float,
        start: float,
        adaptive: HedgeDelay | None,
    ) -> Any:
        """
        The race from the first copy on: start hedges, take the first acceptable outcome.

        *running* holds the first copy, or nothing once it failed with *last*;
        *previous* is when the last copy started, on the crew's clock
        (``-inf``: the next hedge is due at once).
        """
        classify = self.on.classify
        started = 1
        stopped_by_deadline = False
        try:
            while True:
                timeout: float | None = None
                if started <= self.max_hedges and not stopped_by_deadline:
                    wait_for = max(previous + d - crew.time(), 0.0)
                    deadline = DEADLINE.get()
                    if deadline is not None and time_left(deadline) <= wait_for:
                        stopped_by_deadline = True  # later hedges would start later still
                    elif wait_for <= 0:
                        waited = 0.0 if previous == -math.inf else d
                        running.append(
                            await self._start(crew, inner, fn, args, kwargs, started, waited)
                        )
                        started += 1
                        previous = crew.time()
                        continue
                    else:
                        timeout = wait_for
                if not running:
                    assert last is not None
                    self._exhausted(last, started, stopped_by_deadline)
                done = await crew.first(running, timeout)
                if not done:
                    continue  # the next hedge is due: started at the top of the loop
                finished = [copy for copy in running if copy in done]
                running = [copy for copy in running if copy not in done]
                # Several copies may end in one turn of the loop: a result wins over
                # failures, then the earliest copy's failure.
                for copy in finished:
                    if not copy.cancelled() and copy.exception() is None:
                        if adaptive is not None:
                            adaptive.record(self.clock.now() - start)
                        return copy.result()
                for copy in finished:
                    error = copy.exception()  # a cancellation: cancelled by someone else
                    assert error is not None
                    if not isinstance(error, Exception) or not classify(error).retry:
                        raise error
                    last = error
                    previous = -math.inf  # a copy failed: the next hedge starts at once
        finally:
            if running:
                await crew.abandon(running)

    async def _start(
        self,
        crew: _aio.Crew,
        inner: Runner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        hedge: int,
        waited: float,
    ) -> _aio.Copy:
        """Start hedge number *hedge* (1 for the first) in the caller's context."""
        copy = await crew.start(fn(*args, **kwargs) if inner is CALL else inner(fn, args, kwargs))
        emit(
            self.hooks,
            HedgeStarted,
            name=self.name,
            target=target_name(fn),
            hedge=hedge,
            delay=waited,
        )
        return copy

    def _exhausted(self, last: Exception, started: int, stopped_by_deadline: bool) -> NoReturn:
        label = f" (hedge {self.name!r})" if self.name is not None else ""
        text = f"all {_copies(started)} of the hedged call failed; this is the last failure{label}"
        if started == 1:
            text = f"the hedged call failed and no hedge was started{label}"
        if stopped_by_deadline and started <= self.max_hedges:
            text += ": the next hedge would have started after the deadline"
        set_note(last, self, text)
        raise last


Hedge.__module__ = "resilience"
