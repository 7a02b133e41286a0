"""CircuitBreaker: trip conditions, half-open probes, manual control, shapes, events, the store."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import inspect
import pickle
import random
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import anyio
import attrs
import pytest

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock, capture_events

from .conftest import Runner
from .forms import cancel_task, checkpoint, run_async


class Boom(Exception):
    """A failure the test breakers count (their classifier trips on it)."""


class Other(Exception):
    """An error the test breakers' classifier does not trip on."""


def body(kind: str = "ok") -> str:
    """Return "ok", or raise Boom / Other / KeyboardInterrupt, as *kind* says."""
    if kind == "boom":
        raise Boom(kind)
    if kind == "other":
        raise Other(kind)
    if kind == "interrupt":
        raise KeyboardInterrupt
    return kind


def make(clock: FakeClock, **kwargs: Any) -> rs.CircuitBreaker:
    kwargs.setdefault("on", Boom)
    kwargs.setdefault("reset_timeout", 10.0)
    kwargs.setdefault("name", "test")
    return rs.CircuitBreaker(clock=clock, **kwargs)


def outcome(mode: Runner, fn: Callable[..., Any], *args: Any) -> object:
    """Run *fn* through *mode*; return its result, or the exception it raised."""
    try:
        return mode.run(fn, *args)
    except Exception as exc:
        return exc


def kinds(results: list[object]) -> list[str]:
    """Name each outcome: its value, or its exception's class name."""
    return [type(r).__name__ if isinstance(r, BaseException) else str(r) for r in results]


def state(breaker: rs.CircuitBreaker) -> rs.CircuitState:
    """Read the breaker's state (a call, so that type checkers do not narrow it)."""
    return breaker.state


def trip(breaker: rs.CircuitBreaker, failures: int) -> None:
    """Record *failures* counted failures through the sync path."""
    fn = breaker(body)
    for _ in range(failures):
        with pytest.raises(Boom):
            fn("boom")


class Gate:
    """An awaitable that suspends a coroutine until the test resumes it by hand."""

    def __await__(self) -> Any:
        return (yield self)


async def held(*_: Any) -> str:
    """A coroutine that waits at a Gate: sent a value, returns it; sent an exception, raises it."""
    value = await Gate()
    if isinstance(value, BaseException):
        raise value
    return str(value)


def start(fn: Callable[..., Any]) -> Any:
    """Start a held coroutine call; return it suspended at its Gate (admitted)."""
    coro = fn()
    assert isinstance(coro.send(None), Gate)
    return coro


def finish(coro: Any, value: object) -> object:
    """Resume a held call with *value*; return its result or the exception it raised."""
    try:
        coro.send(value)
    except StopIteration as stop:
        return stop.value
    except BaseException as exc:
        return exc
    raise AssertionError("the held call yielded again")


# --- construction ----------------------------------------------------------------------


def test_defaults() -> None:
    """The defaults are 5 consecutive failures, 60 s open, one probe, one success to close."""
    breaker = rs.CircuitBreaker(on=Boom)
    assert (
        breaker.failure_threshold,
        breaker.trip,
        breaker.reset_timeout,
        breaker.half_open_max_calls,
        breaker.success_threshold,
        breaker.name,
        breaker.state,
        breaker.retry_after,
    ) == (5, (), 60.0, 1, 1, None, rs.CircuitState.CLOSED, None)


def test_on_is_required() -> None:
    """There is no default classifier: a bare CircuitBreaker() is a TypeError."""
    with pytest.raises(TypeError):
        rs.CircuitBreaker()  # type: ignore[call-arg]


def test_windowed_trip_turns_consecutive_counting_off_by_default() -> None:
    """With trip= and no failure_threshold, only the windowed conditions apply."""
    rate = rs.FailureRate(0.5, calls=10)
    assert rs.CircuitBreaker(on=Boom, trip=rate).failure_threshold is None
    assert rs.CircuitBreaker(on=Boom, trip=rate, failure_threshold=3).failure_threshold == 3


def test_trip_accepts_one_condition_or_several() -> None:
    """trip= takes a condition or an iterable of them, kept as a tuple."""
    a = rs.FailureRate(0.5, calls=10)
    b = rs.SlowCallRate(0.5, slower_than=1.0, seconds=30)
    assert rs.CircuitBreaker(on=Boom, trip=a).trip == (a,)
    assert rs.CircuitBreaker(on=Boom, trip=[a, b]).trip == (a, b)


def test_durations_accept_timedelta() -> None:
    """reset_timeout, seconds= and slower_than= accept datetime.timedelta."""
    minute = datetime.timedelta(minutes=1)
    slow = rs.SlowCallRate(0.5, slower_than=datetime.timedelta(milliseconds=1500), seconds=minute)
    assert (slow.slower_than, slow.seconds) == (1.5, 60.0)
    assert rs.CircuitBreaker(on=Boom, reset_timeout=minute).reset_timeout == 60.0


