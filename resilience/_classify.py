"""
Error classification: what an outcome *is*, decided once for every policy.

An `ErrorClassifier` is an ordered list of `Rule` objects; the first rule that
matches an outcome (a raised exception or a returned result) decides its
`Verdict`: whether Retry should try again (``retry``), whether a circuit
breaker counts it as a failure (``trip``), a label (``kind``), and the HTTP
status and Retry-After read from the outcome. Policies act on verdicts; they
never inspect exceptions themselves, so a Retry and a breaker that share a
classifier cannot disagree.

HTTP details are read by duck typing (`status_of`, `retry_after_of`) from the
exceptions and responses of requests, httpx, aiohttp, urllib, openai and
litellm, none of which is ever imported here.
"""

from __future__ import annotations

import math
import re
import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, final

import attrs

__all__ = [
    "SUCCESS",
    "ErrorClassifier",
    "Rule",
    "Verdict",
    "parse_retry_after",
    "retry_after_of",
    "status_of",
    "to_classifier",
    "transient",
]


# --- verdicts --------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class Verdict:
    """
    What a classifier decided about one outcome.

    Verdicts are built on failure paths only (a result that nothing matched
    and that carries no HTTP details is the shared `SUCCESS` verdict), so they
    do no validation.

    Attributes:
        retry: Whether the outcome is worth another attempt. Retry acts on it.
            Default: ``False``.
        trip: Whether a circuit breaker counts the outcome as a failure.
            Default: ``False``.
        kind: A label from the matching rule (``"timeout"``, ``"network"``,
            ``"rate_limit"``, ``"server"``, ``"client"``, ...), or ``None``.
        status: The HTTP status carried by the outcome (100..599), or ``None``.
        retry_after: Seconds the server asked to wait before the next attempt
            (from ``retry-after-ms``, ``Retry-After`` or a ``.retry_after``
            attribute), never negative, or ``None``.
    """

    retry: bool = False
    trip: bool = False
    kind: str | None = None
    status: int | None = None
    retry_after: float | None = None


SUCCESS: Final = Verdict()
"""The verdict of an outcome that no rule matched and that carries no status
nor Retry-After: nothing to act on. Shared, so the success path allocates nothing."""

# Verdicts of unmatched outcomes that carry only a status (a 200 response),
# made once per status: classifying results on the success path allocates nothing.
_UNMATCHED_BY_STATUS: dict[int, Verdict] = {}


def _unmatched(status: int | None, retry_after: float | None) -> Verdict:
    if retry_after is None:
        if status is None:
            return SUCCESS
        verdict = _UNMATCHED_BY_STATUS.get(status)
        if verdict is None:
            verdict = _UNMATCHED_BY_STATUS.setdefault(status, Verdict(status=status))
        return verdict
    return Verdict(status=status, retry_after=retry_after)


# --- duck-typed readers ------------------------------------------------------


def _as_status(value: object) -> int | None:
    if type(value) is int:
        return value if 100 <= value <= 599 else None
    # int subclasses such as http.HTTPStatus count; bool does not.
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return int(value)
    return None


def status_of(obj: object) -> int | None:
    """
    Return the HTTP status carried by an exception or a response, or ``None``.

    Looked up, in order: ``obj.status_code`` (requests and httpx responses,
    openai and litellm errors), ``obj.response.status_code`` (requests'
    ``HTTPError``, httpx's ``HTTPStatusError``), ``obj.status`` (aiohttp's
    ``ClientResponseError`` and ``ClientResponse``, urllib's ``HTTPError`` and
    ``HTTPResponse``). Only real integers from 100 to 599 count (``bool`` does
    not); ``.code`` is deliberately not read, as unrelated exceptions use it
    for other things and urllib's ``HTTPError`` has ``.status`` too.

    Args:
        obj: Anything: an exception, a response, any result.

    Returns:
        The status, or ``None`` when *obj* carries none (or reading it failed).
    """
    try:
        status = _as_status(getattr(obj, "status_code", None))
        if status is not None:
            return status
        response = getattr(obj, "response", None)
        if response is not None:
            status = _as_status(getattr(response, "status_code", None))
            if status is not None:
                return status
        return _as_status(getattr(obj, "status", None))
    except Exception:  # a property that raises means "no status", not a crash
        return None


