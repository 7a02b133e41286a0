"""Retry: the engine, its three surfaces, and its guarantees."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import pytest

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock, capture_events, set_testing

from .conftest import Runner
from .forms import checkpoint, run_async
from .threads import join_all


class Flaky:
    """Fails with the given exceptions in order, then returns *value*."""

    def __init__(self, *errors: BaseException, value: object = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


class RetryAfterError(Exception):
    """An error that carries a server's Retry-After, as rate-limit errors do."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"slow down for {retry_after}")
        self.retry_after = retry_after


def make_retry(clock: FakeClock, **kwargs: Any) -> rs.Retry:
    kwargs.setdefault("on", ValueError)
    kwargs.setdefault("backoff", backoff.constant(1.0))
    return rs.Retry(clock=clock, **kwargs)


# --- the engine ------------------------------------------------------------


def test_success_returns_value_without_sleeping(mode: Runner) -> None:
    """A call that succeeds at once returns its value and never sleeps."""
    clock = FakeClock()
    flaky = Flaky()
    assert mode.run(make_retry(clock)(mode.make(flaky))) == "ok"
    assert (flaky.calls, clock.sleeps) == (1, [])


def test_retries_until_success(mode: Runner) -> None:
    """A retryable failure is retried after the backoff's delay."""
    clock = FakeClock()
    flaky = Flaky(ValueError("a"), ValueError("b"))
    assert mode.run(make_retry(clock)(mode.make(flaky))) == "ok"
    assert (flaky.calls, clock.sleeps) == (3, [1.0, 1.0])


def test_gives_up_with_the_last_exception_unchanged_and_noted(mode: Runner) -> None:
    """When attempts run out, the last exception itself is raised, with a PEP 678 note."""
    clock = FakeClock()
    last = ValueError("third")
    flaky = Flaky(ValueError("first"), ValueError("second"), last)
    with pytest.raises(ValueError, match="third") as info:
        mode.run(make_retry(clock)(mode.make(flaky)))
    assert info.value is last
    assert info.value.__notes__ == ["resilience: gave up after 3 attempts over 2 s"]
    assert flaky.calls == 3


def test_an_exception_raised_again_carries_one_note(mode: Runner) -> None:
    """#18.5: the same exception object given up on by many calls keeps one note of this Retry."""
    clock = FakeClock()
    same = ValueError("always")

    def fails() -> None:
        raise same

    retry = make_retry(clock, attempts=2)(mode.make(fails))
    for _ in range(3):
        with pytest.raises(ValueError, match="always"):
            mode.run(retry)
    assert same.__notes__ == ["resilience: gave up after 2 attempts over 1 s"]


def test_nested_retries_each_leave_their_note(mode: Runner) -> None:
    """#18.5: one note per Retry: an outer Retry does not replace the inner one's note."""
    clock = FakeClock()
    inner = make_retry(clock, attempts=2, name="inner")
    outer = make_retry(clock, attempts=2, name="outer")
    with pytest.raises(ValueError, match="3") as info:
        mode.run(outer(inner(mode.make(Flaky(*(ValueError(str(i)) for i in range(4)))))))
    assert [note.split(" (")[-1] for note in info.value.__notes__] == [
        "retry 'inner')",
        "retry 'outer')",
    ]


def test_later_failures_do_not_chain_the_first_as_context(mode: Runner) -> None:
    """Attempts after the first run outside its except block: no false __context__."""
    clock = FakeClock()
    last = ValueError("second")
    with pytest.raises(ValueError, match="second") as info:
        mode.run(make_retry(clock, attempts=2)(mode.make(Flaky(ValueError("first"), last))))
    assert info.value is last
    assert last.__context__ is None


def test_unmatched_exception_propagates_at_once_without_note(mode: Runner) -> None:
    """An exception the classifier does not match is raised on the first attempt, untouched."""
    clock = FakeClock()
    flaky = Flaky(KeyError("k"))
    with pytest.raises(KeyError) as info:
        mode.run(make_retry(clock)(mode.make(flaky)))
    assert not hasattr(info.value, "__notes__")
    assert (flaky.calls, clock.sleeps) == (1, [])


