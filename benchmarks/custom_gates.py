"""
Custom gates written on the public `resilience.engine` protocol, for `bench_engine.py --extra`.

- `switch`: a kill switch with a fast path: while on, its `FastPath` admits
  and settles every call, the same work as a closed circuit breaker's.
- `concurrency`: the "Writing a policy" example, a counter behind a lock,
  with no fast path: `admit` and `on_success` run on every call.

    python benchmarks/bench_engine.py --old /tmp/old-tree \\
        --extra benchmarks.custom_gates:switch --extra benchmarks.custom_gates:concurrency
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import resilience as rs
from resilience.engine import FastPath, GatePolicy


class Switch(GatePolicy):
    """Run calls while on; refuse them while off."""

    def __init__(self) -> None:
        self.ready: object | None = object()
        self.settled = self.ready

    @property
    def fast(self) -> FastPath:
        return self

    def admit(self, target: object, /) -> object:
        raise rs.RejectedError("switched off")


class Concurrency(GatePolicy):
    """Refuse a call while *limit* calls are running."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.lock = threading.Lock()

    def admit(self, target: object, /) -> None:
        with self.lock:
            if self.running >= self.limit:
                raise rs.RejectedError(f"{self.limit} calls are running already")
            self.running += 1

    def release(self, *outcome: object) -> None:
        with self.lock:
            self.running -= 1

    on_success = on_failure = on_cancel = release


def switch(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate *fn* with a `Switch` (fast path)."""
    return Switch()(fn)


def concurrency(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate *fn* with a `Concurrency(10)` (no fast path)."""
    return Concurrency(10)(fn)
