"""
Events: frozen, past-tense facts that policies report on their failure paths.

A hook is any callable taking one event. Hooks are per policy (``hooks=``) or
global (`add_hook`, `set_hooks`); the default global hook, `log_event`, logs to
the ``resilience`` logger. Events are built only when a hook listens, hooks run
outside any lock, and a hook that raises is logged and ignored: instrumentation
never changes the outcome of the protected call.

The text an event copies from an exception (`Event.fields`, `Event.message`) is
scrubbed of what looks like a credential (``sk-...`` keys, bearer tokens,
``api_key=...``) and cut to 200 characters: an exception raised by user code
may quote a header or a request, and log records travel further than exceptions.
"""

# ruff: noqa: RUF023 (an event's __slots__ lists its fields in their order, not sorted)

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Protocol, TypeVar, cast

import attrs

from ._exceptions import seconds_text
from ._fork import fork_safe_lock

__all__ = [
    "CallRejected",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "Event",
    "FallbackUsed",
    "HedgeStarted",
    "Hook",
    "LimitChanged",
    "RateChanged",
    "RateLimitWaited",
    "RetriesExhausted",
    "RetryScheduled",
    "TimeoutExpired",
    "add_hook",
    "emit",
    "get_hooks",
    "log_event",
    "remove_hook",
    "set_hooks",
]

logger = logging.getLogger("resilience")
# A library's top logger gets a NullHandler: without one, Python's last-resort
# handler prints our WARNINGs to stderr when the application configured no
# logging. An application that configures logging (a handler on the root or on
# this logger) sees every record as before.
logger.addHandler(logging.NullHandler())


class Hook(Protocol):
    """Receives every event of the policies it is attached to; its return value is ignored."""

    def __call__(self, event: Event, /) -> object: ...


# A quoted value: 'x', "x", b'x' (escapes included), on one line.
_QUOTED: Final = r"""b?(?P<quote>["'])(?:\\.|(?!(?P=quote))[^\\\r\n])*(?P=quote)"""

# Patterns as text: `re` compiles them on the first redaction (and caches
# them), not at `import resilience`; most processes never redact anything.
_SECRETS: Final = (
    # API keys of the OpenAI / LiteLLM shape, also glued after "_" ("token_sk-...").
    (r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}", "sk-***"),
    # An Authorization or Proxy-Authorization header, any case: its whole value
    # (scheme and credentials), in a repr ('authorization': '...', a list or a
    # tuple of pairs) or in text ("Authorization: Digest a=1, b=2" to the end
    # of the line).
    (
        (
            r"(?i)\b(?P<key>(?:proxy-)?authorization"
            r"(?:[\"']\s*[:=,]\s*|[ \t]*[:=][ \t]*))"
            rf"(?:{_QUOTED}|[\[(][^\])\r\n]*[\])]?|\S[^\r\n]*)"
        ),
        lambda m: f"{m['key']}{m['quote'] or ''}***{m['quote'] or ''}",
    ),
    # A credential after an authorization scheme: "Bearer <token>", "Basic <base64>".
    # (Schemes are case-insensitive, but "basic" and "token" are also words.)
    (r"\b((?i:bearer)|Basic|Token)(\s+)[A-Za-z0-9_\-.=:/+~]{8,}", r"\1\2***"),
    # Secret-like fields, in headers, query strings, JSON or reprs: api_key=..., "password": "...".
    # A quoted value is blanked whole, an unquoted one up to a separator.
    (
        (
            r"(?i)\b(?P<key>(?:(?:x-)?api[_-]?key|access[_-]?token|client[_-]?secret|secret"
            r"|password)[\"']?\s*[:=]\s*)"
            rf"(?:{_QUOTED}|[^\s\"',;&)}}\]]+)"
        ),
        lambda m: f"{m['key']}{m['quote'] or ''}***{m['quote'] or ''}",
    ),
)


def redact(text: str) -> str:
    """
    Return *text* with what looks like a credential replaced by ``***``.

    Blanked: ``sk-...`` keys; the whole value of an ``Authorization`` or
    ``Proxy-Authorization`` header, any case (scheme and credentials, quoted
    in a repr, or to the end of the line in text); ``Bearer <token>`` (and
    ``Basic``/``Token``) credentials of 8 characters or more; and the value of
    ``api_key``, ``access_token``, ``client_secret``, ``secret`` and
    ``password``-like fields.
    """
    for pattern, replacement in _SECRETS:
        text = re.sub(pattern, replacement, text)
    return text