def test_unmatched_exception_after_retries_is_noted(mode: Runner) -> None:
    """A non-retryable failure after a retry says it was not retried, in a note and an event."""
    clock = FakeClock()
    flaky = Flaky(ValueError("a"), KeyError("k"))
    with capture_events() as events, pytest.raises(KeyError) as info:
        mode.run(make_retry(clock)(mode.make(flaky)))
    assert info.value.__notes__ == [
        "resilience: not retried: the classifier refused it, after 2 attempts"
    ]
    assert [type(event).__name__ for event in events] == ["RetryScheduled", "RetriesExhausted"]
    last = events[-1]
    assert isinstance(last, rs.RetriesExhausted)
    assert (last.attempts, last.reason, last.error) == (2, "not_retryable", info.value)


def test_long_durations_read_without_an_exponent(mode: Runner) -> None:
    """Notes and events say '1400 s', not '1.4e+03 s'."""
    clock = FakeClock()
    retry = make_retry(clock, backoff=backoff.constant(1400.0), attempts=2)
    with capture_events() as events, pytest.raises(ValueError, match="second") as info:
        mode.run(retry(mode.make(Flaky(ValueError("first"), ValueError("second")))))
    assert info.value.__notes__ == ["resilience: gave up after 2 attempts over 1400 s"]
    assert "retrying in 1400 s" in events[0].message()


def test_unmatched_exception_on_the_first_attempt_emits_nothing(mode: Runner) -> None:
    """A first failure that is not retryable: Retry did nothing, and says nothing."""
    flaky = Flaky(KeyError("k"))
    with capture_events() as events, pytest.raises(KeyError):
        mode.run(make_retry(FakeClock())(mode.make(flaky)))
    assert events == []


def test_refused_results_are_retried_then_wrapped(mode: Runner) -> None:
    """A result the classifier refuses is retried; when attempts run out it is wrapped."""
    clock = FakeClock()
    retry = make_retry(clock, on=rs.Rule(when=lambda r: r == "busy"), attempts=2)
    flaky = Flaky(value="busy")
    with pytest.raises(rs.RetryExhaustedError) as info:
        mode.run(retry(mode.make(flaky)))
    assert (info.value.last_result, info.value.attempts, flaky.calls) == ("busy", 2, 2)


def test_results_are_not_classified_when_no_rule_can_match_them(mode: Runner) -> None:
    """An exception-only classifier never looks at results."""
    clock = FakeClock()
    seen: list[object] = []

    def pred(outcome: BaseException) -> bool:
        seen.append(outcome)
        return True

    retry = make_retry(clock, on=pred)
    assert mode.run(retry(mode.make(Flaky()))) == "ok"
    assert seen == []


def test_retry_after_is_a_floor(mode: Runner) -> None:
    """A Retry-After longer than the backoff delay is waited out in full."""
    clock = FakeClock()
    retry = make_retry(clock, on=RetryAfterError)
    mode.run(retry(mode.make(Flaky(RetryAfterError(5.0)))))
    assert clock.sleeps == [5.0]


def test_retry_after_shorter_than_backoff_keeps_backoff(mode: Runner) -> None:
    """A Retry-After shorter than the backoff delay does not shorten it."""
    clock = FakeClock()
    retry = make_retry(clock, on=RetryAfterError, backoff=backoff.constant(3.0))
    mode.run(retry(mode.make(Flaky(RetryAfterError(0.5)))))
    assert clock.sleeps == [3.0]


def test_retry_after_beyond_max_gives_up_at_once(mode: Runner) -> None:
    """A Retry-After longer than max_retry_after gives up instead of sleeping."""
    clock = FakeClock()
    retry = make_retry(clock, on=RetryAfterError, max_retry_after=10)
    err = RetryAfterError(3600.0)
    with pytest.raises(RetryAfterError) as info:
        mode.run(retry(mode.make(Flaky(err))))
    assert info.value is err
    assert clock.sleeps == []
    assert "more than max_retry_after=10 s" in info.value.__notes__[0]


class HeaderRetryAfter(Exception):
    """A 503 whose response says Retry-After in its header, as an HTTP client's error does."""

    def __init__(self, value: str) -> None:
        super().__init__(f"503, Retry-After: {value}")
        self.status_code = 503
        self.headers = {"Retry-After": value}


