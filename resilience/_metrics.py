"""
Metrics: a bounded, thread-safe, in-process collector that is a hook and a policy.

Three sources feed it, with different costs:

- Failure-path counters (retries, give-ups, rejections, timeouts, circuit
  transitions, fallbacks used, hedges started) come from events. The collector is a `Hook`
  (``rs.add_hook(metrics)`` or ``hooks=[metrics]``): like any hook, it costs
  nothing until something fails.
- Calls, outcomes and latency need the success path too, so the collector is
  also a policy that a pipeline includes on purpose
  (``rs.compose(metrics, retry, breaker)``). Only pipelines that include it pay:
  two clock reads, one lock and a few increments per call.
- Gauges of watched bulkheads (``metrics.watch(bulkhead)``: calls in flight,
  callers queued, the current limit) and the units rate limiters admitted
  (``metrics.watch(limiter)``: a counter the limiter keeps) are read when a
  snapshot is taken or an exporter collects, never on a call's path. They
  are held weakly and duck-typed (`Watchable`, `WatchableLimiter`), so this
  module imports no policy.

The engine (`Observer`: the four drivers and the event dispatch) is shared
with the OpenTelemetry integration, which plugs in a different sink; so both
classify and time calls the same way.

The latency histogram has fixed log-scale buckets: bucket *i* holds
``(L * g**(i-1), L * g**i]`` with ``L`` = 1 µs and ``g = 1.01 / 0.99``, up to
10^5 s; one bucket below (zero and sub-microsecond durations), one above. A
quantile is the nearest-rank bucket's point ``L * g**i * 2 / (g + 1)``, clamped
to the exact minimum and maximum, so it is within 1 % of the exact nearest-rank
value (1 µs absolute below 1 µs). 1 269 counters per observed name, whatever
the number of observations.
"""

from __future__ import annotations

import math
import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Generic, Protocol, Self, TypeAlias, TypeVar, cast, final

import attrs

from ._classify import ErrorClassifier, to_classifier, transient
from ._clock import SYSTEM_CLOCK, Clock
from ._events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    Event,
    FallbackUsed,
    HedgeStarted,
    LimitChanged,
    RateChanged,
    RateLimitWaited,
    RetriesExhausted,
    RetryScheduled,
    TimeoutExpired,
    _describe_error,
    log_ignored,
)
from ._exceptions import (
    RejectedError,
    RetryExhaustedError,
    StreamInterruptedError,
    TimeoutExceededError,
)
from ._explain import Description
from ._fork import fork_safe_lock
from ._gate import Wait, bind_gate
from ._pipeline import Pipeline, Runner, Shape
from ._validate import to_count

__all__ = ["LatencySummary", "MetricsCollector", "MetricsSnapshot", "PolicyMetrics"]


UNNAMED: Final = "default"
"""The label of calls and events whose policy has no name."""

OTHER: Final = "_other"
"""The label that absorbs names beyond ``max_series``."""

MAX_KINDS: Final = 32
"""Outcome keys kept per name besides ``"success"``, ``"other"`` included: kinds past
the 31st are counted as ``"other"``."""

# --- the histogram's geometry -------------------------------------------------

RELATIVE_ERROR: Final = 0.01
_LOW: Final = 1e-6
_HIGH: Final = 1e5
_GAMMA: Final = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_K: Final = 1 / math.log(_GAMMA)
_INV_LOW: Final = 1 / _LOW
_N: Final = math.ceil(math.log(_HIGH / _LOW) * _K)
_TOP: Final = _LOW * _GAMMA**_N  # upper edge of the last regular bucket (>= _HIGH)
_BUCKETS: Final = _N + 2  # [0, L], N regular buckets, (TOP, inf)
# Upper edge of each bucket; a quantile reports upper * _MID, clamped to [min, max].
_UPPER: Final = (_LOW, *(_LOW * _GAMMA**i for i in range(1, _N + 1)), math.inf)
_MID: Final = 2 / (_GAMMA + 1)


def bucket_of(seconds: float) -> int:
    """Return the histogram bucket of a duration (the drivers inline the same arithmetic)."""
    if seconds > _LOW:
        return math.ceil(math.log(seconds * _INV_LOW) * _K) if seconds <= _TOP else _N + 1
    return 0


# --- the engine shared with the OpenTelemetry integration ---------------------


class Recorder(Protocol):
    """
    Where an `Observer` reports the outcome of each call, for one label.

    Durations are seconds on the observer's clock. Called from many threads
    at once: a recorder guards its own state.
    """

    def success(self, seconds: float, /) -> None:
        """Count a call that returned (its result, if judged, is no failure)."""
        ...

    def failure(self, kind: str, seconds: float, /) -> None:
        """Count a failed call, under its outcome *kind* (the classifier's, or ``"error"``)."""
        ...

    def rejected(self, seconds: float, /) -> None:
        """Count a call a policy refused (a `resilience.RejectedError`)."""
        ...

    def cancelled(self, seconds: float, /) -> None:
        """Count a call cancelled or interrupted, or a stream closed early."""
        ...