def _shorten(text: str) -> str:
    return text[:197] + "..." if len(text) > 200 else text


def _error_text(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # a broken __str__ must not break the hook
        text = ""
    return _shorten(redact(text))


def describe_text(error: BaseException) -> str:
    """The message of *error*, redacted of what looks like a credential, cut to 200 characters."""
    return _error_text(error)


def _describe_error(error: BaseException | None) -> str | None:
    # The type and the message only, redacted: exceptions of ours and of the
    # profile never carry headers or bodies, but a user's exception may quote
    # one; the traceback stays with the exception itself.
    if error is None:
        return None
    text = _error_text(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _safe_repr(obj: object) -> str:
    try:
        return _shorten(redact(repr(obj)))
    except Exception:  # a broken __repr__ must not break the hook
        return f"<{type(obj).__name__} object>"


class _Redacted(Exception):
    """
    Stands in for an exception in a log record: the type's name, the redacted
    message and the traceback of the original, chained only to stand-ins of
    the original's own causes. `_stand_in_type` makes one subclass per type,
    named like it, so that the formatted traceback reads like the original's.
    """


_stand_in_types: dict[type[BaseException], type[_Redacted]] = {}


def _stand_in_type(cls: type[BaseException]) -> type[_Redacted]:
    made = _stand_in_types.get(cls)
    if made is None:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
        made = cast("type[_Redacted]", type(cls.__name__, (_Redacted,), namespace))
        if len(_stand_in_types) < 256:  # a cache, bounded: a race only makes a twin
            _stand_in_types[cls] = made
    return made


def _add_chain(error: BaseException, ids: set[int]) -> None:
    pending = [error]
    while pending:
        item = pending.pop()
        if id(item) not in ids:
            ids.add(id(item))
            pending.extend(e for e in (item.__cause__, item.__context__) if e is not None)


def _stand_in(error: BaseException, stop: set[int], depth: int = 0) -> _Redacted:
    # *stop* holds the ids not to follow: the caller's exceptions, and those
    # already copied (a chain may loop).
    copy = _stand_in_type(type(error))(_error_text(error)).with_traceback(error.__traceback__)
    notes = getattr(error, "__notes__", None)
    for note in notes if isinstance(notes, list) else ():
        if isinstance(note, str):
            copy.add_note(_shorten(redact(note)))
    stop.add(id(error))
    if depth < 20:
        cause, context = error.__cause__, error.__context__
        if cause is not None:
            if id(cause) not in stop:
                copy.__cause__ = _stand_in(cause, stop, depth + 1)
        elif context is not None and not error.__suppress_context__ and id(context) not in stop:
            copy.__context__ = _stand_in(context, stop, depth + 1)
    return copy


def log_ignored(
    error: BaseException, message: str, /, *args: object, outer: Iterable[object] = ()
) -> None:
    """
    Log at ERROR that *error*, raised by user code the library calls (a hook, a
    classifier), was ignored.

    The record's ``exc_info`` is a stand-in for *error*: its type's name, its
    message and notes redacted and cut to 200 characters, and its traceback,
    chained to stand-ins of its own causes, redacted too, but never to the
    exceptions of *outer* (the caller's failure, which *error* was raised
    while handling) nor to their chains: a user's exception may quote a key,
    and the record must not carry it. *args* are formatted into *message*
    unchanged: redact them first.
    """
    try:
        stop: set[int] = set()
        for item in outer:
            if isinstance(item, BaseException):
                _add_chain(item, stop)
        copy = _stand_in(error, stop)
    except Exception:  # a stand-in is a courtesy: the record goes out without one
        logger.error(message, *args)
    else:
        logger.error(message, *args, exc_info=(type(copy), copy, copy.__traceback__))


@attrs.frozen(kw_only=True)
class Event:
    """
    Base of every event.

    Events are frozen: facts that happened, equal when their fields are, and
    they pickle. Every field is listed, with its stable log name, in the
    catalogue of ``docs/events.md``.

    Attributes:
        name: The name of the policy that reports it (`None` when unnamed).
        target: The qualified name of the protected function, when known
            (``"METHOD /path"`` for the HTTP integrations: no host, no query).
        level: Class attribute: the `logging` level `log_event` uses for this event.
    """

    # The built-in events are plain slotted subclasses with their own typed
    # ``__init__`` and the generic methods below, not attrs classes: attrs
    # would generate and compile their methods at ``import resilience``, for
    # objects built only when someone listens. A subclass made with
    # ``@attrs.frozen`` (the Redis integration's events, a user's) still
    # works: it inherits ``name`` and ``target`` and gets its own methods.

    level: ClassVar[int] = logging.INFO
    # Fields left out of equality and hashing (an exception: compared by identity).
    _uncompared: ClassVar[frozenset[str]] = frozenset()

    name: str | None = None
    target: str | None = None

    def __repr__(self) -> str:
        values = ", ".join(f"{field}={getattr(self, field)!r}" for field in field_names(type(self)))
        return f"{type(self).__qualname__}({values})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _compared(self) == _compared(other)

    def __hash__(self) -> int:
        return hash((type(self), *_compared(self)))

    def __getstate__(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in field_names(type(self))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for field, value in state.items():
            object.__setattr__(self, field, value)

    def message(self) -> str:
        """Return a one-line, human-readable description (used by `log_event`)."""
        return type(self).__name__

    def fields(self) -> dict[str, Any]:
        """
        Return the event's fields under stable names prefixed ``resilience_`` (log ``extra``).

        ``resilience_event`` is the class name; an exception becomes
        ``"Type: message"``, redacted and cut to 200 characters.
        """
        out: dict[str, Any] = {"resilience_event": type(self).__name__}
        for field in field_names(type(self)):
            value = getattr(self, field)
            if isinstance(value, BaseException):
                value = _describe_error(value)
            out[f"resilience_{field}"] = value
        return out


# A built-in event's __init__ sets its fields with this (they are frozen to everyone else).
_set: Final = object.__setattr__

# The field names of each event class, in order, and those compared: made on first use.
_layouts: dict[type[Event], tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _layout(cls: type[Event]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    layout = _layouts.get(cls)
    if layout is None:
        names: tuple[str, ...] = ()
        for klass in reversed(cls.__mro__):
            own = klass.__dict__
            if "__attrs_attrs__" in own:  # an attrs class: its fields, its bases' included
                names = tuple(field.name for field in own["__attrs_attrs__"])
            else:  # a plain subclass: its own slots follow
                names += tuple(own.get("__slots__", ()))
        layout = (names, tuple(name for name in names if name not in cls._uncompared))
        if len(_layouts) < 1024:  # a cache, bounded: classes made at run time stay collectable
            _layouts[cls] = layout
    return layout


def field_names(cls: type[Event]) -> tuple[str, ...]:
    """Return the names of the fields of the event class *cls*, in order (the base's first)."""
    return _layout(cls)[0]


def _compared(event: Event) -> tuple[Any, ...]:
    return tuple(getattr(event, field) for field in _layout(type(event))[1])


def _label(event: Event) -> str:
    parts = [p for p in (event.name, event.target) if p]
    return " ".join(repr(p) for p in parts) or "call"


# What a reason code (as fields, log keys and metrics keep it) says in a message.
_SAYS: Final = {
    # RetriesExhausted
    "attempts": "no attempts left",
    "deadline": "the next attempt would start after the deadline",
    "retry_after": "the server asked for a longer wait than max_retry_after",
    "stream_interrupted": "the stream had already delivered items",
    "budget": "the retry budget allows no retry now",
    "not_retryable": "the last failure is not one to retry",
    # CallRejected
    "circuit_open": "the circuit is open",
    "circuit_half_open": "the circuit is half-open and its probes are running",
    "circuit_isolated": "the circuit is isolated",
    "bulkhead_full": "the bulkhead is full",
    "paused": "a shared pause is in force",
    # CircuitOpened, CircuitClosed
    "failures": "failure threshold reached",
    "failure_rate": "failure rate over its limit",
    "slow_calls": "slow-call rate over its limit",
    "half_open_failure": "a probe failed",
    "manual": "by hand",
    "isolated": "isolated",
    "probes_succeeded": "the probes succeeded",
    "reset": "reset",
    # LimitChanged
    "overload": "after an overload",
    "sample": "after a sample",
}


def _says(reason: str) -> str:
    return _SAYS.get(reason) or reason.replace("_", " ")


class RetryScheduled(Event):
    """
    An attempt failed and another one is scheduled after *delay* seconds.

    Attributes:
        attempt: The number of the attempt that failed (1-based).
        delay: Seconds until the next attempt.
        elapsed: Seconds since the first attempt started.
        error: The exception of the failed attempt, or `None` if a result was refused.
        kind: The classifier's kind for the failure (``"server"``, ...), if any.
    """

    _uncompared: ClassVar[frozenset[str]] = frozenset({"error"})

    __slots__ = ("attempt", "delay", "elapsed", "error", "kind")

    attempt: int
    delay: float
    elapsed: float
    error: BaseException | None
    kind: str | None

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        attempt: int,
        delay: float,
        elapsed: float,
        error: BaseException | None = None,
        kind: str | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "attempt", attempt)
        _set(self, "delay", delay)
        _set(self, "elapsed", elapsed)
        _set(self, "error", error)
        _set(self, "kind", kind)

    def message(self) -> str:
        cause = _describe_error(self.error) or "a refused result"
        return (
            f"{_label(self)}: attempt {self.attempt} failed with {cause}; "
            f"retrying in {seconds_text(self.delay)} s"
        )


class RetriesExhausted(Event):
    """
    Retry gave up; the last failure goes to the caller.

    Attributes:
        attempts: How many attempts were made.
        elapsed: Seconds since the first attempt started.
        reason: ``"attempts"`` (none left), ``"deadline"`` (the next attempt would
            start past the deadline, a server's wait included), ``"retry_after"``
            (the server asked for a wait beyond ``max_retry_after``),
            ``"stream_interrupted"`` (a stream failed with a retryable error after
            items had reached the caller, so it could not be restarted; the
            caller gets `StreamInterruptedError`, chained to *error*),
            ``"budget"`` (the retry budget of ``Retry(budget=...)`` refused a
            retry), ``"too_long"`` (the next attempt lies further off than any
            wait can last, past what the platform's time functions hold: a
            backoff of 1e10 s, a Retry-After in the year 9999), or
            ``"not_retryable"`` (after at least one retry, an attempt failed in a
            way the classifier does not retry). Every `RetryScheduled` is
            followed by a success or by this event.
        error: The last exception, or `None` if the last outcome was a result.
    """

    level: ClassVar[int] = logging.WARNING

    _uncompared: ClassVar[frozenset[str]] = frozenset({"error"})

    __slots__ = ("attempts", "elapsed", "reason", "error")

    attempts: int
    elapsed: float
    reason: str
    error: BaseException | None

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        attempts: int,
        elapsed: float,
        reason: str,
        error: BaseException | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "attempts", attempts)
        _set(self, "elapsed", elapsed)
        _set(self, "reason", reason)
        _set(self, "error", error)

    def message(self) -> str:
        cause = _describe_error(self.error) or "a refused result"
        return (
            f"{_label(self)}: gave up after {self.attempts} "
            f"attempt{'' if self.attempts == 1 else 's'} over {seconds_text(self.elapsed)} s "
            f"({_says(self.reason)}); last failure: {cause}"
        )


class TimeoutExpired(Event):
    """
    A deadline passed.

    The call was cancelled (async), refused because its deadline had already
    passed as it was about to start (sync, or an attempt under Retry), or a
    stream waited too long for an item (*idle*) or in total.

    A sync call that overruns its deadline and then returns is not reported:
    its result is returned, and nothing expired that anyone acted on.

    Logged at INFO: what the caller feels is the `TimeoutExceededError` it gets,
    or, under Retry, the retry (`RetryScheduled`) or the give-up (`RetriesExhausted`).

    Attributes:
        timeout: The limit in seconds.
        idle: Whether it was the idle (between-items) limit of a stream.
    """

    __slots__ = ("timeout", "idle")

    timeout: float
    idle: bool

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        timeout: float,
        idle: bool = False,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "timeout", timeout)
        _set(self, "idle", idle)

    def message(self) -> str:
        which = "idle timeout" if self.idle else "timeout"
        return f"{_label(self)}: {which} of {seconds_text(self.timeout)} s expired"


class CallRejected(Event):
    """
    A policy refused to run a call (nothing ran).

    Logged at WARNING, one record per rejected call: the caller gets a
    `RejectedError` (`CircuitOpenError` from a breaker) instead of a result,
    which someone may have to act on. Under load an open circuit rejects
    thousands of calls per second; to keep only the opening (`CircuitOpened`),
    drop these records with a logging filter and count them with a
    `MetricsCollector` (``rejections``) instead.

    Attributes:
        reason: Why. A circuit breaker says ``"circuit_open"`` (open),
            ``"circuit_half_open"`` (half-open with every probe place taken)
            or ``"circuit_isolated"`` (held open by ``isolate()``).
        retry_after: Seconds until the policy may admit calls again, if known.
    """

    level: ClassVar[int] = logging.WARNING

    __slots__ = ("reason", "retry_after")

    reason: str
    retry_after: float | None

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "reason", reason)
        _set(self, "retry_after", retry_after)

    def message(self) -> str:
        return f"{_label(self)}: call rejected ({_says(self.reason)})"


class CircuitOpened(Event):
    """
    A circuit breaker opened: calls are rejected for *retry_after* seconds.

    Attributes:
        reason: What tripped it (``"failures"``, ``"failure_rate"``,
            ``"slow_calls"``, ``"half_open_failure"``, ``"manual"``, ``"isolated"``).
        retry_after: Seconds until half-open, or `None` while isolated.
    """

    level: ClassVar[int] = logging.WARNING

    __slots__ = ("reason", "retry_after")

    reason: str
    retry_after: float | None

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        reason: str,
        retry_after: float | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "reason", reason)
        _set(self, "retry_after", retry_after)

    def message(self) -> str:
        until = (
            "until closed or reset"
            if self.retry_after is None
            else f"for {seconds_text(self.retry_after)} s"
        )
        return f"{_label(self)}: circuit opened ({_says(self.reason)}); rejecting calls {until}"


