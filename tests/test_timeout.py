"""Timeout: configuration, cooperative sync deadlines, async cancellation, and Retry."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import gc
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import pytest

import resilience as rs
from resilience import _timeout, backoff
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .forms import cancel_task, cancelled_error, checkpoint, run_async
from .threads import join_all

HANG = 10.0  # seconds a "hung" coroutine would wait; the tests cancel it long before
SHORT = 0.05  # real seconds for the timeouts that must really fire


async def hang() -> None:
    await anyio.sleep(HANG)


def left() -> float:
    """The seconds left before the deadline in force (which must exist)."""
    value = rs.deadline.remaining()
    assert value is not None
    return value


# --- configuration -----------------------------------------------------------------


def test_seconds_accepts_numbers_and_timedelta() -> None:
    """seconds is a positive number or a timedelta, stored as float seconds."""
    assert rs.Timeout(10).seconds == 10.0
    assert rs.Timeout(0.25).seconds == 0.25
    assert rs.Timeout(datetime.timedelta(minutes=2)).seconds == 120.0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "seconds must be a finite number of seconds > 0, got 0"),
        (-1.5, ValueError, "seconds must be a finite number of seconds > 0, got -1.5"),
        (math.nan, ValueError, "seconds must be a finite number of seconds > 0, got nan"),
        (math.inf, ValueError, "seconds must be a finite number of seconds > 0, got inf"),
        (10**400, ValueError, "seconds must be a finite number of seconds > 0, got 1000"),
        (datetime.timedelta(0), ValueError, r"got datetime\.timedelta\(0\)"),
        (True, TypeError, "seconds must be seconds .*, got bool: True"),
        ("10", TypeError, "seconds must be seconds .*, got str: '10'"),
        (None, TypeError, "seconds must be seconds .*, got NoneType: None"),
    ],
)
def test_bad_seconds(value: Any, error: type[Exception], message: str) -> None:
    """seconds must be a finite number > 0, and the error names the value."""
    with pytest.raises(error, match=message):
        rs.Timeout(value)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "idle must be a finite number of seconds > 0, got 0"),
        (-1, ValueError, "idle must be a finite number of seconds > 0, got -1"),
        (math.nan, ValueError, "idle must be a finite number of seconds > 0, got nan"),
        (math.inf, ValueError, "idle must be a finite number of seconds > 0, got inf"),
        (False, TypeError, "idle must be seconds .*, got bool: False"),
        ("1", TypeError, "idle must be seconds .*, got str: '1'"),
        (
            11,
            ValueError,
            r"idle must be <= seconds \(the total limit\), got idle=11.0 > seconds=10.0",
        ),
    ],
)
def test_bad_idle(value: Any, error: type[Exception], message: str) -> None:
    """idle must be a finite number > 0 and at most seconds."""
    with pytest.raises(error, match=message):
        rs.Timeout(10, idle=value)


def test_idle_accepts_none_timedelta_and_the_total() -> None:
    """idle None disables it; a timedelta converts; idle may equal the total."""
    assert rs.Timeout(10).idle is None
    assert rs.Timeout(10, idle=datetime.timedelta(seconds=3)).idle == 3.0
    assert rs.Timeout(120, idle=120).idle == 120.0


def test_bad_name() -> None:
    """name must be a string."""
    with pytest.raises(TypeError, match="name must be a str or None, got int: 3"):
        rs.Timeout(1, name=3)  # type: ignore[arg-type]


def test_bad_hooks() -> None:
    """hooks must be an iterable of callables."""
    with pytest.raises(TypeError, match="hooks must be callables taking an event, got 1"):
        rs.Timeout(1, hooks=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="hooks must be an iterable of callables"):
        rs.Timeout(1, hooks=5)  # type: ignore[arg-type]


def test_bad_clock() -> None:
    """clock must provide now, sleep and asleep."""
    with pytest.raises(TypeError, match="clock must have now"):
        rs.Timeout(1, clock=object())  # type: ignore[arg-type]


@pytest.mark.parametrize("is_async", [False, True], ids=["function", "coroutine function"])
def test_idle_on_a_non_stream_function_fails_at_decoration(is_async: bool) -> None:
    """idle on a function or coroutine function is a TypeError when decorating, not when called."""

    def f() -> None: ...

    async def af() -> None: ...

    with pytest.raises(TypeError, match=r"idle limits the wait for each item .* idle=1\.0"):
        rs.Timeout(5, idle=1)(af if is_async else f)


def test_idle_on_a_block_is_a_type_error(backend: str) -> None:
    """A with or async with block has no items: idle there is a TypeError."""
    timeout = rs.Timeout(5, idle=1)
    with pytest.raises(TypeError, match="a `with` block has no items"), timeout:
        pass  # pragma: no cover

    async def main() -> None:
        async with timeout:
            pass  # pragma: no cover

    with pytest.raises(TypeError, match="a `async with` block has no items"):
        run_async(main, backend)
    assert rs.deadline.current() is None


def test_timeout_is_frozen_hashable_and_evolvable() -> None:
    """Timeout is immutable configuration; attrs.evolve makes variants."""
    timeout = rs.Timeout(10, name="api")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        timeout.seconds = 5  # type: ignore[misc]
    assert timeout == rs.Timeout(10.0, name="api")
    assert hash(timeout) == hash(rs.Timeout(10.0, name="api"))
    assert attrs.evolve(timeout, seconds=5).seconds == 5.0


def test_repr_shows_what_was_configured() -> None:
    """The repr names the limits and the name, not the defaults."""
    assert repr(rs.Timeout(10)) == "Timeout(10.0)"
    assert repr(rs.Timeout(60, idle=5, name="s")) == "Timeout(60.0, idle=5.0, name='s')"


def test_exported_from_the_package() -> None:
    """rs.Timeout is public, a Policy, and says it lives in `resilience`."""
    assert rs.Timeout.__module__ == "resilience"
    assert "Timeout" in rs.__all__
    assert isinstance(rs.Timeout(1), rs.Policy)


# --- the deadline of a call (sync and async) ----------------------------------------


def test_the_call_runs_under_its_deadline(mode: Runner) -> None:
    """Inside the call the deadline is now + seconds on the policy's clock."""
    clock = FakeClock(100.0)
    seen: list[object] = []

    def body() -> str:
        deadline = rs.deadline.current()
        assert deadline is not None
        seen.append((deadline.when, deadline.timeout, left()))
        return "ok"

    assert mode.run(rs.Timeout(5, clock=clock)(mode.make(body))) == "ok"
    assert seen == [(105.0, 5.0, 5.0)]


