"""
The Bulkhead (`rs.Bulkhead`): a concurrency limit with a first-come, first-served queue.

Real threads and real event loops throughout. The only real waiting is a
``max_wait`` or a deadline of at most 0.05 s; every other wait is for an
event, bounded by ``WAIT`` so that a hang fails the test instead of hiding.
The adaptive limit is driven by `Recording`, a hand-written `Limit`, on a
`FakeClock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import math
import pickle
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterator, Sequence
from typing import Any

import anyio
import anyio.to_thread
import pytest
import trio
import trio.from_thread
import trio.lowlevel

import resilience as rs
from resilience.limits import Limit
from resilience.testing import FakeClock, capture_events

from .forms import (
    ASYNCIO_WORLD,
    SYNC_ASYNC,
    Background,
    Blocker,
    Boom,
    Driver,
    Form,
    Tasks,
    Work,
    backend_of,
    bounded,
    cancel_task,
    checkpoint,
    crowd,
    eventually,
    gate_forms,
    pick,
    run_async,
    run_call,
    until,
)
from .threads import WAIT, join_all


class Flaky(Exception):
    """What the Retry of the ``compose`` forms retries (the bodies never raise it)."""


class Overloaded(Exception):
    """What the bulkheads of these tests count as an overload (their ``overload=``)."""


class Status(Exception):
    """An HTTP status error, read by the classifiers through ``status_code``."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Response:
    """An HTTP response that did not raise, read by the classifiers through ``status_code``."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def bulkhead(
    max_concurrent: int | Limit = 1,
    *,
    max_queue: int = 0,
    max_wait: float | datetime.timedelta | None = None,
    name: str | None = None,
    overload: object = Overloaded,
    **more: Any,
) -> rs.Bulkhead:
    """A Bulkhead with an explicit *overload* (the default one lives in `resilience.limits`)."""
    return rs.Bulkhead(
        max_concurrent=max_concurrent,
        max_queue=max_queue,
        max_wait=max_wait,
        name=name,
        overload=overload,
        **more,
    )


class Recording:
    """
    A `Limit` written by hand: it records every `update` and moves as *then* says.

    Each update pops the next value of *then* (if any is left) as the new limit.
    """

    def __init__(self, limit: int, then: Sequence[int] = ()) -> None:
        self._limit = limit
        self.then = list(then)
        self.updates: list[tuple[float, int, bool]] = []

    def __repr__(self) -> str:
        return f"Recording(limit={self._limit})"

    @property
    def limit(self) -> int:
        return self._limit

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        self.updates.append((rtt, inflight, dropped))
        if self.then:
            self._limit = self.then.pop(0)
        return self._limit


# --- the forms --------------------------------------------------------------------------


def flaky_retry() -> rs.Retry:
    """A Retry to put outside the bulkhead; the bodies never raise what it retries."""
    return rs.Retry(on=Flaky, attempts=2, clock=FakeClock())


FORMS = gate_forms(flaky_retry)
forms = functools.partial(pick, FORMS)


def state(b: rs.Bulkhead) -> tuple[int, int]:
    """``(running, waiting)``."""
    return b.running, b.waiting


# --- 1. configuration --------------------------------------------------------------------


def test_the_defaults() -> None:
    """No queue, no max_wait, no name; the limit is max_concurrent; nothing runs or waits."""
    b = rs.Bulkhead(max_concurrent=3, overload=Overloaded)
    assert (b.max_concurrent, b.max_queue, b.max_wait, b.name) == (3, 0, None, None)
    assert (b.limit, b.running, b.waiting) == (3, 0, 0)
    assert isinstance(b, rs.Policy)


def test_the_default_overload_is_the_limits_overload_classifier() -> None:
    """
    Without overload=, an adaptive limit counts 429, 503 and timeouts as drops, nothing else.

    Needs `resilience.limits.overload` (written alongside the Bulkhead).
    """
    limit = Recording(5)
    b = rs.Bulkhead(max_concurrent=limit)
    # Looked up by name so that this module type-checks before `overload` lands.
    assert b.overload is vars(rs.limits)["overload"]
    assert rs.Bulkhead(max_concurrent=2).overload is b.overload
    outcomes: list[Exception] = [
        Status(429),
        Status(503),
        rs.TimeoutExceededError(1.0),
        TimeoutError("read timed out"),
        Status(500),
        Status(404),
        ConnectionError("refused"),
        ValueError("not an overload"),
    ]
    for error in outcomes:
        with contextlib.suppress(type(error)):
            b.call(Work(error=error))
    assert b.call(lambda: Response(429)).status_code == 429  # a 429 returned, not raised
    assert b.call(lambda: Response(200)).status_code == 200
    drops = [dropped for _, _, dropped in limit.updates]
    assert drops == [True, True, True, True, False, False, False, False, True, False]
    assert state(b) == (0, 0)


def test_max_wait_takes_a_timedelta_and_max_concurrent_a_limit() -> None:
    """max_wait=timedelta(...) becomes seconds; an adaptive Limit is kept as max_concurrent."""
    limit = Recording(4)
    b = bulkhead(limit, max_queue=2, max_wait=datetime.timedelta(milliseconds=250), name="x")
    assert (b.max_concurrent, b.max_queue, b.max_wait, b.name) == (limit, 2, 0.25, "x")
    assert b.limit == 4


@pytest.mark.parametrize(
    ("parameter", "value", "error"),
    [
        ("max_concurrent", 0, ValueError),
        ("max_concurrent", -3, ValueError),
        ("max_concurrent", True, TypeError),
        ("max_concurrent", False, TypeError),
        ("max_concurrent", 2.0, TypeError),
        ("max_concurrent", "3", TypeError),
        ("max_concurrent", None, TypeError),
        ("max_concurrent", Recording, TypeError),  # the class, not a limit
        ("max_queue", -1, ValueError),
        ("max_queue", True, TypeError),
        ("max_queue", 1.5, TypeError),
        ("max_queue", None, TypeError),
        ("max_wait", math.nan, ValueError),
        ("max_wait", -0.5, ValueError),
        ("max_wait", True, TypeError),
        ("max_wait", "1", TypeError),
        ("name", 3, TypeError),
        ("clock", object(), TypeError),
        ("overload", 3, TypeError),
    ],
)
def test_bad_configuration_fails_at_construction_naming_the_parameter_and_value(
    parameter: str, value: object, error: type[Exception]
) -> None:
    """The message starts with the parameter as the caller spells it and shows the value."""
    arguments: dict[str, Any] = {"max_concurrent": 2, "overload": Overloaded, parameter: value}
    with pytest.raises(error) as info:
        rs.Bulkhead(**arguments)
    message = str(info.value)
    assert message.startswith(parameter), message
    assert repr(value) in message, message


def test_max_concurrent_is_required() -> None:
    """There is no default limit."""
    with pytest.raises(TypeError, match="max_concurrent"):
        rs.Bulkhead(overload=Overloaded)  # type: ignore[call-arg]


# --- 2. a call holds a slot, and always gives it back ------------------------------------


@pytest.mark.parametrize("form", forms())
def test_a_call_holds_a_slot_while_it_runs_and_gives_it_back(form: Form) -> None:
    """Inside the call one slot is taken; after it, none."""
    b = bulkhead(2)
    work = Work(probe=lambda: state(b))
    assert form.run(b, work) == "done"
    assert work.seen == [(1, 0)]
    assert state(b) == (0, 0)


@pytest.mark.parametrize("form", forms())
def test_a_full_bulkhead_without_a_queue_refuses_at_once_and_runs_nothing(form: Form) -> None:
    """max_queue=0: BulkheadFullError at once, with the limit and nobody waiting."""
    b = bulkhead(1, name="llm")
    work = Work()
    with b:
        with pytest.raises(rs.BulkheadFullError) as info:
            bounded(lambda: form.run(b, work))
        assert state(b) == (1, 0)
    assert work.seen == []
    error = info.value
    assert (error.name, error.limit, error.waiting, error.waited) == ("llm", 1, 0, None)
    assert error.retry_after is None
    assert state(b) == (0, 0)
    assert form.run(b, work) == "done"


@pytest.mark.parametrize("form", forms())
def test_an_exception_gives_the_slot_back_and_reaches_the_caller_unchanged(form: Form) -> None:
    """A failing call frees its slot; the caller gets the very exception."""
    b = bulkhead(1)
    error = Boom("inside")
    work = Work(probe=lambda: state(b), error=error)
    with pytest.raises(Boom) as info:
        form.run(b, work)
    assert info.value is error
    assert work.seen == [(1, 0)]
    assert state(b) == (0, 0)
    with b:  # the only slot is free again
        assert state(b) == (1, 0)


@pytest.mark.parametrize("form", forms(is_async=False))
def test_a_keyboard_interrupt_inside_a_call_gives_the_slot_back(form: Form) -> None:
    """KeyboardInterrupt passes through, and the slot is free after it."""
    b = bulkhead(1)
    work = Work(probe=lambda: state(b), error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        form.run(b, work)
    assert work.seen == [(1, 0)]
    assert state(b) == (0, 0)
    assert form.run(b, Work()) == "done"


@pytest.mark.parametrize("form", forms(is_async=True))
def test_a_task_cancelled_inside_its_call_gives_the_slot_back(form: Form) -> None:
    """A task cancelled while the call runs: the cancellation reaches it, the slot is free."""
    b = bulkhead(1)
    asyn = form.asyn
    assert asyn is not None
    seen: list[tuple[int, int]] = []
    blocker = Blocker(lambda: seen.append(state(b)))
    cancel_task(lambda: asyn(b, blocker), lambda: blocker.started, form.backend)
    assert seen == [(1, 0)]
    assert state(b) == (0, 0)


def test_a_stream_holds_its_slot_until_it_ends_or_is_closed() -> None:
    """Admitted at its first item, held while suspended, freed by the end, close() or a break."""
    b = bulkhead(1)

    @b
    def numbers() -> Generator[int, None, None]:
        yield 1
        yield 2

    stream = numbers()
    assert b.running == 0  # not admitted before the first item is asked for
    assert next(stream) == 1
    assert b.running == 1
    with pytest.raises(rs.BulkheadFullError):
        b.call(Work())
    stream.close()
    assert state(b) == (0, 0)

    for number in numbers():
        assert (number, b.running) == (1, 1)
        break
    assert state(b) == (0, 0)

    stream = numbers()
    assert next(stream) == 1
    del stream  # dropped half-way: its finalizer closes it
    assert state(b) == (0, 0)

    assert list(numbers()) == [1, 2]
    assert state(b) == (0, 0)


def test_a_stream_that_fails_half_way_gives_its_slot_back() -> None:
    """An exception after the first item frees the slot and reaches the consumer."""
    b = bulkhead(1)

    @b
    def numbers() -> Iterator[int]:
        yield 1
        raise Boom("half way")

    stream = numbers()
    assert next(stream) == 1
    with pytest.raises(Boom, match="half way"):
        next(stream)
    assert state(b) == (0, 0)


def test_an_async_stream_holds_its_slot_until_it_ends_or_is_closed(backend: str) -> None:
    """aclose(), a break inside aclosing, a failure and the end all free an async stream's slot."""
    b = bulkhead(1)

    @b
    async def numbers(fail: bool = False) -> AsyncGenerator[int, None]:
        yield 1
        if fail:
            raise Boom("half way")
        yield 2

    async def main() -> list[int]:
        seen: list[int] = []
        stream = numbers()
        seen.append(b.running)
        assert await stream.__anext__() == 1
        seen.append(b.running)
        with pytest.raises(rs.BulkheadFullError):
            await b.acall(Work().run_async)
        await stream.aclose()
        seen.append(b.running)
        async with contextlib.aclosing(numbers()) as agen:
            async for _ in agen:
                seen.append(b.running)
                break
        seen.append(b.running)
        with pytest.raises(Boom, match="half way"):
            async for _ in numbers(fail=True):
                seen.append(b.running)
        seen.append(b.running)
        assert [item async for item in numbers()] == [1, 2]
        seen.append(b.running)
        return seen

    assert run_async(main, backend) == [0, 1, 0, 1, 0, 1, 0, 0]
    assert state(b) == (0, 0)