def test_minimum_calls_defaults_to_ten_or_the_window() -> None:
    """minimum_calls defaults to 10, or to a count window's size when it is smaller."""
    assert rs.FailureRate(0.5, calls=100).minimum_calls == 10
    assert rs.FailureRate(0.5, calls=4).minimum_calls == 4
    assert rs.FailureRate(0.5, seconds=1.0).minimum_calls == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold must be >= 1, got 0"),
        ({"failure_threshold": True}, TypeError, "failure_threshold must be an int >= 1, got bool"),
        ({"failure_threshold": 2.0}, TypeError, "failure_threshold must be an int >= 1, got float"),
        ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls must be >= 1, got 0"),
        ({"success_threshold": 0}, ValueError, "success_threshold must be >= 1, got 0"),
        ({"success_threshold": False}, TypeError, "success_threshold must be an int"),
        (
            {"success_threshold": 3, "half_open_max_calls": 2},
            ValueError,
            r"success_threshold must be <= half_open_max_calls \(2\).*got success_threshold=3",
        ),
        ({"reset_timeout": -1}, ValueError, "reset_timeout must be .* >= 0, got -1.0"),
        ({"reset_timeout": float("nan")}, ValueError, "reset_timeout must be .*, got nan"),
        ({"reset_timeout": float("inf")}, ValueError, "reset_timeout must be .*, got inf"),
        ({"reset_timeout": 10**400}, ValueError, "reset_timeout must be a finite .*, got inf"),
        ({"reset_timeout": True}, TypeError, "reset_timeout must be .* got bool"),
        ({"reset_timeout": "60"}, TypeError, "reset_timeout must be .* got str"),
        ({"reset_timeout": backoff.exponential}, TypeError, "reset_timeout must be .* got type"),
        ({"trip": 0.5}, TypeError, "trip must be a FailureRate, .* got float"),
        ({"trip": [rs.FailureRate(0.5, calls=2), 3]}, TypeError, "got int at position 1"),
        ({"hooks": [1]}, TypeError, "hooks must be callables"),
        ({"hooks": 5}, TypeError, "hooks must be an iterable of callables .* got 5"),
        ({"rng": 5}, TypeError, "rng must be a random source .* got int: 5"),
        ({"clock": object()}, TypeError, "clock must have now"),
        ({"name": 3}, TypeError, "name must be a str or None, got int"),
        ({"store": 3}, TypeError, "store must be a callable"),
        ({"store": lambda breaker: object()}, TypeError, "store must return a CircuitStore"),
    ],
)
def test_bad_configuration_fails_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad input raises at construction, naming the parameter and the value."""
    with pytest.raises(error, match=message):
        rs.CircuitBreaker(on=Boom, **kwargs)


@pytest.mark.parametrize(
    ("make_condition", "error", "message"),
    [
        (lambda: rs.FailureRate(0, calls=10), ValueError, r"rate must be in \(0, 1\], got 0"),
        (lambda: rs.FailureRate(1.5, calls=10), ValueError, r"rate must be in \(0, 1\], got 1.5"),
        (lambda: rs.FailureRate(-0.1, calls=10), ValueError, "got -0.1"),
        (lambda: rs.FailureRate(float("nan"), calls=10), ValueError, "got nan"),
        (lambda: rs.FailureRate(True, calls=10), TypeError, "rate must be a number .* got bool"),
        (lambda: rs.FailureRate(0.5), TypeError, "needs exactly one window"),
        (lambda: rs.FailureRate(0.5, calls=10, seconds=10), TypeError, "exactly one window"),
        (lambda: rs.FailureRate(0.5, calls=0), ValueError, "calls must be >= 1, got 0"),
        (lambda: rs.FailureRate(0.5, calls=-3), ValueError, "calls must be >= 1, got -3"),
        (lambda: rs.FailureRate(0.5, calls=True), TypeError, "calls must be an int >= 1, got bool"),
        (lambda: rs.FailureRate(0.5, seconds=0), ValueError, "seconds must be .* > 0, got 0.0"),
        (lambda: rs.FailureRate(0.5, seconds=-5), ValueError, "seconds must be .* got -5.0"),
        (lambda: rs.FailureRate(0.5, seconds=False), TypeError, "seconds must be a number"),
        (  # #18.4: a window this narrow divided by zero on every call
            lambda: rs.FailureRate(0.5, seconds=5e-324),
            ValueError,
            r"seconds must be at least 1e-06 seconds .*got 5e-324",
        ),
        (  # #18.4: an OverflowError that did not name calls
            lambda: rs.FailureRate(0.5, calls=10**60),
            ValueError,
            r"calls must be <= 10000000 \(the window keeps a byte per call\), got 1000",
        ),
        (
            lambda: rs.FailureRate(0.5, calls=10, minimum_calls=0),
            ValueError,
            "minimum_calls must be >= 1, got 0",
        ),
        (
            lambda: rs.FailureRate(0.5, calls=10, minimum_calls=11),
            ValueError,
            r"minimum_calls must be <= calls \(10\).*got minimum_calls=11",
        ),
        (
            lambda: rs.SlowCallRate(0.5, slower_than=-1.0, calls=10),
            ValueError,
            "slower_than must be .* >= 0, got -1.0",
        ),
        (
            lambda: rs.SlowCallRate(0.5, slower_than=True, calls=10),
            TypeError,
            "slower_than must be a number",
        ),
        (lambda: rs.SlowCallRate(2, slower_than=1.0, calls=10), ValueError, "got 2"),
    ],
)
def test_bad_trip_conditions_fail_at_construction(
    make_condition: Callable[[], object], error: type[Exception], message: str
) -> None:
    """Rates outside (0, 1], empty or negative windows and negative durations raise."""
    with pytest.raises(error, match=message):
        make_condition()


def test_configuration_is_immutable() -> None:
    """A breaker's configuration and state cannot be assigned; the state changes by methods."""
    breaker = rs.CircuitBreaker(on=Boom)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        breaker.failure_threshold = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        breaker.state = rs.CircuitState.OPEN  # type: ignore[misc]


def test_breakers_compare_by_identity() -> None:
    """Two breakers with equal settings are two circuits: never equal, hashable by identity."""
    a, b = rs.CircuitBreaker(on=Boom), rs.CircuitBreaker(on=Boom)
    assert a != b
    assert len({a, b, a}) == 2


def test_repr_shows_settings_and_state() -> None:
    """The repr names the breaker, its settings and its current state."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    trip(breaker, 1)
    assert repr(breaker) == (
        "<CircuitBreaker name='test', "
        "on=ErrorClassifier([Rule(exception=tests.test_breaker.Boom)]), "
        "failure_threshold=1, reset_timeout=10.0: OPEN>"
    )


def test_exported_classes_are_documented_and_public() -> None:
    """Every class of the breaker names the public module and has a docstring."""
    for cls in (
        rs.CircuitBreaker,
        rs.CircuitState,
        rs.FailureRate,
        rs.SlowCallRate,
        rs.CircuitStore,
        rs.InMemoryCircuitStore,
        rs.CircuitPermit,
        rs.CircuitRejection,
        rs.CircuitTransition,
    ):
        assert cls.__module__ == "resilience"
        assert inspect.getdoc(cls)


# --- consecutive failures ------------------------------------------------------------------


def test_success_passes_the_result_through(mode: Runner) -> None:
    """A closed breaker returns the call's result and stays closed."""
    breaker = make(FakeClock())
    assert mode.run(breaker(mode.make(body)), "fine") == "fine"
    assert state(breaker) is rs.CircuitState.CLOSED


def test_opens_after_consecutive_failures(mode: Runner) -> None:
    """failure_threshold failures in a row open the circuit; the failures themselves propagate."""
    breaker = make(FakeClock(), failure_threshold=3)
    fn = breaker(mode.make(body))
    results = [outcome(mode, fn, "boom") for _ in range(3)]
    assert kinds(results) == ["Boom", "Boom", "Boom"]
    assert state(breaker) is rs.CircuitState.OPEN


def test_a_success_resets_the_consecutive_count(mode: Runner) -> None:
    """Failures separated by a success are not consecutive."""
    breaker = make(FakeClock(), failure_threshold=3)
    fn = breaker(mode.make(body))
    for kind in ("boom", "boom", "ok", "boom", "boom"):
        outcome(mode, fn, kind)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_errors_not_tripped_on_neither_count_nor_reset(mode: Runner) -> None:
    """An error the classifier does not trip on is neither a failure nor a success."""
    breaker = make(FakeClock(), failure_threshold=3)
    fn = breaker(mode.make(body))
    results = [outcome(mode, fn, k) for k in ("boom", "other", "other", "boom")]
    assert kinds(results) == ["Boom", "Other", "Other", "Boom"]
    assert state(breaker) is rs.CircuitState.CLOSED
    outcome(mode, fn, "boom")
    assert state(breaker) is rs.CircuitState.OPEN


def test_classifier_rules_with_trip_false_do_not_count(mode: Runner) -> None:
    """Only verdicts with trip count: a rule with trip=False makes an ignored error."""
    on = rs.Rule(exception=Boom, trip=False) | rs.Rule(exception=Other)
    breaker = make(FakeClock(), on=on, failure_threshold=1)
    fn = breaker(mode.make(body))
    outcome(mode, fn, "boom")
    assert state(breaker) is rs.CircuitState.CLOSED
    outcome(mode, fn, "other")
    assert state(breaker) is rs.CircuitState.OPEN


def test_results_can_be_failures(mode: Runner) -> None:
    """A result the classifier trips on counts as a failure, and is still returned."""
    breaker = make(FakeClock(), on=rs.Rule(when=lambda r: r == "busy"), failure_threshold=2)
    fn = breaker(mode.make(body))
    assert [mode.run(fn, "busy") for _ in range(2)] == ["busy", "busy"]
    assert state(breaker) is rs.CircuitState.OPEN


def test_results_are_not_classified_without_result_rules(mode: Runner) -> None:
    """An exception-only classifier never sees results."""
    seen: list[object] = []

    def predicate(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, Boom)

    breaker = make(FakeClock(), on=predicate)
    mode.run(breaker(mode.make(body)), "fine")
    assert seen == []


