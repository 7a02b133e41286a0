"""
The gate engine (`resilience.engine`): the drivers, the hooks, the fast path, waits, ``with``.

The gates here are written as a user would write them, subclassing
`GatePolicy`: `Concurrency` (the engine docstring's example), `Recorder`
(logs every hook the engine calls) and `Queue` (a FIFO bulkhead whose callers
wait for a `Waiter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import math
import os
import pickle
import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
import pytest

import resilience as rs
from resilience import backoff, engine
from resilience.engine import NO_RESULT, FastPath, GatePolicy, Wait, Waiter
from resilience.testing import FakeClock, set_testing
from tests.docs_blocks import run_block

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
    cancel_inside,
    cancel_task,
    cancelled_error,
    checkpoint,
    crowd,
    driver_params,
    in_acall,
    in_async_generator,
    in_async_with,
    in_call,
    in_compose,
    in_compose_async,
    in_coroutine,
    in_function,
    in_generator,
    in_method,
    in_with,
    pick,
    run_async,
    run_call,
    until,
)
from .threads import WAIT

# --- the gates under test ------------------------------------------------------------


class Concurrency(GatePolicy):
    """Refuse a call while *limit* calls run: the example of `resilience.engine`'s docstring."""

    def __init__(self, limit: int) -> None:
        self.limit, self.running, self.lock = limit, 0, threading.Lock()

    def admit(self, target: object, /) -> None:
        with self.lock:
            if self.running >= self.limit:
                raise rs.RejectedError(f"{self.limit} calls running already")
            self.running += 1

    def release(self, *outcome: object) -> None:
        with self.lock:
            self.running -= 1

    on_success = on_failure = on_cancel = release


def docstring_concurrency() -> Any:
    """Run the code block of `resilience.engine`'s docstring; return the class it defines."""
    match = re.search(r"```python\n(.*?)```", engine.__doc__ or "", re.DOTALL)
    assert match is not None, "the engine's docstring lost its example"
    namespace: dict[str, Any] = {"__name__": "engine_docstring_example"}
    exec(match.group(1), namespace)
    return namespace["Concurrency"]


Entry = tuple[str, Any, Any, float | None]


