"""
The RateLimiter (`rs.RateLimiter`, issue #12): GCRA in units, FIFO waits, cost, settle, adapt.

Time is a `FakeClock`: a wait sleeps on it, which moves it on at once, so the
sleeps it records are the waits the limiter asked for. Cancellation tests use
the real clock with waits of minutes, cancelled as soon as they begin.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import pickle
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import (
    SYNC_ASYNC,
    Boom,
    Driver,
    Form,
    Tasks,
    Work,
    backend_of,
    bounded,
    cancel_task,
    gate_forms,
    pick,
    run_async,
    until,
)


class Flaky(Exception):
    """What the Retry of the ``compose`` forms retries (the bodies never raise it)."""


class Status(Exception):
    """An HTTP status error, read by the classifiers through ``status_code``."""

    def __init__(self, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = {} if retry_after is None else {"Retry-After": str(retry_after)}


def flaky_retry() -> rs.Retry:
    return rs.Retry(on=Flaky, attempts=2, clock=FakeClock())


FORMS = gate_forms(flaky_retry)
forms = functools.partial(pick, FORMS)


def limiter(rate: float = 2, per: float = 1.0, **more: Any) -> rs.RateLimiter:
    """A limiter on a fresh fake clock (``limiter.clock``)."""
    more.setdefault("clock", FakeClock())
    return rs.RateLimiter(rate=rate, per=per, **more)


# --- 1. configuration --------------------------------------------------------------------


def test_the_defaults() -> None:
    """per=60, burst=rate, cost=1, no max_wait, no settle, no adapt; the bucket starts full."""
    r = rs.RateLimiter(rate=500)
    assert (r.rate, r.per, r.burst, r.cost, r.max_wait, r.settle, r.adapt, r.name) == (
        500.0,
        60.0,
        500.0,
        1.0,
        None,
        None,
        None,
        None,
    )
    assert r.available == 500
    assert r.current_rate == 500
    assert isinstance(r, rs.Policy)


def test_per_and_max_wait_take_a_timedelta() -> None:
    """Durations are seconds or timedeltas."""
    r = rs.RateLimiter(
        rate=10, per=datetime.timedelta(minutes=1), max_wait=datetime.timedelta(seconds=2)
    )
    assert (r.per, r.max_wait) == (60.0, 2.0)


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [
        ("rate", 0, ValueError),
        ("rate", -1, ValueError),
        ("rate", math.nan, ValueError),
        ("rate", math.inf, ValueError),
        ("rate", True, TypeError),
        ("rate", "10", TypeError),
        ("per", 0, ValueError),
        ("per", -60, ValueError),
        ("per", "60", TypeError),
        ("burst", 0, ValueError),
        ("burst", math.nan, ValueError),
        ("burst", False, TypeError),
        ("cost", 0, ValueError),
        ("cost", -2, ValueError),
        ("cost", "1", TypeError),
        ("cost", 20, ValueError),  # above the burst: could never run
        ("max_wait", -1, ValueError),
        ("max_wait", "1", TypeError),
        ("settle", 3, TypeError),
        ("adapt", 3, TypeError),
        ("name", 3, TypeError),
        ("clock", object(), TypeError),
    ],
)
def test_bad_configuration_fails_at_construction_naming_the_parameter_and_value(
    parameter: str, value: object, error: type[Exception]
) -> None:
    """The message starts with the parameter as the caller spells it and shows the value."""
    arguments: dict[str, Any] = {"rate": 10, "per": 1.0, parameter: value}
    with pytest.raises(error) as info:
        rs.RateLimiter(**arguments)
    message = str(info.value)
    assert message.startswith(parameter), message
    assert repr(value) in message or str(value) in message, message


def test_rate_is_required() -> None:
    """There is no default rate."""
    with pytest.raises(TypeError, match="rate"):
        rs.RateLimiter()  # type: ignore[call-arg]


def test_a_rate_below_one_unit_needs_a_burst_that_holds_a_call() -> None:
    """rate=0.5 per second makes the default burst 0.5: a call of 1 unit is refused by name."""
    with pytest.raises(ValueError, match=r"^cost must be <= burst \(0.5\)"):
        rs.RateLimiter(rate=0.5, per=1.0)
    assert rs.RateLimiter(rate=0.5, per=1.0, burst=1).burst == 1


# --- 2. admit, wait, refuse: every form --------------------------------------------------


@pytest.mark.parametrize("form", forms())
def test_calls_within_the_burst_run_at_once_and_the_next_waits_its_turn(form: Form) -> None:
    """burst=2 at 2 per second: two calls at once, the third after 0.5 s on the limiter's clock."""
    r = limiter(burst=2)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    work = Work(probe=clock.now)
    for _ in range(3):
        assert form.run(r, work) == "done"
    assert work.seen == [0.0, 0.0, 0.5]
    assert clock.sleeps == [0.5]


