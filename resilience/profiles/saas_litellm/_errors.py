"""
The typed exceptions of the SaaS LiteLLM profile, and `raise_for_response`.

The tree::

    APIError                        .status, .detail, .method, .path
      BadRequestError               400 (and any other 4xx not below)
      AuthenticationError           401
      PermissionDeniedError         403
        InsufficientCreditsError    403 whose detail mentions credits
      NotFoundError                 404
      ValidationError               422; .errors: the field errors
      RateLimitError                429; .retry_after
      ServerError                   5xx
      APIConnectionError            no answer; .request_sent
        APITimeoutError             no answer in time (also a builtin TimeoutError)
      StreamError                   failure after HTTP 200 (also resilience.StreamInterruptedError)

An exception carries what a person needs to act and nothing that could leak:
never a header, a request body or the virtual key. Details read from the
server are redacted (``sk-...`` keys and ``Bearer`` tokens) and shortened.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeVar, final
from urllib.parse import urlsplit

import attrs

import resilience as rs

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "FieldError",
    "InsufficientCreditsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "ValidationError",
    "error_for_response",
    "raise_for_response",
    "redact",
    "request_line",
]

_R = TypeVar("_R")

_DETAIL_LIMIT: Final = 300

_SECRETS: Final = (
    # Virtual keys, also glued after "_" or "=" ("token_sk-...").
    (re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{16,}"), "sk-***"),
    # An echoed Authorization header: a credential of 12 characters or more after any
    # scheme (the server's own hint "Authorization: Bearer sk-xxx..." stays readable).
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?[A-Za-z][\w-]*\s+)"
            r"[^\s\"',]{12,}"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9_\-.=:/+]{16,}"), "Bearer ***"),
)


def redact(text: str, limit: int = _DETAIL_LIMIT) -> str:
    """
    Return *text* without virtual keys or bearer tokens, on one line, at most *limit* characters.

    Args:
        text: Anything read from a server or an exception.
        limit: The longest result, in characters. Default: 300.

    Returns:
        The cleaned text.
    """
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _where(method: str | None, path: str | None) -> str:
    if method and path:
        return f" ({method} {path})"
    if path:
        return f" ({path})"
    return ""


def _phrase(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class APIError(Exception):
    """
    Base of every error the SaaS LiteLLM profile raises for a request that failed.

    Carries what the server said and which request it was about; never the
    request's headers, its body or the virtual key.

    Args:
        message: The text of the exception.
        status: The HTTP status, or `None` when there was no answer.
        detail: The server's ``detail`` (redacted and shortened), or `None`.
        method: The request's method, such as ``"POST"``.
        path: The request's URL path, without host nor query string.

    Attributes:
        status: The HTTP status, or `None` when the server never answered.
        detail: What the server said, redacted: the ``detail`` of a JSON body,
            the text of a plain-text body, the title of an HTML page.
        method: The request's method.
        path: The request's URL path.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        # Fields (and PEP 678 notes) travel in the instance dict.
        return (type(self), (str(self),), self.__dict__.copy())


@final
class BadRequestError(APIError):
    """The server rejected the request as malformed: 400, or a 4xx with no class of its own."""


@final
class AuthenticationError(APIError):
    """401: the Authorization header is missing, malformed, or names an unknown key."""


class PermissionDeniedError(APIError):
    """403: the team is suspended or paused, the key or job belongs to another team, or the model is not allowed."""  # noqa: E501


@final
class InsufficientCreditsError(PermissionDeniedError):
    """403 whose detail mentions credits: the team has run out of them."""


@final
class NotFoundError(APIError):
    """404: no such job (or no such route)."""


def _to_loc(loc: Iterable[str | int]) -> tuple[str | int, ...]:
    return tuple(loc)


@final
@attrs.frozen
class FieldError:
    """
    One field error of a 422 answer.

    The ``input`` the server echoes back (a piece of the request body) is
    deliberately not kept.

    Attributes:
        loc: Where, as the server says it: ``("body", "messages", 0, "role")``.
        msg: What is wrong: ``"Field required"``.
        type: The error's type: ``"missing"``.
    """

    loc: tuple[str | int, ...] = attrs.field(converter=_to_loc)
    msg: str
    type: str

    @property
    def field(self) -> str:
        """The dotted field path, without the leading ``body``: ``"messages.0.role"``."""
        parts = [str(part) for part in self.loc]
        if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
            parts = parts[1:]
        return ".".join(parts)


