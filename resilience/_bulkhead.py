"""
Bulkhead: at most N calls at once, a bounded queue behind them, and a limit that may find itself.

A gate on the engine (`resilience.engine`): `Bulkhead.admit` takes a slot or
a place in the queue under one lock; the end of a call gives its slot to the
first caller still waiting (first come, first served) or frees it. Waiting is
the engine's: a `Waiter` woken from whichever thread or task released the
slot, never past the deadline. With an adaptive limit (`resilience.limits`)
each call's duration and overload verdict move the limit.
"""

from __future__ import annotations

import collections
from typing import Any, NoReturn, final

import attrs

from ._classify import ErrorClassifier, to_classifier
from ._clock import SYSTEM_CLOCK, Clock
from ._events import Hook, LimitChanged, emit, log_ignored
from ._exceptions import BulkheadFullError
from ._explain import Description, rule_lines, seconds
from ._fork import forget_in_child, fork_safe_lock
from ._gate import NO_RESULT, GatePolicy, Wait, Waiter, refuse
from ._pipeline import pipeline_field, target_name
from ._validate import check_clock, check_name, to_count, to_hooks, to_seconds
from .limits import _MOST_CONCURRENT, Limit

__all__ = ["Bulkhead"]


def _to_max_concurrent(value: object) -> int | Limit:
    if isinstance(value, Limit) and not isinstance(value, type):
        return value
    return to_count(
        "max_concurrent", value, maximum=_MOST_CONCURRENT, why="a bulkhead keeps a token per slot"
    )


def _to_max_queue(value: object) -> int:
    return to_count("max_queue", value, minimum=0)


def _to_max_wait(value: object) -> float | None:
    return to_seconds("max_wait", value, zero=True, none=True)


def _to_overload(value: object) -> ErrorClassifier:
    return to_classifier(value, "overload")


def _default_overload() -> ErrorClassifier:
    from .limits import overload

    return overload


@final
class _Slots:
    """
    The bulkhead's state: a token per free slot, the callers waiting, the limit.

    Taking and giving back a token are single `collections.deque` operations,
    atomic without a lock: a call that finds a token while nobody waits, and
    gives it back while nobody waits, takes no lock at all. The lock guards
    the queue, the hand-over of tokens to waiters, and the limit's changes.
    An adaptive limit that went down retires tokens as calls return them
    (*debt*).

    A permit names the deque its token came from (adaptive: with the calls
    in flight). A forked child starts afresh, with every token free, no debt
    and nobody waiting (`forget_calls_in_flight`): the parent's calls never
    end there, and one that does (the forking thread's) gives its token back
    to the parent's deque, which the child no longer counts.
    """

    __slots__ = ("__weakref__", "adaptive", "debt", "free", "limit", "lock", "queue")

    def __init__(self, max_concurrent: int | Limit) -> None:
        self.lock = fork_safe_lock()
        self.queue: collections.deque[Wait] = collections.deque()
        if isinstance(max_concurrent, int):
            self.adaptive: Limit | None = None
            self.limit = max_concurrent
        else:
            self.adaptive = max_concurrent
            self.limit = max(1, max_concurrent.limit)
        self.free = collections.deque([True] * self.limit)
        self.debt = 0
        forget_in_child(self)

    def forget_calls_in_flight(self) -> None:
        """In a forked child: every slot free, nobody waiting (see `resilience._fork`)."""
        self.free = collections.deque([True] * self.limit)
        self.debt = 0
        self.queue = collections.deque()

    def running(self) -> int:
        """Calls holding a slot (woken waiters included)."""
        return self.limit + self.debt - len(self.free)

    def take(self) -> Any:
        """
        Take a free token, or raise `IndexError`; return the permit: the deque
        the token came from (adaptive: with the calls in flight, this one included).
        """
        free = self.free
        free.pop()
        if self.adaptive is None:
            return free
        return free, self.limit + self.debt - len(free)  # `running()`, inlined

    def move(self, new: int) -> None:
        """Move the limit to *new* (lock held): add tokens, or retire free ones and owe the rest."""
        change, self.limit = new - self.limit, new
        if change > 0:
            paid = min(self.debt, change)
            self.debt -= paid
            self.free.extend([True] * (change - paid))
        else:
            while change < 0:
                try:  # a caller may take the last free token meanwhile, without the lock
                    self.free.pop()
                except IndexError:
                    break
                change += 1
            self.debt -= change

    def hand_over(self) -> None:
        """Give free tokens to the callers waiting, first come first served (lock held)."""
        queue = self.queue
        while queue:
            try:  # a caller may take the last free token meanwhile, without the lock
                permit = self.take()
            except IndexError:
                return
            if not queue.popleft().waiter.wake(permit):  # type: ignore[union-attr]  # gave up
                self.free.append(True)