_TOO_LONG = {
    "constant(1e10)": (backoff.constant(1e10), "a"),
    "Retry-After in year 9999": (backoff.constant(1.0), "Fri, 31 Dec 9999 23:59:59 GMT"),
    "Retry-After 1e20 s": (backoff.constant(1.0), "99999999999999999999"),
}


@pytest.mark.parametrize("case", list(_TOO_LONG))
def test_a_wait_longer_than_any_clock_holds_gives_up_at_once(mode: Runner, case: str) -> None:
    """#18.4: a delay past what time functions hold gives up at once with the real failure."""
    clock = FakeClock()
    curve, header = _TOO_LONG[case]
    retry = rs.Retry(on=rs.transient, backoff=curve, max_retry_after=None, clock=clock)
    failure = HeaderRetryAfter(header)
    with capture_events() as events, pytest.raises(HeaderRetryAfter) as info:
        mode.run(retry(mode.make(Flaky(failure, failure))))
    assert info.value is failure
    assert clock.sleeps == []
    assert [getattr(event, "reason", None) for event in events] == ["too_long"]


def test_a_wait_longer_than_any_clock_holds_raises_no_overflow_on_the_real_clock() -> None:
    """#18.4: with the system clock, backoff.constant(1e10) gives up instead of OverflowError."""
    retry = rs.Retry(on=ValueError, backoff=backoff.constant(1e10))
    failure = ValueError("the real one")
    with pytest.raises(ValueError, match="the real one") as info:
        retry.call(Flaky(failure, failure))
    assert info.value is failure


def test_never_sleeps_past_the_deadline(mode: Runner) -> None:
    """If the next delay would cross the deadline, Retry gives up now with the last failure."""
    clock = FakeClock()
    retry = make_retry(clock, backoff=backoff.constant(2.0), attempts=10)
    flaky = Flaky(*(ValueError(str(i)) for i in range(10)))
    with rs.Timeout(5.0, clock=clock), pytest.raises(ValueError, match="2") as info:
        mode.run(retry(mode.make(flaky)))
    assert clock.sleeps == [2.0, 2.0]
    assert "would start after the deadline (1 s left)" in info.value.__notes__[0]


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), SystemExit(1), GeneratorExit(), asyncio.CancelledError()],
    ids=lambda e: type(e).__name__,
)
def test_base_exceptions_pass_through_untouched(mode: Runner, error: BaseException) -> None:
    """Cancellation and interpreter exits are never classified, retried, delayed or noted."""
    clock = FakeClock()
    seen: list[object] = []

    def pred(exc: BaseException) -> bool:
        seen.append(exc)
        return True

    retry = make_retry(clock, on=pred)
    flaky = Flaky(error)
    with pytest.raises(type(error)) as info:
        mode.run(retry(mode.make(flaky)))
    assert info.value is error
    assert (flaky.calls, clock.sleeps, seen) == (1, [], [])
    assert not hasattr(error, "__notes__")


def test_backoff_receives_attempt_and_previous_delay(mode: Runner) -> None:
    """The backoff sees the failed attempt's number and the previous delay."""
    clock = FakeClock()
    calls: list[tuple[int, float]] = []

    def curve(attempt: int, previous: float, rng: random.Random) -> float:
        calls.append((attempt, previous))
        return attempt * 10.0

    retry = make_retry(clock, backoff=curve, attempts=4)
    mode.run(retry(mode.make(Flaky(ValueError(), ValueError(), ValueError()))))
    assert calls == [(1, 0.0), (2, 10.0), (3, 20.0)]
    assert clock.sleeps == [10.0, 20.0, 30.0]


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_backoff_returning_an_invalid_delay_is_an_error(mode: Runner, bad: float) -> None:
    """A user backoff that returns a negative or non-finite delay fails loudly."""
    clock = FakeClock()
    retry = make_retry(clock, backoff=lambda a, p, r: bad)
    original = ValueError("the real failure")
    with pytest.raises(ValueError, match="a delay must be a finite number >= 0") as info:
        mode.run(retry(mode.make(Flaky(original))))
    assert info.value.__context__ is original  # never lost


