"""The CircuitBreaker against a small reference model, driven by hypothesis on the fake clock."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import resilience as rs
from resilience import backoff
from resilience.testing import FakeClock


class Boom(Exception):
    """A failure the breaker counts."""


class Other(Exception):
    """An error the classifier ignores."""


SCHEDULE = (1.0, 2.0, 4.0)
LEASE = 60.0  # the in-memory store's default probe_lease: a probe held longer loses its place

rates = st.sampled_from([0.25, 0.5, 1.0])


@st.composite
def conditions(draw: st.DrawFn) -> rs.FailureRate | rs.SlowCallRate:
    rate = draw(rates)
    if draw(st.booleans()):
        calls = draw(st.integers(1, 5))
        window: dict[str, Any] = {"calls": calls, "minimum_calls": draw(st.integers(1, calls))}
    else:
        window = {
            "seconds": draw(st.sampled_from([1.0, 2.5, 10.0])),
            "minimum_calls": draw(st.integers(1, 4)),
        }
    if draw(st.booleans()):
        return rs.FailureRate(rate, **window)
    return rs.SlowCallRate(rate, slower_than=draw(st.sampled_from([0.0, 0.5, 1.0])), **window)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    probes = draw(st.integers(1, 3))
    return {
        "failure_threshold": draw(st.one_of(st.none(), st.integers(1, 4))),
        "trip": tuple(draw(st.lists(conditions(), max_size=2))),
        "reset_timeout": draw(st.sampled_from([0.0, 1.0, 2.5, backoff.schedule(list(SCHEDULE))])),
        "half_open_max_calls": probes,
        "success_threshold": draw(st.integers(1, probes)),
    }


class Model:
    """What the breaker should do, written as plainly as possible."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.threshold: int | None = config["failure_threshold"]
        self.trip: tuple[rs.FailureRate | rs.SlowCallRate, ...] = config["trip"]
        self.reset_timeout = config["reset_timeout"]
        self.max_probes: int = config["half_open_max_calls"]
        self.success_threshold: int = config["success_threshold"]
        slow = [c.slower_than for c in self.trip if isinstance(c, rs.SlowCallRate)]
        self.slow_probe = min(slow) if slow else None
        self.state = "CLOSED"
        self.until = 0.0
        self.opens = 0
        self.failures = 0
        # Per condition: the recent calls, as (bucket index or None, hit).
        self.windows: list[list[tuple[int | None, bool]]] = [[] for _ in self.trip]
        self.period = 0  # which closed or half-open period a call was admitted in
        self.probes_left = 0
        self.leases: dict[int, float] = {}  # live probes of this half-open period: expiries
        self.probes_made = 0  # numbers the probes
        self.successes = 0
        self.events: list[tuple[str, str]] = []

    # --- reading --------------------------------------------------------

    def visible_state(self, now: float) -> str:
        if self.state == "OPEN" and now >= self.until:
            return "HALF_OPEN"
        return self.state

    def retry_after(self, now: float) -> float | None:
        if self.state == "OPEN" and now < self.until:
            return self.until - now
        return None

    # --- transitions ----------------------------------------------------

    def open(self, now: float, reason: str) -> None:
        self.opens += 1
        if isinstance(self.reset_timeout, float):
            delay = self.reset_timeout
        else:
            delay = SCHEDULE[min(self.opens, len(SCHEDULE)) - 1]
        self.state = "OPEN"
        self.until = now + delay
        self.failures = 0
        self.events.append(("OPEN", reason))

    def close(self, reason: str) -> None:
        self.state = "CLOSED"
        self.period += 1
        self.failures = 0
        self.opens = 0
        self.windows = [[] for _ in self.trip]
        self.events.append(("CLOSED", reason))

    # --- calls -----------------------------------------------------------

    def admit(self, now: float) -> tuple[str, Any]:
        if self.state == "CLOSED":
            return ("closed", self.period)
        if self.state == "OPEN":
            if now < self.until:
                self.events.append(("REJECTED", "circuit_open"))
                return ("rejected", self.until - now)
            self.state = "HALF_OPEN"
            self.period += 1
            self.probes_left = self.max_probes
            self.successes = 0
            self.leases = {}
            self.events.append(("HALF_OPEN", "reset_timeout"))
        if self.state == "HALF_OPEN":
            oldest = next(iter(self.leases.values()), None)
            if not self.probes_left and oldest is not None and oldest <= now:
                # Probes held past their lease give their places back.
                alive = {n: until for n, until in self.leases.items() if until > now}
                self.probes_left += len(self.leases) - len(alive)
                self.leases = alive
            if self.probes_left:
                self.probes_left -= 1
                self.probes_made += 1
                self.leases[self.probes_made] = now + LEASE
                return ("probe", (self.period, self.probes_made))
            self.events.append(("REJECTED", "circuit_half_open"))
            return ("rejected", None)
        self.events.append(("REJECTED", "circuit_isolated"))
        return ("rejected", None)

    def _current(self, ticket: tuple[str, Any], now: float) -> str | None:
        kind, period = ticket
        if kind == "closed":
            return "closed" if period == self.period and self.state == "CLOSED" else None
        period, probe = period
        if period != self.period or self.state != "HALF_OPEN" or probe not in self.leases:
            return None
        if self.leases.pop(probe) <= now:
            self.probes_left += 1  # its lease ran out: its place went back, its outcome is late
            return None
        return "probe"

    def _record(self, failed: bool, duration: float, now: float) -> None:
        for condition, window in zip(self.trip, self.windows, strict=True):
            if isinstance(condition, rs.SlowCallRate):
                hit = duration > condition.slower_than
            else:
                hit = failed
            if condition.calls is not None:
                window.append((None, hit))
                del window[: -condition.calls]
            else:
                assert condition.seconds is not None
                index = math.floor(now / (condition.seconds / 10))
                window[:] = [(i, h) for i, h in window if i is not None and i > index - 10]
                window.append((index, hit))
        if self.threshold is not None and self.failures >= self.threshold:
            self.open(now, "failures")
            return
        for condition, window in zip(self.trip, self.windows, strict=True):
            total = len(window)
            hits = sum(h for _, h in window)
            if total >= condition.minimum_calls and hits >= condition.rate * total:
                reason = "slow_calls" if isinstance(condition, rs.SlowCallRate) else "failure_rate"
                self.open(now, reason)
                return

    def succeeded(self, ticket: tuple[str, Any], duration: float, now: float) -> None:
        current = self._current(ticket, now)
        if current == "closed":
            self.failures = 0
            self._record(False, duration, now)
        elif current == "probe":
            if self.slow_probe is not None and duration > self.slow_probe:
                self.open(now, "half_open_failure")
                return
            self.successes += 1
            if self.successes >= self.success_threshold:
                self.close("probes_succeeded")

    def failed(self, ticket: tuple[str, Any], duration: float, now: float) -> None:
        current = self._current(ticket, now)
        if current == "closed":
            self.failures += 1
            self._record(True, duration, now)
        elif current == "probe":
            self.open(now, "half_open_failure")

    def ignored(self, ticket: tuple[str, Any], now: float) -> None:
        if self._current(ticket, now) == "probe":
            self.probes_left += 1

    # --- manual control ----------------------------------------------------

    def manual(self, op: str, now: float) -> None:
        if op == "open":
            if self.state != "ISOLATED":
                self.open(now, "manual")
        elif op == "close":
            if self.state != "CLOSED":
                self.close("manual")
        elif op == "isolate":
            if self.state != "ISOLATED":
                self.state = "ISOLATED"
                self.failures = 0
                self.events.append(("ISOLATED", "isolated"))
        else:
            was_closed = self.state == "CLOSED"
            self.close("reset")
            if was_closed:
                self.events.pop()


