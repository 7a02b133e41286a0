"""
Adaptive concurrency limits for `resilience.Bulkhead`: the limit finds itself.

A fixed ``max_concurrent`` is a number someone guessed. An adaptive limit
moves between a minimum and a maximum from what the calls show: it drops when
calls fail with an overload (a 429, a 503, a timeout) or their latency climbs
above the baseline, and grows while calls succeed at the baseline latency.

```python
bulkhead = rs.Bulkhead(max_concurrent=rs.limits.AIMD(initial=10, maximum=50), name="llm")
```

A limit is a small stateful object (one per bulkhead) with the `Limit`
protocol: the current ``limit``, and ``update(rtt, inflight, dropped)``,
called after every call with what it showed. Write your own the same way.

Two builtins, after Netflix's ``concurrency-limits``:

- `AIMD` listens to overloads only (and, optionally, to calls slower than a
  timeout): one more slot per round trip, a tenth fewer per overload. Simple
  and robust when the dependency says "too much" with 429s, 503s or timeouts.
- `Gradient` listens to latency too: it learns the latency the dependency
  has when it is not queueing, and shrinks the limit as the recent latency
  rises above it, before anything fails.

`overload` is the classifier a bulkhead uses by default to tell an overload
(a *drop*) from any other failure.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from datetime import timedelta
from typing import Final, Protocol, final, runtime_checkable

from ._classify import ErrorClassifier, Rule, _ThirdParty
from ._validate import to_count, to_seconds

__all__ = ["AIMD", "Gradient", "Limit", "overload"]


@runtime_checkable
class Limit(Protocol):
    """
    An adaptive concurrency limit: what a `resilience.Bulkhead` asks after each call.

    A limit holds state (its current value, a latency baseline): give each
    bulkhead its own. The bulkhead calls `update` under its lock, once per
    call that ended, never concurrently; `update` must be quick and must not
    block.
    """

    @property
    def limit(self) -> int:
        """The current limit: how many calls may run at once (>= 1)."""
        ...

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        """
        Learn from one call that ended, and return the new limit.

        Args:
            rtt: Seconds the call took (on the bulkhead's clock).
            inflight: Calls running when it started, itself included.
            dropped: Whether it failed with an overload (the bulkhead's
                *overload* classifier tripped on it: a 429, a 503, a timeout).

        Returns:
            The new limit, between the limit's minimum and maximum.
        """
        ...


overload: Final = ErrorClassifier(
    [
        Rule(status=429, kind="rate_limit", trip=True),
        Rule(status=503, kind="server", trip=True),
        Rule(exception=TimeoutError, kind="timeout", trip=True),
        Rule(exception=Exception, when=_ThirdParty("timeout"), kind="timeout", trip=True),
    ]
)
"""
The outcomes that mean "too many calls at once": what a `Bulkhead` counts as a drop.

A `Bulkhead` with an adaptive limit classifies every outcome with it (its
``overload=``) and tells the limit ``dropped=True`` when the verdict has
``trip``. Every rule says ``retry=True, trip=True``:

| outcome | kind |
| --- | --- |
| status 429, raised or returned | ``"rate_limit"`` |
| status 503, raised or returned | ``"server"`` |
| builtin `TimeoutError` (`resilience.TimeoutExceededError`, ...) | ``"timeout"`` |
| requests, httpx, aiohttp, urllib3, openai timeouts (as `transient`) | ``"timeout"`` |

Other failures (a 500, a refused connection, a 4xx) say nothing about
concurrency: they do not move the limit down. Extend it with ``|``:
``rs.limits.overload | rs.Rule(status=504, kind="server")``.

.. versionadded:: 0.2.0
"""


# --------------------------------------------------------------------------
# Validation (construction time only).


def _ratio(name: str, value: object, bound: str, inside: Callable[[float], bool]) -> float:
    """
    Return *value* as a float for which *inside* holds, or raise an error naming *name*.

    For ratios and factors, which are neither counts (`to_count`) nor durations
    (`to_seconds`). NaN is never *inside*: every comparison with it is false.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {bound}, got {type(value).__name__}: {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not inside(number):
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return number


_MOST_CONCURRENT: Final = 1_000_000
"""The largest concurrency limit: a bulkhead keeps a token per slot (8 bytes each)."""
_TOKENS: Final = "a bulkhead keeps a token per slot"
# An exponential average over more samples than a float can count is no average.
_LONGEST_WINDOW: Final = 10**15

_BACKOFF: Final = "a number > 0 and < 1"
_SMOOTHING: Final = "a number > 0 and <= 1"
_TOLERANCE: Final = "a finite number >= 1"


def _is_backoff(value: float) -> bool:
    return 0.0 < value < 1.0


def _is_smoothing(value: float) -> bool:
    return 0.0 < value <= 1.0


def _is_tolerance(value: float) -> bool:
    return 1.0 <= value < math.inf


def _common_settings(
    initial: object, minimum: object, maximum: object, backoff: object
) -> tuple[int, int, int, float]:
    """
    Check what every limit takes; return it as ``(initial, minimum, maximum, backoff)``.

    The three counts first, then the factor applied on a drop.
    """
    low = to_count("minimum", minimum, maximum=_MOST_CONCURRENT, why=_TOKENS)
    high = to_count("maximum", maximum, maximum=_MOST_CONCURRENT, why=_TOKENS)
    start = to_count("initial", initial, maximum=_MOST_CONCURRENT, why=_TOKENS)
    if high < low:
        raise ValueError(f"maximum must be >= minimum ({low}), got {high!r}")
    if not low <= start <= high:
        raise ValueError(
            f"initial must be between minimum ({low}) and maximum ({high}), got {start!r}"
        )
    return start, low, high, _ratio("backoff", backoff, _BACKOFF, _is_backoff)


# A product such as 30 * 0.7 lands a hair below 21.0: round down from a hair above.
_EPSILON: Final = 1e-9


# --------------------------------------------------------------------------
# AIMD.


class _Bounded:
    """What every limit here has: the bounds it moves between."""

    __slots__ = ("_maximum", "_minimum")

    _minimum: int
    _maximum: int

    @property
    def minimum(self) -> int:
        """The lowest the limit goes."""
        return self._minimum

    @property
    def maximum(self) -> int:
        """The highest the limit goes."""
        return self._maximum


@final
class AIMD(_Bounded):
    """
    Additive increase, multiplicative decrease: a slot more per round trip, a tenth less per drop.

    The rule of TCP's congestion control, driven by overloads only (and, when
    *timeout* is given, by calls slower than it):

    - a call that was *dropped* (its failure was an overload: see `overload`),
      or that took longer than *timeout* seconds, cuts the limit to
      ``max(minimum, floor(limit * backoff))``, and starts the count below
      over;
    - a call that succeeded while the limit was in use (at least half of it:
      ``inflight * 2 >= limit``) counts; after *limit* such successes (about
      one round trip, since *limit* calls run at once) the limit grows by
      one, up to *maximum*. A success while most of the limit is idle does
      not count, so a quiet service does not inflate a limit it never tested.

    Under a steady load the limit climbs one slot per round trip until the
    dependency pushes back, then saws between the point where overloads
    begin and a tenth below it. Growing by one per *call* instead (as
    Netflix's AIMDLimit does) doubles the limit every round trip, overshoots
    by all the calls started before the first overload comes back, and
    settles where a quarter or more of the calls are refused; where overloads
    are slow to show (timeouts), the bursts of drops cut it to a fraction of
    what the dependency can take. One per round trip keeps overloads to a few
    percent of the calls. It needs overloads to find the top: against a
    dependency that only slows down, give a *timeout* or use `Gradient`.

    Stateful: give each bulkhead its own. Not thread-safe on its own: the
    bulkhead calls `update` under its lock.

    Args:
        initial: The limit to start from, between *minimum* and *maximum*.
            Default: 20.
        minimum: The lowest the limit goes (>= 1). Default: 1.
        maximum: The highest the limit goes (>= *minimum*). Default: 200.
        backoff: The factor applied on a drop, a number > 0 and < 1.
            Default: 0.9.
        timeout: Seconds (or a `datetime.timedelta`) beyond which a call
            counts as a drop even if it succeeded. Default: `None` (only
            drops count).

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: *minimum* or *maximum* is below 1 (or a count above
            10**6: a bulkhead keeps a token per slot), *maximum* is below
            *minimum*, *initial* is outside ``[minimum, maximum]``, *backoff*
            is not in ``(0, 1)``, or *timeout* is not a finite number of
            seconds > 0.

    .. versionadded:: 0.2.0
    """

    __slots__ = ("_backoff", "_limit", "_successes", "_timeout")

    def __init__(
        self,
        *,
        initial: int = 20,
        minimum: int = 1,
        maximum: int = 200,
        backoff: float = 0.9,
        timeout: float | timedelta | None = None,
    ) -> None:
        common = _common_settings(initial, minimum, maximum, backoff)
        self._limit, self._minimum, self._maximum, self._backoff = common
        self._timeout = to_seconds("timeout", timeout, none=True)
        self._successes = 0  # counted towards the next increase

    @property
    def limit(self) -> int:
        """The current limit: how many calls may run at once."""
        return self._limit

    @property
    def backoff(self) -> float:
        """The factor applied to the limit on a drop."""
        return self._backoff

    @property
    def timeout(self) -> float | None:
        """Seconds beyond which a call counts as a drop, or `None`."""
        return self._timeout

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        """Learn from one call that ended, and return the new limit (see `Limit.update`)."""
        limit = self._limit
        timeout = self._timeout
        if dropped or (timeout is not None and rtt > timeout):
            self._successes = 0
            limit = max(self._minimum, math.floor(limit * self._backoff + _EPSILON))
            self._limit = limit
        elif inflight * 2 >= limit and limit < self._maximum:
            successes = self._successes + 1
            if successes >= limit:
                successes = 0
                self._limit = limit = limit + 1
            self._successes = successes
        return limit

    def __repr__(self) -> str:
        return (
            f"AIMD(limit={self._limit}, minimum={self._minimum}, maximum={self._maximum}, "
            f"backoff={self._backoff!r}, timeout={self._timeout!r})"
        )


# --------------------------------------------------------------------------
# Gradient.

# Samples averaged plainly before the averages become exponential, so that
# the first call alone does not set the baseline.
_WARMUP: Final = 10
# The recent latency is an exponential average over about this many calls.
_SHORT_WINDOW: Final = 10
# The gradient never cuts the limit by more than half in one step: one slow
# outlier is not a reason to shed most of the load.
_LOWEST_GRADIENT: Final = 0.5


@final
class Gradient(_Bounded):
    """
    A latency-based limit: shrink as calls get slower than the dependency's unloaded latency.

    In the spirit of Netflix's Gradient2. Two exponential averages of the
    calls' latency are kept: a *baseline* (what the dependency takes when it
    is not queueing) and a *recent* one (the last ten calls or so). Their
    ratio is the gradient::

        gradient = clamp(tolerance * baseline / recent, 0.5, 1.0)

    While the recent latency stays within *tolerance* times the baseline the
    gradient is 1 and the limit grows by *queue_size* (a little headroom to
    probe for more); past it, the limit shrinks in proportion to the excess,
    by half at most::

        target = limit + queue_size   if gradient == 1
                 limit * gradient     otherwise

    and the limit moves towards *target* by *smoothing* per round trip (per
    *limit* calls: each call moves it ``smoothing / limit`` of the way), so
    its pace does not depend on the call rate. A drop (an overload, see
    `overload`) cuts the limit at once to ``limit * backoff``. While most of
    the limit is idle (``inflight < limit / 2``) the latency is still learned
    but the limit does not move, except on a drop.

    Where the limit settles: where the dependency's latency reaches
    *tolerance* (1.5) times its unloaded latency. The headroom is added only
    while the gradient is 1, not on every step as Gradient2 does: added on
    every step, it balances a shrinking gradient and keeps the limit above
    that point, by more the smaller the limit (Netflix/concurrency-limits
    #134 observed the drift).

    How the baseline stays honest, since a baseline learned under overload
    would call the overload normal:

    - it learns only from calls made while the recent latency is at or below
      it (no queueing at all): under sustained overload it does not creep up
      towards the queued latency, and meanwhile it drifts down slowly, so it
      tracks the quickest latency the dependency sustains;
    - when the baseline is more than twice the recent latency (it was learned
      while the dependency was overloaded, say, at start with a high
      *initial*), it decays by 5 % per call until it is not;
    - when the dependency becomes slower for good (latency high whatever the
      concurrency), the limit shrinks and the latency does not follow: once
      the limit has halved while queueing and the recent latency is still
      within a tenth of its worst since queueing began, that latency is the
      new baseline.

    A latency alone cannot tell an overload from a slow dependency: a
    baseline first learned while the dependency is already overloaded (a
    high *initial* against a busy dependency) looks normal until drops cut
    the limit, and a baseline raised for a slow period comes back down only
    when drops or a lighter load show the quicker latency again. Keep
    *overload* classifying refusals and timeouts, and start low.

    Stateful: give each bulkhead its own. Not thread-safe on its own: the
    bulkhead calls `update` under its lock. A call that took no time (a fake
    clock) or was dropped teaches no latency.

    Args:
        initial: The limit to start from, between *minimum* and *maximum*.
            Default: 20.
        minimum: The lowest the limit goes (>= 1). Default: 1.
        maximum: The highest the limit goes (>= *minimum*). Default: 200.
        smoothing: The fraction of the way to its target the limit moves per
            round trip, a number > 0 and <= 1. Default: 0.2.
        tolerance: How many times the baseline latency the recent latency may
            reach before the limit shrinks, a finite number >= 1. Default: 1.5.
        long_window: The baseline is an exponential average over about this
            many calls (>= 1). Default: 600.
        queue_size: The headroom added to the target while the latency is
            within tolerance (>= 1), so the limit grows by ``smoothing *
            queue_size`` per round trip; or `None` for the square root of the
            limit (at least 1): quick growth from a small limit, modest
            probing at a large one. Default: `None`.
        backoff: The factor applied to the limit on a drop, a number > 0 and
            < 1. Default: 0.9.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: A count is below 1 (or *initial*, *minimum*, *maximum*
            above 10**6, *long_window* above 10**15), *maximum* is below *minimum*,
            *initial* is outside ``[minimum, maximum]``, or a ratio is out
            of its range (NaN included).

    .. versionadded:: 0.2.0
    """

    __slots__ = (
        "_alpha",
        "_backoff",
        "_baseline",
        "_estimate",
        "_long_window",
        "_mark_limit",
        "_mark_recent",
        "_queue_size",
        "_recent",
        "_samples",
        "_smoothing",
        "_tolerance",
    )

    def __init__(
        self,
        *,
        initial: int = 20,
        minimum: int = 1,
        maximum: int = 200,
        smoothing: float = 0.2,
        tolerance: float = 1.5,
        long_window: int = 600,
        queue_size: int | None = None,
        backoff: float = 0.9,
    ) -> None:
        start, self._minimum, self._maximum, self._backoff = _common_settings(
            initial, minimum, maximum, backoff
        )
        self._estimate = float(start)
        self._smoothing = _ratio("smoothing", smoothing, _SMOOTHING, _is_smoothing)
        self._tolerance = _ratio("tolerance", tolerance, _TOLERANCE, _is_tolerance)
        self._long_window = to_count(
            "long_window", long_window, maximum=_LONGEST_WINDOW, why="an average's span, in samples"
        )
        self._alpha = 2.0 / (self._long_window + 1)
        self._queue_size = to_count("queue_size", queue_size, none=True)
        self._samples = 0
        self._baseline = 0.0
        self._recent = 0.0
        # The limit when queueing began (or last halved), 0.0 when not queueing,
        # and the highest recent latency since.
        self._mark_limit = 0.0
        self._mark_recent = 0.0

    @property
    def limit(self) -> int:
        """The current limit: how many calls may run at once."""
        return int(self._estimate)

    @property
    def baseline(self) -> float | None:
        """Seconds: the latency learned as the dependency's unloaded one, or `None` before any."""
        return self._baseline if self._samples else None

    @property
    def recent(self) -> float | None:
        """Seconds: the recent average latency, or `None` before any call."""
        return self._recent if self._samples else None

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        """Learn from one call that ended, and return the new limit (see `Limit.update`)."""
        estimate = self._estimate
        if dropped:
            # A dropped call's latency (often a quick refusal) says nothing
            # about the dependency's: only the cut.
            estimate = max(float(self._minimum), estimate * self._backoff + _EPSILON)
            self._estimate = estimate
            return int(estimate)
        if not rtt > 0.0:  # no time measured (a fake clock), or NaN: nothing to learn
            return int(estimate)
        recent, baseline = self._learn(rtt)
        if inflight * 2 < estimate:
            return int(estimate)  # most of the limit idle: it proved nothing
        tolerated = self._tolerance * baseline
        if recent <= tolerated:
            self._mark_limit = 0.0
            queue = self._queue_size
            target = estimate + (max(1.0, math.sqrt(estimate)) if queue is None else queue)
        else:
            target = estimate * max(_LOWEST_GRADIENT, tolerated / recent)
            self._check_rebase(estimate, recent)
        estimate += self._smoothing * (target - estimate) / estimate
        estimate = max(float(self._minimum), min(float(self._maximum), estimate))
        self._estimate = estimate
        return int(estimate)

    def _learn(self, rtt: float) -> tuple[float, float]:
        """Fold *rtt* into the recent latency and the baseline; return both."""
        samples = self._samples
        if samples < _WARMUP:
            samples += 1
            self._samples = samples
            recent = self._recent + (rtt - self._recent) / samples
            self._recent = self._baseline = recent
            return recent, recent
        recent = self._recent + (rtt - self._recent) * (2.0 / (_SHORT_WINDOW + 1))
        self._recent = recent
        baseline = self._baseline
        if recent <= baseline:
            baseline += (rtt - baseline) * self._alpha
            if baseline > 2.0 * recent:
                baseline *= 0.95  # learned under an overload that has passed: catch up
            self._baseline = baseline
        return recent, baseline

    def _check_rebase(self, estimate: float, recent: float) -> None:
        """Queueing: if the limit halved and the latency did not improve, adopt it as baseline."""
        mark = self._mark_limit
        if not mark:
            self._mark_limit, self._mark_recent = estimate, recent
        elif recent > self._mark_recent:
            self._mark_recent = recent  # the worst latency since the mark
        elif estimate <= mark / 2.0:
            if recent >= 0.9 * self._mark_recent:
                self._baseline = recent  # not a queue we cause: the dependency's new normal
                self._mark_limit = 0.0
            else:
                self._mark_limit, self._mark_recent = estimate, recent

    def __repr__(self) -> str:
        return (
            f"Gradient(limit={self.limit}, baseline={self.baseline!r}, recent={self.recent!r}, "
            f"minimum={self._minimum}, maximum={self._maximum}, "
            f"smoothing={self._smoothing!r}, tolerance={self._tolerance!r}, "
            f"long_window={self._long_window}, queue_size={self._queue_size!r}, "
            f"backoff={self._backoff!r})"
        )