class Recorder(GatePolicy):
    """
    Logs every hook the engine calls as ``(hook, permit, result or error type, duration)``.

    Its permits are "p1", "p2", ... unless *decide* says what `admit` returns.
    The four settings the engine reads are plain attributes here.
    """

    timed: bool = False
    results: bool = False
    fast: FastPath | None = None
    clock: rs.Clock = FakeClock()

    def __init__(
        self,
        *,
        timed: bool = False,
        results: bool = False,
        fast: FastPath | None = None,
        clock: rs.Clock | None = None,
        decide: Callable[[object], Any] | None = None,
    ) -> None:
        self.timed, self.results, self.fast = timed, results, fast
        self.clock = FakeClock() if clock is None else clock
        self.decide = decide
        self.admitted: list[object] = []
        self.log: list[Entry] = []
        self.errors: list[BaseException] = []
        self.targets: list[object] = []
        self._numbers = itertools.count(1)

    def admit(self, target: object, /) -> Any:
        self.admitted.append(target)
        if self.decide is not None:
            return self.decide(target)
        return f"p{next(self._numbers)}"

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        self.log.append(("success", permit, result, duration))
        self.targets.append(target)

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        self.log.append(("failure", permit, type(error), duration))
        self.errors.append(error)
        self.targets.append(target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        self.log.append(("cancel", permit, type(error), duration))
        self.errors.append(error)
        self.targets.append(target)

    def on_expired(self, wait: Wait, target: object, /) -> Any:
        self.log.append(("expired", wait.permit, type(wait), None))
        raise rs.RejectedError(f"expired: {wait!r}")


class Lenient(Recorder):
    """A recorder whose expired waits are admitted after all, with the permit "late"."""

    def on_expired(self, wait: Wait, target: object, /) -> Any:
        self.log.append(("expired", wait.permit, type(wait), None))
        return "late"


class Pause(GatePolicy):
    """Makes every call sleep *seconds* on *clock* first; `on_expired` is GatePolicy's own."""

    def __init__(self, seconds: float, clock: rs.Clock) -> None:
        self.seconds, self._clock = seconds, clock

    @property
    def clock(self) -> rs.Clock:
        return self._clock

    def admit(self, target: object, /) -> Wait:
        return Wait(self.seconds, "paused")


class Fast:
    """A `FastPath` the test moves by hand."""

    def __init__(self, ready: object | None = None, settled: object | None = None) -> None:
        self.ready = ready
        self.settled = settled


FAST = "the fast path's permit"


class SpyClock:
    """
    A fake clock that tells sync sleeps from async ones.

    *hold*: its async sleep lasts until cancelled. *interrupt*: its sync sleep
    raises `KeyboardInterrupt`.
    """

    def __init__(self, *, hold: bool = False, interrupt: bool = False) -> None:
        self.fake = FakeClock()
        self.hold, self.interrupt = hold, interrupt
        self.calls: list[tuple[str, float]] = []

    def now(self) -> float:
        return self.fake.now()

    def sleep(self, seconds: float, /) -> None:
        self.calls.append(("sleep", seconds))
        if self.interrupt:
            raise KeyboardInterrupt
        self.fake.sleep(seconds)

    async def asleep(self, seconds: float, /) -> None:
        self.calls.append(("asleep", seconds))
        if self.hold:
            await anyio.sleep_forever()
        await self.fake.asleep(seconds)


class Queue(GatePolicy):
    """
    A bulkhead: *limit* calls run; the others wait in FIFO order, at most *max_wait* seconds.

    A call that ends hands its slot to the first waiter that takes it (`Waiter.wake`
    is `False` for one that gave up); a waiter that gives up leaves the queue.
    """

    def __init__(self, limit: int, max_wait: float | None = None) -> None:
        self.limit, self.max_wait = limit, max_wait
        self.running = 0
        self.waiters: deque[Waiter] = deque()
        self.changed = threading.Condition()
        self.issued: list[Waiter] = []
        self.cancelled: list[object] = []
        self.expired: list[Wait] = []

    def admit(self, target: object, /) -> Any:
        with self.changed:
            if self.running < self.limit and not self.waiters:
                self.running += 1
                return "slot"
            waiter = Waiter()
            self.waiters.append(waiter)
            self.issued.append(waiter)
            self.changed.notify_all()
        return Wait(self.max_wait, waiter=waiter)

    def release(self) -> None:
        with self.changed:
            while self.waiters:
                if self.waiters.popleft().wake("slot"):
                    break
            else:
                self.running -= 1
            self.changed.notify_all()

    def leave(self, wait: Wait) -> None:
        assert wait.waiter is not None
        with self.changed:
            if wait.waiter in self.waiters:
                self.waiters.remove(wait.waiter)
            self.changed.notify_all()

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        self.release()

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        self.release()

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        self.cancelled.append(permit)
        if isinstance(permit, Wait):
            self.leave(permit)
        else:
            self.release()

    def on_expired(self, wait: Wait, target: object, /) -> Any:
        self.expired.append(wait)
        self.leave(wait)
        raise rs.RejectedError("no room in time")

    def wait_for_queue(self, length: int) -> None:
        """Block until *length* callers wait in the queue."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.waiters) == length, WAIT), "a hang?"


class Slotted(GatePolicy):
    """A gate with ``__slots__`` and no ``_pipeline``: it cannot decorate or call."""

    __slots__ = ("permits",)

    def __init__(self) -> None:
        self.permits = 0

    def admit(self, target: object, /) -> int:
        self.permits += 1
        return self.permits


# --- the forms --------------------------------------------------------------------------


def retry() -> rs.Retry:
    """A Retry to put outside a gate: two attempts on Boom, on a fake clock."""
    return rs.Retry(on=Boom, attempts=2, backoff=backoff.constant(1.0), clock=FakeClock())


FORMS = [
    Form("function", sync=in_function),
    Form("method", sync=in_method),
    Form("generator", sync=in_generator, no_result=True),
    Form("call", sync=in_call),
    Form("compose", sync=in_compose(retry), compose=True),
    Form("with", sync=in_with, no_result=True),
    Form("coroutine", asyn=in_coroutine),
    Form("async generator", asyn=in_async_generator, no_result=True),
    Form("acall", asyn=in_acall),
    Form("compose async", asyn=in_compose_async(retry), compose=True),
    Form("async with", asyn=in_async_with, no_result=True),
]
FORM = {form.name: form for form in FORMS}
forms = functools.partial(pick, FORMS)

DRIVERS = [
    pytest.param(driver.values[0], timed, id=driver.id + ("-timed" if timed else ""))
    for driver in driver_params()
    for timed in (False, True)
]


# --- 1. the docstring's Concurrency gate on every form --------------------------------


def test_the_docstring_example_runs_on_the_four_shapes() -> None:
    """The engine docstring's code, run as is, admits and releases on the four shapes."""
    gate = docstring_concurrency()(1)
    assert (gate.timed, gate.results, gate.fast) == (False, False, None)
    for name in ("function", "coroutine", "generator", "async generator", "with"):
        work = Work(probe=lambda: gate.running)
        assert FORM[name].run(gate, work) == "done", name
        assert (work.seen, gate.running) == ([1], 0), name
    with gate:
        work = Work()
        with pytest.raises(rs.RejectedError, match="1 calls running already"):
            FORM["function"].run(gate, work)
        assert work.seen == []
    assert gate.running == 0


@pytest.mark.parametrize("form", forms())
def test_the_count_returns_to_zero_after_a_success(form: Form) -> None:
    """The call runs admitted (the count is 1 inside) and its success releases it."""
    gate = Concurrency(1)
    work = Work(probe=lambda: gate.running)
    assert form.run(gate, work) == "done"
    assert (work.seen, gate.running) == ([1], 0)


@pytest.mark.parametrize("form", forms())
def test_the_count_returns_to_zero_after_an_exception(form: Form) -> None:
    """A failure releases the call, and the exception reaches the caller unchanged."""
    gate = Concurrency(1)
    error = Boom("inside")
    work = Work(error, probe=lambda: gate.running)
    with pytest.raises(Boom) as info:
        form.run(gate, work)
    assert info.value is error
    # Under Retry (two attempts) each attempt was admitted on its own.
    assert work.seen == [1, 1] if form.compose else [1]
    assert gate.running == 0


@pytest.mark.parametrize("form", forms(is_async=False))
def test_the_count_returns_to_zero_after_a_keyboard_interrupt(form: Form) -> None:
    """KeyboardInterrupt releases the call and passes through (not retried either)."""
    gate = Concurrency(1)
    work = Work(KeyboardInterrupt(), probe=lambda: gate.running)
    with pytest.raises(KeyboardInterrupt):
        form.run(gate, work)
    assert (work.seen, gate.running) == ([1], 0)


@pytest.mark.parametrize("form", forms(is_async=True))
def test_the_count_returns_to_zero_after_a_cancellation(form: Form) -> None:
    """A task cancelled while its call runs releases the call."""
    gate = Concurrency(1)
    seen: list[int] = []
    cancel_inside(form, gate, lambda: seen.append(gate.running))
    assert (seen, gate.running) == ([1], 0)


@pytest.mark.parametrize("form", forms())
def test_a_full_gate_refuses_without_running_the_function(form: Form) -> None:
    """While the limit is reached, a call raises RejectedError and never runs (nor is retried)."""
    gate = Concurrency(1)
    work = Work()
    with gate:
        with pytest.raises(rs.RejectedError, match="1 calls running already"):
            form.run(gate, work)
        assert gate.running == 1
    assert (work.seen, gate.running) == ([], 0)


@SYNC_ASYNC
def test_each_attempt_of_a_retry_outside_the_gate_is_admitted_and_released(
    is_async: Driver,
) -> None:
    """compose(Retry, gate): every attempt goes through the gate; none leaks a place."""
    clock = FakeClock()
    gate = Concurrency(1)
    work = Work(Boom("again"), probe=lambda: gate.running)
    policy = rs.Retry(on=Boom, attempts=3, backoff=backoff.constant(1.0), clock=clock)
    with pytest.raises(Boom):
        run_call(rs.compose(policy, gate), work, is_async)
    assert (work.seen, clock.sleeps, gate.running) == ([1, 1, 1], [1.0, 1.0], 0)


def test_a_stream_closed_early_gives_its_place_back() -> None:
    """A generator is admitted at its first item; close() or a break in a for loop releases it."""
    gate = Concurrency(1)

    @gate
    def numbers() -> Generator[int, None, None]:
        yield 1
        yield 2

    stream = numbers()
    assert gate.running == 0  # not admitted before the first item is asked for
    assert next(stream) == 1
    assert gate.running == 1
    stream.close()
    assert gate.running == 0

    for number in numbers():
        assert (number, gate.running) == (1, 1)
        break
    assert gate.running == 0
    assert list(numbers()) == [1, 2]
    assert gate.running == 0


def test_an_async_stream_closed_early_gives_its_place_back(backend: str) -> None:
    """aclose(), and a break inside contextlib.aclosing, release an async stream's place."""
    gate = Concurrency(1)

    @gate
    async def numbers() -> AsyncGenerator[int, None]:
        yield 1
        yield 2

    async def main() -> list[int]:
        seen: list[int] = []
        stream = numbers()
        seen.append(gate.running)
        assert await stream.__anext__() == 1
        seen.append(gate.running)
        await stream.aclose()
        seen.append(gate.running)
        async with contextlib.aclosing(numbers()) as agen:
            async for _ in agen:
                seen.append(gate.running)
                break
        seen.append(gate.running)
        return seen

    assert run_async(main, backend) == [0, 1, 0, 1, 0]


# --- 2. which hook gets what -----------------------------------------------------------


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_success_reaches_on_success_with_the_result(form: Form) -> None:
    """Functions report their result; streams and blocks report NO_RESULT; the target is kept."""
    gate = Recorder()
    assert form.run(gate, Work()) == "done"
    assert gate.log == [("success", "p1", form.outcome("done"), None)]
    assert gate.targets == gate.admitted
    if form.name in ("with", "async with"):
        assert gate.admitted == [None]
    else:
        assert len(gate.admitted) == 1
        assert callable(gate.admitted[0])


@pytest.mark.parametrize("form", forms(compose=False))
def test_an_exception_reaches_on_failure(form: Form) -> None:
    """An Exception from the body is a failure, reported with the error itself."""
    gate = Recorder()
    error = Boom("inside")
    with pytest.raises(Boom):
        form.run(gate, Work(error))
    assert gate.log == [("failure", "p1", Boom, None)]
    assert gate.errors == [error]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)], ids=repr)
