"""
Hedge cases for `bench_engine.py --extra`: its asyncio paths, in two trees side by side.

- `async_hedge`: the success path, a call that answers before the delay
  (no hedge starts: the call as a task, waited for with a timer).
- `async_hedge_after_failure`: the race, every call's first copy fails with a
  failure the Hedge retries, so a hedge starts at once and answers.

    python benchmarks/bench_engine.py --old /tmp/old-tree --quick \\
        --extra benchmarks.hedge_cases:async_hedge \\
        --extra benchmarks.hedge_cases:async_hedge_after_failure
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import resilience as rs

DELAY = 10.0  # seconds: never reached


def async_hedge(awork: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """*awork* hedged after DELAY seconds: no hedge ever starts."""
    return rs.Hedge(delay=DELAY, on=ConnectionError)(awork)


def async_hedge_after_failure(
    awork: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    """*awork* hedged, its first copy failing every time: the hedge answers."""
    copies = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal copies
        copies += 1
        if copies % 2:
            raise ConnectionError("the first copy fails")
        return await awork(*args, **kwargs)

    return rs.Hedge(delay=DELAY, on=ConnectionError)(flaky)
