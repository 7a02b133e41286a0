"""resilience.testing: the fake clock."""

from __future__ import annotations

import threading

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import run_async
from .threads import join_all


def test_fake_clock_is_a_clock() -> None:
    """FakeClock satisfies the Clock protocol."""
    assert isinstance(FakeClock(), rs.Clock)


def test_sleep_advances_and_records(backend: str) -> None:
    """Sleeping advances virtual time at once and is recorded."""
    clock = FakeClock(start=10.0)
    clock.sleep(1.5)
    run_async(lambda: clock.asleep(2.0), backend)
    clock.advance(0.5)
    assert clock.now() == 14.0
    assert clock.sleeps == [1.5, 2.0]


def test_advance_rejects_going_back() -> None:
    """Monotonic time never goes back."""
    with pytest.raises(ValueError, match="seconds must be >= 0, got -1"):
        FakeClock().advance(-1)


def test_shared_between_threads() -> None:
    """Concurrent sleeps from many threads are all recorded and summed."""
    clock = FakeClock()

    def work() -> None:
        for _ in range(1000):
            clock.sleep(0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    join_all(threads)
    assert len(clock.sleeps) == 8000
    assert clock.now() == pytest.approx(8.0)


def test_system_clock(backend: str) -> None:
    """The system clock reads time.monotonic and sleeps with time.sleep / asyncio.sleep."""
    import time

    from resilience._clock import SYSTEM_CLOCK

    assert SYSTEM_CLOCK.now is time.monotonic
    assert SYSTEM_CLOCK.sleep is time.sleep
    first = SYSTEM_CLOCK.now()
    SYSTEM_CLOCK.sleep(0)
    run_async(lambda: SYSTEM_CLOCK.asleep(0), backend)
    assert SYSTEM_CLOCK.now() >= first
    assert repr(SYSTEM_CLOCK) == "SYSTEM_CLOCK"


def test_capture_events_never_hides_the_blocks_exception() -> None:
    """A block that removed the collecting hook (set_hooks) still raises its own exception."""
    with pytest.raises(KeyError, match="real"), capture_events():
        rs.set_hooks([])
        raise KeyError("real")
    assert rs.get_hooks() == ()


def test_capture_events_exits_quietly_when_its_hook_is_gone() -> None:
    """Exit leaves the hooks the block set alone, and raises nothing."""
    with capture_events():
        rs.set_hooks([rs.log_event])
    assert rs.get_hooks() == (rs.log_event,)
