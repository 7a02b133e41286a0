"""
Success-path overhead of Timeout, side by side in one run.

Sync: a cooperative `rs.Timeout` against the bare call, a `functools.wraps`
closure, and the budget it is allowed (issue 3): one context-variable
set/reset and two clock reads added to the wrapper, measured as a policy in
our own wrapper (`rs.compose`), so that the two differ only by what they do
per call.

Async: `rs.Timeout` against the bare coroutine, and against what a user would
write by hand: `asyncio.timeout` inside one closure. The goal is within 1.3x
of that.

Every async case yields to the event loop once per `YIELD_EVERY` calls, as
real async code does all the time. Without that, the loop never runs and never
purges the timers that `asyncio.timeout` schedules and cancels: pyperf's tens
of thousands of calls per measurement leave as many dead timer handles on the
heap, each holding a copy of the context, and the benchmark measures the
garbage collector walking them rather than the code. The yield costs every
async case the same few nanoseconds per call.

    python benchmarks/bench_timeout.py            # full pyperf run
    python benchmarks/bench_timeout.py --fast     # quicker, less precise
    python benchmarks/bench_timeout.py --quick    # no pyperf: timeit, for a smoke run
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resilience as rs
from benchmarks._harness import Case, awork, closure, main, work

LIMIT = 10.0  # seconds: never reached, only the success path is measured


_VAR: contextvars.ContextVar[float | None] = contextvars.ContextVar("bench", default=None)


@attrs.frozen
class Allowance:
    """
    A policy doing exactly what issue 3 allows a sync Timeout: a context-variable
    set/reset and two clock reads. Bound into `rs.compose` like `rs.Timeout`, so
    the two run in the same wrapper and differ only by what they do per call.
    """

    def bind(self, inner: rs.Runner, shape: rs.Shape, /) -> rs.Runner:
        if shape is not rs.Shape.SYNC:
            raise TypeError("sync only")
        now = time.monotonic
        push, pop = _VAR.set, _VAR.reset

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            token = push(now() + LIMIT)
            try:
                return fn(*args, **kwargs)
            finally:
                now()
                pop(token)

        return run


def async_closure(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def asyncio_timeout(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """What a user writes by hand: asyncio.timeout in one closure."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(LIMIT):
            return await fn(*args, **kwargs)

    return wrapper


YIELD_EVERY = 100


def yielding(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """Await *fn*, and let the event loop run once every `YIELD_EVERY` calls."""
    count = 0

    async def call() -> Any:
        nonlocal count
        count += 1
        if count == YIELD_EVERY:
            count = 0
            await asyncio.sleep(0)
        return await fn()

    return call


def cases() -> list[Case]:
    timeout = rs.Timeout(LIMIT)
    return [
        Case("bare call", work),
        Case("functools.wraps closure", closure(work)),
        Case("rs wrapper, no policy: compose()", rs.compose()(work)),
        Case("rs wrapper + the same allowance", rs.compose(Allowance())(work)),
        Case("rs.Timeout", timeout(work)),
        Case("async bare call", yielding(awork), is_async=True),
        Case("async closure", yielding(async_closure(awork)), is_async=True),
        Case("async asyncio.timeout + closure", yielding(asyncio_timeout(awork)), is_async=True),
        Case("async rs.Timeout", yielding(timeout(awork)), is_async=True),
    ]


if __name__ == "__main__":
    main(
        cases(),
        title="Timeout: success-path cost per call",
        references=(
            "rs wrapper + the same allowance",
            "async asyncio.timeout + closure",
        ),
    )
