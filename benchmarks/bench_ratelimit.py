"""
RateLimiter against the rate limiters users would otherwise pick, side by side in one run.

Per acquire, admitted (a limit so high that every call fits) and refused (a
bucket left empty, ``max_wait=0``), each case doing the least its library
offers for one acquisition:

- ours: `limiter.try_acquire` (a boolean, as the peers answer), ``with
  limiter:`` around nothing, `limiter.admit` (the gate's own decision, which
  raises `RateLimitedError` on a refusal), a decorated function, and the
  same function under our ``Retry``'s success path (the reference of the
  goal);
  async: ``async with limiter:`` and a decorated coroutine function;
- aiolimiter (async only: ``async with AsyncLimiter(...)``);
- limits (``MovingWindowRateLimiter(MemoryStorage()).hit(item)``);
- pyrate-limiter (``Limiter(Rate(...)).try_acquire(name, blocking=False)``);
- a hand-written token bucket, lock-free (one thread only): the floor of
  any limiter written in Python.

Goals (issue #12): sync <= 1.5 us per acquire, admitted or refused; async
<= 1.3 us; a decorated call <= 1.5x Retry's success path. Events are off
(``rs.set_hooks([])``) for the refused cases: a refusal otherwise logs a
WARNING per call, which is the logger's cost, not the limiter's.

    python benchmarks/bench_ratelimit.py            # full run
    python benchmarks/bench_ratelimit.py --fast     # quicker, less precise
    python benchmarks/bench_ratelimit.py --quick    # no pyperf: timeit, a few seconds
    python benchmarks/bench_ratelimit.py --best 30  # no pyperf: 30 interleaved rounds, best of

``--best N`` suits a machine shared with other work: every case is timed once
per round, the rounds interleave the cases, and each case keeps its best
round, the one least disturbed.

The peers are in the benchmark extra (``pip install -e '.[benchmarks]'``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiolimiter
import limits
import pyrate_limiter

import resilience as rs
from benchmarks._harness import Case, awork, main, table, timer_of, work

PLENTY = 1e15  # units per second: every call fits


def quiet() -> None:
    rs.set_hooks([])


def open_limiter() -> rs.RateLimiter:
    return rs.RateLimiter(rate=PLENTY, per=1.0, name="bench")


def empty_limiter() -> rs.RateLimiter:
    limiter = rs.RateLimiter(rate=1, per=1e9, burst=1, max_wait=0, name="bench")
    limiter.admit(None)  # the only unit, for a billion seconds
    return limiter


class TokenBucket:
    """A token bucket written by hand: no lock (one thread only), no waiting."""

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = time.monotonic()

    def acquire(self) -> bool:
        now = time.monotonic()
        tokens = self.tokens + (now - self.last) * self.rate
        self.last = now
        if tokens > self.capacity:
            tokens = self.capacity
        if tokens >= 1:
            self.tokens = tokens - 1
            return True
        self.tokens = tokens
        return False


def refused(fn: Any) -> Any:
    def attempt() -> None:
        try:
            fn()
        except rs.RateLimitedError:
            pass

    return attempt


def build() -> list[Case]:
    ours = open_limiter()
    ours_empty = empty_limiter()
    decorated = ours(work)
    retried = rs.Retry(on=ValueError)(work)
    adecorated = open_limiter()(awork)
    aours = open_limiter()
    aio = aiolimiter.AsyncLimiter(PLENTY, 1)

    def with_block() -> None:
        with ours:
            pass

    async def async_with_block() -> None:
        async with aours:
            pass

    async def aiolimiter_block() -> None:
        async with aio:
            pass

    def refused_with() -> None:
        with ours_empty:
            pass

    moving = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    open_item = limits.RateLimitItemPerSecond(10**9)
    shut_item = limits.RateLimitItemPerDay(1)
    moving.hit(shut_item, "bench")
    fixed = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    fixed.hit(shut_item, "bench")

    pyrate_open = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND))
    pyrate_shut = pyrate_limiter.Limiter(pyrate_limiter.Rate(1, pyrate_limiter.Duration.DAY))
    pyrate_shut.try_acquire("bench", blocking=False)

    bucket_open = TokenBucket(PLENTY, PLENTY)
    bucket_shut = TokenBucket(1e-9, 1)
    bucket_shut.acquire()

    return [
        Case("bare call", work),
        Case("hand-written token bucket, admitted", bucket_open.acquire),
        Case("ours: try_acquire(), admitted", ours.try_acquire),
        Case("ours: admit(), admitted", lambda: ours.admit(None)),
        Case("ours: with limiter, admitted", with_block),
        Case("ours: decorated call, admitted", decorated),
        Case("ours: Retry success path (reference)", retried),
        Case("limits moving window hit, admitted", lambda: moving.hit(open_item, "b")),
        Case(
            "pyrate-limiter try_acquire, admitted",
            lambda: pyrate_open.try_acquire("b", 1, False),
        ),
        Case("hand-written token bucket, refused", bucket_shut.acquire),
        Case("ours: try_acquire(), refused", ours_empty.try_acquire),
        Case("ours: admit(), refused", refused(lambda: ours_empty.admit(None)), setup=quiet),
        Case("ours: with limiter, refused", refused(refused_with), setup=quiet),
        Case("limits moving window hit, refused", lambda: moving.hit(shut_item, "bench")),
        Case("limits fixed window hit, refused", lambda: fixed.hit(shut_item, "bench")),
        Case(
            "pyrate-limiter try_acquire, refused",
            lambda: pyrate_shut.try_acquire("bench", 1, False),
        ),
        Case("async: ours: async with limiter, admitted", async_with_block, is_async=True),
        Case("async: ours: decorated coroutine, admitted", adecorated, is_async=True),
        Case("async: aiolimiter async with, admitted", aiolimiter_block, is_async=True),
    ]


def best_of(cases: list[Case], rounds: int) -> dict[str, float]:
    """Seconds per call of each case: the best of *rounds* interleaved rounds."""
    timers: list[tuple[str, Callable[[int], float], int]] = [
        (case.name, timer_of(case), 5_000 if case.is_async else 20_000) for case in cases
    ]
    best = {name: float("inf") for name, _, _ in timers}
    for _ in range(rounds):
        for name, timer, loops in timers:
            best[name] = min(best[name], timer(loops) / loops)
    return best


TITLE = "RateLimiter, per acquire (ratios: to the bare call, to Retry's success path)"
REFERENCES = ("ours: Retry success path (reference)", "hand-written token bucket, admitted")

if __name__ == "__main__" and "--best" in sys.argv:
    rounds = int(sys.argv[sys.argv.index("--best") + 1])
    print(f"{TITLE} (best of {rounds} interleaved rounds)\n")
    print(table(best_of(build(), rounds), REFERENCES))
elif __name__ == "__main__":
    main(
        build(),
        title=TITLE,
        references=REFERENCES,
    )