def test_a_raising_result_classifier_propagates_and_releases_the_probe() -> None:
    """A classifier predicate that raises propagates, and the probe's place is given back."""

    def explode(result: object) -> bool:
        if result == "explode":
            raise RuntimeError("bad predicate")
        return False

    clock = FakeClock()
    breaker = make(clock, on=rs.Rule(exception=Boom) | rs.Rule(when=explode), failure_threshold=1)
    trip(breaker, 1)
    clock.advance(10)
    fn = breaker(body)
    with pytest.raises(RuntimeError, match="bad predicate"):
        fn("explode")
    assert fn("ok") == "ok"
    assert state(breaker) is rs.CircuitState.CLOSED


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_base_exceptions_are_never_counted(exc: BaseException) -> None:
    """KeyboardInterrupt, SystemExit and GeneratorExit pass through uncounted."""

    def raise_it() -> None:
        raise exc

    breaker = make(FakeClock(), on=lambda e: True, failure_threshold=1)
    with pytest.raises(type(exc)):
        breaker(raise_it)()
    assert state(breaker) is rs.CircuitState.CLOSED


def test_cancellation_is_never_counted(backend: str) -> None:
    """A cancelled call is not a failure, even with a classifier that trips on everything."""
    breaker = make(FakeClock(), on=lambda e: True, failure_threshold=1)
    started: list[int] = []

    async def slow() -> None:
        started.append(1)
        await anyio.sleep(3600)

    cancel_task(breaker(slow), lambda: bool(started), backend)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_manual_only_breaker_never_trips(mode: Runner) -> None:
    """failure_threshold=None without trip= leaves the circuit to manual control."""
    breaker = make(FakeClock(), failure_threshold=None)
    fn = breaker(mode.make(body))
    for _ in range(20):
        outcome(mode, fn, "boom")
    assert state(breaker) is rs.CircuitState.CLOSED


# --- open ------------------------------------------------------------------------------


def test_open_rejects_without_calling(mode: Runner) -> None:
    """An open circuit raises CircuitOpenError at once; the function is not called."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    calls: list[str] = []

    def spy(kind: str) -> str:
        calls.append(kind)
        return body(kind)

    fn = breaker(mode.make(spy))
    outcome(mode, fn, "boom")
    clock.advance(4)
    error = outcome(mode, fn, "ok")
    assert isinstance(error, rs.CircuitOpenError)
    assert (error.name, error.retry_after, calls) == ("test", 6.0, ["boom"])
    assert str(error) == "circuit 'test' is open; retry after 6 s; opened by Boom: boom"


def test_an_unnamed_breaker_says_so_in_its_error() -> None:
    """CircuitOpenError.name is "<unnamed>" for a breaker without a name."""
    breaker = rs.CircuitBreaker(on=Boom, failure_threshold=1, clock=FakeClock())
    trip(breaker, 1)
    with pytest.raises(rs.CircuitOpenError) as info:
        breaker.call(body)
    assert info.value.name == "<unnamed>"


def test_retry_after_counts_down_to_half_open() -> None:
    """retry_after is the seconds left until half-open, and None once half-open."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    trip(breaker, 1)
    readings = []
    for step in (0.0, 2.5, 7.0, 0.5):
        clock.advance(step)
        readings.append((breaker.state.name, breaker.retry_after))
    assert readings == [("OPEN", 10.0), ("OPEN", 7.5), ("OPEN", 0.5), ("HALF_OPEN", None)]


def test_half_open_begins_at_exactly_reset_timeout() -> None:
    """The circuit is open until the instant reset_timeout has elapsed, and half-open at it."""
    clock = FakeClock(start=100.0)
    breaker = make(clock, failure_threshold=1, reset_timeout=8.0)
    trip(breaker, 1)
    clock.advance(7.999)
    assert state(breaker) is rs.CircuitState.OPEN
    with pytest.raises(rs.CircuitOpenError):
        breaker.call(body)
    clock.advance(0.001)
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert breaker.call(body) == "ok"


def test_zero_reset_timeout_half_opens_at_once() -> None:
    """reset_timeout=0 admits a probe at the very instant the circuit opened."""
    breaker = make(FakeClock(), failure_threshold=1, reset_timeout=0)
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert breaker.call(body) == "ok"


def test_failures_in_flight_when_it_opened_change_nothing() -> None:
    """Outcomes of calls admitted before the circuit opened do not extend or move it."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    fn = breaker(held)
    late = [start(fn) for _ in range(3)]
    trip(breaker, 1)
    clock.advance(6)
    assert kinds([finish(c, Boom()) for c in late]) == ["Boom"] * 3
    assert breaker.retry_after == 4.0


# --- half-open ---------------------------------------------------------------------------


def open_then_half_open(clock: FakeClock, **kwargs: Any) -> rs.CircuitBreaker:
    kwargs.setdefault("failure_threshold", 1)
    breaker = make(clock, **kwargs)
    trip(breaker, 1)
    clock.advance(10)
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    return breaker


def test_a_successful_probe_closes(mode: Runner) -> None:
    """In half-open, a successful probe closes the circuit."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    assert mode.run(breaker(mode.make(body))) == "ok"
    assert state(breaker) is rs.CircuitState.CLOSED


def test_a_failed_probe_reopens(mode: Runner) -> None:
    """In half-open, a failed probe opens the circuit again for reset_timeout."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    assert isinstance(outcome(mode, breaker(mode.make(body)), "boom"), Boom)
    assert (breaker.state, breaker.retry_after) == (rs.CircuitState.OPEN, 10.0)


def test_half_open_admits_only_max_calls_probes(mode: Runner) -> None:
    """Half-open admits half_open_max_calls probes; the others are rejected at once."""
    clock = FakeClock()
    breaker = open_then_half_open(clock, half_open_max_calls=2, success_threshold=2)
    probes = [start(breaker(held)) for _ in range(2)]
    error = outcome(mode, breaker(mode.make(body)))
    assert isinstance(error, rs.CircuitOpenError)
    assert error.retry_after is None
    assert [finish(p, "ok") for p in probes] == ["ok", "ok"]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_success_threshold_successes_close() -> None:
    """With success_threshold=2, one successful probe is not enough to close."""
    clock = FakeClock()
    breaker = open_then_half_open(clock, half_open_max_calls=3, success_threshold=2)
    fn = breaker(body)
    fn()
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    fn()
    assert state(breaker) is rs.CircuitState.CLOSED


def test_probes_are_not_refilled_by_successes() -> None:
    """Each half-open period admits at most half_open_max_calls probes in total."""
    clock = FakeClock()
    breaker = open_then_half_open(clock, half_open_max_calls=2, success_threshold=2)
    first = start(breaker(held))
    assert finish(first, "ok") == "ok"
    second = start(breaker(held))
    with pytest.raises(rs.CircuitOpenError):
        breaker.call(body)
    assert finish(second, Boom()).__class__ is Boom
    assert state(breaker) is rs.CircuitState.OPEN


def test_one_failed_probe_reopens_even_after_successes() -> None:
    """A failure in half-open reopens the circuit, whatever succeeded before it."""
    clock = FakeClock()
    breaker = open_then_half_open(clock, half_open_max_calls=3, success_threshold=3)
    fn = breaker(body)
    fn()
    fn()
    with pytest.raises(Boom):
        fn("boom")
    assert state(breaker) is rs.CircuitState.OPEN


def test_an_ignored_probe_gives_its_place_back(mode: Runner) -> None:
    """A probe that ends with an error not tripped on frees its place for another probe."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    fn = breaker(mode.make(body))
    assert isinstance(outcome(mode, fn, "other"), Other)
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert mode.run(fn) == "ok"
    assert state(breaker) is rs.CircuitState.CLOSED


