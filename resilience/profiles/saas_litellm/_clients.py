"""
Ready clients: `session` (requests), `client` and `async_client` (httpx).

Each sends every request through the profile's pipeline for its endpoint (and,
for an LLM call, its model alias, read from the body), bounds each attempt by
min(endpoint timeout, per-call ``timeout=``, `resilience.deadline.remaining()`),
honours Retry-After, and raises the typed exceptions for a failed final
response. The sync clients give that bound to the socket; the async client
cancels an attempt at the earlier of the endpoint's timeout and the deadline
in force (its `resilience.Timeout`) and gives the socket a per-call
``timeout=`` (and a stream's socket the bound: it is read after the
attempt). All three follow redirects (the server's 307 for a trailing slash),
each hop through its own pipeline. requests and httpx are imported only when
called.
"""

from __future__ import annotations

import asyncio
import functools
import re
import types
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Final

import resilience as rs
from resilience.engine import cancel_after

from ._errors import APITimeoutError, raise_for_response, read_body, redact
from ._policy import Options, _model_of, deadline_passed, options, raise_typed

if TYPE_CHECKING:
    import httpx
    import requests

    from ._endpoints import Endpoint, EndpointMap

__all__ = ["async_client", "client", "session"]

_OPTION_NAMES = frozenset(
    {
        "attempts",
        "backoff",
        "max_retry_after",
        "retry_ambiguous",
        "breaker",
        "paid_calls",
        "endpoints",
        "clock",
    }
)

DEADLINE_MARGIN: Final = 0.02
"""
Seconds before an enclosing deadline at which an async client call gives up.

An ``async with rs.Timeout(...)`` around a call cancels it at its deadline and
raises its own `resilience.TimeoutExceededError`. Ending the call a moment
earlier lets the profile raise `APITimeoutError` instead, the exception every
other path raises.
"""