def test_the_deadline_is_restored_after_the_call(mode: Runner) -> None:
    """Leaving the call, returning or raising, restores the enclosing deadline."""
    clock = FakeClock()

    def fails() -> None:
        raise KeyError("k")

    wrapped = rs.Timeout(5, clock=clock)
    assert mode.run(wrapped(mode.make(lambda: 1))) == 1
    assert rs.deadline.current() is None
    with pytest.raises(KeyError):
        mode.run(wrapped(mode.make(fails)))
    assert rs.deadline.current() is None


def test_an_earlier_enclosing_deadline_stays_in_force(mode: Runner) -> None:
    """Nested deadlines take the earliest: a longer inner Timeout does not extend the outer."""
    clock = FakeClock()
    seen: list[float] = []
    inner = rs.Timeout(10, clock=clock)(mode.make(lambda: seen.append(left())))
    with rs.Timeout(3, clock=clock):
        mode.run(inner)
    assert seen == [3.0]


def test_a_shorter_inner_deadline_takes_over(mode: Runner) -> None:
    """A shorter inner Timeout sets the earlier deadline for the call."""
    clock = FakeClock()
    seen: list[float] = []
    inner = rs.Timeout(2, clock=clock)(mode.make(lambda: seen.append(left())))
    with rs.Timeout(30, clock=clock):
        mode.run(inner)
        assert left() == 30.0
    assert seen == [2.0]


