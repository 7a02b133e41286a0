"""
Deadlines: the time budget of the running code, for any code to read.

Entering a `resilience.Timeout` computes an absolute deadline and makes it the
one in force until the Timeout is left; nested deadlines keep the earliest.
Any code can read it to cap its own I/O, so that a call cannot outlive its
caller's budget:

```python
requests.get(url, timeout=rs.deadline.cap(10.0))   # 10 s, or less if the deadline is closer
httpx.get(url, timeout=rs.deadline.cap(10.0))

for chunk in chunks:
    rs.deadline.check()                              # cooperative: stop once time is up
    process(chunk)
```

Deadlines live on a context variable. Asyncio tasks inherit the deadline of
the code that created them (their context is a copy). Threads do not: carry
it into a pool with `contextvars.copy_context`:

```python
ctx = contextvars.copy_context()
pool.submit(ctx.run, work, arg)
```

Every function here costs a context-variable read and, inside a deadline, one
clock read.
"""

from __future__ import annotations

from typing import overload

from ._deadline import DEADLINE, Deadline, RawDeadline, public_deadline, time_left
from ._events import TimeoutExpired, emit
from ._exceptions import TimeoutExceededError, seconds_text

__all__ = ["Deadline", "cap", "check", "current", "remaining"]


def current() -> Deadline | None:
    """
    Return the deadline in force, or `None` outside any.

    Returns:
        The innermost (earliest) `Deadline`: its absolute time ``when`` on its
        ``clock``, and the ``timeout`` in seconds it was computed from.
    """
    deadline = DEADLINE.get()
    return None if deadline is None else public_deadline(deadline)


def remaining() -> float | None:
    """
    Return the seconds left before the deadline in force, or `None` outside any deadline.

    The value is negative once the deadline has passed; clamp it before handing
    it to an API that rejects negative timeouts (``max(left, 0.0)``), or use
    `cap`, which does that for you.

    Returns:
        Seconds (negative once passed), or `None`.
    """
    deadline = DEADLINE.get()
    if deadline is None:
        return None
    return deadline[0] - deadline[1].now()


def _expired(deadline: RawDeadline) -> TimeoutExceededError:
    limit = deadline[2]
    emit((), TimeoutExpired, timeout=limit)
    return TimeoutExceededError(limit, f"the deadline of {seconds_text(limit, 6)} s has passed")


def check() -> None:
    """
    Raise `TimeoutExceededError` if the deadline in force has passed.

    A cooperative check point for long sync work (a loop over chunks, a
    series of calls): code inside a sync `resilience.Timeout` is never
    interrupted, so it calls this where stopping is safe. Does nothing outside
    any deadline. At exactly the deadline, it has passed.

    Raises:
        TimeoutExceededError: With ``.timeout`` the limit that ran out.
    """
    deadline = DEADLINE.get()
    if deadline is not None and deadline[1].now() >= deadline[0]:
        raise _expired(deadline)


@overload
def cap(seconds: float) -> float: ...
@overload
def cap(seconds: None = None) -> float | None: ...


def cap(seconds: float | None = None) -> float | None:
    """
    Return *seconds* lowered, if need be, to the time left before the deadline in force.

    Made to be passed as an I/O timeout: ``requests.get(url,
    timeout=rs.deadline.cap(10.0))``. Outside any deadline it returns
    *seconds* unchanged.

    Args:
        seconds: The timeout the I/O would have without a deadline, in seconds.
            Default: `None` (no limit of its own: the time left, or `None`
            outside any deadline).

    Returns:
        The smaller of *seconds* and the seconds left (always > 0), or `None`
        when *seconds* is `None` outside any deadline. Typed `float` when
        *seconds* is a number, ``float | None`` otherwise.

    Raises:
        TimeoutExceededError: If the deadline has passed: no time is left for
            the I/O, which would fail anyway.
        ValueError: If *seconds* is not `None` nor a number > 0.
    """
    if seconds is not None and not (
        isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0
    ):
        raise ValueError(f"seconds must be a number > 0 or None, got {seconds!r}")
    deadline = DEADLINE.get()
    if deadline is None:
        return seconds
    left = time_left(deadline)
    if not left > 0:
        raise _expired(deadline)
    return left if seconds is None or left < seconds else seconds