def _label(fn: Any, name: str) -> Any:
    """
    A function *fn* under the name ``"METHOD /path"``: its target in events and errors.

    A copy under that name (the transports pass their instance as its first
    argument): it adds no call of its own, and a coroutine function stays one
    (which `resilience.Pipeline.acall` runs as it is).
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    return copy


_SYNC: Final = rs.Shape.SYNC
_ASYNC: Final = rs.Shape.ASYNC

_ROUTES: Final = 1024
"""URLs whose route a client keeps, and URLs it has seen (see `_route`): then it starts anew."""

_Route = tuple["Endpoint", str, "rs.Runner | None", Any, "dict[str | bytes | None, rs.Runner]", str]


def _route(
    routes: dict[tuple[str, object], _Route],
    seen: set[int],
    key: tuple[str, object],
    opts: Options,
    url: str,
    attempt: Any,
    shape: rs.Shape,
) -> _Route:
    """
    What a client's request to *url* runs through, kept per client once it is sent again.

    (endpoint, path, runner, the attempt under its label, the runners of a paid
    call by model, the URL). The runner is the pipeline's for *shape* (see
    `resilience.Pipeline.runner`: what ``call`` and ``acall`` run, once they
    have checked the callable, which `_label` makes); `None` for a paid call:
    its breaker is its model's, which its body names (see `_paid`).

    Kept under *key*, (method, URL) (see `_url_key`), from the second request
    to it on: a job polled, or called again, is looked up once; a URL sent to
    once (a new job's) leaves only its key's hash behind, not a route the
    garbage collector would walk until the cache starts again. A request the
    map refuses (a job id that is not a UUID) raises every time.
    """
    method = key[0]
    found, path = opts.endpoints.lookup(method, url)
    run = None if found.paid else opts.for_client(method, url, found, None, shape).runner(shape)
    route: _Route = (found, path, run, _label(attempt, f"{method} {path}"), {}, url)
    return _keep(routes, seen, key, route)


def _keep(
    routes: dict[tuple[str, object], _Route], seen: set[int], key: tuple[str, object], route: _Route
) -> _Route:
    """Keep *route* under *key* from the second request to its URL on (see `_route`)."""
    mark = hash(key)
    if mark not in seen:
        if len(seen) >= _ROUTES:
            seen.clear()
        seen.add(mark)
        return route
    if len(routes) >= _ROUTES:
        routes.clear()
    routes[key] = route
    return route


# A job id in its usual form, a whole path segment (the map checks any other form).
_JOB_ID: Final = re.compile(
    r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?=/|\Z)"
)

_Shape = tuple["Endpoint", "rs.Runner | None", "dict[str | bytes | None, rs.Runner]", str, int]
_Shapes = dict[tuple[object, ...], _Shape]


def _shapes_for(endpoints: EndpointMap) -> _Shapes | None:
    """
    A client's routes by the shape of a job's URL (see `_new_route`), or `None` if a map cannot.

    `None` for a map with a UUID as a literal segment: a job id there could
    then match another row than its shape's.
    """
    for row in endpoints:
        for segment in row.template.split("/"):
            if _JOB_ID.fullmatch("/" + segment) is not None:
                return None
    return {}


def _learn_shape(
    shapes: _Shapes, shaped: tuple[object, ...], at: int, route: _Route, text: str
) -> None:
    """Keep a route for the URLs of its shape, if its row takes a job id where the path has one."""
    found, path = route[0], route[1]
    if (at, "job_id") not in found._params or not text.endswith(path):
        return  # a catch-all, or a row that takes the id elsewhere: nothing to share
    if len(shapes) >= _ROUTES:
        shapes.clear()
    # Where the path starts in the searched text: the same for every URL of the shape.
    shapes[shaped] = (found, route[2], route[4], route[5], len(text) - len(path))


def _new_route(
    owner: Any,
    key: tuple[str, object],
    opts: Options,
    head: object,
    text: str | None,
    url: object,
    attempt: Any,
    shape: rs.Shape,
) -> _Route:
    """
    The route of a URL *owner* (a transport, an adapter) keeps none for: by its shape, else found.

    *text* is the URL's path (*head*: what comes before it, as parts), or the
    whole URL (*head* `None`); `None` for a URL with a query or a fragment.
    *url* is its text (or what makes it, with `str`).
    """
    routes, seen, shapes = owner._routes, owner._seen, owner._shapes
    if shapes is None or text is None:
        return _route(routes, seen, key, opts, str(url), attempt, shape)
    job = _JOB_ID.search(text)  # a literal "/" first: sre scans for it, then tries the id
    if job is None or "%" in text:
        return _route(routes, seen, key, opts, str(url), attempt, shape)
    # A job's URLs differ from another job's by the id only: its endpoint, its
    # pipeline, its paid runners (by method, origin, template, model) are the
    # other's. Its own: its path and label. (An id found in a host is never
    # the row's job_id: see _learn_shape.)
    start, end = job.span()
    shaped = (key[0], head, text[:start], text[end:])
    known = shapes.get(shaped)
    if known is not None:
        found, run, models, first, cut = known
        path = text[cut:]
        label = _label(attempt, f"{key[0]} {path}")
        return _keep(routes, seen, key, (found, path, run, label, models, first))
    route = _route(routes, seen, key, opts, str(url), attempt, shape)
    _learn_shape(shapes, shaped, -1 - text.count("/", end), route, text)
    return route


def _httpx_parts(url: httpx.URL) -> tuple[object, str | None]:
    """The head (scheme, user, host, port) and path of an httpx URL; `None` with a query."""
    parts = getattr(url, "_uri_reference", None)
    if not isinstance(parts, tuple) or parts[5] is not None or parts[6] is not None:
        return None, None
    return parts[:4], parts[4] or None


def _paid(route: _Route, opts: Options, method: str, body: object, shape: rs.Shape) -> rs.Runner:
    """
    The runner of a paid call to a route: its model's pipeline's, the model its body names.

    Looked up by the raw bytes of the body's first ``"model"`` key up to the
    next quote, separator and opening quote included (``b':"gpt-4o'``), before
    anything is decoded: such a key is kept only once `_model_of` has read the
    same model from it, without an escape (see `_model_key`), so that a body
    with that key names that model.
    """
    models = route[4]
    key: bytes | None = None
    if type(body) is bytes:  # what requests and httpx send for ``json=``
        at = body.find(b'"model"')
        if at != -1:
            end = body.find(b'"', body.find(b'"', at + 7) + 1)
            if end != -1:  # (the closing quote: a key without one could be any body's prefix)
                key = body[at + 7 : end]
                run = models.get(key)
                if run is not None:
                    return run
    model = _model_of(body)
    found = models.get(model)
    if found is None:
        found = opts.for_client(method, route[5], route[0], model, shape).runner(shape)
        if len(models) < 64:  # aliases are few; a bound all the same
            models[model] = found
    if model is not None and len(models) < 64 and _model_key(key) == model:
        models[key] = found
    return found


# A raw key of `_paid`: a JSON separator, the opening quote, then the alias without escapes.
_RAW_KEY: Final = re.compile(rb'\s*:\s*"([^"\\]{0,200})')


def _model_key(key: bytes | None) -> str | None:
    """The model a raw key of `_paid` names, or `None` (then it is never kept)."""
    found = None if key is None else _RAW_KEY.fullmatch(key)
    return None if found is None else found.group(1).decode("utf-8", "replace")


def _url_key(url: httpx.URL) -> object:
    """
    What tells an httpx URL from another, cheaper than its text (which httpx builds anew).

    Its parsed parts, a tuple, when httpx keeps them (``_uri_reference``, since
    0.24; its text is made of them); else its text.
    """
    parts = getattr(url, "_uri_reference", None)
    return parts if isinstance(parts, tuple) else str(url)


def _deadline_passed(exc: BaseException) -> bool:
    left = rs.deadline.remaining()
    return isinstance(exc, rs.BulkheadFullError) and left is not None and left <= 0


def _waited_out(exc: rs.BulkheadFullError, method: str, path: str) -> APITimeoutError:
    return APITimeoutError(
        f"timed out before the request was sent: no paid-call slot freed up before the "
        f"deadline ({method} {path})",
        method=method,
        path=path,
        request_sent=False,
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


def _time_limit(seconds: float, method: str, path: str) -> float:
    """
    An attempt's time limit: the endpoint's *seconds*, or less if the deadline in force is nearer.

    The sync clients' pipelines have no Timeout (see `Options.for_client`): this is
    what one would do around their attempts. Raises `APITimeoutError`
    (``request_sent=False``) if no time is left.
    """
    left = rs.deadline.remaining()
    if left is None or left >= seconds:
        return seconds
    if left > 0:
        return left
    raise deadline_passed(method, path)


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
    """Raise the typed error of a failed answer (>= 400; the attempt tests the status)."""
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


def _cap(timeout: Any, limit: float | None) -> Any:
    """Lower a requests timeout (seconds, or (connect, read)) to *limit*."""
    if limit is None:
        return timeout
    if timeout is None:
        return limit
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return tuple(limit if part is None or part > limit else part for part in timeout)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return limit if timeout > limit else timeout
    return timeout  # a urllib3 Timeout object: the caller's own business


@functools.cache
def _adapter_class() -> type[Any]:
    import requests.adapters

    class ProfileAdapter(requests.adapters.HTTPAdapter):
        """The requests adapter of `session`: the pipeline by endpoint and model alias."""

        __attrs__ = [*requests.adapters.HTTPAdapter.__attrs__, "_opts"]  # noqa: RUF012

        def __init__(self, opts: Options, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._opts = opts
            self._routes: dict[tuple[str, object], _Route] = {}
            self._seen: set[int] = set()
            self._shapes = _shapes_for(opts.endpoints)

        def __setstate__(self, state: dict[str, Any]) -> None:
            super().__setstate__(state)  # type: ignore[misc]
            self._routes = {}
            self._seen = set()
            self._shapes = _shapes_for(self._opts.endpoints)

        def send(
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: bool | str = True,
            cert: Any = None,
            proxies: Any = None,
        ) -> requests.Response:
            method = request.method or "GET"
            url = request.url or ""
            key = (method, url)
            route = self._routes.get(key)
            if route is None:  # the whole URL searched for a job id, but not its query
                text = None if "?" in url or "#" in url else url
                attempt = ProfileAdapter._send_once
                route = _new_route(self, key, self._opts, None, text, url, attempt, _SYNC)
            found, path, run, attempt, _, _ = route
            if run is None:  # a paid call: its model's breaker
                run = _paid(route, self._opts, method, request.body, _SYNC)
            left = rs.deadline.remaining()
            if left is not None and left <= 0:
                raise deadline_passed(method, path)
            try:
                args = (self, request, stream, timeout, verify, cert, proxies, found.timeout, path)
                return run(attempt, args, {})  # type: ignore[no-any-return]
            except rs.BulkheadFullError as exc:
                if _deadline_passed(exc):
                    raise _waited_out(exc, method, path) from exc
                raise

        def _send_once(
            self,
            request: requests.PreparedRequest,
            stream: bool,
            timeout: Any,
            verify: bool | str,
            cert: Any,
            proxies: Any,
            seconds: float,
            path: str,
        ) -> requests.Response:
            limit = _time_limit(seconds, request.method or "GET", path)
            if isinstance(getattr(request, "_body_position", None), int):
                from requests.utils import rewind_body

                rewind_body(request)  # a file body, read by a previous attempt
            try:
                # The base class's send, looked up each time and called with keywords, as
                # requests does: libraries such as responses patch it with their own.
                response = requests.adapters.HTTPAdapter.send(
                    self,
                    request,
                    stream=stream,
                    timeout=_cap(timeout, limit),
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
                if response.status_code >= 400:
                    try:
                        _check_requests(response)
                    except BaseException:
                        response.close()
                        raise
                if not stream:
                    # Read inside the attempt, as requests would right after: a connection
                    # dropped mid-body is then this attempt's failure, classified and retried.
                    response.content  # noqa: B018
            except Exception as exc:  # the typed error of a transport's failure
                raise_typed(exc, request.method or "GET", path)
                raise
            return response

    return ProfileAdapter


def session(base_url: str, virtual_key: str, **settings: Any) -> requests.Session:
    """
    Return a `requests.Session` for the SaaS LiteLLM API with the profile applied.

    Requests take paths relative to *base_url* or absolute URLs; each one runs
    through `pipeline`: the endpoint's timeout (a per-call ``timeout=`` lowers
    it), retries per the table with Retry-After as a floor, the breaker of
    its route family (of its model, for an LLM call), and for a paid call
    the server's paid-call bulkhead. It follows redirects, each hop through
    its own pipeline. A failed final answer raises the typed `APIError`; a
    job id that is not a UUID raises `ValueError` before anything is sent::

        api = saas.session("https://api.example.com", VIRTUAL_KEY)
        job = api.post("/api/jobs/create", json={"team_id": "acme", "job_type": "chat"}).json()

    Args:
        base_url: The API's URL, such as ``"https://api.example.com"``.
        virtual_key: The team's virtual key (``sk-...``); sent as a bearer
            token, never shown in errors or reprs.
        **settings: `Options` settings (``attempts``, ``backoff``,
            ``max_retry_after``, ``retry_ambiguous``, ``breaker``, ``paid_calls``,
            ``endpoints``, ``clock``); anything else goes to its
            `requests.adapters.HTTPAdapter` (``pool_maxsize``, ...).

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
    api = Session(None, base_url=base)
    adapter = _adapter_class()(opts, **adapter_settings)
    for prefix in ("http://", "https://"):
        api.mount(prefix, adapter)  # redirects elsewhere go through the profile too
    api.mount(_mount_point(base), adapter)
    api.headers.update(headers)
    return api