_SECONDS = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_NON_NEGATIVE_SECONDS = re.compile(r"\+?(?:\d+(?:\.\d*)?|\.\d+)")


def _seconds(value: object, scale: float = 1.0) -> float | None:
    """Parse a delay in units of *scale* seconds; ``None`` if it is not a finite number."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        value = value.strip()
        if not _SECONDS.fullmatch(value):
            return None
        number = float(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        return None
    if not math.isfinite(number):
        return None
    return max(0.0, number * scale)


def _largest_seconds(value: str, scale: float = 1.0) -> float | None:
    """
    Parse header values joined with commas (``"2, 7"``): the largest, in units of *scale*.

    HTTP clients join repeated headers so. Every part must be a non-negative
    finite number, else ``None``: a wait is a floor, so the longest one holds.
    """
    if "," not in value:
        return None
    largest = 0.0
    for part in value.split(","):
        part = part.strip()
        if not _NON_NEGATIVE_SECONDS.fullmatch(part):
            return None
        number = float(part)
        if not math.isfinite(number):
            return None
        largest = max(largest, number)
    return largest * scale


def parse_retry_after(value: str) -> float | None:
    """
    Parse a ``Retry-After`` header value into seconds from now.

    Args:
        value: Delay seconds (``"5"``, fractional ``"1.5"`` accepted) or an
            HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``). Several delays
            joined with commas (``"2, 7"``, what requests and httpx make of two
            ``Retry-After`` headers) give the largest, provided every one of
            them is a non-negative number of seconds.

    Returns:
        Seconds to wait: negative delays and dates in the past give ``0.0``;
        ``None`` when *value* is neither a finite number, a date, nor a list
        of non-negative numbers.
    """
    seconds = _seconds(value)
    if seconds is not None or not isinstance(value, str) or not value.strip():
        return seconds
    # No HTTP-date is made of numbers only: no need to try one first.
    seconds = _largest_seconds(value)
    if seconds is not None:
        return seconds
    # HTTP-dates are rare: import the date parser only when one shows up.
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value.strip())
        if when.tzinfo is None:  # "-0000" means UTC without saying so
            from datetime import UTC

            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, delay)


# Plain dicts are case-sensitive: they are tried under the usual spellings
# first. The header containers of requests, httpx, urllib and aiohttp look
# names up case-insensitively. Any Mapping that misses is then scanned.
_MS_NAMES = ("retry-after-ms", "Retry-After-Ms", "Retry-After-MS", "RETRY-AFTER-MS")
_SECONDS_NAMES = ("retry-after", "Retry-After", "RETRY-AFTER")


def _header(headers: Any, names: tuple[str, ...]) -> object:
    """Return the value of the header *names[0]* (lower case) in *headers*, or ``None``."""
    if isinstance(headers, dict):
        for name in names:
            value = headers.get(name)
            if value is not None:
                return value
    else:
        value = headers.get(names[0])
        if value is not None or not isinstance(headers, Mapping):
            return value
    # Not under the usual spellings (a "Retry-after" in a dict, a case-sensitive
    # Mapping): compare every name case-insensitively. Failure paths only.
    wanted = names[0]
    for key, value in headers.items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(key, str) and key.lower() == wanted and value is not None:
            return value
    return None


def _header_seconds(value: object, scale: float) -> float | None:
    """A header's delay in units of *scale* seconds: a number, or numbers joined by commas."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    seconds = _seconds(value, scale)
    if seconds is None and isinstance(value, str):
        return _largest_seconds(value, scale)
    return seconds