def test_methods_and_classmethods_share_the_bulkheads_slots() -> None:
    """One bulkhead on an instance method and on classmethods: one set of slots."""
    b = bulkhead(1)

    class Service:
        @b
        def method(self) -> tuple[object, tuple[int, int]]:
            return self, state(b)

        @b
        @classmethod
        def above(cls) -> tuple[object, tuple[int, int]]:
            return cls, state(b)

        @classmethod
        @b
        def below(cls) -> tuple[object, tuple[int, int]]:
            return cls, state(b)

    service = Service()
    assert service.method() == (service, (1, 0))
    assert Service.above() == (Service, (1, 0))
    assert service.below() == (Service, (1, 0))
    with b:
        for call in (service.method, Service.above, Service.below):
            with pytest.raises(rs.BulkheadFullError):
                call()
    assert state(b) == (0, 0)


# --- 3. the queue: first come, first served ------------------------------------------------


@pytest.mark.parametrize("form", forms())
def test_a_queued_call_of_every_form_runs_when_the_slot_frees(form: Form) -> None:
    """Every shape and block waits in the queue (a thread on its waiter, a task on its loop)."""
    b = bulkhead(1, max_queue=1)
    work = Work(probe=lambda: state(b))
    with b:
        call = Background(lambda: form.run(b, work))
        eventually(lambda: b.waiting == 1)
        assert (work.seen, b.running) == ([], 1)
    assert call.result() == "done"
    assert work.seen == [(1, 0)]
    assert state(b) == (0, 0)


def test_waiting_threads_run_first_come_first_served() -> None:
    """Five threads queue one after the other behind a held slot; they run in that order."""
    b = bulkhead(1, max_queue=5)
    order: list[int] = []

    def caller(number: int) -> Callable[[], None]:
        return lambda: b.call(order.append, number)

    with b:
        callers = []
        for number in range(5):
            callers.append(Background(caller(number)))
            eventually(lambda: b.waiting == len(callers))
        assert order == []
    for call in callers:
        call.result()
    assert order == [0, 1, 2, 3, 4]
    assert state(b) == (0, 0)


