"""
Deadlines: ``rs.deadline.remaining()`` and ``rs.deadline.current()``.

Entering a `resilience.Timeout` computes an absolute deadline and pushes it on a
context variable; nested deadlines keep the earliest. Any code can read it to
cap its own I/O: pass ``rs.deadline.remaining()`` as the socket timeout of a
`requests` or `httpx` call, and the call cannot outlive the caller's budget.

Asyncio tasks inherit the deadline of the code that created them (contexts are
copied). Threads do not: carry it into a pool with `contextvars.copy_context`:

```python
ctx = contextvars.copy_context()
pool.submit(ctx.run, work, arg)
```

"""

from __future__ import annotations

from ._core import DEADLINE, Deadline

__all__ = ["Deadline", "current", "remaining"]


def current() -> Deadline | None:
    """Return the innermost deadline of the running context, or `None` outside any."""
    return DEADLINE.get()


def remaining() -> float | None:
    """
    Return the seconds left before the innermost deadline, or `None` outside any deadline.

    The value is negative once the deadline has passed; clamp it before handing
    it to an API that rejects negative timeouts (``max(left, 0.0)``).
    """
    deadline = DEADLINE.get()
    if deadline is None:
        return None
    return deadline.remaining()