class Sink(Protocol):
    """
    Where an `Observer` sends what it measures: a `Recorder` per label, and the events.

    `MetricsCollector` keeps them in memory; the OpenTelemetry integration
    sends them to instruments. Labels are policy names, ``"default"`` for
    none.
    """

    def recorder(self, name: str, /) -> Recorder:
        """Return the recorder of the calls labelled *name* (once per pipeline and shape)."""
        ...

    def retry(self, name: str, kind: str, /) -> None:
        """Count a retry scheduled (`resilience.RetryScheduled`) after a failure of *kind*."""
        ...

    def exhausted(self, name: str, reason: str, /) -> None:
        """Count a give-up (`resilience.RetriesExhausted`) for *reason*."""
        ...

    def rejection(self, name: str, reason: str, /) -> None:
        """Count a call refused (`resilience.CallRejected`) for *reason*."""
        ...

    def timeout(self, name: str, idle: bool, /) -> None:
        """Count a deadline that expired (`resilience.TimeoutExpired`); *idle*: a stream's gap."""
        ...

    def transition(self, name: str, state: str, reason: str | None, /) -> None:
        """Count a circuit entering *state* (``"open"``, ``"half_open"``, ...) for *reason*."""
        ...

    def limit_changed(self, name: str, reason: str, /) -> None:
        """
        Count a bulkhead's adaptive limit moving (`resilience.LimitChanged`), for *reason*.

        A sink without this method (written before it existed) is skipped.
        """
        ...

    def fallback(self, name: str, kind: str, /) -> None:
        """
        Count a fallback used (`resilience.FallbackUsed`) instead of a failure of *kind*.

        *kind* is the classifier's kind of the failure replaced, ``"error"``
        without one. A sink without this method (written before it existed)
        is skipped.
        """
        ...

    def hedge(self, name: str, /) -> None:
        """
        Count a hedge started (`resilience.HedgeStarted`).

        A sink without this method (written before it existed) is skipped.
        """
        ...

    def rate_wait(self, name: str, seconds: float, /) -> None:
        """
        Count a call a rate limiter made wait, and for how long (`resilience.RateLimitWaited`).

        A sink without this method (written before it existed) is skipped.
        """
        ...

    def rate_changed(self, name: str, reason: str, /) -> None:
        """
        Count an adaptive rate limiter's rate moving (`resilience.RateChanged`), for *reason*.

        A sink without this method (written before it existed) is skipped.
        """
        ...


S = TypeVar("S", bound=Sink)