def test_a_classifier_that_raises_keeps_the_failure_it_judged(mode: Runner) -> None:
    """The classifier's own error propagates, with the call's failure as its context."""
    clock = FakeClock()
    retry = rs.Retry(on=lambda exc: exc.args[0].startswith("x"), clock=clock)
    original = ConnectionError()  # no args: the predicate raises IndexError
    with pytest.raises(IndexError) as info:
        mode.run(retry(mode.make(Flaky(original))))
    assert info.value.__context__ is original
    assert clock.sleeps == []


def test_a_backoff_that_raises_keeps_the_failure(mode: Runner) -> None:
    """A backoff raising on a later attempt: its error carries the last failure."""

    def curve(attempt: int, previous: float, rng: random.Random) -> float:
        if attempt == 2:
            raise LookupError("curve broke")
        return 1.0

    clock = FakeClock()
    second = ValueError("second")
    retry = make_retry(clock, backoff=curve, attempts=5)
    with pytest.raises(LookupError) as info:
        mode.run(retry(mode.make(Flaky(ValueError("first"), second))))
    assert info.value.__context__ is second
    assert clock.sleeps == [1.0]


def test_seeded_rng_makes_jittered_delays_reproducible(mode: Runner) -> None:
    """The same seed gives the same jittered schedule."""
    schedules = []
    for _ in range(2):
        clock = FakeClock()
        retry = rs.Retry(
            on=ValueError,
            attempts=5,
            backoff=backoff.exponential(initial=1.0, max=8.0, jitter=backoff.full),
            clock=clock,
            rng=random.Random(7),
        )
        mode.run(retry(mode.make(Flaky(*(ValueError() for _ in range(4))))))
        schedules.append(clock.sleeps)
    assert schedules[0] == schedules[1]
    assert len(schedules[0]) == 4


# --- testing mode ------------------------------------------------------------


def test_testing_mode_removes_waits(mode: Runner) -> None:
    """With set_testing(True), retries do not wait."""
    clock = FakeClock()
    with set_testing(True):
        mode.run(make_retry(clock)(mode.make(Flaky(ValueError(), ValueError()))))
    assert clock.sleeps == []


def test_testing_mode_caps_attempts(mode: Runner) -> None:
    """set_testing(True, attempts=1) makes every Retry try once."""
    clock = FakeClock()
    flaky = Flaky(ValueError("first"), ValueError())
    with set_testing(True, attempts=1), pytest.raises(ValueError, match="first"):
        mode.run(make_retry(clock)(mode.make(flaky)))
    assert flaky.calls == 1


def test_set_testing_restores_previous_state() -> None:
    """Leaving the set_testing block restores what was there before."""
    from resilience._clock import testing_state

    with set_testing(True, attempts=2):
        assert (testing_state.enabled, testing_state.attempts) == (True, 2)
    assert (testing_state.enabled, testing_state.attempts) == (False, None)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_set_testing_rejects_bad_attempts(bad: Any) -> None:
    """set_testing names the bad attempts value."""
    with pytest.raises(ValueError, match=f"attempts must be an int >= 1 or None, got {bad!r}"):
        set_testing(True, attempts=bad)


# --- events --------------------------------------------------------------------


def test_events_report_schedule_and_exhaustion(mode: Runner) -> None:
    """RetryScheduled for each retry, RetriesExhausted when giving up."""
    clock = FakeClock()
    retry = make_retry(clock, name="api", attempts=2)
    err = ValueError("boom")
    with capture_events() as events, pytest.raises(ValueError, match="boom"):
        mode.run(retry(mode.make(Flaky(ValueError("first"), err))))
    scheduled, exhausted = events
    assert isinstance(scheduled, rs.RetryScheduled)
    assert (scheduled.name, scheduled.attempt, scheduled.delay) == ("api", 1, 1.0)
    assert isinstance(exhausted, rs.RetriesExhausted)
    assert (exhausted.attempts, exhausted.reason, exhausted.error) == (2, "attempts", err)
    assert exhausted.elapsed == 1.0


def test_policy_hooks_run_before_global_ones(mode: Runner) -> None:
    """Per-policy hooks receive events, before the global hooks."""
    order: list[str] = []
    retry = make_retry(FakeClock(), hooks=[lambda e: order.append("local")])
    rs.set_hooks([lambda e: order.append("global")])
    mode.run(retry(mode.make(Flaky(ValueError()))))
    assert order == ["local", "global"]