def test_a_cancelled_probe_gives_its_place_back(backend: str) -> None:
    """A probe cancelled while it runs releases its place: the next call is admitted."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    started: list[int] = []

    async def wait_forever() -> None:
        started.append(1)
        with pytest.raises(rs.CircuitOpenError):
            breaker.call(body)  # the probe's place is taken
        await anyio.sleep_forever()

    async def probe() -> str:
        await checkpoint()
        return "probe"

    cancel_task(breaker(wait_forever), lambda: bool(started), backend)
    assert run_async(lambda: breaker.acall(probe), backend) == "probe"
    assert state(breaker) is rs.CircuitState.CLOSED


def test_an_interrupted_probe_gives_its_place_back() -> None:
    """A sync probe ended by KeyboardInterrupt releases its place, uncounted."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(body, "interrupt")
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert breaker.call(body) == "ok"


def test_outcomes_from_before_half_open_do_not_close_or_reopen() -> None:
    """Only probes decide a half-open circuit: calls admitted while closed change nothing."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    before = [start(breaker(held)) for _ in range(2)]
    trip(breaker, 1)
    clock.advance(10)
    probe = start(breaker(held))
    finish(before[0], "ok")
    finish(before[1], Boom())
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    finish(probe, "ok")
    assert state(breaker) is rs.CircuitState.CLOSED


def test_late_probe_outcomes_after_closing_change_nothing() -> None:
    """A probe that ends after the circuit closed is not counted against the new period."""
    clock = FakeClock()
    breaker = open_then_half_open(clock, half_open_max_calls=2)
    slow = start(breaker(held))
    breaker.call(body)  # the other probe closes the circuit
    assert state(breaker) is rs.CircuitState.CLOSED
    assert isinstance(finish(slow, Boom()), Boom)
    assert state(breaker) is rs.CircuitState.CLOSED


# --- growing open periods ------------------------------------------------------------------


def test_backoff_reset_timeout_grows_with_each_reopening() -> None:
    """With a backoff reset_timeout, each reopening in a row stays open longer."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, reset_timeout=backoff.schedule([1, 2, 4]))
    periods = []
    trip(breaker, 1)
    for _ in range(4):
        periods.append(breaker.retry_after)
        clock.advance(breaker.retry_after or 0)
        with pytest.raises(Boom):
            breaker.call(body, "boom")  # the probe fails
    assert periods == [1.0, 2.0, 4.0, 4.0]


def test_closing_restarts_the_backoff() -> None:
    """After the circuit closes, the next opening uses the first open period again."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, reset_timeout=backoff.schedule([1, 2, 4]))
    trip(breaker, 1)
    clock.advance(1)
    with pytest.raises(Boom):
        breaker.call(body, "boom")
    clock.advance(2)
    breaker.call(body)
    trip(breaker, 1)
    assert breaker.retry_after == 1.0


def test_jittered_backoff_draws_from_rng() -> None:
    """A jittered reset_timeout uses the breaker's rng, so a seed reproduces it."""
    periods = []
    for _ in range(2):
        breaker = make(
            FakeClock(),
            failure_threshold=1,
            reset_timeout=backoff.exponential(initial=10.0, max=100.0, jitter=backoff.full),
            rng=random.Random(7),
        )
        trip(breaker, 1)
        periods.append(breaker.retry_after)
    assert periods[0] == periods[1]
    assert periods[0] is not None
    assert 0 <= periods[0] <= 10.0


def test_exponential_backoff_reset_timeout() -> None:
    """rs.backoff.exponential(...) as reset_timeout doubles the open period per reopening."""
    clock = FakeClock()
    grow = backoff.exponential(initial=5.0, max=20.0, jitter=backoff.none)
    breaker = make(clock, failure_threshold=1, reset_timeout=grow)
    trip(breaker, 1)
    periods = []
    for _ in range(4):
        periods.append(breaker.retry_after)
        clock.advance(breaker.retry_after or 0)
        with pytest.raises(Boom):
            breaker.call(body, "boom")
    assert periods == [5.0, 10.0, 20.0, 20.0]


def test_a_backoff_returning_a_bad_period_raises() -> None:
    """A reset_timeout backoff that returns NaN is a ValueError naming it, never a silent clamp."""

    def broken(attempt: int, previous: float, rng: random.Random, /) -> float:
        return float("nan")

    breaker = make(FakeClock(), failure_threshold=1, reset_timeout=broken)
    with pytest.raises(ValueError, match="returned nan for opening 1"):
        breaker.call(body, "boom")


# --- windowed trip conditions ---------------------------------------------------------------


def test_failure_rate_over_calls_trips_at_the_rate(mode: Runner) -> None:
    """FailureRate over a count window opens once the failure ratio reaches the rate."""
    breaker = make(FakeClock(), trip=rs.FailureRate(0.5, calls=4))
    fn = breaker(mode.make(body))
    for kind in ("ok", "boom", "ok"):
        outcome(mode, fn, kind)
    assert state(breaker) is rs.CircuitState.CLOSED
    outcome(mode, fn, "boom")
    assert state(breaker) is rs.CircuitState.OPEN


@pytest.mark.parametrize("rate", [0.07, 0.29, 0.55, 0.57, 0.58, 1.0])
@pytest.mark.parametrize("kind", ["failure", "slow"])
def test_rate_windows_trip_at_exactly_the_rate(rate: float, kind: str) -> None:
    """'At least the rate' holds exactly: 55 of 100 trips FailureRate(0.55), 54 does not.

    (0.55 * 100 is 55.00000000000001 in floating point.)
    """
    clock = FakeClock()
    hits = round(rate * 100)
    if kind == "failure":
        condition: rs.FailureRate | rs.SlowCallRate = rs.FailureRate(
            rate, calls=100, minimum_calls=100
        )
    else:
        condition = rs.SlowCallRate(rate, slower_than=1.0, calls=100, minimum_calls=100)
    breaker = make(clock, trip=condition)

    def call(hit: bool) -> None:
        if kind == "slow":
            clock.advance(2.0 if hit else 0.0)
        elif hit:
            raise Boom

    fn = breaker(lambda hit: call(hit))
    for index in range(100):
        hit = index >= 100 - hits
        with contextlib.suppress(Boom):
            fn(hit)
        if index == 98:
            assert state(breaker) is rs.CircuitState.CLOSED
    assert state(breaker) is rs.CircuitState.OPEN
    if hits > 1:  # one hit fewer over the same 100 calls stays closed
        breaker.reset()
        for index in range(100):
            with contextlib.suppress(Boom):
                fn(index >= 100 - hits + 1)
        assert state(breaker) is rs.CircuitState.CLOSED


def test_failure_rate_waits_for_minimum_calls() -> None:
    """Below minimum_calls the rate is not judged, even at 100 % failures."""
    breaker = make(FakeClock(), trip=rs.FailureRate(0.5, calls=10, minimum_calls=5))
    trip(breaker, 4)
    assert state(breaker) is rs.CircuitState.CLOSED
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.OPEN


def test_a_success_that_reaches_minimum_calls_can_trip() -> None:
    """The rate is judged after every counted call, successes included."""
    breaker = make(FakeClock(), trip=rs.FailureRate(0.5, calls=10, minimum_calls=4))
    trip(breaker, 2)
    breaker.call(body)
    assert state(breaker) is rs.CircuitState.CLOSED
    breaker.call(body)  # 2 failures in 4 calls: 50 %
    assert state(breaker) is rs.CircuitState.OPEN


