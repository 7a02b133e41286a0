"""
Deadlines, as the policies hold them: `Deadline`, and the context variable `DEADLINE`.

A Timeout pushes a `RawDeadline` (a plain tuple, cheap to build) on `DEADLINE`
per call; `resilience.deadline`, the public namespace, reads it and hands out
the public `Deadline`.
"""

from __future__ import annotations

import contextvars
import operator
from typing import TYPE_CHECKING, Any, TypeAlias, final

from ._clock import Clock

__all__ = ["DEADLINE", "Deadline", "RawDeadline", "public_deadline", "time_left"]


@final
class Deadline(tuple[float, Clock, float]):
    """
    An absolute point in a clock's time after which work should stop.

    Immutable: a tuple ``(when, clock, timeout)`` with named fields.

    Attributes:
        when: The instant, in the clock's monotonic seconds.
        clock: The clock that *when* is read on.
        timeout: The limit, in seconds, that this deadline was computed from.
    """

    __slots__ = ()

    def __new__(cls, when: float, clock: Clock, timeout: float) -> Deadline:
        return tuple.__new__(cls, (when, clock, timeout))

    if TYPE_CHECKING:

        @property
        def when(self) -> float: ...
        @property
        def clock(self) -> Clock: ...
        @property
        def timeout(self) -> float: ...

    else:
        # itemgetter runs in C: no Python frame per attribute read.
        when = property(operator.itemgetter(0), doc="The instant, in the clock's seconds.")
        clock = property(operator.itemgetter(1), doc="The clock that *when* is read on.")
        timeout = property(operator.itemgetter(2), doc="The limit it was computed from (s).")

    def remaining(self) -> float:
        """Return the seconds left (negative once passed)."""
        return self[0] - self[1].now()

    def expired(self) -> bool:
        """Return whether the deadline has passed (at exactly *when*, it has)."""
        return self[1].now() >= self[0]

    def __repr__(self) -> str:
        return f"Deadline(when={self[0]!r}, timeout={self[2]!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Deadline, tuple(self))


Deadline.__module__ = "resilience.deadline"

RawDeadline: TypeAlias = tuple[float, Clock, float]
"""
What `DEADLINE` holds: ``(when, clock, timeout)``, the fields of a `Deadline`.

A plain tuple, because a Timeout pushes one per call: building a tuple
subclass (or any object of a Python class) and freeing it costs more than the
context-variable set and reset around it. `resilience.deadline.current`
builds the public `Deadline` from it.
"""

DEADLINE: contextvars.ContextVar[RawDeadline | None] = contextvars.ContextVar(
    "resilience_deadline", default=None
)
"""The innermost (earliest) deadline of the running context, as a `RawDeadline`."""


def time_left(deadline: RawDeadline) -> float:
    """Return the seconds left before *deadline* (negative once passed)."""
    return deadline[0] - deadline[1].now()


def public_deadline(deadline: RawDeadline) -> Deadline:
    """Return *deadline* as the public `Deadline`."""
    return tuple.__new__(Deadline, deadline)
