"""
Calling a gate every way a user can, and waiting for it: helpers shared by the gate tests.

A `Form` is one way to run a body through a gate (`resilience.engine.GatePolicy`,
`resilience.Bulkhead` among them): a decorated function, method, generator,
coroutine or async generator, ``call``/``acall``, `resilience.compose`, or a
``with``/``async with`` block. Each test module lists the forms it runs
(their names are the parametrization ids) and picks them with `pick`, which
runs every async form in each of `BACKENDS` (asyncio and trio natively, and
anyio on both): the bodies here wait with anyio, which serves all of them.

Every wait here is for an event, bounded by ``WAIT``: a hang fails the test
instead of hiding.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any, Final, Generic, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import pytest
import trio

import resilience as rs
from resilience.engine import NO_RESULT, GatePolicy

from .threads import WAIT, join_all

T = TypeVar("T")


class Boom(Exception):
    """The failure the protected functions raise."""


# --- waiting for things, never for time ------------------------------------------------


def eventually(condition: Callable[[], bool]) -> None:
    """Poll *condition* (another thread makes it true); a hang fails after WAIT seconds."""
    give_up = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < give_up, "the condition never held (a hang?)"
        time.sleep(0.0002)


# --- the async worlds ------------------------------------------------------------------

BACKENDS: Final = ("asyncio", "trio", "anyio-asyncio", "anyio-trio")
"""Where async tests run: asyncio and trio natively, and anyio on each of its backends."""


ASYNCIO_WORLD: Final = ("asyncio", "anyio-asyncio")
"""The backends that run asyncio's scheduler: tasks woken in one step run in the order woken.

Under trio they run in any order (its scheduler shuffles them on purpose): a test
that observes the run order of tasks woken together runs in these backends only.
"""


def cancelled_error(backend: str) -> type[BaseException]:
    """The exception a cancelled task sees under *backend*."""
    return trio.Cancelled if backend.endswith("trio") else asyncio.CancelledError


async def checkpoint() -> None:
    """Let the other tasks run once, under any backend."""
    await anyio.lowlevel.checkpoint()


def run_async(main: Callable[[], Coroutine[Any, Any, T]], backend: str = "asyncio") -> T:
    """Run ``main()`` under *backend* (see `BACKENDS`); a hang fails after WAIT seconds."""
    if backend == "asyncio":

        async def bounded() -> T:
            async with asyncio.timeout(WAIT):
                return await main()

        return asyncio.run(bounded())
    if backend == "trio":

        async def bounded_trio() -> T:
            with trio.fail_after(WAIT):
                return await main()

        return trio.run(bounded_trio)

    async def bounded_anyio() -> T:
        with anyio.fail_after(WAIT):
            return await main()

    return anyio.run(bounded_anyio, backend=backend.removeprefix("anyio-"))


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until *condition* holds (a hang fails after WAIT seconds)."""
    give_up = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < give_up, "the condition never held (a hang?)"
        await checkpoint()


def cancel_task(
    start: Callable[[], Coroutine[Any, Any, object]],
    ready: Callable[[], bool],
    backend: str = "asyncio",
) -> None:
    """Run *start()* as a task, cancel it once *ready()*, and check the cancellation reaches it."""

    async def main() -> None:
        task = asyncio.create_task(start())
        await until(ready)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def main_scoped() -> None:
        # trio and anyio cancel a task through the cancel scope of its nursery.
        cancelled = cancelled_error(backend)
        caught: list[BaseException] = []

        async def guarded() -> None:
            try:
                await start()
            except cancelled as exc:
                caught.append(exc)
                raise

        opened = trio.open_nursery() if backend == "trio" else anyio.create_task_group()
        async with opened as group:
            group.start_soon(guarded)
            await until(ready)
            group.cancel_scope.cancel()
        assert len(caught) == 1, "the task was not cancelled: it ended by itself"

    run_async(main if backend == "asyncio" else main_scoped, backend)