def retry_after_of(obj: object) -> float | None:
    """
    Return the delay, in seconds, that an outcome asks for before a retry, or ``None``.

    Looked up, in order: a numeric ``obj.retry_after`` attribute (our
    `CircuitOpenError`, the profile's ``RateLimitError``), then the headers in
    ``obj.headers`` or else ``obj.response.headers``, where
    ``retry-after-ms`` (milliseconds, sent by OpenAI-style APIs) takes
    precedence over ``Retry-After`` (seconds or an HTTP-date, see
    `parse_retry_after`). Header names are matched case-insensitively, in
    plain dicts and any other `Mapping` too. A header repeated and joined
    with commas (``"2, 7"``) gives its largest delay.

    Args:
        obj: Anything: an exception, a response, any result.

    Returns:
        Seconds, never negative, or ``None`` when *obj* says nothing usable.
    """
    try:
        attribute = getattr(obj, "retry_after", None)
        if isinstance(attribute, int | float) and not isinstance(attribute, bool):
            seconds = _seconds(attribute)
            if seconds is not None:
                return seconds
        headers = getattr(obj, "headers", None)
        if headers is None:
            response = getattr(obj, "response", None)
            if response is None:
                return None
            headers = getattr(response, "headers", None)
            if headers is None:
                return None
        seconds = _header_seconds(_header(headers, _MS_NAMES), 0.001)
        if seconds is not None:
            return seconds
        value = _header(headers, _SECONDS_NAMES)
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return parse_retry_after(value) if isinstance(value, str) else _seconds(value)
    except Exception:  # odd header containers mean "no Retry-After", not a crash
        return None


# Names an exception must have for `status_of` or `retry_after_of` to find anything.
_HTTP_NAMES: Final = frozenset({"status_code", "response", "status", "retry_after", "headers"})

# Per exception type: whether its instances carry HTTP details only through
# their own __dict__ (True: no class in the MRO defines one of _HTTP_NAMES nor a
# custom __getattr__/__getattribute__). Bounded: a race or a full table only
# costs a lookup.
_PLAIN_TYPES_SEEN: dict[type, bool] = {}


def _plain_type(cls: type) -> bool:
    plain = _PLAIN_TYPES_SEEN.get(cls)
    if plain is None:
        plain = True
        for klass in cls.__mro__:
            names = klass.__dict__
            custom = "__getattribute__" in names and klass not in (object, BaseException)
            if custom or "__getattr__" in names or not _HTTP_NAMES.isdisjoint(names):
                plain = False
        if len(_PLAIN_TYPES_SEEN) < 1024:
            _PLAIN_TYPES_SEEN[cls] = plain
    return plain


def _response_text(obj: object) -> str | None:
    # httpx raises ResponseNotRead for an unread stream, requests RuntimeError
    # for a consumed one: either way there is no text to match.
    try:
        text = getattr(obj, "text", None)
    except Exception:
        return None
    return text if isinstance(text, str) else None


def _exception_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ has no text to match
        return ""


# --- rules -------------------------------------------------------------------


def _type_name(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _to_exception_types(
    value: type[BaseException] | tuple[type[BaseException], ...] | None,
    name: str = "exception",
) -> tuple[type[Exception], ...] | None:
    """Check and normalize exception types; errors name the parameter *name*."""
    if value is None:
        return None
    types = value if isinstance(value, tuple) else (value,)
    if not types:
        raise ValueError(f"{name} must name at least one exception type, got ()")
    result: list[type[Exception]] = []
    for cls in types:
        if not isinstance(cls, type) or not issubclass(cls, BaseException):
            raise TypeError(
                f"{name} must be an exception type or a tuple of them, "
                f"got {type(cls).__name__}: {cls!r}"
            )
        if not issubclass(cls, Exception):
            raise ValueError(
                f"{name} must be Exception subclasses, got {_type_name(cls)}: "
                "it is a BaseException that is never classified (cancellation and "
                "interpreter exits always pass through untouched)"
            )
        result.append(cls)
    return tuple(result)


def _check_status(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"status must be an int, got {type(value).__name__}: {value!r}")
    if not 100 <= value <= 599:
        raise ValueError(f"status must be an HTTP status from 100 to 599, got {value}")
    return int(value)


def _to_status(value: int | Iterable[int] | None) -> int | range | tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, range):
        if not value:
            raise ValueError(f"status must not be an empty range, got {value!r}")
        _check_status(value[0])
        _check_status(value[-1])
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return _check_status(value)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"status must be an int, an iterable of ints or a range, "
            f"got {type(value).__name__}: {value!r}"
        )
    statuses = tuple(sorted({_check_status(item) for item in value}))
    if not statuses:
        raise ValueError("status must name at least one status, got an empty iterable")
    return statuses