# The run order of tasks woken in one step (two slots freed at once wake two) is
# asyncio's; under trio, test_aio checks the queue's order one slot at a time.
@pytest.mark.parametrize("backend", ASYNCIO_WORLD)
def test_waiting_tasks_run_first_come_first_served(backend: str) -> None:
    """Tasks queue in the order they arrive and run in that order, each in the freed slot."""
    b = bulkhead(2, max_queue=10)
    order: list[int] = []

    async def main() -> None:
        go = anyio.Event()

        async def hold() -> None:
            await go.wait()

        async def record(number: int) -> None:
            order.append(number)
            await checkpoint()

        async with Tasks() as tasks:
            for _ in range(2):
                await tasks.start(b.acall, hold)
            await until(lambda: b.running == 2)
            queued: list[int] = []
            for number in range(10):
                queued.append(number)
                await tasks.start(b.acall, record, number)
                await until(lambda: b.waiting == len(queued))
            go.set()

    run_async(main, backend)
    assert order == list(range(10))
    assert state(b) == (0, 0)


def test_a_freed_slot_goes_to_the_first_waiter_not_to_a_newcomer(backend: str) -> None:
    """
    Handoff: the slot passes to the waiter at once; a newcomer before it resumes queues behind.

    The newcomer's task runs before the woken waiter's (its step was scheduled first): a
    bulkhead that merely freed the slot would let it in ahead of the waiter.
    """
    b = bulkhead(1, max_queue=1)
    order: list[str] = []

    async def record(name: str) -> None:
        order.append(name)

    async def main() -> None:
        async with Tasks() as tasks:
            async with b:
                await tasks.start(b.acall, record, "waiter")
                await until(lambda: b.waiting == 1)
            # Handed over: still one running (the waiter, not yet resumed), nobody waiting.
            assert state(b) == (1, 0)
            await tasks.start(b.acall, record, "newcomer")

    run_async(main, backend)
    assert order == ["waiter", "newcomer"]
    assert state(b) == (0, 0)


def test_a_freed_slot_goes_to_the_waiting_thread_not_to_a_newcomer() -> None:
    """The same with threads: the release hands the slot over; a newcomer then has to queue."""
    b = bulkhead(1, max_queue=1)
    order: list[str] = []
    go = threading.Event()

    def first() -> None:
        order.append("waiter")
        assert go.wait(WAIT)

    with b:
        waiter = Background(lambda: b.call(first))
        eventually(lambda: b.waiting == 1)
    # No moment with the slot free: it belongs to the waiter from the release on.
    assert state(b) == (1, 0)
    newcomer = Background(lambda: b.call(order.append, "newcomer"))
    eventually(lambda: b.waiting == 1)
    go.set()
    waiter.result()
    newcomer.result()
    assert order == ["waiter", "newcomer"]
    assert state(b) == (0, 0)


def test_a_newcomer_queues_behind_a_waiter() -> None:
    """While someone waits, a new arrival waits too (behind it), even as slots free up."""
    b = bulkhead(1, max_queue=2)
    order: list[str] = []
    with b:
        first = Background(lambda: b.call(order.append, "first"))
        eventually(lambda: b.waiting == 1)
        second = Background(lambda: b.call(order.append, "second"))
        eventually(lambda: b.waiting == 2)
        assert (order, b.running) == ([], 1)
    first.result()
    second.result()
    assert order == ["first", "second"]
    assert state(b) == (0, 0)


@SYNC_ASYNC
def test_a_full_queue_refuses_at_once_with_the_limit_and_the_waiting(is_async: Driver) -> None:
    """Two running, one waiting, max_queue=1: the next caller is refused, the waiter still runs."""
    b = bulkhead(2, max_queue=1, name="llm")
    queued, refused = Work(), Work()
    with capture_events() as events:
        with b, b:
            waiter = Background(lambda: run_call(b, queued, is_async))
            eventually(lambda: b.waiting == 1)
            with pytest.raises(rs.BulkheadFullError) as info:
                bounded(lambda: run_call(b, refused, is_async))
            assert state(b) == (2, 1)
        assert waiter.result() == "done"
    error = info.value
    assert (error.name, error.limit, error.waiting, error.waited) == ("llm", 2, 1, None)
    assert str(error) == "bulkhead 'llm' is full: all 2 slots taken, 1 waiting"
    assert (refused.seen, queued.seen) == ([], [None])
    assert [type(event) for event in events] == [rs.CallRejected]
    assert state(b) == (0, 0)


def test_bulkhead_full_error_is_a_rejection_and_pickles_with_its_fields() -> None:
    """A RejectedError (nothing ran); its fields, notes and message survive pickling."""
    b = bulkhead(1)
    with b, pytest.raises(rs.BulkheadFullError) as info:
        b.call(Work())
    error = info.value
    assert isinstance(error, rs.RejectedError)
    assert isinstance(error, rs.ResilienceError)
    assert not issubclass(rs.BulkheadFullError, TimeoutError)
    assert (error.name, error.limit, error.waiting, error.waited) == ("<unnamed>", 1, 0, None)
    assert error.retry_after is None
    assert str(error) == "bulkhead '<unnamed>' is full: all 1 slot taken, 0 waiting"

    waited = rs.BulkheadFullError("llm", 4, 2, 0.5)
    waited.add_note("a note")
    for original in (error, waited):
        copy = pickle.loads(pickle.dumps(original))
        assert type(copy) is rs.BulkheadFullError
        fields = ("name", "limit", "waiting", "waited", "retry_after")
        assert [getattr(copy, f) for f in fields] == [getattr(original, f) for f in fields]
        assert str(copy) == str(original)
        assert getattr(copy, "__notes__", None) == getattr(original, "__notes__", None)
    assert (
        str(waited) == "bulkhead 'llm' is full: no slot freed up within 0.5 s (all 4 slots taken)"
    )


# --- 4. max_wait and the deadline ----------------------------------------------------------


@SYNC_ASYNC
def test_a_waiter_not_served_within_max_wait_is_refused_and_leaves_the_queue(
    is_async: Driver,
) -> None:
    """max_wait 0.01 s: BulkheadFullError with waited=0.01; the queue empties; no slot leaks."""
    b = bulkhead(2, max_queue=1, max_wait=0.01, name="w")
    work = Work()
    with capture_events() as events, b, b:
        with pytest.raises(rs.BulkheadFullError) as info:
            bounded(lambda: run_call(b, work, is_async))
        assert (state(b), work.seen) == ((2, 0), [])
    error = info.value
    assert (error.name, error.limit, error.waiting, error.waited) == ("w", 2, 0, 0.01)
    assert str(error) == "bulkhead 'w' is full: no slot freed up within 0.01 s (all 2 slots taken)"
    assert events == [
        rs.CallRejected(
            name="w",
            target=work.run_async.__qualname__ if is_async else "Work",
            reason="bulkhead_full",
        )
    ]
    assert state(b) == (0, 0)
    with b, b:  # both slots are free again
        assert state(b) == (2, 0)
    assert run_call(b, work, is_async) == "done"