@pytest.mark.parametrize("form", forms(is_async=False, compose=False))
def test_an_interpreter_exit_reaches_on_cancel_never_on_failure(
    form: Form, error: BaseException
) -> None:
    """KeyboardInterrupt and SystemExit are cancellations: on_cancel, not on_failure."""
    gate = Recorder()
    with pytest.raises(type(error)):
        form.run(gate, Work(error))
    assert gate.log == [("cancel", "p1", type(error), None)]
    assert gate.errors == [error]


@pytest.mark.parametrize("form", forms(is_async=True, compose=False))
def test_a_task_cancellation_reaches_on_cancel_never_on_failure(form: Form) -> None:
    """A task cancelled while its call runs: on_cancel with the cancellation, in every backend."""
    gate = Recorder()
    cancel_inside(form, gate)
    assert gate.log == [("cancel", "p1", form.cancelled, None)]


def test_a_stream_closed_early_reaches_on_cancel_with_generator_exit() -> None:
    """close() after an item is a cancellation (GeneratorExit) and closes the inner stream."""
    gate = Recorder()
    closed: list[str] = []

    @gate
    def numbers() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("inner")

    stream = numbers()
    assert next(stream) == 1
    stream.close()
    for _ in numbers():
        break
    assert closed == ["inner", "inner"]
    assert gate.log == [
        ("cancel", "p1", GeneratorExit, None),
        ("cancel", "p2", GeneratorExit, None),
    ]


def test_an_async_stream_closed_early_reaches_on_cancel_with_generator_exit(backend: str) -> None:
    """aclose() after an item is a cancellation (GeneratorExit) and closes the inner stream."""
    gate = Recorder()
    closed: list[str] = []

    @gate
    async def numbers() -> AsyncGenerator[int, None]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("inner")

    async def main() -> None:
        stream = numbers()
        assert await stream.__anext__() == 1
        await stream.aclose()

    run_async(main, backend)
    assert closed == ["inner"]
    assert gate.log == [("cancel", "p1", GeneratorExit, None)]


def test_a_stream_never_started_is_never_admitted(backend: str) -> None:
    """A stream closed before its first item was asked for touches the gate not at all."""
    gate = Recorder()

    @gate
    def numbers() -> Generator[int, None, None]:
        yield 1

    @gate
    async def anumbers() -> AsyncGenerator[int, None]:
        yield 1

    numbers().close()
    run_async(anumbers().aclose, backend)
    assert (gate.admitted, gate.log) == ([], [])


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_timed_gate_gets_each_outcomes_duration(form: Form) -> None:
    """timed=True: the duration on the gate's clock comes with a success and a failure."""
    clock = FakeClock()
    gate = Recorder(timed=True, clock=clock)
    assert form.run(gate, Work(probe=lambda: clock.advance(1.5))) == "done"
    with pytest.raises(Boom):
        form.run(gate, Work(Boom(), probe=lambda: clock.advance(2.0)))
    assert gate.log == [
        ("success", "p1", form.outcome("done"), 1.5),
        ("failure", "p2", Boom, 2.0),
    ]


