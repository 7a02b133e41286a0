"""
RateLimiter's admitted paths as ``bench_engine.py --extra`` cases, to compare two trees.

Each function takes the harness's ``work`` and returns a callable of no
arguments doing one admitted acquire (a limit so high that every call fits)
through one path of the limiter:

    python benchmarks/bench_engine.py --old /tmp/old-tree --quick \\
        --extra benchmarks.ratelimit_cases:decorated \\
        --extra benchmarks.ratelimit_cases:block \\
        --extra benchmarks.ratelimit_cases:try_acquire \\
        --extra benchmarks.ratelimit_cases:acquire

The module is imported from each tree: copy it into the old tree's
``benchmarks/`` if that tree predates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import resilience as rs

PLENTY = 1e15  # units per second: every call fits


def _limiter() -> rs.RateLimiter:
    return rs.RateLimiter(rate=PLENTY, per=1.0, name="bench")


def decorated(work: Callable[..., Any]) -> Callable[[], Any]:
    """A decorated function: the limiter's one-frame closure."""
    return _limiter()(work)


def block(work: Callable[..., Any]) -> Callable[[], Any]:
    """``with limiter:`` around the call: the gate's inlined admission."""
    limiter = _limiter()

    def call() -> Any:
        with limiter:
            return work()

    return call


def try_acquire(work: Callable[..., Any]) -> Callable[[], Any]:
    """``limiter.try_acquire()`` then the call."""
    limiter = _limiter()

    def call() -> Any:
        limiter.try_acquire()
        return work()

    return call


def acquire(work: Callable[..., Any]) -> Callable[[], Any]:
    """``with limiter.acquire(1):`` around the call: a permit, the reserving path."""
    limiter = _limiter()

    def call() -> Any:
        with limiter.acquire(1):
            return work()

    return call