@SYNC_ASYNC
def test_max_wait_zero_refuses_a_caller_that_finds_no_slot(is_async: Driver) -> None:
    """max_wait=0 with a queue: a caller that would wait is refused at once, waited=0."""
    b = bulkhead(1, max_queue=3, max_wait=0)
    work = Work()
    with b, pytest.raises(rs.BulkheadFullError) as info:
        bounded(lambda: run_call(b, work, is_async))
    assert (info.value.waited, info.value.waiting, work.seen) == (0.0, 0, [])
    assert state(b) == (0, 0)
    assert run_call(b, work, is_async) == "done"


@pytest.mark.parametrize("max_wait", [None, 3600.0], ids=["no-max-wait", "long-max-wait"])
def test_a_sync_wait_ends_at_the_deadline_of_a_timeout_block(max_wait: float | None) -> None:
    """Inside ``with rs.Timeout(0.02)`` the wait ends at the deadline: refused, queue left."""
    b = bulkhead(1, max_queue=1, max_wait=max_wait)
    work = Work()

    def attempt() -> str:
        with rs.Timeout(0.02):
            return b.call(work)

    with b:
        with pytest.raises(rs.BulkheadFullError) as info:
            bounded(attempt)
        assert (state(b), work.seen) == ((1, 0), [])
    assert info.value.limit == 1
    assert state(b) == (0, 0)
    assert b.call(work) == "done"


def test_a_max_wait_longer_than_any_clock_holds_waits_until_served() -> None:
    """#18.4: max_wait=1e10 (past what lock timeouts hold) waits for a slot, no OverflowError."""
    b = bulkhead(1, max_queue=1, max_wait=1e10)
    work = Work()
    with b:
        queued = Background(lambda: b.call(work))
        give_up = time.monotonic() + WAIT
        while state(b) != (1, 1) and not queued.done:
            assert time.monotonic() < give_up, "the call never queued"
            time.sleep(0.001)  # waiting for another thread to queue: not a backoff under test
    assert queued.result() == "done"


def test_a_wait_ends_at_the_deadline_of_a_timeout_around_the_bulkhead() -> None:
    """compose(Timeout(0.02), bulkhead): the queue wait is bounded by the Timeout's deadline."""
    b = bulkhead(1, max_queue=1)
    work = Work()
    pipeline = rs.compose(rs.Timeout(0.02), b)
    with b:
        with pytest.raises(rs.BulkheadFullError):
            bounded(lambda: pipeline.call(work))
        assert (state(b), work.seen) == ((1, 0), [])
    assert state(b) == (0, 0)
    assert pipeline.call(work) == "done"


@pytest.mark.parametrize("max_wait", [None, 3600.0], ids=["no-max-wait", "long-max-wait"])
def test_a_caller_refused_at_the_deadline_reports_the_time_it_waited(
    max_wait: float | None,
) -> None:
    """
    Its `waited` is the wait it got (the deadline was 0.02 s away), not max_wait nor None.

    `BulkheadFullError.waited`: "Seconds this caller waited in the queue, or None if it did
    not". This caller did wait, and at most until the deadline.
    """
    b = bulkhead(1, max_queue=1, max_wait=max_wait)

    def attempt() -> str:
        with rs.Timeout(0.02):
            return b.call(Work())

    with b, pytest.raises(rs.BulkheadFullError) as info:
        bounded(attempt)
    waited = info.value.waited
    assert waited is not None, str(info.value)
    assert 0 < waited <= 1.0, str(info.value)
    assert "3600" not in str(info.value)


def test_an_async_wait_ends_at_a_cooperative_deadline(backend: str) -> None:
    """``with rs.Timeout(0.02)`` around an awaited call: the task's wait ends there, refused."""
    b = bulkhead(1, max_queue=1)
    work = Work()

    async def main() -> None:
        with b:
            with pytest.raises(rs.BulkheadFullError), rs.Timeout(0.02):
                await b.acall(work.run_async)
            assert state(b) == (1, 0)

    run_async(main, backend)
    assert (state(b), work.seen) == ((0, 0), [])


def test_an_async_wait_inside_an_async_timeout_ends_at_its_deadline_and_leaves_the_queue(
    backend: str,
) -> None:
    """
    ``async with rs.Timeout(0.02)``: the Timeout cancels at the deadline, the wait ends then.

    Either the wait expires first (BulkheadFullError) or the Timeout's cancellation does
    (TimeoutExceededError); both leave the queue and leak no slot.
    """
    b = bulkhead(1, max_queue=1)
    work = Work()

    async def main() -> BaseException:
        with b:
            try:
                async with rs.Timeout(0.02):
                    await b.acall(work.run_async)
            except (rs.BulkheadFullError, rs.TimeoutExceededError) as exc:
                assert state(b) == (1, 0)
                return exc
        raise AssertionError("the call ran although its slot was never free")

    run_async(main, backend)
    assert (state(b), work.seen) == ((0, 0), [])
    assert run_call(b, work, True) == "done"


@SYNC_ASYNC
def test_a_deadline_already_passed_refuses_without_waiting(is_async: Driver) -> None:
    """No max_wait, but the deadline has passed: refused at once (a wait would never end)."""
    clock = FakeClock()
    b = bulkhead(1, max_queue=1)
    work = Work()

    def attempt() -> str:
        with rs.Timeout(1.0, clock=clock):
            clock.advance(1.0)
            return run_call(b, work, is_async)

    with b:
        with pytest.raises(rs.BulkheadFullError):
            bounded(attempt)
        assert state(b) == (1, 0)
    assert (state(b), work.seen) == ((0, 0), [])


# --- 5. cancellation while waiting ----------------------------------------------------------


def test_cancelled_waiters_leave_the_queue_and_leak_no_slot(backend: str) -> None:
    """Three of five waiters cancelled: they leave at once; the other two run (every backend)."""
    b = bulkhead(2, max_queue=10)
    done: list[int] = []
    cancelled: list[int] = []

    async def main() -> None:
        release = anyio.Event()
        scopes: dict[int, anyio.CancelScope] = {}

        async def hold(number: int) -> None:
            await release.wait()
            done.append(number)

        async def quick(number: int) -> None:
            done.append(number)

        async def waiter(number: int) -> None:
            with anyio.CancelScope() as scopes[number]:
                await b.acall(quick, number)
            if scopes[number].cancelled_caught:
                cancelled.append(number)

        async with anyio.create_task_group() as group:  # a nursery, under trio
            for n in range(2):
                group.start_soon(b.acall, hold, n)
            await until(lambda: b.running == 2)
            for n in range(10, 15):
                group.start_soon(waiter, n)
            await until(lambda: b.waiting == 5)
            for n in (10, 12, 14):
                scopes[n].cancel()
            await until(lambda: len(cancelled) == 3)
            assert state(b) == (2, 2)
            release.set()
        assert state(b) == (0, 0)
        async with b, b:  # both slots free, nobody queued
            assert state(b) == (2, 0)

    run_async(main, backend)
    assert sorted(done) == [0, 1, 11, 13]
    assert sorted(cancelled) == [10, 12, 14]
    assert state(b) == (0, 0)


