"""
The sync breaker's other paths, for `bench_engine.py --extra` (old tree vs new, side by side).

- `failure`: a failure counted by a closed breaker that never opens (the
  failure path: classify, count, re-raise);
- `rejection`: a call rejected by an open breaker (an outage's hot path);
- `with_block`: a success in a ``with breaker:`` block.

Copy this file into the old tree's ``benchmarks/`` if it predates it:

    python benchmarks/bench_engine.py --old /tmp/old-tree --fast \\
        --extra benchmarks.breaker_paths:failure \\
        --extra benchmarks.breaker_paths:rejection \\
        --extra benchmarks.breaker_paths:with_block
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import resilience as rs


def _breaker() -> rs.CircuitBreaker:
    return rs.CircuitBreaker(
        on=ConnectionError, name="bench", failure_threshold=10**9, reset_timeout=60.0
    )


def failure(work: Callable[[], Any]) -> Callable[[], None]:
    """A closed breaker's failure path."""

    @_breaker()
    def fail() -> None:
        raise ConnectionError

    def case() -> None:
        try:
            fail()
        except ConnectionError:
            pass

    return case


def rejection(work: Callable[[], Any]) -> Callable[[], None]:
    """An open breaker's rejection."""
    breaker = _breaker()
    breaker.open()
    protected = breaker(work)

    def case() -> None:
        try:
            protected()
        except rs.CircuitOpenError:
            pass

    return case


def with_block(work: Callable[[], Any]) -> Callable[[], Any]:
    """A success inside ``with breaker:``."""
    breaker = _breaker()

    def case() -> Any:
        with breaker:
            return work()

    return case
