"""
Fallback's success-path overhead, side by side in one run.

The protected call always succeeds, so what is measured is the price of
being ready to fall back: `rs.Fallback` against a hand-written
`functools.wraps` closure holding a ``try``/``except`` (the cheapest fallback
decorator Python allows). Goal: within 1.2x of that closure.

    python benchmarks/bench_fallback.py            # full run
    python benchmarks/bench_fallback.py --fast     # quicker, less precise
    python benchmarks/bench_fallback.py --quick    # no pyperf: timeit, for a smoke run
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks._harness import Case, awork, closure, main, work
from resilience._fallback import Fallback


def fallback(exc: BaseException, *args: Any, **kwargs: Any) -> int:
    return 0


def with_try(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One `functools.wraps` closure with a try/except: a fallback written by hand."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConnectionError as exc:
            return fallback(exc, *args, **kwargs)

    return wrapper


def with_atry(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ConnectionError as exc:
            return fallback(exc, *args, **kwargs)

    return wrapper


def with_rs(fn: Callable[..., Any]) -> Callable[..., Any]:
    return Fallback(on=ConnectionError, to=fallback)(fn)


def cases() -> list[Case]:
    return [
        Case("bare call", work),
        Case("functools.wraps closure", closure(work)),
        Case("closure with try/except", with_try(work)),
        Case("rs.Fallback", with_rs(work)),
        Case("async bare call", awork, is_async=True),
        Case("async closure with try/except", with_atry(awork), is_async=True),
        Case("async rs.Fallback", with_rs(awork), is_async=True),
    ]


if __name__ == "__main__":
    main(
        cases(),
        title="Fallback: success cost per call",
        references=("closure with try/except", "async closure with try/except"),
    )