def test_a_waiter_cancelled_after_its_wake_hands_the_slot_on(backend: str) -> None:
    """Woken, then cancelled before it resumes: the slot it was handed goes to the next one."""
    b = bulkhead(1, max_queue=2)
    done: list[str] = []

    async def quick(name: str) -> None:
        done.append(name)

    async def main() -> None:
        scope = anyio.CancelScope()

        async def first() -> None:
            with scope:
                await b.acall(quick, "first")

        async with anyio.create_task_group() as group:  # a nursery, under trio
            async with b:
                group.start_soon(first)
                await until(lambda: b.waiting == 1)
                group.start_soon(b.acall, quick, "second")
                await until(lambda: b.waiting == 2)
            assert state(b) == (1, 1)  # the slot was handed to "first"
            scope.cancel()  # before "first" could resume

    run_async(main, backend)
    assert done == ["second"]
    assert state(b) == (0, 0)


def test_a_wake_racing_a_cancellation_never_leaks_a_slot(backend: str) -> None:
    """300 rounds: a waiter cancelled just before, at, or just after its wake; no leak, ever."""
    b = bulkhead(1, max_queue=2)
    ran: list[str] = []

    async def record(name: str) -> None:
        ran.append(name)

    async def main() -> int:
        cancelled = 0
        for round_ in range(300):
            async with Tasks() as tasks:
                async with b:
                    first = await tasks.start(b.acall, record, "first")
                    second = await tasks.start(b.acall, record, "second")
                    await until(lambda: b.waiting == 2)
                    if round_ % 3 == 0:
                        first.cancel()  # cancelled, then woken by the release
                if round_ % 3 == 1:
                    first.cancel()  # woken, then cancelled before it resumes
                elif round_ % 3 == 2:
                    for _ in range(round_ % 5):
                        await checkpoint()
                    first.cancel()  # woken, maybe resumed already
            assert await second.result() is None
            cancelled += first.cancelled
            assert state(b) == (0, 0), round_
        return cancelled

    cancelled = run_async(main, backend)
    assert ran.count("second") == 300
    assert ran.count("first") + cancelled == 300
    assert cancelled >= 200  # the first two kinds of round always cancel before it runs
    assert state(b) == (0, 0)


def test_a_release_racing_a_waiters_max_wait_never_leaks_a_slot() -> None:
    """200 rounds, max_wait 1 ms: the release and the expiry race; either way no leak."""
    b = bulkhead(1, max_queue=1, max_wait=0.001)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            b.call(outcomes.append, "ran")
        except rs.BulkheadFullError:
            outcomes.append("refused")

    def queued_or_done(caller: Background[None]) -> Callable[[], bool]:
        return lambda: b.waiting == 1 or caller.done

    for round_ in range(200):
        with b:
            caller = Background(attempt)
            eventually(queued_or_done(caller))
        caller.result()
        assert state(b) == (0, 0), round_
    assert len(outcomes) == 200
    assert set(outcomes) <= {"ran", "refused"}


class RunInThread:
    """
    A run of *backend* in a thread of its own, that other threads hand work to.

    ``run(fn)`` awaits ``fn()`` in the run and returns its result; ``soon(fn)``
    has the run call ``fn()`` soon, without waiting. Tasks started with
    ``run(lambda: run.tasks.start(...))`` live in the run's `Tasks`.
    """

    def __init__(self, backend: str) -> None:
        self.tasks = Tasks()
        self._ready = threading.Event()
        self._stop: anyio.Event | None = None
        self.run: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any]
        self.soon: Callable[[Callable[[], object]], object]
        self.thread = Background(lambda: run_async(self._serve, backend))

    async def _serve(self) -> None:
        self._stop = anyio.Event()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            token = trio.lowlevel.current_trio_token()
            self.run = lambda fn: trio.from_thread.run(fn, trio_token=token)
            self.soon = lambda fn: token.run_sync_soon(fn)
        else:
            self.run = lambda fn: asyncio.run_coroutine_threadsafe(fn(), loop).result(WAIT)
            self.soon = lambda fn: loop.call_soon_threadsafe(fn)
        async with self.tasks:
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> RunInThread:
        assert self._ready.wait(WAIT), "the run did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._stop is not None
        self.soon(self._stop.set)
        self.thread.result()


def test_a_cancellation_in_one_thread_racing_a_release_in_another_never_leaks(
    backend: str,
) -> None:
    """A task waits in a run in another thread; its cancel and the release race; no leak."""
    b = bulkhead(1, max_queue=1)
    work = Work()
    outcomes: list[str] = []
    with RunInThread(backend) as run:
        for round_ in range(200):
            with b:
                task = run.run(lambda: run.tasks.start(b.acall, work.run_async))
                eventually(lambda: b.waiting == 1)
                if round_ % 2:
                    run.soon(task.cancel)
            if not round_ % 2:
                run.soon(task.cancel)
            run.run(task.wait)
            outcomes.append("cancelled" if task.cancelled else run.run(task.result))
            assert state(b) == (0, 0), round_
    assert set(outcomes) <= {"done", "cancelled"}
    assert len(work.seen) == outcomes.count("done")


# --- 6. many callers, threads and tasks -------------------------------------------------------


# The run order of tasks woken in one step (up to ten) is asyncio's; under trio,
# test_aio checks the queue's order one slot at a time.
@pytest.mark.parametrize("backend", ASYNCIO_WORLD)
def test_a_thousand_tasks_through_a_limit_of_ten(backend: str) -> None:
    """1000 tasks, limit 10, max_queue 1000: never more than 10 run, all finish, in FIFO order."""
    b = bulkhead(10, max_queue=1000)
    running = peak = 0
    started: list[int] = []

    async def work(number: int) -> int:
        nonlocal running, peak
        started.append(number)
        running += 1
        peak = max(peak, running, b.running)
        for _ in range(3):
            await checkpoint()
        running -= 1
        return number

    async def main() -> list[int]:
        async with Tasks() as tasks:
            started_tasks = [await tasks.start(b.acall, work, n) for n in range(1000)]
        return [await task.result() for task in started_tasks]

    assert run_async(main, backend) == list(range(1000))
    assert peak == 10
    assert started == list(range(1000))
    assert state(b) == (0, 0)


def test_a_release_in_one_thread_wakes_a_task_waiting_in_another_threads_loop(backend: str) -> None:
    """A thread's release resumes a task blocked on its own loop, thread-safely."""
    b = bulkhead(1, max_queue=1)
    work = Work(probe=threading.get_ident)

    async def main() -> str:
        return await b.acall(work.run_async)

    with b:
        loop = Background(lambda: run_async(main, backend))
        eventually(lambda: b.waiting == 1)
        assert work.seen == []
    assert loop.result() == "done"
    assert work.seen == [loop.thread.ident]
    assert state(b) == (0, 0)


def test_a_task_leaving_its_block_wakes_a_waiting_thread(backend: str) -> None:
    """The other way round: a task's release wakes a thread blocked on its waiter."""
    b = bulkhead(1, max_queue=1)
    work = Work(probe=lambda: state(b))

    async def main() -> Background[str]:
        async with b:
            waiter = Background(lambda: b.call(work))
            await anyio.to_thread.run_sync(eventually, lambda: b.waiting == 1)
            assert work.seen == []
        return waiter

    assert run_async(main, backend).result() == "done"
    assert work.seen == [(1, 0)]
    assert state(b) == (0, 0)


