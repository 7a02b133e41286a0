"""
Time, injectable: the `Clock` protocol and the system clock.

Every policy that reads time or sleeps takes ``clock=``. The default,
`SYSTEM_CLOCK`, reads `time.monotonic` and sleeps with `time.sleep` /
`asyncio.sleep`; `resilience.testing.FakeClock` is the virtual one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, final, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


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
    The real clock: `time.monotonic`, `time.sleep` and `asyncio.sleep`.

    Use the shared instance `SYSTEM_CLOCK`; there is nothing to configure.
    """

    __slots__ = ()

    # Bound straight to the C functions: no Python frame on the hot path.
    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the calling task for *seconds* with `asyncio.sleep`."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: Clock = SystemClock()
"""The default clock of every policy."""