def test_refuses_to_start_once_the_enclosing_deadline_passed(mode: Runner) -> None:
    """When the deadline has passed before the call starts, the call does not run."""
    clock = FakeClock()
    calls: list[int] = []
    wrapped = rs.Timeout(10, clock=clock)(mode.make(lambda: calls.append(1)))
    with rs.Timeout(3, clock=clock), pytest.raises(rs.TimeoutExceededError) as info:
        clock.advance(3)  # at exactly the deadline, it has passed
        mode.run(wrapped)
    assert calls == []
    assert info.value.timeout == 3.0
    assert "not started: its deadline of 3 s had already passed" in str(info.value)


def test_timeout_exceeded_error_is_a_builtin_timeout_error(mode: Runner) -> None:
    """`except TimeoutError` catches our expiry."""
    clock = FakeClock()
    wrapped = rs.Timeout(10, clock=clock)(mode.make(lambda: None))
    with rs.Timeout(1, clock=clock), pytest.raises(TimeoutError):
        clock.advance(2)
        mode.run(wrapped)


def test_expiry_emits_timeout_expired(mode: Runner) -> None:
    """Raising for a passed deadline reports TimeoutExpired with the limit and the target."""
    clock = FakeClock()

    def work() -> None: ...

    wrapped = rs.Timeout(10, name="api", clock=clock)(mode.make(work))
    with capture_events() as events, rs.Timeout(1, clock=clock), pytest.raises(TimeoutError):
        clock.advance(2)
        mode.run(wrapped)
    [event] = events
    assert isinstance(event, rs.TimeoutExpired)
    assert (event.name, event.timeout, event.idle) == ("api", 1.0, False)
    assert event.target is not None
    assert event.target.endswith("work")


def test_success_emits_nothing(mode: Runner) -> None:
    """A call within its deadline reports no event."""
    with capture_events() as events:
        mode.run(rs.Timeout(5, clock=FakeClock())(mode.make(lambda: 1)))
    assert events == []


def test_call_and_acall(mode: Runner) -> None:
    """timeout.call and timeout.acall run once under the deadline."""
    clock = FakeClock()
    timeout = rs.Timeout(4, clock=clock)
    if mode.is_async:

        async def af(x: int) -> float:
            return left() + x

        assert mode.run(timeout.acall, af, 1) == 5.0
    else:
        assert timeout.call(lambda x: left() + x, 1) == 5.0


def test_decorates_methods() -> None:
    """A decorated method gets its instance and runs under the deadline."""
    clock = FakeClock()

    class Client:
        @rs.Timeout(7, clock=clock)
        def get(self) -> tuple[Client, float]:
            return self, left()

    client = Client()
    assert client.get() == (client, 7.0)


# --- sync: cooperative ---------------------------------------------------------------


def test_sync_late_result_is_returned() -> None:
    """A sync call that returns after its deadline returns its value; nothing is reported."""
    clock = FakeClock()

    @rs.Timeout(1, clock=clock)
    def slow() -> str:
        clock.advance(5)
        return "paid for"

    with capture_events() as events:
        assert slow() == "paid for"
    assert events == []


def test_sync_with_block_sets_and_restores_the_deadline() -> None:
    """`with timeout as deadline:` makes the deadline current and returns it."""
    clock = FakeClock(10.0)
    with rs.Timeout(5, clock=clock) as deadline:
        assert rs.deadline.current() == deadline
        assert (deadline.when, deadline.timeout) == (15.0, 5.0)
    assert rs.deadline.current() is None


def test_sync_with_block_is_never_interrupted() -> None:
    """A sync block that overruns its deadline runs to the end; leaving it raises nothing."""
    clock = FakeClock()
    done = []
    with rs.Timeout(1, clock=clock):
        clock.advance(5)
        done.append(True)
    assert done == [True]


def test_sync_with_block_refuses_to_start_after_the_deadline() -> None:
    """Entering a block after the enclosing deadline passed raises TimeoutExceededError."""
    clock = FakeClock()
    timeout = rs.Timeout(5, clock=clock)
    with timeout:
        clock.advance(6)
        with (
            pytest.raises(rs.TimeoutExceededError, match="block not started"),
            rs.Timeout(1, clock=clock),
        ):
            pass  # pragma: no cover
        assert rs.deadline.current() is not None
    assert rs.deadline.current() is None