def test_a_task_waiting_for_a_slot_never_blocks_its_event_loop(backend: str) -> None:
    """While a task waits in the queue, the other tasks of its loop keep running."""
    b = bulkhead(1, max_queue=1)
    work = Work()
    ticked = threading.Event()

    async def main() -> str:
        async with Tasks() as tasks:
            waiter = await tasks.start(b.acall, work.run_async)
            await until(lambda: b.waiting == 1)
            for _ in range(100):  # a loop blocked by the wait would never get through these
                await checkpoint()
            assert (b.waiting, waiter.done(), work.seen) == (1, False, [])
            ticked.set()
        result: str = await waiter.result()
        return result

    with b:
        loop = Background(lambda: run_async(main, backend))
        assert ticked.wait(WAIT), "the waiting task blocked its event loop"
    assert loop.result() == "done"
    assert state(b) == (0, 0)


def test_a_waiter_whose_event_loop_was_closed_is_skipped() -> None:
    """A task stranded in a closed loop cannot take the slot: it goes to the next caller."""
    b = bulkhead(1, max_queue=2)
    work = Work(probe=threading.get_ident)
    loop = asyncio.new_event_loop()
    # The stranded task is never finished: keep its loop from logging that when it is freed.
    loop.set_exception_handler(lambda loop, context: None)
    try:
        with b:
            stranded = loop.create_task(b.acall(work.run_async))
            loop.run_until_complete(until(lambda: b.waiting == 1))
            loop.close()
            caller = Background(lambda: b.call(work))
            eventually(lambda: b.waiting == 2)
        assert caller.result() == "done"
        assert work.seen == [caller.thread.ident]  # the thread ran; the stranded task never did
        assert state(b) == (0, 0)
        # The stranded coroutine, closed at last, gives back nothing more (it had no place left).
        coroutine = stranded.get_coro()
        assert isinstance(coroutine, Coroutine)
        coroutine.close()
        del coroutine, stranded
        assert state(b) == (0, 0)
        with b:
            assert state(b) == (1, 0)
    finally:
        loop.close()


def test_threads_and_tasks_on_two_loops_share_one_bulkhead() -> None:
    """4 threads and 2 event loops through one limit of 3: never more than 3 at once, none lost."""
    b = bulkhead(3, max_queue=1000)
    count = crowd(
        b, sync_calls=50, async_calls=100, pause=lambda: time.sleep(0), inside=lambda: b.running
    )
    assert count["done"] == 4 * 50 + 2 * 100
    assert 1 <= count["peak"] <= 3
    assert (count["running"], *state(b)) == (0, 0, 0)


# --- 7. state, repr, explain, events --------------------------------------------------------


def test_running_waiting_and_limit_follow_the_calls() -> None:
    """The properties say how many run and wait now; the repr says the same."""
    b = bulkhead(2, max_queue=3, max_wait=0.5, name="llm")
    assert repr(b) == (
        "<Bulkhead name='llm', max_concurrent=2, max_queue=3, max_wait=0.5: 0 running, 0 waiting>"
    )
    with b:
        assert (b.running, b.waiting, b.limit) == (1, 0, 2)
        with b:
            waiter = Background(lambda: b.call(Work()))
            eventually(lambda: b.waiting == 1)
            assert (b.running, b.waiting, b.limit) == (2, 1, 2)
            assert repr(b).endswith(": 2 running, 1 waiting>")
    assert waiter.result() == "done"
    assert (b.running, b.waiting, b.limit) == (0, 0, 2)
    assert repr(bulkhead(4)) == "<Bulkhead max_concurrent=4: 0 running, 0 waiting>"
    adaptive = bulkhead(Recording(3))
    assert repr(adaptive) == "<Bulkhead max_concurrent=Recording(limit=3): 0 running, 0 waiting>"


def test_explain_describes_a_fixed_limit_and_its_queue() -> None:
    """The limit, the queue and its wait, what a refusal raises, and the state now."""
    b = bulkhead(2, max_queue=3, max_wait=0.5, name="llm")
    with b:
        lines = b.explain().splitlines()
    assert lines[:4] == [
        "Bulkhead 'llm': at most 2 calls at once",
        "  then up to 3 callers wait, first come first served, at most 0.5 s, "
        "never past a deadline",
        "  refused calls raise BulkheadFullError; nothing runs",
        "  now: 1 running, 0 waiting",
    ]
    assert "  runs of the function: at most 1" in lines

    lines = bulkhead(5).explain().splitlines()
    assert lines[:4] == [
        "Bulkhead: at most 5 calls at once",
        "  no queue: a call that finds every slot taken is refused at once",
        "  refused calls raise BulkheadFullError; nothing runs",
        "  now: 0 running, 0 waiting",
    ]
    lines = bulkhead(5, max_queue=1).explain().splitlines()
    assert lines[1] == (
        "  then up to 1 callers wait, first come first served, until a slot frees up, "
        "never past a deadline"
    )


def test_explain_describes_an_adaptive_limit() -> None:
    """The limit's value now, the Limit itself, and what counts as an overload."""
    limit = Recording(4, then=[6])
    b = bulkhead(limit, name="llm", overload=Overloaded)
    text = b.explain()
    assert text.splitlines()[0] == "Bulkhead 'llm': an adaptive limit of calls at once, now 4"
    assert "  limit: Recording(limit=4)" in text.splitlines()
    assert "Overloaded" in text
    b.call(Work())
    assert b.explain().splitlines()[0].endswith("now 6")


def test_a_refusal_emits_call_rejected_and_nothing_else_does() -> None:
    """CallRejected(reason="bulkhead_full") for each refusal, to the bulkhead's hooks too."""
    mine: list[rs.Event] = []
    b = bulkhead(1, name="llm", hooks=[mine.append])

    def protected() -> str:
        return "done"

    with capture_events() as events:
        assert b.call(protected) == "done"
        with b:
            pass
        assert events == []
        with b:
            with pytest.raises(rs.BulkheadFullError):
                b.call(protected)
            with pytest.raises(rs.BulkheadFullError), b:
                pass
    expected = [
        rs.CallRejected(
            name="llm", target=protected.__qualname__, reason="bulkhead_full", retry_after=None
        ),
        rs.CallRejected(name="llm", target=None, reason="bulkhead_full", retry_after=None),
    ]
    assert events == expected
    assert mine == expected


# --- 8. with Retry ------------------------------------------------------------------------------


@SYNC_ASYNC
def test_retry_on_transient_does_not_retry_a_full_bulkhead(is_async: Driver) -> None:
    """compose(Retry(on=rs.transient), bulkhead): BulkheadFullError at once, no sleep, no rerun."""
    clock = FakeClock()
    b = bulkhead(1)
    pipeline = rs.compose(rs.Retry(on=rs.transient, attempts=3, clock=clock), b)
    work = Work()
    with capture_events() as events, b, pytest.raises(rs.BulkheadFullError):
        bounded(lambda: run_call(pipeline, work, is_async))
    assert (work.seen, clock.sleeps) == ([], [])
    assert [type(event) for event in events] == [rs.CallRejected]
    assert state(b) == (0, 0)


