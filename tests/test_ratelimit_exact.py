"""
The RateLimiter is exact (issue #12, item 3): the documented bound holds, no unit is lost.

The bound (`rs.RateLimiter`'s docstring): in any interval of *d* seconds, both
ends included, the units of the calls that start in it are at most
``burst + rate * d / per``. Hypothesis drives a limiter through the gate
protocol on a fake clock (admit, waits, cancellations and refunds); every
call's start time is recorded, and every interval between two starts is
checked. Threads and tasks then race for the units of a frozen clock.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
from hypothesis import example, given, settings
from hypothesis import strategies as st

import resilience as rs
from resilience.engine import Wait
from resilience.testing import FakeClock, set_testing

from .forms import checkpoint, run_async
from .threads import join_all

_TOLERANCE = 1e-6


def check_bound(starts: list[tuple[float, float]], rate: float, per: float, burst: float) -> None:
    """Every interval between two starts holds at most burst + rate * d / per units."""
    starts = sorted(starts)
    for i, (first, _) in enumerate(starts):
        units = 0.0
        for last, cost in starts[i:]:
            units += cost
            allowed = burst + rate * (last - first) / per
            assert units <= allowed + _TOLERANCE, (first, last, units, allowed)


def target(cost: float) -> float:
    """The function the gate is asked to admit (its cost is its argument)."""
    return cost


operations = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.integers(1, 3), st.floats(0, 2.0)),
        st.tuples(st.just("cancel"), st.integers(0, 30), st.floats(0, 0.5)),
        st.tuples(st.just("settle"), st.integers(0, 30), st.floats(0, 0.5)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@example(  # issue #12: a call settled twice below its estimate, behind a waiter
    rate=1,
    per=1.0,
    extra_burst=0,
    max_wait=None,
    ops=[
        ("call", 2, 0.0),
        ("call", 2, 0.0),
        ("settle", 0, 0.5),
        ("call", 1, 0.0),
        ("settle", 0, 0.5),
        ("call", 1, 0.0),
    ],
)
@given(
    rate=st.integers(1, 10),
    per=st.sampled_from([1.0, 2.5, 60.0]),
    extra_burst=st.integers(0, 6),
    max_wait=st.sampled_from([None, 0.0, 0.7, 5.0]),
    ops=operations,
)
def test_no_interval_ever_holds_more_than_burst_plus_rate_times_d_over_per(
    rate: int, per: float, extra_burst: int, max_wait: float | None, ops: list[Any]
) -> None:
    """Calls, waits, refusals, cancelled waiters and settled refunds: the bound always holds."""
    clock = FakeClock()
    burst = 3 + extra_burst  # the largest cost is 3
    limiter = rs.RateLimiter(
        rate=rate,
        per=per,
        burst=burst,
        cost=lambda units: units,
        settle=lambda result: result,
        max_wait=max_wait,
        clock=clock,
    )
    calls: list[list[Any]] = []  # [permit, start, units]
    refused: rs.RateLimitedError | None = None
    rs.set_hooks([])
    for op, value, step in ops:
        clock.advance(step * per / rate)
        if op == "call":
            try:
                permit = limiter.admit(target, (value,), {})
            except rs.RateLimitedError as error:
                refused = error
                continue
            if type(permit) is Wait:
                assert permit.seconds is not None
                assert max_wait is None or permit.seconds <= max_wait
                calls.append([permit.permit, clock.now() + permit.seconds, float(value)])
            else:
                calls.append([permit, clock.now(), float(value)])
        elif calls:
            call = calls[value % len(calls)]
            permit, start, units = call
            if op == "cancel" and start > clock.now():  # still waiting for its turn
                limiter.on_cancel(permit, asyncio.CancelledError(), None, target)
                calls.remove(call)
            elif op == "settle" and start <= clock.now():  # ran: it reports what it used
                used = units * (1 - step)
                permit.settle(used)
                call[2] = used
    check_bound([(start, units) for _, start, units in calls], rate, per, burst)
    if refused is not None:  # the last refusal said when the call would fit
        assert refused.retry_after is not None
        assert refused.retry_after > 0


@settings(max_examples=100, deadline=None)
@given(
    rate=st.integers(1, 50),
    per=st.sampled_from([0.1, 1.0, 3.0, 60.0]),
    burst=st.integers(1, 5),
    periods=st.integers(1, 5),
)
def test_a_steady_caller_gets_the_full_rate(
    rate: int, per: float, burst: int, periods: int
) -> None:
    """Asking every per/rate seconds, never waiting: every call is admitted."""
    clock = FakeClock()
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=rate, per=per, burst=burst, max_wait=0, clock=clock)
    admitted = 0
    for _ in range(rate * periods):
        limiter.admit(None)  # raises RateLimitedError if the caller were short-changed
        admitted += 1
        clock.advance(per / rate)
    assert admitted == rate * periods


@settings(max_examples=100, deadline=None)
@given(rate=st.integers(1, 50), burst=st.integers(1, 20), seconds=st.integers(1, 30))
def test_a_greedy_caller_gets_exactly_burst_plus_the_rate(
    rate: int, burst: int, seconds: int
) -> None:
    """Asking four times per interval, never waiting: burst at once, then rate per second."""
    clock = FakeClock()
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=rate, per=1.0, burst=burst, max_wait=0, clock=clock)
    admitted = 0
    for _ in range(seconds * rate * 4 + 1):
        while True:
            try:
                limiter.admit(None)
            except rs.RateLimitedError:
                break
            admitted += 1
        clock.advance(0.25 / rate)
    assert admitted == burst + rate * seconds


# --- threads and tasks: no unit admitted twice, none lost ----------------------------------


def race_threads(limiter: rs.RateLimiter, threads: int, calls: int) -> int:
    """*threads* threads each make *calls* calls at once; return how many were admitted."""
    admitted = [0] * threads
    start = threading.Barrier(threads)

    def caller(index: int) -> None:
        start.wait()
        for _ in range(calls):
            try:
                limiter.call(int)
            except rs.RateLimitedError:
                continue
            admitted[index] += 1

    workers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    join_all(workers)
    return sum(admitted)


def test_sixteen_threads_share_exactly_the_units_there_are() -> None:
    """A frozen clock, 16 threads x 100 calls: exactly the burst, then exactly what refilled."""
    clock = FakeClock()
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=1000, per=1.0, burst=500, max_wait=0, clock=clock)
    assert race_threads(limiter, 16, 100) == 500
    clock.advance(0.25)  # 250 units come back
    assert race_threads(limiter, 16, 100) == 250


def test_sixteen_threads_waiting_each_get_a_slot_of_their_own() -> None:
    """Every waiter reserves a distinct slot: the waits are exactly 1, 2, ... intervals."""
    clock = FakeClock()
    delays: list[float] = []
    lock = threading.Lock()

    def hook(event: rs.Event) -> None:
        if isinstance(event, rs.RateLimitWaited):
            with lock:
                delays.append(event.delay)

    rs.set_hooks([hook])
    limiter = rs.RateLimiter(rate=100, per=1.0, burst=10, clock=clock)
    with set_testing(True):  # the engine does not sleep: the clock stays frozen
        assert race_threads(limiter, 16, 50) == 800
    assert len(delays) == 790
    slots = sorted(round(delay * 100) for delay in delays)
    assert slots == list(range(1, 791))
    assert all(abs(delay * 100 - round(delay * 100)) < 1e-6 for delay in delays)


def test_a_thousand_tasks_share_exactly_the_units_there_are(backend: str) -> None:
    """1,000 tasks on one loop, a frozen clock: exactly the burst admitted, the rest refused."""
    clock = FakeClock()
    rs.set_hooks([])
    limiter = rs.RateLimiter(rate=1000, per=1.0, burst=300, max_wait=0, clock=clock)

    async def main() -> int:
        admitted: list[bool] = []

        async def call() -> None:
            try:
                await limiter.acall(checkpoint)
            except rs.RateLimitedError:
                admitted.append(False)
                return
            admitted.append(True)

        async with anyio.create_task_group() as group:
            for _ in range(1000):
                group.start_soon(call)
        assert len(admitted) == 1000
        return sum(admitted)

    assert run_async(main, backend) == 300
    clock.advance(0.1)
    assert run_async(main, backend) == 100


def test_a_thousand_tasks_waiting_each_get_a_slot_of_their_own(backend: str) -> None:
    """1,000 waiting tasks: the waits are exactly 1, 2, ... 990 intervals, none twice."""
    clock = FakeClock()
    delays: list[float] = []
    rs.set_hooks([lambda event: delays.append(getattr(event, "delay", -1.0))])
    limiter = rs.RateLimiter(rate=50, per=1.0, burst=10, clock=clock)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(1000):
                group.start_soon(limiter.acall, checkpoint)

    with set_testing(True):
        run_async(main, backend)
    assert sorted(round(delay * 50) for delay in delays) == list(range(1, 991))
