"""
Retry budgets: a cap on retries shared by many calls, so that retries cannot become a storm.

A `Budget` is told of every call's first attempt (`first`, on the success path:
one C-level counter increment, no lock, no clock read) and asked before each
retry (`spend`, on the failure path, under a lock). Folding the counted first
attempts into the budget's state is deferred to `spend`: calls that succeed
never pay for the bookkeeping of calls that fail.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, Protocol, final, runtime_checkable

from ._clock import SYSTEM_CLOCK, Clock
from ._fork import fork_safe_lock
from ._validate import to_amount, to_count, to_seconds

__all__ = ["Budget", "RetryBudget", "TokenBudget"]

_BUCKETS: Final = 10


@runtime_checkable
class Budget(Protocol):
    """
    What `resilience.Retry` asks before each retry: ``Retry(..., budget=...)``.

    A budget is shared: by every call of one Retry, and by every Retry that
    calls the same dependency (one budget per dependency). Both methods are
    called from any thread or task, concurrently. `RetryBudget` and
    `TokenBudget` are the two that ship; implement these two methods to write
    your own.

    .. versionadded:: 0.2.0
    """

    def first(self) -> object:
        """
        Record that a call is making its first attempt.

        Called once per call, before its first attempt, on every call: it is on
        the success path, so it must be very cheap (count, decide later). It may
        be an attribute holding a callable rather than a method. The return
        value is ignored.
        """
        ...

    def spend(self) -> bool:
        """
        Return whether a retry may happen now, consuming one if so.

        Called when an attempt failed in a way the classifier retries and
        nothing else stops Retry (attempts, ``Retry-After`` cap, deadline):
        the retry happens if and only if this returns `True`. `False` makes
        Retry give up at once (`resilience.RetriesExhausted` with reason
        ``"budget"``).

        A budget that decides with I/O (a round trip to a shared store) may
        instead have a coroutine method ``aspend() -> bool``: an async Retry
        awaits it in place of `spend`, and a sync Retry refuses such a budget
        (``resilience.integrations.redis.AsyncRedisRetryBudget`` is one).
        """
        ...


def async_spend(budget: object) -> Callable[[], Awaitable[bool]] | None:
    """*budget*'s ``aspend`` if it has one (a coroutine method): what an async Retry awaits."""
    aspend = getattr(budget, "aspend", None)
    return aspend if inspect.iscoroutinefunction(aspend) else None


def sync_only(budget: object, what: str) -> None:
    """Refuse, at decoration, a budget only an awaited round trip can ask (for *what*)."""
    if async_spend(budget) is not None:
        raise TypeError(
            f"budget {budget!r} decides with an awaited round trip (aspend): a Retry holding "
            f"it protects coroutine and async generator functions, got {what}; give the sync "
            "code a budget with a sync spend() (RedisRetryBudget with a RedisStore)"
        )


# Counts meet floats (ratios, fractions of calls): beyond 2**53 they lose units.
_MOST: Final = 2**53
_FLOATS: Final = "counted in floats"
# A window is 10 buckets indexed by now / (per / 10): narrower ones divide by zero.
_SHORTEST: Final = 1e-6
_BUCKETED: Final = "the window is 10 buckets of per / 10"


def _check_clock(value: object) -> Clock:
    if not callable(getattr(value, "now", None)):
        raise TypeError(f"clock must have now(), got {value!r}")
    return value  # type: ignore[return-value]