def _check_message(rule: Rule, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, str):
        if not value:
            raise ValueError("message must not be empty: it would match every outcome")
        return
    if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
        return
    raise TypeError(
        f"message must be a str or a compiled str pattern, got {type(value).__name__}: {value!r}"
    )


def _check_when(rule: Rule, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"when must be a callable predicate, got {type(value).__name__}")


def _check_bool(rule: Rule, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool, got {type(value).__name__}: {value!r}")


def _check_kind(rule: Rule, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"kind must be a str or None, got {type(value).__name__}: {value!r}")


@final
@attrs.frozen(kw_only=True, repr=False)
class Rule:
    """
    One line of an `ErrorClassifier`: conditions on an outcome, and the verdict when they hold.

    Every condition given must hold (they are ANDed); at least one is required.
    ``rule | other`` (a rule or a classifier) is an `ErrorClassifier` trying
    *rule* first. Rules are immutable, hashable and compare by value.

    Args:
        exception: An exception type or a tuple of them (stored as a tuple); matches raised
            exceptions that are instances, never results. Only `Exception`
            subclasses: cancellation and interpreter exits are never classified.
        status: An HTTP status, an iterable of them, or a ``range`` (such as
            ``range(500, 600)``); matches exceptions that carry a status and
            results that are responses (see `status_of`). An iterable is stored
            as a sorted tuple.
        message: A substring, or a compiled regex (``search``), of ``str(exc)``
            for an exception, or of the text body (``.text``) for a response
            result. Matching a response's text reads its body.
        when: A predicate called with the outcome (the exception, or the
            result); truthy means it matches. Called last, only when the other
            conditions hold. Whatever it raises propagates out of
            `ErrorClassifier.classify`: nothing is swallowed.
        retry: The verdict's ``retry``. Default: ``True``.
        trip: The verdict's ``trip``. Default: ``True``.
        kind: The verdict's ``kind``, a free label. Default: ``None``.

    Raises:
        ValueError: If no condition is given, *exception* names a
            BaseException that is not an Exception, or a status is outside
            100..599.
        TypeError: If a parameter has the wrong type.
    """

    exception: tuple[type[Exception], ...] | None = attrs.field(
        default=None, converter=_to_exception_types
    )
    status: int | range | tuple[int, ...] | None = attrs.field(default=None, converter=_to_status)
    message: str | re.Pattern[str] | None = attrs.field(default=None, validator=_check_message)
    when: Callable[[Any], object] | None = attrs.field(default=None, validator=_check_when)
    retry: bool = attrs.field(default=True, validator=_check_bool)
    trip: bool = attrs.field(default=True, validator=_check_bool)
    kind: str | None = attrs.field(default=None, validator=_check_kind)
    # Precomputed at construction for classify(): a container to test the
    # status against, and the verdict when the outcome carries no HTTP details.
    _statuses: frozenset[int] | range | None = attrs.field(init=False, eq=False)
    _verdict: Verdict = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if (
            self.exception is None
            and self.status is None
            and self.message is None
            and self.when is None
        ):
            raise ValueError(
                "Rule needs at least one condition: exception=, status=, message= or when="
            )
        status = self.status
        statuses: frozenset[int] | range | None
        if status is None or isinstance(status, range):
            statuses = status
        elif isinstance(status, int):
            statuses = frozenset((status,))
        else:
            statuses = frozenset(status)
        object.__setattr__(self, "_statuses", statuses)
        object.__setattr__(
            self, "_verdict", Verdict(retry=self.retry, trip=self.trip, kind=self.kind)
        )

    def __or__(self, other: Rule | ErrorClassifier) -> ErrorClassifier:
        """Return a classifier trying this rule, then *other*."""
        if isinstance(other, Rule):
            return ErrorClassifier((self, other))
        if isinstance(other, ErrorClassifier):
            return ErrorClassifier((self, *other.rules))
        return NotImplemented

    def __repr__(self) -> str:
        parts: list[str] = []
        if self.exception is not None:
            names = [_type_name(cls) for cls in self.exception]
            parts.append(
                f"exception={names[0]}" if len(names) == 1 else f"exception=({', '.join(names)})"
            )
        if self.status is not None:
            parts.append(f"status={self.status!r}")
        if self.message is not None:
            parts.append(f"message={self.message!r}")
        if self.when is not None:
            when = self.when
            name = when.__qualname__ if isinstance(when, types.FunctionType) else repr(when)
            parts.append(f"when={name}")
        if not self.retry:
            parts.append("retry=False")
        if not self.trip:
            parts.append("trip=False")
        if self.kind is not None:
            parts.append(f"kind={self.kind!r}")
        return f"Rule({', '.join(parts)})"


# --- classifiers ---------------------------------------------------------------


class _TypeVerdicts(dict[type, "Verdict | None"]):
    """A classifier's cache of verdicts by exception type: a copy or a pickle starts empty."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_TypeVerdicts, ())


def _to_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    value: object = rules  # checked at runtime, whatever the annotation says
    if isinstance(value, Rule):
        raise TypeError("rules must be an iterable of Rule; wrap a single rule in a list")
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"rules must be an iterable of Rule, got {type(value).__name__}")
    result = tuple(value)
    for position, rule in enumerate(result):
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rules must contain only Rule objects, got {type(rule).__name__} "
                f"at position {position}: {rule!r}"
            )
    return result


@final
@attrs.frozen(repr=False)
class ErrorClassifier:
    """
    An ordered list of rules deciding what an outcome is; the first rule that matches wins.

    Immutable and stateless: share one between a Retry and a CircuitBreaker,
    threads and tasks. ``a | b`` is a classifier trying *a*'s rules, then *b*'s.

    Args:
        rules: The `Rule` objects, in the order they are tried. An empty list
            classifies nothing (every verdict says: do not retry, do not trip).

    Raises:
        TypeError: If *rules* is not an iterable of `Rule`.

    Attributes:
        rules: The rules, as a tuple.
        handles_results: Whether some rule can match a returned result, that is
            a rule without ``exception=``. When ``False``, policies skip
            classifying results altogether.
    """

    rules: tuple[Rule, ...] = attrs.field(converter=_to_rules)
    handles_results: bool = attrs.field(init=False, eq=False)
    # The rules that can match a result (those without exception=), in order.
    _result_rules: tuple[Rule, ...] = attrs.field(init=False, eq=False)
    # Verdicts by exception type, for exceptions that carry no HTTP details, when
    # every rule decides by type alone (no message=, no predicate but the
    # builtin third-party ones; a status= cannot match such an exception).
    # None when a rule looks at more than the type.
    _by_type: _TypeVerdicts | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        result_rules = tuple(rule for rule in self.rules if rule.exception is None)
        object.__setattr__(self, "_result_rules", result_rules)
        object.__setattr__(self, "handles_results", bool(result_rules))
        by_type = all(
            rule.message is None and (rule.when is None or type(rule.when) is _ThirdParty)
            for rule in self.rules
        )
        object.__setattr__(self, "_by_type", _TypeVerdicts() if by_type else None)

    def classify(self, outcome: object) -> Verdict:
        """
        Decide what *outcome* is.

        An `Exception` instance is a raised exception; anything else is a
        returned result, except a BaseException that is not an Exception
        (cancellation, interpreter exit), which is never classified and gets
        `SUCCESS`. The first matching rule gives ``retry``, ``trip`` and
        ``kind``; ``status`` and ``retry_after`` are read from the outcome
        whether a rule matched or not, with one exception that keeps the
        success path cheap: the Retry-After of a 1xx/2xx result that no rule
        matched is not read (it is ``None``), since nothing acts on it.

        Args:
            outcome: The exception raised, or the result returned, by an attempt.

        Returns:
            The verdict. When no rule matches: ``retry=False, trip=False,
            kind=None`` (a result nothing matched is a success).

        Raises:
            Exception: Whatever a rule's ``when`` predicate raises, unchanged.
        """
        if isinstance(outcome, Exception):
            global _last
            last = _last
            if last is not None and last[0] is outcome and last[1] is self:
                _last = None  # read once: the slot keeps no exception alive longer
                return last[2]
            cls = type(outcome)
            plain = _PLAIN_TYPES_SEEN.get(cls)
            if plain is None:
                plain = _plain_type(cls)
            # Its own attributes, usually none (or __notes__), may still carry some.
            own = outcome.__dict__
            http = not plain or (bool(own) and not _HTTP_NAMES.isdisjoint(own))
            by_type = self._by_type
            if by_type is not None and not http:
                verdict = by_type.get(cls)
                if verdict is not None:
                    return verdict
            status = status_of(outcome) if http else None
            text: str | None = None
            for rule in self.rules:
                types = rule.exception
                if types is not None and not isinstance(outcome, types):
                    continue
                statuses = rule._statuses
                if statuses is not None and (status is None or status not in statuses):
                    continue
                message = rule.message
                if message is not None:
                    if text is None:
                        text = _exception_text(outcome)
                    if isinstance(message, str):
                        if message not in text:
                            continue
                    elif message.search(text) is None:
                        continue
                when = rule.when
                if when is not None and not when(outcome):
                    continue
                verdict = rule._verdict
                if http:
                    verdict = _matched(verdict, status, retry_after_of(outcome))
                break
            else:
                verdict = _unmatched(status, retry_after_of(outcome)) if http else SUCCESS
            if by_type is not None and not http and len(by_type) < 256:
                by_type[cls] = verdict  # decided by the type alone (bounded)
            _last = (outcome, self, verdict)
            return verdict
        if isinstance(outcome, BaseException):
            return SUCCESS
        return self._classify_result(outcome)

    def _classify_result(self, outcome: object) -> Verdict:
        # Exact builtins (None, int, str, dict, ...) carry no HTTP details.
        plain = type(outcome) in _PLAIN_TYPES
        status = None if plain else status_of(outcome)
        body: str | None = None
        body_read = plain
        for rule in self._result_rules:
            statuses = rule._statuses
            if statuses is not None and (status is None or status not in statuses):
                continue
            message = rule.message
            if message is not None:
                if not body_read:
                    body = _response_text(outcome)
                    body_read = True
                if body is None:
                    continue
                if isinstance(message, str):
                    if message not in body:
                        continue
                elif message.search(body) is None:
                    continue
            when = rule.when
            if when is not None and not when(outcome):
                continue
            return _matched(rule._verdict, status, None if plain else retry_after_of(outcome))
        if plain or (status is not None and status < 300):
            # The success path: nothing acts on the Retry-After of a 1xx/2xx
            # result that no rule matched, and reading headers (httpx looks
            # names up by scanning) would cost more than all the rest.
            return _unmatched(status, None)
        return _unmatched(status, retry_after_of(outcome))

    def __or__(self, other: ErrorClassifier | Rule) -> ErrorClassifier:
        """Return a classifier trying these rules, then *other*'s."""
        if isinstance(other, ErrorClassifier):
            return ErrorClassifier(self.rules + other.rules)
        if isinstance(other, Rule):
            return ErrorClassifier((*self.rules, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"ErrorClassifier([{', '.join(map(repr, self.rules))}])"


_PLAIN_TYPES: Final = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        list,
        tuple,
        dict,
        set,
        frozenset,
    }
)


_last: tuple[Exception, ErrorClassifier, Verdict] | None = None
"""
The last exception classified, by which classifier, and its verdict: a stack of
Retry and CircuitBreaker sharing one classifier classifies each failure once
(the inner policy classifies it, the outer one reads the verdict here). Read
once, then emptied; replaced by every classification, in any thread (a
replaced entry only means classifying again): it holds at most one exception.
"""


def _matched(verdict: Verdict, status: int | None, retry_after: float | None) -> Verdict:
    if status is None and retry_after is None:
        return verdict
    return Verdict(
        retry=verdict.retry,
        trip=verdict.trip,
        kind=verdict.kind,
        status=status,
        retry_after=retry_after,
    )


_ON_TYPES = "an ErrorClassifier, an exception type or tuple of them, a Rule, or a predicate"


@final
class _Required:
    """The default of a required ``on=`` at run time: `to_classifier` says what to pass."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final[Mapping[str, Any]] = types.MappingProxyType({"default": _Required()})
"""``attrs.field(converter=to_classifier, **REQUIRED)``: a policy's required ``on``.

Left out, ``on`` gets this default at run time, which `to_classifier` refuses
with its own message instead of Python's "missing 1 required keyword-only
argument". Type checkers see no ``default=`` in the call, so ``on`` stays
required for them."""


def to_classifier(on: object, name: str = "on") -> ErrorClassifier:
    """
    Convert a policy's ``on=`` argument to an `ErrorClassifier`.

    An `ErrorClassifier` is returned as is; a `Rule` becomes a classifier of
    that rule; an exception type or a tuple of them becomes
    ``Rule(exception=on)``; any other callable is a predicate over raised
    exceptions, ``Rule(exception=Exception, when=on)`` (a plain predicate
    never sees results).

    Args:
        on: What to handle.
        name: The parameter, as the caller spells it, for the errors. Default: ``"on"``.

    Returns:
        The classifier.

    Raises:
        TypeError: If *on* is none of the above (``None`` included: there is
            no "handle everything" default).
        ValueError: If an exception type is a BaseException that is not an
            Exception (see `Rule`).
    """
    if isinstance(on, ErrorClassifier):
        return on
    if isinstance(on, Rule):
        return ErrorClassifier((on,))
    if isinstance(on, type):
        if issubclass(on, BaseException):
            return ErrorClassifier((Rule(exception=_to_exception_types(on, name)),))
        raise TypeError(f"{name} must be {_ON_TYPES}; got the type {on.__name__}, not an exception")
    if isinstance(on, tuple):
        for item in on:
            if not isinstance(item, type) or not issubclass(item, BaseException):
                raise TypeError(
                    f"{name} must be {_ON_TYPES}; "
                    f"got a tuple holding {type(item).__name__}: {item!r}"
                )
        return ErrorClassifier((Rule(exception=_to_exception_types(on, name)),))
    if on is None or isinstance(on, _Required):
        got = "None" if on is None else "nothing"
        raise TypeError(
            f"{name} must be {_ON_TYPES}; got {got} (there is no default: say what is "
            f"worth handling, for example {name}=resilience.transient)"
        )
    if callable(on):
        return ErrorClassifier((Rule(exception=Exception, when=on),))
    raise TypeError(f"{name} must be {_ON_TYPES}; got {type(on).__name__}: {on!r}")


# --- transient -----------------------------------------------------------------

# Connection and timeout exceptions of HTTP clients that we never import,
# recognised by (top-level package, class name) anywhere in an exception's MRO.
# The package is part of the key so that an unrelated class called
# "ConnectionError" or "Timeout" does not match. Subclasses are covered.
_THIRD_PARTY_ROWS: Final = (
    # package, class name, kind
    ("requests", "ConnectTimeout", "timeout"),
    ("requests", "ReadTimeout", "timeout"),
    ("requests", "Timeout", "timeout"),
    ("requests", "ConnectionError", "network"),
    ("requests", "ChunkedEncodingError", "network"),
    ("httpx", "TimeoutException", "timeout"),
    ("httpx", "NetworkError", "network"),
    ("httpx", "RemoteProtocolError", "network"),
    ("aiohttp", "ServerTimeoutError", "timeout"),
    ("aiohttp", "ServerDisconnectedError", "network"),
    ("aiohttp", "ClientConnectionError", "network"),
    ("urllib3", "TimeoutError", "timeout"),
    ("urllib3", "ConnectTimeoutError", "timeout"),
    ("urllib3", "ReadTimeoutError", "timeout"),
    ("urllib3", "NewConnectionError", "network"),
    ("urllib3", "ProtocolError", "network"),
    ("openai", "APITimeoutError", "timeout"),
    ("openai", "APIConnectionError", "network"),
)

_THIRD_PARTY: Final[dict[str, dict[str, str]]] = {}
for _package, _name, _kind in _THIRD_PARTY_ROWS:
    _THIRD_PARTY.setdefault(_name, {})[_package] = _kind
del _package, _name, _kind


_KINDS_SEEN: dict[type, str | None] = {}


def _third_party_kind(exc: BaseException) -> str | None:
    """Return the kind of the first class in *exc*'s MRO found in the table, if any."""
    cls = type(exc)
    try:
        return _KINDS_SEEN[cls]
    except KeyError:
        pass
    found = None
    for klass in cls.__mro__:
        by_package = _THIRD_PARTY.get(klass.__name__)
        if by_package is not None:
            found = by_package.get(klass.__module__.partition(".")[0])
            if found is not None:
                break
    if len(_KINDS_SEEN) < 1024:  # a cache, bounded: a race only computes twice
        _KINDS_SEEN[cls] = found
    return found


@final
class _ThirdParty:
    """A predicate: is this a connection or timeout exception of an HTTP client, of *kind*?"""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, exc: BaseException) -> bool:
        return _third_party_kind(exc) == self.kind

    def __repr__(self) -> str:
        return f"<{self.kind} exceptions of requests, httpx, aiohttp, urllib3, openai>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ThirdParty) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash((_ThirdParty, self.kind))