class Watchable(Protocol):
    """
    What `Observer.watch` reads: a `resilience.Bulkhead`, or any object with the same figures.

    Duck-typed, so that metrics import no policy. The three figures are read
    when a snapshot is taken or an exporter collects, never on a call's path:
    they must be quick and must not block. The object must take weak
    references (a class with ``__slots__`` lists ``"__weakref__"``; attrs
    classes do by default).
    """

    @property
    def name(self) -> str | None:
        """The label of the figures (`None`, or no ``name`` attribute: ``"default"``)."""
        ...

    @property
    def running(self) -> int:
        """Calls running now: reported as ``in_flight``."""
        ...

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now: reported as ``queued``."""
        ...

    @property
    def limit(self) -> int:
        """Calls that may run at once now: reported as ``limit``."""
        ...


class WatchableLimiter(Protocol):
    """
    What `Observer.watch` reads of a `resilience.RateLimiter`: the units it admitted.

    Duck-typed like `Watchable`, read when a snapshot is taken or an exporter
    collects; it must take weak references.
    """

    @property
    def name(self) -> str | None:
        """The label of the figure (`None`, or no ``name`` attribute: ``"default"``)."""
        ...

    @property
    def admitted(self) -> float:
        """Units admitted since the limiter was made (a counter): reported as ``rate_admitted``."""
        ...


W = TypeVar("W", bound=Watchable | WatchableLimiter)

Gauges: TypeAlias = tuple[int, int, int]
"""``(in_flight, queued, limit)`` of one label: the sums over the objects watched under it."""


@final
class _Watchlist:
    """The objects an observer and its `named` copies watch, held weakly, by label."""

    __slots__ = ("limiters", "lock", "watched")

    def __init__(self) -> None:
        self.lock = fork_safe_lock()
        self.watched: dict[str, weakref.WeakSet[Watchable]] = {}
        self.limiters: dict[str, weakref.WeakSet[WatchableLimiter]] = {}

    def add(self, label: str, target: Watchable | WatchableLimiter) -> None:
        """Watch *target* under *label*: a rate limiter if it has ``admitted``, else a bulkhead."""
        kinds = cast(
            "dict[str, weakref.WeakSet[Any]]",
            self.limiters if hasattr(target, "admitted") else self.watched,
        )
        with self.lock:
            watched = kinds.get(label)
            if watched is None:
                watched = kinds[label] = weakref.WeakSet()
            watched.add(target)

    def admitted(self) -> dict[str, float]:
        """The units the live rate limiters admitted, summed by label."""
        with self.lock:
            for label in [label for label, watched in self.limiters.items() if not watched]:
                del self.limiters[label]
            groups = [(label, list(watched)) for label, watched in self.limiters.items()]
        return {label: sum(t.admitted for t in targets) for label, targets in groups if targets}

    def read(self) -> dict[str, Gauges]:
        """Read every live object now; labels whose objects were all collected are dropped."""
        with self.lock:
            for label in [label for label, watched in self.watched.items() if not watched]:
                del self.watched[label]
            groups = [(label, list(watched)) for label, watched in self.watched.items()]
        readings: dict[str, Gauges] = {}
        for label, targets in groups:  # read outside the lock: the objects have their own
            if targets:
                readings[label] = (
                    sum(t.running for t in targets),
                    sum(t.waiting for t in targets),
                    sum(t.limit for t in targets),
                )
        return readings


def _label(name: str | None) -> str:
    return UNNAMED if name is None else name


def _on_retry(sink: Sink, event: Any) -> None:
    sink.retry(_label(event.name), event.kind or "error")


def _on_exhausted(sink: Sink, event: Any) -> None:
    sink.exhausted(_label(event.name), event.reason)


def _on_rejected(sink: Sink, event: Any) -> None:
    sink.rejection(_label(event.name), event.reason)


def _on_timeout(sink: Sink, event: Any) -> None:
    sink.timeout(_label(event.name), bool(event.idle))


def _on_opened(sink: Sink, event: Any) -> None:
    # `isolate()` announces itself as an opening with reason "isolated".
    state = "isolated" if event.reason == "isolated" else "open"
    sink.transition(_label(event.name), state, event.reason)


def _on_half_opened(sink: Sink, event: Any) -> None:
    sink.transition(_label(event.name), "half_open", None)


def _on_closed(sink: Sink, event: Any) -> None:
    sink.transition(_label(event.name), "closed", event.reason)


def _on_limit_changed(sink: Sink, event: Any) -> None:
    count = getattr(sink, "limit_changed", None)  # a sink written before LimitChanged has none
    if count is not None:
        count(_label(event.name), event.reason)


def _on_fallback(sink: Sink, event: Any) -> None:
    count = getattr(sink, "fallback", None)  # a sink written before FallbackUsed has none
    if count is not None:
        count(_label(event.name), event.kind or "error")


def _on_rate_wait(sink: Sink, event: Any) -> None:
    count = getattr(sink, "rate_wait", None)  # a sink written before RateLimitWaited has none
    if count is not None:
        count(_label(event.name), float(event.delay))


def _on_rate_changed(sink: Sink, event: Any) -> None:
    count = getattr(sink, "rate_changed", None)  # a sink written before RateChanged has none
    if count is not None:
        count(_label(event.name), event.reason)


def _on_hedge(sink: Sink, event: Any) -> None:
    count = getattr(sink, "hedge", None)  # a sink written before HedgeStarted has none
    if count is not None:
        count(_label(event.name))


_HANDLERS: Final[dict[type[Event], Callable[[Sink, Any], None]]] = {
    RetryScheduled: _on_retry,
    RetriesExhausted: _on_exhausted,
    CallRejected: _on_rejected,
    TimeoutExpired: _on_timeout,
    CircuitOpened: _on_opened,
    CircuitHalfOpened: _on_half_opened,
    CircuitClosed: _on_closed,
    LimitChanged: _on_limit_changed,
    FallbackUsed: _on_fallback,
    HedgeStarted: _on_hedge,
    RateLimitWaited: _on_rate_wait,
    RateChanged: _on_rate_changed,
}


def _check_name(name: object) -> None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}: {name!r}")


def _check_clock(clock: object) -> None:
    if not callable(getattr(clock, "now", None)):
        raise TypeError(f"clock must have now(), got {clock!r}")


class Observer(Generic[S]):
    """
    A hook and a policy feeding a `Sink`: what `MetricsCollector` and the OpenTelemetry
    integration are.

    As a policy (``rs.compose(observer, ...)``) it times every call and
    counts its outcome: a success, the classifier's kind of failure (or
    ``"error"``), a rejection, a cancellation. As a hook (``rs.add_hook``) it
    counts retries, give-ups, rejections, timeouts, circuit transitions,
    limit changes, fallbacks used and hedges started. Through `watch` it
    reports bulkheads' gauges, read when asked (`_gauges`). A subclass builds
    its sink and calls ``self._setup(sink, name, on, clock, results)`` in
    ``__init__``; `named` copies share the sink and the watched objects.
    """

    __slots__ = ("_classify", "_clock", "_name", "_results", "_sink", "_watching")

    _sink: S
    _name: str | None
    _clock: Clock
    _classify: Callable[[object], Any]
    _results: bool
    _watching: _Watchlist

    def _setup(self, sink: S, name: str | None, on: object, clock: Clock, results: bool) -> None:
        _check_name(name)
        _check_clock(clock)
        if not isinstance(results, bool):
            raise TypeError(f"results must be a bool, got {type(results).__name__}: {results!r}")
        classifier: ErrorClassifier = to_classifier(on)
        self._sink = sink
        self._name = name
        self._clock = clock
        self._classify = classifier.classify
        self._results = results and classifier.handles_results
        self._watching = _Watchlist()

    @property
    def name(self) -> str | None:
        """The label of the calls this observer times; `None` is reported as ``"default"``."""
        return self._name

    def named(self, name: str | None) -> Self:
        """
        Return a copy that labels the calls it observes *name*, sharing this one's storage.

        One collector serves several pipelines this way:
        ``rs.compose(metrics.named("billing"), retry)``. Events are labelled by
        the name of the policy that emits them, whichever copy receives them.

        Args:
            name: The label. `None` is reported as ``"default"``.

        Raises:
            TypeError: If *name* is not a str or `None`.
        """
        _check_name(name)
        clone = object.__new__(type(self))
        clone._sink = self._sink
        clone._name = name
        clone._clock = self._clock
        clone._classify = self._classify
        clone._results = self._results
        clone._watching = self._watching
        return clone

    # --- gauges, read when asked ---------------------------------------------------

    def watch(self, bulkhead: W, /) -> W:
        """
        Report *bulkhead*'s calls in flight, callers queued and current limit, or a rate
        limiter's units admitted.

        The figures (``running``, ``waiting`` and ``limit``, see `Watchable`;
        a rate limiter's ``admitted``, see `WatchableLimiter`) are read when a
        snapshot is taken or an exporter collects, never on a call's path.
        They are labelled by the object's ``name`` (``"default"`` for `None`);
        objects sharing a label are summed. The object is held weakly: once it
        is garbage-collected, its figures are no longer reported. Watching it
        twice changes nothing; `named` copies share what they watch.

        Args:
            bulkhead: A `resilience.Bulkhead` (or any object with the same
                ``running``, ``waiting`` and ``limit`` properties), or a
                `resilience.RateLimiter` (any object with ``admitted``).

        Returns:
            *bulkhead*, so that ``llm = metrics.watch(rs.Bulkhead(...))`` works.

        Raises:
            TypeError: If *bulkhead* lacks one of the three figures (and
                ``admitted``), has a ``name`` that is not a str or `None`, or
                takes no weak references.
        """
        missing = [key for key in ("running", "waiting", "limit") if not hasattr(bulkhead, key)]
        if missing and not hasattr(bulkhead, "admitted"):
            raise TypeError(
                f"watch() needs running, waiting and limit (a Bulkhead) or admitted "
                f"(a RateLimiter); {type(bulkhead).__name__} has no {', '.join(missing)}"
            )
        name = getattr(bulkhead, "name", None)
        _check_name(name)
        try:
            weakref.ref(bulkhead)
        except TypeError:
            raise TypeError(
                f"watch() holds what it watches weakly; {type(bulkhead).__name__} takes no "
                "weak references (add '__weakref__' to its __slots__)"
            ) from None
        self._watching.add(self._watch_label(_label(name)), bulkhead)
        return bulkhead

    def _watch_label(self, name: str) -> str:
        """The label a watched object's figures are reported under (a sink may cap names)."""
        return name

    def _gauges(self) -> dict[str, Gauges]:
        """Read the watched objects now: ``(in_flight, queued, limit)`` by label."""
        return self._watching.read()

    def _admitted(self) -> dict[str, float]:
        """Read the watched rate limiters now: units admitted, by label."""
        return self._watching.admitted()

    # --- the hook --------------------------------------------------------------

    def __call__(self, event: Event, /) -> None:
        """
        Count *event* (the `Hook` protocol): retries, give-ups, rejections, timeouts, and so on.

        Also circuit transitions, adaptive limit changes (`LimitChanged`),
        fallbacks used (`FallbackUsed`) and hedges started (`HedgeStarted`).

        Events are labelled by the ``name`` of the policy that emitted them.
        Other events are ignored.

        Raises:
            TypeError: If *event* is not an `Event` (for instance when the
                collector is mistaken for a decorator: use
                ``rs.compose(collector)(fn)``).
        """
        handler = _HANDLERS.get(type(event))
        if handler is None:
            if not isinstance(event, Event):
                raise TypeError(
                    f"{type(self).__name__} is a hook (it receives events) and a policy for "
                    "compose(), not a decorator: use rs.compose(collector, ...)(fn); "
                    f"got {type(event).__name__}: {event!r}"
                )
            for cls in type(event).__mro__[1:]:
                handler = _HANDLERS.get(cls)
                if handler is not None:
                    break
            else:
                return
        handler(self._sink, event)

    # --- classification (failure path, and results when the classifier asks) ----

    def _kind(self, exc: Exception) -> str | None:
        """The outcome key of a failed call; `None` for a rejection."""
        if isinstance(exc, RejectedError):
            return None
        kind: str | None = None
        try:
            if isinstance(exc, RetryExhaustedError):
                kind = self._classify(exc.last_result).kind
            else:
                kind = self._classify(exc).kind
                if kind is None:
                    if isinstance(exc, TimeoutExceededError):
                        kind = "timeout"
                    elif isinstance(exc, StreamInterruptedError) and isinstance(
                        exc.__cause__, Exception
                    ):
                        kind = self._classify(exc.__cause__).kind
        except Exception as error:  # the caller's exception is not chained, only described
            log_ignored(
                error,
                "resilience: metrics could not classify %s; counted as 'error'",
                _describe_error(exc),
                outer=(exc,),
            )
        return kind or "error"

    def _failed(self, rec: Recorder, exc: Exception, seconds: float) -> None:
        try:
            kind = self._kind(exc)
            if kind is None:
                rec.rejected(seconds)
            else:
                rec.failure(kind, seconds)
        except Exception as error:  # instrumentation never changes the outcome
            log_ignored(
                error, "resilience: metrics failed to record a failure; ignored", outer=(exc,)
            )

    def _result(self, rec: Recorder, result: object, seconds: float) -> None:
        """Record a returned result: a failure if the classifier gives it a kind or a verdict."""
        try:
            verdict = self._classify(result)
        except Exception as error:
            log_ignored(
                error,
                "resilience: metrics could not classify a result; counted a success",
                outer=(result,),
            )
            rec.success(seconds)
            return
        if verdict.kind is not None:
            rec.failure(str(verdict.kind), seconds)
        elif verdict.retry or verdict.trip:
            rec.failure("error", seconds)
        else:
            rec.success(seconds)

    # --- the policy ------------------------------------------------------------

    def describe(self) -> Description:
        """
        Return what this observer does as a policy, for `resilience.Pipeline.explain`.

        It times each call and counts its outcome; it adds no attempts and no time.
        """
        return Description(
            title=f"{type(self).__name__} {_label(self._name)!r}: times every call and "
            "counts its outcome",
            details=(
                "outcome of each call: 'success', the classifier's kind (or 'error'), "
                "'rejected' or 'cancelled'",
            ),
        )

    def explain(self) -> str:
        """Return a readable description of this observer as a policy (see `Pipeline.explain`)."""
        return Pipeline((self,)).explain()

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner that times and counts each call of *inner* (see `resilience.Policy`).

        Called once per pipeline and shape. The label's storage is resolved
        here, so a call costs two clock reads and one record.
        """
        rec = self._sink.recorder(_label(self._name))
        if shape is Shape.SYNC or shape is Shape.ASYNC:
            return bind_gate(_Meter(self, rec), inner, shape)
        return bind_gate(_StreamMeter(self, rec), inner, shape)


@final
class _Admitted:
    """The fast path of a meter: every call is admitted, every success reported."""

    __slots__ = ()
    ready: Final = True
    settled: Final = None


_ADMITTED: Final = _Admitted()


@final
class _Meter:
    """The gate of an observer around calls: the engine times them, the meter counts."""

    __slots__ = ("_classify", "_observer", "_rec", "_results", "clock")

    timed: Final = True
    results: Final = False
    fast: Final = _ADMITTED

    def __init__(self, observer: Observer[Any], rec: Recorder) -> None:
        self._observer = observer
        self._rec = rec
        self._results = observer._results
        self._classify = observer._classify
        self.clock = observer._clock

    def admit(self, target: object, /) -> bool:
        return True  # pragma: no cover - the fast path always admits

    def on_success(self, permit: object, result: object, duration: Any, target: object, /) -> None:
        if self._results:
            try:
                verdict = self._classify(result)
            except Exception:
                verdict = None
            # A result no rule matched (the common case) is a success, inline.
            if verdict is None or verdict.kind is not None or verdict.retry or verdict.trip:
                self._observer._result(self._rec, result, duration)
                return
        self._rec.success(duration)

    def on_failure(
        self, permit: object, error: Exception, duration: Any, target: object, /
    ) -> None:
        self._observer._failed(self._rec, error, duration)

    def on_cancel(
        self, permit: object, error: BaseException, duration: Any, target: object, /
    ) -> None:
        self._rec.cancelled(duration)

    def on_expired(self, wait: Wait, target: object, /) -> None:  # pragma: no cover - never waits
        raise AssertionError("a meter never waits")


@final
class _StreamMeter:
    """
    The gate of an observer around streams: one call from the first item asked to the end.

    Items and return values are not classified. A consumer that stops early
    (``close()``) makes it "cancelled", like any `BaseException` that is not an
    `Exception`. The permit is the instant the stream started.
    """

    __slots__ = ("_now", "_observer", "_rec", "clock")

    timed: Final = False
    results: Final = False
    fast: Final = None

    def __init__(self, observer: Observer[Any], rec: Recorder) -> None:
        self._observer = observer
        self._rec = rec
        self.clock = observer._clock
        self._now = observer._clock.now

    def admit(self, target: object, /) -> float:
        return self._now()

    def on_success(self, start: float, result: object, duration: Any, target: object, /) -> None:
        self._rec.success(self._now() - start)

    def on_failure(self, start: float, error: Exception, duration: Any, target: object, /) -> None:
        self._observer._failed(self._rec, error, self._now() - start)

    def on_cancel(
        self, start: float, error: BaseException, duration: Any, target: object, /
    ) -> None:
        self._rec.cancelled(self._now() - start)

    def on_expired(self, wait: Wait, target: object, /) -> None:  # pragma: no cover - never waits
        raise AssertionError("a meter never waits")


# --- the in-process sink ------------------------------------------------------


@final
class _Series:
    """Everything counted under one name, guarded by one lock (a `Recorder`)."""

    __slots__ = (
        "counts",
        "exhausted",
        "fallbacks",
        "hedges",
        "hi",
        "limit_changes",
        "lo",
        "lock",
        "outcomes",
        "rate_changes",
        "rate_waited",
        "rate_waits",
        "rejections",
        "retries",
        "state",
        "successes",
        "timeouts",
        "total",
        "transitions",
    )

    def __init__(self) -> None:
        self.lock = fork_safe_lock()
        self.counts: list[int] | None = None  # allocated for names a policy is bound to
        self.state: str | None = None
        self._zero()

    def _zero(self) -> None:
        self.successes = 0
        self.outcomes: dict[str, int] = {}
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.retries = 0
        self.exhausted = 0
        self.rejections = 0
        self.timeouts = 0
        self.transitions: dict[str, int] = {}
        self.limit_changes = 0
        self.fallbacks = 0
        self.hedges = 0
        self.rate_waits = 0
        self.rate_waited = 0.0
        self.rate_changes = 0
        if self.counts is not None:
            self.counts = [0] * _BUCKETS

    def ensure_histogram(self) -> None:
        with self.lock:
            if self.counts is None:
                self.counts = [0] * _BUCKETS

    def success(self, seconds: float, /) -> None:
        # bucket_of(), inlined, and acquire/release rather than `with` (about
        # 50 ns less): this is the hot path of metered pipelines.
        if seconds > _LOW:
            i = math.ceil(math.log(seconds * _INV_LOW) * _K) if seconds <= _TOP else _N + 1
        else:
            i = 0
            if seconds < 0.0:
                seconds = 0.0
        lock = self.lock
        lock.acquire()
        try:
            self.successes += 1
            self.counts[i] += 1  # type: ignore[index]
            self.total += seconds
            if seconds < self.lo:
                self.lo = seconds
            if seconds > self.hi:
                self.hi = seconds
        finally:
            lock.release()

    def failure(self, kind: str, seconds: float, /) -> None:
        seconds = max(seconds, 0.0)
        i = bucket_of(seconds)
        with self.lock:
            self._count(kind)
            if self.counts is None:
                self.counts = [0] * _BUCKETS
            self.counts[i] += 1
            self.total += seconds
            self.lo = min(self.lo, seconds)
            self.hi = max(self.hi, seconds)

    # Rejected and cancelled calls are counted, not timed: their durations
    # would drag the quantiles of one shared histogram towards zero.

    def rejected(self, seconds: float, /) -> None:
        with self.lock:
            self._count("rejected")

    def cancelled(self, seconds: float, /) -> None:
        with self.lock:
            self._count("cancelled")

    def _count(self, key: str) -> None:
        outcomes = self.outcomes
        if key not in outcomes and len(outcomes) >= MAX_KINDS - 1:
            key = "other"
        outcomes[key] = outcomes.get(key, 0) + 1

    def snapshot(
        self, name: str, gauges: Gauges | None, admitted: float | None = None
    ) -> PolicyMetrics:
        in_flight, queued, limit = (None, None, None) if gauges is None else gauges
        with self.lock:
            outcomes = dict(self.outcomes)
            if self.successes:
                outcomes["success"] = self.successes
            buckets = (
                ()
                if self.counts is None
                else tuple((_UPPER[i], c) for i, c in enumerate(self.counts) if c)
            )
            observed = sum(count for _, count in buckets)
            latency = LatencySummary(
                count=observed,
                total=self.total,
                min=self.lo if observed else None,
                max=self.hi if observed else None,
                buckets=buckets,
            )
            return PolicyMetrics(
                name=name,
                calls=sum(outcomes.values()),
                outcomes=types.MappingProxyType(dict(sorted(outcomes.items()))),
                retries=self.retries,
                retries_exhausted=self.exhausted,
                rejections=self.rejections,
                timeouts=self.timeouts,
                circuit_state=self.state,
                circuit_transitions=types.MappingProxyType(dict(sorted(self.transitions.items()))),
                limit_changes=self.limit_changes,
                fallbacks=self.fallbacks,
                hedges=self.hedges,
                rate_waits=self.rate_waits,
                rate_waited=self.rate_waited,
                rate_changes=self.rate_changes,
                rate_admitted=admitted,
                in_flight=in_flight,
                queued=queued,
                limit=limit,
                latency=latency,
            )

    def reset(self) -> None:
        with self.lock:
            self._zero()  # the last known circuit state stays: it is a state, not a count


@final
class _Store:
    """The in-process sink: one `_Series` per name, at most ``max_series`` (+ the overflow)."""

    __slots__ = ("lock", "max_series", "series")

    def __init__(self, max_series: int) -> None:
        self.lock = fork_safe_lock()
        self.max_series = max_series
        self.series: dict[str, _Series] = {}

    def get(self, name: str) -> _Series:
        series = self.series.get(name)
        if series is None:
            with self.lock:
                series = self.series.get(name)
                if series is None:
                    if len(self.series) >= self.max_series and name != OTHER:
                        name = OTHER
                    series = self.series.get(name)
                    if series is None:
                        series = self.series[name] = _Series()
        return series

    def label(self, name: str) -> str:
        """Return *name*, known from now on, or ``"_other"`` once ``max_series`` names are."""
        self.get(name)
        return name if name in self.series else OTHER  # names are never forgotten

    def recorder(self, name: str, /) -> _Series:
        series = self.get(name)
        series.ensure_histogram()
        return series

    def retry(self, name: str, kind: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.retries += 1

    def exhausted(self, name: str, reason: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.exhausted += 1

    def rejection(self, name: str, reason: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.rejections += 1

    def timeout(self, name: str, idle: bool, /) -> None:
        series = self.get(name)
        with series.lock:
            series.timeouts += 1

    def transition(self, name: str, state: str, reason: str | None, /) -> None:
        series = self.get(name)
        with series.lock:
            series.state = state
            series.transitions[state] = series.transitions.get(state, 0) + 1

    def limit_changed(self, name: str, reason: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.limit_changes += 1

    def fallback(self, name: str, kind: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.fallbacks += 1

    def hedge(self, name: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.hedges += 1

    def rate_wait(self, name: str, seconds: float, /) -> None:
        series = self.get(name)
        with series.lock:
            series.rate_waits += 1
            series.rate_waited += seconds

    def rate_changed(self, name: str, reason: str, /) -> None:
        series = self.get(name)
        with series.lock:
            series.rate_changes += 1


# --- snapshots ------------------------------------------------------------------


def _quantile(
    buckets: tuple[tuple[float, int], ...], n: int, q: float, lo: float, hi: float
) -> float:
    rank = max(1, math.ceil(q * n))
    seen = 0
    for upper, count in buckets:
        seen += count
        if seen >= rank:
            return min(max(upper * _MID, lo), hi)
    return hi  # pragma: no cover - the counts add up to n


@final
@attrs.frozen(kw_only=True)
class LatencySummary:
    """
    The latency histogram of one name: exact count, sum, min and max, estimated quantiles.

    Durations of calls that succeeded or failed are observed; rejected and
    cancelled calls are not (they would drag the quantiles towards zero).

    Quantiles come from fixed log-scale buckets: the estimate of the
    nearest-rank value (the ``ceil(q * count)``-th smallest duration) is
    within `RELATIVE_ERROR` (1 %) of it for durations between 1 µs and
    10^5 s, within 1 µs below that, and the exact `max` above.

    Attributes:
        count: Durations observed.
        total: Their sum, in seconds.
        min: The shortest, in seconds (`None` when nothing was observed).
        max: The longest, in seconds (`None` when nothing was observed).
        buckets: ``(upper_bound_seconds, count)`` of each non-empty bucket, in
            increasing order (the last bound may be ``inf``). Not in `as_dict`.
    """

    RELATIVE_ERROR: ClassVar[float] = RELATIVE_ERROR
    """The bound on a quantile's relative error between 1 µs and 10^5 s."""

    count: int
    total: float
    min: float | None
    max: float | None
    buckets: tuple[tuple[float, int], ...] = attrs.field(repr=False)

    @property
    def mean(self) -> float | None:
        """The mean duration in seconds, exact (`None` when nothing was observed)."""
        return self.total / self.count if self.count else None

    @property
    def p50(self) -> float | None:
        """The median duration in seconds (`None` when nothing was observed)."""
        return self.quantile(0.5)

    @property
    def p95(self) -> float | None:
        """The 95th percentile in seconds (`None` when nothing was observed)."""
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        """The 99th percentile in seconds (`None` when nothing was observed)."""
        return self.quantile(0.99)

    def quantile(self, q: float) -> float | None:
        """
        Estimate the *q*-quantile of the observed durations.

        Args:
            q: Between 0 and 1 (0.99 for p99).

        Returns:
            Seconds, within the documented error of the nearest-rank value;
            `None` when nothing was observed.

        Raises:
            ValueError: If *q* is not between 0 and 1.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be between 0 and 1, got {q!r}")
        if not self.count or self.min is None or self.max is None:
            return None
        return _quantile(self.buckets, self.count, q, self.min, self.max)

    def as_dict(self) -> dict[str, Any]:
        """Return plain, JSON-serialisable data: count, sum, min, max, mean, p50, p95, p99."""
        return {
            "count": self.count,
            "sum": self.total,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
        }


@final
@attrs.frozen(kw_only=True)
class PolicyMetrics:
    """
    What a `MetricsCollector` counted under one name (a pipeline's or a policy's).

    Attributes:
        name: The label (``"default"`` for unnamed policies, ``"_other"`` for
            names beyond ``max_series``).
        calls: Calls observed by the collector bound under this name; the sum
            of `outcomes`.
        outcomes: Calls by outcome: ``"success"``, the classifier's kind of a
            failure (``"server"``, ``"timeout"``, ``"rate_limit"``, ...,
            ``"error"`` when it has none), ``"rejected"`` (a policy refused
            the call) and ``"cancelled"`` (cancellation, interpreter exit, a
            stream closed early). Only non-zero entries.
        retries: `RetryScheduled` events from policies of this name.
        retries_exhausted: `RetriesExhausted` events.
        rejections: `CallRejected` events.
        timeouts: `TimeoutExpired` events.
        circuit_state: The last state announced by a breaker of this name
            (``"closed"``, ``"open"``, ``"half_open"``, ``"isolated"``), or
            `None` if none announced a transition.
        circuit_transitions: Transitions announced, by the state entered.
        limit_changes: `LimitChanged` events: an adaptive bulkhead limit moved.
        fallbacks: `FallbackUsed` events: a `Fallback` answered instead of the call.
        hedges: `HedgeStarted` events: a `Hedge` started another copy of a call.
        rate_waits: `RateLimitWaited` events: calls a `RateLimiter` made wait.
        rate_waited: The seconds those calls waited, in total.
        rate_changes: `RateChanged` events: an adaptive rate limiter's rate moved.
        rate_admitted: Units admitted by the rate limiters watched under this
            name (`MetricsCollector.watch`; `resilience.RateLimiter.admitted`:
            settled costs, waiters that gave up taken out), read when the
            snapshot was taken; a counter since each limiter was made, which
            `MetricsCollector.reset` leaves alone. `None` if none is watched.
        in_flight: Calls running now in the bulkheads watched under this name
            (`MetricsCollector.watch`), read when the snapshot was taken;
            `None` if none is watched (or all were garbage-collected).
        queued: Callers waiting in their queues now; `None` likewise.
        limit: Their current limit (summed, if several share the name);
            `None` likewise.
        latency: The durations of the calls observed.
    """

    name: str
    calls: int
    outcomes: Mapping[str, int]
    retries: int
    retries_exhausted: int
    rejections: int
    timeouts: int
    circuit_state: str | None
    circuit_transitions: Mapping[str, int]
    latency: LatencySummary
    limit_changes: int = 0
    fallbacks: int = 0
    hedges: int = 0
    rate_waits: int = 0
    rate_waited: float = 0.0
    rate_changes: int = 0
    rate_admitted: float | None = None
    in_flight: int | None = None
    queued: int | None = None
    limit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return plain, JSON-serialisable data (the fields, ``latency`` as in `LatencySummary`)."""
        return {
            "calls": self.calls,
            "outcomes": dict(self.outcomes),
            "retries": self.retries,
            "retries_exhausted": self.retries_exhausted,
            "rejections": self.rejections,
            "timeouts": self.timeouts,
            "circuit_state": self.circuit_state,
            "circuit_transitions": dict(self.circuit_transitions),
            "limit_changes": self.limit_changes,
            "fallbacks": self.fallbacks,
            "hedges": self.hedges,
            "rate_waits": self.rate_waits,
            "rate_waited": self.rate_waited,
            "rate_changes": self.rate_changes,
            "rate_admitted": self.rate_admitted,
            "in_flight": self.in_flight,
            "queued": self.queued,
            "limit": self.limit,
            "latency": self.latency.as_dict(),
        }


@final
@attrs.frozen
class MetricsSnapshot:
    """
    An immutable view of a `MetricsCollector` at one moment: one `PolicyMetrics` per name.

    Each name's figures are consistent with each other (read under its lock);
    names are read one after the other.

    Attributes:
        series: `PolicyMetrics` by name, sorted by name.
    """

    series: Mapping[str, PolicyMetrics]

    def __getitem__(self, name: str) -> PolicyMetrics:
        """
        Return the metrics of *name*.

        Raises:
            KeyError: If nothing was recorded under *name*.
        """
        try:
            return self.series[name]
        except KeyError:
            raise KeyError(f"no metrics for {name!r}; names: {sorted(self.series)}") from None

    def as_dict(self) -> dict[str, Any]:
        """
        Return plain, JSON-serialisable data: ``{"series": {name: {...}}}``.

        ``json.dumps(snapshot.as_dict())`` works as is; see `PolicyMetrics.as_dict`.
        """
        return {"series": {name: m.as_dict() for name, m in self.series.items()}}


# --- the collector ----------------------------------------------------------------


@final
class MetricsCollector(Observer[_Store]):
    """
    Count calls, outcomes, retries, rejections, timeouts and circuit states, in memory.

    A collector is both a `Hook` and a policy:

    - As a hook (``rs.add_hook(metrics)``, or ``hooks=[metrics]`` on some
      policies) it counts failure-path events, labelled by the ``name`` of the
      policy that emitted them: retries, give-ups, rejections, timeouts,
      circuit transitions, limit changes, fallbacks used and hedges started.
      Like every hook it costs nothing until something fails.
    - As a policy in a pipeline (``rs.compose(metrics, retry, breaker)``) it
      times every call and counts its outcome, labelled by the collector's
      `name`. Outermost, it sees one call per logical call (retries
      included in its latency); innermost, one per attempt. Only pipelines
      that include it pay for it: two clock reads, one lock, a few increments.
    - Through `watch` (``metrics.watch(bulkhead)``) it reports a bulkhead's
      calls in flight, callers queued and current limit, and
      (``metrics.watch(limiter)``) a rate limiter's units admitted, read
      when a snapshot is taken: nothing on any call's path.

    Thread-safe (one lock per name, never held while user code runs) and
    bounded in memory: at most *max_series* names (further names are counted
    under ``"_other"``), at most 32 outcome kinds per name, and a fixed-size
    latency histogram (1 269 counters, allocated for names a collector is bound
    under) whatever the number of calls. See `LatencySummary` for its error
    bound.

    Args:
        name: The label of the calls this collector times when it is bound in
            a pipeline. Default: `None`, reported as ``"default"``. Use
            `named` for other pipelines sharing the same storage.
        on: What the outcome of a call is: an `ErrorClassifier` (or anything
            ``on=`` accepts elsewhere). Exceptions are classified on the
            failure path; results too when the classifier has result rules (a
            returned 503 response counts as ``"server"``). Default:
            `resilience.transient`.
        results: Whether returned results are classified (when *on* has
            rules for results). Default: `True`. `False` saves the
            classification on every success (about 0.15 µs with
            `resilience.transient`) when failures are always raised.
        clock: Where durations are read. Default: the system clock.
        max_series: How many names are kept. Default: 256.

    Raises:
        TypeError: On an argument of the wrong type.
        ValueError: If *max_series* is below 1.

    .. versionadded:: 0.1.0
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        name: str | None = None,
        on: object = transient,
        results: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        max_series: int = 256,
    ) -> None:
        self._setup(_Store(to_count("max_series", max_series)), name, on, clock, results)

    def __repr__(self) -> str:
        return f"MetricsCollector(name={self._name!r}, series={len(self._sink.series)})"

    def snapshot(self) -> MetricsSnapshot:
        """
        Return an immutable, JSON-serialisable (`MetricsSnapshot.as_dict`) view of the counts.

        The gauges of watched bulkheads and the units watched rate limiters
        admitted (`watch`) are read now.

        Returns:
            The metrics of every name seen or watched so far (zeros after `reset`).
        """
        gauges = self._gauges()
        admitted = self._admitted()
        with self._sink.lock:
            items = sorted(self._sink.series.items())
        return MetricsSnapshot(
            types.MappingProxyType(
                {
                    name: series.snapshot(name, gauges.get(name), admitted.get(name))
                    for name, series in items
                }
            )
        )

    def _watch_label(self, name: str) -> str:
        return self._sink.label(name)  # the name appears in snapshots from now on

    def reset(self) -> None:
        """
        Set every count and histogram back to zero.

        Names stay known (pipelines bound to them keep recording), and so does
        the last circuit state announced for each: a state is not a count.
        Watched bulkheads stay watched: their gauges are read, not counted.
        """
        with self._sink.lock:
            series = list(self._sink.series.values())
        for s in series:
            s.reset()


for _cls in (LatencySummary, MetricsCollector, MetricsSnapshot, PolicyMetrics):
    _cls.__module__ = "resilience"