def test_raising_hook_is_logged_and_ignored(mode: Runner, caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises never changes the outcome of the call."""

    def bad_hook(event: rs.Event) -> None:
        raise RuntimeError("hook bug")

    retry = make_retry(FakeClock(), hooks=[bad_hook])
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert mode.run(retry(mode.make(Flaky(ValueError())))) == "ok"
    assert any("hook" in r.getMessage() and r.exc_info for r in caplog.records)


def test_events_are_not_built_when_nobody_listens(
    mode: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no hook anywhere, no event object is created."""

    class Boom:
        def __init__(self, **kwargs: Any) -> None:
            raise AssertionError("event built without a listener")

    monkeypatch.setattr("resilience._retry.RetryScheduled", Boom)
    rs.set_hooks([])
    assert mode.run(make_retry(FakeClock())(mode.make(Flaky(ValueError())))) == "ok"


def test_default_logging(mode: Runner, caplog: pytest.LogCaptureFixture) -> None:
    """Retries log at INFO, giving up at WARNING, with structured extras."""
    retry = make_retry(FakeClock(), attempts=2, name="svc")
    with caplog.at_level(logging.INFO, logger="resilience"), pytest.raises(ValueError, match="y"):
        mode.run(retry(mode.make(Flaky(ValueError("x"), ValueError("y")))))
    info, warning = caplog.records
    assert info.levelno == logging.INFO
    assert "'svc'" in info.getMessage()
    assert "retrying in 1 s" in info.getMessage()
    assert info.__dict__["resilience_attempt"] == 1
    assert warning.levelno == logging.WARNING
    assert warning.__dict__["resilience_reason"] == "attempts"
    assert warning.__dict__["resilience_error"] == "ValueError: y"


# --- attempts() ------------------------------------------------------------------


def test_attempts_loop_retries_a_block() -> None:
    """for attempt in retry.attempts(): with attempt: ... retries the block."""
    clock = FakeClock()
    flaky = Flaky(ValueError(), ValueError())
    numbers = []
    for attempt in make_retry(clock).attempts():
        with attempt:
            numbers.append(attempt.number)
            flaky()
    assert (numbers, clock.sleeps) == ([1, 2, 3], [1.0, 1.0])


def test_attempts_loop_raises_the_last_failure_from_the_block() -> None:
    """When attempts run out, the block's exception propagates, noted."""
    clock = FakeClock()
    flaky = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))
    with pytest.raises(ValueError, match="3") as info:
        for attempt in make_retry(clock).attempts():
            with attempt:
                flaky()
    assert info.value.__notes__[0].startswith("resilience: gave up after 3 attempts")


def test_attempts_loop_does_not_retry_unmatched_errors() -> None:
    """A non-retryable error leaves the loop at once."""
    flaky = Flaky(KeyError("k"))
    with pytest.raises(KeyError):
        for attempt in make_retry(FakeClock()).attempts():
            with attempt:
                flaky()
    assert flaky.calls == 1


def test_async_attempts_loop(backend: str) -> None:
    """async for attempt in retry.attempts() retries with the async sleep."""
    clock = FakeClock()
    flaky = Flaky(ValueError())

    async def main() -> object:
        async for attempt in make_retry(clock).attempts():
            with attempt:
                await checkpoint()
                return flaky()
        raise AssertionError("unreachable")

    assert run_async(main, backend) == "ok"
    assert clock.sleeps == [1.0]


def test_async_with_attempt_retries_the_block(backend: str) -> None:
    """`async with attempt:` inside `async for` retries the block (issue #15)."""
    clock = FakeClock()
    flaky = Flaky(ValueError(), ValueError())
    numbers = []

    async def main() -> object:
        async for attempt in make_retry(clock).attempts():
            async with attempt:
                numbers.append(attempt.number)
                await checkpoint()
                return flaky()
        raise AssertionError("unreachable")

    assert run_async(main, backend) == "ok"
    assert (numbers, clock.sleeps) == ([1, 2, 3], [1.0, 1.0])


