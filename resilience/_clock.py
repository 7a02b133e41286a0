"""
Time, injectable: the `Clock` protocol, the system clock, and the testing switch.

Every policy that reads time or sleeps takes ``clock=``. The default,
`SYSTEM_CLOCK`, reads `time.monotonic` and sleeps with `time.sleep` /
`asyncio.sleep` (`trio.sleep` under trio); `resilience.testing.FakeClock` is
the virtual one.

`testing_state` is the switch that `resilience.testing.set_testing` flips: while
it is on, policies wait zero seconds (and cap their attempts, when asked to).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

from ._lazy import lazy_module

if TYPE_CHECKING:
    import asyncio
else:  # imported on first use: sync code never needs it
    asyncio = lazy_module("asyncio", globals())

from . import _aio

__all__ = [
    "LONGEST_WAIT",
    "SYSTEM_CLOCK",
    "Clock",
    "SystemClock",
    "testing_enabled",
    "testing_state",
]

LONGEST_WAIT: Final = threading.TIMEOUT_MAX
"""
Seconds: the longest wait the platform's time functions hold (about 292 years
on Linux, 49 days on Windows). `time.sleep` and lock timeouts overflow beyond;
a wait that long gives up (or refuses) at once instead: it could never end.
"""


@runtime_checkable
class Clock(Protocol):
    """
    What a policy needs from time: a monotonic reading and two ways to sleep.

    Implement it to drive policies from virtual time (see
    `resilience.testing.FakeClock`) or from an event loop of your own.
    """

    def now(self) -> float:
        """Return monotonic seconds; only differences are meaningful."""
        ...

    def sleep(self, seconds: float, /) -> None:
        """Block the calling thread for *seconds*."""
        ...

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the calling task for *seconds*."""
        ...


@final
class SystemClock:
    """
    The real clock: `time.monotonic`, `time.sleep`, and `asyncio.sleep` or `trio.sleep`.

    Use the shared instance `SYSTEM_CLOCK`; there is nothing to configure.
    There is only ever that one: ``SystemClock()`` returns it, and pickling or
    copying it gives it back, so that policies stay equal through a round trip.
    """

    __slots__ = ()

    def __new__(cls) -> SystemClock:
        try:
            return _INSTANCE
        except NameError:  # creating SYSTEM_CLOCK itself, at import
            return super().__new__(cls)

    def __reduce__(self) -> str:
        # Pickled as a reference to the module global; copy returns it as is.
        return "SYSTEM_CLOCK"

    # Bound straight to the C functions: no Python frame on the hot path.
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the calling task for *seconds* with `asyncio.sleep` (`trio.sleep` under trio)."""
        await _aio.sleep(seconds)

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


_INSTANCE = SystemClock()
SYSTEM_CLOCK: Clock = _INSTANCE
"""The default clock of every policy."""


# --- testing switch --------------------------------------------------------


@final
class _TestingState:
    __slots__ = ("attempts", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self.attempts: int | None = None


testing_state = _TestingState()
"""Read by policies on their failure paths only; set by `resilience.testing.set_testing`."""


def testing_enabled() -> bool:
    """
    Return whether testing mode is on (`resilience.testing.set_testing`).

    In testing mode a policy's waits are zero: a policy that sleeps or waits
    for its own reasons (a pause, a pace) checks this and skips the sleep.
    The engine does it for a gate's time waits (`resilience.engine.Wait`).
    """
    return testing_state.enabled
