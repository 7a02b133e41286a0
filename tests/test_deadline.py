"""rs.deadline: reading, checking and carrying the deadline in force."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import checkpoint, run_async


def test_nothing_outside_any_deadline() -> None:
    """Outside every Timeout, current() and remaining() are None."""
    assert rs.deadline.current() is None
    assert rs.deadline.remaining() is None


def test_remaining_follows_the_clock() -> None:
    """remaining() counts down on the Timeout's clock and goes negative once passed."""
    clock = FakeClock()
    with rs.Timeout(10, clock=clock):
        assert rs.deadline.remaining() == 10.0
        clock.advance(4)
        assert rs.deadline.remaining() == 6.0
        clock.advance(7)
        assert rs.deadline.remaining() == -1.0


def test_current_is_the_absolute_deadline() -> None:
    """current() is a Deadline: absolute `when` on its clock and the `timeout` it came from."""
    clock = FakeClock(50.0)
    with rs.Timeout(2.5, clock=clock):
        deadline = rs.deadline.current()
        assert isinstance(deadline, rs.deadline.Deadline)
        assert (deadline.when, deadline.timeout, deadline.clock) == (52.5, 2.5, clock)
        assert not deadline.expired()
        clock.advance(2.5)
        assert deadline.expired()


@pytest.mark.parametrize(("outer", "inner", "expected"), [(3, 10, 3.0), (10, 3, 3.0)])
def test_nested_deadlines_take_the_earliest(outer: float, inner: float, expected: float) -> None:
    """Whichever block is shorter, the earlier deadline is in force inside both."""
    clock = FakeClock()
    with rs.Timeout(outer, clock=clock):
        with rs.Timeout(inner, clock=clock):
            assert rs.deadline.remaining() == expected
        assert rs.deadline.remaining() == float(outer)


def test_deadlines_on_different_clocks_compare_by_time_left() -> None:
    """An enclosing deadline on another clock is compared by the seconds it has left."""
    outer_clock, inner_clock = FakeClock(1000.0), FakeClock()
    with rs.Timeout(3, clock=outer_clock), rs.Timeout(10, clock=inner_clock):
        deadline = rs.deadline.current()
        assert deadline is not None
        assert deadline.clock is outer_clock


def test_deadline_is_restored_when_the_block_raises() -> None:
    """An exception leaving a block restores the enclosing deadline."""
    with pytest.raises(KeyError), rs.Timeout(5):
        raise KeyError
    assert rs.deadline.current() is None


def test_asyncio_tasks_inherit_the_deadline(backend: str) -> None:
    """Tasks created inside a deadline see it; tasks created outside do not (every backend)."""

    async def probe() -> rs.deadline.Deadline | None:
        return rs.deadline.current()

    async def spawn() -> rs.deadline.Deadline | None:
        if backend == "asyncio":
            return await asyncio.create_task(probe())
        seen: list[rs.deadline.Deadline | None] = []

        async def child() -> None:
            seen.append(await probe())

        async with anyio.create_task_group() as group:  # a nursery, under trio
            group.start_soon(child)
        return seen[0]

    async def main() -> tuple[object, object, object]:
        before = await spawn()
        async with rs.Timeout(30) as deadline:
            inside = await spawn()
        return before, inside, deadline

    before, inside, deadline = run_async(main, backend)
    assert before is None
    assert inside == deadline


def test_concurrent_tasks_keep_their_own_deadlines(backend: str) -> None:
    """Two tasks under different Timeouts never see each other's deadline."""
    clock = FakeClock()

    async def under(seconds: float) -> list[float | None]:
        seen: list[float | None] = []
        async with rs.Timeout(seconds, clock=clock):
            for _ in range(3):
                seen.append(rs.deadline.remaining())
                await checkpoint()
        return seen

    async def main() -> list[list[float | None]]:
        out: dict[float, list[float | None]] = {}

        async def one(seconds: float) -> None:
            out[seconds] = await under(seconds)

        async with anyio.create_task_group() as group:  # a nursery, under trio
            group.start_soon(one, 5)
            group.start_soon(one, 9)
        return [out[5], out[9]]

    assert run_async(main, backend) == [[5.0] * 3, [9.0] * 3]


def test_threads_do_not_inherit_without_copy_context() -> None:
    """A pool thread sees no deadline unless the context is carried with copy_context().run."""
    clock = FakeClock()
    with ThreadPoolExecutor(1) as pool, rs.Timeout(4, clock=clock):
        plain = pool.submit(rs.deadline.remaining).result()
        carried = pool.submit(contextvars.copy_context().run, rs.deadline.remaining).result()
    assert (plain, carried) == (None, 4.0)


# --- check() -----------------------------------------------------------------------


def test_check_does_nothing_outside_a_deadline() -> None:
    """check() outside any deadline returns quietly."""
    rs.deadline.check()


def test_check_does_nothing_before_the_deadline() -> None:
    """check() before the deadline returns quietly."""
    clock = FakeClock()
    with rs.Timeout(1, clock=clock):
        clock.advance(0.5)
        rs.deadline.check()


def test_check_raises_at_the_deadline() -> None:
    """At exactly the deadline, check() raises TimeoutExceededError with the limit."""
    clock = FakeClock()
    with rs.Timeout(2, clock=clock):
        clock.advance(2)
        with pytest.raises(rs.TimeoutExceededError) as info:
            rs.deadline.check()
    assert info.value.timeout == 2.0


def test_check_reports_timeout_expired() -> None:
    """check() raising reports a TimeoutExpired event."""
    clock = FakeClock()
    with capture_events() as events, rs.Timeout(2, clock=clock):
        clock.advance(3)
        with pytest.raises(rs.TimeoutExceededError):
            rs.deadline.check()
    assert [type(e) for e in events] == [rs.TimeoutExpired]


# --- cap() ------------------------------------------------------------------------


def test_cap_outside_a_deadline_returns_the_value() -> None:
    """Outside any deadline, cap(seconds) is seconds and cap() is None."""
    assert rs.deadline.cap(10.0) == 10.0
    assert rs.deadline.cap() is None


def test_cap_lowers_to_the_time_left() -> None:
    """Inside a deadline, cap() is the smaller of the value and the time left."""
    clock = FakeClock()
    with rs.Timeout(5, clock=clock):
        assert rs.deadline.cap(10.0) == 5.0
        assert rs.deadline.cap(2.0) == 2.0
        clock.advance(4.5)
        assert rs.deadline.cap(2.0) == 0.5
        assert rs.deadline.cap() == 0.5


def test_cap_raises_once_the_deadline_passed() -> None:
    """With no time left, cap() raises instead of handing out a zero or negative timeout."""
    clock = FakeClock()
    with rs.Timeout(1, clock=clock):
        clock.advance(1)
        with pytest.raises(rs.TimeoutExceededError):
            rs.deadline.cap(10.0)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), True, "10"])
def test_cap_rejects_bad_seconds(value: Any) -> None:
    """cap(seconds) names a value that is not a number > 0."""
    with pytest.raises(ValueError, match=f"seconds must be a number > 0 or None, got {value!r}"):
        rs.deadline.cap(value)