def test_async_with_attempt_raises_the_last_failure_noted(backend: str) -> None:
    """`async with attempt:` lets the last failure out of the block, noted (issue #15)."""
    flaky = Flaky(ValueError("1"), ValueError("2"), ValueError("3"))

    async def main() -> None:
        async for attempt in make_retry(FakeClock()).attempts():
            async with attempt:
                flaky()

    with pytest.raises(ValueError, match="3") as info:
        run_async(main, backend)
    assert info.value.__notes__[0].startswith("resilience: gave up after 3 attempts")


def test_async_with_attempt_lets_unmatched_errors_through(backend: str) -> None:
    """A failure the classifier refuses leaves `async with attempt:` at once (issue #15)."""
    flaky = Flaky(KeyError("k"))

    async def main() -> None:
        async for attempt in make_retry(FakeClock()).attempts():
            async with attempt:
                flaky()

    with pytest.raises(KeyError):
        run_async(main, backend)
    assert flaky.calls == 1


def test_attempts_loop_lets_cancellation_through() -> None:
    """KeyboardInterrupt inside an attempt leaves the loop untouched."""
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        for attempt in make_retry(FakeClock()).attempts():
            with attempt:
                flaky()
    assert flaky.calls == 1


def test_attempt_not_entered_is_an_error() -> None:
    """An iteration that skips `with attempt:` fails instead of looping forever."""
    with pytest.raises(RuntimeError, match="exactly once per iteration"):
        for _attempt in make_retry(FakeClock()).attempts():
            pass


def test_with_retry_points_to_attempts() -> None:
    """`with retry:` is a TypeError that names attempts()."""
    retry = make_retry(FakeClock())
    with pytest.raises(TypeError, match=r"retry\.attempts\(\)"), retry:
        pass  # pragma: no cover


# --- concurrency ---------------------------------------------------------------------


def test_one_retry_shared_by_32_threads_keeps_per_call_state() -> None:
    """Many threads share one Retry; each call counts its own attempts (tenacity #93)."""
    retry = rs.Retry(on=ValueError, attempts=4, backoff=backoff.constant(0.0))
    barrier = threading.Barrier(32)
    results: dict[int, list[int]] = {}

    @retry
    def work(i: int, tries: list[int]) -> int:
        tries.append(i)
        if len(tries) == 1:
            barrier.wait()  # every thread is mid-call at once
        if len(tries) <= i % 4:
            raise ValueError(i)
        return i

    def thread(i: int) -> None:
        tries: list[int] = []
        try:
            assert work(i, tries) == i
        finally:
            results[i] = tries

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    join_all(threads)
    assert {i: len(t) for i, t in results.items()} == {i: i % 4 + 1 for i in range(32)}


def test_one_retry_shared_by_500_tasks_keeps_per_call_state(backend: str) -> None:
    """500 concurrent tasks share one Retry; each call sees only its own attempts."""
    clock = FakeClock()
    retry = rs.Retry(on=ValueError, attempts=3, backoff=backoff.constant(1.0), clock=clock)

    @retry
    async def work(i: int, tries: list[int]) -> int:
        tries.append(i)
        await checkpoint()
        if len(tries) <= i % 3:
            raise ValueError(i)
        return i

    async def main() -> list[tuple[int, int]]:
        tries: list[list[int]] = [[] for _ in range(500)]
        out: dict[int, int] = {}

        async def one(i: int) -> None:
            out[i] = await work(i, tries[i])

        async with anyio.create_task_group() as group:  # a nursery, under trio
            for i in range(500):
                group.start_soon(one, i)
        return [(out[i], len(tries[i])) for i in range(500)]

    assert run_async(main, backend) == [(i, i % 3 + 1) for i in range(500)]
    assert len(clock.sleeps) == sum(i % 3 for i in range(500))


# --- configuration -----------------------------------------------------------------


def test_retry_is_frozen_hashable_and_evolvable() -> None:
    """Retry is immutable configuration; attrs.evolve makes variants."""
    retry = rs.Retry(on=ValueError)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        retry.max_attempts = 5  # type: ignore[misc]
    five = attrs.evolve(retry, attempts=5)
    assert (retry.max_attempts, five.max_attempts) == (3, 5)
    assert hash(retry) == hash(rs.Retry(on=ValueError))
    assert "attempts=5" in repr(five)