def test_count_window_forgets_the_oldest_calls() -> None:
    """A count window holds only the last N calls."""
    breaker = make(FakeClock(), trip=rs.FailureRate(0.5, calls=4))
    fn = breaker(body)
    for kind in ("boom", "ok", "ok", "ok", "ok", "boom"):
        outcome(Runner(None), fn, kind)
    assert state(breaker) is rs.CircuitState.CLOSED  # the first failure left the window
    outcome(Runner(None), fn, "boom")
    assert state(breaker) is rs.CircuitState.OPEN


def test_ignored_errors_are_not_calls_in_the_window() -> None:
    """Errors not tripped on neither fill the window nor dilute the rate."""
    breaker = make(FakeClock(), trip=rs.FailureRate(1.0, calls=3))
    fn = breaker(body)
    for kind in ("boom", "other", "boom", "other", "boom"):
        outcome(Runner(None), fn, kind)
    assert state(breaker) is rs.CircuitState.OPEN


def test_time_window_forgets_calls_older_than_its_length() -> None:
    """A time window counts only the calls of its last seconds."""
    clock = FakeClock()
    breaker = make(clock, trip=rs.FailureRate(0.5, seconds=10, minimum_calls=3))
    trip(breaker, 2)
    clock.advance(10)
    breaker.call(body)
    breaker.call(body)
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED  # 1 failure out of 3 recent calls
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.OPEN


def test_time_window_keeps_calls_within_its_length() -> None:
    """Calls less than 90 % of the window old are still counted."""
    clock = FakeClock()
    breaker = make(clock, trip=rs.FailureRate(0.75, seconds=10, minimum_calls=4))
    trip(breaker, 2)
    clock.advance(8.9)
    breaker.call(body)
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.OPEN


def test_time_window_buckets_are_a_tenth_of_it() -> None:
    """A call leaves a time window once its bucket of seconds/10 is ten buckets old."""
    clock = FakeClock(start=0.5)
    breaker = make(clock, trip=rs.FailureRate(1.0, seconds=10, minimum_calls=2))
    trip(breaker, 1)  # bucket [0, 1)
    clock.advance(9.5)  # now 10.0: bucket [10, 11); [0, 1) has left
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_a_time_window_left_idle_starts_empty() -> None:
    """After a silence longer than the window, old calls are all forgotten."""
    clock = FakeClock()
    breaker = make(clock, trip=rs.FailureRate(0.5, seconds=1, minimum_calls=2))
    trip(breaker, 1)
    clock.advance(100)
    breaker.call(body)
    breaker.call(body)
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_failure_rate_and_consecutive_failures_together() -> None:
    """With both configured, either condition opens the circuit."""
    breaker = make(FakeClock(), trip=rs.FailureRate(0.9, calls=100), failure_threshold=3)
    trip(breaker, 3)
    assert state(breaker) is rs.CircuitState.OPEN


def test_the_first_condition_that_holds_names_the_reason() -> None:
    """CircuitOpened.reason says which condition tripped."""
    breaker = make(
        FakeClock(),
        trip=[rs.FailureRate(1.0, calls=2), rs.FailureRate(0.5, seconds=5, minimum_calls=2)],
    )
    with capture_events() as events:
        trip(breaker, 2)
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("CircuitOpened", "failure_rate")
    ]


def test_the_window_is_cleared_when_the_circuit_closes() -> None:
    """A closed circuit starts with an empty window."""
    clock = FakeClock()
    breaker = make(clock, trip=rs.FailureRate(0.5, calls=4, minimum_calls=2))
    trip(breaker, 2)
    clock.advance(10)
    breaker.call(body)
    assert state(breaker) is rs.CircuitState.CLOSED
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED


class TickingClock:
    """A fake clock whose reads are counted, and that advances by *step* on every read."""

    def __init__(self, step: float = 0.0) -> None:
        self.fake = FakeClock()
        self.step = step
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        value = self.fake.now()
        self.fake.advance(self.step)
        return value

    def sleep(self, seconds: float, /) -> None:
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float, /) -> None:
        await self.fake.asleep(seconds)


def test_slow_calls_trip_the_slow_call_rate(mode: Runner) -> None:
    """Calls slower than slower_than count as slow; enough of them open the circuit."""
    clock = TickingClock(step=3.0)  # every call takes 3 s
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(0.5, slower_than=2.0, calls=2)
    )
    fn = breaker(mode.make(body))
    mode.run(fn)
    assert state(breaker) is rs.CircuitState.CLOSED
    with capture_events() as events:
        mode.run(fn)
    assert state(breaker) is rs.CircuitState.OPEN
    assert [getattr(e, "reason", None) for e in events] == ["slow_calls"]


def test_calls_as_slow_as_the_limit_are_not_slow() -> None:
    """A call is slow only when it took more than slower_than."""
    clock = TickingClock(step=2.0)
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(0.5, slower_than=2.0, calls=2)
    )
    for _ in range(4):
        breaker.call(body)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_slow_failures_count_as_slow_calls() -> None:
    """Failures are timed too: a slow failure is a slow call."""
    clock = TickingClock(step=3.0)
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(1.0, slower_than=2.0, calls=2)
    )
    trip(breaker, 2)
    assert state(breaker) is rs.CircuitState.OPEN


def test_the_clock_is_read_only_when_slow_calls_are_detected() -> None:
    """Without a SlowCallRate, the closed-state path never reads the clock."""
    clock = TickingClock()
    breaker = rs.CircuitBreaker(on=Boom, clock=clock, failure_threshold=100)
    fn = breaker(body)
    for kind in ("ok", "boom", "other", "ok"):
        outcome(Runner(None), fn, kind)
    assert clock.reads == 0


def test_a_slow_probe_reopens() -> None:
    """In half-open, a probe slower than slower_than fails the probe."""
    clock = TickingClock(step=0.0)
    breaker = rs.CircuitBreaker(
        on=Boom,
        clock=clock,
        failure_threshold=1,
        reset_timeout=10,
        trip=rs.SlowCallRate(0.5, slower_than=2.0, calls=10),
    )
    trip(breaker, 1)
    clock.fake.advance(10)
    clock.step = 3.0
    assert breaker.call(body) == "ok"
    assert state(breaker) is rs.CircuitState.OPEN


def test_streams_are_timed_to_their_first_item() -> None:
    """For a generator, the time that counts is the time to the first item."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(1.0, slower_than=2.0, calls=1)
    )

    @breaker
    def stream() -> Iterator[int]:
        clock.advance(1.0)  # the first item comes after 1 s
        yield 1
        clock.advance(60.0)  # the consumer's pace or a slow tail
        yield 2

    assert list(stream()) == [1, 2]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_async_streams_are_timed_to_their_first_item(backend: str) -> None:
    """For an async generator, a slow first item makes a slow call."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(1.0, slower_than=2.0, calls=1)
    )

    @breaker
    async def stream() -> AsyncIterator[int]:
        clock.advance(3.0)
        yield 1

    async def main() -> list[int]:
        return [x async for x in stream()]

    assert run_async(main, backend) == [1]
    assert state(breaker) is rs.CircuitState.OPEN


# --- manual control --------------------------------------------------------------------------


def test_open_by_hand() -> None:
    """open() opens the circuit for reset_timeout, then it half-opens as usual."""
    clock = FakeClock()
    breaker = make(clock)
    breaker.open()
    assert (breaker.state, breaker.retry_after) == (rs.CircuitState.OPEN, 10.0)
    clock.advance(10)
    assert state(breaker) is rs.CircuitState.HALF_OPEN


def test_open_by_hand_again_starts_a_longer_period() -> None:
    """open() on an open circuit starts the next, possibly longer, open period."""
    clock = FakeClock()
    breaker = make(clock, reset_timeout=backoff.schedule([1, 5]))
    breaker.open()
    breaker.open()
    assert breaker.retry_after == 5.0


