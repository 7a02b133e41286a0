"""
httpx integration: transports that run every request through a resilience pipeline.

Wrap the transport of an `httpx.Client` or `httpx.AsyncClient`::

    import httpx
    import resilience as rs
    from resilience.integrations.httpx import AsyncResilientTransport, ResilientTransport

    pipeline = rs.compose(rs.Retry(on=rs.transient, attempts=3), rs.Timeout(10.0))
    client = httpx.Client(transport=ResilientTransport(pipeline))
    aclient = httpx.AsyncClient(transport=AsyncResilientTransport(pipeline))

Per request, the transport:

- runs the send through the pipeline (a fixed one, or one chosen per request
  by a factory ``(method, url) -> pipeline``), so that Retry re-sends it and a
  breaker counts it (``await pipeline.acall(...)`` for the async transport:
  an async `resilience.Timeout` cancels the request at its deadline);
- lowers each of the request's connect, read, write and pool timeouts to the
  transport's own and to `resilience.deadline.remaining()`, per attempt;
- lets the classifier see failed responses (a 503 that did not raise), with
  their body read, so that Retry honours their ``Retry-After``; when retries
  run out on a response, that last response is returned, as httpx would.

Needs the ``httpx`` extra. Importing `resilience` never imports this module.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeAlias, final

import httpx

import resilience as rs

from ._common import Policies, PolicySource, TimeoutSource, labelled, lowest

__all__ = ["AsyncResilientTransport", "ResilientTransport"]

Check: TypeAlias = Callable[[httpx.Response], object]
AsyncCheck: TypeAlias = Callable[[httpx.Response], "Awaitable[object] | object"]

_PARTS = ("connect", "read", "write", "pool")


def _check_request_timeouts(request: httpx.Request) -> None:
    """Refuse a request whose own timeouts allow no time at all, before anything is sent.

    httpx takes ``timeout=0`` (or a negative one) and times out at once: through a
    pipeline that would be a failure of the server, retried and counted by a breaker.
    """
    current = request.extensions.get("timeout")
    if not isinstance(current, dict):
        return
    for part in _PARTS:
        value = current.get(part)
        if value is not None and not (value > 0):
            raise ValueError(
                f"timeout must be a number of seconds > 0 or None, got {part}={value!r}"
            )


def _with_timeouts(request: httpx.Request, own: float | None) -> None:
    """Lower the request's timeouts (its ``timeout`` extension) to *own* and the deadline."""
    limit = rs.deadline.cap(own)
    if limit is None:
        return
    current = request.extensions.get("timeout")
    values: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    request.extensions = {
        **request.extensions,
        "timeout": {part: lowest(values.get(part), limit) for part in _PARTS},
    }


def _check_callable(check: object) -> None:
    if check is not None and not callable(check):
        raise TypeError(f"check must be a callable taking a response, got {check!r}")


@final
class ResilientTransport(httpx.BaseTransport):
    """
    An `httpx.BaseTransport` that sends each request through a resilience pipeline.

    Args:
        policy: A `resilience.Pipeline` or policy applied to every request; or
            a callable ``(method, url) -> pipeline | policy | None`` choosing
            one per request (`None`: send it as is). Required.
        transport: The transport that really sends. Default: a new
            `httpx.HTTPTransport()`; it is closed with this one.
        timeout: The transport's own limit in seconds (or a `datetime.timedelta`)
            for each of the connect, read, write and pool timeouts, or a callable
            ``(method, url) -> seconds | None``. Each gets the lowest of this,
            the request's own value and the time left before the deadline in
            force. Default: `None`.
        check: Called inside every attempt with the response, its body not
            yet read; it may raise to make the attempt fail, in which case it
            owns reading or closing the response. Without it, the body of a
            response with status >= 400 is read. Default: `None`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        policy: PolicySource,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: TimeoutSource = None,
        check: Check | None = None,
    ) -> None:
        _check_callable(check)
        self._policies = Policies(policy, timeout)
        self._transport = transport if transport is not None else httpx.HTTPTransport()
        self._check = check

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the pipeline; see the class docstring."""
        _check_request_timeouts(request)
        method, url = request.method, str(request.url)
        pipeline = self._policies.pipeline(method, url)
        own = self._policies.timeout(method, url)
        if pipeline is None:
            return self._attempt(request, own)
        try:
            return pipeline.call(labelled(self._attempt, method, url), request, own)
        except rs.RetryExhaustedError as exc:
            if isinstance(exc.last_result, httpx.Response):
                return exc.last_result
            raise

    def _attempt(self, request: httpx.Request, own: float | None) -> httpx.Response:
        _with_timeouts(request, own)
        response = self._transport.handle_request(request)
        response.request = request  # as the client will: lets checks name the request
        check = self._check
        if check is not None:
            try:
                check(response)
            except BaseException:
                response.close()
                raise
        elif response.status_code >= 400:
            response.read()
        return response

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()


@final
class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """
    An `httpx.AsyncBaseTransport` that sends each request through a resilience pipeline.

    The same as `ResilientTransport`, run with ``await pipeline.acall(...)``:
    an async `resilience.Timeout` in the pipeline cancels a request at its
    deadline. *check* may be a coroutine function.

    Args:
        policy: As for `ResilientTransport`. Required.
        transport: The transport that really sends. Default: a new
            `httpx.AsyncHTTPTransport()`; it is closed with this one.
        timeout: As for `ResilientTransport`.
        check: As for `ResilientTransport`; an awaitable result is awaited.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        policy: PolicySource,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: TimeoutSource = None,
        check: AsyncCheck | None = None,
    ) -> None:
        _check_callable(check)
        self._policies = Policies(policy, timeout)
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._check = check

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the pipeline; see the class docstring."""
        _check_request_timeouts(request)
        method, url = request.method, str(request.url)
        pipeline = self._policies.pipeline(method, url)
        own = self._policies.timeout(method, url)
        if pipeline is None:
            return await self._attempt(request, own)
        try:
            return await pipeline.acall(labelled(self._attempt, method, url), request, own)
        except rs.RetryExhaustedError as exc:
            if isinstance(exc.last_result, httpx.Response):
                return exc.last_result
            raise

    async def _attempt(self, request: httpx.Request, own: float | None) -> httpx.Response:
        _with_timeouts(request, own)
        response = await self._transport.handle_async_request(request)
        response.request = request
        check = self._check
        if check is not None:
            try:
                outcome = check(response)
                if inspect.isawaitable(outcome):
                    await outcome
            except BaseException:
                await response.aclose()
                raise
        elif response.status_code >= 400:
            await response.aread()
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()