def _mount_point(base: str) -> str:
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.partition('/')[0]}/"


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


def _check_httpx(response: httpx.Response, stream: bool) -> None:
    """Raise the typed error of a failed answer; read the body of any other but a stream's.

    *stream*: the endpoint answers with events (its row says so): its body is read
    by the caller, event by event, after the attempt.
    """
    if response.status_code < 400:
        # httpx reads the body after the transport returns, outside the pipeline:
        # read it here, so that a connection dropped mid-body is this attempt's
        # failure, classified and retried like any other.
        if not stream and not response.is_closed:
            _reopen(response, b"".join(response.iter_raw()))
        return
    network = response.extensions.get("network_stream")
    if _breaks_connection(response) and network is not None:
        response.stream = _closing_streams()[0](response.stream, network)
    response.read()
    raise_for_response(response)


def _reopen(response: httpx.Response, raw: bytes) -> None:
    """
    Hand a response whose *raw* body the attempt read back to httpx as one unread.

    The client wraps the stream a transport returns, reads it, and sets
    ``response.elapsed`` when it closes it; a response read and closed already
    is neither, and its ``.elapsed`` would raise. The body, read (still encoded:
    the client decodes it as it reads), becomes its stream, in memory.
    """
    response.stream = _byte_stream()(raw)
    response.is_stream_consumed = False
    response.is_closed = False