@pytest.mark.parametrize("form", forms())
def test_a_call_that_cannot_wait_is_refused_at_once_and_runs_nothing(form: Form) -> None:
    """max_wait=0: RateLimitedError, retry_after = when it would fit, and a CallRejected."""
    r = limiter(rate=4, burst=1, max_wait=0, name="rpm")
    work = Work()
    assert form.run(r, work) == "done"
    with capture_events() as events, pytest.raises(rs.RateLimitedError) as info:
        bounded(lambda: form.run(r, work))
    assert len(work.seen) == 1
    error = info.value
    assert (error.name, error.retry_after, error.cost) == ("rpm", 0.25, 1.0)
    assert isinstance(error, rs.RejectedError)
    rejected = [e for e in events if isinstance(e, rs.CallRejected)]
    assert [(e.name, e.reason, e.retry_after) for e in rejected] == [("rpm", "rate_limited", 0.25)]
    r.clock.advance(0.25)  # type: ignore[attr-defined]
    assert form.run(r, work) == "done"


@pytest.mark.parametrize("form", forms())
def test_an_exception_keeps_the_units_spent_and_reaches_the_caller(form: Form) -> None:
    """A failed call was made: its unit is not given back."""
    r = limiter(burst=1, max_wait=0)
    error = Boom("inside")
    with pytest.raises(Boom) as info:
        form.run(r, Work(error=error))
    assert info.value is error
    assert r.available == 0
    with pytest.raises(rs.RateLimitedError):
        r.call(Work())


def test_max_wait_admits_shorter_waits_and_refuses_longer_ones() -> None:
    """A wait up to max_wait is slept; a longer one is refused without reserving anything."""
    r = limiter(rate=1, burst=1, max_wait=1.5)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    r.call(Work())
    r.call(Work())  # waits 1 s
    assert clock.sleeps == [1.0]
    clock.advance(0.2)  # the next would wait 0.8 s
    with r.acquire():
        pass
    assert clock.sleeps == [1.0, 0.8]
    assert isinstance(r.admit(None), rs.engine.Wait)  # reserves the slot 1 s ahead
    with pytest.raises(rs.RateLimitedError) as info:
        r.call(Work())  # 2 s ahead now: refused, nothing reserved
    assert info.value.retry_after == pytest.approx(2.0)
    assert r.available == pytest.approx(-1.0)


def test_a_wait_that_would_end_past_the_deadline_is_refused_at_once() -> None:
    """Inside a Timeout of 0.3 s, a wait of 0.5 s is refused before any sleep; 0.2 s is not."""
    clock = FakeClock()
    r = rs.RateLimiter(rate=2, per=1.0, burst=1, clock=clock)
    r.call(Work())
    with pytest.raises(rs.RateLimitedError) as info, rs.Timeout(0.3, clock=clock):
        r.call(Work())
    assert info.value.retry_after == 0.5
    assert clock.sleeps == []
    assert r.available == 0  # nothing reserved
    with rs.Timeout(0.6, clock=clock):
        r.call(Work())
    assert clock.sleeps == [0.5]