class CircuitHalfOpened(Event):
    """A circuit breaker's open period ended: it admits probe calls."""

    __slots__ = ()

    def message(self) -> str:
        return f"{_label(self)}: circuit half-open"


class CircuitClosed(Event):
    """
    A circuit breaker closed: calls flow again.

    Attributes:
        reason: ``"probes_succeeded"``, ``"manual"`` or ``"reset"``.
    """

    __slots__ = ("reason",)

    reason: str

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        reason: str = "probes_succeeded",
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "reason", reason)

    def message(self) -> str:
        return f"{_label(self)}: circuit closed ({_says(self.reason)})"


class LimitChanged(Event):
    """
    A bulkhead's adaptive limit moved: it now lets *limit* calls run at once.

    Logged at DEBUG: an adaptive limit moves often, by design; count these
    with a `MetricsCollector` or read ``bulkhead.limit`` instead.

    Attributes:
        limit: The new limit.
        previous: The limit before.
        reason: ``"overload"`` when a call failed with an overload (the
            bulkhead's ``overload`` tripped), ``"sample"`` otherwise (latency,
            or a success while the limit was in use).
    """

    level: ClassVar[int] = logging.DEBUG

    __slots__ = ("limit", "previous", "reason")

    limit: int
    previous: int
    reason: str

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        limit: int,
        previous: int,
        reason: str = "sample",
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "limit", limit)
        _set(self, "previous", previous)
        _set(self, "reason", reason)

    def message(self) -> str:
        return f"{_label(self)}: limit {self.previous} -> {self.limit} ({_says(self.reason)})"