@functools.cache
def _byte_stream() -> type[httpx.ByteStream]:
    import httpx

    return httpx.ByteStream


async def _araise_for(response: httpx.Response) -> None:
    """`_check_httpx` of a failed answer (>= 400), async; the caller reads any other."""
    network = response.extensions.get("network_stream")
    if _breaks_connection(response) and network is not None:
        response.stream = _closing_streams()[1](response.stream, network)
    await response.aread()
    raise_for_response(response)


_PARTS: Final = ("connect", "read", "write", "pool")
_UNSET: Final = dict.fromkeys(_PARTS)


def _request_timeouts(request: httpx.Request) -> dict[str, Any] | None:
    """The request's own timeouts, checked (`None`: it has none, the usual case)."""
    current = request.extensions.get("timeout")
    if current == _UNSET or not isinstance(current, dict):
        return None  # the profile's clients have no timeout of their own: the usual case
    unset = True
    for part in _PARTS:
        value = current.get(part)
        if value is not None:
            unset = False
            if not (value > 0):
                # httpx would time out at once: through the pipeline, a failure of the
                # server, retried and counted. Refused before anything is sent.
                raise ValueError(
                    f"timeout must be a number of seconds > 0 or None, got {part}={value!r}"
                )
    return None if unset else current


def _set_timeouts(
    request: httpx.Request, own: dict[str, Any] | None, seconds: float, path: str
) -> None:
    """
    Give this attempt the lowest of the request's own timeouts, the endpoint's and the time left.

    Raises `APITimeoutError` (``request_sent=False``) if no time is left.
    """
    limit = _time_limit(seconds, request.method, path)
    values: dict[str, Any]
    if own is None:
        values = {"connect": limit, "read": limit, "write": limit, "pool": limit}
    else:
        values = {}
        for part in _PARTS:
            value = own.get(part)
            values[part] = limit if value is None or value > limit else value
    # A dict of our own: the caller's may be shared (httpx's ``extensions=``).
    request.extensions = {**request.extensions, "timeout": values}