@pytest.mark.parametrize("form", forms(is_async=False, compose=False))
def test_a_timed_gate_gets_the_duration_of_an_interrupted_call(form: Form) -> None:
    """timed=True: a call interrupted after 0.5 s reports 0.5 s to on_cancel, in every form."""
    clock = FakeClock()
    gate = Recorder(timed=True, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        form.run(gate, Work(KeyboardInterrupt(), probe=lambda: clock.advance(0.5)))
    assert gate.log == [("cancel", "p1", KeyboardInterrupt, 0.5)]


@pytest.mark.parametrize("form", forms(is_async=True, compose=False))
def test_a_timed_gate_gets_the_duration_of_a_cancelled_call(form: Form) -> None:
    """timed=True: a call cancelled after 0.5 s reports 0.5 s to on_cancel, in every form."""
    clock = FakeClock()
    gate = Recorder(timed=True, clock=clock)
    cancel_inside(form, gate, lambda: clock.advance(0.5))
    assert gate.log == [("cancel", "p1", form.cancelled, 0.5)]


def test_a_timed_stream_reports_the_time_to_its_first_item() -> None:
    """A stream's duration is its upstream's latency: to its first item, or to its end if none."""
    clock = FakeClock()
    gate = Recorder(timed=True, clock=clock)

    @gate
    def numbers(fail: str = "") -> Generator[int, None, None]:
        clock.advance(1.0)
        if fail == "before":
            clock.advance(2.0)
            raise Boom(fail)
        yield 1
        clock.advance(5.0)
        yield 2
        if fail == "after":
            raise Boom(fail)

    @gate
    def empty(items: tuple[int, ...] = ()) -> Iterator[int]:
        clock.advance(2.5)
        yield from items

    assert list(numbers()) == [1, 2]
    with pytest.raises(Boom, match="after"):
        list(numbers("after"))
    with pytest.raises(Boom, match="before"):
        list(numbers("before"))
    stream = numbers()
    assert next(stream) == 1
    clock.advance(7.0)
    stream.close()
    assert list(empty()) == []
    assert gate.log == [
        ("success", "p1", NO_RESULT, 1.0),
        ("failure", "p2", Boom, 1.0),
        ("failure", "p3", Boom, 3.0),
        ("cancel", "p4", GeneratorExit, 1.0),
        ("success", "p5", NO_RESULT, 2.5),
    ]


def test_a_timed_async_stream_reports_the_time_to_its_first_item(backend: str) -> None:
    """As for sync streams: to the first item, or to the end of a stream without one."""
    clock = FakeClock()
    gate = Recorder(timed=True, clock=clock)

    @gate
    async def numbers(fail: str = "") -> AsyncGenerator[int, None]:
        clock.advance(1.0)
        if fail == "before":
            clock.advance(2.0)
            raise Boom(fail)
        yield 1
        clock.advance(5.0)
        yield 2
        if fail == "after":
            raise Boom(fail)

    @gate
    async def empty(items: tuple[int, ...] = ()) -> AsyncGenerator[int, None]:
        clock.advance(2.5)
        for item in items:
            yield item

    async def main() -> None:
        assert [n async for n in numbers()] == [1, 2]
        with pytest.raises(Boom, match="after"):
            [n async for n in numbers("after")]
        with pytest.raises(Boom, match="before"):
            [n async for n in numbers("before")]
        stream = numbers()
        assert await stream.__anext__() == 1
        clock.advance(7.0)
        await stream.aclose()
        assert [n async for n in empty()] == []

    run_async(main, backend)
    assert gate.log == [
        ("success", "p1", NO_RESULT, 1.0),
        ("failure", "p2", Boom, 1.0),
        ("failure", "p3", Boom, 3.0),
        ("cancel", "p4", GeneratorExit, 1.0),
        ("success", "p5", NO_RESULT, 2.5),
    ]


@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
def test_send_and_throw_reach_the_inner_generator_and_its_value_comes_back(timed: bool) -> None:
    """send() and throw() pass through the gate; `yield from` gets the inner return value."""
    gate = Recorder(timed=timed)

    @gate
    def echo() -> Generator[str, str, str]:
        got = yield "ready"
        try:
            got = yield f"got {got}"
        except Boom:
            got = yield "handled"
        return f"returned {got}"

    def delegate() -> Generator[str, str, str]:
        return (yield from echo())

    stream = delegate()
    assert next(stream) == "ready"
    assert stream.send("x") == "got x"
    assert stream.throw(Boom("thrown")) == "handled"
    with pytest.raises(StopIteration) as stop:
        stream.send("y")
    assert stop.value.value == "returned y"

    unhandled = echo()
    assert next(unhandled) == "ready"
    error = Exception("not handled inside")
    with pytest.raises(Exception, match="not handled inside") as info:
        unhandled.throw(error)
    assert info.value is error
    duration = 0.0 if timed else None
    assert gate.log == [
        ("success", "p1", NO_RESULT, duration),
        ("failure", "p2", Exception, duration),
    ]


def test_asend_and_athrow_reach_the_inner_async_generator(backend: str) -> None:
    """asend() and athrow() pass through the gate to the async stream."""
    gate = Recorder()

    @gate
    async def echo() -> AsyncGenerator[str, str]:
        got = yield "ready"
        try:
            got = yield f"got {got}"
        except Boom:
            got = yield "handled"
        yield f"last {got}"

    async def main() -> list[str]:
        stream = echo()
        out = [
            await stream.__anext__(),
            await stream.asend("x"),
            await stream.athrow(Boom("thrown")),
            await stream.asend("y"),
        ]
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        unhandled = echo()
        assert await unhandled.__anext__() == "ready"
        with pytest.raises(KeyError):
            await unhandled.athrow(KeyError("not handled inside"))
        return out

    assert run_async(main, backend) == ["ready", "got x", "handled", "last y"]
    assert gate.log == [("success", "p1", NO_RESULT, None), ("failure", "p2", KeyError, None)]


# --- 3. the fast path --------------------------------------------------------------------


@pytest.mark.parametrize(("is_async", "timed"), DRIVERS)
def test_while_ready_admit_is_skipped_and_a_settled_success_is_not_reported(
    is_async: Driver, timed: bool
) -> None:
    """ready set: no admit; settled is the same permit: its successes change nothing."""
    gate = Recorder(fast=Fast(ready=FAST, settled=FAST), timed=timed)
    assert [run_call(gate, Work(), is_async) for _ in range(3)] == ["done"] * 3
    assert (gate.admitted, gate.log) == ([], [])


@pytest.mark.parametrize(("is_async", "timed"), DRIVERS)
def test_a_success_is_reported_when_settled_changes_during_the_call(
    is_async: Driver, timed: bool
) -> None:
    """The engine reads settled after the call: a change made meanwhile is reported."""
    fast = Fast(ready=FAST, settled=FAST)
    gate = Recorder(fast=fast, timed=timed)

    def unsettle() -> None:
        fast.settled = None

    assert run_call(gate, Work(probe=unsettle), is_async) == "done"
    assert gate.admitted == []
    assert gate.log == [("success", FAST, "done", 0.0 if timed else None)]


@pytest.mark.parametrize(("is_async", "timed"), DRIVERS)
def test_results_true_reports_every_success(is_async: Driver, timed: bool) -> None:
    """A gate that judges results sees each one, even while the fast path is settled."""
    gate = Recorder(fast=Fast(ready=FAST, settled=FAST), results=True, timed=timed)
    for _ in range(2):
        assert run_call(gate, Work(), is_async) == "done"
    duration = 0.0 if timed else None
    assert gate.admitted == []
    assert gate.log == [("success", FAST, "done", duration)] * 2


@pytest.mark.parametrize(("is_async", "timed"), DRIVERS)
def test_a_call_admitted_by_admit_is_always_reported(is_async: Driver, timed: bool) -> None:
    """ready None: admit decides, and the success is reported even if its permit is settled."""
    gate = Recorder(fast=Fast(ready=None, settled=FAST), timed=timed, decide=lambda _: FAST)
    assert run_call(gate, Work(), is_async) == "done"
    assert len(gate.admitted) == 1
    assert gate.log == [("success", FAST, "done", 0.0 if timed else None)]


@pytest.mark.parametrize(("is_async", "timed"), DRIVERS)
def test_a_failure_on_the_fast_path_is_reported(is_async: Driver, timed: bool) -> None:
    """A settled fast path hides successes only: a failure reaches on_failure."""
    gate = Recorder(fast=Fast(ready=FAST, settled=FAST), timed=timed)
    with pytest.raises(Boom):
        run_call(gate, Work(Boom()), is_async)
    assert gate.admitted == []
    assert gate.log == [("failure", FAST, Boom, 0.0 if timed else None)]


@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
def test_a_cancellation_on_the_fast_path_is_reported(timed: bool, backend: str) -> None:
    """A settled fast path hides successes only: cancellations reach on_cancel."""
    gate = Recorder(fast=Fast(ready=FAST, settled=FAST), timed=timed)
    with pytest.raises(KeyboardInterrupt):
        gate.call(Work(KeyboardInterrupt()))
    cancel_inside(attrs.evolve(FORM["acall"], backend=backend), gate)
    duration = 0.0 if timed else None
    assert gate.admitted == []
    assert gate.log == [
        ("cancel", FAST, KeyboardInterrupt, duration),
        ("cancel", FAST, cancelled_error(backend), duration),
    ]


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_ready_permit_admits_every_form_without_admit(form: Form) -> None:
    """Streams and blocks take the ready permit too, and report with it."""
    gate = Recorder(fast=Fast(ready=FAST, settled=None))
    assert form.run(gate, Work()) == "done"
    with pytest.raises(Boom):
        form.run(gate, Work(Boom()))
    assert gate.admitted == []
    assert gate.log == [
        ("success", FAST, form.outcome("done"), None),
        ("failure", FAST, Boom, None),
    ]


@pytest.mark.parametrize("timed", [False, True], ids=["untimed", "timed"])
@pytest.mark.parametrize("form", forms(compose=False))
def test_a_none_permit_without_a_fast_path_still_gets_on_success(form: Form, timed: bool) -> None:
    """Regression: admit returning None (no fast path) used to skip on_success."""
    gate = Recorder(timed=timed, decide=lambda _: None)
    assert form.run(gate, Work()) == "done"
    assert gate.log == [("success", None, form.outcome("done"), 0.0 if timed else None)]


# --- 4. time waits ---------------------------------------------------------------------


def test_a_sync_time_wait_sleeps_on_the_gates_fake_clock() -> None:
    """Wait(seconds, permit): the call sleeps on the gate's clock, then runs with the permit."""
    clock = FakeClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(1.5, "later"))
    work = Work(probe=clock.now)
    assert gate.call(work) == "done"
    assert (clock.sleeps, work.seen) == ([1.5], [1.5])
    assert gate.log == [("success", "later", "done", None)]


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_time_wait_sleeps_sync_or_async_then_runs_with_its_permit(form: Form) -> None:
    """Sync code sleeps with clock.sleep, async code with clock.asleep (never blocking the loop)."""
    clock = SpyClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(1.5, "later"))
    work = Work(probe=clock.now)
    assert form.run(gate, work) == "done"
    assert clock.calls == [("asleep" if form.is_async else "sleep", 1.5)]
    assert work.seen == [1.5]
    assert gate.log == [("success", "later", form.outcome("done"), None)]