def test_close_by_hand() -> None:
    """close() closes an open circuit at once and clears its counts."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=2)
    trip(breaker, 2)
    breaker.close()
    assert state(breaker) is rs.CircuitState.CLOSED
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED


def test_isolate_holds_the_circuit_open_whatever_the_time() -> None:
    """isolate() rejects every call, with retry_after None, until released."""
    clock = FakeClock()
    breaker = make(clock)
    breaker.isolate()
    clock.advance(10**6)
    assert (breaker.state, breaker.retry_after) == (rs.CircuitState.ISOLATED, None)
    with pytest.raises(rs.CircuitOpenError) as info:
        breaker.call(body)
    assert info.value.retry_after is None


def test_open_does_not_release_an_isolated_circuit() -> None:
    """open() leaves an isolated circuit isolated."""
    breaker = make(FakeClock())
    breaker.isolate()
    breaker.open()
    assert state(breaker) is rs.CircuitState.ISOLATED


@pytest.mark.parametrize("release", ["close", "reset"])
def test_close_or_reset_releases_isolation(release: str) -> None:
    """close() and reset() release an isolated circuit."""
    breaker = make(FakeClock())
    breaker.isolate()
    getattr(breaker, release)()
    assert state(breaker) is rs.CircuitState.CLOSED
    assert breaker.call(body) == "ok"


def test_reset_forgets_counts_while_closed() -> None:
    """reset() on a closed circuit clears its pending failures, without an event."""
    breaker = make(FakeClock(), failure_threshold=2)
    trip(breaker, 1)
    with capture_events() as events:
        breaker.reset()
    trip(breaker, 1)
    assert state(breaker) is rs.CircuitState.CLOSED
    assert events == []


def test_reset_forgets_the_open_streak() -> None:
    """reset() restarts a growing reset_timeout from its first period."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1, reset_timeout=backoff.schedule([1, 2, 4]))
    breaker.open()
    breaker.open()
    breaker.reset()
    breaker.open()
    assert breaker.retry_after == 1.0


def test_manual_transitions_emit_events() -> None:
    """Manual control emits CircuitOpened and CircuitClosed with their reasons."""
    breaker = make(FakeClock())
    with capture_events() as events:
        breaker.open()
        breaker.close()
        breaker.close()  # already closed: nothing
        breaker.isolate()
        breaker.isolate()  # already isolated: nothing
        breaker.reset()
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("CircuitOpened", "manual"),
        ("CircuitClosed", "manual"),
        ("CircuitOpened", "isolated"),
        ("CircuitClosed", "reset"),
    ]


def test_the_store_refuses_to_force_half_open() -> None:
    """Only time makes a circuit half-open: forcing it is a ValueError."""
    breaker = make(FakeClock())
    store = rs.InMemoryCircuitStore(breaker)
    with pytest.raises(ValueError, match="only when its open period ends"):
        store.force(rs.CircuitState.HALF_OPEN)


# --- events ----------------------------------------------------------------------------------


def test_a_full_cycle_of_events() -> None:
    """Opening, rejecting, half-opening and closing each emit one event, in order."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    fn = breaker(body)
    with capture_events() as events:
        with pytest.raises(Boom):
            fn("boom")
        with pytest.raises(rs.CircuitOpenError):
            fn()
        clock.advance(10)
        fn()
    assert events == [
        rs.CircuitOpened(name="test", target="body", reason="failures", retry_after=10.0),
        rs.CallRejected(name="test", target="body", reason="circuit_open", retry_after=10.0),
        rs.CircuitHalfOpened(name="test", target="body"),
        rs.CircuitClosed(name="test", target="body", reason="probes_succeeded"),
    ]


def test_rejections_say_which_state_refused() -> None:
    """CallRejected.reason tells an open, a half-open and an isolated circuit apart."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    probe = start(breaker(held))
    with capture_events() as events:
        outcome(Runner(None), breaker(body))
        finish(probe, Boom())
        outcome(Runner(None), breaker(body))
        breaker.isolate()
        outcome(Runner(None), breaker(body))
    assert [e.reason for e in events if isinstance(e, rs.CallRejected)] == [
        "circuit_half_open",
        "circuit_open",
        "circuit_isolated",
    ]


def test_a_reopening_probe_says_so() -> None:
    """A failed probe reopens with reason "half_open_failure"."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    with capture_events() as events:
        outcome(Runner(None), breaker(body), "boom")
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in events] == [
        ("CircuitHalfOpened", None),
        ("CircuitOpened", "half_open_failure"),
    ]


def test_local_hooks_receive_the_breakers_events() -> None:
    """hooks= receive this breaker's events, before the global hooks."""
    seen: list[rs.Event] = []
    breaker = make(FakeClock(), failure_threshold=1, hooks=[seen.append])
    trip(breaker, 1)
    assert [type(e) for e in seen] == [rs.CircuitOpened]


