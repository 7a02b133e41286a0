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

import datetime
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, final

import attrs

from ._circuit import (
    AsyncCircuitStore,
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
from ._classify import REQUIRED, ErrorClassifier, to_classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    Hook,
    _registry,
    describe_text,
    emit,
    heard,
)
from ._exceptions import CircuitOpenError
from ._gate import NO_RESULT, FastPath, GatePolicy, rejected
from ._pipeline import (
    _COROUTINE,
    _NOT_SYNC,
    Pipeline,
    PolicyMixin,
    Shape,
    check_sync,
    target_name,
)
from ._validate import check_clock, check_name, check_rng, to_count, to_hooks, to_seconds
from .backoff import Backoff

# `_explain` (Description and its helpers) is imported by describe(), when first
# called: nothing of it runs on a call path, and `import resilience` skips it.
if TYPE_CHECKING:
    from ._explain import Description

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

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
            "or an AsyncCircuitStore (such as resilience.InMemoryCircuitStore), "
            f"got {type(value).__name__}: {value!r}"
        )


def _window(condition: FailureRate | SlowCallRate) -> str:
    from ._explain import seconds

    if condition.calls is not None:
        window = f"the last {condition.calls} calls"
    else:
        window = f"the last {seconds(condition.seconds or 0.0)}"
    return f"{window} (once it holds {condition.minimum_calls})"


def _describe_condition(condition: FailureRate | SlowCallRate) -> str:
    from ._explain import seconds

    share = f"{condition.rate:.0%}"
    if isinstance(condition, SlowCallRate):
        slow = seconds(condition.slower_than)
        return f"{share} or more of calls slower than {slow} over {_window(condition)}"
    return f"a failure rate of {share} or more over {_window(condition)}"