@final
class ValidationError(APIError):
    """
    422: the request's body (or a parameter) failed validation.

    Attributes:
        errors: The field errors, as `FieldError` values.
    """

    def __init__(self, message: str, *, errors: Sequence[FieldError] = (), **fields: Any) -> None:
        super().__init__(message, **fields)
        self.errors: list[FieldError] = list(errors)


@final
class RateLimitError(APIError):
    """
    429: too many requests (sent by a proxy in front of the API, never by the API itself).

    Attributes:
        retry_after: Seconds the server asked to wait (its ``Retry-After``), or `None`.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after


@final
class ServerError(APIError):
    """5xx: the server, or a gateway in front of it, failed."""


class APIConnectionError(APIError):
    """
    No answer: the connection failed, or dropped before a response arrived.

    Attributes:
        request_sent: Whether the request may have reached the server. `False`
            only when it certainly did not (connect errors and timeouts),
            which makes a retry safe on any endpoint.
    """

    def __init__(self, message: str, *, request_sent: bool = True, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.request_sent = request_sent


@final
class APITimeoutError(APIConnectionError, TimeoutError):
    """
    No answer in time. Also a builtin `TimeoutError`.

    A read timeout does not stop the server: the work (a paid LLM call) may
    complete after the client gave up. ``request_sent`` says whether that can be.
    """


@final
class StreamError(APIError, rs.StreamInterruptedError):
    """
    A streaming answer failed after its HTTP 200: an in-band error event, a drop, a stall.

    Also a `resilience.StreamInterruptedError`.

    Attributes:
        partial: The event payloads received before the failure, in order.
        text: The ``choices[0].delta.content`` accumulated from them.
    """

    def __init__(
        self,
        message: str,
        *,
        partial: Iterable[Any] = (),
        text: str = "",
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self.partial: list[Any] = list(partial)
        self.text = text


for _cls in (
    APIError,
    BadRequestError,
    AuthenticationError,
    PermissionDeniedError,
    InsufficientCreditsError,
    NotFoundError,
    FieldError,
    ValidationError,
    RateLimitError,
    ServerError,
    APIConnectionError,
    APITimeoutError,
    StreamError,
):
    _cls.__module__ = "resilience.profiles.saas_litellm"
del _cls


# --- reading responses ----------------------------------------------------------------

# Reads status and Retry-After the way the policies do (seconds, HTTP-date or
# retry-after-ms): a classifier with no rules still reads them from the outcome.
_READER: Final = rs.ErrorClassifier([])

_TITLE: Final = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1: Final = re.compile(r"<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG: Final = re.compile(r"<[^>]+>")


def request_line(response_or_request: object) -> tuple[str | None, str | None]:
    """
    Return ``(method, path)`` of a requests/httpx response or request, by duck typing.

    The path has no host and no query string. Unknown parts are `None`.
    """
    request = response_or_request
    if not hasattr(request, "method"):
        try:
            request = getattr(response_or_request, "request", None)
        except Exception:  # httpx: a response built without a request
            request = None
    if request is None:
        return None, None
    method = getattr(request, "method", None)
    url = getattr(request, "url", None)
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    path = None if url is None else urlsplit(str(url)).path or "/"
    return (method if isinstance(method, str) else None), path


def read_body(response: object) -> bytes | None:
    """
    Return the body of a requests or (read) httpx response, or `None` when it cannot be read.

    A streaming requests response is read; an unread sync httpx response is
    read; an unread async httpx response cannot be from here and gives `None`.
    """
    try:
        content = response.content  # type: ignore[attr-defined]
    except Exception:  # httpx.ResponseNotRead, or a consumed requests stream
        read = getattr(response, "read", None)
        if read is None:
            return None
        try:
            content = read()
        except Exception:  # an async httpx stream
            return None
    return content if isinstance(content, bytes) else None


def _header(response: object, name: str) -> str:
    headers = getattr(response, "headers", None)
    try:
        value = headers.get(name) if headers is not None else None
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def _is_json(content_type: str, text: str) -> bool:
    return "json" in content_type or text[:1] in ("{", "[")


def parse_body(body: bytes | None, content_type: str) -> tuple[str | None, list[FieldError] | None]:
    """
    Return ``(detail, field errors)`` read from an error body; never raises.

    JSON bodies give their ``detail`` (a string, or the 422 list), or else an
    ``error``/``message`` field; plain text gives itself; HTML gives its
    title. Everything is redacted.
    """
    if not body:
        return None, None
    text = body.decode("utf-8", "replace").strip()
    content_type = content_type.lower()
    if _is_json(content_type, text):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
            data = None
        if data is not None:
            return _from_json(data)
    if "html" in content_type or text[:1] == "<":
        match = _TITLE.search(text) or _H1.search(text)
        title = _TAG.sub(" ", match.group(1)) if match else ""
        return (redact(title) or "an HTML error page"), None
    return redact(text) or None, None


def _from_json(data: object) -> tuple[str | None, list[FieldError] | None]:
    if isinstance(data, dict):
        detail = data.get("detail", data.get("error", data.get("message")))
        if isinstance(detail, dict):  # {"error": {"message": ...}} of OpenAI-style proxies
            detail = detail.get("message", detail)
    else:
        detail = data
    if isinstance(detail, list):
        errors = [_field_error(item) for item in detail]
        summary = "; ".join(
            f"{error.field}: {error.msg}" if error.field else error.msg for error in errors
        )
        return redact(summary) or None, errors
    if detail is None:
        return None, None
    if not isinstance(detail, str):
        detail = json.dumps(detail, separators=(",", ":"), default=str)
    return redact(detail) or None, None


def _field_error(item: object) -> FieldError:
    if not isinstance(item, dict):
        return FieldError((), redact(str(item)), "unknown")
    loc = item.get("loc", ())
    if not isinstance(loc, list | tuple):
        loc = (loc,)
    parts = tuple(part if isinstance(part, int) else redact(str(part), 80) for part in loc)
    return FieldError(parts, redact(str(item.get("msg", ""))), redact(str(item.get("type", ""))))


def error_for_response(response: object) -> APIError | None:
    """
    Return the typed error for a failed requests or httpx response, or `None` below 400.

    Reads the body if needed (see `raise_for_response`).

    Args:
        response: A `requests.Response` or an `httpx.Response`.

    Returns:
        The `APIError` subclass for the status, or `None` for a 1xx-3xx.
    """
    status = getattr(response, "status_code", None)
    if not isinstance(status, int) or status < 400:
        return None
    detail, errors = parse_body(read_body(response), _header(response, "content-type"))
    method, path = request_line(response)
    phrase = _phrase(status)
    message = f"{phrase}: {detail}" if detail and detail != phrase else phrase
    message += _where(method, path)
    fields: dict[str, Any] = {"status": status, "detail": detail, "method": method, "path": path}
    if status == 401:
        return AuthenticationError(message, **fields)
    if status == 403:
        if detail is not None and "credit" in detail.lower():
            return InsufficientCreditsError(message, **fields)
        return PermissionDeniedError(message, **fields)
    if status == 404:
        return NotFoundError(message, **fields)
    if status == 422:
        return ValidationError(message, errors=errors or (), **fields)
    if status == 429:
        retry_after = _READER.classify(response).retry_after
        return RateLimitError(message, retry_after=retry_after, **fields)
    if status >= 500:
        return ServerError(message, **fields)
    return BadRequestError(message, **fields)


def raise_for_response(response: _R) -> _R:
    """
    Raise the typed `APIError` for a failed response; return the response otherwise.

    Works on `requests.Response` and `httpx.Response` alike, by duck typing (it
    imports neither). Never crashes on the body: JSON, plain text, HTML or
    nothing at all are all normal input. A 422's field errors are parsed into
    `ValidationError.errors`; a 429's ``Retry-After`` into
    `RateLimitError.retry_after`. Reads the body of a failed streaming
    response (a failed async httpx response must have been read with
    ``await response.aread()`` first, or its detail is unknown).

    Args:
        response: A `requests.Response` or an `httpx.Response`.

    Returns:
        *response* itself when its status is below 400, so that calls chain:
        ``raise_for_response(api.get(url)).json()``.

    Raises:
        APIError: The subclass for the status (see the module's tree).
    """
    error = error_for_response(response)
    if error is not None:
        raise error
    return response
