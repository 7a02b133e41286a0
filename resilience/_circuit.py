"""
The circuit of a `CircuitBreaker`: its states, trip conditions, and the store that holds them.

This module is the breaker's sans-IO engine. A store (`CircuitStore`) holds one
circuit's state and makes every decision about it atomically: may this call
run (`acquire`), what does its outcome change (`on_success`, `on_failure`,
`on_ignored`), and the manual transitions (`force`, `reset`). The breaker in
``_breaker.py`` is a thin driver around it: it runs the call, classifies the
outcome, raises `CircuitOpenError` and emits events, outside any lock.

`InMemoryCircuitStore` is the default store, one per breaker, guarded by one
lock that is held for decisions only. A shared store (Redis, for fleets)
implements the same protocol with server-side atomic operations.
"""

from __future__ import annotations

import enum
import itertools
import math
import numbers
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, final, runtime_checkable

import attrs

from ._fork import forget_in_child, fork_safe_lock
from ._validate import to_count, to_seconds

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = [
    "AsyncCircuitStore",
    "CircuitPermit",
    "CircuitRejection",
    "CircuitState",
    "CircuitStore",
    "CircuitTransition",
    "FailureRate",
    "InMemoryCircuitStore",
    "SlowCallRate",
    "TripCondition",
]


class CircuitState(enum.Enum):
    """
    The state of a circuit breaker.

    Attributes:
        CLOSED: Calls run; outcomes are counted against the trip conditions.
        OPEN: Calls are rejected with `CircuitOpenError` until the open period
            ends; then the circuit is half-open.
        HALF_OPEN: A limited number of probe calls run; enough successes close
            the circuit, one failure opens it again.
        ISOLATED: Held open by `CircuitBreaker.isolate` until `close` or `reset`.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    ISOLATED = "isolated"


CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN
ISOLATED: Final = CircuitState.ISOLATED


# --- validation (construction time only) -------------------------------------------


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_A_DURATION: Final = "a number of seconds or a timedelta"
"""What a trip condition's durations must be, as their TypeError says."""


# A time window is 10 buckets indexed by now / (seconds / 10): narrower ones
# divide by zero or overflow. A count window keeps a byte per call.
_SHORTEST_WINDOW: Final = 1e-6
_LONGEST_COUNT: Final = 10**7


def _to_window(value: object) -> float | None:
    return to_seconds(
        "seconds",
        value,
        none=True,
        expected=_A_DURATION,
        shown="seconds",
        minimum=_SHORTEST_WINDOW,
        why="a time window is 10 buckets of seconds / 10",
    )


def _to_slower_than(value: object) -> float:
    return to_seconds("slower_than", value, zero=True, expected=_A_DURATION, shown="seconds")


def _check_rate(value: object) -> None:
    if not _is_real(value):
        raise TypeError(f"rate must be a number in (0, 1], got {type(value).__name__}: {value!r}")
    if not 0 < value <= 1:  # type: ignore[operator]  # NaN fails too
        raise ValueError(f"rate must be in (0, 1], got {value!r}")


def _window_fields(cls: str, rate: object, calls: object, seconds: object, minimum: object) -> None:
    _check_rate(rate)
    if (calls is None) == (seconds is None):
        raise TypeError(
            f"{cls} needs exactly one window: calls= (the last N calls) or seconds= "
            f"(the last N seconds), got calls={calls!r}, seconds={seconds!r}"
        )
    if calls is not None:
        to_count("calls", calls, maximum=_LONGEST_COUNT, why="the window keeps a byte per call")
    to_count("minimum_calls", minimum)
    if calls is not None and minimum > calls:  # type: ignore[operator]
        raise ValueError(
            f"minimum_calls must be <= calls ({calls!r}): a window of {calls!r} calls "
            f"never holds {minimum!r}, got minimum_calls={minimum!r}"
        )


def _default_minimum(self: FailureRate | SlowCallRate) -> int:
    calls = self.calls
    if isinstance(calls, int) and not isinstance(calls, bool) and 1 <= calls < 10:
        return calls
    return 10


# --- trip conditions ------------------------------------------------------------------