@pytest.mark.parametrize("form", forms(compose=False))
def test_testing_mode_skips_the_sleep_of_a_time_wait(form: Form) -> None:
    """In testing mode a time wait sleeps not at all, and the call still runs with its permit."""
    clock = SpyClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(1.5, "later"))
    with set_testing(True):
        assert form.run(gate, Work()) == "done"
    assert clock.calls == []
    assert gate.log == [("success", "later", form.outcome("done"), None)]


@SYNC_ASYNC
def test_a_zero_time_wait_does_not_sleep(is_async: Driver) -> None:
    """Wait(0, permit) runs the call at once with the permit."""
    clock = SpyClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(0.0, "now"))
    assert run_call(gate, Work(), is_async) == "done"
    assert clock.calls == []
    assert gate.log == [("success", "now", "done", None)]


@pytest.mark.parametrize(
    ("seconds", "refused"), [(1.5, False), (1.999, False), (2.0, True), (3.0, True)]
)
@SYNC_ASYNC
def test_a_time_wait_ending_at_or_after_the_deadline_is_refused_at_once(
    is_async: Driver, seconds: float, refused: bool
) -> None:
    """Inside Timeout(2): a wait that would end at or after the deadline never sleeps."""
    clock = FakeClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(seconds, "later"))
    pipeline = rs.compose(rs.Timeout(2.0, clock=clock), gate)
    work = Work()
    if refused:
        with pytest.raises(rs.RejectedError, match="expired"):
            run_call(pipeline, work, is_async)
        assert (clock.sleeps, work.seen) == ([], [])
        assert gate.log == [("expired", "later", Wait, None)]
    else:
        assert run_call(pipeline, work, is_async) == "done"
        assert (clock.sleeps, work.seen) == ([seconds], [None])
        assert gate.log == [("success", "later", "done", None)]


def test_a_time_wait_in_a_timeout_block_is_refused_at_once(backend: str) -> None:
    """``with rs.Timeout(2.0, clock=clock)``: the gate's wait of 2 s (call or block) is refused."""
    clock = FakeClock()
    gate = Recorder(clock=clock, decide=lambda _: Wait(2.0, "later"))
    work = Work()
    with rs.Timeout(2.0, clock=clock):
        with pytest.raises(rs.RejectedError, match="expired"):
            gate.call(work)
        with pytest.raises(rs.RejectedError, match="expired"), gate:
            work()

    async def main() -> None:
        async with rs.Timeout(2.0, clock=clock):
            with pytest.raises(rs.RejectedError, match="expired"):
                await gate.acall(work.run_async)
            with pytest.raises(rs.RejectedError, match="expired"):
                async with gate:
                    work()

    run_async(main, backend)
    assert (clock.sleeps, work.seen) == ([], [])
    assert gate.log == [("expired", "later", Wait, None)] * 4


@SYNC_ASYNC
def test_the_default_on_expired_refuses(is_async: Driver) -> None:
    """GatePolicy.on_expired raises RejectedError naming the gate."""
    clock = FakeClock()
    pipeline = rs.compose(rs.Timeout(1.0, clock=clock), Pause(5.0, clock))
    work = Work()
    with pytest.raises(rs.RejectedError, match="Pause: the wait cannot end before the deadline"):
        run_call(pipeline, work, is_async)
    assert (clock.sleeps, work.seen) == ([], [])


@SYNC_ASYNC
def test_on_expired_may_admit_the_call_after_all(is_async: Driver) -> None:
    """A permit returned by on_expired runs the call, and reports with that permit."""
    clock = FakeClock()
    gate = Lenient(clock=clock, decide=lambda _: Wait(5.0, "later"))
    with rs.Timeout(1.0, clock=clock):
        assert run_call(gate, Work(), is_async) == "done"
    assert clock.sleeps == []
    assert gate.log == [("expired", "later", Wait, None), ("success", "late", "done", None)]


@pytest.mark.parametrize("form", forms(is_async=True, compose=False))
def test_a_call_cancelled_during_its_sleep_reaches_on_cancel(form: Form) -> None:
    """A task cancelled while it sleeps: on_cancel(permit, CancelledError); the body never runs."""
    clock = SpyClock(hold=True)
    gate = Recorder(clock=clock, decide=lambda _: Wait(1.5, "later"))
    asyn, blocker = form.asyn, Blocker()
    assert asyn is not None
    cancel_task(lambda: asyn(gate, blocker), lambda: bool(clock.calls), form.backend)
    assert clock.calls == [("asleep", 1.5)]
    assert not blocker.started
    assert gate.log == [("cancel", "later", form.cancelled, None)]


@pytest.mark.parametrize("form", forms(is_async=False, compose=False))
def test_a_call_interrupted_during_its_sleep_reaches_on_cancel(form: Form) -> None:
    """KeyboardInterrupt in the sleep: on_cancel(permit, KeyboardInterrupt); the body never runs."""
    clock = SpyClock(interrupt=True)
    gate = Recorder(clock=clock, decide=lambda _: Wait(1.5, "later"))
    work = Work()
    with pytest.raises(KeyboardInterrupt):
        form.run(gate, work)
    assert work.seen == []
    assert gate.log == [("cancel", "later", KeyboardInterrupt, None)]


@pytest.mark.parametrize("seconds", [-1.0, -1e-9, -math.inf, math.nan])
def test_wait_refuses_negative_or_nan_seconds(seconds: float) -> None:
    """Wait() checks its seconds, for time and queue waits alike."""
    with pytest.raises(ValueError, match="seconds must be >= 0 or None"):
        Wait(seconds, "permit")
    with pytest.raises(ValueError, match="seconds must be >= 0 or None"):
        Wait(seconds, waiter=Waiter())


def test_a_time_wait_needs_seconds() -> None:
    """Only a queue wait may last without a limit."""
    with pytest.raises(ValueError, match="a time wait needs seconds"):
        Wait(None, "permit")
    waiter = Waiter()
    queued = Wait(None, waiter=waiter)
    timed = Wait(0.0, "permit")
    assert (queued.seconds, queued.permit, queued.waiter) == (None, None, waiter)
    assert (timed.seconds, timed.permit, timed.waiter) == (0.0, "permit", None)


# --- 5. queue waits ----------------------------------------------------------------------


def test_a_waiting_thread_runs_when_the_holder_releases() -> None:
    """Limit 1 across real threads: the second caller waits until the first one ends."""
    gate = Queue(1)
    order: list[str] = []
    inside, go = threading.Event(), threading.Event()

    def hold() -> str:
        inside.set()
        assert go.wait(WAIT)
        order.append("holder")
        return "held"

    def queued() -> str:
        order.append("waiter")
        return "queued"

    holder = Background(lambda: gate.call(hold))
    assert inside.wait(WAIT)
    waiter = Background(lambda: gate.call(queued))
    gate.wait_for_queue(1)
    assert order == []
    go.set()
    assert (holder.result(), waiter.result()) == ("held", "queued")
    assert order == ["holder", "waiter"]
    assert (gate.running, list(gate.waiters), gate.cancelled) == (0, [], [])


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_queued_call_of_every_form_runs_when_woken(form: Form) -> None:
    """Every shape and block waits in the queue (sync on an event, async on the loop)."""
    gate = Queue(1)
    work = Work(probe=lambda: gate.running)
    with gate:
        call = Background(lambda: form.run(gate, work))
        gate.wait_for_queue(1)
        assert work.seen == []
    assert call.result() == "done"
    assert work.seen == [1]
    assert (gate.running, list(gate.waiters)) == (0, [])