class RateLimitWaited(Event):
    """
    A `RateLimiter` made a call wait its turn: it runs after *delay* seconds.

    Logged at DEBUG: pacing calls is what a rate limiter is for; count these
    with a `MetricsCollector` (``rate_waits``).

    Attributes:
        delay: Seconds the call waits before it starts.
        cost: The units it takes.
    """

    level: ClassVar[int] = logging.DEBUG

    __slots__ = ("delay", "cost")

    delay: float
    cost: float

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        delay: float,
        cost: float,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "delay", delay)
        _set(self, "cost", cost)

    def message(self) -> str:
        return f"{_label(self)}: waits {seconds_text(self.delay)} s for {self.cost:g} unit(s)"


class RateChanged(Event):
    """
    An adaptive `RateLimiter` moved its rate: it now lets *rate* units through per window.

    Logged at INFO: emitted when a rate-limit answer lowers the rate (the
    server pushed back) and when successes have raised it back to its full
    rate, not at each step in between.

    Attributes:
        rate: The new rate, units per the limiter's ``per``.
        previous: The rate before.
        reason: ``"rate_limit"``: a call's outcome was a rate-limit answer
            (a 429); ``"recovered"``: successes raised it back to its full rate.
    """

    __slots__ = ("rate", "previous", "reason")

    rate: float
    previous: float
    reason: str

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        rate: float,
        previous: float,
        reason: str,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "rate", rate)
        _set(self, "previous", previous)
        _set(self, "reason", reason)

    def message(self) -> str:
        return (
            f"{_label(self)}: rate {self.previous:.6g} -> {self.rate:.6g} per window "
            f"({self.reason})"
        )


