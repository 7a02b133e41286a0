"""
The async world: which library runs the current task, and the few things policies need from it.

Policies run under asyncio and under trio (anyio runs on one or the other of
them, so it needs nothing of its own). asyncio stays the fast path: each call
site tries `asyncio.get_running_loop` (a C function) first and comes here only
when it raises, that is outside asyncio. Then `sniffio` (which trio and anyio
install) names the library; neither it nor trio is imported before that, so
``import resilience`` imports neither.

What lives here, once for every policy:

- `library`: "asyncio" or "trio", or a `RuntimeError` that says why neither;
- `sleep` and `checkpoint`: the current library's;
- `timeout`: a deadline that cancels the block, for trio (a cancel scope) in
  the shape of `asyncio.timeout_at`'s: its own expiry leaves the block as a
  `TimeoutError` chained to the cancellation, and ``expired()`` says it fired;
  an outer cancellation stays a cancellation;
- `Wakeup`: what a task waits on until another thread (or task) wakes it;
- `Crew`: tasks that race for one caller (a `Hedge`'s copies), as asyncio
  tasks or in a trio nursery, cancelled and awaited before the caller goes on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Coroutine, Iterable
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast, final

from ._lazy import lazy_module

if TYPE_CHECKING:
    import asyncio
else:  # imported on first use: sync code never needs it
    asyncio = lazy_module("asyncio", globals())

__all__ = [
    "Copy",
    "Crew",
    "Wakeup",
    "checkpoint",
    "crew",
    "library",
    "outer_cancellation",
    "sleep",
    "timeout",
    "wakeup",
]


def _running_loop() -> asyncio.AbstractEventLoop:
    # The first call imports asyncio and binds its C function in this name's place.
    global _running_loop
    _running_loop = asyncio.get_running_loop
    return _running_loop()


def _sniff() -> str:
    """The async library running this thread, by `sniffio`; a `RuntimeError` if it cannot say."""
    try:
        import sniffio  # only outside asyncio: never at import
    except ImportError:
        raise RuntimeError(
            "no running asyncio event loop, and sniffio (installed with trio and anyio) "
            "is not installed to tell which async library runs this code"
        ) from None
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            "not in an async task: resilience's async policies run under asyncio, "
            "trio, or anyio on either"
        ) from None


def library() -> str:
    """
    Return the name of the async library running the current task: "asyncio" or "trio".

    Raises:
        RuntimeError: Outside any async task, or under a library that is neither.
    """
    try:
        _running_loop()
    except RuntimeError:
        name = _sniff()
        if name == "trio":
            return name
        raise RuntimeError(
            f"resilience's async policies run under asyncio and trio (and anyio on "
            f"either), not under {name}"
        ) from None
    return "asyncio"


def _trio() -> ModuleType:
    """The trio module, once `library` has said that trio runs this task."""
    library()  # raises outside asyncio and trio; under asyncio, nobody asks for trio
    return sys.modules["trio"]


async def sleep(seconds: float) -> None:
    """Suspend the current task for *seconds* with its library's sleep."""
    try:
        _running_loop()
    except RuntimeError:
        await _trio().sleep(seconds)
        return
    await asyncio.sleep(seconds)


async def checkpoint() -> None:
    """Let the current library run other tasks once (``asyncio.sleep(0)``)."""
    try:
        _running_loop()
    except RuntimeError:
        await _trio().lowlevel.checkpoint()
        return
    await asyncio.sleep(0)


# --- a deadline that cancels ---------------------------------------------------------


@final
class _TrioTimeout:
    """`asyncio.timeout_at`'s contract on a trio cancel scope (see the module docstring)."""

    __slots__ = ("_scope",)

    def __init__(self, trio: ModuleType, seconds: float) -> None:
        self._scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def expired(self) -> bool:
        """Whether this deadline fired, as asyncio's says (it may be an outer one that ends it)."""
        return bool(self._scope.cancel_called)

    async def __aenter__(self) -> _TrioTimeout:
        self._scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The scope swallows the Cancelled it caused and lets an outer one through.
        if self._scope.__exit__(exc_type, exc, tb) and self._scope.cancelled_caught:
            raise TimeoutError from exc


class Timeout(Protocol):
    """What `timeout` returns: an async context manager that knows whether it fired."""

    def expired(self) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


