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
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Limit"]


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
