"""
Ready clients: `session` (requests), `client` and `async_client` (httpx).

Each applies the profile's pipeline per request through the integrations,
passes min(endpoint timeout, per-call ``timeout=``, `resilience.deadline.remaining()`)
to the socket, honours Retry-After, and raises the typed exceptions for a
failed final response. requests and httpx are imported only when called.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ._errors import raise_for_response, read_body, redact
from ._policy import Options, options

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = ["async_client", "client", "session"]

_OPTION_NAMES = frozenset(
    {"attempts", "backoff", "max_retry_after", "retry_ambiguous", "breaker", "endpoints", "clock"}
)


def _split(settings: dict[str, Any]) -> tuple[Options, dict[str, Any]]:
    ours = {name: settings.pop(name) for name in list(settings) if name in _OPTION_NAMES}
    return options(**ours), settings


def _auth(virtual_key: str) -> dict[str, str]:
    if not isinstance(virtual_key, str) or not virtual_key.strip():
        raise ValueError("virtual_key must be a non-empty str (the team's 'sk-...' key)")
    return {"Authorization": f"Bearer {virtual_key.strip()}"}


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        # Redacted: a key passed where the URL goes (swapped arguments) must not
        # end up in an exception message, and from there in logs.
        raise ValueError(f"base_url must be an absolute http(s) URL, got {redact(repr(base_url))}")
    return base_url.rstrip("/")


def _breaks_connection(response: Any) -> bool:
    """
    Whether the server closes the connection after this answer: its plain-text 500.

    Not a gateway's HTML 502/503/504: a proxy keeps its connections, and the
    HTTP clients notice one it closes. Closing a healthy connection is not free
    when other threads share the pool.
    """
    if response.status_code != 500:
        return False
    content_type: str = response.headers.get("content-type", "")
    return content_type.lower().startswith("text/plain")


# --- requests ---------------------------------------------------------------------------


def _check_requests(response: requests.Response) -> None:
    if response.status_code < 400:
        return
    if _breaks_connection(response):
        _close_on_release(response.raw)
    read_body(response)
    raise_for_response(response)


def _close_on_release(raw: Any) -> None:
    """
    Make urllib3 close the connection of *raw* as the body ends, before it returns to the pool.

    The server closes the connection right after a plain-text 500: reusing it
    would meet a reset. Closing it after the body was read is too late: the
    pool has it back by then, and another thread may be sending on it. A
    connection that goes back closed is reconnected by urllib3 on its next use.
    """
    release = getattr(raw, "release_conn", None)
    if release is None:
        return

    def close_then_release() -> None:
        connection = getattr(raw, "connection", None)
        if connection is not None:
            connection.close()
        release()

    raw.release_conn = close_then_release


def session(base_url: str, virtual_key: str, **settings: Any) -> requests.Session:
    """
    Return a `requests.Session` for the SaaS LiteLLM API with the profile applied.

    Requests take paths relative to *base_url* or absolute URLs; each one runs
    through `pipeline`: the endpoint's timeout (a per-call ``timeout=`` lowers
    it), retries per the table with Retry-After as a floor, and the server's
    breaker. A failed final answer raises the typed `APIError`; a job id
    that is not a UUID raises `ValueError` before anything is sent::

        api = saas.session("https://api.example.com", VIRTUAL_KEY)
        job = api.post("/api/jobs/create", json={"team_id": "acme", "job_type": "chat"}).json()

    Args:
        base_url: The API's URL, such as ``"https://api.example.com"``.
        virtual_key: The team's virtual key (``sk-...``); sent as a bearer
            token, never shown in errors or reprs.
        **settings: `Options` settings (``attempts``, ``backoff``,
            ``max_retry_after``, ``retry_ambiguous``, ``breaker``,
            ``endpoints``, ``clock``); anything else goes to the
            `resilience.integrations.requests.ResilientAdapter`
            (``pool_maxsize``, ...).

    Returns:
        A `resilience.integrations.requests.Session`.

    Raises:
        ImportError: If requests is not installed (the ``requests`` extra).
        ValueError: On a *base_url* that is not absolute, an empty key.
    """
    from resilience.integrations.requests import Session

    base = _check_base_url(base_url)
    headers = _auth(virtual_key)
    opts, adapter_settings = _split(dict(settings))
    api = Session(
        opts.pipeline,
        base_url=base,
        check=_check_requests,
        **adapter_settings,
    )
    api.headers.update(headers)
    return api


# --- httpx --------------------------------------------------------------------------------


# As for requests (see _close_on_release): the connection the server kills must
# be closed before httpcore returns it to the pool, which happens when the
# response's stream is closed; so the network stream is closed first. httpx
# checks the stream's class: the wrappers subclass its byte streams, made on
# first use (httpx is imported only when a client is).


@functools.cache
def _closing_streams() -> tuple[type[Any], type[Any]]:
    import httpx

    class ClosingStream(httpx.SyncByteStream):
        def __init__(self, inner: httpx.SyncByteStream, network: Any) -> None:
            self._inner = inner
            self._network = network

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._inner)

        def close(self) -> None:
            try:
                self._network.close()
            except Exception:  # already closed: what we wanted
                pass
            finally:
                self._inner.close()

    class AsyncClosingStream(httpx.AsyncByteStream):
        def __init__(self, inner: httpx.AsyncByteStream, network: Any) -> None:
            self._inner = inner
            self._network = network

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._inner.__aiter__()

        async def aclose(self) -> None:
            try:
                await self._network.aclose()
            except Exception:  # already closed: what we wanted
                pass
            finally:
                await self._inner.aclose()

    return ClosingStream, AsyncClosingStream


def _reads_whole(response: httpx.Response) -> bool:
    """Whether the body is read inside the attempt: every answer but an event stream."""
    content_type: str = response.headers.get("content-type", "")
    return not content_type.lower().startswith("text/event-stream")


def _check_httpx(response: httpx.Response) -> None:
    if response.status_code < 400:
        # httpx reads the body after the transport returns, outside the pipeline:
        # read it here, so that a connection dropped mid-body is this attempt's
        # failure, classified and retried like any other.
        if _reads_whole(response):
            response.read()
        return
    network = response.extensions.get("network_stream")
    if _breaks_connection(response) and network is not None:
        response.stream = _closing_streams()[0](response.stream, network)
    response.read()
    raise_for_response(response)


async def _acheck_httpx(response: httpx.Response) -> None:
    if response.status_code < 400:
        if _reads_whole(response):  # see _check_httpx
            await response.aread()
        return
    network = response.extensions.get("network_stream")
    if _breaks_connection(response) and network is not None:
        response.stream = _closing_streams()[1](response.stream, network)
    await response.aread()
    raise_for_response(response)


def _httpx_settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings.setdefault("timeout", None)  # the endpoint map decides; a per-call timeout lowers it
    return settings


def client(base_url: str, virtual_key: str, **settings: Any) -> httpx.Client:
    """
    Return an `httpx.Client` for the SaaS LiteLLM API with the profile applied.

    The same behaviour as `session`, through a
    `resilience.integrations.httpx.ResilientTransport`. The client has no
    default timeout of its own: the endpoint map decides, and a per-call
    ``timeout=`` lowers it.

    Args:
        base_url: The API's URL.
        virtual_key: The team's virtual key.
        **settings: `Options` settings; ``transport=`` (the transport that
            really sends); anything else goes to `httpx.Client`.

    Returns:
        An `httpx.Client`; close it (or use it in a ``with`` block).

    Raises:
        ImportError: If httpx is not installed (the ``httpx`` extra).
        ValueError: On a *base_url* that is not absolute, an empty key.
    """
    import httpx

    from resilience.integrations.httpx import ResilientTransport

    base = _check_base_url(base_url)
    headers = _auth(virtual_key)
    opts, rest = _split(dict(settings))
    inner = rest.pop("transport", None)
    transport = ResilientTransport(opts.pipeline, transport=inner, check=_check_httpx)
    return httpx.Client(
        base_url=base, headers=headers, transport=transport, **_httpx_settings(rest)
    )


def async_client(base_url: str, virtual_key: str, **settings: Any) -> httpx.AsyncClient:
    """
    Return an `httpx.AsyncClient` for the SaaS LiteLLM API with the profile applied.

    The same behaviour as `client`, through a
    `resilience.integrations.httpx.AsyncResilientTransport`: the endpoint's
    `resilience.Timeout` cancels an attempt at its deadline.

    Args:
        base_url: The API's URL.
        virtual_key: The team's virtual key.
        **settings: `Options` settings; ``transport=``; anything else goes to
            `httpx.AsyncClient`.

    Returns:
        An `httpx.AsyncClient`; close it (or use it in an ``async with`` block).

    Raises:
        ImportError: If httpx is not installed (the ``httpx`` extra).
        ValueError: On a *base_url* that is not absolute, an empty key.
    """
    import httpx

    from resilience.integrations.httpx import AsyncResilientTransport

    base = _check_base_url(base_url)
    headers = _auth(virtual_key)
    opts, rest = _split(dict(settings))
    inner = rest.pop("transport", None)
    transport = AsyncResilientTransport(opts.pipeline, transport=inner, check=_acheck_httpx)
    return httpx.AsyncClient(
        base_url=base, headers=headers, transport=transport, **_httpx_settings(rest)
    )