# The run order of tasks woken in one step (up to ten) is asyncio's: see ASYNCIO_WORLD.
@pytest.mark.parametrize("backend", ASYNCIO_WORLD)
def test_a_thousand_tasks_through_a_limit_of_ten_in_fifo_order(backend: str) -> None:
    """1000 tasks, limit 10: never more than 10 run, all complete, waiters go in FIFO order."""
    gate = Queue(10)
    running = peak = 0
    started: list[int] = []

    async def work(number: int) -> int:
        nonlocal running, peak
        started.append(number)
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await checkpoint()
        running -= 1
        return number

    async def main() -> list[int]:
        async with Tasks() as tasks:
            started_tasks = [await tasks.start(gate.acall, work, n) for n in range(1000)]
        return [await task.result() for task in started_tasks]

    assert run_async(main, backend) == list(range(1000))
    assert peak == 10
    assert started == list(range(1000))
    assert (gate.running, list(gate.waiters), len(gate.issued)) == (0, [], 990)
    assert not any(waiter.waiting for waiter in gate.issued)


@SYNC_ASYNC
def test_a_waiter_that_times_out_is_refused_and_leaves_the_queue(is_async: Driver) -> None:
    """max_wait 0.01 s: on_expired's RejectedError; the waiter leaves; no slot leaks."""
    gate = Queue(2, max_wait=0.01)
    work = Work()
    with gate, gate:
        with pytest.raises(rs.RejectedError, match="no room in time"):
            run_call(gate, work, is_async)
        assert (gate.running, list(gate.waiters), work.seen) == (2, [], [])
    assert gate.running == 0
    [waiter] = gate.issued
    assert gate.expired[0].waiter is waiter
    # Both slots are free again: two calls are admitted at once, without waiting.
    with gate, gate:
        assert gate.running == 2
    assert (gate.running, len(gate.issued)) == (0, 1)
    assert run_call(gate, work, is_async) == "done"


def test_cancelled_waiters_leave_the_queue_and_leak_no_slot(backend: str) -> None:
    """task.cancel() on waiting tasks: on_cancel gets their Wait; the others still run."""
    gate = Queue(2)
    done: list[int] = []

    async def main() -> None:
        release = anyio.Event()

        async def hold(number: int) -> None:
            await release.wait()
            done.append(number)

        async def quick(number: int) -> None:
            done.append(number)

        async with Tasks() as tasks:
            for n in range(2):
                await tasks.start(gate.acall, hold, n)
            waiters = [await tasks.start(gate.acall, quick, n) for n in range(10, 15)]
            await until(lambda: len(gate.waiters) == 5)
            for task in waiters[::2]:
                task.cancel()
            for task in waiters[::2]:
                await task.wait()
                assert task.cancelled
            assert len(gate.waiters) == 2
            release.set()

    run_async(main, backend)
    assert sorted(done) == [0, 1, 11, 13]
    assert len(gate.cancelled) == 3
    assert all(isinstance(permit, Wait) for permit in gate.cancelled)
    assert (gate.running, list(gate.waiters)) == (0, [])
    gone = [w.waiter for w in gate.cancelled if isinstance(w, Wait) and w.waiter is not None]
    assert [waiter.wake("slot") for waiter in gone] == [False] * 3
    with gate, gate:
        assert gate.running == 2
    assert len(gate.issued) == 5  # the two blocks above did not wait


def test_a_waiter_cancelled_after_its_wake_hands_the_slot_on(backend: str) -> None:
    """Woken, then cancelled before it resumes: on_cancel gets the permit, the next one runs."""
    gate = Queue(1)
    done: list[str] = []

    async def quick(name: str) -> None:
        done.append(name)

    async def main() -> None:
        async with Tasks() as tasks:
            with gate:
                first = await tasks.start(gate.acall, quick, "first")
                second = await tasks.start(gate.acall, quick, "second")
                await until(lambda: len(gate.waiters) == 2)
            # Leaving the block woke "first"; it is cancelled before it can resume.
            assert not gate.issued[0].waiting
            first.cancel()
            await first.wait()
            assert first.cancelled
            await second.result()

    run_async(main, backend)
    assert done == ["second"]
    assert gate.cancelled == ["slot"]
    assert (gate.running, list(gate.waiters)) == (0, [])


def test_a_release_in_one_thread_wakes_a_task_waiting_in_another_threads_loop(backend: str) -> None:
    """The wake crosses threads: a task blocked on its loop's future is resumed thread-safely."""
    gate = Queue(1)
    waiting = threading.Event()
    work = Work(probe=threading.get_ident)

    async def main() -> str:
        async with Tasks() as tasks:
            task = await tasks.start(gate.acall, work.run_async)
            await until(lambda: len(gate.waiters) == 1)  # the task waits on its loop's wakeup
            waiting.set()
        result: str = await task.result()
        return result

    with gate:
        loop = Background(lambda: run_async(main, backend))
        assert waiting.wait(WAIT)
        assert work.seen == []
    assert loop.result() == "done"
    assert work.seen == [loop.thread.ident]
    assert (gate.running, list(gate.waiters)) == (0, [])


def test_a_task_leaving_its_block_wakes_a_waiting_thread(backend: str) -> None:
    """The other way round: a block left in a task wakes a thread blocked on its waiter."""
    gate = Queue(1)
    work = Work(probe=lambda: gate.running)

    async def main() -> Background[str]:
        async with gate:
            waiter = Background(lambda: gate.call(work))
            await anyio.to_thread.run_sync(gate.wait_for_queue, 1)
            assert work.seen == []
        return waiter

    assert run_async(main, backend).result() == "done"
    assert work.seen == [1]
    assert (gate.running, list(gate.waiters)) == (0, [])


def test_threads_and_tasks_share_one_queue() -> None:
    """Threads and tasks on two loops, all through one gate of 3: never more than 3 at once."""
    gate = Queue(3)
    state = crowd(gate, sync_calls=100, async_calls=200, pause=os.sched_yield)
    assert state["done"] == 4 * 100 + 2 * 200
    assert 1 <= state["peak"] <= 3
    assert (state["running"], gate.running, list(gate.waiters)) == (0, 0, [])


def test_a_waiter_is_woken_once() -> None:
    """wake() hands the permit over once; a second wake returns False and changes nothing."""
    waiter = Waiter()
    assert (waiter.waiting, waiter.permit) == (True, None)
    assert waiter.wake("first") is True
    assert waiter.wake("second") is False
    assert (waiter.waiting, waiter.permit) == (False, "first")


@SYNC_ASYNC
def test_wake_after_the_caller_timed_out_returns_false(is_async: Driver) -> None:
    """A caller that gave up cannot be woken: the permit stays the gate's."""
    gate = Queue(1, max_wait=0.01)
    with gate, pytest.raises(rs.RejectedError):
        run_call(gate, Work(), is_async)
    [waiter] = gate.issued
    assert not waiter.waiting
    assert waiter.wake("slot") is False
    assert waiter.permit is None


