"""What a store reports when a call ends without an outcome: the breaker announces it too."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import resilience as rs
from resilience.testing import FakeClock, capture_events

from .forms import Boom, Form, Work, cancel_inside, gate_forms, pick

OPENED_ELSEWHERE = rs.CircuitTransition(rs.CircuitState.OPEN, "failures", 30.0)


class Other(Exception):
    """An error the breakers' classifier does not count."""


class ReportingStore:
    """
    A `CircuitStore` (the public protocol) over the in-memory one whose `on_ignored`
    reports a transition, as a shared store does when it learns, releasing a
    permit, that another process opened the circuit.
    """

    def __init__(self, breaker: rs.CircuitBreaker) -> None:
        self.inner = rs.InMemoryCircuitStore(breaker)

    def acquire(self) -> rs.CircuitPermit | rs.CircuitRejection:
        return self.inner.acquire()

    def on_success(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.on_success(permit, duration)

    def on_failure(
        self, permit: rs.CircuitPermit, duration: float | None, /
    ) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.on_failure(permit, duration)

    def on_ignored(self, permit: rs.CircuitPermit, /) -> tuple[rs.CircuitTransition, ...]:
        self.inner.on_ignored(permit)
        return (OPENED_ELSEWHERE,)

    def force(self, state: rs.CircuitState, /) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.force(state)

    def reset(self) -> tuple[rs.CircuitTransition, ...]:
        return self.inner.reset()

    def snapshot(self) -> tuple[rs.CircuitState, float | None]:
        return self.inner.snapshot()


class FastReportingStore(ReportingStore):
    """The same, offering the breaker's fast path (``ready`` and ``settled``)."""

    @property
    def ready(self) -> rs.CircuitPermit | None:
        return self.inner.ready

    @property
    def settled(self) -> rs.CircuitPermit | None:
        return self.inner.settled


STORES = pytest.mark.parametrize("store", [ReportingStore, FastReportingStore], ids=["", "fast"])


def outer_retry() -> rs.Retry:
    """A Retry outside the breaker; the bodies never raise what it retries."""
    return rs.Retry(on=Boom, attempts=2, clock=FakeClock())


FORMS = gate_forms(outer_retry)
forms = functools.partial(pick, FORMS)


def breaker(store: Any, **kwargs: Any) -> rs.CircuitBreaker:
    kwargs.setdefault("on", Boom)
    return rs.CircuitBreaker(name="reports", store=store, clock=FakeClock(), **kwargs)


def announced(events: list[rs.Event]) -> list[tuple[str, float | None]]:
    return [(e.reason, e.retry_after) for e in events if isinstance(e, rs.CircuitOpened)]


@STORES
@pytest.mark.parametrize("form", forms())
def test_an_ignored_error_announces_what_the_store_reports(form: Form, store: Any) -> None:
    """Issue 19: an error the classifier ignores: the transition on_ignored reports is announced."""
    b = breaker(store)
    with capture_events() as events, pytest.raises(Other):
        form.run(b, Work(error=Other()))
    assert announced(events) == [("failures", 30.0)]


@STORES
@pytest.mark.parametrize("form", forms(is_async=False))
def test_an_interrupt_announces_what_the_store_reports(form: Form, store: Any) -> None:
    """Issue 19: a KeyboardInterrupt in the call: what on_ignored reports is announced."""
    b = breaker(store)
    with capture_events() as events, pytest.raises(KeyboardInterrupt):
        form.run(b, Work(error=KeyboardInterrupt()))
    assert announced(events) == [("failures", 30.0)]


@STORES
@pytest.mark.parametrize("form", forms(is_async=True))
def test_a_cancellation_announces_what_the_store_reports(form: Form, store: Any) -> None:
    """Issue 19: a cancelled call: the transition on_ignored reports is announced."""
    b = breaker(store)
    with capture_events() as events:
        cancel_inside(form, b)
    assert announced(events) == [("failures", 30.0)]


@STORES
@pytest.mark.parametrize("form", forms())
def test_a_failing_classifier_announces_what_the_store_reports(form: Form, store: Any) -> None:
    """Issue 19: a classifier whose rule raises: the transition on_ignored reports is announced."""

    def broken(error: BaseException) -> bool:
        raise LookupError("the rule itself failed")

    b = breaker(store, on=rs.Rule(exception=Other, when=broken))
    with capture_events() as events, pytest.raises(LookupError):
        form.run(b, Work(error=Other()))
    assert announced(events) == [("failures", 30.0)]


@STORES
def test_a_stream_closed_early_announces_what_the_store_reports(store: Any) -> None:
    """Issue 19: a stream its consumer stops early: what on_ignored reports is announced."""
    b = breaker(store)

    @b
    def numbers() -> Any:
        yield 1
        yield 2

    with capture_events() as events:
        stream = numbers()
        assert next(stream) == 1
        stream.close()
    assert announced(events) == [("failures", 30.0)]
