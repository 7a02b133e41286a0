"""
Gates: policies that decide before a call and learn after it, and the one engine that runs them.

Most policies are a gate around the call. Before it, the gate *admits* the
call (at once, after a wait, or not at all: it raises a `RejectedError`);
after it, the gate *learns* the outcome: a success, a failure, or a
cancellation, with the call's duration when it asked for one. The circuit
breaker, the shared Retry-After pause, the metrics observer and a user's own
policy are gates.

A gate holds decisions only. This module owns, once for every gate:

- the drivers of the four shapes (sync, async, generator, async generator)
  and the ``with`` / ``async with`` form (`GatePolicy`); a stream is admitted
  when its first item is asked for and its outcome learnt when it ends;
- waiting (`Wait`): on the gate's clock or a `Waiter` in sync code, without
  blocking the event loop in async code, never past the current deadline (a
  wait that cannot end before it is refused at once);
- the rule that cancellation and interpreter exits (any `BaseException` that
  is not an `Exception`, and a consumer closing a stream early) are handed to
  `Gate.on_cancel`, never recorded as failures;
- the fast path: a gate whose `FastPath` says the call is admitted and its
  success changes nothing costs two attribute reads per call;
- adjacent gates: a gate bound right around another gate's runner (a
  function or a coroutine function, neither gate awaiting) runs both in one
  frame, calling each gate exactly as when they nest;
- awaiting gates (`AwaitingGate`): a gate whose decisions need I/O (a
  circuit kept in Redis through ``redis.asyncio``) has them awaited by the
  async drivers, chosen when the gate is bound; other gates pay nothing.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Final, NoReturn, Protocol, Self, final

from . import _aio
from ._clock import LONGEST_WAIT, SYSTEM_CLOCK, Clock, testing_state
from ._deadline import DEADLINE, time_left
from ._events import CallRejected, Hook, emit, listening
from ._exceptions import RejectedError
from ._fork import fork_safe_lock
from ._pipeline import CALL, PolicyMixin, Runner, Shape, target_name
from ._streams import astep, relay

__all__ = [
    "NO_RESULT",
    "AwaitingGate",
    "FastPath",
    "Gate",
    "GatePolicy",
    "Wait",
    "Waiter",
    "bind_gate",
    "refuse",
    "rejected",
]


@final
class _NoResult:
    """The result of a stream or a ``with`` block, which have none (`NO_RESULT`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_RESULT"

    def __reduce__(self) -> str:
        return "NO_RESULT"


NO_RESULT: Final[Any] = _NoResult()
"""What `Gate.on_success` receives as the result of a stream or a ``with`` block: they have none."""


class FastPath(Protocol):
    """
    Where the engine reads, on every call, whether a gate may be skipped (`Gate.fast`).

    Two attributes, read without a lock or a call; the gate (or its store)
    keeps them current:

    Attributes:
        ready: A permit that admits a call without `Gate.admit`, or `None`:
            then the engine asks `Gate.admit`.
        settled: A permit whose success changes nothing, or `None`. After a
            call admitted with *ready* returns, the engine reports the success
            only if this is no longer the same permit (or `Gate.results` asks
            for every result).
    """

    @property
    def ready(self) -> object | None: ...

    @property
    def settled(self) -> object | None: ...


@final
class _Never:
    """The fast path of a gate that has none: always ask, always report."""

    __slots__ = ()
    ready = None
    settled = None


_NEVER: Final = _Never()


class Gate(Protocol):
    """
    The decisions of a gate policy: admit a call, then learn its outcome.

    The engine (`bind_gate`, `GatePolicy`) calls these; none is called with a
    lock of the engine held, and each may be called from any thread or task
    at once: a gate guards its own state. They should return quickly and
    never block, except `admit`, which returns a `Wait` instead of waiting.

    ``target`` is the function called (for event labels), or `None` for a
    ``with`` block. ``duration`` is the call's duration in seconds on
    `clock` when `timed` is true (for a stream: to its first item, or to its
    end if it has none), else `None`.

    Attributes:
        timed: Whether the engine measures each call's duration.
        results: Whether `on_success` must see every result, even one the
            fast path says changes nothing (a classifier that judges results).
        fast: The gate's `FastPath`, or `None`: then every call goes
            through `admit` and every success is reported.
        clock: The clock durations and time waits are measured on.
        arguments: Whether `admit` receives the call's arguments: then the
            engine calls ``admit(target, args, kwargs)`` for a call
            (``args`` the tuple, ``kwargs`` the dict the function is called
            with) and still ``admit(None)`` for a ``with`` block, so give
            both parameters defaults. Read once, when the gate is bound;
            a gate without the attribute receives no arguments.
        awaits: Whether the gate's decisions must be awaited: then it is an
            `AwaitingGate`, bound to coroutine and async generator functions
            and ``async with`` only. Read once, when the gate is bound; a
            gate without the attribute is not awaited.
    """

    @property
    def timed(self) -> bool: ...

    @property
    def results(self) -> bool: ...

    @property
    def fast(self) -> FastPath | None: ...

    @property
    def clock(self) -> Clock: ...

    def admit(self, target: object, /) -> Any:
        """
        Decide whether the call may run: return a permit, a `Wait`, or raise a `RejectedError`.

        The permit is any object; the engine hands it back with the outcome.
        """
        ...

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Learn that the call admitted by *permit* returned *result* (`NO_RESULT`: none)."""
        ...

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """Learn that the call admitted by *permit* raised *error*."""
        ...

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """
        Give back what *permit* holds: the call was cancelled or interrupted, with no outcome.

        *error* is the `BaseException` that is not an `Exception`
        (cancellation, `KeyboardInterrupt`, `SystemExit`, `GeneratorExit` when
        the consumer closed a stream early). Called too when a call is
        cancelled while it waits: then *permit* is the `Wait` if its `Waiter`
        was not woken, else the permit it was handed.
        """
        ...

    def on_expired(self, wait: Wait, target: object, /) -> Any:
        """
        The *wait* cannot end in time: release its place and raise a `RejectedError`.

        Called when a time wait would end at or after the current deadline
        (before any sleep), or when a `Waiter` was not woken within
        `Wait.seconds` or before the deadline; ``wait.seconds`` then holds how
        long it waited. May return a permit instead, to admit the call after all.
        """
        ...


class AwaitingGate(Gate, Protocol):
    """
    A `Gate` whose decisions are awaited: they make round trips (to a shared store).

    A gate whose ``awaits`` is true when it is bound is driven through these
    coroutines instead of `Gate.admit`, `Gate.on_success` and
    `Gate.on_failure`: the async drivers (coroutine functions, async
    generator functions, ``async with``) await them in the call's own task,
    so the event loop runs other tasks during a round trip. It has no fast
    path (`Gate.fast` is not read): every call is admitted and every
    outcome reported through them. Sync shapes cannot await: binding one,
    or entering ``with``, raises `TypeError`, whose message the gate may
    give with an optional ``sync_refusal(what) -> str`` (say what to use
    instead). Which drivers a gate gets is decided once, at bind time: a
    gate that does not await pays nothing.

    What stays sync: `Gate.on_cancel` (a cancelled task must not wait for
    I/O: start a task if a round trip is needed, and never count the call)
    and `Gate.on_expired`, called while a `Wait` that ``aadmit`` returned is
    waited out.
    """

    @property
    def awaits(self) -> bool: ...

    async def aadmit(self, target: object, /) -> Any:
        """As `Gate.admit`, awaited: return a permit, a `Wait`, or raise a `RejectedError`."""
        ...

    async def aon_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """As `Gate.on_success`, awaited."""
        ...

    async def aon_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """As `Gate.on_failure`, awaited."""
        ...


def awaits(gate: object) -> bool:
    """Whether *gate* is an `AwaitingGate` now (read at bind time)."""
    return bool(getattr(gate, "awaits", False))


def not_awaitable(gate: object, what: str) -> TypeError:
    """The `TypeError` of an awaiting gate used from sync code (*what*: a function, ``with``)."""
    explain = getattr(gate, "sync_refusal", None)
    if explain is not None:
        return TypeError(explain(what))
    return TypeError(
        f"{type(gate).__name__} awaits its decisions: it protects coroutine functions, async "
        f"generator functions and `async with` blocks, got {what}"
    )


@final
class Waiter:
    """
    One caller's place in a gate's queue, woken from any thread or task.

    A gate that admits calls when room frees up (a bulkhead) returns
    ``Wait(seconds, waiter=Waiter())`` from `Gate.admit`, keeps the waiter in
    its queue, and later calls `wake` with the permit for that caller. The
    engine waits for it without holding the gate's lock: on a
    `threading.Event` in sync code, on a future of the caller's event loop in
    async code (an event of its trio run under trio; woken thread-safely).

    A waiter is woken at most once, and a caller that gave up (timed out or
    cancelled) cannot be woken: `wake` then returns `False` and the gate
    offers the permit to the next caller.
    """

    __slots__ = ("_event", "_lock", "_state", "_wakeup", "permit")

    _WAITING: Final = 0
    _WOKEN: Final = 1
    _GONE: Final = 2

    def __init__(self) -> None:
        self._lock = fork_safe_lock()
        self._state = self._WAITING
        self._event: threading.Event | None = None
        self._wakeup: _aio.Wakeup | None = None
        self.permit: Any = None
        """The permit `wake` handed over (`None` until then)."""

    def __repr__(self) -> str:
        state = ("waiting", "woken", "gone")[self._state]
        return f"<Waiter {state}>"

    @property
    def waiting(self) -> bool:
        """Whether the caller still waits: neither woken nor gone."""
        return self._state == self._WAITING

    def wake(self, permit: object) -> bool:
        """
        Hand *permit* to the waiting caller and wake it, from any thread or task.

        Returns:
            `True` if the caller takes the permit; `False` if it already gave
            up (timed out or was cancelled), or was woken before: then the
            permit is still the gate's to give.
        """
        with self._lock:
            if self._state != self._WAITING:
                return False
            self._state = self._WOKEN
            self.permit = permit
            event, wakeup = self._event, self._wakeup
        if event is not None:
            event.set()
        if wakeup is not None and not wakeup.set():
            # The waiting task's loop (or trio run) is over: it is gone.
            with self._lock:
                self._state = self._GONE
                self.permit = None
            return False
        return True

    def _give_up(self) -> bool:
        """Leave the queue; `False` if the caller was woken first (then it holds `permit`)."""
        with self._lock:
            if self._state == self._WOKEN:
                return False
            self._state = self._GONE
            return True

    def _wait(self, seconds: float | None) -> bool:
        """Block until woken or *seconds* pass; return whether woken."""
        with self._lock:
            if self._state == self._WOKEN:
                return True
            event = self._event = threading.Event()
        return event.wait(seconds)

    async def _await(self, seconds: float | None) -> bool:
        """Wait, without blocking the loop, until woken or *seconds* pass; return whether woken."""
        wakeup = _aio.wakeup()
        with self._lock:
            if self._state == self._WOKEN:
                return True
            self._wakeup = wakeup
        return await wakeup.wait(seconds)


@final
class Wait:
    """
    What `Gate.admit` returns when the call may run only after a wait.

    Two kinds:

    - a **time wait** (``waiter`` is `None`): sleep *seconds* on the gate's
      clock (not at all in testing mode, see `resilience.testing`), then run
      with *permit*. A rate limiter that reserved a later slot, or a pause,
      returns one. If the sleep would end at or after the current deadline,
      `Gate.on_expired` is called instead, at once.
    - a **queue wait** (a `Waiter`): wait until the gate wakes the waiter with
      a permit, for at most *seconds* (`None`: no limit) and never past the
      current deadline; if it is not woken in time, `Gate.on_expired`.

    A call cancelled while it waits is handed to `Gate.on_cancel`.

    Args:
        seconds: How long: the sleep of a time wait; the most a queue wait
            lasts (`None`: until woken or the deadline).
        permit: The permit a time wait runs with. Default: `None`.
        waiter: The `Waiter` of a queue wait. Default: `None` (a time wait).

    Raises:
        ValueError: On negative or NaN *seconds*, or a time wait without seconds.
    """

    __slots__ = ("permit", "seconds", "waiter")

    def __init__(
        self, seconds: float | None, permit: object = None, *, waiter: Waiter | None = None
    ) -> None:
        if seconds is None:
            if waiter is None:
                raise ValueError("a time wait needs seconds (a Wait without a waiter)")
        elif not seconds >= 0:
            raise ValueError(f"seconds must be >= 0 or None, got {seconds!r}")
        self.seconds = seconds
        self.permit = permit
        self.waiter = waiter

    def __repr__(self) -> str:
        kind = "time" if self.waiter is None else "queue"
        return f"<Wait {kind} seconds={self.seconds!r}>"


def _bounded(wait: Wait) -> float | None:
    """*wait*'s seconds, bounded by the current deadline (negative: the deadline has passed)."""
    seconds = wait.seconds
    deadline = DEADLINE.get()
    if deadline is not None:
        left = time_left(deadline)
        if wait.waiter is None:
            seconds = seconds if seconds is not None and seconds < left else -1.0
        else:
            seconds = left if seconds is None or left < seconds else seconds
    if seconds is not None and seconds > LONGEST_WAIT:
        # Longer than any wait can last (the platform's time functions overflow):
        # a time wait could never end, so it expires now; a queue wait has no limit.
        return -1.0 if wait.waiter is None else None
    return seconds


_Call = tuple[tuple[Any, ...], dict[str, Any]]
"""A call's ``(args, kwargs)``, for a gate that receives them."""


def takes_arguments(gate: Gate) -> bool:
    """Whether *gate* asks for the call's arguments in `Gate.admit` (read at bind time)."""
    return bool(getattr(gate, "arguments", False))


def wait_sync(gate: Gate, wait: Wait, target: object) -> Any:
    """Wait out *wait* in sync code; return the permit the call runs with."""
    seconds, waiter = _bounded(wait), wait.waiter
    if waiter is None and (seconds is None or seconds < 0):
        return gate.on_expired(wait, target)
    try:
        if waiter is not None:
            woken = (seconds is None or seconds > 0) and waiter._wait(seconds)
        else:
            woken = True
            if seconds and not testing_state.enabled:
                gate.clock.sleep(seconds)
    except BaseException as exc:
        _cancelled(gate, wait, exc, target)
        raise
    return _ended(gate, wait, woken, seconds, target)


async def wait_async(gate: Gate, wait: Wait, target: object) -> Any:
    """Wait out *wait* without blocking the event loop; return the permit the call runs with."""
    seconds, waiter = _bounded(wait), wait.waiter
    if waiter is None and (seconds is None or seconds < 0):
        return gate.on_expired(wait, target)
    try:
        if waiter is not None:
            woken = (seconds is None or seconds > 0) and await waiter._await(seconds)
        else:
            woken = True
            if seconds and not testing_state.enabled:
                await gate.clock.asleep(seconds)
    except BaseException as exc:
        _cancelled(gate, wait, exc, target)
        raise
    return _ended(gate, wait, woken, seconds, target)


def _cancelled(gate: Gate, wait: Wait, exc: BaseException, target: object) -> None:
    """A call cancelled while it waited: give back what it holds (its `Wait`, if not woken)."""
    waiter = wait.waiter
    if waiter is None:
        gate.on_cancel(wait.permit, exc, None, target)
    else:
        gate.on_cancel(wait if waiter._give_up() else waiter.permit, exc, None, target)


def _ended(gate: Gate, wait: Wait, woken: bool, seconds: float | None, target: object) -> Any:
    """The permit a finished wait runs with; `Gate.on_expired` if no one woke it in time."""
    waiter = wait.waiter
    if waiter is None:
        return wait.permit
    if woken or not waiter._give_up():  # woken at the last moment: it holds the permit
        return waiter.permit
    wait.seconds = max(seconds or 0.0, 0.0)  # what it was given: the deadline may have cut it
    return gate.on_expired(wait, target)


def admit_sync(gate: Gate, target: object, call: _Call | None = None) -> Any:
    """
    Return a permit for one call through *gate* in sync code: admitted, after a wait if asked.

    *call* is ``(args, kwargs)`` for a gate that receives the call's arguments
    (`Gate`'s ``arguments``); `None` calls ``admit(target)`` alone.
    """
    fast = gate.fast
    permit = None if fast is None else fast.ready
    if permit is None:
        permit = gate.admit(target) if call is None else gate.admit(target, *call)  # type: ignore[call-arg]
        if type(permit) is Wait:
            permit = wait_sync(gate, permit, target)
    return permit


async def admit_async(gate: Gate, target: object, call: _Call | None = None) -> Any:
    """As `admit_sync`, waiting without blocking the event loop."""
    fast = gate.fast
    permit = None if fast is None else fast.ready
    if permit is None:
        permit = gate.admit(target) if call is None else gate.admit(target, *call)  # type: ignore[call-arg]
        if type(permit) is Wait:
            permit = await wait_async(gate, permit, target)
    return permit


async def admit_awaited(gate: AwaitingGate, target: object, call: _Call | None = None) -> Any:
    """As `admit_async`, for an `AwaitingGate`: its decision is awaited."""
    if call is None:
        permit = await gate.aadmit(target)
    else:
        permit = await gate.aadmit(target, *call)  # type: ignore[call-arg]
    if type(permit) is Wait:
        permit = await wait_async(gate, permit, target)
    return permit


def refuse(
    hooks: tuple[Hook, ...],
    error: RejectedError,
    *,
    name: str | None,
    target: object,
    reason: str,
    retry_after: float | None = None,
) -> NoReturn:
    """
    Refuse a call: emit `resilience.CallRejected` (if anyone listens), then raise *error*.

    How every gate says no, so that events, logs and metrics see every
    refusal the same way.

    Args:
        hooks: The policy's own hooks (the global hooks are added by `emit`).
        error: The `RejectedError` the caller gets.
        name: The policy's name, for the event.
        target: The function called, or `None` for a ``with`` block.
        reason: Why, for the event and the metrics (``"bulkhead_full"``).
        retry_after: Seconds until calls may be admitted again, if known.
    """
    raise rejected(hooks, error, name=name, target=target, reason=reason, retry_after=retry_after)


def rejected(
    hooks: tuple[Hook, ...],
    error: RejectedError,
    *,
    name: str | None,
    target: object,
    reason: str,
    retry_after: float | None = None,
) -> RejectedError:
    """
    As `refuse`, but return *error* for the caller to raise (one frame less in its traceback).

    Nothing is built for the event (not even the target's name) when nobody
    listens (`resilience.engine.listening`).
    """
    if listening(hooks, CallRejected):
        emit(
            hooks,
            CallRejected,
            name=name,
            target=None if target is None else target_name(target),
            reason=reason,
            retry_after=retry_after,
        )
    return error


# --- the drivers ------------------------------------------------------------------


def bind_gate(gate: Gate, inner: Runner, shape: Shape) -> Runner:
    """
    Return a runner that runs *inner* through *gate*, for callables of *shape*.

    What a gate policy's ``bind`` returns (`GatePolicy` does it for you).
    The gate's `timed`, `results`, `fast` and `clock` are read here, once,
    and whether it awaits its decisions (an `AwaitingGate`). Bound around
    the plain runner of another gate for the same function or coroutine
    function shape, it returns one runner for both (the gates see the same
    calls as when nested; a third gate nests around the pair).

    Raises:
        TypeError: If the gate awaits and *shape* is sync (a function or a generator).
    """
    if awaits(gate):
        if shape is Shape.ASYNC:
            return _awaited(gate, inner)  # type: ignore[arg-type]
        if shape is Shape.AGEN:
            return _agen(gate, inner, gate)  # type: ignore[arg-type]
        raise not_awaitable(gate, f"a {shape.value}")
    if shape is Shape.SYNC or shape is Shape.ASYNC:
        # Two adjacent gates share one frame: the inner one's driver inlined.
        pair: tuple[Gate, Runner, Shape] | None = getattr(inner, _GATE_RUNNER, None)
        if _FUSE and pair is not None and pair[2] is shape:
            if shape is Shape.SYNC:
                return _sync_pair(gate, pair[0], pair[1])
            return _async_pair(gate, pair[0], pair[1])
        run = _sync(gate, inner) if shape is Shape.SYNC else _async(gate, inner)
        # Marked once, here: the gate binding around it reads it (never a call).
        setattr(run, _GATE_RUNNER, (gate, inner, shape))
        return run
    if shape is Shape.GEN:
        return _gen(gate, inner)
    return _agen(gate, inner)


# Whether a gate bound around another gate's plain runner of the same shape
# (SYNC or ASYNC, neither awaiting) runs both in one frame (`_sync_pair`,
# `_async_pair`). Read at bind time; tests turn it off to compare the two.
_FUSE = True

# The attribute that marks a plain gate runner with ``(gate, inner, shape)``:
# set by `bind_gate` on the runners of `_sync` and `_async` only, never on a
# fused one (a third gate nests around it).
_GATE_RUNNER: Final = "_resilience_gate_runner"


# A success is reported unless the call was admitted by the fast path's `ready`
# permit and that permit is still `settled` after it (and the gate does not ask
# for every result). A call that `admit` let in is always reported.


def _sync(gate: Gate, inner: Runner) -> Runner:
    fast = gate.fast or _NEVER
    admit = gate.admit
    on_success, on_failure, on_cancel = gate.on_success, gate.on_failure, gate.on_cancel
    results = gate.results
    arguments = takes_arguments(gate)
    direct = inner is CALL
    timed = gate.timed
    now = gate.clock.now

    def full(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        report = results
        permit = fast.ready
        if permit is None:
            report = True
            permit = admit(fn, args, kwargs) if arguments else admit(fn)  # type: ignore[call-arg]
            if type(permit) is Wait:
                permit = wait_sync(gate, permit, fn)
        start = now() if timed else 0.0
        try:
            result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
        except Exception as exc:
            on_failure(permit, exc, now() - start if timed else None, fn)
            raise
        except BaseException as exc:
            on_cancel(permit, exc, now() - start if timed else None, fn)
            raise
        if report or permit is not fast.settled:
            on_success(permit, result, now() - start if timed else None, fn)
        return result

    if fast is _NEVER or results or timed:
        return full

    # The hot path: two attribute reads around the call while the fast path holds.
    def quick(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        permit = fast.ready
        if permit is None:
            return full(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
        except Exception as exc:
            on_failure(permit, exc, None, fn)
            raise
        except BaseException as exc:
            on_cancel(permit, exc, None, fn)
            raise
        if permit is not fast.settled:
            on_success(permit, result, None, fn)
        return result

    return quick


def _async(gate: Gate, inner: Runner) -> Runner:
    fast = gate.fast or _NEVER
    admit = gate.admit
    on_success, on_failure, on_cancel = gate.on_success, gate.on_failure, gate.on_cancel
    results = gate.results
    arguments = takes_arguments(gate)
    direct = inner is CALL
    timed = gate.timed
    now = gate.clock.now

    async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        report = results
        permit = fast.ready
        if permit is None:
            report = True
            permit = admit(fn, args, kwargs) if arguments else admit(fn)  # type: ignore[call-arg]
            if type(permit) is Wait:
                permit = await wait_async(gate, permit, fn)
        start = now() if timed else 0.0
        try:
            result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
        except Exception as exc:
            on_failure(permit, exc, now() - start if timed else None, fn)
            raise
        except BaseException as exc:
            on_cancel(permit, exc, now() - start if timed else None, fn)
            raise
        if report or permit is not fast.settled:
            on_success(permit, result, now() - start if timed else None, fn)
        return result

    return run


# The pairs: `_sync(outer, _sync(gate, inner))` with the inner driver's `full`
# written out inside the outer's `try`, so that everything the inner gate
# raises (a refusal, an expired or cancelled wait, its own `on_success` or
# `on_failure` raising) is the outer call's outcome, as when they nest. The
# names of the outer gate end in 1, those of the inner gate in 2.


def _sync_pair(outer: Gate, gate: Gate, inner: Runner) -> Runner:
    """One runner for *outer* around *gate* around *inner*: `_sync` twice, in one frame."""
    fast1 = outer.fast or _NEVER
    admit1 = outer.admit
    on_success1, on_failure1, on_cancel1 = outer.on_success, outer.on_failure, outer.on_cancel
    results1 = outer.results
    arguments1 = takes_arguments(outer)
    timed1 = outer.timed
    now1 = outer.clock.now
    fast2 = gate.fast or _NEVER
    admit2 = gate.admit
    on_success2, on_failure2, on_cancel2 = gate.on_success, gate.on_failure, gate.on_cancel
    results2 = gate.results
    arguments2 = takes_arguments(gate)
    timed2 = gate.timed
    now2 = gate.clock.now
    direct = inner is CALL

    def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        report1 = results1
        permit1 = fast1.ready
        if permit1 is None:
            report1 = True
            permit1 = admit1(fn, args, kwargs) if arguments1 else admit1(fn)  # type: ignore[call-arg]
            if type(permit1) is Wait:
                permit1 = wait_sync(outer, permit1, fn)
        start1 = now1() if timed1 else 0.0
        try:
            report2 = results2
            permit2 = fast2.ready
            if permit2 is None:
                report2 = True
                permit2 = admit2(fn, args, kwargs) if arguments2 else admit2(fn)  # type: ignore[call-arg]
                if type(permit2) is Wait:
                    permit2 = wait_sync(gate, permit2, fn)
            start2 = now2() if timed2 else 0.0
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except Exception as exc:
                on_failure2(permit2, exc, now2() - start2 if timed2 else None, fn)
                raise
            except BaseException as exc:
                on_cancel2(permit2, exc, now2() - start2 if timed2 else None, fn)
                raise
            if report2 or permit2 is not fast2.settled:
                on_success2(permit2, result, now2() - start2 if timed2 else None, fn)
        except Exception as exc:
            on_failure1(permit1, exc, now1() - start1 if timed1 else None, fn)
            raise
        except BaseException as exc:
            on_cancel1(permit1, exc, now1() - start1 if timed1 else None, fn)
            raise
        if report1 or permit1 is not fast1.settled:
            on_success1(permit1, result, now1() - start1 if timed1 else None, fn)
        return result

    return run


def _async_pair(outer: Gate, gate: Gate, inner: Runner) -> Runner:
    """As `_sync_pair`, for coroutine functions: `_async` twice, in one coroutine."""
    fast1 = outer.fast or _NEVER
    admit1 = outer.admit
    on_success1, on_failure1, on_cancel1 = outer.on_success, outer.on_failure, outer.on_cancel
    results1 = outer.results
    arguments1 = takes_arguments(outer)
    timed1 = outer.timed
    now1 = outer.clock.now
    fast2 = gate.fast or _NEVER
    admit2 = gate.admit
    on_success2, on_failure2, on_cancel2 = gate.on_success, gate.on_failure, gate.on_cancel
    results2 = gate.results
    arguments2 = takes_arguments(gate)
    timed2 = gate.timed
    now2 = gate.clock.now
    direct = inner is CALL

    async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        report1 = results1
        permit1 = fast1.ready
        if permit1 is None:
            report1 = True
            permit1 = admit1(fn, args, kwargs) if arguments1 else admit1(fn)  # type: ignore[call-arg]
            if type(permit1) is Wait:
                permit1 = await wait_async(outer, permit1, fn)
        start1 = now1() if timed1 else 0.0
        try:
            report2 = results2
            permit2 = fast2.ready
            if permit2 is None:
                report2 = True
                permit2 = admit2(fn, args, kwargs) if arguments2 else admit2(fn)  # type: ignore[call-arg]
                if type(permit2) is Wait:
                    permit2 = await wait_async(gate, permit2, fn)
            start2 = now2() if timed2 else 0.0
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except Exception as exc:
                on_failure2(permit2, exc, now2() - start2 if timed2 else None, fn)
                raise
            except BaseException as exc:
                on_cancel2(permit2, exc, now2() - start2 if timed2 else None, fn)
                raise
            if report2 or permit2 is not fast2.settled:
                on_success2(permit2, result, now2() - start2 if timed2 else None, fn)
        except Exception as exc:
            on_failure1(permit1, exc, now1() - start1 if timed1 else None, fn)
            raise
        except BaseException as exc:
            on_cancel1(permit1, exc, now1() - start1 if timed1 else None, fn)
            raise
        if report1 or permit1 is not fast1.settled:
            on_success1(permit1, result, now1() - start1 if timed1 else None, fn)
        return result

    return run


def _gen(gate: Gate, inner: Runner) -> Runner:
    on_success = gate.on_success
    arguments = takes_arguments(gate)
    direct = inner is CALL
    timed = gate.timed
    now = gate.clock.now

    # The call is admitted when the consumer asks for the first item, and its
    # outcome learnt when the stream ends.
    def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        permit = admit_sync(gate, fn, (args, kwargs) if arguments else None)
        start = now() if timed else None
        duration: float | None = None
        try:
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            if start is None:
                result = yield from it
            else:
                # Timed to the first item: the upstream's latency, not the consumer's pace.
                try:
                    item = next(it)
                except StopIteration as stop:
                    duration = now() - start
                    result = stop.value
                else:
                    duration = now() - start
                    result = yield from relay(it, item)
        except BaseException as exc:  # GeneratorExit: the consumer stopped early
            _stream_failed(gate, permit, exc, duration, start, fn)
            raise
        on_success(permit, NO_RESULT, duration, fn)
        return result

    return run


def _agen(gate: Gate, inner: Runner, awaited: AwaitingGate | None = None) -> Runner:
    """
    The async generator driver: admitted at the first step, recorded when the stream ends.

    With *awaited* (the same gate, an `AwaitingGate`), its admission and the
    stream's outcome are awaited; a cancellation or an early close stays sync.
    """
    on_success = gate.on_success
    arguments = takes_arguments(gate)
    direct = inner is CALL
    timed = gate.timed
    now = gate.clock.now

    async def run(
        fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        call = (args, kwargs) if arguments else None
        if awaited is None:
            permit = await admit_async(gate, fn, call)
        else:
            permit = await admit_awaited(awaited, fn, call)
        start = now() if timed else None
        duration: float | None = None
        try:
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            try:
                item = await it.__anext__()
                if start is not None:
                    duration = now() - start
                while True:
                    sent: Any = None
                    thrown: BaseException | None = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
                    item = await astep(it, sent, thrown)
            except StopAsyncIteration:
                pass
            finally:
                await it.aclose()
        except BaseException as exc:  # GeneratorExit: the consumer stopped early
            if awaited is None or not isinstance(exc, Exception):
                _stream_failed(gate, permit, exc, duration, start, fn)
                raise
            if start is not None and duration is None:
                duration = now() - start
            await awaited.aon_failure(permit, exc, duration, fn)
            raise
        if start is not None and duration is None:
            duration = now() - start
        if awaited is None:
            on_success(permit, NO_RESULT, duration, fn)
        else:
            await awaited.aon_success(permit, NO_RESULT, duration, fn)

    return run


def _awaited(gate: AwaitingGate, inner: Runner) -> Runner:
    """The coroutine driver of an `AwaitingGate`: its decisions awaited in the call's task."""
    aadmit, aon_success, aon_failure = gate.aadmit, gate.aon_success, gate.aon_failure
    on_cancel = gate.on_cancel
    arguments = takes_arguments(gate)
    direct = inner is CALL
    timed = gate.timed
    now = gate.clock.now

    async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        permit = await (aadmit(fn, args, kwargs) if arguments else aadmit(fn))  # type: ignore[call-arg]
        if type(permit) is Wait:
            permit = await wait_async(gate, permit, fn)
        start = now() if timed else 0.0
        try:
            result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
        except Exception as exc:
            await aon_failure(permit, exc, now() - start if timed else None, fn)
            raise
        except BaseException as exc:
            on_cancel(permit, exc, now() - start if timed else None, fn)
            raise
        await aon_success(permit, result, now() - start if timed else None, fn)
        return result

    return run


def _stream_failed(
    gate: Gate,
    permit: Any,
    exc: BaseException,
    duration: float | None,
    start: float | None,
    fn: object,
) -> None:
    """A stream ended with *exc*: a failure if it is an `Exception`, else a cancellation."""
    if start is not None and duration is None:
        duration = gate.clock.now() - start
    if isinstance(exc, Exception):
        gate.on_failure(permit, exc, duration, fn)
    else:
        gate.on_cancel(permit, exc, duration, fn)


# --- the policy mixin: decorator, call/acall, compose, `with` and `async with` -------

# The permits of the `with` blocks running in this context, innermost last:
# (gate, id of the frame running the `with` statement, permit, start).
# Generators share their consumer's context, so blocks suspended at a
# `yield` interleave here; the frame tells whose block is leaving.
_Entry = tuple[object, int, Any, float | None]
_ENTERED: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar(
    "resilience_gates_entered", default=()
)


class GatePolicy(PolicyMixin):
    """
    Make a `Gate` a whole policy: decorator, `call` / `acall`, `compose`, ``with``, ``async with``.

    Subclass it and implement `Gate.admit` (and the ``on_*`` methods you
    need: by default they do nothing, and `on_expired` raises a
    `RejectedError`). Works on the four shapes: functions and methods,
    coroutine functions, and (async) generator functions.

    ``with gate:`` admits the block on entry (waiting in sync code if the gate
    asks) and reports its outcome on exit; ``async with gate:`` waits without
    blocking the loop. Blocks nest and may be suspended inside generators.
    """

    __slots__ = ()

    # Read once, when the policy is bound. Override with a property or a plain attribute.

    @property
    def timed(self) -> bool:
        """Whether the engine times each call (see `Gate`). Default: `False`."""
        return False

    @property
    def results(self) -> bool:
        """Whether `on_success` must see every result (see `Gate`). Default: `False`."""
        return False

    @property
    def fast(self) -> FastPath | None:
        """The gate's `FastPath` (see `Gate`). Default: `None`: every call asks `admit`."""
        return None

    @property
    def clock(self) -> Clock:
        """The clock of durations and time waits. Default: the system clock."""
        return SYSTEM_CLOCK

    @property
    def awaits(self) -> bool:
        """
        Whether the decisions are awaited (an `AwaitingGate`). Default: `False`.

        When true, the gate implements ``aadmit``, ``aon_success`` and
        ``aon_failure``, and protects only coroutine functions, async
        generator functions and ``async with`` blocks.
        """
        return False

    @property
    def arguments(self) -> bool:
        """
        Whether `admit` receives the call's arguments (see `Gate`). Default: `False`.

        When true, a call is admitted with ``admit(target, args, kwargs)`` and
        a ``with`` block with ``admit(None)``.
        """
        return False

    def admit(self, target: object, /) -> Any:  # pragma: no cover - the subclass's
        raise NotImplementedError(f"{type(self).__name__} must implement admit(target)")

    def _learn_nothing(
        self, permit: Any, outcome: Any, duration: float | None, target: object, /
    ) -> None:
        """Learn nothing: the default of `on_success`, `on_failure` and `on_cancel`."""

    on_success = on_failure = on_cancel = _learn_nothing

    def on_expired(self, wait: Wait, target: object, /) -> Any:
        """Refuse a call whose wait cannot end in time (see `Gate.on_expired`)."""
        raise RejectedError(f"{type(self).__name__}: the wait cannot end before the deadline")

    def bind(self, inner: Runner, shape: Shape, /) -> Runner:
        """Return a runner applying this gate around *inner* (see `resilience.Policy`)."""
        return bind_gate(self, inner, shape)

    # --- `with` and `async with` ------------------------------------------------

    def __enter__(self) -> Self:
        """Admit the block, waiting if the gate asks; return the policy."""
        if self.awaits:
            raise not_awaitable(self, "a `with` block (use `async with`)")
        frame = id(sys._getframe(1))
        permit = admit_sync(self, None)
        _enter(self, frame, permit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Report the block's outcome: a success, a failure (an `Exception`) or a cancellation."""
        _exit(self, id(sys._getframe(1)), exc)

    async def __aenter__(self) -> Self:
        """As ``__enter__``, waiting without blocking the event loop."""
        frame = id(sys._getframe(1))
        if self.awaits:
            permit = await admit_awaited(self, None)  # type: ignore[arg-type]
        else:
            permit = await admit_async(self, None)
        _enter(self, frame, permit)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """As ``__exit__``, for ``async with`` (the outcome awaited if the gate awaits)."""
        if not self.awaits:
            _exit(self, id(sys._getframe(1)), exc)
            return
        permit, duration = _leave(self, id(sys._getframe(1)))
        gate: Any = self
        if exc is None:
            await gate.aon_success(permit, NO_RESULT, duration, None)
        elif isinstance(exc, Exception):
            await gate.aon_failure(permit, exc, duration, None)
        else:
            self.on_cancel(permit, exc, duration, None)


def _enter(gate: Gate, frame: int, permit: Any) -> None:
    start = gate.clock.now() if gate.timed else None
    _ENTERED.set((*_ENTERED.get(), (gate, frame, permit, start)))


def _exit(gate: Gate, frame: int, exc: BaseException | None) -> None:
    permit, duration = _leave(gate, frame)
    if exc is None:
        gate.on_success(permit, NO_RESULT, duration, None)
    elif isinstance(exc, Exception):
        gate.on_failure(permit, exc, duration, None)
    else:
        gate.on_cancel(permit, exc, duration, None)


def _leave(gate: Gate, frame: int) -> tuple[Any, float | None]:
    """Take the block *frame* entered through *gate* off the stack: its permit and duration."""
    entered = _ENTERED.get()
    # The innermost block of this gate entered by the same frame: blocks of
    # generators suspended inside them interleave, and each must report its
    # own permit. A block entered through a helper (contextlib's ExitStack
    # enters and leaves from different frames) falls back to the innermost
    # block of this gate.
    found = None
    for index in range(len(entered) - 1, -1, -1):
        entry = entered[index]
        if entry[0] is gate:
            if entry[1] == frame:
                found = index
                break
            if found is None:
                found = index
    if found is None:
        raise RuntimeError(f"{type(gate).__name__}.__exit__ without a matching __enter__")
    _, _, permit, start = entered[found]
    _ENTERED.set(entered[:found] + entered[found + 1 :])
    return permit, None if start is None else gate.clock.now() - start
