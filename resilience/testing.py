"""
Test helpers: a fake clock, a switch that removes waits, and event capture.

``FakeClock`` makes time virtual: sleeping advances it instantly and is
recorded, so tests never sleep for real and never assert on wall-clock time:

```python
clock = FakeClock()
retry = rs.Retry(on=ValueError, clock=clock)
...
assert clock.sleeps == [0.1, 0.2]
```

"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import final

from . import _aio
from ._clock import testing_state
from ._events import Event, add_hook, remove_hook
from ._fork import fork_safe_lock
from ._validate import to_count

__all__ = ["FakeClock", "capture_events", "set_testing"]


@final
class FakeClock:
    """
    A virtual clock implementing `resilience.Clock`.

    `now` starts at *start* and moves only when `advance` is called or when
    something sleeps on it: `sleep` and `asleep` advance time by the requested
    seconds at once (``asleep`` still yields to the event loop once) and append
    them to `sleeps`. Safe to share between threads.

    Args:
        start: The initial reading, in seconds. Default: 0.0.
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = fork_safe_lock()
        self.sleeps: list[float] = []
        """Every sleep requested, sync or async, in seconds, in order."""

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeps={len(self.sleeps)})"

    def now(self) -> float:
        """Return the virtual time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """
        Move time forward by *seconds*.

        Raises:
            ValueError: If *seconds* is negative (monotonic time never goes back).
        """
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, /) -> None:
        """Record the sleep and advance time by *seconds*, without blocking."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def asleep(self, seconds: float, /) -> None:
        """Record the sleep, advance time by *seconds*, and yield to the loop once."""
        self.sleep(seconds)
        await _aio.checkpoint()


@final
class _TestingSwitch:
    """Returned by `set_testing`; restores the previous state when used as a context manager."""

    __slots__ = ("_previous",)

    def __init__(self, previous: tuple[bool, int | None]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        testing_state.enabled, testing_state.attempts = self._previous


def set_testing(enabled: bool, /, *, attempts: int | None = None) -> _TestingSwitch:
    """
    Turn testing mode on or off for every policy in the process.

    In testing mode, retries wait zero seconds, and when *attempts* is given,
    every `Retry` makes at most that many attempts. Use it as a plain call, or
    as a context manager that restores the previous state:

    ```python
    with set_testing(True, attempts=1):
        ...
    ```

    Args:
        enabled: Whether testing mode is on.
        attempts: Cap on attempts while on; `None` keeps each Retry's own.

    Raises:
        ValueError: If *attempts* is below 1.
    """
    try:
        to_count("attempts", attempts, none=True)
    except (TypeError, ValueError):  # one ValueError, as documented
        raise ValueError(f"attempts must be an int >= 1 or None, got {attempts!r}") from None
    previous = (testing_state.enabled, testing_state.attempts)
    testing_state.enabled = bool(enabled)
    testing_state.attempts = attempts if enabled else None
    return _TestingSwitch(previous)


@contextmanager
def capture_events() -> Iterator[list[Event]]:
    """
    Collect every event of every policy while the block runs.

    The collecting hook is added to the global hooks on entry and removed on
    exit; if the block already removed it (with `resilience.set_hooks`, say),
    exit leaves the hooks as they are, and never hides the block's exception.

    Yields:
        A list that fills as events happen (from any thread or task).
    """
    events: list[Event] = []
    hook = events.append
    add_hook(hook)
    try:
        yield events
    finally:
        with suppress(ValueError):  # the block removed it already
            remove_hook(hook)
