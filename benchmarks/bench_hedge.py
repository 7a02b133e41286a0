"""
Success-path overhead of Hedge, side by side in one run.

The success path is a call that answers before the hedge delay: no copy is
started. Hedge still runs the call as a task (a copy must be able to run
beside it), and waits for it with a timer, so its floor is a task and an
`asyncio.wait` per call. It is compared with the bare coroutine, a plain async
closure, and what a user would write for "give up waiting after N seconds":
``await asyncio.wait_for(fn(), timeout)`` in one closure (which, since Python
3.12, needs no task).

Every case yields to the event loop once per `YIELD_EVERY` calls, so that
the loop purges cancelled timer handles (see bench_timeout.py).

    python benchmarks/bench_hedge.py            # full pyperf run
    python benchmarks/bench_hedge.py --fast     # quicker, less precise
    python benchmarks/bench_hedge.py --quick    # no pyperf: timeit, for a smoke run
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import Case, awork, main
from resilience._hedge import Hedge

DELAY = 10.0  # seconds: never reached, only the success path is measured
YIELD_EVERY = 100


def async_closure(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def wait_for(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """What a user writes by hand: asyncio.wait_for in one closure."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(fn(*args, **kwargs), DELAY)

    return wrapper


def task_and_wait(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Awaitable[Any]]:
    """Hedge's floor by hand: the call as a task, waited for with a timeout."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.get_running_loop().create_task(fn(*args, **kwargs))
        await asyncio.wait((task,), timeout=DELAY)
        return task.result()

    return wrapper


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
    fixed = Hedge(delay=DELAY, on=ConnectionError)
    adaptive = Hedge(
        delay=Hedge.percentile(95, window=100, initial=DELAY, min_samples=100),
        on=ConnectionError,
    )
    return [
        Case("async bare call", yielding(awork), is_async=True),
        Case("async closure", yielding(async_closure(awork)), is_async=True),
        Case("async asyncio.wait_for + closure", yielding(wait_for(awork)), is_async=True),
        Case("async task + asyncio.wait (by hand)", yielding(task_and_wait(awork)), is_async=True),
        Case("async rs.Hedge (fixed delay)", yielding(fixed(awork)), is_async=True),
        Case("async rs.Hedge (percentile delay)", yielding(adaptive(awork)), is_async=True),
    ]


if __name__ == "__main__":
    main(
        cases(),
        title="Hedge: success-path cost per call (no hedge started)",
        references=("async closure", "async asyncio.wait_for + closure"),
    )