def _body_of(request: httpx.Request) -> bytes | None:
    try:
        return request.content
    except Exception:  # a streaming body: its model cannot be read without consuming it
        return None


@functools.cache
def _transports() -> tuple[type[Any], type[Any]]:
    import httpx

    class ProfileTransport(httpx.BaseTransport):
        """The transport of `client`: the pipeline by endpoint and model alias."""

        def __init__(self, opts: Options, transport: httpx.BaseTransport | None) -> None:
            self._opts = opts
            self._transport = transport if transport is not None else httpx.HTTPTransport()
            self._routes: dict[tuple[str, object], _Route] = {}
            self._seen: set[int] = set()
            self._shapes = _shapes_for(opts.endpoints)

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            own = _request_timeouts(request)
            method = request.method
            key = (method, _url_key(request.url))
            route = self._routes.get(key)
            if route is None:
                head, path = _httpx_parts(request.url)
                attempt = ProfileTransport._send_once
                url = request.url
                route = _new_route(self, key, self._opts, head, path, url, attempt, _SYNC)
            found, path, run, attempt, _, _ = route
            if run is None:  # a paid call: its model's breaker
                run = _paid(route, self._opts, method, _body_of(request), _SYNC)
            left = rs.deadline.remaining()
            if left is not None and left <= 0:
                raise deadline_passed(method, path)
            try:
                return run(attempt, (self, request, own, found, path), {})  # type: ignore[no-any-return]
            except rs.BulkheadFullError as exc:
                if _deadline_passed(exc):
                    raise _waited_out(exc, method, path) from exc
                raise

        def _send_once(
            self, request: httpx.Request, own: dict[str, Any] | None, found: Endpoint, path: str
        ) -> httpx.Response:
            # The endpoint's timeout, capped by the deadline in force (see Options.for_client).
            _set_timeouts(request, own, found.timeout, path)
            try:
                response = self._transport.handle_request(request)
                response.request = request  # as the client will: lets the checks name it
                try:
                    _check_httpx(response, found.stream)
                except BaseException:
                    response.close()
                    raise
            except Exception as exc:  # the typed error of a transport's failure
                raise_typed(exc, request.method, path)
                raise
            return response

        def close(self) -> None:
            self._transport.close()

    class AsyncProfileTransport(httpx.AsyncBaseTransport):
        """The transport of `async_client`; ends a call just before an enclosing deadline."""

        def __init__(self, opts: Options, transport: httpx.AsyncBaseTransport | None) -> None:
            self._opts = opts
            self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
            self._routes: dict[tuple[str, object], _Route] = {}
            self._seen: set[int] = set()
            self._shapes = _shapes_for(opts.endpoints)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            # Each attempt is cancelled at its deadline (the endpoint's Timeout, or the
            # enclosing one): its socket needs a timeout only from a per-call timeout=,
            # or for a stream, read after the attempt (see _send_once).
            current = request.extensions.get("timeout")
            own = None if current == _UNSET else _request_timeouts(request)
            method = request.method
            key = (method, _url_key(request.url))
            route = self._routes.get(key)
            if route is None:
                head, path = _httpx_parts(request.url)
                attempt = AsyncProfileTransport._send_once
                url = request.url
                route = _new_route(self, key, self._opts, head, path, url, attempt, _ASYNC)
            found, path, run, attempt, _, _ = route
            if run is None:  # a paid call: its model's breaker
                run = _paid(route, self._opts, method, _body_of(request), _ASYNC)
            left = rs.deadline.remaining()
            if left is not None and left <= 0:
                raise deadline_passed(method, path)
            try:
                if left is None:
                    args = (self, request, own, found, path, None)
                    response: httpx.Response = await run(attempt, args, {})
                    return response
                return await self._before_deadline(run, attempt, request, own, found, path, left)
            except rs.BulkheadFullError as exc:
                if _deadline_passed(exc):
                    raise _waited_out(exc, method, path) from exc
                raise
            except rs.TimeoutExceededError as exc:
                # The endpoint's Timeout expired: Retry and the breaker judged it as
                # the lost answer it is; the caller gets the profile's error for it.
                raise_typed(exc, method, path)
                raise

        async def _before_deadline(
            self,
            run: rs.Runner,
            attempt: Any,
            request: httpx.Request,
            own: dict[str, Any] | None,
            found: Endpoint,
            path: str,
            left: float,
        ) -> httpx.Response:
            # An enclosing deadline: end the call DEADLINE_MARGIN before it, so that
            # the caller gets the profile's APITimeoutError, not the enclosing
            # Timeout's cancellation. `sent` follows httpcore's trace of each attempt.
            sent = _Sent(request)
            scope = cancel_after(left - DEADLINE_MARGIN)  # a cancel scope under trio
            try:
                async with scope:
                    args = (self, request, own, found, path, sent)
                    response: httpx.Response = await run(attempt, args, {})
                    return response
            except TimeoutError as exc:
                if not (scope.expired() and type(exc) is TimeoutError):
                    raise
                raise _deadline_error(request.method, attempt, sent.value) from exc
            except asyncio.CancelledError as exc:
                # A loop late by more than the margin runs both timers at once: ours,
                # then the enclosing Timeout's, whose cancellation then reaches here.
                # Exactly that one cancel pending, its deadline passed: the enclosing
                # Timeout's own; it lets an exception other than CancelledError pass.
                # Any other cancellation (one more request) propagates.
                task = asyncio.current_task()
                remaining = rs.deadline.remaining()
                if (
                    scope.expired()
                    and task is not None
                    and task.cancelling() == 1
                    and remaining is not None
                    and remaining <= 0
                ):
                    raise _deadline_error(request.method, attempt, sent.value) from exc
                raise
            except BaseException as exc:
                # The same late run under trio: both scopes cancelled, the outer one
                # (the enclosing Timeout's) takes the cancellation, whose deadline
                # has passed. Whatever else (an interrupt, another cancellation
                # while a deadline still runs) propagates.
                remaining = rs.deadline.remaining()
                if (
                    isinstance(exc, Exception | KeyboardInterrupt | SystemExit | GeneratorExit)
                    or not scope.expired()
                    or remaining is None
                    or remaining > 0
                ):
                    raise
                raise _deadline_error(request.method, attempt, sent.value) from exc

        async def _send_once(
            self,
            request: httpx.Request,
            own: dict[str, Any] | None,
            found: Endpoint,
            path: str,
            sent: _Sent | None,
        ) -> httpx.Response:
            if own is not None or found.stream:  # a stream is read after the attempt
                _set_timeouts(request, own, found.timeout, path)
            if sent is not None:
                sent.start()
            try:
                response = await self._transport.handle_async_request(request)
                response.request = request
                try:
                    if response.status_code >= 400:
                        await _araise_for(response)
                    elif not found.stream and not response.is_closed:  # see _check_httpx
                        raw = b"".join([chunk async for chunk in response.aiter_raw()])
                        _reopen(response, raw)
                except BaseException:
                    await response.aclose()
                    raise
            except Exception as exc:  # the typed error of a transport's failure
                raise_typed(exc, request.method, path)
                raise
            return response

        async def aclose(self) -> None:
            await self._transport.aclose()

    return ProfileTransport, AsyncProfileTransport