@final
class RetryBudget:
    """
    Retries may add at most *ratio* of the first attempts, plus *minimum*, per *per* seconds.

    Over a sliding window of the last *per* seconds (kept in 10 buckets: O(1)
    memory, whatever the traffic), a retry is allowed while the retries
    already allowed in the window are fewer than
    ``minimum + ratio * first_attempts_in_window``. So a dependency that
    fails every call receives at most ``(1 + ratio)`` times the calls' first
    attempts, plus *minimum* per window, instead of ``attempts`` times. The
    *minimum* is a floor for quiet callers, whose few calls would otherwise
    earn no retry at all. This is Finagle's ``RetryBudget`` and the
    "retry budget" of the Google SRE book.

    Thread-safe; share one per dependency. `first` is a lock-free counter
    (exact in CPython: one C call under the GIL). The first attempts it
    counts are placed in the window when a retry is next asked for, spread
    evenly over the time since the previous one: exact when failures are
    frequent (a storm, which is what matters), an estimate of when quiet
    successes happened otherwise.

    Args:
        ratio: Retries allowed per first attempt, a number >= 0 (0.1: one
            retry per ten calls). Default: 0.1.
        minimum: Retries allowed per window whatever the traffic, an int
            >= 0. Default: 10.
        per: The window, in seconds (or a `datetime.timedelta`), > 0.
            Default: 1.0.
        clock: Where time comes from (anything with ``now()``). Default: the
            system clock. Give it the Retry's clock when that is a fake one.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: *ratio* is negative or not finite, *minimum* is negative
            or above 2**53, or *per* is not a finite number of seconds >= 1e-6.

    .. versionadded:: 0.2.0
    """

    __slots__ = (
        "_clock",
        "_count",
        "_firsts",
        "_head",
        "_last",
        "_lock",
        "_minimum",
        "_per",
        "_ratio",
        "_retries",
        "_seen",
        "_width",
        "first",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        minimum: int = 10,
        per: float | timedelta = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._ratio = to_amount("ratio", ratio, zero=True)
        self._minimum = to_count("minimum", minimum, minimum=0, maximum=_MOST, why=_FLOATS)
        self._per = to_seconds("per", per, minimum=_SHORTEST, why=_BUCKETED)
        self._clock = _check_clock(clock)
        self._width = self._per / _BUCKETS
        self._lock = fork_safe_lock()
        self._count = itertools.count()
        # The success path: a bound C method, called without a lock.
        self.first = self._count.__next__
        self._seen = 0  # first attempts folded into the window so far (and own reads)
        self._firsts = [0.0] * _BUCKETS  # first attempts per bucket (spread: fractions)
        self._retries = [0] * _BUCKETS  # retries allowed per bucket
        now = self._clock.now()
        self._head = math.floor(now / self._width)  # the newest bucket
        self._last = now  # when first attempts were last folded in

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self._ratio!r}, minimum={self._minimum!r}, per={self._per!r})"

    @property
    def ratio(self) -> float:
        """Retries allowed per first attempt."""
        return self._ratio

    @property
    def minimum(self) -> int:
        """Retries allowed per window whatever the traffic."""
        return self._minimum

    @property
    def per(self) -> float:
        """The window, in seconds."""
        return self._per

    def spend(self) -> bool:
        """Return whether a retry may happen now (see `Budget.spend`), counting it if so."""
        with self._lock:
            now = self._clock.now()
            self._fold(now)
            allowed = self._minimum + self._ratio * sum(self._firsts)
            slot = self._head % _BUCKETS
            # A tiny tolerance: spread counts are sums of fractions.
            if sum(self._retries) + 1 > allowed + 1e-9:
                return False
            self._retries[slot] += 1
            return True

    def _fold(self, now: float) -> None:
        """Move the window to *now*, and spread the first attempts counted since `_last` over it."""
        # next() counts this read too: `_seen` absorbs it.
        total = next(self._count)
        new = total - self._seen
        self._seen = total + 1
        width = self._width
        index = math.floor(now / width)
        head = self._head
        if index > head:
            firsts, retries = self._firsts, self._retries
            for old in range(head + 1, min(index, head + _BUCKETS) + 1):
                slot = old % _BUCKETS
                firsts[slot] = 0.0
                retries[slot] = 0
            self._head = head = index
        # index < head only if the clock went back: count in the newest bucket.
        last, self._last = self._last, max(now, self._last)
        if not new:
            return
        start = max(last, (head - _BUCKETS + 1) * width)  # the window's start
        span = now - last
        if span <= 0 or start >= now:
            self._firsts[head % _BUCKETS] += new
            return
        # Spread evenly over (last, now]; the share before the window is gone already.
        rate = new / span
        first = math.floor(start / width)
        for bucket in range(first, head + 1):
            overlap = min(now, (bucket + 1) * width) - max(start, bucket * width)
            if overlap > 0:
                self._firsts[bucket % _BUCKETS] += rate * overlap


@final
class TokenBudget:
    """
    gRPC's retry throttling: retries stop while fewer than half the tokens are left.

    The budget starts full, with *max_tokens* tokens. Every failure that
    asks for a retry costs one token (down to 0); every call refills
    *token_ratio* (up to *max_tokens*). A retry is allowed only while, after
    paying for its failure, more than ``max_tokens / 2`` tokens are left. So
    when a dependency starts failing everything, retries stop after about
    ``max_tokens / 2`` failures, and resume only once enough calls
    (``1 / token_ratio`` per token) have refilled it above half.

    One difference from gRPC, for speed: the refill is counted per call, when
    it starts (a lock-free counter, folded in when a retry is next asked
    for), not per success, so that a call that succeeds at once costs one C
    call. A call that succeeds at once refills exactly as in gRPC; a call
    that fails pays one token per retry it asks for, less its refill; the
    last failure of a call that runs out of attempts is not charged.

    Thread-safe; share one per dependency.

    Args:
        max_tokens: The budget's size, an int >= 1 (gRPC allows up to 1000).
            Default: 10.
        token_ratio: Tokens each call refills, a number > 0. Default: 0.1.

    Raises:
        TypeError: A parameter has the wrong type.
        ValueError: *max_tokens* is below 1 or above 2**53, or *token_ratio* is not a finite
            number > 0.

    .. versionadded:: 0.2.0
    """

    __slots__ = ("_count", "_lock", "_max", "_ratio", "_seen", "_tokens", "first")

    def __init__(self, *, max_tokens: int = 10, token_ratio: float = 0.1) -> None:
        self._max = to_count("max_tokens", max_tokens, maximum=_MOST, why=_FLOATS)
        self._ratio = to_amount("token_ratio", token_ratio)
        self._tokens = float(self._max)
        self._lock = fork_safe_lock()
        self._count = itertools.count()
        # The success path: a bound C method, called without a lock.
        self.first = self._count.__next__
        self._seen = 0

    def __repr__(self) -> str:
        return f"TokenBudget(max_tokens={self._max!r}, token_ratio={self._ratio!r})"

    @property
    def max_tokens(self) -> int:
        """The budget's size."""
        return self._max

    @property
    def token_ratio(self) -> float:
        """Tokens each call refills."""
        return self._ratio

    @property
    def tokens(self) -> float:
        """The tokens left now, the calls counted so far included."""
        with self._lock:
            self._fold()
            return self._tokens

    def spend(self) -> bool:
        """Pay one token for a failure; return whether a retry may happen (see `Budget.spend`)."""
        with self._lock:
            self._fold()
            self._tokens = max(self._tokens - 1.0, 0.0)
            return self._tokens > self._max / 2

    def _fold(self) -> None:
        # Refilling n times one by one, each capped at max_tokens, comes to the same as this.
        total = next(self._count)
        new = total - self._seen
        self._seen = total + 1
        if new:
            self._tokens = min(self._tokens + new * self._ratio, float(self._max))