def test_waiters_are_served_first_come_first_served() -> None:
    """Each caller that cannot go at once reserves the next slot: waits of 1, 2, 3 intervals."""
    r = limiter(rate=10, burst=1)
    with capture_events() as events:
        delays = []
        for _ in range(4):
            wait = r.admit(None)
            delays.append(wait.seconds if isinstance(wait, rs.engine.Wait) else 0.0)
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3])
    waited = [e for e in events if isinstance(e, rs.RateLimitWaited)]
    assert [e.delay for e in waited] == pytest.approx([0.1, 0.2, 0.3])


def test_a_steady_caller_at_exactly_the_rate_is_never_refused() -> None:
    """Calls every per/rate seconds, burst=1, max_wait=0: none is refused, for 10,000 calls."""
    r = limiter(rate=7, per=3.0, burst=1, max_wait=0)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    for _ in range(10_000):
        r.call(Work())
        clock.advance(3.0 / 7)
    assert clock.sleeps == []


def test_a_stream_takes_its_units_when_it_starts() -> None:
    """A generator is admitted at its first item, not when it is created."""
    r = limiter(burst=1, max_wait=0)

    @r
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    stream = numbers()
    assert r.available == 1
    assert next(stream) == 1
    assert r.available == 0
    assert list(stream) == [2]


# --- 3. cancellation gives a waiter's units back ------------------------------------------


def cancel_waiters(r: rs.RateLimiter, cancel: list[int], waiters: int, backend: str) -> None:
    """Start *waiters* tasks that wait their turn (minutes ahead), cancel those in *cancel*."""

    base = r.available

    async def main() -> None:
        async with Tasks() as group:
            tasks = []
            for index in range(waiters):
                tasks.append(await group.start(r.acall, Work().run_async))
                await until(lambda n=index: r.available < base - 0.5 - n)  # type: ignore[misc]
            for index in cancel:
                tasks[index].cancel()
            for index in cancel:
                await tasks[index].wait()
                assert tasks[index].cancelled
            for index, task in enumerate(tasks):
                if index not in cancel:
                    task.cancel()

    run_async(main, backend)


def test_the_last_waiter_cancelled_gives_its_units_back_exactly(backend: str) -> None:
    """One call runs, one waits a minute and is cancelled: the bucket is as after the first."""
    r = rs.RateLimiter(rate=1, per=60.0, burst=1)
    r.call(Work())
    cancel_task(lambda: r.acall(Work().run_async), lambda: r.available < -0.5, backend)
    assert r.available == pytest.approx(0, abs=0.01)  # the real clock moved a little


def test_a_waiter_cancelled_before_others_gives_back_what_keeps_the_bound(backend: str) -> None:
    """
    burst=1: a hole before the others' slots cannot be lent (it would run beside them); burst=3
    with cost 1: the hole's unit comes back, since a bucket of 3 has room for it.
    """
    tight = rs.RateLimiter(rate=1, per=60.0, burst=1)
    tight.call(Work())
    cancel_waiters(tight, cancel=[0], waiters=2, backend=backend)  # the first of two waiters
    # Both waiters were cancelled in the end; the last one's units came back exactly, the
    # first one's were forfeited: one unit is still reserved ahead of now.
    assert tight.available == pytest.approx(-1, abs=0.01)

    roomy = rs.RateLimiter(rate=1, per=60.0, burst=3)
    for _ in range(3):
        roomy.call(Work())
    cancel_waiters(roomy, cancel=[0], waiters=2, backend=backend)
    assert roomy.available == pytest.approx(0, abs=0.01)


@pytest.mark.parametrize("form", forms(is_async=True))
def test_a_call_cancelled_after_it_started_keeps_its_units(form: Form) -> None:
    """The request may have reached the server: a cancelled call is not refunded."""
    r = rs.RateLimiter(rate=1, per=60.0, burst=1)
    from .forms import cancel_inside

    cancel_inside(form, r)
    assert r.available < 0.01