@SYNC_ASYNC
def test_each_retried_attempt_takes_and_gives_back_a_slot(is_async: Driver) -> None:
    """Retry outside the bulkhead: every attempt is admitted on its own; none leaks its slot."""
    clock = FakeClock()
    b = bulkhead(1)
    work = Work(probe=lambda: state(b), error=ConnectionError("reset"))
    pipeline = rs.compose(rs.Retry(on=rs.transient, attempts=3, clock=clock), b)
    with pytest.raises(ConnectionError):
        run_call(pipeline, work, is_async)
    assert work.seen == [(1, 0)] * 3
    assert len(clock.sleeps) == 2
    assert state(b) == (0, 0)


# --- 9. an adaptive limit ------------------------------------------------------------------------


@pytest.mark.parametrize("form", forms())
def test_the_limit_learns_each_calls_duration_on_the_bulkheads_clock(form: Form) -> None:
    """update(rtt, inflight, dropped): the time the call took on the FakeClock, alone, no drop."""
    clock = FakeClock(100.0)
    limit = Recording(2)
    b = bulkhead(limit, clock=clock)
    assert form.run(b, Work(probe=lambda: clock.advance(2.5))) == "done"
    assert limit.updates == [(2.5, 1, False)]
    assert state(b) == (0, 0)


def test_a_stream_is_timed_to_its_first_item() -> None:
    """A stream's rtt is the time to its first item: the upstream's latency, not the consumer's."""
    clock = FakeClock()
    limit = Recording(2)
    b = bulkhead(limit, clock=clock)

    @b
    def numbers() -> Iterator[int]:
        clock.advance(1.5)
        yield 1
        clock.advance(100.0)
        yield 2

    for _ in numbers():
        clock.advance(7.0)  # the consumer's own pace
    assert limit.updates == [(1.5, 1, False)]


def test_the_limit_learns_how_many_calls_ran_when_each_started() -> None:
    """inflight counts the calls running when this one started, itself included."""
    limit = Recording(3)
    b = bulkhead(limit, clock=FakeClock())
    with b:
        with b, b:
            pass
        b.call(Work())
    assert [inflight for _, inflight, _ in limit.updates] == [3, 2, 2, 1]


def test_a_woken_waiter_learns_the_calls_running_when_it_was_let_in() -> None:
    """A queued call's inflight is counted when the freed slot is handed to it."""
    limit = Recording(2)
    b = bulkhead(limit, max_queue=1, clock=FakeClock())
    with b:
        with b:
            waiter = Background(lambda: b.call(Work()))
            eventually(lambda: b.waiting == 1)
        assert waiter.result() == "done"
    assert [inflight for _, inflight, _ in limit.updates] == [2, 2, 1]


@SYNC_ASYNC
def test_dropped_is_true_only_when_overload_trips(is_async: Driver) -> None:
    """overload=ValueError: a ValueError is a drop; another error or a success is not."""
    limit = Recording(2)
    b = bulkhead(limit, overload=ValueError, clock=FakeClock())
    for error in (None, ValueError("busy"), KeyError("missing"), Boom("no")):
        work = Work(error=error)
        if error is None:
            run_call(b, work, is_async)
        else:
            with pytest.raises(type(error)):
                run_call(b, work, is_async)
    assert [dropped for _, _, dropped in limit.updates] == [False, True, False, False]
    assert state(b) == (0, 0)


def test_a_returned_result_is_a_drop_when_overload_judges_results() -> None:
    """An overload classifier with a rule for results: the result it trips on is a drop."""
    limit = Recording(2)
    busy = rs.ErrorClassifier([rs.Rule(when=lambda outcome: outcome == "busy")])
    b = bulkhead(limit, overload=busy, clock=FakeClock())
    assert b.call(lambda: "busy") == "busy"
    assert b.call(lambda: "fine") == "fine"
    assert [dropped for _, _, dropped in limit.updates] == [True, False]


def test_a_cancelled_or_interrupted_call_teaches_the_limit_nothing(backend: str) -> None:
    """No update for cancellation, KeyboardInterrupt or a stream closed early; slots come back."""
    limit = Recording(2)
    b = bulkhead(limit, clock=FakeClock())
    with pytest.raises(KeyboardInterrupt):
        b.call(Work(error=KeyboardInterrupt()))

    @b
    def numbers() -> Generator[int, None, None]:
        yield 1
        yield 2

    stream = numbers()
    next(stream)
    stream.close()

    blocker = Blocker()
    cancel_task(lambda: b.acall(blocker), lambda: blocker.started, backend)
    assert limit.updates == []
    assert state(b) == (0, 0)


def test_a_cancelled_waiter_teaches_the_limit_nothing(backend: str) -> None:
    """A task cancelled while it waits never ran: no update; only the holder's call counts."""
    limit = Recording(1)
    b = bulkhead(limit, max_queue=1, clock=FakeClock())

    async def main() -> None:
        async with Tasks() as tasks, b:
            waiter = await tasks.start(b.acall, Work().run_async)
            await until(lambda: b.waiting == 1)
            waiter.cancel()
            await waiter.wait()
            assert waiter.cancelled

    run_async(main, backend)
    assert limit.updates == [(0.0, 1, False)]
    assert state(b) == (0, 0)


def test_a_lower_limit_admits_fewer_calls() -> None:
    """The limit goes 3 -> 1: calls above it finish, but no new one is let in until one is left."""
    limit = Recording(3, then=[1, 1, 1, 1])
    b = bulkhead(limit, clock=FakeClock(), name="llm")
    with capture_events() as events:
        with b:
            with b:
                with b:
                    assert state(b) == (3, 0)
                assert (b.limit, b.running) == (1, 2)  # the innermost one ended
                with pytest.raises(rs.BulkheadFullError) as info:
                    b.call(Work())
                assert info.value.limit == 1
            assert (b.limit, b.running) == (1, 1)
            with pytest.raises(rs.BulkheadFullError):
                b.call(Work())
        assert state(b) == (0, 0)
        assert b.call(Work()) == "done"
        with b, pytest.raises(rs.BulkheadFullError):
            b.call(Work())
    changes = [event for event in events if isinstance(event, rs.LimitChanged)]
    assert changes == [
        rs.LimitChanged(name="llm", target=None, limit=1, previous=3, reason="sample")
    ]


def test_a_higher_limit_wakes_the_waiting_callers() -> None:
    """The limit goes 1 -> 3 when the holder ends: both waiters are let in at once."""
    limit = Recording(1, then=[3])
    b = bulkhead(limit, max_queue=5, clock=FakeClock())
    inside: list[int] = []
    go = threading.Event()

    def hold(number: int) -> Callable[[], None]:
        def body() -> None:
            inside.append(number)
            assert go.wait(WAIT)

        return lambda: b.call(body)

    with b:
        waiters = [Background(hold(0))]
        eventually(lambda: b.waiting == 1)
        waiters.append(Background(hold(1)))
        eventually(lambda: b.waiting == 2)
    eventually(lambda: len(inside) == 2)  # both run at once: the limit is 3 now
    assert (b.limit, *state(b)) == (3, 2, 0)
    go.set()
    for waiter in waiters:
        waiter.result()
    assert sorted(inside) == [0, 1]  # let in together: either may start first
    assert state(b) == (0, 0)