def prewoken(target: object) -> Wait:
    """admit() for a caller woken before it starts to wait, with no limit on the wait."""
    waiter = Waiter()
    assert waiter.wake("early")
    return Wait(None, waiter=waiter)


@pytest.mark.parametrize("form", forms(compose=False))
def test_a_waiter_woken_before_its_caller_waits_returns_at_once(form: Form) -> None:
    """A wake that comes first is not lost: the wait returns at once with the permit."""
    gate = Recorder(decide=prewoken)
    assert Background(lambda: form.run(gate, Work())).result() == "done"
    assert gate.log == [("success", "early", form.outcome("done"), None)]


@SYNC_ASYNC
def test_a_zero_second_queue_wait_takes_a_wake_or_expires(is_async: Driver) -> None:
    """Wait(0, waiter): the permit if the waiter was woken already, else on_expired at once."""

    def zero(target: object) -> Wait:
        waiter = Waiter()
        if len(gate.admitted) == 1:
            waiter.wake("early")
        return Wait(0.0, waiter=waiter)

    gate = Recorder(decide=zero)
    assert run_call(gate, Work(), is_async) == "done"
    with pytest.raises(rs.RejectedError, match="expired"):
        run_call(gate, Work(), is_async)
    assert gate.log == [("success", "early", "done", None), ("expired", None, Wait, None)]


@pytest.mark.parametrize("max_wait", [None, 3600.0], ids=["no-max-wait", "long-max-wait"])
@SYNC_ASYNC
def test_a_queue_wait_ends_at_the_deadline(is_async: Driver, max_wait: float | None) -> None:
    """Inside a Timeout the wait lasts until the deadline at most (0.02 s here), then expires."""
    gate = Queue(1, max_wait=max_wait)
    work = Work()

    def attempt() -> str:
        # The fake clock stands still: the deadline is 0.02 s of real waiting away.
        with rs.Timeout(0.02, clock=FakeClock()):
            return run_call(gate, work, is_async)

    with gate, pytest.raises(rs.RejectedError, match="no room in time"):
        Background(attempt).result()
    assert (work.seen, len(gate.expired), list(gate.waiters), gate.running) == ([], 1, [], 0)


@SYNC_ASYNC
def test_a_queue_wait_past_the_deadline_is_refused_without_waiting(is_async: Driver) -> None:
    """A deadline already reached: on_expired at once, even with no max_wait."""
    clock = FakeClock()
    gate = Queue(1)
    work = Work()

    def attempt() -> str:
        with rs.Timeout(1.0, clock=clock):
            clock.advance(1.0)
            return run_call(gate, work, is_async)

    with gate, pytest.raises(rs.RejectedError, match="no room in time"):
        Background(attempt).result()
    assert (work.seen, len(gate.expired), list(gate.waiters), gate.running) == ([], 1, [], 0)


# --- 6. with and async with --------------------------------------------------------------


def test_the_same_gate_nests(backend: str) -> None:
    """Two blocks of one gate: each admitted, the inner one reported first, with its permit."""
    gate = Recorder()
    with gate as outer:
        assert outer is gate
        with gate:
            assert gate.admitted == [None, None]
        assert gate.log == [("success", "p2", NO_RESULT, None)]
    assert gate.log[1:] == [("success", "p1", NO_RESULT, None)]

    async def main() -> None:
        async with gate as outer:
            assert outer is gate
            with pytest.raises(Boom):
                async with gate:
                    raise Boom("inner")

    run_async(main, backend)
    assert gate.log[2:] == [("failure", "p4", Boom, None), ("success", "p3", NO_RESULT, None)]


def test_blocks_suspended_in_generators_report_their_own_permits() -> None:
    """Two generators inside ``with gate``, advanced in turns and left in entry order."""
    gate = Recorder()

    def worker(name: str) -> Generator[str, None, None]:
        with gate:
            yield f"{name} in"
            yield f"{name} still in"

    first, second = worker("a"), worker("b")
    assert next(first) == "a in"
    assert next(second) == "b in"
    assert next(first) == "a still in"
    assert next(second) == "b still in"
    with pytest.raises(StopIteration):
        next(first)  # the first block entered leaves first
    second.close()
    assert gate.log == [("success", "p1", NO_RESULT, None), ("cancel", "p2", GeneratorExit, None)]


def test_async_blocks_suspended_in_async_generators_report_their_own_permits(backend: str) -> None:
    """Two async generators inside ``async with gate``, advanced in turns, left in entry order."""
    gate = Recorder()

    async def worker(name: str) -> AsyncGenerator[str, None]:
        async with gate:
            yield f"{name} in"
            yield f"{name} still in"

    async def main() -> None:
        first, second = worker("a"), worker("b")
        assert await first.__anext__() == "a in"
        assert await second.__anext__() == "b in"
        assert await first.__anext__() == "a still in"
        assert await second.__anext__() == "b still in"
        await first.aclose()
        with pytest.raises(StopAsyncIteration):
            await second.__anext__()

    run_async(main, backend)
    assert gate.log == [("cancel", "p1", GeneratorExit, None), ("success", "p2", NO_RESULT, None)]


def test_a_block_left_while_a_generators_block_is_suspended_reports_its_own_permit() -> None:
    """The consumer's block leaves before the generator's block it enclosed."""
    gate = Recorder()

    def worker() -> Generator[str, None, None]:
        with gate:
            yield "in"

    with gate:
        stream = worker()
        assert next(stream) == "in"
    assert gate.log == [("success", "p1", NO_RESULT, None)]
    stream.close()
    assert gate.log[1:] == [("cancel", "p2", GeneratorExit, None)]


def test_a_block_entered_through_an_exit_stack_reports_its_permit() -> None:
    """ExitStack enters and leaves from its own frames: the gate's innermost block is left."""
    gate = Recorder()
    with contextlib.ExitStack() as stack:
        assert stack.enter_context(gate) is gate
        assert gate.admitted == [None]
    assert gate.log == [("success", "p1", NO_RESULT, None)]


def test_exit_without_enter_is_a_runtime_error(backend: str) -> None:
    """__exit__ / __aexit__ with no block of this gate open, in this context, raise RuntimeError."""
    gate = Recorder()
    message = r"Recorder.__exit__ without a matching __enter__"
    with pytest.raises(RuntimeError, match=message):
        gate.__exit__(None, None, None)
    with pytest.raises(RuntimeError, match=message):
        run_async(lambda: gate.__aexit__(None, None, None), backend)
    with gate:
        pass
    with pytest.raises(RuntimeError, match=message):
        gate.__exit__(None, None, None)
    # A block entered in this thread is not another thread's to leave.
    with gate, pytest.raises(RuntimeError, match=message):
        Background(lambda: gate.__exit__(None, None, None)).result()
    assert gate.log == [("success", "p1", NO_RESULT, None), ("success", "p2", NO_RESULT, None)]
    with pytest.raises(RuntimeError, match=r"Concurrency.__exit__ without"):
        Concurrency(1).__exit__(None, None, None)


