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
- `Wakeup`: what a task waits on until another thread (or task) wakes it.
"""

from __future__ import annotations

import math
import sys
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, final

from ._lazy import lazy_module

if TYPE_CHECKING:
    import asyncio
else:  # imported on first use: sync code never needs it
    asyncio = lazy_module("asyncio", globals())

__all__ = [
    "Wakeup",
    "checkpoint",
    "library",
    "outer_cancellation",
    "require_asyncio",
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


def require_asyncio(what: str, why: str) -> asyncio.AbstractEventLoop:
    """
    Return the running asyncio loop, for a policy that cannot work elsewhere.

    Raises:
        RuntimeError: Naming *what* and *why*, under trio or outside a task.
    """
    try:
        return _running_loop()
    except RuntimeError:
        name = library()  # raises by itself outside any task
        raise RuntimeError(f"{what} runs under asyncio only ({why}), not under {name}") from None


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
        """Whether this deadline cancelled the block (not an outer cancellation)."""
        return bool(self._scope.cancelled_caught)

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


def timeout(seconds: float) -> Timeout:
    """
    Return a scope that cancels its block *seconds* from now, under the current library.

    Under asyncio it is `asyncio.timeout_at` (call sites make that one
    themselves, on their fast path); under trio, a cancel scope whose expiry
    leaves the block as a `TimeoutError` chained to the cancellation.
    """
    try:
        loop = _running_loop()
    except RuntimeError:
        return _TrioTimeout(_trio(), seconds)
    return asyncio.timeout_at(loop.time() + seconds)


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