class Task(Generic[T]):
    """
    A task a test started with `Tasks.start`, in any backend: cancel it, wait for it, read it.

    Under asyncio (anyio's asyncio backend included) it is an `asyncio.Task`, and
    `cancel` is ``task.cancel()``; under trio it runs in the nursery of its
    `Tasks`, in a cancel scope of its own that `cancel` cancels.
    """

    def __init__(self, task: asyncio.Task[T] | None = None) -> None:
        self._task = task
        self._scope = anyio.CancelScope()
        self._ended = anyio.Event() if task is None else None
        self._out: list[T] = []
        self._error: list[BaseException] = []

    async def _run(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()  # the caller resumes once this task has taken its first step
        try:
            with self._scope:
                self._out.append(await fn(*args))
        except BaseException as exc:  # the task's outcome: the test reads it
            self._error.append(exc)
        finally:
            assert self._ended is not None
            self._ended.set()

    def cancel(self) -> None:
        """Cancel the task (it sees its backend's cancellation)."""
        if self._task is not None:
            self._task.cancel()
        else:
            self._scope.cancel()

    def done(self) -> bool:
        if self._task is not None:
            return self._task.done()
        assert self._ended is not None
        return self._ended.is_set()

    async def wait(self) -> None:
        """Wait until the task has ended, whatever ended it."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        else:
            assert self._ended is not None
            await self._ended.wait()

    @property
    def cancelled(self) -> bool:
        """Whether the task ended cancelled (it must have ended)."""
        assert self.done()
        if self._task is not None:
            return self._task.cancelled()
        return bool(self._scope.cancelled_caught)

    async def result(self) -> T:
        """Wait for the task; return its result or raise what it raised (it was not cancelled)."""
        await self.wait()
        assert not self.cancelled, "the task was cancelled: it has no result"
        if self._task is not None:
            return self._task.result()
        if self._error:
            raise self._error[0]
        return self._out[0]


class Tasks:
    """
    ``async with Tasks() as tasks:`` starts `Task` objects that tests cancel one by one.

    Tasks first run in the order they were started: asyncio runs new tasks in
    that order; under trio (whose scheduler may run the tasks of one step in
    any order) `start` returns once the task has run up to its first wait. The
    block waits for every task before it is left.
    """

    def __init__(self) -> None:
        self._group: anyio.abc.TaskGroup | None = None
        self._tasks: list[Task[Any]] = []

    async def __aenter__(self) -> Tasks:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._group = await anyio.create_task_group().__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        if self._group is None:
            for task in self._tasks:
                await task.wait()
            return None
        return await self._group.__aexit__(*exc_info)

    async def start(self, fn: Callable[..., Awaitable[T]], *args: Any) -> Task[T]:
        """Start ``fn(*args)`` as a task (see the class docstring for the order)."""
        if self._group is None:
            task: Task[T] = Task(asyncio.ensure_future(fn(*args)))
        else:
            task = Task()
            await self._group.start(task._run, fn, args)
        self._tasks.append(task)
        return task


class Background(Generic[T]):
    """Runs *fn* in a daemon thread; `result` joins it and returns what it returned, or raises."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._out: list[T] = []
        self._error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._out.append(self._fn())
        except BaseException as exc:
            self._error.append(exc)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self) -> T:
        join_all([self.thread])
        if self._error:
            raise self._error[0]
        return self._out[0]


def bounded(fn: Callable[[], T]) -> T:
    """Run *fn* in a thread and return its result: a wait that never ends fails, never hangs."""
    return Background(fn).result()


# --- bodies ------------------------------------------------------------------------------


class Work:
    """The protected body: notes what *probe* says each time it runs, then returns or raises."""

    def __init__(
        self, error: BaseException | None = None, probe: Callable[[], object] | None = None
    ) -> None:
        self.error = error
        self.probe = probe
        self.seen: list[object] = []

    def __call__(self) -> str:
        self.seen.append(None if self.probe is None else self.probe())
        if self.error is not None:
            raise self.error
        return "done"

    async def run_async(self) -> str:
        await checkpoint()
        return self()


class Blocker:
    """An async body that notes *probe*, then waits until it is cancelled."""

    def __init__(self, probe: Callable[[], object] | None = None) -> None:
        self.probe = probe
        self.started = False

    async def __call__(self) -> str:
        if self.probe is not None:
            self.probe()
        self.started = True
        await anyio.sleep_forever()
        raise AssertionError("the blocked body was not cancelled")


# --- the forms ---------------------------------------------------------------------------

SyncBody = Callable[[], str]
AsyncBody = Callable[[], Awaitable[str]]
SyncRunner = Callable[[GatePolicy, SyncBody], str]
AsyncRunner = Callable[[GatePolicy, AsyncBody], Coroutine[Any, Any, str]]