def event_key(event: rs.Event) -> tuple[str, str]:
    if isinstance(event, rs.CircuitOpened):
        return ("ISOLATED" if event.reason == "isolated" else "OPEN", event.reason)
    if isinstance(event, rs.CircuitHalfOpened):
        return ("HALF_OPEN", "reset_timeout")
    if isinstance(event, rs.CircuitClosed):
        return ("CLOSED", event.reason)
    assert isinstance(event, rs.CallRejected)
    return ("REJECTED", event.reason)


class Gate:
    """An awaitable that suspends a coroutine until resumed by hand."""

    def __await__(self) -> Any:
        return (yield self)


async def held_body() -> str:
    value = await Gate()
    if isinstance(value, BaseException):
        raise value
    return str(value)


def sync_body(kind: str) -> str:
    if kind == "boom":
        raise Boom
    if kind == "other":
        raise Other
    if kind == "interrupt":
        raise KeyboardInterrupt
    return kind


def attempt(fn: Any, *args: Any) -> object:
    """Call *fn*; return what it returned, or the exception it raised (whatever its kind)."""
    try:
        return fn(*args)
    except BaseException as exc:
        return exc


class BreakerMachine(RuleBasedStateMachine):
    """Calls, held calls, time and manual control, checked against the model after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.in_flight: list[tuple[Any, tuple[str, Any], float]] = []

    @initialize(config=configs())
    def setup(self, config: dict[str, Any]) -> None:
        rs.set_hooks(())  # the conftest fixture restores the global hooks
        self.events: list[rs.Event] = []
        self.breaker = rs.CircuitBreaker(
            on=Boom, name="model", clock=self.clock, hooks=[self.events.append], **config
        )
        self.model = Model(config)
        self.held = self.breaker(held_body)
        self.now_fn = self.breaker(sync_body)

    @rule(kind=st.sampled_from(["ok", "boom", "other", "interrupt"]))
    def call_now(self, kind: str) -> None:
        now = self.clock.now()
        ticket = self.model.admit(now)
        outcome = attempt(self.now_fn, kind)
        self.settle(ticket, outcome, now, 0.0)

    @precondition(lambda self: len(self.in_flight) < 6)
    @rule()
    def start_held_call(self) -> None:
        now = self.clock.now()
        ticket = self.model.admit(now)
        coro = self.held()
        outcome = attempt(coro.send, None)
        if isinstance(outcome, Gate):
            assert ticket[0] != "rejected"
            self.in_flight.append((coro, ticket, now))
        else:
            self.settle(ticket, outcome, now, 0.0)

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), kind=st.sampled_from(["ok", "boom", "other", "cancel"]))
    def finish_held_call(self, data: st.DataObject, kind: str) -> None:
        index = data.draw(st.integers(0, len(self.in_flight) - 1))
        coro, ticket, started = self.in_flight.pop(index)
        now = self.clock.now()
        if kind == "cancel":
            outcome = attempt(coro.throw, asyncio.CancelledError())
        else:
            value = {"ok": "ok", "boom": Boom(), "other": Other()}[kind]
            outcome = attempt(coro.send, value)
        if isinstance(outcome, StopIteration):
            outcome = outcome.value
        self.settle(ticket, outcome, now, now - started)

    def settle(self, ticket: tuple[str, Any], outcome: object, now: float, took: float) -> None:
        """Tell the model how a call ended, after checking the breaker admitted it alike."""
        if isinstance(outcome, rs.CircuitOpenError):
            assert ticket == ("rejected", outcome.retry_after)
            return
        assert ticket[0] != "rejected"
        if isinstance(outcome, Boom):
            self.model.failed(ticket, took, now)
        elif isinstance(outcome, BaseException):
            assert isinstance(outcome, Other | KeyboardInterrupt | asyncio.CancelledError)
            self.model.ignored(ticket, now)
        else:
            assert outcome in ("ok", "other", "boom", "interrupt")
            self.model.succeeded(ticket, took, now)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(op=st.sampled_from(["open", "close", "isolate", "reset"]))
    def manual(self, op: str) -> None:
        self.model.manual(op, self.clock.now())
        getattr(self.breaker, op)()

    @invariant()
    def agrees_with_the_model(self) -> None:
        now = self.clock.now()
        assert self.breaker.state.name == self.model.visible_state(now)
        assert self.breaker.retry_after == self.model.retry_after(now)
        assert [event_key(e) for e in self.events] == self.model.events

    def teardown(self) -> None:
        for coro, _, _ in self.in_flight:
            coro.close()


def test_breaker_agrees_with_the_reference_model() -> None:
    """Random sequences of calls, held calls, time and manual control match the model."""
    run_state_machine_as_test(
        BreakerMachine,
        settings=settings(max_examples=500, stateful_step_count=50, deadline=None),
    )