def test_sync_with_blocks_must_nest() -> None:
    """Leaving blocks out of order is a RuntimeError, not a silently wrong deadline."""
    a, b = rs.Timeout(1), rs.Timeout(2)

    def misuse() -> None:
        a.__enter__()
        b.__enter__()
        with pytest.raises(RuntimeError, match="blocks must nest"):
            a.__exit__(None, None, None)

    contextvars.copy_context().run(misuse)


def test_one_timeout_shared_by_threads_keeps_per_thread_deadlines() -> None:
    """Threads entering the same Timeout each get and restore their own deadline."""
    clock = FakeClock()
    timeout = rs.Timeout(5, clock=clock)
    turns = [threading.Event() for _ in range(9)]
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def work(i: int) -> None:
        turns[i].wait()
        with timeout as deadline:  # thread i enters at virtual time i
            clock.advance(1)
            turns[i + 1].set()
            barrier.wait()  # every thread is inside at once
            seen.append((rs.deadline.current(), deadline.when))
        seen.append(rs.deadline.current())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    turns[0].set()
    join_all(threads)
    inside = sorted(item for item in seen if isinstance(item, tuple))
    assert [(current.when, when) for current, when in inside] == [
        (i + 5.0, i + 5.0) for i in range(8)
    ]
    assert seen.count(None) == 8


# --- async: cancellation ---------------------------------------------------------------


def test_async_call_is_cancelled_at_the_deadline(backend: str) -> None:
    """A hung coroutine is cancelled; the caller gets TimeoutExceededError from the cancellation."""

    @rs.Timeout(SHORT)
    async def stuck() -> None:
        await hang()

    with pytest.raises(rs.TimeoutExceededError) as info:
        run_async(stuck, backend)
    assert info.value.timeout == SHORT
    assert isinstance(info.value.__cause__, cancelled_error(backend))
    assert "stuck timed out after 0.05 s" in str(info.value)


def test_async_expiry_emits_timeout_expired(backend: str) -> None:
    """Cancelling at the deadline reports TimeoutExpired."""
    with capture_events() as events, pytest.raises(rs.TimeoutExceededError):
        run_async(lambda: rs.Timeout(SHORT, name="slow").acall(hang), backend)
    [event] = events
    assert isinstance(event, rs.TimeoutExpired)
    assert (event.name, event.target, event.timeout) == ("slow", "hang", SHORT)


def test_async_expiry_leaves_the_task_uncancelled(backend: str) -> None:
    """After our expiry is handled, the task is not left cancelled (nor cancelling, in asyncio)."""

    async def main() -> int:
        with pytest.raises(rs.TimeoutExceededError):
            await rs.Timeout(SHORT).acall(hang)
        await checkpoint()  # a stray cancellation would be delivered here
        if backend.endswith("trio"):
            return 0
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert run_async(main, backend) == 0


def test_async_expiry_swallowed_by_the_body_returns_its_value() -> None:
    """Issue 19: a body that swallows our cancellation returns; the task is not left cancelling."""

    async def body() -> str:
        try:
            await hang()
        except asyncio.CancelledError:
            return "swallowed"
        return "never"  # pragma: no cover

    async def main() -> tuple[str, int]:
        value = await rs.Timeout(SHORT).acall(body)
        await asyncio.sleep(0)  # a stray cancellation would be delivered here
        task = asyncio.current_task()
        assert task is not None
        return value, task.cancelling()

    assert asyncio.run(main()) == ("swallowed", 0)


def test_async_timeout_error_raised_after_our_expiry_is_ours() -> None:
    """Issue 19: under asyncio, a TimeoutError raised on our cancellation reads as our expiry."""

    async def body() -> None:
        try:
            await hang()
        except asyncio.CancelledError as exc:
            raise TimeoutError("the body's own") from exc

    with pytest.raises(rs.TimeoutExceededError) as info:
        asyncio.run(rs.Timeout(SHORT).acall(body))
    assert info.value.timeout == SHORT
    assert isinstance(info.value.__cause__, asyncio.CancelledError)


