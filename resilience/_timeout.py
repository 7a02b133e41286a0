"""
Timeout: an absolute deadline for a call, a block or a stream.

Entering a Timeout (a decorated call, a ``with`` or ``async with`` block, an
attempt under Retry, a stream) computes a deadline on the policy's clock and
pushes the *earlier* of it and the enclosing deadline on `DEADLINE`, so that
`resilience.deadline.remaining()`, Retry and the HTTP integrations all see the
tightest budget. Leaving restores the enclosing deadline.

Sync code cannot be interrupted safely, so a sync Timeout is cooperative: it
refuses to *start* a call once the deadline has passed, and propagates the
deadline for the call to cap its own I/O with; a call that returns late
returns its value. Async code is cancelled at the deadline under asyncio
by a loop timer that cancels the task, with `asyncio.timeout_at`'s cancel
counting, which tells our expiry from an outer ``task.cancel()``: a call
through the policy shares one timer with the other calls of its loop
(`_Timers`), an ``async with`` block uses `asyncio.timeout_at` itself; under
trio with a cancel scope (`_aio.timeout`), which catches its own
cancellation only.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import math
import types
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from . import _aio
from ._clock import SYSTEM_CLOCK, Clock
from ._deadline import DEADLINE, Deadline, RawDeadline, public_deadline, time_left
from ._events import Hook, TimeoutExpired, emit
from ._exceptions import TimeoutExceededError, seconds_text
from ._lazy import lazy_module
from ._pipeline import (
    CALL,
    PolicyMixin,
    Runner,
    Shape,
    pipeline_field,
    target_name,
    undecorated,
)
from ._streams import astep, step
from ._validate import check_clock, check_name, to_hooks, to_seconds

# `_explain` (Description and its helpers) is imported by describe(), when first
# called: nothing of it runs on a call path, and `import resilience` skips it.
if TYPE_CHECKING:
    import asyncio

    from ._explain import Description
else:  # imported on first use: sync code never needs it
    asyncio = lazy_module("asyncio", globals())

__all__ = ["Timeout"]


# --- validation ----------------------------------------------------------------


def _to_seconds(value: float | datetime.timedelta) -> float:
    given: object = value  # what @Timeout without parentheses gives: the function
    if isinstance(given, types.FunctionType | types.MethodType):
        raise undecorated("resilience.Timeout", "10.0", given)
    return to_seconds("seconds", value)


def _to_idle(value: float | datetime.timedelta | None) -> float | None:
    return to_seconds("idle", value, none=True)


def _check_idle(instance: Timeout, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value > instance.seconds:
        raise ValueError(
            f"idle must be <= seconds (the total limit), got idle={value!r} > "
            f"seconds={instance.seconds!r}"
        )


# --- block scopes ----------------------------------------------------------------


@final
class _Scope:
    """What a ``with`` block must undo on exit; kept on a context variable, never shared."""

    __slots__ = ("cm", "deadline", "owner", "parent", "token")

    def __init__(
        self,
        owner: Timeout,
        deadline: RawDeadline,
        token: contextvars.Token[RawDeadline | None] | None,
        cm: _aio.Timeout | None,
        parent: _Scope | None,
    ) -> None:
        self.owner = owner
        self.deadline = deadline
        self.token = token
        self.cm = cm
        self.parent = parent


# A Timeout is frozen and shared between threads and tasks, so what one block
# must restore lives in the context that entered it: a linked stack, one per
# context, immutable so that tasks inheriting the context cannot disturb it.
_SCOPES: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "resilience_timeout_scopes", default=None
)


_NO_SCOPE: Final = contextlib.nullcontext()
"""Stands for an `asyncio.Timeout` where no time is left to give one (stateless, shared)."""


def _cancellation(error: TimeoutError) -> BaseException:
    """The cancellation (asyncio's or trio's) our timeout turned into *error*, else *error*."""
    cause = error.__cause__
    return cause if isinstance(cause, BaseException) and not isinstance(cause, Exception) else error


def _fired(cm: _aio.Timeout, error: TimeoutError) -> bool:
    """Whether *error* is *cm*'s own expiry, not a TimeoutError raised by the code inside."""
    return cm.expired() and type(error) is TimeoutError


