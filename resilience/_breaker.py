"""
CircuitBreaker: stop calling an upstream that keeps failing, and probe it before trusting it again.

The decisions live in the circuit's store (``_circuit.py``): may this call run,
what does its outcome change. The drivers here (sync, async, generator, async
generator, ``with`` and ``async with``) ask the store, run the call without
holding any lock, classify the outcome, hand it back, and announce the
transitions the store reports as events, outside any lock. They share the
slow-path helpers (`_fail`, `_reject`, `_announce`), so they cannot drift apart.

The closed-state success path costs two method calls on the store, each
reading an attribute or two; no lock, no clock read (unless a `SlowCallRate`
needs durations), no allocation. With the default store counting consecutive
failures, the sync and async runners read those attributes themselves
(`_inlined_store`), which halves the cost.
"""

from __future__ import annotations

import contextvars
import datetime
import random
import sys
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import Any, Final, NoReturn, final

import attrs

from ._circuit import (
    CircuitPermit,
    CircuitRejection,
    CircuitState,
    CircuitStore,
    CircuitTransition,
    FailureRate,
    InMemoryCircuitStore,
    SlowCallRate,
    to_conditions,
)
from ._classify import ErrorClassifier, to_classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    Hook,
    emit,
)
from ._exceptions import CircuitOpenError
from ._explain import Description, rule_lines, seconds
from ._pipeline import CALL, PolicyMixin, Runner, pipeline_field, target_name
from ._validate import check_clock, check_name, check_rng, to_count, to_hooks, to_seconds
from .backoff import Backoff

__all__ = ["CircuitBreaker"]

_RNG = random.Random()

_REJECTION_REASONS = {
    CircuitState.OPEN: "circuit_open",
    CircuitState.HALF_OPEN: "circuit_half_open",
    CircuitState.ISOLATED: "circuit_isolated",
}


# --- validation (construction time only) -------------------------------------------