def _deadline_error(method: str, attempt: Any, sent: bool) -> APITimeoutError:
    path = attempt.__name__.partition(" ")[2]
    if sent:
        message = "no answer before the deadline; the server may still complete it"
    else:
        message = "timed out before the request was sent"
    return APITimeoutError(
        f"{message} ({method} {path})", method=method, path=path, request_sent=sent
    )


class _Sent:
    """
    Whether the attempts of one call may have sent the request, from httpcore's trace.

    `True` once an attempt starts sending its headers; `True` as well for an
    attempt whose transport reports no trace at all (nothing known: it may have
    sent); `False` while every attempt was refused, waited for a connection, or
    was still connecting.
    """

    __slots__ = ("_inner", "_traced", "value")

    def __init__(self, request: httpx.Request) -> None:
        self.value = False
        self._traced = False
        self._inner = request.extensions.get("trace")
        # A dict of our own: the caller's may be shared (httpx's ``extensions=``).
        request.extensions = {**request.extensions, "trace": self._trace}

    def start(self) -> None:
        if not self._traced:
            self.value = True  # until a trace says otherwise
            self._traced = False

    async def _trace(self, name: str, info: dict[str, Any]) -> None:
        if not self._traced:
            self._traced = True
            self.value = False
        if name.endswith("send_request_headers.started"):
            self.value = True
        inner = self._inner
        if inner is not None:
            await inner(name, info)