@final
class _Timers:
    """
    The deadlines of the async calls running on one asyncio loop, on a single loop timer.

    `asyncio.timeout_at`'s contract without its cost: per call, no context manager
    (two coroutines and a state machine) and no timer handle of its own, only an
    entry in *pending*: ``functools.partial(task.cancel)``, made for the call (a
    key of its own), and its deadline on the loop's clock. The loop timer is set
    for the earliest deadline; when it fires, it takes out the entries whose
    deadline has come and cancels their tasks, and is set for the next. A call
    that ends takes its entry out: if it is no longer there, the timer fired.
    With calls that end in time, it fires at most once per timeout, and finds
    nothing to do.
    """

    __slots__ = ("at", "monotonic", "pending")

    def __init__(self, monotonic: bool) -> None:
        self.pending: dict[Callable[[], object], float] = {}
        self.at = math.inf  # when the loop timer fires (inf: not set)
        # The loop's clock is time.monotonic (asyncio's own loops): a deadline of the
        # system clock is then a time on it, without asking the loop.
        self.monotonic = monotonic

    def schedule(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Set the loop timer for *when* (earlier than the one set, which then does nothing)."""
        # No handle kept to cancel: it would keep the loop alive (see _timers_of).
        self.at = when
        loop.call_at(when, self.fire, loop, when)

    def fire(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        """Cancel the calls whose deadline has come; set the timer for the next one."""
        if at != self.at:
            return  # replaced by an earlier one
        # The loop runs a timer up to its clock resolution early: it is due all the same.
        limit = max(at, loop.time())
        self.at = math.inf
        pending = self.pending
        for expiry in [expiry for expiry, when in pending.items() if when <= limit]:
            del pending[expiry]
            expiry()
        if pending:
            self.schedule(loop, min(pending.values()))


_LOOP_TIMERS: dict[int, _Timers | None] = {}
_finalize = weakref.finalize  # id(loop) -> its timers (None: cannot have them)


def _timers_of(loop: asyncio.AbstractEventLoop) -> _Timers | None:
    """The `_Timers` of *loop*, made on first use; `None` for a loop without weak references."""
    import asyncio

    key = id(loop)
    timers: _Timers | None = _Timers(type(loop).time is asyncio.BaseEventLoop.time)
    try:
        # Forgotten with the loop (before its id can be reused).
        _finalize(loop, _LOOP_TIMERS.pop, key, None)
    except TypeError:  # no weak references: each call has an asyncio.timeout_at
        timers = None
    _LOOP_TIMERS[key] = timers
    return timers


# --- the policy -------------------------------------------------------------------


@final
@attrs.frozen(repr=False)
class Timeout(PolicyMixin):
    """
    Give a call, a block or a stream a deadline.

    Entering the Timeout computes an absolute deadline, ``clock.now() +
    seconds``, and makes the earlier of it and the enclosing deadline the one
    in force (see `resilience.deadline`) until it is left: nested Timeouts take
    the earliest, Retry never sleeps past it, and code can cap its own I/O with
    `resilience.deadline.remaining()`.

    - **Coroutine functions and** ``async with``: the work is cancelled at the
      deadline (as by `asyncio.timeout_at`; under trio, a cancel scope) and the
      caller gets `TimeoutExceededError`, chained to the cancellation. An outer
      ``task.cancel()`` (a trio or anyio cancel scope's) still propagates as a
      cancellation, even when it arrives as the deadline passes.
    - **Functions and** ``with``: cooperative. Sync code cannot be interrupted
      safely, so the Timeout raises `TimeoutExceededError` only when the
      deadline has already passed as a call (or an attempt under Retry) is
      about to start. A call that returns after its deadline returns its value:
      the work is done, and throwing it away could waste a paid call. The
      ``with`` block's body is never interrupted either.
    - **Generator and async generator functions**: *seconds* bounds the whole
      stream, from the first request for an item, and *idle* bounds every wait
      for the next item. Async streams are cancelled at the earlier of the two;
      sync streams are checked between items, and an item that arrives late is
      delivered before the stream raises (at the next request).

    The deadline is read on *clock*. Async cancellation is scheduled on the
    event loop's own clock, for the time left on *clock* when the Timeout is
    entered: with a `resilience.testing.FakeClock`, `remaining()` and Retry
    follow virtual time while the cancellation still happens after that many
    real seconds (advancing the fake clock cancels nothing).

    A `Timeout` is configuration: immutable, hashable and safe to share
    between threads and tasks, and to enter from several of them at once.
    Use it as a decorator, through `call` / `acall`, in `resilience.compose`,
    or around a block with ``with`` / ``async with`` (which return the
    `resilience.deadline.Deadline` in force).

    Args:
        seconds: The limit, in seconds (a positive finite number or a
            `datetime.timedelta`). Required: there is no "no limit" value.
        idle: For (async) generator functions only: seconds allowed for each
            item to arrive, at most *seconds*. Default: `None` (no idle limit).
        name: A label for events and error messages. Default: `None`.
        hooks: Callables receiving this policy's events (`TimeoutExpired`),
            before the global hooks. Default: none.
        clock: Where time comes from. Default: the system clock.

    Raises:
        TypeError: On an argument of the wrong type (``Timeout("10")``,
            ``Timeout(True)``); when decorating a function or coroutine
            function, or entering a block, with *idle* set.
        ValueError: On an out-of-range value: *seconds* or *idle* zero,
            negative, NaN or infinite, or *idle* larger than *seconds*.

    .. versionadded:: 0.1.0
    """

    seconds: float = attrs.field(converter=_to_seconds)
    idle: float | None = attrs.field(
        default=None, kw_only=True, converter=_to_idle, validator=_check_idle
    )
    name: str | None = attrs.field(default=None, kw_only=True, validator=check_name)
    hooks: tuple[Hook, ...] = attrs.field(default=(), kw_only=True, converter=to_hooks)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, kw_only=True, validator=check_clock)
    _pipeline: Any = pipeline_field()

    def __repr__(self) -> str:
        parts = [f"{self.seconds!r}"]
        if self.idle is not None:
            parts.append(f"idle={self.idle!r}")
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        return f"Timeout({', '.join(parts)})"

    def describe(self) -> Description:
        """
        Return what this Timeout does, for `resilience.Pipeline.explain`.

        Its limit bounds everything it wraps (each attempt when it sits inside
        a Retry, the whole call when it sits outside), on the assumption that
        sync code cooperates with its deadline.
        """
        from ._explain import Description, seconds

        label = f"Timeout {self.name!r}" if self.name is not None else "Timeout"
        title = f"{label}: {seconds(self.seconds)}"
        details = [
            "async: cancelled at the deadline (TimeoutExceededError)",
            "sync: cooperative: not started once the deadline has passed; sockets get the",
            "  time left (rs.deadline.remaining(), passed on by the HTTP integrations);",
            "  a sync call that returns late returns its value",
            "nested deadlines: the earliest wins",
        ]
        if self.idle is not None:
            title += f" for a whole stream, {seconds(self.idle)} for each item"
        return Description(title=title, details=details, limit=self.seconds)

    # --- failures (never on the success path) ------------------------------------

    def _error(
        self,
        deadline: RawDeadline,
        fn: object,
        *,
        idle: bool = False,
        before: bool = False,
    ) -> TimeoutExceededError:
        limit = deadline[2]
        target = None if fn is None else target_name(fn)
        emit(self.hooks, TimeoutExpired, name=self.name, target=target, timeout=limit, idle=idle)
        what = target or "block"
        if self.name is not None:
            what = f"{what} (timeout {self.name!r})"
        if before:
            text = (
                f"{what} not started: its deadline of {seconds_text(limit, 6)} s had already passed"
            )
        elif idle:
            text = f"{what}: no item arrived within the idle timeout of {seconds_text(limit, 6)} s"
        else:
            text = f"{what} timed out after {seconds_text(limit, 6)} s"
        return TimeoutExceededError(limit, text)

    # --- entering a deadline ------------------------------------------------------

    def _push(
        self, fn: object
    ) -> tuple[RawDeadline, float, contextvars.Token[RawDeadline | None] | None]:
        """Make the earlier deadline current: (deadline in force, seconds left, token or None)."""
        seconds = self.seconds
        outer = DEADLINE.get()
        if outer is not None:
            left = time_left(outer)
            if left <= seconds:
                # The enclosing deadline comes first: it stays in force.
                if left <= 0:
                    raise self._error(outer, fn, before=True)
                return outer, left, None
        deadline = (self.clock.now() + seconds, self.clock, seconds)
        return deadline, seconds, DEADLINE.set(deadline)

    def _check_block(self, how: str) -> None:
        if self.idle is not None:
            raise TypeError(
                f"idle applies to generator and async generator functions; a `{how}` "
                f"block has no items to wait for, got idle={self.idle!r}"
            )

    # --- blocks -------------------------------------------------------------------

    def __enter__(self) -> Deadline:
        """
        Enter a cooperative deadline scope; return the deadline in force.

        Raises:
            TimeoutExceededError: If the enclosing deadline has already passed.
            TypeError: If *idle* is set.
        """
        self._check_block("with")
        deadline, _, token = self._push(None)
        _SCOPES.set(_Scope(self, deadline, token, None, _SCOPES.get()))
        return public_deadline(deadline)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Restore the enclosing deadline; the block's outcome passes through."""
        scope = self._pop()
        if scope.token is not None:
            DEADLINE.reset(scope.token)

    async def __aenter__(self) -> Deadline:
        """
        Enter a deadline scope whose body is cancelled at the deadline; return the deadline.

        Raises:
            TimeoutExceededError: If the enclosing deadline has already passed.
            TypeError: If *idle* is set.
            RuntimeError: Outside an asyncio or trio task.
        """
        self._check_block("async with")
        deadline, left, token = self._push(None)
        try:
            cm = _aio.timeout(left)
            await cm.__aenter__()
        except BaseException:
            if token is not None:
                DEADLINE.reset(token)
            raise
        _SCOPES.set(_Scope(self, deadline, token, cm, _SCOPES.get()))
        return public_deadline(deadline)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """
        Restore the enclosing deadline; turn our own expiry into `TimeoutExceededError`.

        Raises:
            TimeoutExceededError: If the deadline cancelled the body.
        """
        scope = self._pop()
        cm = scope.cm
        try:
            if cm is None:
                raise RuntimeError("a Timeout entered with `with` was left with `async with`")
            await cm.__aexit__(exc_type, exc, tb)
        except TimeoutError as error:
            if cm is not None and _fired(cm, error):
                await _aio.outer_cancellation()
                raise self._error(scope.deadline, None) from _cancellation(error)
            raise
        finally:
            if scope.token is not None:
                DEADLINE.reset(scope.token)

    def _pop(self) -> _Scope:
        scope = _SCOPES.get()
        if scope is None or scope.owner is not self:
            raise RuntimeError(
                "Timeout left without being entered in this context: "
                "`with` blocks must nest, and be left in the thread or task that entered them"
            )
        _SCOPES.set(scope.parent)
        return scope

    # --- binding (the policy protocol) ----------------------------------------------

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """
        Return a runner that applies this deadline around *inner* (see `resilience.Policy`).

        Raises:
            TypeError: If *idle* is set and *shape* is not a (async) generator function.
        """
        if shape is Shape.GEN:
            return self._bind_gen(inner)
        if shape is Shape.AGEN:
            return self._bind_agen(inner)
        if self.idle is not None:
            raise TypeError(
                "idle limits the wait for each item of a stream: it needs a generator or "
                f"async generator function, got a {shape.value} with idle={self.idle!r}"
            )
        if shape is Shape.SYNC:
            return self._bind_sync(inner)
        return self._bind_async(inner)

    def _bind_sync(self, inner: Runner) -> Runner:
        seconds = self.seconds
        clock = self.clock
        now = clock.now
        get, push, pop = DEADLINE.get, DEADLINE.set, DEADLINE.reset
        error = self._error
        # The success path: one context-variable read, one clock read, a plain
        # tuple (see RawDeadline) and a set/reset. Two copies, so that the
        # innermost policy calls the function without testing which it is.
        if inner is CALL:

            def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                outer = get()
                if outer is not None and (left := outer[0] - outer[1].now()) <= seconds:
                    # The enclosing deadline comes first: it stays in force.
                    if left <= 0:
                        raise error(outer, fn, before=True)
                    return fn(*args, **kwargs)
                token = push((now() + seconds, clock, seconds))
                try:
                    return fn(*args, **kwargs)
                finally:
                    pop(token)

            return run

        def run_inner(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            outer = get()
            if outer is not None and (left := outer[0] - outer[1].now()) <= seconds:
                if left <= 0:
                    raise error(outer, fn, before=True)
                return inner(fn, args, kwargs)
            token = push((now() + seconds, clock, seconds))
            try:
                return inner(fn, args, kwargs)
            finally:
                pop(token)

        return run_inner

    def _bind_async(self, inner: Runner) -> Runner:
        seconds = self.seconds
        clock = self.clock
        now = clock.now
        get, push, pop = DEADLINE.get, DEADLINE.set, DEADLINE.reset
        direct = inner is CALL
        error = self._error
        timeout_at = asyncio.timeout_at
        running_loop = asyncio.get_running_loop
        current_task = asyncio.current_task
        cancelled = asyncio.CancelledError
        loop_timers, timers_of = _LOOP_TIMERS, _timers_of
        other = _aio.timeout
        system = SYSTEM_CLOCK
        partial = functools.partial

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            outer = get()
            if outer is not None and (left := outer[0] - outer[1].now()) <= seconds:
                # The enclosing deadline comes first: it stays in force, and this
                # call is cancelled when it passes (the enclosing deadline may be
                # a sync scope, which cancels nothing).
                if left <= 0:
                    raise error(outer, fn, before=True)
                deadline, token = outer, None
            else:
                deadline = (now() + seconds, clock, seconds)
                left, token = seconds, push(deadline)
            try:
                try:
                    loop = running_loop()
                except RuntimeError:  # not asyncio: trio's cancel scope, or a clear error
                    cm: _aio.Timeout = other(left)
                else:
                    task = current_task(loop)
                    key = id(loop)
                    timers = loop_timers[key] if key in loop_timers else timers_of(loop)
                    if task is not None and timers is not None:
                        # The fast path: an entry in the loop's timers (see _Timers).
                        expiry = partial(task.cancel)
                        cancelling = task.cancelling()
                        if timers.monotonic and deadline[1] is system:
                            when = deadline[0]
                        else:
                            when = loop.time() + left
                        pending = timers.pending
                        pending[expiry] = when
                        if when < timers.at:
                            timers.schedule(loop, when)
                        try:
                            result = await (
                                fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                            )
                        except BaseException as exc:
                            if pending.pop(expiry, None) is not None:
                                raise  # the timer did not fire
                            # Ours if no other cancellation came meanwhile; a TimeoutError
                            # raised inside once it fired counts as ours too, as with
                            # asyncio.timeout_at (see _fired).
                            cause: BaseException = exc
                            if not (task.uncancel() <= cancelling and isinstance(exc, cancelled)):
                                if type(exc) is not TimeoutError:
                                    raise
                                cause = _cancellation(exc)
                            await _aio.outer_cancellation()
                            raise error(deadline, fn) from cause
                        if pending.pop(expiry, None) is None:
                            task.uncancel()  # fired as the call returned: undo its cancel
                        return result
                    # Not in a task (raises), or a loop without weak references.
                    cm = timeout_at(loop.time() + left)
                try:
                    async with cm:
                        return await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
                except TimeoutError as exc:
                    if _fired(cm, exc):
                        await _aio.outer_cancellation()
                        raise error(deadline, fn) from _cancellation(exc)
                    raise
            finally:
                if token is not None:
                    pop(token)

        return run

    # --- streams ----------------------------------------------------------------------

    def _wait(self, total: RawDeadline) -> tuple[RawDeadline, float, bool]:
        """The deadline for the next item: (deadline, seconds left, whether it is the idle one)."""
        clock = self.clock
        t = clock.now()
        deadline, left, idle = total, total[0] - t, False
        if self.idle is not None and self.idle < left:
            deadline, left, idle = (t + self.idle, clock, self.idle), self.idle, True
        outer = DEADLINE.get()
        if outer is not None:
            outer_left = outer[0] - t if outer[1] is clock else time_left(outer)
            if outer_left < left:
                deadline, left, idle = outer, outer_left, False
        return deadline, left, idle

    def _bind_gen(self, inner: Runner) -> Runner:
        seconds = self.seconds
        clock = self.clock
        now = clock.now
        push, pop = DEADLINE.set, DEADLINE.reset
        direct = inner is CALL
        wait = self._wait
        error = self._error

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            total = (now() + seconds, clock, seconds)
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    deadline, left, idle = wait(total)
                    if left <= 0 and thrown is None:
                        # A request for an item once time is up. (An exception the
                        # consumer throws in is delivered even then: never lost.)
                        raise error(deadline, fn, idle=idle)
                    token = push(deadline)
                    try:
                        item = step(it, sent, thrown)
                    except StopIteration as stop:
                        return stop.value
                    finally:
                        pop(token)
                    # Never thrown away: a late item is delivered, and the
                    # stream ends at the next request.
                    late = deadline[1].now() >= deadline[0]
                    sent = thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # throw() from the consumer: forward it
                        thrown = exc
                    if late and thrown is None:
                        raise error(deadline, fn, idle=idle)
            finally:
                it.close()

        return run

    def _bind_agen(self, inner: Runner) -> Runner:
        seconds = self.seconds
        clock = self.clock
        now = clock.now
        push, pop = DEADLINE.set, DEADLINE.reset
        direct = inner is CALL
        wait = self._wait
        error = self._error
        timeout_at = asyncio.timeout_at

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            total = (now() + seconds, clock, seconds)
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:  # not asyncio: trio's cancel scopes, or a clear error
                _aio.library()
                loop = None
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    deadline, left, idle = wait(total)
                    if left <= 0 and thrown is None:
                        raise error(deadline, fn, idle=idle)  # see _bind_gen
                    token = push(deadline)
                    # Late, a thrown-in exception is delivered without a scope.
                    cm: Any = _NO_SCOPE
                    if left > 0:
                        cm = _aio.timeout(left) if loop is None else timeout_at(loop.time() + left)
                    try:
                        # The scope covers the pending __anext__ only, never a yield.
                        async with cm:
                            item = await astep(it, sent, thrown)
                    except StopAsyncIteration:
                        return
                    except TimeoutError as exc:
                        if cm is not _NO_SCOPE and _fired(cm, exc):
                            await _aio.outer_cancellation()
                            raise error(deadline, fn, idle=idle) from _cancellation(exc)
                        raise
                    finally:
                        pop(token)
                    sent = thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
            finally:
                await it.aclose()

        return run


Timeout.__module__ = "resilience"