def _check_threshold(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    to_count(attribute.name, value, none=attribute.name == "failure_threshold")


_RESET_TIMEOUT: Final = (
    "seconds (a number or a timedelta) or a resilience.backoff.Backoff giving growing open periods"
)


def _to_reset_timeout(value: float | datetime.timedelta | Backoff) -> float | Backoff:
    if isinstance(value, type) or not callable(value):  # not a Backoff: seconds
        return to_seconds(
            "reset_timeout", value, zero=True, expected=_RESET_TIMEOUT, shown="seconds"
        )
    return value


def _check_store(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise TypeError(
            "store must be a callable taking the breaker and returning a CircuitStore "
            f"(such as resilience.InMemoryCircuitStore), got {type(value).__name__}: {value!r}"
        )


def _window(condition: FailureRate | SlowCallRate) -> str:
    if condition.calls is not None:
        window = f"the last {condition.calls} calls"
    else:
        window = f"the last {seconds(condition.seconds or 0.0)}"
    return f"{window} (once it holds {condition.minimum_calls})"


def _describe_condition(condition: FailureRate | SlowCallRate) -> str:
    share = f"{condition.rate:.0%}"
    if isinstance(condition, SlowCallRate):
        slow = seconds(condition.slower_than)
        return f"{share} or more of calls slower than {slow} over {_window(condition)}"
    return f"a failure rate of {share} or more over {_window(condition)}"


def _default_threshold(self: CircuitBreaker) -> int | None:
    return None if self.trip else 5


# Passed as the result of streams and `with` blocks, which have none to classify.
_NO_RESULT: Any = object()


def _delegate(gen: Any, item: object) -> Generator[Any, Any, Any]:
    """Yield *item*, then the rest of *gen*, forwarding send(), throw() and close()."""
    while True:
        try:
            sent = yield item
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:
            try:
                item = gen.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                item = next(gen) if sent is None else gen.send(sent)
            except StopIteration as stop:
                return stop.value


# The permits of the `with` blocks running in this context, innermost last:
# (breaker, id of the frame running the `with` statement, permit, start).
# Generators share their consumer's context, so blocks suspended at a
# `yield` interleave here; the frame tells whose block is leaving.
_Entry = tuple["CircuitBreaker", int, CircuitPermit, float | None]
_ENTERED: contextvars.ContextVar[tuple[_Entry, ...]] = contextvars.ContextVar(
    "resilience_breaker_entered", default=()
)


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class CircuitBreaker(PolicyMixin):
    """
    Reject calls to an upstream that keeps failing, then let a few probes test it.

    A `CircuitBreaker` is **one circuit**: shared, mutable state. Every call
    through it, from any thread or task, counts toward the same state; to
    protect two upstreams, make two breakers. Its configuration is immutable;
    its state lives in one small store (`InMemoryCircuitStore` by default)
    behind one lock, held for state decisions only, never across the call, an
    ``await``, user code or a hook.

    **Closed**, calls run and their outcomes are counted: only outcomes whose
    verdict has ``trip`` are failures; errors the classifier does not trip on
    are neither failures nor successes. The circuit **opens** when
    *failure_threshold* failures come in a row, or when a `FailureRate` or
    `SlowCallRate` condition of *trip* holds. Open, calls are rejected at once
    with `CircuitOpenError`. After *reset_timeout* (at exactly that instant) it
    is **half-open**: *half_open_max_calls* probe calls may run, other calls
    are rejected; *success_threshold* successful probes close it, one failed
    probe opens it again. Cancellation, `KeyboardInterrupt`, `SystemExit` and
    `GeneratorExit` are never counted; a probe that ends that way gives its
    place back.

    Use it as a decorator (functions, methods, coroutine functions, and
    (async) generator functions, whose outcome is recorded when the stream
    ends; a consumer that stops early is not a failure), through
    `breaker.call` / `breaker.acall`, in `compose`, or around a block with
    ``with breaker:`` / ``async with breaker:`` (`CircuitOpenError` on entry
    while open; the block's exception or success is recorded on exit).

    Args:
        on: What counts as a failure: an `ErrorClassifier` (`resilience.transient`
            is a ready one), an exception type or tuple of types, a `Rule`, or
            a predicate over the exception. Outcomes whose verdict has ``trip``
            are failures; results are classified too when a rule can match them.
            Required.
        name: A label for events and `CircuitOpenError`. Default: `None`.
        failure_threshold: Consecutive failures that open the circuit; `None`
            disables the count. Default: 5, or `None` when *trip* is given.
        trip: Windowed conditions, any of which opens the circuit: a
            `FailureRate`, a `SlowCallRate`, or an iterable of them. Default:
            none.
        reset_timeout: How long the circuit stays open before it turns
            half-open. Seconds (a number or a `datetime.timedelta`), or a
            `resilience.backoff.Backoff` whose ``attempt`` is the number of
            openings since the circuit was last closed, so that an upstream
            that keeps failing its probes is left alone longer and longer
            (``rs.backoff.exponential(initial=10.0, max=600.0)``).
            Default: 60.0.
        half_open_max_calls: Probe calls admitted per half-open period, across
            all threads and tasks. Default: 1.
        success_threshold: Successful probes that close the circuit; at most
            *half_open_max_calls*. Default: 1.
        hooks: Callables receiving this breaker's events, before the global hooks.
        clock: Where time comes from. Default: the system clock.
        rng: The random source of a jittered *reset_timeout* backoff. Default:
            a shared `random.Random`.
        store: A callable that makes the circuit's store, given the breaker;
            see `CircuitStore`. Default: `InMemoryCircuitStore`.

    Raises:
        TypeError: On an argument of the wrong type (``bool`` is not a number).
        ValueError: On an out-of-range value: a threshold below 1, a negative
            *reset_timeout*, *success_threshold* above *half_open_max_calls*.

    .. versionadded:: 0.1.0
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier)
    name: str | None = attrs.field(default=None, validator=check_name)
    trip: tuple[FailureRate | SlowCallRate, ...] = attrs.field(default=(), converter=to_conditions)
    failure_threshold: int | None = attrs.field(
        default=attrs.Factory(_default_threshold, takes_self=True), validator=_check_threshold
    )
    reset_timeout: float | Backoff = attrs.field(default=60.0, converter=_to_reset_timeout)
    half_open_max_calls: int = attrs.field(default=1, validator=_check_threshold)
    success_threshold: int = attrs.field(default=1, validator=_check_threshold)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    rng: random.Random = attrs.field(default=_RNG, repr=False, validator=check_rng)
    store: Callable[[CircuitBreaker], CircuitStore] = attrs.field(
        default=InMemoryCircuitStore, validator=_check_store, repr=False
    )
    _store: CircuitStore = attrs.field(init=False, repr=False)
    _timed: bool = attrs.field(init=False, repr=False)
    _label: str = attrs.field(init=False, repr=False)
    _pipeline: Any = pipeline_field()

    def __attrs_post_init__(self) -> None:
        if self.success_threshold > self.half_open_max_calls:
            raise ValueError(
                f"success_threshold must be <= half_open_max_calls "
                f"({self.half_open_max_calls!r}): a half-open circuit admits no more probes "
                f"than that, got success_threshold={self.success_threshold!r}"
            )
        object.__setattr__(self, "_timed", any(isinstance(c, SlowCallRate) for c in self.trip))
        object.__setattr__(self, "_label", self.name if self.name is not None else "<unnamed>")
        store = self.store(self)
        if not isinstance(store, CircuitStore):
            raise TypeError(f"store must return a CircuitStore, got {type(store).__name__}")
        object.__setattr__(self, "_store", store)

    def __repr__(self) -> str:
        parts = [f"on={self.on!r}"]
        if self.name is not None:
            parts.insert(0, f"name={self.name!r}")
        if self.failure_threshold is not None:
            parts.append(f"failure_threshold={self.failure_threshold!r}")
        if self.trip:
            parts.append(f"trip={self.trip!r}")
        parts.append(f"reset_timeout={self.reset_timeout!r}")
        if self.half_open_max_calls != 1:
            parts.append(f"half_open_max_calls={self.half_open_max_calls!r}")
        if self.success_threshold != 1:
            parts.append(f"success_threshold={self.success_threshold!r}")
        return f"<CircuitBreaker {', '.join(parts)}: {self.state.name}>"

    def describe(self) -> Description:
        """
        Return what this breaker does, for `resilience.Pipeline.explain`.

        What opens it, how long it stays open, its probes, what its classifier
        counts as a failure (rule by rule), and its state now. A breaker adds
        no attempts and no time: a rejection is immediate.
        """
        label = f"CircuitBreaker {self.name!r}" if self.name is not None else "CircuitBreaker"
        trips = [_describe_condition(c) for c in self.trip]
        if self.failure_threshold is not None:
            trips.insert(0, f"{self.failure_threshold} consecutive failures")
        reset = self.reset_timeout
        period = (
            seconds(reset)
            if isinstance(reset, float)
            else f"a period growing with each reopening: {reset!r}"
        )
        probes = self.half_open_max_calls
        details = [
            f"open: rejects every call at once with CircuitOpenError, for {period}",
            f"then half-open: admits {probes} probe call{'s' if probes != 1 else ''}; "
            + (
                "1 success closes it"
                if self.success_threshold == 1
                else f"{self.success_threshold} successes close it"
            )
            + ", a failure opens it again",
            "counts as a failure (first matching rule decides):",
            *rule_lines(self.on, "trip"),
            "cancellation and interpreter exits are never counted",
            f"state now: {self.state.value}",
        ]
        return Description(title=f"{label}: opens on {' or '.join(trips)}", details=details)

    # --- state and manual control -----------------------------------------

    @property
    def state(self) -> CircuitState:
        """
        The current `CircuitState` (read-only).

        An open circuit reads as `HALF_OPEN` from the instant its open period
        ends, even before a call arrives to probe it.
        """
        return self._store.snapshot()[0]

    @property
    def retry_after(self) -> float | None:
        """
        Seconds until the open circuit turns half-open; `None` unless it is `OPEN`.

        The same value that `CircuitOpenError.retry_after` carries. `None`
        while isolated (only `close` or `reset` releases it).
        """
        return self._store.snapshot()[1]

    def open(self) -> None:
        """
        Open the circuit now, for the next open period (see *reset_timeout*).

        Counts as an opening of the streak that a backoff *reset_timeout* grows
        with. An isolated circuit stays isolated. Emits `CircuitOpened`
        (reason ``"manual"``).
        """
        self._announce(self._store.force(CircuitState.OPEN), None)

    def close(self) -> None:
        """
        Close the circuit now, as if its probes had succeeded.

        Releases an isolated circuit too. Counts are cleared. Emits
        `CircuitClosed` (reason ``"manual"``) unless it was already closed.
        """
        self._announce(self._store.force(CircuitState.CLOSED), None)

    def isolate(self) -> None:
        """
        Hold the circuit open until `close` or `reset` releases it.

        Every call is rejected with `CircuitOpenError` whose ``retry_after`` is
        `None`; time never makes an isolated circuit half-open. Emits
        `CircuitOpened` (reason ``"isolated"``).
        """
        self._announce(self._store.force(CircuitState.ISOLATED), None)

    def reset(self) -> None:
        """
        Return the circuit to its initial state: closed, nothing counted, no open streak.

        Emits `CircuitClosed` (reason ``"reset"``) unless it was already closed.
        """
        self._announce(self._store.reset(), None)

    # --- slow paths shared by every driver --------------------------------

    def _announce(self, transitions: tuple[CircuitTransition, ...], fn: object) -> None:
        """Emit the events of *transitions*; called after the store released its lock."""
        hooks = self.hooks
        target = None if fn is None else target_name(fn)
        for transition in transitions:
            state = transition.state
            if state is CircuitState.CLOSED:
                emit(hooks, CircuitClosed, name=self.name, target=target, reason=transition.reason)
            elif state is CircuitState.HALF_OPEN:
                emit(hooks, CircuitHalfOpened, name=self.name, target=target)
            else:
                emit(
                    hooks,
                    CircuitOpened,
                    name=self.name,
                    target=target,
                    reason=transition.reason,
                    retry_after=transition.retry_after,
                )

    def _reject(self, rejection: CircuitRejection, fn: object) -> NoReturn:
        retry_after = rejection.retry_after
        emit(
            self.hooks,
            CallRejected,
            name=self.name,
            target=None if fn is None else target_name(fn),
            reason=_REJECTION_REASONS[rejection.state],
            retry_after=retry_after,
        )
        raise CircuitOpenError(self._label, retry_after)

    def _admit(self, fn: object) -> CircuitPermit:
        """Acquire a permit or raise `CircuitOpenError` (used off the hot path)."""
        permit = self._store.acquire()
        if isinstance(permit, CircuitRejection):
            self._reject(permit, fn)
        if permit.transitions:
            self._announce(permit.transitions, fn)
        return permit

    def _fail(
        self, permit: CircuitPermit, exc: BaseException, duration: float | None, fn: object
    ) -> None:
        """Record the exception *exc* that ended the call admitted by *permit*."""
        store = self._store
        if not isinstance(exc, Exception):
            # Cancellation and interpreter exits: never counted, the place given back.
            store.on_ignored(permit)
            return
        try:
            verdict = self.on.classify(exc)
        except BaseException:
            store.on_ignored(permit)
            raise
        if verdict.trip:
            transitions = store.on_failure(permit, duration)
        else:
            transitions = store.on_ignored(permit)
        if transitions:
            self._announce(transitions, fn)

    def _succeed(
        self, permit: CircuitPermit, result: object, duration: float | None, fn: object
    ) -> None:
        """Record a returned *result*: a failure if the classifier trips on it, else a success."""
        store = self._store
        if result is not _NO_RESULT and self.on.handles_results:
            try:
                verdict = self.on.classify(result)
            except BaseException:
                store.on_ignored(permit)
                raise
            if verdict.trip:
                transitions = store.on_failure(permit, duration)
                if transitions:
                    self._announce(transitions, fn)
                return
        transitions = store.on_success(permit, duration)
        if transitions:
            self._announce(transitions, fn)

    # --- binding (the policy protocol) -------------------------------------

    def _inlined_store(self) -> InMemoryCircuitStore | None:
        """
        Return the store if the closed state can be read inline, else `None`.

        The default store counting consecutive failures only, without timing:
        then admission is one attribute read and a success with no failure
        pending writes nothing, so the runner reads those two attributes
        itself instead of calling `acquire` and `on_success`. Any other store
        goes through the `CircuitStore` protocol.
        """
        store = self._store
        if type(store) is InMemoryCircuitStore and store._plain and not self._timed:
            return store
        return None

    def _bind_sync(self, inner: Runner) -> Runner:
        mem = self._inlined_store()
        if mem is not None:
            return self._bind_sync_inline(inner, mem)
        store = self._store
        acquire = store.acquire
        on_success = store.on_success
        rejection = CircuitRejection
        direct = inner is CALL
        timed = self._timed
        now = self.clock.now
        results = self.on.handles_results
        reject = self._reject
        announce = self._announce
        fail = self._fail
        succeed = self._succeed

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            permit = acquire()
            if isinstance(permit, rejection):
                reject(permit, fn)
            if permit.transitions:
                announce(permit.transitions, fn)
            if timed:
                start = now()
                try:
                    result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                except BaseException as exc:
                    fail(permit, exc, now() - start, fn)
                    raise
                succeed(permit, result, now() - start, fn)
                return result
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except BaseException as exc:
                fail(permit, exc, None, fn)
                raise
            if results:
                succeed(permit, result, None, fn)
            else:
                transitions = on_success(permit, None)
                if transitions:
                    announce(transitions, fn)
            return result

        return run

    def _bind_sync_inline(self, inner: Runner, mem: InMemoryCircuitStore) -> Runner:
        on_success = mem.on_success
        direct = inner is CALL
        results = self.on.handles_results
        admit = self._admit
        announce = self._announce
        fail = self._fail
        succeed = self._succeed

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            permit = mem._closed
            if permit is None:  # not closed: ask the store, under its lock
                permit = admit(fn)
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except BaseException as exc:
                fail(permit, exc, None, fn)
                raise
            if results:
                succeed(permit, result, None, fn)
            elif permit is not mem._closed or mem._failures:
                transitions = on_success(permit, None)
                if transitions:
                    announce(transitions, fn)
            return result

        return run

    def _bind_async_inline(self, inner: Runner, mem: InMemoryCircuitStore) -> Runner:
        on_success = mem.on_success
        direct = inner is CALL
        results = self.on.handles_results
        admit = self._admit
        announce = self._announce
        fail = self._fail
        succeed = self._succeed

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            permit = mem._closed
            if permit is None:
                permit = admit(fn)
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except BaseException as exc:
                fail(permit, exc, None, fn)
                raise
            if results:
                succeed(permit, result, None, fn)
            elif permit is not mem._closed or mem._failures:
                transitions = on_success(permit, None)
                if transitions:
                    announce(transitions, fn)
            return result

        return run

    def _bind_async(self, inner: Runner) -> Runner:
        mem = self._inlined_store()
        if mem is not None:
            return self._bind_async_inline(inner, mem)
        store = self._store
        acquire = store.acquire
        on_success = store.on_success
        rejection = CircuitRejection
        direct = inner is CALL
        timed = self._timed
        now = self.clock.now
        results = self.on.handles_results
        reject = self._reject
        announce = self._announce
        fail = self._fail
        succeed = self._succeed

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            permit = acquire()
            if isinstance(permit, rejection):
                reject(permit, fn)
            if permit.transitions:
                announce(permit.transitions, fn)
            if timed:
                start = now()
                try:
                    result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
                except BaseException as exc:
                    fail(permit, exc, now() - start, fn)
                    raise
                succeed(permit, result, now() - start, fn)
                return result
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except BaseException as exc:
                fail(permit, exc, None, fn)
                raise
            if results:
                succeed(permit, result, None, fn)
            else:
                transitions = on_success(permit, None)
                if transitions:
                    announce(transitions, fn)
            return result

        return run

    def _bind_gen(self, inner: Runner) -> Runner:
        admit = self._admit
        on_ignored = self._store.on_ignored
        direct = inner is CALL
        timed = self._timed
        now = self.clock.now
        fail = self._fail
        succeed = self._succeed

        # A generator function: the call is admitted when the consumer asks for
        # the first item, and its outcome is recorded when the stream ends.
        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            permit = admit(fn)
            start = now() if timed else None
            duration: float | None = None
            try:
                gen = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                if start is None:
                    result = yield from gen
                else:
                    # Timed to the first item: the upstream's latency, not the consumer's pace.
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        duration = now() - start
                        result = stop.value
                    else:
                        duration = now() - start
                        result = yield from _delegate(gen, item)
            except GeneratorExit:
                on_ignored(permit)  # the consumer stopped early: not a failure
                raise
            except BaseException as exc:
                if start is not None and duration is None:
                    duration = now() - start
                fail(permit, exc, duration, fn)
                raise
            succeed(permit, _NO_RESULT, duration, fn)
            return result

        return run

    def _bind_agen(self, inner: Runner) -> Runner:
        admit = self._admit
        on_ignored = self._store.on_ignored
        direct = inner is CALL
        timed = self._timed
        now = self.clock.now
        fail = self._fail
        succeed = self._succeed

        async def run(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> AsyncIterator[Any]:
            permit = admit(fn)
            start = now() if timed else None
            duration: float | None = None
            try:
                agen = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except BaseException as exc:
                fail(permit, exc, None if start is None else now() - start, fn)
                raise
            try:
                try:
                    item = await agen.__anext__()
                    if start is not None:
                        duration = now() - start
                    while True:
                        # Delegate by hand (an async generator cannot `yield from`),
                        # forwarding asend() and athrow() from the consumer.
                        try:
                            sent = yield item
                        except GeneratorExit:
                            raise
                        except BaseException as exc:
                            item = await agen.athrow(exc)
                        else:
                            item = await (agen.__anext__() if sent is None else agen.asend(sent))
                except StopAsyncIteration:
                    pass
                except GeneratorExit:
                    on_ignored(permit)  # the consumer stopped early: not a failure
                    raise
                except BaseException as exc:
                    if start is not None and duration is None:
                        duration = now() - start
                    fail(permit, exc, duration, fn)
                    raise
            finally:
                await agen.aclose()
            if start is not None and duration is None:
                duration = now() - start
            succeed(permit, _NO_RESULT, duration, fn)

        return run

    # --- `with` and `async with` --------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        """
        Admit the block (see the class docstring); return the breaker.

        Raises:
            CircuitOpenError: If the circuit refuses calls now.
        """
        self._enter(id(sys._getframe(1)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record the block's outcome: finishing is a success, an exception is classified."""
        self._exit(id(sys._getframe(1)), exc)

    async def __aenter__(self) -> CircuitBreaker:
        """As ``__enter__``, for ``async with``."""
        self._enter(id(sys._getframe(1)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """As ``__exit__``, for ``async with``."""
        self._exit(id(sys._getframe(1)), exc)

    def _enter(self, frame: int) -> None:
        permit = self._admit(None)
        start = self.clock.now() if self._timed else None
        _ENTERED.set((*_ENTERED.get(), (self, frame, permit, start)))

    def _exit(self, frame: int, exc: BaseException | None) -> None:
        entered = _ENTERED.get()
        # The innermost block of this breaker entered by the same frame: blocks
        # of generators suspended inside them interleave, and each must record
        # its own permit. A block entered through a helper (contextlib's
        # ExitStack enters and leaves from different frames) falls back to
        # the innermost block of this breaker.
        found = None
        for index in range(len(entered) - 1, -1, -1):
            entry = entered[index]
            if entry[0] is self:
                if entry[1] == frame:
                    found = index
                    break
                if found is None:
                    found = index
        if found is None:
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        _, _, permit, start = entered[found]
        _ENTERED.set(entered[:found] + entered[found + 1 :])
        duration = None if start is None else self.clock.now() - start
        if exc is None:
            self._succeed(permit, _NO_RESULT, duration, None)  # a block has no result
        else:
            self._fail(permit, exc, duration, None)


CircuitBreaker.__module__ = "resilience"