# --- 4. cost and settle ---------------------------------------------------------------------


def test_a_callable_cost_sees_the_calls_arguments() -> None:
    """cost=lambda prompt, max_tokens: ...: each call takes what it says."""
    seen: list[tuple[Any, ...]] = []

    def estimate(prompt: str, max_tokens: int = 100) -> int:
        seen.append((prompt, max_tokens))
        return len(prompt) + max_tokens

    r = limiter(rate=1000, per=60.0, cost=estimate)

    @r
    def complete(prompt: str, max_tokens: int = 100) -> str:
        return prompt

    complete("hello", max_tokens=45)
    complete("hi")
    assert seen == [("hello", 45), ("hi", 100)]
    assert r.available == pytest.approx(1000 - 50 - 102)


def test_a_callable_cost_on_a_method_sees_self_and_on_streams_the_arguments(backend: str) -> None:
    """The cost callable takes the function's own arguments, self included."""
    r = limiter(rate=100, per=1.0, cost=lambda *args, **kwargs: len(args) + len(kwargs))

    class Client:
        @r
        def get(self, a: int, b: int = 0) -> int:
            return a

        @r
        async def fetch(self, a: int) -> int:
            return a

        @r
        def lines(self, n: int) -> Iterator[int]:
            yield from range(n)

        @r
        async def alines(self, n: int) -> AsyncIterator[int]:
            for i in range(n):
                yield i

    client = Client()
    client.get(1, b=2)  # self, a, b=: 3
    assert run_async(lambda: client.fetch(1), backend) == 1  # 2
    assert list(client.lines(2)) == [0, 1]  # 2

    async def drain() -> list[int]:
        return [i async for i in client.alines(1)]

    assert run_async(drain, backend) == [0]  # 2
    assert r.available == pytest.approx(100 - 9)


def test_a_callable_cost_above_the_burst_is_a_clear_error_not_a_wait() -> None:
    """ValueError naming the burst, at call time; nothing runs, nothing is reserved."""
    r = limiter(rate=100, per=60.0, cost=lambda n: n)
    work = Work()
    with pytest.raises(ValueError, match=r"cost must be <= burst \(100\)"):
        r.call(lambda n: work(), 101)
    with pytest.raises(ValueError, match="cost must be a finite number >= 0"):
        r.call(lambda n: work(), -1)
    with pytest.raises(TypeError, match="cost must be a number"):
        r.call(lambda n: work(), "3")
    assert work.seen == []
    assert r.available == 100


def test_a_callable_cost_cannot_price_a_with_block() -> None:
    """``with limiter:`` has no arguments: a TypeError points to acquire()."""
    r = limiter(cost=lambda n: n)
    with pytest.raises(TypeError, match=r"limiter\.acquire\(cost\)"), r:
        pass
    with pytest.raises(TypeError, match="acquire\\(\\) needs a cost"):
        r.acquire()


def test_settle_refunds_what_the_call_did_not_use() -> None:
    """An estimate of 50 settled at 20 gives 30 units back (the permit was the last)."""
    r = limiter(rate=100, per=60.0, cost=lambda n: n, settle=lambda result: result)
    assert r.call(lambda n: 20, 50) == 20
    assert r.available == pytest.approx(80)


def test_settle_charges_a_shortfall_as_a_debt_later_callers_wait_out() -> None:
    """An estimate of 10 settled at 130 (above the burst of 100): the next call waits."""
    r = limiter(rate=100, per=60.0, cost=lambda n: n, settle=lambda result: result)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    r.call(lambda n: 130, 10)
    assert r.available == pytest.approx(-30)
    r.call(lambda n: 1, 1)  # waits until 31 units have drained: 18.6 s
    assert clock.sleeps == pytest.approx([18.6])