def test_async_calls_on_one_loop_each_expire_at_their_own_deadline() -> None:
    """Issue 19: calls sharing a loop's timer: a later, shorter deadline fires first, alone."""
    finished: list[str] = []

    async def work(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def call(name: str, limit: float, seconds: float) -> None:
        try:
            await rs.Timeout(limit).acall(work, seconds)
        except rs.TimeoutExceededError:
            finished.append(f"{name} timed out")
        else:
            finished.append(f"{name} done")

    async def main() -> None:
        long = asyncio.create_task(call("long", HANG, 2.0))  # the timer set first, for HANG
        await asyncio.sleep(0)
        await call("short", SHORT, HANG)  # earlier: the timer set again, for SHORT
        await long

    asyncio.run(main())
    assert finished == ["short timed out", "long done"]


def test_async_calls_in_time_leave_no_deadline_behind() -> None:
    """Issue 19: a call that ends in time, or raises, takes its deadline off the loop's timers."""

    async def ok() -> int:
        return 1

    async def fails() -> int:
        raise ValueError("boom")

    async def main() -> int:
        for _ in range(3):
            await rs.Timeout(HANG).acall(ok)
            with pytest.raises(ValueError, match="boom"):
                await rs.Timeout(HANG).acall(fails)
        timers = _timeout._LOOP_TIMERS[id(asyncio.get_running_loop())]
        assert timers is not None
        return len(timers.pending)

    assert asyncio.run(main()) == 0


def test_async_loop_timers_are_forgotten_with_their_loop() -> None:
    """Issue 19: the per-loop timers go with their loop: asyncio.run again and again keeps none."""

    async def ok() -> int:
        return 1

    def run_once() -> None:
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(rs.Timeout(HANG).acall(ok)) == 1
            assert id(loop) in _timeout._LOOP_TIMERS
        finally:
            loop.close()

    before = set(_timeout._LOOP_TIMERS)
    for _ in range(3):
        run_once()
        gc.collect()
    assert set(_timeout._LOOP_TIMERS) <= before


def test_async_loop_without_weak_references_gets_a_timer_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 19: a loop without weak references (no shared timers) still cancels at the deadline."""

    def refuse(*args: object) -> None:
        raise TypeError("cannot create weak reference")

    monkeypatch.setattr(_timeout, "_finalize", refuse)

    async def main() -> object:
        with pytest.raises(rs.TimeoutExceededError):
            await rs.Timeout(SHORT).acall(hang)
        return _timeout._LOOP_TIMERS.pop(id(asyncio.get_running_loop()), "missing")

    assert asyncio.run(main()) is None


def test_async_with_cancels_the_block(backend: str) -> None:
    """`async with timeout:` cancels the body and raises TimeoutExceededError."""
    reached: list[str] = []

    async def main() -> None:
        async with rs.Timeout(SHORT) as deadline:
            assert rs.deadline.current() == deadline
            await hang()
            reached.append("after")  # pragma: no cover

    with pytest.raises(rs.TimeoutExceededError) as info:
        run_async(main, backend)
    assert isinstance(info.value.__cause__, cancelled_error(backend))
    assert reached == []


def test_async_with_restores_the_deadline(backend: str) -> None:
    """Leaving `async with`, normally or by expiry, restores the enclosing deadline."""

    async def main() -> list[object]:
        seen: list[object] = []
        async with rs.Timeout(5):
            seen.append(rs.deadline.current() is not None)
        seen.append(rs.deadline.current())
        with pytest.raises(rs.TimeoutExceededError):
            async with rs.Timeout(SHORT):
                await hang()
        seen.append(rs.deadline.current())
        return seen

    assert run_async(main, backend) == [True, None, None]


def test_async_with_refuses_to_start_after_the_deadline(backend: str) -> None:
    """Entering `async with` after the enclosing deadline passed raises at once."""
    clock = FakeClock()

    async def main() -> None:
        with rs.Timeout(1, clock=clock):
            clock.advance(1)
            async with rs.Timeout(5, clock=clock):
                pass  # pragma: no cover

    with pytest.raises(rs.TimeoutExceededError, match="block not started"):
        run_async(main, backend)


def test_async_timeout_error_raised_by_the_body_passes_unchanged(backend: str) -> None:
    """A TimeoutError of the code itself is not mistaken for our expiry."""
    own = TimeoutError("socket read timed out")

    async def body() -> None:
        await checkpoint()
        raise own

    with pytest.raises(TimeoutError) as info:
        run_async(lambda: rs.Timeout(5).acall(body), backend)
    assert info.value is own


def test_async_nested_timeouts_report_the_inner_expiry(backend: str) -> None:
    """When the inner of two async Timeouts fires, the inner's limit is reported."""

    async def main() -> None:
        async with rs.Timeout(HANG):
            await rs.Timeout(SHORT).acall(hang)

    with pytest.raises(rs.TimeoutExceededError) as info:
        run_async(main, backend)
    assert info.value.timeout == SHORT


def test_async_nested_timeouts_report_the_outer_expiry(backend: str) -> None:
    """When the outer deadline comes first, the inner call is cancelled with the outer's limit."""

    async def main() -> None:
        async with rs.Timeout(SHORT):
            await rs.Timeout(HANG).acall(hang)

    with pytest.raises(rs.TimeoutExceededError) as info:
        run_async(main, backend)
    assert info.value.timeout == SHORT


@pytest.mark.parametrize("surface", ["decorator", "async with"])
def test_outer_task_cancel_propagates_as_cancelled_error(surface: str, backend: str) -> None:
    """An outer cancellation (task.cancel(), a cancel scope) stays one, never our timeout."""
    started: list[int] = []

    async def body() -> None:
        started.append(1)
        await hang()

    async def guarded() -> None:
        if surface == "decorator":
            await rs.Timeout(HANG).acall(body)
        else:
            async with rs.Timeout(HANG):
                await body()

    with capture_events() as events:
        cancel_task(guarded, lambda: bool(started), backend)
    assert events == []


@pytest.mark.parametrize("outer_at", [0.5 * SHORT, 1.5 * SHORT], ids=["before", "after"])
@pytest.mark.parametrize("surface", ["decorator", "async with"])
def test_outer_cancel_arriving_with_the_expiry_wins(
    surface: str, outer_at: float, backend: str
) -> None:
    """An outer cancel delivered in the same loop step as our expiry stays a cancellation."""

    async def body() -> None:
        # Block the loop past both the deadline and the outer cancel, so that both
        # timers fire in the same iteration, before the task can run again.
        time.sleep(3 * SHORT)  # noqa: ASYNC251 - blocking the loop on purpose
        await hang()

    async def guarded() -> None:
        if surface == "decorator":
            await rs.Timeout(SHORT).acall(body)
        else:
            async with rs.Timeout(SHORT):
                await body()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(guarded())
        loop.call_later(outer_at, task.cancel)
        await task

    async def main_scoped() -> bool:
        # trio and anyio: an outer cancel scope whose deadline passes with ours.
        with anyio.CancelScope(deadline=anyio.current_time() + outer_at) as outer:
            await guarded()
        return outer.cancelled_caught

    if backend == "asyncio":
        with pytest.raises(asyncio.CancelledError):
            run_async(main, backend)
    else:
        assert run_async(main_scoped, backend) is True


def test_async_fake_clock_governs_remaining_not_cancellation(backend: str) -> None:
    """With a FakeClock, remaining() follows virtual time; advancing it cancels nothing."""
    clock = FakeClock()

    @rs.Timeout(5, clock=clock)
    async def body() -> tuple[float, float]:
        before = left()
        clock.advance(60)
        await checkpoint()
        return before, left()

    assert run_async(body, backend) == (5.0, -55.0)


def test_async_fake_clock_still_cancels_after_real_seconds(backend: str) -> None:
    """With a FakeClock, the cancellation is scheduled on the loop for the time left."""
    with pytest.raises(rs.TimeoutExceededError):
        run_async(lambda: rs.Timeout(SHORT, clock=FakeClock()).acall(hang), backend)


def test_async_deadline_is_inherited_by_child_tasks(backend: str) -> None:
    """A task created inside the call sees the call's deadline."""
    clock = FakeClock()

    async def child() -> float:
        return left()

    async def collect(seen: list[float]) -> None:
        seen.append(await child())

    @rs.Timeout(8, clock=clock)
    async def parent() -> float:
        if backend == "asyncio":
            return await asyncio.create_task(child())
        seen: list[float] = []
        async with anyio.create_task_group() as group:  # a nursery, under trio
            group.start_soon(collect, seen)
        return seen[0]

    assert run_async(parent, backend) == 8.0


# --- Retry and deadlines --------------------------------------------------------------


def failing(errors: list[BaseException], value: object = "ok") -> Callable[[], object]:
    def body() -> object:
        if errors:
            raise errors.pop(0)
        return value

    return body


def test_timeout_outside_retry_bounds_all_attempts(mode: Runner) -> None:
    """compose(timeout, retry): Retry stops when the next attempt would start past the deadline."""
    clock = FakeClock()
    retry = rs.Retry(on=ValueError, attempts=10, backoff=backoff.constant(2.0), clock=clock)
    errors: list[BaseException] = [ValueError(str(i)) for i in range(10)]
    wrapped = rs.compose(rs.Timeout(5, clock=clock), retry)(mode.make(failing(errors)))
    with pytest.raises(ValueError, match="2") as info:
        mode.run(wrapped)
    assert clock.sleeps == [2.0, 2.0]
    assert "would start after the deadline (1 s left)" in info.value.__notes__[0]


def test_timeout_inside_retry_bounds_each_attempt(mode: Runner) -> None:
    """compose(retry, timeout): every attempt starts with a fresh deadline."""
    clock = FakeClock()
    seen: list[float] = []
    errors: list[BaseException] = [ValueError(), ValueError()]

    def body() -> str:
        seen.append(left())
        clock.advance(1)
        return str(failing(errors)())

    retry = rs.Retry(on=ValueError, backoff=backoff.constant(3.0), clock=clock)
    assert mode.run(rs.compose(retry, rs.Timeout(2, clock=clock))(mode.make(body))) == "ok"
    assert seen == [2.0, 2.0, 2.0]


def test_sync_timed_out_attempt_is_retried_by_transient() -> None:
    """A sync attempt out of budget raises TimeoutExceededError, which transient retries."""
    clock = FakeClock()
    attempts: list[int] = []

    def body() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            clock.advance(3)  # the first attempt is slow...
        rs.deadline.check()  # ...and notices at its next check point
        return "ok"

    retry = rs.Retry(on=rs.transient, backoff=backoff.constant(0.5), clock=clock)
    assert rs.compose(retry, rs.Timeout(2, clock=clock))(body)() == "ok"
    assert len(attempts) == 2


def test_async_timed_out_attempt_is_retried_by_transient(backend: str) -> None:
    """An async attempt cancelled at its deadline is retried when the classifier says so."""
    clock = FakeClock()
    attempts: list[int] = []

    async def body() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await hang()
        return "ok"

    retry = rs.Retry(on=rs.transient, backoff=backoff.constant(0.5), clock=clock)
    assert run_async(lambda: rs.compose(retry, rs.Timeout(SHORT)).acall(body), backend) == "ok"
    assert (len(attempts), clock.sleeps) == (2, [0.5])


def test_timed_out_attempt_is_not_retried_when_the_classifier_refuses(backend: str) -> None:
    """A classifier that does not match timeouts lets TimeoutExceededError through at once."""
    clock = FakeClock()
    retry = rs.Retry(on=ValueError, clock=clock)
    with pytest.raises(rs.TimeoutExceededError):
        run_async(lambda: rs.compose(retry, rs.Timeout(SHORT)).acall(hang), backend)
    assert clock.sleeps == []


class HangingSleepClock:
    """The real clock, except that every async sleep hangs (until cancelled)."""

    now = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    async def asleep(self, seconds: float, /) -> None:
        await hang()


def test_async_timeout_outside_retry_cancels_the_retry_sleep(backend: str) -> None:
    """An async Timeout around Retry cancels the whole retrying call, sleeps included."""
    retry = rs.Retry(on=ValueError, backoff=backoff.constant(SHORT / 10), clock=HangingSleepClock())
    calls: list[int] = []

    async def fails() -> None:
        calls.append(1)
        raise ValueError

    with pytest.raises(rs.TimeoutExceededError):
        run_async(lambda: rs.compose(rs.Timeout(SHORT), retry).acall(fails), backend)
    assert calls == [1]