transient: Final = ErrorClassifier(
    [
        Rule(exception=TimeoutError, kind="timeout"),
        Rule(exception=ConnectionError, kind="network"),
        Rule(exception=Exception, when=_ThirdParty("timeout"), kind="timeout"),
        Rule(exception=Exception, when=_ThirdParty("network"), kind="network"),
        Rule(status=408, kind="timeout"),
        Rule(status=429, kind="rate_limit"),
        Rule(status=(500, 502, 503, 504), kind="server"),
    ]
)
"""
Failures that usually go away on their own: retry them, and count them against a breaker.

Every rule says `retry=True, trip=True`; subclasses of the classes named are covered:

| outcome | kind |
| --- | --- |
| builtin `TimeoutError` (`TimeoutExceededError`, `asyncio.TimeoutError`, ...) | `"timeout"` |
| builtin `ConnectionError` (refused, reset, aborted, broken pipe) | `"network"` |
| requests `Timeout` (`ConnectTimeout`, `ReadTimeout`) | `"timeout"` |
| requests `ConnectionError` (`SSLError`, `ProxyError`), `ChunkedEncodingError` | `"network"` |
| httpx `TimeoutException` (connect, read, write and pool timeouts) | `"timeout"` |
| httpx `NetworkError` (`ConnectError`, `ReadError`, ...), `RemoteProtocolError` | `"network"` |
| aiohttp `ServerTimeoutError` | `"timeout"` |
| aiohttp `ClientConnectionError` (`ServerDisconnectedError`, `ClientOSError`, ...) | `"network"` |
| urllib3 `TimeoutError` (`ConnectTimeoutError`, `ReadTimeoutError`) | `"timeout"` |
| urllib3 `NewConnectionError`, `ProtocolError` | `"network"` |
| openai `APITimeoutError` (litellm's `Timeout` too) | `"timeout"` |
| openai `APIConnectionError` (litellm's too) | `"network"` |
| status 408, raised or returned | `"timeout"` |
| status 429, raised or returned | `"rate_limit"` |
| status 500, 502, 503, 504, raised or returned | `"server"` |

Third-party classes are recognised by package and class name anywhere in the
exception's MRO, without importing the library. Nothing else matches: other 4xx
statuses, `RejectedError` and `CircuitOpenError` (retrying a rejection is
opt-in), and cancellation, which is never classified.
"""


for _cls in (Verdict, Rule, ErrorClassifier):
    _cls.__module__ = "resilience"
del _cls