def test_a_settle_that_raises_is_logged_and_the_estimate_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken settle never changes the call's outcome."""

    def settle(result: object) -> float:
        raise KeyError("usage")

    r = limiter(rate=100, per=60.0, cost=10, settle=settle, name="tpm")
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert r.call(lambda: "ok") == "ok"
    assert r.available == pytest.approx(90)
    assert "settle() failed" in caplog.text


def test_acquire_waits_and_settles_in_with_and_async_with(backend: str) -> None:
    """The explicit form: a permit per block, waited for, settled by hand."""
    r = limiter(rate=100, per=60.0, burst=100)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    with r.acquire(80) as permit:
        assert permit.cost == 80
        permit.settle(30)
    assert r.available == pytest.approx(70)

    async def main() -> float:
        async with r.acquire(90) as permit:
            permit.settle(90)
            return permit.cost

    assert run_async(main, backend) == 90
    assert clock.sleeps == pytest.approx([12.0])  # 20 units short at 100 per minute
    with pytest.raises(ValueError, match="cost must be <= burst"):
        r.acquire(101)
    with pytest.raises(ValueError, match="actual must be a finite number >= 0"):
        permit.settle(-1)


def test_rpm_and_tpm_are_two_limiters_composed() -> None:
    """compose(rpm, tpm): a call takes one request and its tokens; whichever is short waits."""
    clock = FakeClock()
    rpm = rs.RateLimiter(rate=3, per=60.0, name="rpm", clock=clock)
    tpm = rs.RateLimiter(
        rate=1000,
        per=60.0,
        cost=lambda prompt, max_tokens: len(prompt) + max_tokens,
        settle=lambda reply: reply["usage"],
        name="tpm",
        clock=clock,
    )

    @rs.compose(rpm, tpm)
    def complete(prompt: str, max_tokens: int) -> dict[str, int]:
        return {"usage": len(prompt) + max_tokens // 2}

    for _ in range(3):
        complete("x" * 100, max_tokens=400)  # 500 estimated, 300 used
    # tpm: 1000 -> 700 -> 400 after two calls; the third is 100 units short: it waits 6 s.
    assert clock.sleeps == pytest.approx([6.0])
    assert (rpm.available, tpm.available) == pytest.approx((0.3, 200))
    complete("x" * 100, max_tokens=400)  # rpm is 0.7 request short: 14 s; then tpm is 67 units
    assert clock.sleeps == pytest.approx([6.0, 14.0, 4.0])


# --- 5. events, explain, pickling ---------------------------------------------------------


def test_a_wait_is_reported_with_its_delay_and_cost() -> None:
    """RateLimitWaited: name, target, delay and cost."""
    r = limiter(rate=2, burst=1, name="rpm")

    def fetch() -> str:
        return "ok"

    with capture_events() as events:
        r.call(fetch)
        r.call(fetch)
    assert [(type(e).__name__, e.name, e.target) for e in events] == [
        ("RateLimitWaited", "rpm", "test_a_wait_is_reported_with_its_delay_and_cost.<locals>.fetch")
    ]
    event = events[0]
    assert isinstance(event, rs.RateLimitWaited)
    assert (event.delay, event.cost) == (0.5, 1.0)
    assert event.level == logging.DEBUG


def test_explain_says_the_rate_the_burst_and_the_wait() -> None:
    """explain(): the limit, the burst, the wait, the state now; no attempts added."""
    r = limiter(rate=500, per=60.0, burst=50, max_wait=2.0, name="rpm")
    text = r.explain()
    assert "RateLimiter 'rpm': at most 500 calls per 60 s" in text
    assert "bursts of up to 50 units" in text
    assert "at most 2 s" in text
    assert "now: 50 units available" in text
    assert rs.compose(rs.Timeout(5.0), r).worst_case(1.0) == 3.0  # a wait of 2 s, a call of 1
    assert r.describe().sleeps == 2.0
    assert "runs of the function: at most 1" in text


def test_repr_shows_the_configuration_and_the_units_available() -> None:
    """No callable internals, no secrets: the figures."""
    r = limiter(rate=10, per=1.0, burst=4, name="x", max_wait=0.5)
    assert repr(r) == (
        "<RateLimiter name='x', rate=10, per=1, burst=4, max_wait=0.5: 4 units available>"
    )


def test_rate_limited_error_pickles_with_its_fields() -> None:
    """name, retry_after and cost survive a round trip, with the message."""
    error = rs.RateLimitedError("tpm", 1.5, 300)
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.name, clone.retry_after, clone.cost, str(clone)) == (
        "tpm",
        1.5,
        300,
        "rate limit 'tpm' reached: 300 units would fit in 1.5 s",
    )