@pytest.mark.parametrize(
    "error", [Boom("inside"), KeyboardInterrupt(), asyncio.CancelledError()], ids=repr
)
@SYNC_ASYNC
def test_a_blocks_exception_propagates_unchanged(is_async: Driver, error: BaseException) -> None:
    """The block's exception is reported and re-raised as is: the gate never suppresses it."""
    gate = Recorder()

    async def main() -> None:
        async with gate:
            raise error

    with pytest.raises(type(error)) as info:
        if is_async:
            run_async(main, backend_of(is_async))
        else:
            with gate:
                raise error
    assert info.value is error
    kind = "failure" if isinstance(error, Exception) else "cancel"
    assert gate.log == [(kind, "p1", type(error), None)]


# --- 7. bad input ------------------------------------------------------------------------


def test_a_slotted_gate_without_a_pipeline_names_pipeline_field(backend: str) -> None:
    """__slots__ and no _pipeline: decorating or calling says what the class needs."""
    gate = Slotted()

    def fn() -> str:
        return "done"

    async def afn() -> str:
        return "done"

    with pytest.raises(TypeError, match=r"Slotted has __slots__ .*pipeline_field"):
        gate(fn)
    with pytest.raises(TypeError, match=r"Slotted has __slots__ .*pipeline_field"):
        gate.call(fn)
    with pytest.raises(TypeError, match=r"Slotted has __slots__ .*pipeline_field"):
        run_async(lambda: gate.acall(afn), backend)
    assert gate.permits == 0
    # What needs no pipeline of its own still works: blocks, and a composed pipeline.
    with gate:
        pass
    assert rs.compose(gate).call(fn) == "done"
    assert gate.permits == 2


def test_a_pipeline_slot_as_the_error_advises_works() -> None:
    """The error's second advice: a `_pipeline` slot holding resilience.Pipeline((self,))."""

    class WithSlot(Recorder):
        __slots__ = ("_pipeline",)

        def __init__(self) -> None:
            super().__init__()
            object.__setattr__(self, "_pipeline", rs.Pipeline((self,)))

    gate = WithSlot()
    assert gate.call(Work()) == "done"
    assert gate.log == [("success", "p1", "done", None)]


def test_the_field_the_error_names_is_exported_by_the_engine() -> None:
    """The error's first advice, `resilience.engine.pipeline_field()`, must exist and work."""
    with pytest.raises(TypeError) as info:
        Slotted().call(Work())
    assert "resilience.engine.pipeline_field()" in str(info.value)
    assert "pipeline_field" in vars(engine), (
        "the TypeError sends users to resilience.engine.pipeline_field(), "
        "which resilience.engine does not define"
    )
    pipeline_field = vars(engine)["pipeline_field"]

    @attrs.define
    class Fixed(GatePolicy):
        permits: int = 0
        _pipeline: Any = pipeline_field()

        def admit(self, target: object, /) -> str:
            self.permits += 1
            return "fixed"

    gate = Fixed()
    assert gate.call(Work()) == "done"
    assert gate.permits == 1


@pytest.mark.parametrize("form", forms(compose=False))
def test_an_error_raised_by_admit_propagates_and_nothing_is_recorded(form: Form) -> None:
    """A gate that fails to decide (not a RejectedError): its error propagates, nothing runs."""
    error = LookupError("the gate's store is down")

    def broken(target: object) -> Any:
        raise error

    gate = Recorder(decide=broken)
    work = Work()
    with pytest.raises(LookupError) as info:
        form.run(gate, work)
    assert info.value is error
    assert (len(gate.admitted), gate.log, work.seen) == (1, [], [])


# --- the module ----------------------------------------------------------------------


def test_the_engine_exports_its_public_names() -> None:
    """Every name in __all__ exists; the classes present themselves as resilience.engine's."""
    assert sorted(engine.__all__) == sorted(set(engine.__all__))
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    for cls in (engine.FastPath, engine.Gate, GatePolicy, Wait, Waiter):
        assert cls.__module__ == "resilience.engine"
    assert repr(NO_RESULT) == "NO_RESULT"
    assert pickle.loads(pickle.dumps(NO_RESULT)) is NO_RESULT
    assert (repr(Wait(1.0)), repr(Wait(None, waiter=Waiter()))) == (
        "<Wait time seconds=1.0>",
        "<Wait queue seconds=None>",
    )


# --- docs/writing-policies.md: its examples, run as written ----------------------------

WRITING = Path(__file__).resolve().parent.parent / "docs" / "writing-policies.md"


def docs_example(name: str, **names: Any) -> dict[str, Any]:
    """Run the block after ``<!-- example: NAME -->`` in the "Writing a policy" page."""
    match = re.search(
        rf"<!-- example: {name} -->\n```python\n(.*?)```", WRITING.read_text(), re.DOTALL
    )
    assert match is not None, f"docs/writing-policies.md lost its {name!r} example"
    namespace: dict[str, Any] = {"__name__": f"docs_example_{name}", **names}
    run_block("writing-policies.md", match.group(1), namespace)
    return namespace


def test_the_docs_concurrency_example_is_a_complete_policy(tmp_path: Path, backend: str) -> None:
    """The page's policy, in at most 40 lines, works on the four shapes and as a block."""
    block = re.search(
        r"<!-- example: concurrency -->\n```python\n(.*?)```", WRITING.read_text(), re.DOTALL
    )
    assert block is not None
    lines = block.group(1).splitlines()
    policy = lines[: lines.index("limit = Concurrency(10)")]
    assert len([line for line in policy if line.strip()]) <= 40
    example = docs_example("concurrency")
    limit = example["limit"]
    assert limit.running == 0  # the page's own `with limit:` block ran and left
    text = tmp_path / "lines.txt"
    text.write_text("a\nb\n")
    assert list(example["lines"](str(text))) == ["a\n", "b\n"]
    assert run_async(lambda: example["fetch"]("https://example.invalid"), backend) is None
    gate = example["Concurrency"](1)
    form = {name: attrs.evolve(f, backend=backend) for name, f in FORM.items()}
    for name in ("function", "method", "coroutine", "generator", "async generator", "with"):
        work = Work(probe=lambda: gate.running)
        assert form[name].run(gate, work) == "done", name
        assert (work.seen, gate.running) == ([1], 0), name
    for name in ("function", "async generator"):
        work = Work(Boom("x"), probe=lambda: gate.running)
        with pytest.raises(Boom):
            form[name].run(gate, work)
        assert gate.running == 0, name
    with gate, pytest.raises(rs.RejectedError, match="1 calls are running already"):
        FORM["function"].run(gate, Work())


def test_the_docs_pace_example_makes_callers_wait_their_turn(backend: str) -> None:
    """The pacing gate of the page: the second and third calls sleep their turn."""
    clock = FakeClock()
    pace: GatePolicy = docs_example("pace")["Pace"](2.0, clock)
    starts: list[float] = []

    @pace
    def call() -> None:
        starts.append(clock.now())

    call()
    call()
    call()
    assert starts == [0.0, 2.0, 4.0]
    assert clock.sleeps == [2.0, 2.0]

    async def main() -> None:
        @pace
        async def acall() -> None:
            starts.append(clock.now())

        await acall()

    run_async(main, backend)
    assert starts[-1] == 6.0
    with set_testing(True):
        call()  # its turn is at 8.0: testing mode does not sleep
    assert clock.sleeps == [2.0, 2.0, 2.0]