def _httpx_settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings.setdefault("timeout", None)  # the endpoint map decides; a per-call timeout lowers it
    settings.setdefault("follow_redirects", True)  # as requests does: one behaviour for all three
    return settings


def client(base_url: str, virtual_key: str, **settings: Any) -> httpx.Client:
    """
    Return an `httpx.Client` for the SaaS LiteLLM API with the profile applied.

    The same behaviour as `session`, through a transport of the profile's
    own. The client has no default timeout of its own: the endpoint map
    decides, and a per-call ``timeout=`` lowers it. It follows redirects
    (``follow_redirects=False`` to refuse them), as `session` does.

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

    base = _check_base_url(base_url)
    headers = _auth(virtual_key)
    opts, rest = _split(dict(settings))
    inner = rest.pop("transport", None)
    transport = _transports()[0](opts, inner)
    return httpx.Client(
        base_url=base, headers=headers, transport=transport, **_httpx_settings(rest)
    )


def async_client(base_url: str, virtual_key: str, **settings: Any) -> httpx.AsyncClient:
    """
    Return an `httpx.AsyncClient` for the SaaS LiteLLM API with the profile applied.

    The same behaviour as `client`: the endpoint's `resilience.Timeout`
    cancels an attempt at its deadline, and a call under an enclosing
    deadline (``async with rs.Timeout(...)``) ends just before it with
    `APITimeoutError`, as in the sync clients.

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

    base = _check_base_url(base_url)
    headers = _auth(virtual_key)
    opts, rest = _split(dict(settings))
    inner = rest.pop("transport", None)
    transport = _transports()[1](opts, inner)
    return httpx.AsyncClient(
        base_url=base, headers=headers, transport=transport, **_httpx_settings(rest)
    )