@final
@attrs.frozen
class FailureRate:
    """
    Trip when at least *rate* of the recent calls failed.

    The recent calls are a sliding window, either the last *calls* calls or
    the calls of the last *seconds* seconds; the condition is judged only once
    the window holds *minimum_calls* calls. A failure is an outcome whose
    verdict has ``trip``; outcomes the classifier does not trip on are not
    calls at all here (they are neither failures nor successes).

    A time window is kept in 10 buckets of ``seconds / 10`` each, so a call
    leaves it between 0.9 x *seconds* and *seconds* after it ended.

    Args:
        rate: The failure ratio that trips, in (0, 1]: ``0.5`` trips when half
            the calls in the window failed. Required.
        calls: Window size, in calls (count-based window).
        seconds: Window length, in seconds or a `datetime.timedelta` (time-based
            window). Exactly one of *calls* and *seconds* is required.
        minimum_calls: Calls the window must hold before the rate counts.
            Default: 10, or *calls* when smaller.

    Raises:
        TypeError: If a parameter has the wrong type (``bool`` is not a
            number), or not exactly one of *calls* and *seconds* is given.
        ValueError: If *rate* is outside (0, 1], *calls* or *minimum_calls* is
            below 1, *calls* above 10**7, *seconds* below 1e-6, or
            *minimum_calls* > *calls*.

    .. versionadded:: 0.1.0
    """

    rate: float
    calls: int | None = attrs.field(default=None, kw_only=True)
    seconds: float | None = attrs.field(default=None, kw_only=True, converter=_to_window)
    minimum_calls: int = attrs.field(
        default=attrs.Factory(_default_minimum, takes_self=True), kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        _window_fields("FailureRate", self.rate, self.calls, self.seconds, self.minimum_calls)
        object.__setattr__(self, "rate", float(self.rate))


@final
@attrs.frozen
class SlowCallRate:
    """
    Trip when at least *rate* of the recent calls were slower than *slower_than*.

    Every counted call (a success or a failure; not an outcome the classifier
    ignores) is timed; a call that took more than *slower_than* seconds is
    slow. The window works as in `FailureRate`. For (async) generator
    functions the time measured is the time to the first item (or to the end
    of an empty stream): the consumer's pace is not the upstream's latency.
    Timing costs two clock reads per call, and only breakers with a
    `SlowCallRate` pay them.

    Args:
        rate: The slow-call ratio that trips, in (0, 1]. Required.
        slower_than: Seconds (or a `datetime.timedelta`); a call that took
            longer is slow. Required.
        calls: Window size, in calls (count-based window).
        seconds: Window length, in seconds or a `datetime.timedelta` (time-based
            window). Exactly one of *calls* and *seconds* is required.
        minimum_calls: Calls the window must hold before the rate counts.
            Default: 10, or *calls* when smaller.

    Raises:
        TypeError: If a parameter has the wrong type, or not exactly one of
            *calls* and *seconds* is given.
        ValueError: If *rate* is outside (0, 1], *slower_than* is negative,
            *calls* or *minimum_calls* is below 1, *calls* above 10**7,
            *seconds* below 1e-6, or *minimum_calls* > *calls*.

    .. versionadded:: 0.1.0
    """

    rate: float
    slower_than: float = attrs.field(kw_only=True, converter=_to_slower_than)
    calls: int | None = attrs.field(default=None, kw_only=True)
    seconds: float | None = attrs.field(default=None, kw_only=True, converter=_to_window)
    minimum_calls: int = attrs.field(
        default=attrs.Factory(_default_minimum, takes_self=True), kw_only=True
    )

    def __attrs_post_init__(self) -> None:
        _window_fields("SlowCallRate", self.rate, self.calls, self.seconds, self.minimum_calls)
        object.__setattr__(self, "rate", float(self.rate))


TripCondition = FailureRate | SlowCallRate
"""A windowed trip condition, passed to `CircuitBreaker` as ``trip=``."""


def to_conditions(
    value: FailureRate | SlowCallRate | Iterable[FailureRate | SlowCallRate],
) -> tuple[FailureRate | SlowCallRate, ...]:
    """Convert ``trip=`` (one condition or an iterable of them) to a tuple, checking each."""
    given: object = value  # checked at runtime, whatever the annotation says
    if isinstance(given, FailureRate | SlowCallRate):
        return (given,)
    if isinstance(given, str | bytes) or not isinstance(given, Iterable):
        raise TypeError(
            "trip must be a FailureRate, a SlowCallRate, or an iterable of them, "
            f"got {type(given).__name__}: {given!r}"
        )
    conditions: tuple[object, ...] = tuple(given)
    for position, item in enumerate(conditions):
        if not isinstance(item, FailureRate | SlowCallRate):
            raise TypeError(
                "trip must hold only FailureRate and SlowCallRate conditions, got "
                f"{type(item).__name__} at position {position}: {item!r}"
            )
    return conditions  # type: ignore[return-value]  # every item was checked


# --- the store protocol ----------------------------------------------------------------


class CircuitTransition(NamedTuple):
    """
    A state change that a store made, for the breaker to announce as an event.

    Attributes:
        state: The state entered.
        reason: Why: for `OPEN`, ``"failures"``, ``"failure_rate"``,
            ``"slow_calls"``, ``"half_open_failure"`` or ``"manual"``; for
            `ISOLATED`, ``"isolated"``; for `HALF_OPEN`, ``"reset_timeout"``;
            for `CLOSED`, ``"probes_succeeded"``, ``"manual"`` or ``"reset"``.
        retry_after: For `OPEN`, the seconds the circuit stays open; otherwise `None`.
    """

    state: CircuitState
    reason: str
    retry_after: float | None = None


NO_TRANSITIONS: Final[tuple[CircuitTransition, ...]] = ()


@final
class CircuitPermit:
    """
    A store's permission for one call to run; handed back with the call's outcome.

    Attributes:
        token: The store's own data about the permit (the in-memory store keeps
            a probe's lease); the breaker never reads it.
        transitions: State changes that admitting the call made (an open
            circuit becoming half-open), for the breaker to announce.
    """

    __slots__ = ("token", "transitions")

    def __init__(
        self, token: object = None, transitions: tuple[CircuitTransition, ...] = NO_TRANSITIONS
    ) -> None:
        self.token = token
        self.transitions = transitions

    def __repr__(self) -> str:
        return f"<CircuitPermit token={self.token!r}>"


@final
class CircuitRejection:
    """
    A store's refusal to let a call run.

    Attributes:
        state: The state that refused it: `OPEN`, `ISOLATED`, or `HALF_OPEN`
            with every probe place taken.
        retry_after: Seconds until the circuit admits a probe, or `None` when
            unknown (isolated, or half-open waiting on its probes).
        cause: What opened the circuit, when the store knows: the failure's
            type name and its message, as text (never the exception itself,
            whose traceback would keep frames alive); else `None`.
    """

    __slots__ = ("cause", "retry_after", "state")

    def __init__(
        self,
        state: CircuitState,
        retry_after: float | None,
        cause: tuple[str, str] | None = None,
    ) -> None:
        self.state = state
        self.retry_after = retry_after
        self.cause = cause

    def __repr__(self) -> str:
        return f"<CircuitRejection state={self.state.name} retry_after={self.retry_after!r}>"


@runtime_checkable
class CircuitStore(Protocol):
    """
    Holds the state of one circuit and makes every decision about it atomically.

    The breaker creates its store once, by calling its ``store=`` factory with
    itself; the store reads the configuration from the breaker's attributes
    (``failure_threshold``, ``trip``, ``reset_timeout``,
    ``half_open_max_calls``, ``success_threshold``, ``clock``, ``rng``,
    ``name``). Each method is one atomic step of the state machine described
    in the documentation; methods that change the state return the
    transitions they made, which the breaker announces as events after the
    method returned (never while a lock is held).

    A store never raises for a call's sake: `acquire` returns a
    `CircuitRejection` instead, and outcomes of permits from a period that has
    ended (the circuit opened or closed while the call ran) change nothing.

    `acquire` and `on_success` run on every call: a store should answer them
    without a lock or a round trip while the circuit is closed and has nothing
    to count. A store that can say so in two attributes offers the breaker's
    **fast path** (a `resilience.engine.FastPath`): ``ready``, the permit of
    the closed period (`None` while not closed), and ``settled``, the same
    permit while a success with it would change nothing (`None` otherwise).
    The breaker then reads them instead of calling `acquire` and `on_success`
    (about half the cost). Both are optional; the in-memory store has them.
    """

    def acquire(self) -> CircuitPermit | CircuitRejection:
        """
        Decide whether a call may run now.

        Closed: admit. Open with its period over: become half-open (report the
        transition on the permit) and admit a probe. Half-open: admit a probe
        while fewer than ``half_open_max_calls`` are taken. Otherwise reject.

        Returns:
            A `CircuitPermit` to hand back with the call's outcome, or a
            `CircuitRejection` saying which state refused and the seconds
            until a probe may run.
        """
        ...

    def on_success(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """
        Record that the call admitted by *permit* succeeded.

        Args:
            permit: What `acquire` returned for the call.
            duration: Seconds the call took, measured only when the breaker
                has a `SlowCallRate`; otherwise `None`.

        Returns:
            The transitions made (closing after enough probes, opening when a
            slow-call or rate condition holds), usually none.
        """
        ...

    def on_failure(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """
        Record that the call admitted by *permit* failed (its verdict has ``trip``).

        Args:
            permit: What `acquire` returned for the call.
            duration: Seconds the call took, or `None` (see `on_success`).

        Returns:
            The transitions made (opening), usually none.
        """
        ...

    def on_ignored(self, permit: CircuitPermit, /) -> tuple[CircuitTransition, ...]:
        """
        Release *permit* without an outcome.

        For errors the classifier does not trip on, cancellation and interpreter
        exits, and streams closed early: a probe's place is given back.

        Args:
            permit: What `acquire` returned for the call.

        Returns:
            No transitions, in the in-memory store; a shared store may report
            what it observed.
        """
        ...

    def force(self, state: CircuitState, /) -> tuple[CircuitTransition, ...]:
        """
        Move the circuit by hand: `CLOSED`, `OPEN` (for the next open period) or `ISOLATED`.

        Closing or opening an isolated circuit: closing releases it, opening
        leaves it isolated. Forcing the current state is a no-op, except
        `OPEN`, which starts a new open period.

        Args:
            state: The state to move to.

        Returns:
            The transitions made, none when nothing changed.

        Raises:
            ValueError: For `HALF_OPEN`, which only time reaches.
        """
        ...

    def reset(self) -> tuple[CircuitTransition, ...]:
        """
        Return to the initial state: closed, with nothing counted and no open streak.

        Returns:
            The transition to `CLOSED`, or none if the circuit was closed already.
        """
        ...

    def snapshot(self) -> tuple[CircuitState, float | None]:
        """
        Return the current state and the seconds until half-open.

        Pure: an open circuit whose period is over reads as `HALF_OPEN`, but
        the transition itself happens at the next `acquire`.

        Returns:
            ``(state, retry_after)``: *retry_after* is the seconds until
            half-open, `None` unless the state is `OPEN`.
        """
        ...


@runtime_checkable
class AsyncCircuitStore(Protocol):
    """
    A `CircuitStore` whose decisions are awaited: its circuit lives behind I/O (Redis).

    What a breaker's ``store=`` factory may return instead of a `CircuitStore`
    (`resilience.integrations.redis.AsyncRedisStore` makes one). The same
    state machine, the same atomic steps and transitions; the steps that may
    make a round trip are coroutines, awaited by the breaker in the calling
    task, so the event loop runs other tasks meanwhile. The breaker is then
    an awaiting gate (`resilience.engine.AwaitingGate`): it protects
    coroutine functions, async generator functions and ``async with``
    blocks; a sync function, a generator or ``with`` is a `TypeError` naming
    what to use instead (the store's ``sync_refusal``, when it has one). Its
    manual controls are `CircuitBreaker.aopen`, ``aclose``, ``aisolate`` and
    ``areset``.

    Two steps stay sync, and never wait for I/O: `on_ignored`, called for a
    cancelled call too (a cancelled task cannot await: a store that must
    return a probe's place starts a task for it), and `snapshot`, which
    answers from what the store last read (for `CircuitBreaker.state`).
    """

    async def aacquire(self) -> CircuitPermit | CircuitRejection:
        """As `CircuitStore.acquire`, awaited."""
        ...

    async def aon_success(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """As `CircuitStore.on_success`, awaited."""
        ...

    async def aon_failure(
        self, permit: CircuitPermit, duration: float | None, cause: tuple[str, str] | None, /
    ) -> tuple[CircuitTransition, ...]:
        """
        As `CircuitStore.on_failure`, awaited; *cause* is what failed.

        *cause* is the failure's type name and redacted message (text only):
        the store keeps it as the circuit's cause if this failure opens it, for
        the `CircuitRejection` of later calls.
        """
        ...

    def on_ignored(self, permit: CircuitPermit, /) -> tuple[CircuitTransition, ...]:
        """As `CircuitStore.on_ignored`, without waiting for I/O (see above)."""
        ...

    async def aforce(self, state: CircuitState, /) -> tuple[CircuitTransition, ...]:
        """As `CircuitStore.force`, awaited."""
        ...

    async def areset(self) -> tuple[CircuitTransition, ...]:
        """As `CircuitStore.reset`, awaited."""
        ...

    def snapshot(self) -> tuple[CircuitState, float | None]:
        """As `CircuitStore.snapshot`, from the state last read (no I/O)."""
        ...


# --- windows -----------------------------------------------------------------------------

_BUCKETS: Final = 10


class TripWindow:
    """
    The recent calls of one trip condition: how many, and how many were hits.

    What a circuit store keeps per `FailureRate` or `SlowCallRate` of its
    breaker (made by `resilience.engine.trip_window`); not thread-safe: the
    store calls it under its own lock.

    Attributes:
        rate: The share of hits that trips, in (0, 1].
        minimum: Calls the window must hold before it can trip.
        reason: The transition reason when it trips: ``"failure_rate"`` or ``"slow_calls"``.
        slower_than: For a `SlowCallRate`, the seconds above which a call is
            slow (a hit); `None` for a `FailureRate` (a hit is a failure).
        hits: Hits in the window.
        total: Calls in the window.
    """

    __slots__ = ("hits", "minimum", "rate", "reason", "slower_than", "total")

    timed: bool = False
    """Whether `record` needs the time (a window of the last N seconds)."""

    def __init__(self, condition: FailureRate | SlowCallRate) -> None:
        self.rate = condition.rate
        self.minimum = condition.minimum_calls
        if isinstance(condition, SlowCallRate):
            self.reason = "slow_calls"
            self.slower_than: float | None = condition.slower_than
        else:
            self.reason = "failure_rate"
            self.slower_than = None
        self.hits = 0
        self.total = 0

    def tripped(self) -> bool:
        """Return whether the condition holds: enough calls, and a share of hits >= *rate*."""
        total = self.total
        # hits / total, not hits >= rate * total: 0.55 * 100 is 55.00000000000001,
        # while 55 / 100 rounds to the same double as 0.55, so "at least" holds exactly.
        return total >= self.minimum and self.hits / total >= self.rate

    def record(self, now: float, hit: bool) -> None:  # pragma: no cover - abstract
        """Count one call that ended at *now* (the clock's seconds), a hit or not."""
        raise NotImplementedError

    def clear(self) -> None:  # pragma: no cover - abstract
        """Forget every call (the circuit closed or opened)."""
        raise NotImplementedError


@final
class _CountWindow(TripWindow):
    """The last *size* calls, in a ring."""

    __slots__ = ("_pos", "_ring", "_size")

    def __init__(self, condition: FailureRate | SlowCallRate, size: int) -> None:
        super().__init__(condition)
        self._size = size
        self._ring = bytearray(size)
        self._pos = 0

    def record(self, now: float, hit: bool) -> None:
        pos = self._pos
        if self.total == self._size:
            self.hits -= self._ring[pos]
        else:
            self.total += 1
        self._ring[pos] = hit
        self.hits += hit
        pos += 1
        self._pos = 0 if pos == self._size else pos

    def clear(self) -> None:
        self._ring = bytearray(self._size)
        self._pos = self.hits = self.total = 0


@final
class _TimeWindow(TripWindow):
    """The calls of the last *seconds*, in `_BUCKETS` buckets indexed by ``floor(now / width)``."""

    __slots__ = ("_head", "_hits", "_totals", "_width")

    timed = True

    def __init__(self, condition: FailureRate | SlowCallRate, seconds: float) -> None:
        super().__init__(condition)
        self._width = seconds / _BUCKETS
        self._hits = [0] * _BUCKETS
        self._totals = [0] * _BUCKETS
        self._head: int | None = None  # the index of the newest bucket

    def record(self, now: float, hit: bool) -> None:
        index = math.floor(now / self._width)
        head = self._head
        if head is None or index - head >= _BUCKETS:
            if self.total:
                self.clear()
            self._head = head = index
        elif index > head:
            # Buckets head+1 .. index take the slots of buckets that left the window.
            hits, totals = self._hits, self._totals
            for old in range(head + 1, index + 1):
                slot = old % _BUCKETS
                self.hits -= hits[slot]
                self.total -= totals[slot]
                hits[slot] = totals[slot] = 0
            self._head = head = index
        # index < head only if the clock went back: count the call in the newest bucket.
        slot = head % _BUCKETS
        self._totals[slot] += 1
        self.total += 1
        if hit:
            self._hits[slot] += 1
            self.hits += 1

    def clear(self) -> None:
        self._hits = [0] * _BUCKETS
        self._totals = [0] * _BUCKETS
        self._head = None
        self.hits = self.total = 0


def trip_window(condition: FailureRate | SlowCallRate) -> TripWindow:
    """Return an empty window for *condition*: the last N calls, or the last N seconds."""
    if condition.calls is not None:
        return _CountWindow(condition, condition.calls)
    assert condition.seconds is not None
    return _TimeWindow(condition, condition.seconds)


# --- the in-memory store ---------------------------------------------------------------

_MAKING_LOCKS: Final = fork_safe_lock()
"""Guards the lazy creation of each store's own lock (held for an instant, once per store)."""

_FIRST: Final = CircuitPermit()
"""The permit of every in-memory circuit's first closed period: a period is told
apart from the others of its own store only, so stores may share it."""


_new_count: Callable[[int], Iterator[int]] = itertools.count
"""A count from a start, whose `next` is one step under the GIL (see `_counting`)."""

_UNREACHABLE: Final = 2**62
"""The failures in a row that a breaker without failure_threshold never reaches."""

_LEASE: Final = 60.0
"""The default probe_lease, in seconds: the Redis store's."""


def _to_probe_lease(value: object) -> float:
    return to_seconds("probe_lease", value, expected=_A_DURATION, shown="seconds")


@final
class _Lease:
    """A half-open probe's place, held until *expires* (the store's clock) or its outcome."""

    __slots__ = ("expires",)

    def __init__(self, expires: float) -> None:
        self.expires = expires

    def __repr__(self) -> str:
        return f"<lease until {self.expires!r}>"


@final
class _Period:
    """
    What an in-memory circuit keeps once it has opened: made at its first opening.

    A forked child forgets the probes running at the fork (`forget_calls_in_flight`):
    their places come back, and the outcome of one that ends there is ignored.
    """

    __slots__ = (
        "__weakref__",
        "cause",
        "delay",
        "lease",
        "leases",
        "opens",
        "probes",
        "successes",
        "until",
    )

    def __init__(self, lease: float) -> None:
        self.lease = lease  # seconds a probe holds its place (the store's probe_lease)
        self.until = 0.0  # when the open period ends (OPEN)
        self.opens = 0  # openings since the circuit last closed
        self.delay = 0.0  # the last open period, in seconds
        self.probes = 0  # probe places left in this half-open period
        self.successes = 0  # probe successes in this half-open period
        self.leases: list[_Lease] = []  # the probes running in this half-open period
        self.cause: tuple[str, str] | None = None  # (type, message) of what opened it
        forget_in_child(self)

    def forget_calls_in_flight(self) -> None:
        """In a forked child: the probes running at the fork give their places back."""
        self.probes += len(self.leases)
        self.leases = []


@final
class InMemoryCircuitStore:
    """
    The default `CircuitStore`: the state of one circuit in this process, behind one lock.

    The lock is held for decisions only, and made on first need. While the
    circuit is closed, `acquire` reads one attribute without the lock, and so
    does `on_success` when only consecutive failures are counted and none is
    pending; an open circuit rejects without the lock too; every other step
    takes the lock for a few attribute updates. It offers the fast path (see
    `CircuitStore`). A closed circuit that has never failed costs about 100
    bytes besides its breaker; what an open circuit needs is made when it
    first opens.

    Half-open probes are **leased**, with the same meaning as
    `resilience.integrations.redis.RedisStore`'s ``probe_lease``: a probe that
    has not returned after *probe_lease* seconds gives its place to a new
    probe, and its own outcome, if it ever comes, is then ignored. A probe
    that hangs can so never hold the circuit half-open for good.

    Attributes:
        ready: The permit of the current closed period; `None` while not closed.
        settled: *ready* while a success would change nothing (only
            consecutive failures are counted, and none is pending); else `None`.

    Args:
        breaker: The breaker whose circuit this is; its attributes are the configuration.
        probe_lease: Seconds (or a `datetime.timedelta`) a half-open probe holds
            its place. Make it longer than the protected call can take (a
            `Timeout` inside the breaker bounds it). Default: 60.0. Pass it
            with a factory: ``store=functools.partial(rs.InMemoryCircuitStore,
            probe_lease=30.0)``.

    Raises:
        TypeError, ValueError: On a *probe_lease* that is not a number of
            seconds > 0.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "__weakref__",
        "_breaker",
        "_count",
        "_failures",
        "_lock",
        "_now",
        "_period",
        "_state",
        "_windows",
        "ready",
        "settled",
    )

    def __init__(self, breaker: CircuitBreaker, *, probe_lease: float = 60.0) -> None:
        # The configuration is read from the breaker when needed, not copied:
        # thousands of breakers (per tenant, per model) cost little each.
        self._breaker = breaker
        self._now = breaker.clock.now
        self._lock: threading.Lock | None = None
        self._state = CLOSED
        # The consecutive failures of a closed circuit: with trip windows, an int
        # (under the lock); without, a count that `on_failure` advances without
        # the lock, made at the first failure (`None` until then): see `_counting`.
        self._failures = 0
        self._count: Iterator[int] | None = None
        # Made at the first opening; now only to keep a probe_lease of one's own.
        self._period: _Period | None = (
            None if probe_lease == _LEASE else _Period(_to_probe_lease(probe_lease))
        )
        self._windows = tuple(trip_window(c) for c in breaker.trip)
        # The permit of the current closed period (its identity tells periods
        # apart); None whenever the circuit is not closed.
        self.ready: CircuitPermit | None = _FIRST
        # The same permit while a success would change nothing (only consecutive
        # failures counted, none pending), else None: the breaker's fast path.
        self.settled: CircuitPermit | None = None if self._windows else _FIRST

    def __repr__(self) -> str:
        return f"<InMemoryCircuitStore {self._state.name}>"

    def _locked(self) -> threading.Lock:
        """The store's lock, made on first need (a closed circuit that never failed has none)."""
        lock = self._lock
        if lock is None:
            with _MAKING_LOCKS:
                lock = self._lock
                if lock is None:
                    lock = self._lock = fork_safe_lock()
        return lock

    def _counting(self) -> Iterator[int]:
        """
        A new count of failures in a row: its `next` is their number minus the
        threshold, so the failure that reaches the threshold gets 0.

        The threshold lives in the count, not in a slot of the store.
        """
        threshold = self._breaker.failure_threshold
        return _new_count(1 - (_UNREACHABLE if threshold is None else threshold))

    # --- transitions (called with the lock held) ----------------------------

    def _enter_closed(self, reason: str) -> tuple[CircuitTransition, ...]:
        self._state = CLOSED
        self._failures = 0
        self._count = None
        for window in self._windows:
            window.clear()
        period = self._period
        if period is not None:
            period.opens = 0
            period.delay = 0.0
            period.leases = []
            period.cause = None
        self.ready = permit = CircuitPermit()
        self.settled = None if self._windows else permit
        return (CircuitTransition(CLOSED, reason),)

    def _enter_open(
        self, now: float, reason: str, cause: tuple[str, str] | None = None
    ) -> tuple[CircuitTransition, ...]:
        period = self._period
        if period is None:
            period = self._period = _Period(_LEASE)
        opens = period.opens + 1
        breaker = self._breaker
        reset = breaker.reset_timeout
        if isinstance(reset, float):
            delay = reset
        else:
            delay = reset(opens, period.delay, breaker.rng)
            if not (delay >= 0 and math.isfinite(delay)):
                raise ValueError(
                    f"reset_timeout {reset!r} returned {delay!r} for opening {opens}; "
                    "an open period must be a finite number of seconds >= 0"
                )
            delay = float(delay)
        self.ready = self.settled = None
        # The period's fields first, the state last: `acquire` reads the state,
        # then `until`, without the lock.
        period.opens = opens
        period.delay = delay
        period.until = now + delay
        period.leases = []
        period.cause = cause
        self._failures = 0
        self._count = None
        self._state = OPEN
        return (CircuitTransition(OPEN, reason, delay),)

    def _tripped(self) -> str | None:
        threshold = self._breaker.failure_threshold
        if threshold is not None and self._failures >= threshold:
            return "failures"
        for window in self._windows:
            if window.tripped():
                return window.reason
        return None

    def _record(self, failed: bool, duration: float | None) -> tuple[CircuitTransition, ...]:
        now: float | None = None
        for window in self._windows:
            if window.timed and now is None:
                now = self._now()
            limit = window.slower_than
            if limit is None:
                window.record(now or 0.0, failed)
            else:
                window.record(now or 0.0, duration is not None and duration > limit)
        reason = self._tripped()
        if reason is None:
            return NO_TRANSITIONS
        return self._enter_open(self._now() if now is None else now, reason)

    def _probe(self, permit: CircuitPermit) -> _Lease | None:
        """The lease of *permit* if it is a live probe of this half-open period, else `None`."""
        lease = permit.token
        period = self._period
        if self._state is not HALF_OPEN or period is None or lease not in period.leases:
            return None
        assert isinstance(lease, _Lease)
        period.leases.remove(lease)
        if lease.expires <= self._now():
            period.probes += 1  # expired: its place went back; its outcome comes too late
            return None
        return lease

    def _slow_probe(self) -> float | None:
        """The strictest slow-call limit: a probe slower than it fails."""
        slow = [c.slower_than for c in self._breaker.trip if isinstance(c, SlowCallRate)]
        return min(slow) if slow else None

    # --- the protocol ------------------------------------------------------

    def acquire(self) -> CircuitPermit | CircuitRejection:
        """Admit the call, as a closed-state call or a probe, or reject it (see `CircuitStore`)."""
        permit = self.ready
        if permit is not None:
            return permit
        period = self._period
        if self._state is OPEN and period is not None:
            # Rejected without the lock while the open period lasts: the state
            # is written last when the circuit opens, so `until` is this
            # period's or a later one's.
            left = period.until - self._now()
            if left > 0:
                return CircuitRejection(OPEN, left, period.cause)
        with self._lock or self._locked():
            state = self._state
            transitions = NO_TRANSITIONS
            period = self._period
            if state is OPEN:
                assert period is not None
                now = self._now()
                if now < period.until:
                    return CircuitRejection(OPEN, period.until - now, period.cause)
                # The open period is over: this call is the first probe.
                state = self._state = HALF_OPEN
                period.leases = []
                period.probes = self._breaker.half_open_max_calls
                period.successes = 0
                transitions = (CircuitTransition(HALF_OPEN, "reset_timeout"),)
            else:
                now = self._now() if state is HALF_OPEN else 0.0
            if state is HALF_OPEN:
                assert period is not None
                leases = period.leases
                if period.probes <= 0 and leases and leases[0].expires <= now:
                    # Probes that outlived their lease give their places back.
                    alive = [lease for lease in leases if lease.expires > now]
                    period.probes += len(leases) - len(alive)
                    period.leases = leases = alive
                if period.probes > 0:
                    period.probes -= 1
                    lease = _Lease(now + period.lease)
                    leases.append(lease)
                    return CircuitPermit(lease, transitions)
                return CircuitRejection(HALF_OPEN, None, period.cause)
            if state is CLOSED:  # closed by another thread since the read above
                permit = self.ready
                assert permit is not None
                return permit
            return CircuitRejection(ISOLATED, None)

    def on_success(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """Record a success (see `CircuitStore`)."""
        if permit is self.settled:
            return NO_TRANSITIONS  # the hot path: nothing to write
        with self._lock or self._locked():
            if permit is self.ready:
                if not self._windows:
                    # `settled` first, then a new count: a failure counted without
                    # the lock either went to the old count (it came before this
                    # success) or goes to the new one, and clears `settled` after.
                    self.settled = permit
                    if self._count is not None:
                        self._count = self._counting()
                    return NO_TRANSITIONS
                self._failures = 0
                return self._record(False, duration)
            if self._probe(permit) is None:
                return NO_TRANSITIONS  # from a period that has ended
            period = self._period
            assert period is not None
            limit = self._slow_probe()
            if limit is not None and duration is not None and duration > limit:
                return self._enter_open(self._now(), "half_open_failure")
            period.successes += 1
            if period.successes >= self._breaker.success_threshold:
                return self._enter_closed("probes_succeeded")
            return NO_TRANSITIONS

    def on_failure(
        self, permit: CircuitPermit, duration: float | None, /
    ) -> tuple[CircuitTransition, ...]:
        """Record a failure (see `CircuitStore`)."""
        count = self._count
        if count is not None and permit is self.ready:
            # Counted without the lock: `next` on an itertools.count is one step
            # that no other thread interleaves with (the GIL), so every failure
            # gets its own number and exactly one gets the threshold. `settled`
            # is cleared after the count (see `on_success`).
            beyond = next(count)  # failures in a row, minus the threshold
            self.settled = None
            if beyond < 0:
                return NO_TRANSITIONS
        else:
            count = None  # not counted yet
        with self._lock or self._locked():
            if permit is self.ready:
                if self._windows:
                    self._failures += 1
                    return self._record(True, duration)
                current = self._count
                if count is None or current is not count:
                    # Not counted yet, or counted in a count that a success has
                    # replaced since (this failure then came after it): count it now.
                    if current is None:
                        current = self._count = self._counting()
                    beyond = next(current)
                    self.settled = None
                    if beyond < 0:
                        return NO_TRANSITIONS
                return self._enter_open(self._now(), "failures")
            if self._probe(permit) is not None:
                return self._enter_open(self._now(), "half_open_failure")
            return NO_TRANSITIONS

    def on_ignored(self, permit: CircuitPermit, /) -> tuple[CircuitTransition, ...]:
        """Release a permit without an outcome (see `CircuitStore`)."""
        if permit.token is None:
            return NO_TRANSITIONS  # a closed-state permit holds no place
        with self._lock or self._locked():
            if self._probe(permit) is not None:
                period = self._period
                assert period is not None
                period.probes += 1
        return NO_TRANSITIONS

    def note_opening(self, failure: tuple[str, str], /) -> None:
        """
        Keep what opened the circuit, for its `CircuitRejection`: the failure's
        type name and message (text only: no exception, no traceback, no frames).

        Called by the breaker after an outcome it counted opened the circuit;
        ignored unless the circuit is open. Optional in a `CircuitStore`.
        """
        with self._lock or self._locked():
            period = self._period
            if self._state is OPEN and period is not None:
                period.cause = failure

    def force(self, state: CircuitState, /) -> tuple[CircuitTransition, ...]:
        """Move the circuit by hand (see `CircuitStore`)."""
        with self._lock or self._locked():
            current = self._state
            if state is CLOSED:
                return NO_TRANSITIONS if current is CLOSED else self._enter_closed("manual")
            if state is OPEN:
                if current is ISOLATED:
                    return NO_TRANSITIONS
                return self._enter_open(self._now(), "manual")
            if state is ISOLATED:
                if current is ISOLATED:
                    return NO_TRANSITIONS
                self.ready = self.settled = None
                self._state = ISOLATED
                self._failures = 0
                self._count = None
                if self._period is not None:
                    self._period.leases = []
                return (CircuitTransition(ISOLATED, "isolated"),)
            raise ValueError(
                f"state must be CircuitState.CLOSED, OPEN or ISOLATED, got {state!r} "
                "(a circuit becomes half-open only when its open period ends)"
            )

    def reset(self) -> tuple[CircuitTransition, ...]:
        """Return to the initial state (see `CircuitStore`)."""
        with self._lock or self._locked():
            was_closed = self._state is CLOSED
            transitions = self._enter_closed("reset")
            return NO_TRANSITIONS if was_closed else transitions

    def snapshot(self) -> tuple[CircuitState, float | None]:
        """Return the state and the seconds until half-open (see `CircuitStore`)."""
        with self._lock or self._locked():
            state = self._state
            period = self._period
            if state is OPEN and period is not None:
                left = period.until - self._now()
                if left <= 0:
                    return HALF_OPEN, None
                return OPEN, left
            return state, None


for _cls in (
    CircuitState,
    FailureRate,
    SlowCallRate,
    CircuitTransition,
    CircuitPermit,
    CircuitRejection,
    CircuitStore,
    AsyncCircuitStore,
    InMemoryCircuitStore,
):
    _cls.__module__ = "resilience"
del _cls