def test_bare_retry_is_a_type_error() -> None:
    """There is no retry-everything default: on= is required."""
    with pytest.raises(TypeError):
        rs.Retry()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "attempts must be >= 1, got 0"),
        (-2, ValueError, "attempts must be >= 1, got -2"),
        (1.5, TypeError, "attempts must be an int >= 1, got float: 1.5"),
        (True, TypeError, "attempts must be an int >= 1, got bool: True"),
    ],
)
def test_bad_attempts(value: Any, error: type[Exception], message: str) -> None:
    """attempts must be an int >= 1, and the error names the value."""
    with pytest.raises(error, match=message):
        rs.Retry(on=ValueError, attempts=value)


@pytest.mark.parametrize("value", [None, 5, "ValueError"])
def test_bad_on(value: Any) -> None:
    """on= of the wrong type names the parameter."""
    with pytest.raises(TypeError, match="on must be"):
        rs.Retry(on=value)


def test_max_retry_after_beyond_any_float_is_no_cap() -> None:
    """An int too large for a float is an infinite cap, not an OverflowError."""
    assert rs.Retry(on=ValueError, max_retry_after=10**400).max_retry_after == math.inf


@pytest.mark.parametrize("value", [-1, math.nan])
def test_bad_max_retry_after(value: float) -> None:
    """max_retry_after must be non-negative seconds or None."""
    with pytest.raises(ValueError, match="max_retry_after must be >= 0 seconds or None"):
        rs.Retry(on=ValueError, max_retry_after=value)


def test_max_retry_after_accepts_timedelta_and_none() -> None:
    """max_retry_after takes a timedelta, or None for no limit."""
    import datetime

    assert (
        rs.Retry(on=ValueError, max_retry_after=datetime.timedelta(minutes=2)).max_retry_after
        == 120
    )
    assert rs.Retry(on=ValueError, max_retry_after=None).max_retry_after is None


@pytest.mark.parametrize("value", [3, backoff.constant], ids=["int", "the-class-not-a-value"])
def test_bad_backoff(value: Any) -> None:
    """backoff must be a Backoff value: a callable, not a class such as rs.backoff.constant."""
    with pytest.raises(TypeError, match="backoff must be a Backoff"):
        rs.Retry(on=ValueError, backoff=value)


@pytest.mark.parametrize("value", [42, None, random.Random], ids=["int", "none", "a-class"])
def test_bad_rng(value: Any) -> None:
    """rng must be a random source, checked at construction (not at the first retry)."""
    with pytest.raises(TypeError, match="rng must be a random source"):
        rs.Retry(on=ValueError, rng=value)


def test_bad_name() -> None:
    """name must be a string."""
    with pytest.raises(TypeError, match="name must be a str or None, got int: 3"):
        rs.Retry(on=ValueError, name=3)  # type: ignore[arg-type]


def test_bad_hooks() -> None:
    """hooks must be callables."""
    with pytest.raises(TypeError, match="hooks must be callables"):
        rs.Retry(on=ValueError, hooks=[1])  # type: ignore[list-item]


def test_bad_clock() -> None:
    """clock must provide now, sleep and asleep."""
    with pytest.raises(TypeError, match="clock must have now"):
        rs.Retry(on=ValueError, clock=object())  # type: ignore[arg-type]


def make_flaky_fn(errors: int) -> tuple[Callable[[], str], list[int]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= errors:
            raise ValueError(len(calls))
        return "ok"

    return fn, calls


def test_call_runs_once_under_the_policy() -> None:
    """retry.call(fn, ...) runs fn under the policy without decorating it."""
    clock = FakeClock()
    fn, calls = make_flaky_fn(1)
    assert make_retry(clock).call(fn) == "ok"
    assert len(calls) == 2


def test_acall_runs_a_coroutine_function_under_the_policy(backend: str) -> None:
    """await retry.acall(afn, ...) retries a coroutine function."""
    clock = FakeClock()
    fn, calls = make_flaky_fn(2)

    async def afn(x: int) -> str:
        return fn() + str(x)

    assert run_async(lambda: make_retry(clock).acall(afn, 1), backend) == "ok1"
    assert len(calls) == 3