class FallbackUsed(Event):
    """
    A `Fallback` answered instead of the call: the caller gets the fallback's value.

    Logged at INFO: the caller got an answer, but not the one it asked for.

    Attributes:
        error: The failure the fallback replaced; `None` when it replaced a
            refused result.
        kind: The classifier's kind of that failure (``"rate_limit"``, ...), if any.
    """

    __slots__ = ("error", "kind")

    error: BaseException | None
    kind: str | None

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        error: BaseException | None = None,
        kind: str | None = None,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "error", error)
        _set(self, "kind", kind)

    def message(self) -> str:
        what = "a refused result" if self.error is None else type(self.error).__name__
        return f"{_label(self)}: fallback used instead of {what}"


class HedgeStarted(Event):
    """
    A `Hedge` started another copy of a call still running after *delay* seconds.

    Logged at DEBUG: hedging is routine; count these with a `MetricsCollector`.

    Attributes:
        hedge: Which copy this is: 1 for the first hedge (the call itself is 0).
        delay: Seconds the hedge waited before starting it.
    """

    level: ClassVar[int] = logging.DEBUG

    __slots__ = ("hedge", "delay")

    hedge: int
    delay: float

    def __init__(
        self,
        *,
        name: str | None = None,
        target: str | None = None,
        hedge: int,
        delay: float,
    ) -> None:
        _set(self, "name", name)
        _set(self, "target", target)
        _set(self, "hedge", hedge)
        _set(self, "delay", delay)

    def message(self) -> str:
        return f"{_label(self)}: hedge {self.hedge} started after {seconds_text(self.delay)} s"


