"""
The profile's classifier (DESIGN.md's table) and the translation of transport errors.

Outcomes come in three forms, and the classifier reads all of them: the
profile's typed exceptions (raised by `raise_for_response` and by the
profile's clients), raw responses returned by a user's own requests/httpx
calls, and raw transport exceptions of requests, urllib3, httpx, httpcore,
aiohttp and the builtins, recognised by package and class name without
importing those libraries.

Whether the request may have reached the server is what separates the rows
"connect error" (always safe to retry) and "read timeout / dropped after
sending" (safe only on idempotent endpoints). It is read from the exception
and its causes: a connect-phase error anywhere in the chain means the request
was never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

import resilience as rs

from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    StreamError,
    redact,
)

__all__ = [
    "LLM_CALL_FAILED",
    "PERMANENT_CAUSES",
    "classifier",
    "is_permanent",
    "translate_exception",
    "transport_kind",
]

PERMANENT_CAUSES: Final = (
    "No provider credentials configured",
    "Provider routing requires organization context",
    "authentication failed",
    "Error code: 400",
    "Error code: 404",
    "No module named",
    "does not support the asynchronous context manager protocol",
)
"""
Causes inside a 500's detail (or a stream's error event) that no retry can fix.

Matched case-insensitively. The last one is the server's broken
``llm-call-stream`` (every call answers 200, then this error event).
"""

LLM_CALL_FAILED: Final = "LLM call failed"
"""
How the server's 500 starts when the provider failed: it already tried up to 9 times.