def timeout(seconds: float | None) -> Timeout:
    """
    Return a scope that cancels its block *seconds* from now, under the running library.

    ``async with resilience.engine.cancel_after(seconds) as scope:`` is
    ``asyncio.timeout`` under asyncio, and under trio (anyio on trio too) a
    cancel scope in its shape: at the deadline the block is cancelled and
    leaves as a `TimeoutError` chained to the cancellation, and
    ``scope.expired()`` says that this scope fired. An enclosing cancellation
    stays a cancellation. Add-ons use it where they would write
    ``asyncio.timeout``; the library's own policies make asyncio's themselves
    on their fast path.

    Args:
        seconds: How long the block may run, in seconds; `None` sets no
            deadline (as ``asyncio.timeout(None)``).

    Returns:
        An async context manager with an ``expired()`` method.

    Raises:
        RuntimeError: Outside an asyncio or trio task (naming why).
    """
    try:
        loop = _running_loop()
    except RuntimeError:
        return _TrioTimeout(_trio(), math.inf if seconds is None else seconds)
    return asyncio.timeout_at(None if seconds is None else loop.time() + seconds)


async def outer_cancellation() -> None:
    """
    Deliver now the cancellation of an enclosing anyio cancel scope, if it was cancelled.

    A Timeout awaits this on its expiry path. On asyncio, anyio delivers a
    cancellation lazily: it does not cancel a task whose wait something else
    (our deadline) has already cancelled, and tries again at its next step.
    When both fire in one step, only ours has reached the task; this
    checkpoint lets anyio's through, so that an outer cancellation stays a
    cancellation as it does under asyncio and trio. Nothing happens when
    anyio was never imported (it is not imported here) or no scope of it
    was cancelled.
    """
    anyio = sys.modules.get("anyio")
    if anyio is not None:
        await anyio.lowlevel.checkpoint_if_cancelled()


# --- waking a task from another thread -------------------------------------------------


class Wakeup(Protocol):
    """One task's wake-up call: `wait` in the task, `set` from any thread or task."""

    def set(self) -> bool:
        """Wake the waiting task; `False` if its loop or run is over (nobody waits)."""
        ...

    async def wait(self, seconds: float | None) -> bool:
        """Wait until `set` or *seconds* pass (`None`: no limit); return whether set."""
        ...


@final
class _AsyncioWakeup:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()

    def set(self) -> bool:
        try:
            self._loop.call_soon_threadsafe(_resolve, self._future)
        except RuntimeError:  # the waiting task's loop is closed: it is gone
            return False
        return True

    async def wait(self, seconds: float | None) -> bool:
        if seconds is None:
            await self._future
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._future
        except TimeoutError:
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@final
class _TrioWakeup:
    __slots__ = ("_event", "_token", "_trio")

    def __init__(self, trio: ModuleType) -> None:
        self._trio = trio
        self._token = trio.lowlevel.current_trio_token()
        self._event = trio.Event()

    def set(self) -> bool:
        try:
            self._token.run_sync_soon(self._event.set)
        except self._trio.RunFinishedError:
            return False
        return True

    async def wait(self, seconds: float | None) -> bool:
        deadline = math.inf if seconds is None else self._trio.current_time() + seconds
        with self._trio.move_on_at(deadline):
            await self._event.wait()
        return bool(self._event.is_set())


def wakeup() -> Wakeup:
    """
    Return a `Wakeup` for the current task.

    Raises:
        RuntimeError: Outside an asyncio or trio task.
    """
    try:
        loop = _running_loop()
    except RuntimeError:
        return _TrioWakeup(_trio())
    return _AsyncioWakeup(loop)


# --- tasks racing for one caller ---------------------------------------------------------


class Copy(Protocol):
    """One task of a `Crew`, read as an `asyncio.Task` is once it is done."""

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def exception(self) -> BaseException | None: ...

    def result(self) -> Any: ...


class Crew(Protocol):
    """
    Tasks that race for one caller: started in its context, waited for by it.

    Used as ``async with crew:``; before the block is left, every task still
    running is cancelled and awaited (`abandon`), so none outlives it.
    """

    def time(self) -> float:
        """The library's clock, in seconds (what the waits of `first` count on)."""
        ...

    async def start(self, coro: Coroutine[Any, Any, Any]) -> Copy:
        """Run *coro* as a task in the caller's context; copies start in the order started."""
        ...

    async def first(self, copies: Collection[Copy], seconds: float | None) -> Collection[Copy]:
        """Wait until one of *copies* ends or *seconds* pass (`None`: never); return the ended."""
        ...

    async def abandon(self, copies: Iterable[Copy]) -> None:
        """Cancel *copies* and wait until all have ended; a cancellation meanwhile is raised."""
        ...

    async def __aenter__(self) -> Crew: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@final