# Whether anyone reads a record of the ``resilience`` logger: a cache of the
# handlers it meets. A record reaches the handlers of this logger and, while
# ``propagate`` holds, of its parents; with none at all, Python's last-resort
# handler prints it. Only `logging.NullHandler` instances read nothing. What
# was found is kept with copies of the handler lists it was found in (this
# logger's and the root's) and trusted while they compare equal, a few
# identity checks; levels are asked of logging's own isEnabledFor cache,
# which logging clears itself. One tuple, replaced whole: (this logger's
# handlers, the root's, propagate, a handler of any kind found, a handler
# that is not a NullHandler found).
_audience: tuple[list[logging.Handler] | None, list[logging.Handler] | None, bool, bool, bool] = (
    None,
    None,
    True,
    False,
    False,
)


def _scan() -> tuple[bool, bool]:
    found = real = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            found = True
            if type(handler) is not logging.NullHandler:
                real = True
        if not current.propagate:
            break
        current = current.parent
    return found, real


def heard(level: int) -> bool:
    """
    Return whether a record at *level* from the ``resilience`` logger reaches a handler
    that writes somewhere (not a `logging.NullHandler`): what `log_event` would log.

    Cheap: the logger's own level cache, and identity checks of the handler lists.
    """
    if logger.disabled:
        return False
    try:  # logging's own cache of isEnabledFor, cleared by logging on any level change
        enabled = logger._cache[level]  # type: ignore[attr-defined]
    except (KeyError, AttributeError):
        enabled = logger.isEnabledFor(level)
    if not enabled:
        return False
    global _audience
    root = logging.root
    mine, roots, propagate, found, real = _audience
    if not (
        logger.handlers == mine
        and root.handlers == roots
        and logger.propagate is propagate
        and logger.parent is root
    ):
        found, real = _scan()
        if logger.parent is root:  # else a hand-made hierarchy: no cache
            _audience = (
                list(logger.handlers),
                list(root.handlers),
                logger.propagate,
                found,
                real,
            )
    if real:
        return True
    last = logging.lastResort
    return not found and last is not None and level >= last.level


def log_event(event: Event, /) -> None:
    """
    Log *event* to the ``resilience`` logger: the default global hook.

    Levels (each event class's ``level``): WARNING when a policy gives up,
    refuses a call or changes state in a way callers will feel
    (`RetriesExhausted`, `CallRejected`, `CircuitOpened`); INFO for failures a
    policy handled and for recoveries (`RetryScheduled`, `TimeoutExpired`,
    `CircuitHalfOpened`, `CircuitClosed`). Fields go to ``extra`` under
    stable ``resilience_*`` names (see `Event.fields`). No record is made
    below the logger's level. The library never configures logging: no
    handler, no level.
    """
    level = type(event).level
    if heard(level):
        logger.log(level, "%s", event.message(), extra=event.fields())


