"""
Retry: run a call again while its classifier says the failure is worth another try.

The decisions live in one sans-IO object, `_RetryCall`, created on the first
failure only. The sync and async drivers, the attempts loop and the stream
drivers all feed it outcomes and act on what it returns, so they cannot drift
apart. The success path reads the clock once and does nothing else.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar, NoReturn, final

import attrs

from . import backoff as _backoff
from ._budget import Budget, async_spend, sync_only
from ._classify import REQUIRED, ErrorClassifier, Verdict, to_classifier
from ._clock import LONGEST_WAIT, SYSTEM_CLOCK, Clock, testing_state
from ._deadline import DEADLINE, time_left
from ._events import Hook, RetriesExhausted, RetryScheduled, _registry, emit, heard, listening
from ._exceptions import RetryExhaustedError, StreamInterruptedError, seconds_text
from ._explain import Description, Sleeps, backoff_bounds, largest, rule_lines, seconds, span
from ._notes import set_note
from ._pipeline import CALL, PolicyMixin, Runner, pipeline_field, target_name
from ._streams import astep, step
from ._validate import check_clock, check_name, check_rng, to_count, to_hooks, to_seconds

__all__ = ["Attempt", "Attempts", "Retry", "RetryKind"]

_RNG = random.Random()


def _check_attempts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    to_count("attempts", value)


def _check_backoff(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, type) or not callable(value):  # a class: rs.backoff.constant, not (1.0)
        raise TypeError(
            "backoff must be a Backoff: a callable (attempt, previous, rng) -> seconds, "
            f"got {type(value).__name__}: {value!r}"
        )


def _to_max_retry_after(value: object) -> float | None:
    # Infinity (and an int beyond any float) is no cap at all, as None is.
    return to_seconds(
        "max_retry_after", value, zero=True, none=True, inf=True, bound=">= 0 seconds or None"
    )


def _check_budget(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Budget):
        raise TypeError(
            "budget must be a Budget (first() and spend() -> bool: "
            f"resilience.RetryBudget, resilience.TokenBudget) or None, "
            f"got {type(value).__name__}: {value!r}"
        )


def _check_kind_attempts(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        to_count("attempts", value)


def _check_kind_backoff(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_backoff(instance, attribute, value)


@final
@attrs.frozen(kw_only=True, repr=False)
class RetryKind:
    """
    What one kind of failure gets instead of the Retry's defaults; spelled `Retry.kind`.

    ```python
    rs.Retry(
        on=rs.transient,
        attempts=3,
        per_kind={"rate_limit": rs.Retry.kind(attempts=6, backoff=rs.backoff.constant(5.0))},
    )
    ```

    Args:
        attempts: Total tries, the first included, when the failure is of this
            kind. Default: `None` (the Retry's ``attempts``).
        backoff: The delay before a retry after a failure of this kind. It
            counts this kind's retries only: its ``attempt`` is 1 before the
            first retry of this kind in a call, and its ``previous`` is what it
            returned last in that call. Default: `None` (the Retry's
            ``backoff``).

    Raises:
        TypeError: On ``attempts`` that is not an int, a ``backoff`` that is not
            a `resilience.backoff.Backoff`.
        ValueError: On ``attempts`` below 1, or neither argument given.
    """

    attempts: int | None = attrs.field(default=None, validator=_check_kind_attempts)
    backoff: _backoff.Backoff | None = attrs.field(default=None, validator=_check_kind_backoff)

    def __attrs_post_init__(self) -> None:
        if self.attempts is None and self.backoff is None:
            raise ValueError(
                "Retry.kind() needs attempts= or backoff= (or both): "
                "without either it changes nothing"
            )

    def __repr__(self) -> str:
        parts = []
        if self.attempts is not None:
            parts.append(f"attempts={self.attempts!r}")
        if self.backoff is not None:
            parts.append(f"backoff={self.backoff!r}")
        return f"Retry.kind({', '.join(parts)})"


def _to_per_kind(value: object) -> tuple[tuple[str, RetryKind], ...]:
    """Turn ``per_kind=`` (a mapping, or pairs read back) into (kind, RetryKind) pairs by kind."""
    shape = (
        "per_kind must be a mapping of kinds (str, as the classifier's rules name them) "
        "to Retry.kind(attempts=..., backoff=...)"
    )
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, tuple) and all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in value
    ):
        items = list(value)  # read back from another Retry (attrs.evolve)
    else:
        raise TypeError(f"{shape}, got {type(value).__name__}: {value!r}")
    for kind, settings in items:
        if not isinstance(kind, str) or not kind:
            raise TypeError(
                f"per_kind keys must be kinds (non-empty str), got {type(kind).__name__}: {kind!r}"
            )
        if not isinstance(settings, RetryKind):
            raise TypeError(
                f"per_kind[{kind!r}] must be a Retry.kind(attempts=..., backoff=...), "
                f"got {type(settings).__name__}: {settings!r}"
            )
    return tuple(sorted(items, key=lambda pair: pair[0]))


def _check_per_kind(
    instance: Retry, attribute: attrs.Attribute[Any], value: tuple[tuple[str, RetryKind], ...]
) -> None:
    # A kind that no retrying rule gives would never be used: most likely a typo.
    known = {rule.kind for rule in instance.on.rules if rule.retry and rule.kind is not None}
    for kind, _ in value:
        if kind not in known:
            listed = ", ".join(map(repr, sorted(known))) or "none"
            raise ValueError(
                f"per_kind names kind {kind!r}, which no retrying rule of on= gives "
                f"(its kinds: {listed})"
            )


def _plural(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _sleep_lines(sleeps: Sleeps, n: int, *, numbered: bool) -> list[str]:
    """The sleeps of one backoff, the middle elided past 6; by attempt, or by its own retry."""
    lines = []
    many = sleeps.retries > 6
    shown = [*sleeps.first(4), None, sleeps.last()] if many else sleeps.first(6)
    for index, pair in enumerate(shown):
        if pair is None:
            lines.append("  ...")
            continue
        number = index + 2 if index < 4 or not many else n
        where = f"before attempt {number}" if numbered else f"its retry {number - 1}"
        lines.append(f"  {where}: {span(*pair)}")
    return lines


@final
@attrs.frozen(kw_only=True, repr=False)
class Retry(PolicyMixin):
    """
    Retry the wrapped call while *on* says the failure is worth another try.

    A `Retry` is configuration: immutable, hashable, and safe to share between
    any number of threads and tasks; the state of each call lives in that call.
    Use it as a decorator (functions, methods, coroutine functions), through
    `retry.call` / `retry.acall`, in `compose`, or around a block with
    `attempts`.

    When the attempts run out on an exception, that exception is re-raised
    unchanged with a note (PEP 678) saying how many attempts were made over how
    long. When they run out on a *result* the classifier refused, the result is
    wrapped in `RetryExhaustedError`. Cancellation, `KeyboardInterrupt`,
    `SystemExit` and `GeneratorExit` are never classified, retried or delayed.

    Args:
        on: What is worth retrying: an `ErrorClassifier` (`resilience.transient`
            is a ready one), an exception type or tuple of types, a `Rule`, or a
            predicate over the exception. Required: there is no "retry
            everything" default.
        attempts: Total tries, the first included. Default: 3. Read back as
            `max_attempts`.
        backoff: The delay before each retry, a `resilience.backoff.Backoff`.
            Default: `resilience.backoff.DEFAULT` (exponential from 0.1 s,
            capped at 10 s, full jitter). A ``Retry-After`` read by the
            classifier is a floor under it.
        max_retry_after: Seconds. A ``Retry-After`` longer than this makes Retry
            give up at once instead of sleeping. Default: 60.0. `None`: no limit.
        name: A label for events and notes. Default: `None`.
        hooks: Callables receiving this policy's events, before the global hooks.
        clock: Where time comes from. Default: the system clock.
        rng: The random source of the jitter. Default: a shared `random.Random`.
        budget: A `Budget` shared with the other calls to the same dependency
            (`resilience.RetryBudget`, `resilience.TokenBudget`): told of every
            call's first attempt, and asked before every retry; when it refuses,
            Retry gives up at once (reason ``"budget"``). Default: `None` (no
            budget).

    Raises:
        TypeError: On an argument of the wrong type (an ``on`` that is not a
            classifier, ``attempts=1.5``, ...).
        ValueError: On an out-of-range value (``attempts=0``, ...), or a
            ``per_kind`` kind that no retrying rule of ``on`` gives.

    .. versionadded:: 0.1.0
    """

    on: ErrorClassifier = attrs.field(converter=to_classifier, **REQUIRED)
    max_attempts: int = attrs.field(default=3, validator=_check_attempts, alias="attempts")
    backoff: _backoff.Backoff = attrs.field(default=_backoff.DEFAULT, validator=_check_backoff)
    max_retry_after: float | None = attrs.field(default=60.0, converter=_to_max_retry_after)
    name: str | None = attrs.field(default=None, validator=check_name)
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    rng: random.Random = attrs.field(
        default=_RNG, repr=False, eq=False, hash=False, validator=check_rng
    )
    budget: Budget | None = attrs.field(default=None, validator=_check_budget)
    per_kind: tuple[tuple[str, RetryKind], ...] = attrs.field(
        default=(), converter=_to_per_kind, validator=_check_per_kind
    )
    _pipeline: Any = pipeline_field()

    #: `RetryKind`: the settings of one kind, for ``per_kind=``.
    kind: ClassVar[type[RetryKind]] = RetryKind

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "Retry is not a context manager: a `with` body cannot run itself again. "
            "Retry a block with `for attempt in retry.attempts(): with attempt: ...` "
            "(or `async for`)."
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - never entered
        return None

    def __repr__(self) -> str:
        parts = [f"on={self.on!r}", f"attempts={self.max_attempts!r}", f"backoff={self.backoff!r}"]
        if self.max_retry_after != 60.0:
            parts.append(f"max_retry_after={self.max_retry_after!r}")
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        if self.budget is not None:
            parts.append(f"budget={self.budget!r}")
        if self.per_kind:
            kinds = ", ".join(f"{kind!r}: {settings!r}" for kind, settings in self.per_kind)
            parts.append(f"per_kind={{{kinds}}}")
        return f"Retry({', '.join(parts)})"

    def describe(self) -> Description:
        """
        Return what this Retry does, for `resilience.Pipeline.explain`.

        Its attempts, what its classifier retries (rule by rule), the
        backoff's shortest and longest sleep before each retry (exact for the
        builtin backoffs, unknown for your own), and how a ``Retry-After``
        stretches them.
        """
        n = self.max_attempts
        label = f"Retry {self.name!r}" if self.name is not None else "Retry"
        details = ["retries (first matching rule decides):", *rule_lines(self.on, "retry")]
        # Each backoff counts its own retries (see _RetryCall): the default one
        # serves every kind without a backoff of its own, up to the largest
        # attempts among them; a kind's own serves that kind only.
        top = max([n, *(s.attempts for _, s in self.per_kind if s.attempts is not None)])
        shared = max(
            [n, *(s.attempts for _, s in self.per_kind if s.backoff is None and s.attempts)]
        )
        pairs = backoff_bounds(self.backoff, shared - 1)
        slots: list[Sleeps | None] = [pairs]
        if top == 1:
            pass
        elif pairs is None:
            details.append(f"backoff {self.backoff!r}: its sleeps are not known (not a builtin)")
        elif pairs.retries:
            details.append(f"backoff {self.backoff!r}; sleeps:")
            details.extend(_sleep_lines(pairs, shared, numbered=not self.per_kind))
        for kind, settings in self.per_kind:
            own = settings.attempts if settings.attempts is not None else n
            line = f"kind {kind!r}: up to {_plural(own)}"
            if settings.backoff is None:
                details.append(f"{line}; the backoff above")
                continue
            kind_pairs = backoff_bounds(settings.backoff, own - 1)
            slots.append(kind_pairs)
            if own == 1:
                details.append(f"{line}; backoff {settings.backoff!r}, never used")
            elif kind_pairs is None:
                details.append(
                    f"{line}; backoff {settings.backoff!r}: its sleeps are not known "
                    "(not a builtin)"
                )
            else:
                details.append(f"{line}; backoff {settings.backoff!r}; sleeps:")
                details.extend(_sleep_lines(kind_pairs, own, numbered=False))
        sleeps: float | None = None
        waits: float | None = None
        cap = self.max_retry_after
        if top == 1:
            sleeps = waits = 0.0
        elif all(slot is not None for slot in slots):
            # At most top - 1 retries, each sleeping one of these, each at most
            # once: the largest top - 1 of them bound any call.
            highs = [high for slot in slots if slot is not None for high in slot.longest()]
            sleeps = largest(highs, top - 1)
            if self.per_kind:
                details.append(
                    f"sleeps in total at most {seconds(sleeps)} (the longest {top - 1} above)"
                )
            else:
                details.append(f"  in total at most {seconds(sleeps)}")
            if cap is not None:
                waits = largest([(max(high, cap), times) for high, times in highs], top - 1)
        if top > 1:
            if cap is None:
                details.append(
                    "a Retry-After is a floor under each sleep, however long (only a "
                    "deadline cuts it short)"
                )
            else:
                details.append(
                    f"a Retry-After is a floor under each sleep; one longer than "
                    f"{seconds(cap)} makes it give up at once"
                )
            details.append(
                "never sleeps past a deadline: gives up when the next attempt would start after it"
            )
            if self.budget is not None:
                details.append(
                    f"retry budget {self.budget!r}: each retry must be allowed by it; "
                    "gives up at once when it is spent"
                )
        return Description(
            title=f"{label}: up to {_plural(top)}",
            details=details,
            attempts=top,
            sleeps=sleeps,
            sleeps_retry_after=waits,
            # Kinds of their own interleave as failures come: no one order to draw.
            # The exact ones: past them the timeline repeats the last, as the backoff does.
            waits=None if self.per_kind or pairs is None or not pairs.retries else pairs.pairs,
        )

    def attempts(self) -> Attempts:
        """
        Return an iterator of attempts to retry a block of code.

        A ``with`` body cannot run itself again, so a block is retried with a loop:

        ```python
        for attempt in retry.attempts():
            with attempt:
                do_it()

        async for attempt in retry.attempts():
            async with attempt:  # or `with attempt:`: the same
                await do_it()
        ```

        Each `Attempt` records the block's outcome on exit. A failure worth
        retrying is suppressed and the loop sleeps before the next attempt; any
        other failure, or the last one, propagates from the ``with`` block
        unchanged (with a note). Results are not classified: a block has none.

        The constructor's ``attempts=`` count is read back as `max_attempts`
        (a method and a field cannot share the name).
        """
        return Attempts(self)

    # --- binding (the policy protocol) -------------------------------------

    def _bind_sync(self, inner: Runner) -> Runner:
        if self.budget is not None:
            sync_only(self.budget, "a function")
            return self._bind_sync_budget(inner, self.budget)
        now = self.clock.now
        classify = self.on.classify
        results = self.on.handles_results
        direct = inner is CALL
        slow = self._retry_sync

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except Exception as exc:
                failure: object = exc
            else:
                if not results:
                    return result
                verdict = classify(result)
                if not verdict.retry:
                    return result
                return slow(inner, fn, args, kwargs, start, result, verdict)
            # Retried outside the `except` block, so that later attempts' exceptions
            # do not carry the first one as their __context__: they did not happen
            # while handling it.
            try:
                return slow(inner, fn, args, kwargs, start, failure, None)
            finally:
                # The failure's traceback holds this frame: unbind it, so that the two
                # are freed at once rather than left to the cycle collector.
                failure = None

        return run

    def _bind_sync_budget(self, inner: Runner, budget: Budget) -> Runner:
        # `run` of _bind_sync, plus one call: the budget's `first`. A copy, so that
        # a Retry without a budget does not pay even a test for one.
        now = self.clock.now
        first = budget.first
        classify = self.on.classify
        results = self.on.handles_results
        direct = inner is CALL
        slow = self._retry_sync

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            first()
            try:
                result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            except Exception as exc:
                failure: object = exc
            else:
                if not results:
                    return result
                verdict = classify(result)
                if not verdict.retry:
                    return result
                return slow(inner, fn, args, kwargs, start, result, verdict)
            try:
                return slow(inner, fn, args, kwargs, start, failure, None)
            finally:
                # The failure's traceback holds this frame: unbind it, so that the two
                # are freed at once rather than left to the cycle collector.
                failure = None

        return run

    def _retry_sync(
        self,
        inner: Runner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        outcome: object,
        verdict: Verdict | None,
    ) -> Any:
        call = _RetryCall(self, start, fn)
        classify = self.on.classify
        results = self.on.handles_results
        sleep = self.clock.sleep
        direct = inner is CALL
        try:
            while True:
                delay = call.failed(outcome, verdict)  # raises when giving up
                if delay > 0:
                    sleep(delay)
                try:
                    result = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                except Exception as exc:
                    outcome, verdict = exc, None
                    continue
                if results:
                    verdict = classify(result)
                    if verdict.retry:
                        outcome = result
                        continue
                return result
        finally:
            outcome = None  # as in `run`: no cycle through this frame

    def _bind_async(self, inner: Runner) -> Runner:
        if self.budget is not None:
            return self._bind_async_budget(inner, self.budget)
        now = self.clock.now
        classify = self.on.classify
        results = self.on.handles_results
        direct = inner is CALL
        slow = self._retry_async

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except Exception as exc:
                failure: object = exc
            else:
                if not results:
                    return result
                verdict = classify(result)
                if not verdict.retry:
                    return result
                return await slow(inner, fn, args, kwargs, start, result, verdict)
            try:
                return await slow(inner, fn, args, kwargs, start, failure, None)
            finally:
                # The failure's traceback holds this frame: unbind it, so that the two
                # are freed at once rather than left to the cycle collector.
                failure = None

        return run

    def _bind_async_budget(self, inner: Runner, budget: Budget) -> Runner:
        # `run` of _bind_async, plus the budget's `first` (see _bind_sync_budget).
        now = self.clock.now
        first = budget.first
        classify = self.on.classify
        results = self.on.handles_results
        direct = inner is CALL
        slow = self._retry_async

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            first()
            try:
                result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
            except Exception as exc:
                failure: object = exc
            else:
                if not results:
                    return result
                verdict = classify(result)
                if not verdict.retry:
                    return result
                return await slow(inner, fn, args, kwargs, start, result, verdict)
            try:
                return await slow(inner, fn, args, kwargs, start, failure, None)
            finally:
                # The failure's traceback holds this frame: unbind it, so that the two
                # are freed at once rather than left to the cycle collector.
                failure = None

        return run

    async def _retry_async(
        self,
        inner: Runner,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        outcome: object,
        verdict: Verdict | None,
    ) -> Any:
        call = _RetryCall(self, start, fn)
        classify = self.on.classify
        results = self.on.handles_results
        asleep = self.clock.asleep
        direct = inner is CALL
        aspend = async_spend(self.budget)
        try:
            while True:
                if aspend is None:
                    delay = call.failed(outcome, verdict)
                else:
                    delay = await call.afailed(outcome, verdict, aspend)
                if delay > 0:
                    await asleep(delay)
                try:
                    result = await (fn(*args, **kwargs) if direct else inner(fn, args, kwargs))
                except Exception as exc:
                    outcome, verdict = exc, None
                    continue
                if results:
                    verdict = classify(result)
                    if verdict.retry:
                        outcome = result
                        continue
                return result
        finally:
            outcome = None  # as in `run`: no cycle through this frame

    # --- streams ------------------------------------------------------------------
    #
    # A stream is restarted only while no item has reached the caller: a restart
    # after that would replay items the caller already has. From the first item
    # on, a failure the classifier would retry becomes a StreamInterruptedError
    # carrying the items delivered; one it would not retry propagates unchanged.
    # Items and return values are never classified.

    def _bind_gen(self, inner: Runner) -> Runner:
        now = self.clock.now
        sleep = self.clock.sleep
        classify = self.on.classify
        direct = inner is CALL

        budget = self.budget
        if budget is not None:
            sync_only(budget, "a generator function")

        def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            if budget is not None:
                budget.first()
            call: _RetryCall | None = None
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            try:
                while True:
                    try:
                        item = next(it)
                        break
                    except StopIteration as stop:
                        return stop.value
                    except Exception as exc:
                        if call is None:
                            call = _RetryCall(self, start, fn)
                        delay = call.failed(exc, None)  # raises when giving up
                        it.close()
                        if delay > 0:
                            sleep(delay)
                        it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                partial = [item]
                thrown: BaseException | None = None
                while True:
                    sent: Any = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # throw() from the consumer: forward it
                        thrown = exc
                    try:
                        item = step(it, sent, thrown)
                    except StopIteration as stop:
                        return stop.value
                    except Exception as exc:
                        if exc is not thrown and classify(exc).retry:
                            raise _interrupted(self, fn, partial, exc, call, start) from exc
                        raise
                    thrown = None
                    partial.append(item)
            finally:
                it.close()

        return run

    def _bind_agen(self, inner: Runner) -> Runner:
        now = self.clock.now
        asleep = self.clock.asleep
        classify = self.on.classify
        direct = inner is CALL

        budget = self.budget
        aspend = async_spend(budget)

        async def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            start = now()
            if budget is not None:
                budget.first()
            call: _RetryCall | None = None
            it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
            try:
                while True:
                    try:
                        item = await it.__anext__()
                        break
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        if call is None:
                            call = _RetryCall(self, start, fn)
                        # raises when giving up
                        if aspend is None:
                            delay = call.failed(exc, None)
                        else:
                            delay = await call.afailed(exc, None, aspend)
                        await it.aclose()
                        if delay > 0:
                            await asleep(delay)
                        it = fn(*args, **kwargs) if direct else inner(fn, args, kwargs)
                partial = [item]
                thrown: BaseException | None = None
                while True:
                    sent: Any = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # athrow() from the consumer: forward it
                        thrown = exc
                    try:
                        item = await astep(it, sent, thrown)
                    except StopAsyncIteration:
                        return
                    except Exception as exc:
                        if exc is not thrown and classify(exc).retry:
                            raise _interrupted(self, fn, partial, exc, call, start) from exc
                        raise
                    thrown = None
                    partial.append(item)
            finally:
                await it.aclose()

        return run


def _interrupted(
    retry: Retry,
    fn: object,
    partial: list[Any],
    error: BaseException,
    call: _RetryCall | None,
    start: float,
) -> StreamInterruptedError:
    """Report that a stream could not be restarted (`RetriesExhausted`); return the error."""
    emit(
        retry.hooks,
        RetriesExhausted,
        name=retry.name,
        target=target_name(fn),
        attempts=1 if call is None else call.attempt,
        elapsed=retry.clock.now() - start,
        reason="stream_interrupted",
        error=error,
    )
    n = len(partial)
    label = f" (retry {retry.name!r})" if retry.name else ""
    return StreamInterruptedError(
        f"{target_name(fn)}: the stream failed with {type(error).__name__} after "
        f"{n} item{'s' if n != 1 else ''} reached the caller, so it was not restarted{label}",
        partial,
    )


@final
class _RetryCall:
    """The state of one retried call: created on its first failure, never shared."""

    __slots__ = ("attempt", "cap", "delay", "fn", "kinds", "limit", "retries", "retry", "start")

    def __init__(self, retry: Retry, start: float, fn: object) -> None:
        self.retry = retry
        self.start = start
        self.fn = fn
        self.attempt = 1  # the number of the attempt whose outcome comes next
        # The default backoff's state: the retries it scheduled, what it returned last.
        self.retries = 0
        self.delay = 0.0
        # The same for each kind with a backoff of its own, on its first retry.
        self.kinds: dict[str, tuple[int, float]] | None = None
        limit = retry.max_attempts
        cap = None
        if testing_state.enabled and testing_state.attempts is not None:
            cap = testing_state.attempts
            limit = min(limit, cap)
        self.cap = cap
        self.limit = limit

    def _give_up(self, outcome: object, reason: str | None, note: str | None) -> NoReturn:
        retry = self.retry
        elapsed = retry.clock.now() - self.start
        error = outcome if isinstance(outcome, BaseException) else None
        if reason is not None and listening(retry.hooks, RetriesExhausted):
            emit(
                retry.hooks,
                RetriesExhausted,
                name=retry.name,
                target=None if self.fn is None else target_name(self.fn),
                attempts=self.attempt,
                elapsed=elapsed,
                reason=reason,
                error=error,
            )
        label = f" (retry {retry.name!r})" if retry.name else ""
        text = (
            note or f"gave up after {_plural(self.attempt)} over {seconds_text(elapsed)} s{label}"
        )
        if error is not None:
            if self.attempt > 1 or reason is not None:
                set_note(error, retry, text)
            try:
                raise error
            finally:  # its traceback holds this frame: no cycle through our locals
                error = outcome = None
        raise RetryExhaustedError(outcome, self.attempt, f"{text}: the last result was refused")

    def failed(
        self, outcome: object, verdict: Verdict | None, deferred: list[Verdict] | None = None
    ) -> float:
        """
        Record that the current attempt failed with *outcome*; return the delay before the next.

        Raises the final failure (the exception itself, or `RetryExhaustedError`
        for a result) when Retry gives up. With *deferred* (a list), the
        budget is not asked: the verdict is appended to it and `afailed`
        finishes once the budget's awaited answer is in.
        """
        try:
            retry = self.retry
            if verdict is None:
                verdict = retry.on.classify(outcome)
            attempt = self.attempt
            if not verdict.retry:
                # After a retry, an event closes what RetryScheduled opened; a first
                # failure that is not retryable is none of Retry's business.
                self._give_up(
                    outcome,
                    "not_retryable" if attempt > 1 else None,
                    f"not retried: the classifier refused it, after {_plural(attempt)}",
                )
            limit = self.limit
            own: tuple[str, _backoff.Backoff] | None = None  # (kind, its backoff)
            if retry.per_kind:
                kind = verdict.kind
                for name, settings in retry.per_kind:
                    if name == kind:
                        if settings.attempts is not None:
                            limit = settings.attempts
                            if self.cap is not None:
                                limit = min(limit, self.cap)
                        if settings.backoff is not None:
                            own = (name, settings.backoff)
                        break
            if attempt >= limit:
                self._give_up(outcome, "attempts", None)
            # Each backoff counts its own retries: `attempt` is 1 before the first
            # retry it schedules in this call, `previous` is what it returned last,
            # before any Retry-After floor. Without per_kind, that is the call's count.
            if own is None:
                backoff = retry.backoff
                number, previous = self.retries + 1, self.delay
            else:
                backoff = own[1]
                number, previous = (self.kinds or {}).get(own[0], (0, 0.0))
                number += 1
            delay = backoff(number, previous, retry.rng)
            if type(delay) is not float:
                delay = float(delay)
            if not 0.0 <= delay < math.inf:  # NaN fails too
                raise ValueError(
                    f"backoff {backoff!r} returned {delay!r} for attempt {number}; "
                    "a delay must be a finite number >= 0"
                )
            if own is None:
                self.retries, self.delay = number, delay
            elif self.kinds is None:
                self.kinds = {own[0]: (number, delay)}
            else:
                self.kinds[own[0]] = (number, delay)
            retry_after = verdict.retry_after
            if retry_after is not None:
                cap = retry.max_retry_after
                if cap is not None and retry_after > cap:
                    self._give_up(
                        outcome,
                        "retry_after",
                        f"gave up after {_plural(attempt)}: the server asked to retry after "
                        f"{seconds_text(retry_after)} s, more than "
                        f"max_retry_after={seconds_text(cap)} s",
                    )
                delay = max(delay, retry_after)
            if testing_state.enabled:
                delay = 0.0
            elif delay > LONGEST_WAIT:
                self._give_up(
                    outcome,
                    "too_long",
                    f"gave up after {_plural(attempt)}: the next attempt, in "
                    f"{seconds_text(delay)} s, is further off than any wait can last",
                )
            deadline = DEADLINE.get()
            if deadline is not None:
                left = time_left(deadline)
                if delay >= left:
                    self._give_up(
                        outcome,
                        "deadline",
                        f"gave up after {_plural(attempt)}: the next attempt, in "
                        f"{seconds_text(delay)} s, would start after the deadline "
                        f"({seconds_text(max(left, 0.0))} s left)",
                    )
            # Asked last: a retry that something else refuses costs the budget nothing.
            budget = retry.budget
            if budget is not None:
                if deferred is not None:
                    deferred.append(verdict)
                    return delay
                if not budget.spend():
                    self._spent(outcome)
            self._commit(outcome, verdict, delay)
            return delay
        except BaseException as error:
            self._chain(error, outcome)
            outcome = None  # the traceback holds this frame: no cycle through it
            raise

    async def afailed(
        self, outcome: object, verdict: Verdict | None, aspend: Callable[[], Awaitable[bool]]
    ) -> float:
        """`failed`, awaiting the answer of a budget that decides with I/O (``aspend``)."""
        deferred: list[Verdict] = []
        delay = self.failed(outcome, verdict, deferred)
        try:
            if not await aspend():
                self._spent(outcome)
            self._commit(outcome, deferred[0], delay)
            return delay
        except BaseException as error:
            self._chain(error, outcome)
            outcome = None
            raise

    def _spent(self, outcome: object) -> NoReturn:
        self._give_up(
            outcome,
            "budget",
            f"retry budget spent: gave up after {_plural(self.attempt)}, "
            f"{self.retry.budget!r} allows no retry now",
        )

    def _commit(self, outcome: object, verdict: Verdict, delay: float) -> None:
        """The retry is on: say so (`RetryScheduled`), and count the attempt."""
        attempt = self.attempt
        # `listening`, inlined for the common case: only the log hook, unheard.
        if self.retry.hooks or not _registry.logs_only or heard(RetryScheduled.level):
            self._scheduled(outcome, verdict, attempt, delay)
        self.attempt = attempt + 1

    @staticmethod
    def _chain(error: BaseException, outcome: object) -> None:
        """
        A classifier, backoff, budget or hook of the user's that raised chains *outcome*.

        The failure it was judging is never lost. (The runners call `failed`
        outside their `except` blocks, so Python does not chain it by itself.)
        """
        if (
            error is not outcome
            and isinstance(outcome, BaseException)
            and error.__context__ is None
        ):
            error.__context__ = outcome

    def _scheduled(self, outcome: object, verdict: Verdict, attempt: int, delay: float) -> None:
        retry = self.retry
        emit(
            retry.hooks,
            RetryScheduled,
            name=retry.name,
            target=None if self.fn is None else target_name(self.fn),
            attempt=attempt,
            delay=delay,
            elapsed=retry.clock.now() - self.start,
            error=outcome if isinstance(outcome, BaseException) else None,
            kind=verdict.kind,
        )


@final
class Attempt:
    """
    One attempt of a block retried with `Retry.attempts`: a context manager.

    Use it with ``with attempt:``, or ``async with attempt:`` in async code;
    both record the block's outcome the same way.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry, and so on.
    """

    __slots__ = ("_loop", "number")

    def __init__(self, loop: Attempts, number: int) -> None:
        self._loop = loop
        self.number = number

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        loop = self._loop
        if exc is None:
            loop._done = True
            return False
        if not isinstance(exc, Exception):
            # Cancellation and interpreter exits pass through untouched.
            loop._done = True
            return False
        call = loop._call
        if call is None:
            call = loop._call = _RetryCall(loop._retry, loop._start, None)
        try:
            loop._delay = call.failed(exc, None)
        except BaseException as final_:
            loop._done = True
            if final_ is exc:
                return False  # propagate the original from the with block, noted
            raise
        return True  # suppressed: the loop sleeps and yields the next attempt

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # The same bookkeeping as `with attempt:` (the sleep before the next attempt
        # belongs to the loop's __anext__). Spelled for tenacity users, who write
        # `async with attempt:` (issue #15); it also awaits a budget that decides
        # with I/O (``aspend``), which `with attempt:` cannot.
        loop = self._loop
        if not isinstance(exc, Exception) or loop._retry.budget is None:
            return self.__exit__(exc_type, exc, tb)
        aspend = async_spend(loop._retry.budget)
        if aspend is None:
            return self.__exit__(exc_type, exc, tb)
        call = loop._call
        if call is None:
            call = loop._call = _RetryCall(loop._retry, loop._start, None)
        try:
            loop._delay = await call.afailed(exc, None, aspend)
        except BaseException as final_:
            loop._done = True
            if final_ is exc:
                return False  # propagate the original from the with block, noted
            raise
        return True


@final
class Attempts:
    """
    The iterator returned by `Retry.attempts`; iterate it with ``for`` or ``async for``.
    """

    __slots__ = ("_call", "_delay", "_done", "_number", "_retry", "_start")

    def __init__(self, retry: Retry) -> None:
        self._retry = retry
        self._start = 0.0
        self._call: _RetryCall | None = None
        self._delay = 0.0
        self._done = False
        self._number = 0

    def _next(self) -> Attempt:
        if self._done:
            raise StopIteration
        if self._number and (self._call is None or self._call.attempt == self._number):
            # The previous block ended without entering its Attempt, or left it
            # without an outcome: stop rather than loop forever.
            raise RuntimeError(
                "each Attempt must be used as `with attempt:` exactly once per iteration"
            )
        self._number += 1
        return Attempt(self, self._number)

    def __iter__(self) -> Iterator[Attempt]:
        return self

    def __next__(self) -> Attempt:
        if self._number == 0:
            self._start = self._retry.clock.now()
            if self._retry.budget is not None:
                self._retry.budget.first()
        elif not self._done and self._delay > 0:
            self._retry.clock.sleep(self._delay)
        return self._next()

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self

    async def __anext__(self) -> Attempt:
        if self._number == 0:
            self._start = self._retry.clock.now()
            if self._retry.budget is not None:
                self._retry.budget.first()
        elif not self._done and self._delay > 0:
            await self._retry.clock.asleep(self._delay)
        try:
            return self._next()
        except StopIteration:
            raise StopAsyncIteration from None