def test_a_higher_limit_wakes_waiting_tasks(backend: str) -> None:
    """The same with tasks on one loop: the release that raises the limit hands out both slots."""
    limit = Recording(1, then=[2])
    b = bulkhead(limit, max_queue=5, clock=FakeClock())

    async def main() -> None:
        go = anyio.Event()
        inside: list[int] = []

        async def hold(number: int) -> None:
            inside.append(number)
            await go.wait()

        async with Tasks() as tasks:
            async with b:
                for n in range(3):
                    await tasks.start(b.acall, hold, n)
                await until(lambda: b.waiting == 3)
            await until(lambda: len(inside) == 2)
            assert (b.limit, *state(b)) == (2, 2, 1)
            go.set()
        if backend in ASYNCIO_WORLD:
            assert inside == [0, 1, 2]
        else:  # woken in one step, 0 and 1 run in the order trio's scheduler picks
            assert (sorted(inside[:2]), inside[2:]) == ([0, 1], [2])

    run_async(main, backend)
    assert state(b) == (0, 0)


def test_limit_changed_says_how_and_why_the_limit_moved() -> None:
    """LimitChanged(limit, previous, reason): "overload" after a drop, "sample" otherwise."""
    limit = Recording(4, then=[2, 2, 5])
    mine: list[rs.Event] = []
    b = bulkhead(limit, overload=ValueError, clock=FakeClock(), name="llm", hooks=[mine.append])

    def failing() -> None:
        raise ValueError("overloaded")

    def fine() -> str:
        return "fine"

    with capture_events() as events:
        with pytest.raises(ValueError, match="overloaded"):
            b.call(failing)  # 4 -> 2, a drop
        b.call(fine)  # 2 -> 2: no event
        with b:  # 2 -> 5
            pass
    expected = [
        rs.LimitChanged(
            name="llm", target=failing.__qualname__, limit=2, previous=4, reason="overload"
        ),
        rs.LimitChanged(name="llm", target=None, limit=5, previous=2, reason="sample"),
    ]
    assert events == expected
    assert mine == expected
    assert b.limit == 5


def test_the_limit_never_goes_below_one() -> None:
    """A Limit that starts at or returns 0 still lets one call through."""
    limit = Recording(0, then=[0])
    b = bulkhead(limit, clock=FakeClock())
    assert b.limit == 1
    assert b.call(Work()) == "done"
    assert b.limit == 1
    assert b.call(Work()) == "done"
    assert state(b) == (0, 0)


def test_a_fixed_limit_is_not_timed_and_never_changes() -> None:
    """Without a Limit, the clock is never read and no LimitChanged is emitted."""

    reads: list[float] = []

    class Counting:
        def now(self) -> float:
            reads.append(0.0)
            return 0.0

        def sleep(self, seconds: float, /) -> None:
            raise AssertionError("a bulkhead never sleeps")

        async def asleep(self, seconds: float, /) -> None:
            raise AssertionError("a bulkhead never sleeps")

    b = bulkhead(2, clock=Counting())
    with capture_events() as events:
        b.call(Work())
        with pytest.raises(Overloaded):
            b.call(Work(error=Overloaded()))
    assert (reads, events, b.limit) == ([], [], 2)


@SYNC_ASYNC
def test_an_adaptive_bulkhead_under_load_keeps_to_its_moving_limit(is_async: Driver) -> None:
    """A limit moving between 1 and 4 as calls end: never more than 4 run, every call learns."""
    limit = Recording(4, then=[3, 2, 1, 2, 3, 4] * 20)
    b = bulkhead(limit, max_queue=1000, clock=FakeClock())
    lock = threading.Lock()
    count = {"inside": 0, "peak": 0}

    def enter() -> None:
        with lock:
            count["inside"] += 1
            count["peak"] = max(count["peak"], count["inside"], b.running)

    def leave() -> None:
        with lock:
            count["inside"] -= 1

    def sync_body() -> None:
        enter()
        time.sleep(0)
        leave()

    async def async_body() -> None:
        enter()
        await checkpoint()
        leave()

    if is_async:

        async def main() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(100):
                    group.start_soon(b.acall, async_body)

        run_async(main, backend_of(is_async))
    else:

        def caller() -> None:
            for _ in range(25):
                b.call(sync_body)

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        join_all(threads)
    assert 1 <= count["peak"] <= 4
    assert len(limit.updates) == 100
    assert all(1 <= inflight <= 4 for _, inflight, _ in limit.updates)
    assert state(b) == (0, 0)


class Broken(Recording):
    """A `Limit` whose `update` raises, carrying a key in its message."""

    def update(self, rtt: float, inflight: int, dropped: bool, /) -> int:
        key = "-".join(("sk", "live", "abcdefghijklmnop"))  # not in the traceback's source line
        raise RuntimeError(f"{key} is not a limit")


def test_a_failing_limit_update_releases_the_slot_and_keeps_the_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """update() raising is logged (redacted) and ignored: the slot is free, the result returned."""
    limit = Broken(2)
    gate = bulkhead(limit, clock=FakeClock(), name="llm")
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert gate.call(lambda: "done") == "done"
        with pytest.raises(Boom):
            gate.call(lambda: (_ for _ in ()).throw(Boom()))
    assert (gate.running, gate.limit) == (0, 2)
    records = [r for r in caplog.records if "limit's update() failed" in r.getMessage()]
    assert len(records) == 2
    assert all("sk-live" not in logging.Formatter().format(r) for r in records)


class Occupancy:
    """Counts the calls inside a protected function, and the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = self.most = self.done = 0

    def __call__(self) -> None:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0)  # let another thread in while this one holds its slot
        with self.lock:
            self.inside -= 1
            self.done += 1


@pytest.mark.parametrize("max_queue", [0, 16])
def test_sixteen_threads_never_exceed_the_limit_and_lose_no_slot(max_queue: int) -> None:
    """The lock-free take and give-back under 16 threads: at most 3 inside, every call counted."""
    gate = bulkhead(3, max_queue=max_queue)
    seen = Occupancy()
    protected = gate(seen)
    refused = [0] * 16

    def worker(n: int) -> None:
        for _ in range(500):
            try:
                protected()
            except rs.BulkheadFullError:
                refused[n] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(16)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython can: races show up
    try:
        for thread in threads:
            thread.start()
        join_all(threads)
    finally:
        sys.setswitchinterval(interval)
    assert seen.most <= 3
    assert seen.done + sum(refused) == 16 * 500
    if max_queue:
        assert sum(refused) == 0  # 16 callers, 3 slots, 16 places to wait: nobody is refused
    assert (gate.running, gate.waiting) == (0, 0)
    assert gate.call(lambda: "free") == "free"  # every slot came back