def _default_threshold(self: CircuitBreaker) -> int | None:
    return None if self.trip else 5


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class CircuitBreaker(GatePolicy):
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
            see `CircuitStore`. Default: `InMemoryCircuitStore`. A factory
            of an `AsyncCircuitStore` (an
            `resilience.integrations.redis.AsyncRedisStore`) makes a breaker
            for async code only: coroutine functions, async generator
            functions and ``async with``; its round trips are awaited, and
            its manual controls are `aopen`, `aclose`, `aisolate`, `areset`.

    Raises:
        TypeError: On an argument of the wrong type (``bool`` is not a number).
        ValueError: On an out-of-range value: a threshold below 1, a negative
            *reset_timeout*, *success_threshold* above *half_open_max_calls*.

    .. versionadded:: 0.1.0
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier, **REQUIRED)
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
    store: Callable[[CircuitBreaker], CircuitStore | AsyncCircuitStore] = attrs.field(
        default=InMemoryCircuitStore, validator=_check_store, repr=False
    )
    _store: CircuitStore = attrs.field(init=False, repr=False)
    # The store's optional `on_failure_caused`, looked up once (see `_cause`).
    _caused: Callable[..., tuple[CircuitTransition, ...]] | None = attrs.field(
        init=False, repr=False
    )
    # Whether a call may run the breaker's own one-frame path (`call`, `closure`):
    # the store offers the fast path, no call is timed, no result is judged.
    # `None` when the store is an AsyncCircuitStore (no such path: its decisions
    # are awaited); one slot for both facts, a breaker is kept small (#19.4).
    _direct: bool | None = attrs.field(init=False, repr=False)
    # The one-policy pipeline, made on first use: `call` and a decorated
    # function need none, and thousands of breakers are cheaper without.
    _pipe: Pipeline | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.success_threshold > self.half_open_max_calls:
            raise ValueError(
                f"success_threshold must be <= half_open_max_calls "
                f"({self.half_open_max_calls!r}): a half-open circuit admits no more probes "
                f"than that, got success_threshold={self.success_threshold!r}"
            )
        store: Any = self.store(self)
        astore = None
        if not isinstance(store, CircuitStore):
            if not isinstance(store, AsyncCircuitStore):
                raise TypeError(
                    "store must return a CircuitStore or an AsyncCircuitStore, "
                    f"got {type(store).__name__}"
                )
            astore = store
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_caused", getattr(store, "on_failure_caused", None))
        direct: bool | None = None
        if astore is None:
            object.__setattr__(self, "_direct", False)  # `fast` below reads it
            direct = self.fast is not None and not self.timed and not self.on.handles_results
        object.__setattr__(self, "_direct", direct)

    @property
    def awaits(self) -> bool:
        """Whether the engine awaits this gate's decisions: its store is an `AsyncCircuitStore`."""
        return self._direct is None

    @property
    def _astore(self) -> AsyncCircuitStore | None:
        # The store when it is an AsyncCircuitStore (`_store` is the same object,
        # used only for its sync steps `on_ignored` and `snapshot`), else None.
        return self._store if self._direct is None else None  # type: ignore[return-value]

    @property
    def _pipeline(self) -> Pipeline:
        pipe = self._pipe
        if pipe is None:  # a race makes two equal pipelines and keeps one: harmless
            pipe = Pipeline((self,))
            object.__setattr__(self, "_pipe", pipe)
        return pipe

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
        from ._explain import Description, rule_lines, seconds

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

        Raises:
            TypeError: If the store is an `AsyncCircuitStore`: use `aopen`.
        """
        self._manual("open")
        self._announce(self._store.force(CircuitState.OPEN), None)

    def close(self) -> None:
        """
        Close the circuit now, as if its probes had succeeded.

        Releases an isolated circuit too. Counts are cleared. Emits
        `CircuitClosed` (reason ``"manual"``) unless it was already closed.

        Raises:
            TypeError: If the store is an `AsyncCircuitStore`: use `aclose`.
        """
        self._manual("close")
        self._announce(self._store.force(CircuitState.CLOSED), None)

    def isolate(self) -> None:
        """
        Hold the circuit open until `close` or `reset` releases it.

        Every call is rejected with `CircuitOpenError` whose ``retry_after`` is
        `None`; time never makes an isolated circuit half-open. Emits
        `CircuitOpened` (reason ``"isolated"``).

        Raises:
            TypeError: If the store is an `AsyncCircuitStore`: use `aisolate`.
        """
        self._manual("isolate")
        self._announce(self._store.force(CircuitState.ISOLATED), None)

    def reset(self) -> None:
        """
        Return the circuit to its initial state: closed, nothing counted, no open streak.

        Emits `CircuitClosed` (reason ``"reset"``) unless it was already closed.

        Raises:
            TypeError: If the store is an `AsyncCircuitStore`: use `areset`.
        """
        self._manual("reset")
        self._announce(self._store.reset(), None)

    def _manual(self, action: str) -> None:
        if self._astore is not None:
            raise TypeError(
                f"{self._label()} keeps its circuit in an async store "
                f"({type(self._astore).__name__}): use `await breaker.a{action}()`"
            )

    async def _aforce(self, state: CircuitState, sync: Callable[[], None]) -> None:
        astore = self._astore
        if astore is None:
            sync()
        else:
            self._announce(await astore.aforce(state), None)

    async def aopen(self) -> None:
        """As `open`, awaiting the store's round trip when it is an `AsyncCircuitStore`."""
        await self._aforce(CircuitState.OPEN, self.open)

    async def aclose(self) -> None:
        """As `close`, awaiting the store's round trip when it is an `AsyncCircuitStore`."""
        await self._aforce(CircuitState.CLOSED, self.close)

    async def aisolate(self) -> None:
        """As `isolate`, awaiting the store's round trip when it is an `AsyncCircuitStore`."""
        await self._aforce(CircuitState.ISOLATED, self.isolate)

    async def areset(self) -> None:
        """As `reset`, awaiting the store's round trip when it is an `AsyncCircuitStore`."""
        astore = self._astore
        if astore is None:
            self.reset()
        else:
            self._announce(await astore.areset(), None)

    def _label(self) -> str:
        return "CircuitBreaker" if self.name is None else f"CircuitBreaker {self.name!r}"

    # --- the gate (see resilience.engine.Gate): the engine runs the call ----------

    @property
    def timed(self) -> bool:
        """Whether calls are timed: only when a `SlowCallRate` needs their durations."""
        return any(isinstance(c, SlowCallRate) for c in self.trip)

    @property
    def results(self) -> bool:
        """Whether returned results are classified (the classifier has rules for results)."""
        return self.on.handles_results

    @property
    def fast(self) -> FastPath | None:
        """The store, when it offers the fast path (``ready`` and ``settled``); else `None`."""
        store = self._store
        if self._astore is None and hasattr(store, "ready") and hasattr(store, "settled"):
            return store  # type: ignore[return-value]
        return None

    def admit(self, target: object, /) -> CircuitPermit:
        """
        Ask the store for a permit (see `resilience.engine.Gate.admit`).

        Raises:
            CircuitOpenError: If the circuit refuses calls now.
        """
        permit = self._store.acquire()
        if type(permit) is CircuitRejection:
            raise self._rejection(permit, target)
        if permit.transitions:
            self._announce(permit.transitions, target)
        return permit

    def on_success(
        self, permit: CircuitPermit, result: object, duration: float | None, target: object, /
    ) -> None:
        """Record a returned *result*: a failure if the classifier trips on it, else a success."""
        if result is NO_RESULT or not self.on.handles_results:
            transitions = self._store.on_success(permit, duration)
            if transitions:
                self._announce(transitions, target)
        else:
            self._judge(permit, result, duration, target, self._store.on_success)

    def on_failure(
        self, permit: CircuitPermit, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """Record the exception *error*: a failure if the classifier trips on it, else nothing."""
        store = self._store
        try:
            verdict = self.on.classify(error)
        except BaseException:
            self._ignore(permit, target)
            raise
        if verdict.trip:
            caused = self._caused
            if caused is None:
                transitions = store.on_failure(permit, duration)
                if transitions:
                    _note_opening(store, transitions, error, verdict)
            else:  # the store keeps the cause with the failure (see `_cause`)
                transitions = caused(permit, duration, _cause(error, verdict))
        else:
            transitions = store.on_ignored(permit)
        if transitions:
            self._announce(transitions, target)

    def _judge(
        self,
        permit: CircuitPermit,
        outcome: object,
        duration: float | None,
        target: object,
        otherwise: Callable[[CircuitPermit, float | None], tuple[CircuitTransition, ...]] | None,
    ) -> None:
        """Count *outcome* as a failure if its verdict trips, else as *otherwise* (or ignore it)."""
        store = self._store
        try:
            verdict = self.on.classify(outcome)
        except BaseException:
            self._ignore(permit, target)
            raise
        if verdict.trip:
            caused = self._caused
            if caused is None:
                transitions = store.on_failure(permit, duration)
                if transitions:
                    _note_opening(store, transitions, outcome, verdict)
            else:
                transitions = caused(permit, duration, _cause(outcome, verdict))
        elif otherwise is not None:
            transitions = otherwise(permit, duration)
        else:
            transitions = store.on_ignored(permit)
        if transitions:
            self._announce(transitions, target)

    def on_cancel(
        self, permit: CircuitPermit, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """Cancellation, interpreter exits, a stream closed early: not counted; a probe is freed."""
        self._ignore(permit, target)

    def _ignore(self, permit: CircuitPermit, target: object) -> None:
        """Release *permit* without an outcome, announcing what the store reports doing so."""
        transitions = self._store.on_ignored(permit)
        if transitions:
            self._announce(transitions, target)

    # --- the awaiting gate (resilience.engine.AwaitingGate), with an AsyncCircuitStore ----

    def sync_refusal(self, what: str) -> str:
        """The message of the `TypeError` that sync use of an awaiting breaker raises."""
        store = self._store
        hint = getattr(store, "sync_refusal", None)
        return (
            f"{self._label()} keeps its circuit in an async store ({type(store).__name__}): "
            "it protects coroutine functions, async generator functions and `async with` "
            f"blocks, got {what}; "
            + (hint if isinstance(hint, str) else "for sync code, give a breaker a CircuitStore")
        )

    async def aadmit(self, target: object, /) -> CircuitPermit:
        """
        As `admit`, awaiting the `AsyncCircuitStore`'s decision.

        Raises:
            CircuitOpenError: If the circuit refuses calls now.
        """
        astore: Any = self._astore
        permit: CircuitPermit | CircuitRejection = await astore.aacquire()
        if type(permit) is CircuitRejection:
            raise self._rejection(permit, target)
        if permit.transitions:
            self._announce(permit.transitions, target)
        return permit

    async def aon_success(
        self, permit: CircuitPermit, result: object, duration: float | None, target: object, /
    ) -> None:
        """As `on_success`, awaiting the `AsyncCircuitStore`'s round trip, if any."""
        astore: Any = self._astore
        if result is NO_RESULT or not self.on.handles_results:
            transitions = await astore.aon_success(permit, duration)
        else:
            try:
                verdict = self.on.classify(result)
            except BaseException:
                astore.on_ignored(permit)
                raise
            if verdict.trip:
                transitions = await astore.aon_failure(permit, duration, _cause(result, verdict))
            else:
                transitions = await astore.aon_success(permit, duration)
        if transitions:
            self._announce(transitions, target)

    async def aon_failure(
        self, permit: CircuitPermit, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """As `on_failure`, awaiting the `AsyncCircuitStore`'s round trip."""
        astore: Any = self._astore
        try:
            verdict = self.on.classify(error)
        except BaseException:
            astore.on_ignored(permit)
            raise
        if verdict.trip:
            transitions = await astore.aon_failure(permit, duration, _cause(error, verdict))
            if transitions:
                self._announce(transitions, target)
        else:
            astore.on_ignored(permit)

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

    def _rejection(self, rejection: CircuitRejection, fn: object) -> CircuitOpenError:
        """The `CircuitOpenError` for *rejection*, announced (`CallRejected`) if anyone listens."""
        retry_after = rejection.retry_after
        cause = rejection.cause
        name = self.name
        label = "<unnamed>" if name is None else name
        if cause is None:
            error = CircuitOpenError(label, retry_after)
        else:
            error = CircuitOpenError(label, retry_after, cause[0], cause[1])
        hooks = self.hooks
        # `listening`, inlined for the common case: only the log hook, and nobody hears it.
        if hooks or not _registry.logs_only or heard(CallRejected.level):
            rejected(
                self.hooks,
                error,
                name=name,
                target=fn,
                reason=_REJECTION_REASONS[rejection.state],
                retry_after=retry_after,
            )
        return error

    # --- the breaker's own one-frame path: no runner, no pipeline --------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` once through the breaker (sync functions)."""
        code = getattr(fn, "__code__", None)
        if code is None or code.co_flags & _NOT_SYNC:  # no code of its own, or not sync
            check_sync(self, fn)
        if not self._direct:
            return PolicyMixin.call(self, fn, *args, **kwargs)
        store: Any = self._store
        permit = store.ready
        if permit is None:
            permit = self.admit(fn)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.on_failure(permit, exc, None, fn)
            raise
        except BaseException as exc:
            self.on_cancel(permit, exc, None, fn)
            raise
        if permit is not store.settled:
            self.on_success(permit, result, None, fn)
        return result

    async def acall(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``await fn(*args, **kwargs)`` once through the breaker (coroutine functions)."""
        code = getattr(fn, "__code__", None)
        if not self._direct or code is None or not code.co_flags & _COROUTINE:
            # The general path, which also refuses what returns no awaitable.
            return await PolicyMixin.acall(self, fn, *args, **kwargs)
        store: Any = self._store
        permit = store.ready
        if permit is None:
            permit = self.admit(fn)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.on_failure(permit, exc, None, fn)
            raise
        except BaseException as exc:
            self.on_cancel(permit, exc, None, fn)
            raise
        if permit is not store.settled:
            self.on_success(permit, result, None, fn)
        return result

    def closure(self, fn: Callable[..., Any], shape: Shape) -> Callable[..., Any] | None:
        """
        Wrap *fn* in one frame when the breaker decorates it alone (see `resilience.Policy`).

        For functions and coroutine functions, while the store offers the fast
        path and nothing needs timing or results; else `None` (the runner).
        """
        if not self._direct or shape is Shape.GEN or shape is Shape.AGEN:
            return None
        store: Any = self._store
        breaker = self
        if shape is Shape.SYNC:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                permit = store.ready
                if permit is None:  # `admit`, inlined: a rejection is the outage's hot path
                    permit = store.acquire()
                    if type(permit) is CircuitRejection:
                        raise breaker._rejection(permit, fn)
                    if permit.transitions:
                        breaker._announce(permit.transitions, fn)
                try:
                    result = fn(*args, **kwargs)
                except Exception as exc:
                    breaker.on_failure(permit, exc, None, fn)
                    raise
                except BaseException as exc:
                    breaker.on_cancel(permit, exc, None, fn)
                    raise
                if permit is not store.settled:
                    breaker.on_success(permit, result, None, fn)
                return result

            return wrapper

        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            permit = store.ready
            if permit is None:
                permit = breaker.admit(fn)
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                breaker.on_failure(permit, exc, None, fn)
                raise
            except BaseException as exc:
                breaker.on_cancel(permit, exc, None, fn)
                raise
            if permit is not store.settled:
                breaker.on_success(permit, result, None, fn)
            return result

        return awrapper


def _note_opening(
    store: CircuitStore,
    transitions: tuple[CircuitTransition, ...],
    outcome: object,
    verdict: Any,
) -> None:
    """Tell the store what opened the circuit, if it opened and the store keeps it."""
    if not any(t.state is CircuitState.OPEN for t in transitions):
        return
    note = getattr(store, "note_opening", None)
    if note is not None:
        note(_cause(outcome, verdict))


def _cause(outcome: object, verdict: Any) -> tuple[str, str]:
    """
    The (type name, redacted message) of a failure: text only, never the object.

    A store with ``on_failure_caused`` (the Redis store) takes it with every
    failure, to keep it in the round trip that may open the circuit; others
    learn it afterwards, through ``note_opening``.
    """
    if isinstance(outcome, BaseException):
        return (type(outcome).__name__, describe_text(outcome))
    # a refused result (a 503 response): its type and its status
    status = verdict.status
    return (type(outcome).__name__, "" if status is None else f"status {status}")


CircuitBreaker.__module__ = "resilience"