def test_hooks_run_outside_the_lock() -> None:
    """A hook may read the breaker's state: no lock is held while hooks run."""
    clock = FakeClock()
    states: list[rs.CircuitState] = []
    breaker: rs.CircuitBreaker

    def hook(event: rs.Event) -> None:
        states.append(breaker.state)
        breaker.retry_after  # noqa: B018 - takes the store's lock

    breaker = make(clock, failure_threshold=1, hooks=[hook])

    def cycle() -> None:
        trip(breaker, 1)
        outcome(Runner(None), breaker(body))
        clock.advance(10)
        breaker.call(body)
        breaker.isolate()
        breaker.reset()

    worker = threading.Thread(target=cycle, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "a hook deadlocked: it ran while the lock was held"
    assert [s.name for s in states] == [
        "OPEN",
        "OPEN",
        "HALF_OPEN",
        "CLOSED",
        "ISOLATED",
        "CLOSED",
    ]


def test_a_raising_hook_does_not_change_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged and ignored; the circuit and the caller are unaffected."""

    def bad(event: rs.Event) -> None:
        raise RuntimeError("hook bug")

    breaker = make(FakeClock(), failure_threshold=1, hooks=[bad])
    with pytest.raises(Boom):
        breaker.call(body, "boom")
    assert state(breaker) is rs.CircuitState.OPEN
    assert "hook bug" in caplog.text


# --- shapes ----------------------------------------------------------------------------------


def test_call_and_acall(backend: str) -> None:
    """breaker.call and breaker.acall run a function once under the breaker."""
    breaker = make(FakeClock(), failure_threshold=1)

    async def afn(x: int) -> int:
        return x * 2

    assert breaker.call(body, "x") == "x"
    assert run_async(lambda: breaker.acall(afn, 21), backend) == 42
    with pytest.raises(Boom):
        breaker.call(body, "boom")
    with pytest.raises(rs.CircuitOpenError):
        run_async(lambda: breaker.acall(afn, 1), backend)


def test_decorated_functions_keep_their_kind() -> None:
    """Decorated coroutine and generator functions are still detected as such."""
    breaker = make(FakeClock())

    async def af() -> None: ...
    def g() -> Iterator[int]:
        yield 1

    async def ag() -> AsyncIterator[int]:
        yield 1

    assert inspect.iscoroutinefunction(breaker(af))
    assert inspect.isgeneratorfunction(breaker(g))
    assert inspect.isasyncgenfunction(breaker(ag))


def test_methods_share_the_one_circuit() -> None:
    """Instance, class and static methods all count against the same circuit."""
    breaker = make(FakeClock(), failure_threshold=3)

    class Client:
        @breaker
        def instance(self, kind: str) -> str:
            return body(kind)

        @classmethod
        @breaker
        def klass(cls, kind: str) -> str:
            return body(kind)

        @breaker
        @staticmethod
        def static(kind: str) -> str:
            return body(kind)

    client = Client()
    assert (client.instance("a"), Client.klass("b"), client.static("c")) == ("a", "b", "c")
    for method in (client.instance, Client.klass, Client.static):
        with pytest.raises(Boom):
            method("boom")
    assert state(breaker) is rs.CircuitState.OPEN


def test_a_generator_counts_when_it_ends() -> None:
    """A stream's outcome is recorded when it ends: a failure mid-stream counts."""
    breaker = make(FakeClock(), failure_threshold=1)

    @breaker
    def stream(fail: bool) -> Iterator[int]:
        yield 1
        if fail:
            raise Boom("mid-stream")
        yield 2

    assert list(stream(False)) == [1, 2]
    items: list[int] = []
    with pytest.raises(Boom):
        items.extend(stream(True))
    assert items == [1]
    assert state(breaker) is rs.CircuitState.OPEN


def test_a_generator_is_admitted_at_its_first_item() -> None:
    """Calling a generator function does nothing; the first next() is admitted or rejected."""
    breaker = make(FakeClock(), failure_threshold=1)

    @breaker
    def stream() -> Iterator[int]:
        yield 1

    pending = stream()
    trip(breaker, 1)
    with pytest.raises(rs.CircuitOpenError):
        next(pending)


def test_a_generator_closed_early_is_not_a_failure() -> None:
    """A consumer that stops early is not a failure; a probe's place is given back."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    trip(breaker, 1)
    clock.advance(10)
    cleaned: list[bool] = []

    @breaker
    def stream() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append(True)

    gen = stream()
    assert next(gen) == 1
    gen.close()
    assert cleaned == [True]
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert list(stream()) == [1, 2]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_a_generator_forwards_send_throw_and_its_return_value() -> None:
    """send() and throw() reach the stream; its return value comes back through."""
    breaker = make(FakeClock(), failure_threshold=1)

    @breaker
    def echo() -> Generator[object, object, str]:
        got = yield "ready"
        try:
            yield f"got {got}"
        except Other:
            yield "handled"
        return "done"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.throw(Other()) == "handled"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    assert state(breaker) is rs.CircuitState.CLOSED


def test_a_timed_generator_forwards_send_throw_and_close() -> None:
    """With slow-call timing on, a stream still forwards send(), throw() and close()."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(1.0, slower_than=5.0, calls=1)
    )
    closed: list[bool] = []

    @breaker
    def echo() -> Generator[object, object, None]:
        try:
            got = yield "ready"
            try:
                yield f"got {got}"
            except Other:
                yield "handled"
            yield "more"
        finally:
            closed.append(True)

    gen = echo()
    assert (next(gen), gen.send("x"), gen.throw(Other())) == ("ready", "got x", "handled")
    gen.close()
    assert closed == [True]

    @breaker
    def short() -> Iterator[int]:
        yield 1
        return None

    assert list(short()) == [1]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_an_empty_generator_is_a_success() -> None:
    """A stream that ends without an item succeeded."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)

    @breaker
    def empty() -> Iterator[int]:
        return
        yield

    assert list(empty()) == []
    assert state(breaker) is rs.CircuitState.CLOSED


def test_an_async_generator_counts_when_it_ends(backend: str) -> None:
    """An async stream's failure counts when it ends; a complete one is a success."""
    breaker = make(FakeClock(), failure_threshold=1)

    @breaker
    async def stream(fail: bool) -> AsyncIterator[int]:
        yield 1
        if fail:
            raise Boom("mid-stream")
        yield 2

    async def main() -> tuple[list[int], list[int]]:
        ok = [x async for x in stream(False)]
        partial: list[int] = []
        with pytest.raises(Boom):
            async for x in stream(True):
                partial.append(x)
        return ok, partial

    assert run_async(main, backend) == ([1, 2], [1])
    assert state(breaker) is rs.CircuitState.OPEN


def test_an_async_generator_closed_early_is_not_a_failure(backend: str) -> None:
    """An async consumer that stops early gives a probe's place back."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    trip(breaker, 1)
    clock.advance(10)

    @breaker
    async def stream() -> AsyncGenerator[int, None]:
        yield 1
        yield 2

    async def main() -> list[int]:
        agen = stream()
        assert await agen.__anext__() == 1
        await agen.aclose()
        assert state(breaker) is rs.CircuitState.HALF_OPEN
        return [x async for x in stream()]

    assert run_async(main, backend) == [1, 2]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_an_async_generator_forwards_asend_and_athrow(backend: str) -> None:
    """asend() and athrow() reach the async stream through the breaker."""
    breaker = make(FakeClock(), failure_threshold=1)

    @breaker
    async def echo() -> AsyncGenerator[object, object]:
        got = yield "ready"
        try:
            yield f"got {got}"
        except Other:
            yield "handled"

    async def main() -> list[object]:
        agen = echo()
        out = [await agen.__anext__(), await agen.asend("x"), await agen.athrow(Other())]
        with pytest.raises(StopAsyncIteration):
            await agen.__anext__()
        return out

    assert run_async(main, backend) == ["ready", "got x", "handled"]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_an_async_generator_rejected_while_open(backend: str) -> None:
    """An open circuit rejects an async stream at its first item."""
    breaker = make(FakeClock(), failure_threshold=1)
    trip(breaker, 1)

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1

    async def main() -> None:
        with pytest.raises(rs.CircuitOpenError):
            await stream().__anext__()

    run_async(main, backend)


def test_a_cancelled_async_stream_probe_gives_its_place_back(backend: str) -> None:
    """A probe stream cancelled while it waits releases its place."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    started: list[int] = []

    @breaker
    async def stream() -> AsyncIterator[int]:
        started.append(1)
        await anyio.sleep_forever()
        yield 1

    async def consume() -> None:
        async for _ in stream():
            pass

    cancel_task(consume, lambda: bool(started), backend)
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert breaker.call(body) == "ok"


def test_inside_compose_with_retry() -> None:
    """Retry outside a breaker does not retry CircuitOpenError unless its classifier says so."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=2)
    retry = rs.Retry(on=Boom, attempts=5, backoff=backoff.constant(1.0), clock=clock)
    calls: list[int] = []

    def always_boom() -> None:
        calls.append(1)
        raise Boom

    fn = rs.compose(retry, breaker)(always_boom)
    with pytest.raises(rs.CircuitOpenError):
        fn()
    assert len(calls) == 2
    assert state(breaker) is rs.CircuitState.OPEN


# --- with and async with -----------------------------------------------------------------------


def test_with_records_the_blocks_exception() -> None:
    """`with breaker:` counts the block's exception and lets it propagate."""
    breaker = make(FakeClock(), failure_threshold=2)
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom
    assert state(breaker) is rs.CircuitState.OPEN


def test_with_records_success() -> None:
    """A block that completes is a success: it resets the consecutive count."""
    breaker = make(FakeClock(), failure_threshold=2)
    with pytest.raises(Boom), breaker:
        raise Boom
    with breaker as entered:
        assert entered is breaker
    with pytest.raises(Boom), breaker:
        raise Boom
    assert state(breaker) is rs.CircuitState.CLOSED


def test_with_rejects_on_entry_while_open() -> None:
    """Entering an open breaker raises CircuitOpenError; the block does not run."""
    breaker = make(FakeClock(), failure_threshold=1)
    trip(breaker, 1)
    ran: list[bool] = []
    with pytest.raises(rs.CircuitOpenError), breaker:
        ran.append(True)
    assert ran == []