@final
@attrs.define(eq=False, frozen=True, kw_only=True, repr=False)
class Bulkhead(GatePolicy):
    """
    Let at most *max_concurrent* calls run at once; queue a few more; refuse the rest.

    A `Bulkhead` is **one limit**: shared, mutable state. Every call through
    it, from any thread or task, takes one of its slots for as long as it
    runs (a stream: until it ends or is closed). A call that finds every slot
    taken waits in a first-come, first-served queue of at most *max_queue*
    callers, for at most *max_wait* seconds and never past the current
    deadline (`resilience.deadline`), then runs in the slot the call before it
    gave up; if the queue is full, or the wait ends first, it gets
    `BulkheadFullError` and nothing runs. Sync callers wait on a lock, async
    callers without blocking the event loop; threads and tasks may share one
    bulkhead. A slot is always given back, whatever the call raised;
    cancellation and interpreter exits too, and a caller cancelled while it
    waits leaves the queue.

    With an adaptive limit (*max_concurrent* a `resilience.limits.Limit`, such
    as ``rs.limits.AIMD(...)``), the bulkhead times every call and tells the
    limit how long it took, how many calls ran beside it, and whether it
    failed with an overload (what *overload* trips on: a 429, a 503, a
    timeout); the limit moves, and `LimitChanged` says so.

    Use it as a decorator (functions, methods, coroutine functions, (async)
    generator functions), through `bulkhead.call` / `bulkhead.acall`, in
    `compose`, or around a block with ``with bulkhead:`` / ``async with
    bulkhead:``.

    Args:
        max_concurrent: How many calls may run at once: a count (1 to 10**6), or an
            adaptive `resilience.limits.Limit`, which this bulkhead then owns.
            Required.
        max_queue: How many callers may wait for a slot. Default: 0 (none:
            a call that finds no slot is refused at once).
        max_wait: Seconds a caller may wait in the queue; `None`: until a slot
            frees up or the deadline passes. Default: `None`.
        name: A label for events and `BulkheadFullError`. Default: `None`.
        overload: What counts as an overload for an adaptive limit: an
            `ErrorClassifier` (its verdict's ``trip``), an exception type, a
            `Rule` or a predicate. Default: `resilience.limits.overload` (429,
            503, timeouts).
        hooks: Callables receiving this bulkhead's events, before the global hooks.
        clock: Where call durations come from (adaptive limits). Default: the
            system clock.

    Raises:
        TypeError: On an argument of the wrong type (``bool`` is not a number).
        ValueError: On ``max_concurrent < 1``, a negative *max_queue*, or a
            negative or NaN *max_wait*.

    .. versionadded:: 0.2.0
    """

    max_concurrent: int | Limit = attrs.field(converter=_to_max_concurrent)
    max_queue: int = attrs.field(default=0, converter=_to_max_queue)
    max_wait: float | None = attrs.field(default=None, converter=_to_max_wait)
    name: str | None = attrs.field(default=None, validator=check_name)
    overload: ErrorClassifier = attrs.field(
        factory=_default_overload, converter=_to_overload, repr=False
    )
    hooks: tuple[Hook, ...] = attrs.field(default=(), converter=to_hooks, repr=False)
    clock: Clock = attrs.field(default=SYSTEM_CLOCK, validator=check_clock, repr=False)
    _slots: _Slots = attrs.field(init=False, repr=False)
    _label: str = attrs.field(init=False, repr=False)
    _pipeline: Any = pipeline_field()

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_slots", _Slots(self.max_concurrent))
        object.__setattr__(self, "_label", self.name if self.name is not None else "<unnamed>")

    def __repr__(self) -> str:
        parts = [f"max_concurrent={self.max_concurrent!r}"]
        if self.name is not None:
            parts.insert(0, f"name={self.name!r}")
        if self.max_queue:
            parts.append(f"max_queue={self.max_queue!r}")
        if self.max_wait is not None:
            parts.append(f"max_wait={self.max_wait!r}")
        return f"<Bulkhead {', '.join(parts)}: {self.running} running, {self.waiting} waiting>"

    # --- state ---------------------------------------------------------------

    @property
    def limit(self) -> int:
        """How many calls may run at once now (the adaptive limit's current value, if any)."""
        return self._slots.limit

    @property
    def running(self) -> int:
        """How many calls hold a slot now."""
        return self._slots.running()

    @property
    def waiting(self) -> int:
        """How many callers wait in the queue now."""
        return len(self._slots.queue)

    def describe(self) -> Description:
        """
        Return what this bulkhead does, for `resilience.Pipeline.explain`.

        Its limit (fixed, or adaptive and its value now), its queue and how
        long a caller may wait in it. It adds no attempts; the time a call may
        wait is *max_wait*.
        """
        label = f"Bulkhead {self.name!r}" if self.name is not None else "Bulkhead"
        slots = self._slots
        if slots.adaptive is None:
            title = f"{label}: at most {slots.limit} calls at once"
            details = []
        else:
            title = f"{label}: an adaptive limit of calls at once, now {slots.limit}"
            details = [
                f"limit: {slots.adaptive!r}",
                "an overload (first matching rule decides) lowers it:",
                *rule_lines(self.overload, "trip"),
            ]
        if self.max_queue == 0:
            details.insert(0, "no queue: a call that finds every slot taken is refused at once")
        else:
            wait = (
                "until a slot frees up"
                if self.max_wait is None
                else f"at most {seconds(self.max_wait)}"
            )
            details.insert(
                0,
                f"then up to {self.max_queue} callers wait, first come first served, "
                f"{wait}, never past a deadline",
            )
        details.append("refused calls raise BulkheadFullError; nothing runs")
        details.append(f"now: {slots.running()} running, {len(slots.queue)} waiting")
        return Description(
            title=title,
            details=details,
            sleeps=0.0 if self.max_queue == 0 else self.max_wait,
        )

    # --- the gate (see resilience.engine.Gate) --------------------------------------

    @property
    def timed(self) -> bool:
        """Calls are timed only for an adaptive limit, which learns from their durations."""
        return self._slots.adaptive is not None

    @property
    def results(self) -> bool:
        """Results are judged only for an adaptive limit whose *overload* has rules for them."""
        return self._slots.adaptive is not None and self.overload.handles_results

    def admit(self, target: object, /) -> object:
        """
        Take a slot (the permit) or a place in the queue.

        Raises:
            BulkheadFullError: If every slot and every place in the queue is taken.
        """
        slots = self._slots
        if not slots.queue:  # nobody waits: take a free slot without the lock
            if slots.adaptive is None:  # `take()`, inlined: the usual case
                free = slots.free
                try:
                    free.pop()
                except IndexError:
                    pass
                else:
                    return free
            else:
                try:
                    return slots.take()
                except IndexError:
                    pass
        with slots.lock:
            if not slots.queue:
                try:
                    return slots.take()
                except IndexError:
                    pass
            waiting = len(slots.queue)
            if waiting < self.max_queue:
                wait = Wait(self.max_wait, waiter=Waiter())
                slots.queue.append(wait)
                slots.hand_over()  # a slot freed before we were in line: ours, in turn
                return wait
            limit = slots.limit
        return self._refuse(target, limit, waiting, None)

    def on_success(
        self, permit: Any, result: Any, duration: float | None, target: object, /
    ) -> None:
        """Give the slot to the next caller waiting, or free it; an adaptive limit learns."""
        slots = self._slots
        if slots.adaptive is None:
            permit.append(True)  # the deque it came from (see `_Slots`)
            if slots.queue:
                with slots.lock:
                    slots.hand_over()
            return
        overload = self.overload
        dropped = result is not NO_RESULT and overload.handles_results
        if dropped:
            dropped = overload.classify(result).trip
        self._learn(permit, duration, dropped, target)

    def on_failure(
        self, permit: Any, error: Exception, duration: float | None, target: object, /
    ) -> None:
        """As `on_success`; an adaptive limit counts an overload (*overload* trips) as a drop."""
        if self._slots.adaptive is None:
            self.on_success(permit, NO_RESULT, duration, target)
        else:
            self._learn(permit, duration, self.overload.classify(error).trip, target)

    def on_cancel(
        self, permit: Any, error: BaseException, duration: float | None, target: object, /
    ) -> None:
        """A cancelled call gives its slot back (no sample); a cancelled waiter leaves the queue."""
        if type(permit) is Wait:
            self._leave(permit)
        else:
            self._learn(permit, None, False, target)

    def on_expired(self, wait: Wait, target: object, /) -> NoReturn:
        """
        A waiter not woken in time (*max_wait*, the deadline) leaves the queue, refused.

        ``wait.seconds`` is then the time it was given: *max_wait*, or less if
        the deadline came first.
        """
        self._leave(wait)
        slots = self._slots
        self._refuse(target, slots.limit, len(slots.queue), wait.seconds)

    # --- the slow paths -----------------------------------------------------------

    def _learn(self, permit: Any, rtt: float | None, dropped: bool, target: object) -> None:
        """Give a slot back with the lock held; with *rtt*, the adaptive limit learns first."""
        slots = self._slots
        adaptive = slots.adaptive
        failed: Exception | None = None
        with slots.lock:
            previous = limit = slots.limit
            free = permit if adaptive is None else permit[0]
            if free is slots.free:  # else taken before this process was forked: not counted
                if slots.debt:  # the limit went down: retire the token
                    slots.debt -= 1
                else:
                    free.append(True)
            if adaptive is not None and rtt is not None:
                try:
                    limit = max(1, adaptive.update(rtt, permit[1], dropped))
                except Exception as error:  # the slot is released all the same
                    failed = error
                if limit != previous:
                    slots.move(limit)
            slots.hand_over()
        if failed is not None:
            message = "resilience: bulkhead %r: its limit's update() failed; limit kept"
            log_ignored(failed, message, self._label)
        if limit != previous:
            emit(
                self.hooks,
                LimitChanged,
                name=self.name,
                target=None if target is None else target_name(target),
                limit=limit,
                previous=previous,
                reason="overload" if dropped else "sample",
            )

    def _leave(self, wait: Wait) -> None:
        slots = self._slots
        with slots.lock:
            try:
                slots.queue.remove(wait)
            except ValueError:  # a release skipped it already
                pass

    def _refuse(self, target: object, limit: int, waiting: int, waited: float | None) -> NoReturn:
        error = BulkheadFullError(self._label, limit, waiting, waited)
        refuse(self.hooks, error, name=self.name, target=target, reason="bulkhead_full")


Bulkhead.__module__ = "resilience"