class InterruptedClock:
    """A clock whose sleeps are interrupted: Ctrl-C while a caller waits its turn."""

    def __init__(self) -> None:
        self.fake = FakeClock()

    def now(self) -> float:
        return self.fake.now()

    def sleep(self, seconds: float, /) -> None:
        raise KeyboardInterrupt

    async def asleep(self, seconds: float, /) -> None:
        raise KeyboardInterrupt


@SYNC_ASYNC
def test_an_interrupt_while_waiting_gives_the_units_back(is_async: Driver) -> None:
    """KeyboardInterrupt during the wait passes through; the waiter's unit comes back."""
    r = rs.RateLimiter(rate=1, per=1.0, burst=1, clock=InterruptedClock())
    r.call(Work())
    work = Work()
    with pytest.raises(KeyboardInterrupt):
        if is_async:
            run_async(lambda: r.acall(work.run_async), backend_of(is_async))
        else:
            r.call(work)
    assert work.seen == []
    assert r.available == 0


@pytest.mark.parametrize("rate", [1.0, 7.0])
def test_available_counts_back_up_to_the_burst(rate: float) -> None:
    """Units come back at rate/per per second, never above the burst."""
    r = limiter(rate=rate, per=2.0, burst=rate)
    clock = r.clock
    assert isinstance(clock, FakeClock)
    with r.acquire(rate):
        pass
    assert r.available == pytest.approx(0)
    clock.advance(1.0)
    assert r.available == pytest.approx(rate / 2)
    clock.advance(100.0)
    assert r.available == pytest.approx(rate)


# --- 6. metrics ---------------------------------------------------------------------------


def test_metrics_count_waits_seconds_waited_refusals_and_rate_changes() -> None:
    """A MetricsCollector hooked globally: rate_waits, rate_waited, rejections, rate_changes."""
    collector = rs.MetricsCollector()
    rs.add_hook(collector)
    r = limiter(rate=4, burst=1, max_wait=0.3, name="rpm", adapt=rs.transient)
    r.call(Work())  # at once
    r.call(Work())  # waits 0.25 s
    r.admit(None)  # reserves the next 0.25 s
    with pytest.raises(rs.RateLimitedError):
        r.call(Work())  # would wait 0.5 s
    r.clock.advance(1.0)  # type: ignore[attr-defined]
    with pytest.raises(Boom):
        r.call(Work(error=Boom("429")))  # not a rate-limit answer: no change
    seen = collector.snapshot()["rpm"]
    assert (seen.rate_waits, seen.rejections, seen.rate_changes) == (2, 1, 0)
    assert seen.rate_waited == pytest.approx(0.5)
    assert collector.snapshot().as_dict()["series"]["rpm"]["rate_waits"] == 2


def test_try_acquire_takes_units_only_if_they_fit_and_refuses_silently() -> None:
    """True while units last, then False: no wait, no exception, no CallRejected."""
    r = limiter(rate=2, burst=2)
    with capture_events() as events:
        assert [r.try_acquire() for _ in range(3)] == [True, True, False]
        assert r.try_acquire(0) is True
    assert events == []
    r.clock.advance(1.0)  # type: ignore[attr-defined]
    assert r.try_acquire(2) is True
    with pytest.raises(ValueError, match="cost must be <= burst"):
        r.try_acquire(3)