class _AsyncioCrew:
    """A `Crew` of asyncio tasks: nothing to open, `asyncio.wait` to wait."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def time(self) -> float:
        return self._loop.time()

    async def start(self, coro: Coroutine[Any, Any, Any]) -> Copy:
        return self._loop.create_task(coro)

    async def first(self, copies: Collection[Copy], seconds: float | None) -> Collection[Copy]:
        tasks = cast("Collection[asyncio.Task[Any]]", copies)  # this crew's copies are tasks
        done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return done

    async def abandon(self, copies: Iterable[Copy]) -> None:
        tasks: list[asyncio.Task[Any]] = list(copies)  # type: ignore[arg-type]
        for task in tasks:
            task.cancel()
        cancelled = False
        pending = [task for task in tasks if not task.done()]
        while pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                # Cancelled again while the copies wind down: they were told already;
                # finish waiting so that none outlives the call, then propagate.
                cancelled = True
            pending = [task for task in tasks if not task.done()]
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: a loser's failure is not "never retrieved"
        if cancelled:
            raise asyncio.CancelledError

    async def __aenter__(self) -> _AsyncioCrew:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None  # the caller abandons what it started (it holds the tasks)


@final
class _TrioCopy:
    """A task of a `_TrioCrew`: its own cancel scope, its outcome kept for the caller."""

    __slots__ = ("_crew", "_ended", "_error", "_result", "_scope")

    def __init__(self, crew: _TrioCrew) -> None:
        self._crew = crew
        self._scope = crew.trio.CancelScope()
        self._ended = crew.trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    async def run(self, coro: Coroutine[Any, Any, Any], *, task_status: Any) -> None:
        # Whatever ends the copy is its outcome, read by the caller (which raises
        # what is not a result or a failure it may retry): a copy's exception never
        # reaches the nursery, which would wrap it in an ExceptionGroup.
        try:
            with self._scope:
                task_status.started()
                self._result = await coro
        except BaseException as exc:  # an enclosing scope's Cancelled included
            self._error = exc
        self._ended.set()  # abandoned (its own scope caught the Cancelled): nobody reads it
        self._crew.changed.set()

    def done(self) -> bool:
        return bool(self._ended.is_set())

    def cancelled(self) -> bool:
        return False  # a copy cancelled by an enclosing scope holds that Cancelled

    def exception(self) -> BaseException | None:
        return self._error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


@final
class _TrioCrew:
    """A `Crew` in a trio nursery that the block opens; waits on trio events."""

    __slots__ = ("_copies", "_nursery", "_opened", "changed", "trio")

    def __init__(self, trio: ModuleType) -> None:
        self.trio = trio
        self.changed = trio.Event()  # set when a copy ends; a fresh one per wait
        self._opened = trio.open_nursery()
        self._nursery: Any = None
        self._copies: list[_TrioCopy] = []

    def time(self) -> float:
        return float(self.trio.current_time())

    async def start(self, coro: Coroutine[Any, Any, Any]) -> Copy:
        copy = _TrioCopy(self)
        self._copies.append(copy)
        # `start` returns once the copy runs (its first step taken): copies begin in
        # the order started, as asyncio tasks do, not in a batch trio may reorder.
        await self._nursery.start(copy.run, coro)
        return copy

    async def first(self, copies: Collection[Copy], seconds: float | None) -> Collection[Copy]:
        trio = self.trio
        done = [copy for copy in copies if copy.done()]
        if done:
            await trio.lowlevel.checkpoint()
            return done
        self.changed = changed = trio.Event()
        with trio.move_on_after(math.inf if seconds is None else seconds):
            await changed.wait()
        return [copy for copy in copies if copy.done()]

    async def abandon(self, copies: Iterable[Copy]) -> None:
        trio = self.trio
        left: list[_TrioCopy] = list(copies)  # type: ignore[arg-type]
        for copy in left:
            copy._scope.cancel()
        with trio.CancelScope(shield=True):  # an enclosing cancellation waits for them too
            for copy in left:
                await copy._ended.wait()
        await trio.lowlevel.checkpoint_if_cancelled()

    async def __aenter__(self) -> _TrioCrew:
        self._nursery = await self._opened.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        left = [copy for copy in self._copies if not copy.done()]
        try:
            if left:  # the caller abandons what it races; this is for an early exit
                await self.abandon(left)
        finally:
            # No copy runs and none raises: the nursery closes at once, without a
            # checkpoint. It is told nothing of the block's exception, which it would
            # wrap in a group: that exception leaves the block as it came.
            await self._opened.__aexit__(None, None, None)


def crew(loop: asyncio.AbstractEventLoop | None = None) -> Crew:
    """
    Return a `Crew` for the current task: asyncio tasks, or a trio nursery.

    Args:
        loop: The running asyncio loop, when the caller holds it. Default:
            `None`: asked for.

    Raises:
        RuntimeError: Outside an asyncio or trio task.
    """
    if loop is None:
        try:
            loop = _running_loop()
        except RuntimeError:
            return _TrioCrew(_trio())
    return _AsyncioCrew(loop)