def in_function(gate: GatePolicy, body: SyncBody) -> str:
    @gate
    def fn() -> str:
        return body()

    return fn()


def in_method(gate: GatePolicy, body: SyncBody) -> str:
    class Service:
        @gate
        def fn(self) -> str:
            assert isinstance(self, Service)
            return body()

    return Service().fn()


def in_classmethod_above(gate: GatePolicy, body: SyncBody) -> str:
    class Service:
        @gate
        @classmethod
        def fn(cls) -> str:
            assert cls is Service
            return body()

    return Service.fn()


def in_classmethod_below(gate: GatePolicy, body: SyncBody) -> str:
    class Service:
        @classmethod
        @gate
        def fn(cls) -> str:
            assert cls is Service
            return body()

    return Service().fn()


def in_generator(gate: GatePolicy, body: SyncBody) -> str:
    @gate
    def fn() -> Iterator[str]:
        yield body()

    [item] = fn()
    return item


def in_call(gate: GatePolicy, body: SyncBody) -> str:
    return gate.call(body)


def in_compose(outer: Callable[[], rs.Retry]) -> SyncRunner:
    """The runner of a function decorated with ``compose(outer(), gate)``."""

    def run(gate: GatePolicy, body: SyncBody) -> str:
        @rs.compose(outer(), gate)
        def fn() -> str:
            return body()

        return fn()

    return run


def in_with(gate: GatePolicy, body: SyncBody) -> str:
    with gate:
        return body()


async def in_coroutine(gate: GatePolicy, body: AsyncBody) -> str:
    @gate
    async def fn() -> str:
        return await body()

    return await fn()


async def in_async_method(gate: GatePolicy, body: AsyncBody) -> str:
    class Service:
        @gate
        async def fn(self) -> str:
            return await body()

    return await Service().fn()


async def in_async_generator(gate: GatePolicy, body: AsyncBody) -> str:
    @gate
    async def fn() -> AsyncIterator[str]:
        yield await body()

    [item] = [item async for item in fn()]
    return item


async def in_acall(gate: GatePolicy, body: AsyncBody) -> str:
    return await gate.acall(body)


def in_compose_async(outer: Callable[[], rs.Retry]) -> AsyncRunner:
    """The runner of a coroutine function decorated with ``compose(outer(), gate)``."""

    async def run(gate: GatePolicy, body: AsyncBody) -> str:
        @rs.compose(outer(), gate)
        async def fn() -> str:
            return await body()

        return await fn()

    return run


async def in_async_with(gate: GatePolicy, body: AsyncBody) -> str:
    async with gate:
        return await body()