The server makes 3 attempts, each with the provider SDK's own 3, over 3-9 s,
before it answers ``LLM call failed: 500: ...``. Three more attempts from the
client would make 27 provider requests and 25-31 s per call, and leave 3
failed call rows per llm-call (3 FAILED jobs per create-and-call): the
profile does not retry it (it still counts toward the model's breaker).
"""

_PERMANENT_FOLDED: Final = tuple(cause.casefold() for cause in PERMANENT_CAUSES)


def is_permanent(detail: str | None) -> bool:
    """Return whether a 500's *detail* names a permanent cause (see `PERMANENT_CAUSES`)."""
    if not detail:
        return False
    folded = detail.casefold()
    return any(cause in folded for cause in _PERMANENT_FOLDED)


# --- transport exceptions, by (top-level package, class name) anywhere in the MRO ----------

_CONNECT: Final = frozenset(
    {
        ("requests", "ConnectTimeout"),
        ("urllib3", "NewConnectionError"),
        ("urllib3", "ConnectTimeoutError"),
        ("urllib3", "NameResolutionError"),
        ("httpx", "ConnectError"),
        ("httpx", "ConnectTimeout"),
        ("httpx", "PoolTimeout"),
        ("httpcore", "ConnectError"),
        ("httpcore", "ConnectTimeout"),
        ("httpcore", "PoolTimeout"),
        ("aiohttp", "ClientConnectorError"),
        ("builtins", "ConnectionRefusedError"),
        ("socket", "gaierror"),
    }
)
_TIMEOUT: Final = frozenset(
    {
        ("builtins", "TimeoutError"),
        ("requests", "Timeout"),
        ("urllib3", "TimeoutError"),
        ("httpx", "TimeoutException"),
        ("httpcore", "TimeoutException"),
        ("aiohttp", "ServerTimeoutError"),
        ("openai", "APITimeoutError"),
    }
)
# urllib3 derives "connection refused" from its ConnectTimeoutError: not a timeout.
_NOT_TIMEOUT: Final = frozenset({("urllib3", "NewConnectionError")})
_NETWORK: Final = frozenset(
    {
        ("builtins", "ConnectionError"),
        ("http", "RemoteDisconnected"),
        ("http", "IncompleteRead"),
        ("requests", "ConnectionError"),
        ("requests", "ChunkedEncodingError"),
        ("urllib3", "ProtocolError"),
        ("urllib3", "NewConnectionError"),
        ("httpx", "NetworkError"),
        ("httpx", "RemoteProtocolError"),
        ("httpcore", "NetworkError"),
        ("httpcore", "RemoteProtocolError"),
        ("aiohttp", "ClientConnectionError"),
        ("openai", "APIConnectionError"),
    }
)


def _names(exc: BaseException) -> Iterator[tuple[str, str]]:
    for cls in type(exc).__mro__:
        yield cls.__module__.partition(".")[0], cls.__name__


def _has(exc: BaseException, table: frozenset[tuple[str, str]]) -> bool:
    return any(name in table for name in _names(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """
    *exc* and what it wraps: causes, exception arguments, urllib3's ``reason``.

    Never the implicit ``__context__``: under Retry, a later attempt's error is
    raised while an earlier one is being handled, and that earlier error (a
    refused connection, say) says nothing about this request.
    """
    found: list[BaseException] = []
    todo = [exc]
    seen: set[int] = set()
    while todo and len(found) < 16:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        try:
            reason = getattr(current, "reason", None)
        except Exception:
            reason = None
        for inner in (current.__cause__, reason, *current.args):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return found


def transport_kind(exc: BaseException) -> tuple[str, bool] | None:
    """
    Classify a raw transport exception: ``(kind, request_sent)``, or `None` if it is not one.

    *kind* is ``"timeout"`` or ``"network"``; *request_sent* is `False` only
    when a connect-phase error (refused, DNS, connect or pool timeout) appears
    in the exception or its causes.
    """
    if isinstance(exc, APIError) or not isinstance(exc, Exception):
        return None
    if not (_has(exc, _TIMEOUT) or _has(exc, _NETWORK) or _has(exc, _CONNECT)):
        return None
    chain = _chain(exc)
    sent = not any(_has(inner, _CONNECT) for inner in chain)
    timeout = any(_has(inner, _TIMEOUT) and not _has(inner, _NOT_TIMEOUT) for inner in chain)
    return ("timeout" if timeout else "network"), sent


def _reason(exc: BaseException) -> str:
    text = ""
    for inner in reversed(_chain(exc)):
        try:
            text = str(inner)
        except Exception:
            continue
        if text:
            break
    return redact(text or type(exc).__name__, 160)


def translate_exception(
    exc: BaseException, method: str | None, path: str | None
) -> APIConnectionError | None:
    """
    Return the typed error for a raw transport exception, or `None` when it is not one.

    Connect-phase failures give ``request_sent=False``; read timeouts, drops
    and resets give ``request_sent=True`` (the server may have done the work).
    """
    found = transport_kind(exc)
    if found is None:
        return None
    kind, sent = found
    where = f" ({method} {path})" if method and path else ""
    reason = _reason(exc)
    fields = {"method": method, "path": path, "request_sent": sent}
    if kind == "timeout":
        if sent:
            message = f"no answer in time; the server may still complete the request: {reason}"
        else:
            message = f"timed out before the request was sent: {reason}"
        return APITimeoutError(message + where, **fields)  # type: ignore[arg-type]
    if sent:
        message = f"connection lost before an answer; the request may have been processed: {reason}"
    else:
        message = f"could not connect; the request was not sent: {reason}"
    return APIConnectionError(message + where, **fields)  # type: ignore[arg-type]


# --- predicates ------------------------------------------------------------------------


def _text_of(outcome: object) -> str | None:
    if isinstance(outcome, APIError):
        return outcome.detail
    for source in (outcome, getattr(outcome, "response", None)):
        if source is None:
            continue
        try:
            text = getattr(source, "text", None)
        except Exception:  # an unread httpx stream
            continue
        if isinstance(text, str):
            return text
    return None


def _permanent(outcome: object) -> bool:
    return is_permanent(_text_of(outcome))


def _provider_failed(outcome: object) -> bool:
    text = _text_of(outcome)
    # At the start of a typed error's detail, of a raw JSON body's {"detail": ...}.
    return text is not None and LLM_CALL_FAILED in text[:64]


def _not_sent(exc: object) -> bool:
    return isinstance(exc, APIConnectionError) and not exc.request_sent


# What `explain` and the rules' reprs show for the predicates: what they test, not
# the names of private functions.
_permanent.__qualname__ = "the detail names a permanent cause"
_provider_failed.__qualname__ = f"the detail says {LLM_CALL_FAILED!r}"
_not_sent.__qualname__ = "the request was never sent"


def _raw(kind: str, sent: bool | None) -> Callable[[BaseException], bool]:
    def predicate(exc: BaseException) -> bool:
        found = transport_kind(exc)
        if found is None:
            return False
        if sent is None:
            return found[0] == kind
        return found[1] == sent

    if sent is None:
        predicate.__qualname__ = f"a raw transport {'timeout' if kind == 'timeout' else 'error'}"
    else:
        predicate.__qualname__ = "a raw transport error, never sent"
    return predicate


def _build(retry_ambiguous: bool, *, results: bool = True) -> rs.ErrorClassifier:
    """The table; with *results* false, status rules match exceptions only (see `for_clients`)."""
    raw_not_sent = _raw("any", False)
    on: type[Exception] | None = None if results else Exception
    return rs.ErrorClassifier(
        [
            # After HTTP 200: never retried (the content may have been paid for).
            rs.Rule(exception=StreamError, when=_permanent, retry=False, trip=False, kind="stream"),
            rs.Rule(exception=StreamError, retry=False, kind="stream"),
            # No answer: safe to retry when the request was never sent.
            rs.Rule(exception=APITimeoutError, when=_not_sent, kind="timeout"),
            rs.Rule(exception=APITimeoutError, retry=retry_ambiguous, kind="timeout"),
            rs.Rule(exception=APIConnectionError, when=_not_sent, kind="network"),
            rs.Rule(exception=APIConnectionError, retry=retry_ambiguous, kind="network"),
            # Statuses: typed errors, raw responses, raw HTTPError / HTTPStatusError.
            rs.Rule(status=429, kind="rate_limit", exception=on),
            rs.Rule(
                status=500, when=_permanent, retry=False, trip=False, kind="server", exception=on
            ),
            # The server already tried the provider up to 9 times (see LLM_CALL_FAILED).
            rs.Rule(status=500, when=_provider_failed, retry=False, kind="server", exception=on),
            # Any other 500 of a non-idempotent endpoint is ambiguous: the server may
            # have paid the provider, then failed to store the answer.
            rs.Rule(status=500, retry=retry_ambiguous, kind="server", exception=on),
            rs.Rule(status=503, kind="server", exception=on),
            rs.Rule(status=(502, 504), retry=retry_ambiguous, kind="server", exception=on),
            rs.Rule(status=range(500, 600), retry=False, trip=False, kind="server", exception=on),
            rs.Rule(status=range(400, 500), retry=False, trip=False, kind="client", exception=on),
            # Raw transport exceptions of the user's own calls.
            rs.Rule(exception=Exception, when=raw_not_sent, kind="network"),
            rs.Rule(
                exception=Exception,
                when=_raw("timeout", None),
                retry=retry_ambiguous,
                kind="timeout",
            ),
            rs.Rule(
                exception=Exception,
                when=_raw("network", None),
                retry=retry_ambiguous,
                kind="network",
            ),
        ]
    )


_IDEMPOTENT: Final = _build(True)
_NON_IDEMPOTENT: Final = _build(False)
_CLIENTS: Final = (_build(False, results=False), _build(True, results=False))


def for_clients(idempotent: bool) -> rs.ErrorClassifier:
    """
    The table for the profile's own clients: the same verdicts, never reading a result.

    The clients raise a typed error for every answer >= 400, so what an attempt
    returns is always a success: Retry need not classify it.
    """
    return _CLIENTS[idempotent]


def classifier(idempotent: bool = True) -> rs.ErrorClassifier:
    """
    Return the classifier implementing the profile's retry table.

    The two classifiers differ only in what they retry: on a non-idempotent
    endpoint (an LLM call, create-and-call, the streams), an ambiguous failure
    (a read timeout, a connection dropped after sending, a 500 that is not
    the provider's failure, a 502 or 504 from a gateway) is not retried, as
    the server may have done, and charged for, the work. What trips a
    breaker is the same in both, so one breaker can serve several endpoints.

    | outcome | retry | trip | kind |
    | --- | --- | --- | --- |
    | `StreamError` (failure after HTTP 200) | no | unless permanent | ``"stream"`` |
    | connect error or timeout (never sent) | yes | yes | ``"network"`` / ``"timeout"`` |
    | read timeout, drop after sending | *idempotent* | yes | ``"timeout"`` / ``"network"`` |
    | 429 | yes, Retry-After as a floor | yes | ``"rate_limit"`` |
    | 500 naming a `PERMANENT_CAUSES` entry | no | no | ``"server"`` |
    | 500 ``LLM call failed: ...`` (see `LLM_CALL_FAILED`) | no | yes | ``"server"`` |
    | other 500 | *idempotent* | yes | ``"server"`` |
    | 503 | yes | yes | ``"server"`` |
    | 502, 504 | *idempotent* | yes | ``"server"`` |
    | other 5xx | no | no | ``"server"`` |
    | 4xx | no | no | ``"client"`` |

    Statuses are read from the typed exceptions, from raw requests/httpx
    responses (a returned result) and from their ``HTTPError`` /
    ``HTTPStatusError``; transport errors from the typed exceptions and from
    the raw ones of requests, urllib3, httpx, httpcore, aiohttp and the
    builtins. Anything else, `resilience.CircuitOpenError` included, is
    neither retried nor counted.

    Args:
        idempotent: Whether the endpoint may repeat an ambiguous request.
            Default: `True`.

    Returns:
        One of two shared, immutable `resilience.ErrorClassifier` objects.
    """
    return _IDEMPOTENT if idempotent else _NON_IDEMPOTENT