class _Registry:
    """Global hooks: a tuple swapped under a lock, read without one."""

    __slots__ = ("hooks", "lock", "logs_only")

    def __init__(self) -> None:
        self.hooks: tuple[Hook, ...] = (log_event,)
        self.lock = fork_safe_lock()
        # Whether the hooks are `log_event` alone: then an event is built only
        # if its record would reach a handler (`heard`).
        self.logs_only = True

    def swap(self, hooks: tuple[Hook, ...]) -> tuple[Hook, ...]:
        """Install *hooks*; return the previous ones. Called with `lock` held."""
        old, self.hooks = self.hooks, hooks
        self.logs_only = len(hooks) == 1 and hooks[0] is log_event
        return old


_registry = _Registry()


def get_hooks() -> tuple[Hook, ...]:
    """Return the global hooks, in call order."""
    return _registry.hooks


def set_hooks(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    """
    Replace the global hooks (the default is ``(log_event,)``).

    Returns:
        The previous hooks, so they can be restored.

    Raises:
        TypeError: If *hooks* is not an iterable, or a hook is not callable.
    """
    try:
        new = tuple(hooks)
    except TypeError:
        raise TypeError(
            f"hooks must be an iterable of callables taking an event, got {_safe_repr(hooks)}"
        ) from None
    for hook in new:
        if not callable(hook):
            raise TypeError(f"hooks must be callables taking an event, got {hook!r}")
    with _registry.lock:
        return _registry.swap(new)


def add_hook(hook: Hook) -> None:
    """Add a global hook, called for every event of every policy."""
    if not callable(hook):
        raise TypeError(f"hook must be a callable taking an event, got {hook!r}")
    with _registry.lock:
        _registry.swap((*_registry.hooks, hook))


def remove_hook(hook: Hook) -> None:
    """
    Remove a global hook added with `add_hook`.

    Raises:
        ValueError: If *hook* is not installed.
    """
    with _registry.lock:
        hooks = list(_registry.hooks)
        if hook not in hooks:
            raise ValueError(f"hook {hook!r} is not installed")
        hooks.remove(hook)
        _registry.swap(tuple(hooks))


E = TypeVar("E", bound=Event)


def listening(local: tuple[Hook, ...], cls: type[Event], /) -> bool:
    """
    Return whether an event of type *cls* would reach anyone: a hook of the policy's
    own (*local*), a global hook other than `log_event`, or a logging handler.

    `emit` asks it first; a caller whose event fields cost something to compute
    (a name, a clock read) asks it before computing them.
    """
    if local:
        return True
    registry = _registry
    if registry.logs_only:
        return heard(cls.level)
    return bool(registry.hooks)


def emit(local: tuple[Hook, ...], cls: type[E], /, **fields: Any) -> None:
    """
    Build an event of type *cls* and deliver it, if anyone listens.

    Policy-local hooks run first, then the global ones. A hook that raises is
    logged at ERROR and otherwise ignored (see `log_ignored`: the record
    carries the hook's own failure, redacted, with its traceback, but not the
    caller's exception that the hook may have been raised while handling).
    """
    if not local:
        registry = _registry
        if registry.logs_only:
            if not heard(cls.level):
                return
        elif not registry.hooks:
            return
    glob = _registry.hooks
    event = cls(**fields)
    handling = sys.exception()  # the caller's failure, if emitted while handling one
    for hook in (*local, *glob) if local else glob:
        try:
            hook(event)
        except Exception as exc:
            log_ignored(
                exc,
                "resilience: hook %s raised on %s; ignored: %s",
                _safe_repr(hook),
                cls.__name__,
                _describe_error(exc),
                outer=(handling, *fields.values()),
            )


for _cls in (
    Event,
    RetryScheduled,
    RetriesExhausted,
    TimeoutExpired,
    CallRejected,
    CircuitOpened,
    CircuitHalfOpened,
    CircuitClosed,
    LimitChanged,
    RateLimitWaited,
    RateChanged,
    FallbackUsed,
    HedgeStarted,
):
    _cls.__module__ = "resilience"