@attrs.frozen
class Form:
    """One way to run a body through a gate: a shape, a surface, or a block."""

    name: str
    sync: SyncRunner | None = None
    asyn: AsyncRunner | None = None
    no_result: bool = False  # a stream or a block: on_success gets NO_RESULT
    compose: bool = False  # a Retry that retries the body's error stands outside the gate
    backend: str = "asyncio"  # where an async form runs: one of BACKENDS (`pick` sets it)

    @property
    def is_async(self) -> bool:
        return self.asyn is not None

    @property
    def cancelled(self) -> type[BaseException]:
        """The exception a cancelled call sees in this form's backend."""
        return cancelled_error(self.backend)

    def run(self, gate: GatePolicy, work: Work) -> str:
        """Run *work* through *gate* in this form (async forms on a fresh run of its backend)."""
        asyn = self.asyn
        if asyn is not None:
            return run_async(lambda: asyn(gate, work.run_async), self.backend)
        assert self.sync is not None
        return self.sync(gate, work)

    def run_async(self, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``main()`` on a fresh run of this form's backend."""
        return run_async(main, self.backend)

    def outcome(self, value: object) -> object:
        """What on_success receives for a body that returned *value*."""
        return NO_RESULT if self.no_result else value


def gate_forms(outer: Callable[[], rs.Retry]) -> list[Form]:
    """
    Every way a gate is used: the four shapes, a method and both classmethod
    orders, ``call`` / ``acall``, ``with`` / ``async with``, and composed
    inside *outer* (a Retry that the bodies never give anything to retry).
    """
    return [
        Form("function", sync=in_function),
        Form("method", sync=in_method),
        Form("classmethod above", sync=in_classmethod_above),
        Form("classmethod below", sync=in_classmethod_below),
        Form("generator", sync=in_generator),
        Form("call", sync=in_call),
        Form("compose", sync=in_compose(outer)),
        Form("with", sync=in_with),
        Form("coroutine", asyn=in_coroutine),
        Form("async method", asyn=in_async_method),
        Form("async generator", asyn=in_async_generator),
        Form("acall", asyn=in_acall),
        Form("compose async", asyn=in_compose_async(outer)),
        Form("async with", asyn=in_async_with),
    ]


def pick(
    forms: Iterable[Form],
    *,
    is_async: bool | None = None,
    compose: bool = True,
    backends: Iterable[str] = BACKENDS,
) -> list[Any]:
    """
    The *forms* to parametrize a test over: all, only sync or async ones, with(out) Retry.

    Each async form comes once per backend of *backends* (its id names the
    backend, but for asyncio's, which keeps the form's bare name).
    """
    params = []
    for form in forms:
        if (is_async is not None and form.is_async != is_async) or (form.compose and not compose):
            continue
        if not form.is_async:
            params.append(pytest.param(form, id=form.name))
            continue
        for backend in backends:
            name = form.name if backend == "asyncio" else f"{form.name}-{backend}"
            params.append(pytest.param(attrs.evolve(form, backend=backend), id=name))
    return params


def crowd(
    gate: GatePolicy,
    *,
    sync_calls: int,
    async_calls: int,
    pause: Callable[[], object],
    inside: Callable[[], int] = lambda: 0,
) -> dict[str, int]:
    """
    Four threads and two event loops (an asyncio and a trio run, in threads of their own)
    call through *gate* at once.

    Each thread makes *sync_calls* calls with ``call`` (whose body runs *pause*), each
    loop *async_calls* tasks with ``acall`` (a `checkpoint`). Returns the count
    ``{"running", "peak", "done"}``: calls inside at the end, the most inside at once
    (*inside*, the gate's own count, folded in), and the calls that finished.
    """
    lock = threading.Lock()
    count = {"running": 0, "peak": 0, "done": 0}

    def enter() -> None:
        with lock:
            count["running"] += 1
            count["peak"] = max(count["peak"], count["running"], inside())

    def leave() -> None:
        with lock:
            count["running"] -= 1
            count["done"] += 1

    def sync_work() -> None:
        enter()
        pause()
        leave()

    async def async_work() -> None:
        enter()
        await checkpoint()
        leave()

    def sync_caller() -> None:
        for _ in range(sync_calls):
            gate.call(sync_work)

    def loop_caller(backend: str) -> None:
        async def main() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(async_calls):
                    group.start_soon(gate.acall, async_work)

        run_async(main, backend)

    threads = [threading.Thread(target=sync_caller, daemon=True) for _ in range(4)]
    threads += [
        threading.Thread(target=loop_caller, args=(backend,), daemon=True)
        for backend in ("asyncio", "trio")
    ]
    for thread in threads:
        thread.start()
    join_all(threads)
    return count


def cancel_inside(form: Form, gate: GatePolicy, probe: Callable[[], object] | None = None) -> None:
    """Run an async *form* whose body blocks, and cancel it while the body runs."""
    asyn, blocker = form.asyn, Blocker(probe)
    assert asyn is not None
    cancel_task(lambda: asyn(gate, blocker), lambda: blocker.started, form.backend)


Driver = bool | str
"""How a test calls: `False` sync; else async, in a backend of `BACKENDS` (`True`: asyncio)."""


def backend_of(driver: Driver) -> str:
    """The backend an async *driver* runs in."""
    assert driver, "a sync driver has no backend"
    return "asyncio" if driver is True else str(driver)


def driver_params() -> list[Any]:
    """The drivers to parametrize a test over: sync, then async in each of `BACKENDS`."""
    return [
        pytest.param(False, id="sync"),
        *(pytest.param(b, id="async" if b == "asyncio" else f"async-{b}") for b in BACKENDS),
    ]


SYNC_ASYNC = pytest.mark.parametrize("is_async", driver_params())
"""Parametrizes a test's ``is_async: Driver`` over sync and async in every backend."""


def run_call(target: GatePolicy | rs.Pipeline, work: Work, is_async: Driver) -> str:
    """Run *work* once through *target*'s ``call`` or, on a fresh run of its backend, ``acall``."""
    if is_async:
        return run_async(lambda: target.acall(work.run_async), backend_of(is_async))
    return target.call(work)
