"""
The exceptions `resilience` raises, a small tree:

```text
ResilienceError                 base of everything below
  RejectedError                 a policy refused to run the call; nothing ran
    CircuitOpenError            .name, .retry_after (seconds until half-open), .failure_type,
                                .failure_message (what opened it)
    BulkheadFullError           .name, .limit, .waiting: no slot, no place in the queue
  TimeoutExceededError          also a builtin TimeoutError; .timeout
  StreamInterruptedError        .partial: the items delivered before the failure
  RetryExhaustedError           the last outcome was a *result*; .last_result, .attempts
```

When retries run out on an *exception*, `resilience` re-raises that exception
unchanged with a PEP 678 note; `RetryExhaustedError` exists only for results
that the classifier refused. Our own exceptions chain their cause with
``raise ... from``, and those with fields pickle, keeping their fields, their
PEP 678 notes (``__notes__``) and any other attribute set on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "RejectedError",
    "ResilienceError",
    "RetryExhaustedError",
    "StreamInterruptedError",
    "TimeoutExceededError",
    "seconds_text",
]


def seconds_text(value: float, digits: int = 3) -> str:
    """
    Format a duration for a message: *digits* significant digits, never an exponent.

    ``0.25``, ``3.2``, ``1400`` (not ``1.4e+03``), ``0.0000134`` (not
    ``1.34e-05``); nothing below a nanosecond (``0``).
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    if decimals <= 0:
        return f"{value:.0f}"
    text = f"{value:.{min(decimals, 9)}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class ResilienceError(Exception):
    """Base class of every exception that `resilience` itself raises."""


class RejectedError(ResilienceError):
    """A policy refused to run the call: nothing was executed."""


@final
class CircuitOpenError(RejectedError):
    """
    The circuit breaker *name* is open and rejected the call without running it.

    Its message says for how long, and what opened the circuit when the
    breaker's store knows: ``circuit 'api' is open; retry after 42 s; opened by
    ConnectionError: connection refused``.

    Attributes:
        name: The breaker's name.
        retry_after: Seconds until the breaker lets a probe through, or `None`
            when that is unknown (an isolated breaker).
        failure_type: The type name of the failure that opened the circuit
            (``"ConnectionError"``; for a refused result, its type), or `None`
            when not known (opened by hand, or by another process).
        failure_message: That failure's message, redacted of what looks like a
            credential and cut to 200 characters (``""`` when it has none), or
            `None` with *failure_type*. Text only: the exception itself, whose
            traceback would keep its frames alive, is not kept.
    """

    # No __init__: the fields are read from `args`, which the exception keeps
    # itself, and the message is made when read (`__str__`). A rejection is the
    # hot path of an outage, and most are never printed. Pickling and copying
    # keep `args`, and `__dict__` for any attribute set later.
    args: tuple[Any, ...]

    if TYPE_CHECKING:

        def __init__(
            self,
            name: str,
            retry_after: float | None,
            failure_type: str | None = None,
            failure_message: str | None = None,
            /,
        ) -> None: ...

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def retry_after(self) -> float | None:
        """Seconds until the breaker lets a probe through; `None` when unknown."""
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def failure_type(self) -> str | None:
        """The type name of the failure that opened the circuit, or `None`."""
        args = self.args
        return args[2] if len(args) > 2 else None

    @property
    def failure_message(self) -> str | None:
        """The message of the failure that opened the circuit, or `None`."""
        args = self.args
        return args[3] if len(args) > 3 else None

    def __str__(self) -> str:
        retry_after = self.retry_after
        text = f"circuit {self.name!r} is open"
        if retry_after is not None:
            text += f"; retry after {seconds_text(retry_after)} s"
        failure_type = self.failure_type
        if failure_type is not None:
            text += f"; opened by {failure_type}"
            if self.failure_message:
                text += f": {self.failure_message}"
        return text

    def __repr__(self) -> str:
        return f"CircuitOpenError({str(self)!r})"


@final
class BulkheadFullError(RejectedError):
    """
    The bulkhead *name* refused the call: every slot was taken and no place was left to wait.

    Also raised to a caller whose wait in the queue ended (``max_wait`` or the
    deadline) before a slot freed up.

    Attributes:
        name: The bulkhead's name (``"<unnamed>"`` when it has none).
        limit: How many calls it let run at once when it refused.
        waiting: How many callers were waiting in its queue.
        waited: Seconds this caller waited in the queue, or `None` if it did not.
        retry_after: Always `None`: when a slot frees up is not known.
    """

    def __init__(self, name: str, limit: int, waiting: int, waited: float | None = None) -> None:
        self.name = name
        self.limit = limit
        self.waiting = waiting
        self.waited = waited
        self.retry_after: float | None = None
        slots = f"{limit} slot{'' if limit == 1 else 's'}"
        why = (
            f"all {slots} taken, {waiting} waiting"
            if waited is None
            else f"no slot freed up within {seconds_text(waited)} s (all {slots} taken)"
        )
        super().__init__(f"bulkhead {name!r} is full: {why}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.limit, self.waiting, self.waited), self.__dict__)


@final
class TimeoutExceededError(ResilienceError, TimeoutError):
    """
    A deadline passed. Also a builtin `TimeoutError`, so ``except TimeoutError`` catches it.

    Attributes:
        timeout: The limit that was exceeded, in seconds.
    """

    def __init__(self, timeout: float, message: str | None = None) -> None:
        self.timeout = timeout
        super().__init__(message or f"timed out after {seconds_text(timeout, 6)} s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.timeout, str(self)), self.__dict__)


class StreamInterruptedError(ResilienceError):
    """
    A stream failed after some items had reached the caller, so it cannot be restarted.

    Attributes:
        partial: The items delivered to the caller before the failure, in order.
    """

    def __init__(self, message: str, partial: Sequence[Any] = ()) -> None:
        self.partial: list[Any] = list(partial)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.partial), self.__dict__)


@final
class RetryExhaustedError(ResilienceError):
    """
    Every attempt returned a result that the classifier asked to retry.

    Raised only for *results*; when the last outcome was an exception, that
    exception itself is re-raised with a note.

    Attributes:
        last_result: What the last attempt returned.
        attempts: How many attempts were made.
    """

    def __init__(self, last_result: object, attempts: int, message: str | None = None) -> None:
        self.last_result = last_result
        self.attempts = attempts
        super().__init__(
            message
            or f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: "
            f"the last result was {type(last_result).__name__}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.last_result, self.attempts, str(self)), self.__dict__)


for _cls in (
    ResilienceError,
    RejectedError,
    CircuitOpenError,
    BulkheadFullError,
    TimeoutExceededError,
    StreamInterruptedError,
    RetryExhaustedError,
):
    _cls.__module__ = "resilience"