def test_with_ignores_errors_not_tripped_on() -> None:
    """A block's error that the classifier does not trip on is not counted."""
    breaker = make(FakeClock(), failure_threshold=1)
    with pytest.raises(Other), breaker:
        raise Other
    assert state(breaker) is rs.CircuitState.CLOSED


def test_with_probe_interrupted_gives_its_place_back() -> None:
    """A probe block ended by KeyboardInterrupt releases its place."""
    clock = FakeClock()
    breaker = open_then_half_open(clock)
    with pytest.raises(KeyboardInterrupt), breaker:
        raise KeyboardInterrupt
    with breaker:
        pass
    assert state(breaker) is rs.CircuitState.CLOSED


def test_nested_with_blocks_keep_their_own_permits() -> None:
    """Nested blocks of two breakers and of one breaker each record their own outcome."""
    clock = FakeClock()
    outer = make(clock, failure_threshold=1)
    inner = open_then_half_open(clock, half_open_max_calls=2, success_threshold=2)
    with outer:
        with inner:
            pass
        with pytest.raises(Boom), inner:
            raise Boom
    assert (outer.state, inner.state) == (rs.CircuitState.CLOSED, rs.CircuitState.OPEN)


def test_with_blocks_in_separate_contexts_do_not_mix() -> None:
    """Blocks entered in different contexts (threads, tasks) each keep their own permit."""
    clock = FakeClock()
    breaker = make(clock, failure_threshold=1)
    first, second = contextvars.copy_context(), contextvars.copy_context()
    first.run(breaker.__enter__)
    second.run(breaker.__enter__)
    first.run(breaker.__exit__, None, None, None)
    second.run(breaker.__exit__, Boom, Boom(), None)
    assert state(breaker) is rs.CircuitState.OPEN


def _blocks(breaker: rs.CircuitBreaker, fail: bool) -> Generator[int, None, None]:
    """A stream whose `with breaker:` block stays open across its yields."""
    with breaker:
        yield 1
        if fail:
            raise Boom
        yield 2


def test_with_blocks_of_interleaved_generators_keep_their_own_permits() -> None:
    """Generators suspended inside `with breaker:` share the consumer's context; each
    block still records its own permit: a late failure of a closed-period block does
    not count against the probe, and the probe's success closes the circuit."""
    clock = FakeClock()
    breaker = make(clock, half_open_max_calls=1)
    late = _blocks(breaker, fail=True)
    next(late)  # admitted while closed
    breaker.open()
    clock.advance(10)
    probe = _blocks(breaker, fail=False)
    next(probe)  # the single probe
    with pytest.raises(Boom):
        next(late)  # an outcome of the ended closed period: changes nothing
    assert state(breaker) is rs.CircuitState.HALF_OPEN
    assert list(probe) == [2]
    assert state(breaker) is rs.CircuitState.CLOSED


def test_closing_an_old_stream_does_not_free_the_running_probes_place() -> None:
    """A stream from before the opening, closed early, gives back its own permit only."""
    clock = FakeClock()
    breaker = make(clock, half_open_max_calls=1)
    old = _blocks(breaker, fail=False)
    next(old)
    breaker.open()
    clock.advance(10)
    probe = _blocks(breaker, fail=False)
    next(probe)
    old.close()
    with pytest.raises(rs.CircuitOpenError):
        next(_blocks(breaker, fail=False))  # the probe's place is still taken
    probe.close()


def test_with_block_entered_through_an_exit_stack() -> None:
    """ExitStack enters and leaves from its own frames: the innermost block is used."""
    breaker = make(FakeClock(), failure_threshold=1)
    with pytest.raises(Boom), contextlib.ExitStack() as stack:
        stack.enter_context(breaker)
        raise Boom
    assert state(breaker) is rs.CircuitState.OPEN


def test_exit_without_enter_is_an_error() -> None:
    """__exit__ without a matching __enter__ raises RuntimeError."""
    breaker = make(FakeClock())
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        breaker.__exit__(None, None, None)


def test_async_with_records_outcomes(backend: str) -> None:
    """`async with breaker:` works as `with`, in tasks."""
    breaker = make(FakeClock(), failure_threshold=2)

    async def main() -> None:
        async with breaker:
            await checkpoint()
        for _ in range(2):
            with pytest.raises(Boom):
                async with breaker:
                    raise Boom
        with pytest.raises(rs.CircuitOpenError):
            async with breaker:
                pass

    run_async(main, backend)
    assert state(breaker) is rs.CircuitState.OPEN


def test_with_blocks_are_timed_for_slow_calls() -> None:
    """A slow block counts as a slow call."""
    clock = FakeClock()
    breaker = rs.CircuitBreaker(
        on=Boom, clock=clock, trip=rs.SlowCallRate(1.0, slower_than=1.0, calls=1)
    )
    with breaker:
        clock.advance(2.0)
    assert state(breaker) is rs.CircuitState.OPEN


# --- the store ---------------------------------------------------------------------------------


def test_the_in_memory_store_is_a_circuit_store() -> None:
    """InMemoryCircuitStore implements the CircuitStore protocol."""
    store = rs.InMemoryCircuitStore(make(FakeClock()))
    assert isinstance(store, rs.CircuitStore)
    assert repr(store) == "<InMemoryCircuitStore CLOSED>"


class RecordingStore:
    """A CircuitStore that delegates to the in-memory one and logs every step."""

    def __init__(self, breaker: rs.CircuitBreaker) -> None:
        self.inner = rs.InMemoryCircuitStore(breaker)
        self.breaker = breaker
        self.log: list[str] = []

    def acquire(self) -> rs.CircuitPermit | rs.CircuitRejection:
        permit = self.inner.acquire()
        self.log.append("rejected" if isinstance(permit, rs.CircuitRejection) else "acquired")
        return permit

    def on_success(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        self.log.append("success")
        return self.inner.on_success(permit, duration)

    def on_failure(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        self.log.append("failure")
        return self.inner.on_failure(permit, duration)

    def on_ignored(self, permit: rs.CircuitPermit, /) -> tuple[rs.CircuitTransition, ...]:
        self.log.append("ignored")
        return self.inner.on_ignored(permit)

    def force(self, state: rs.CircuitState, /) -> tuple[rs.CircuitTransition, ...]:
        self.log.append(f"force {state.name}")
        return self.inner.force(state)

    def reset(self) -> tuple[rs.CircuitTransition, ...]:
        self.log.append("reset")
        return self.inner.reset()

    def snapshot(self) -> tuple[rs.CircuitState, float | None]:
        return self.inner.snapshot()


def test_a_custom_store_gets_the_breaker_and_every_step(mode: Runner) -> None:
    """The store factory receives the breaker; every call is one acquire and one outcome."""
    stores: list[RecordingStore] = []

    def factory(breaker: rs.CircuitBreaker) -> RecordingStore:
        stores.append(RecordingStore(breaker))
        return stores[-1]

    breaker = make(FakeClock(), failure_threshold=2, store=factory)
    (store,) = stores
    assert store.breaker is breaker
    fn = breaker(mode.make(body))
    for kind in ("ok", "other", "boom", "boom", "ok"):
        outcome(mode, fn, kind)
    breaker.close()
    breaker.reset()
    assert store.log == [
        "acquired",
        "success",
        "acquired",
        "ignored",
        "acquired",
        "failure",
        "acquired",
        "failure",
        "rejected",
        "force CLOSED",
        "reset",
    ]


def test_circuit_open_error_pickles() -> None:
    """CircuitOpenError survives pickling with its name and retry_after."""
    breaker = make(FakeClock(), failure_threshold=1)
    trip(breaker, 1)
    with pytest.raises(rs.CircuitOpenError) as info:
        breaker.call(body)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.name, copy.retry_after) == ("test", 10.0)
