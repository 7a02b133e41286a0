"""
requests integration: run every request of a `requests.Session` through a resilience pipeline.

Mount a `ResilientAdapter` on a session, or use `Session`, which mounts one::

    import requests
    import resilience as rs
    from resilience.integrations.requests import ResilientAdapter

    retry = rs.Retry(on=rs.transient, attempts=3)
    session = requests.Session()
    session.mount("https://api.example.com/", ResilientAdapter(rs.compose(retry, rs.Timeout(10.0))))

Per request, the adapter:

- runs the send through the pipeline (a fixed one, or one chosen per request
  by a factory ``(method, url) -> pipeline``), so that Retry re-sends it and a
  breaker counts it;
- passes the lowest of the caller's ``timeout=``, the adapter's own and
  `resilience.deadline.remaining()` to the socket, per attempt, so that no
  attempt outlives a `resilience.Timeout` around or inside the pipeline;
- lets the classifier see failed responses (a 503 that did not raise), with
  their body read, so that Retry honours their ``Retry-After``; when retries
  run out on a response, that last response is returned, as requests would.

Needs the ``requests`` extra. Importing `resilience` never imports this module.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, final
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.utils

import resilience as rs

from ._common import Policies, PolicySource, TimeoutSource, labelled, lowest

__all__ = ["ResilientAdapter", "Session"]

_Timeout: TypeAlias = "float | tuple[float | None, float | None] | None"

Check: TypeAlias = Callable[[requests.Response], object]


def _cap(timeout: Any, limit: float | None) -> Any:
    """Lower *timeout* (requests' forms: seconds or (connect, read)) to *limit*."""
    if limit is None:
        return timeout
    if timeout is None:
        return limit
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = timeout
        return (lowest(connect, limit), lowest(read, limit))
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return limit if timeout > limit else timeout  # no float(): an int may be beyond one
    return timeout  # a urllib3 Timeout object: the caller's own business


class ResilientAdapter(requests.adapters.HTTPAdapter):
    """
    A `requests.adapters.HTTPAdapter` that sends each request through a resilience pipeline.

    Args:
        policy: A `resilience.Pipeline` or policy applied to every request; or
            a callable ``(method, url) -> pipeline | policy | None`` choosing
            one per request (`None`: send it as is). Required.
        timeout: The adapter's own socket timeout in seconds (or a
            `datetime.timedelta`), or a callable
            ``(method, url) -> seconds | None``. The socket gets the lowest of
            this, the caller's ``timeout=`` and the time left before the
            deadline in force. Default: `None`.
        check: Called inside every attempt with the response, its body not
            yet read; it may raise to make the attempt fail (the profile's
            `raise_for_response`), in which case it owns reading or closing
            the response. Without it, the body of a response with status
            >= 400 is read, so that classifiers can match its text and the
            connection returns to the pool. Default: `None`.
        **kwargs: Passed to `requests.adapters.HTTPAdapter` (``pool_maxsize``, ...).

    Raises:
        TypeError: If *policy*, *timeout* or *check* has the wrong type.
        ValueError: If *timeout* is not a finite number > 0.

    .. versionadded:: 0.1.0
    """

    # requests pickles adapters attribute by attribute.
    __attrs__ = [  # noqa: RUF012 - requests declares it a plain list
        *requests.adapters.HTTPAdapter.__attrs__,
        "_policies",
        "_check",
    ]

    def __init__(
        self,
        policy: PolicySource,
        *,
        timeout: TimeoutSource = None,
        check: Check | None = None,
        **kwargs: Any,
    ) -> None:
        if check is not None and not callable(check):
            raise TypeError(f"check must be a callable taking a response, got {check!r}")
        self._policies = Policies(policy, timeout)
        self._check = check
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: _Timeout | Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send *request* through the pipeline; see the class docstring."""
        method = request.method or "GET"
        url = request.url or ""
        pipeline = self._policies.pipeline(method, url)
        own = self._policies.timeout(method, url)
        if pipeline is None:
            return self._attempt(request, stream, timeout, own, verify, cert, proxies)
        try:
            return pipeline.call(
                labelled(self._attempt, method, url),
                request,
                stream,
                timeout,
                own,
                verify,
                cert,
                proxies,
            )
        except rs.RetryExhaustedError as exc:
            if isinstance(exc.last_result, requests.Response):
                return exc.last_result
            raise

    def _attempt(
        self,
        request: requests.PreparedRequest,
        stream: bool,
        timeout: Any,
        own: float | None,
        verify: bool | str,
        cert: Any,
        proxies: Mapping[str, str] | None,
    ) -> requests.Response:
        if isinstance(getattr(request, "_body_position", None), int):
            requests.utils.rewind_body(request)  # a file body, read by a previous attempt
        socket_timeout = _cap(timeout, rs.deadline.cap(own))
        response = super().send(
            request,
            stream=stream,
            timeout=socket_timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )
        check = self._check
        if check is not None:
            try:
                check(response)
            except BaseException:
                response.close()
                raise
        if not stream or (check is None and response.status_code >= 400):
            # Read here, inside the attempt, what requests would read right after:
            # a connection dropped mid-body is then this attempt's failure, classified
            # and retried like any other (and an error's text is there for the rules).
            response.content  # noqa: B018
        return response


@final
class Session(requests.Session):
    """
    A `requests.Session` whose requests run through a resilience pipeline.

    It mounts a `ResilientAdapter` on *base_url*'s origin, or on every
    ``http://`` and ``https://`` URL without one, and accepts paths relative
    to *base_url*.

    Args:
        policy: As for `ResilientAdapter`. Required.
        base_url: Prefix of relative URLs, such as ``"https://api.example.com/v1"``;
            absolute URLs are sent as given. Default: `None`.
        timeout: As for `ResilientAdapter`.
        check: As for `ResilientAdapter`.
        **kwargs: Passed to the `ResilientAdapter` (and so to `HTTPAdapter`).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        policy: PolicySource,
        *,
        base_url: str | None = None,
        timeout: TimeoutSource = None,
        check: Check | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.base_url = None if base_url is None else base_url.rstrip("/")
        adapter = ResilientAdapter(policy, timeout=timeout, check=check, **kwargs)
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if not (parts.scheme and parts.netloc):
                raise ValueError(f"base_url must be an absolute http(s) URL, got {base_url!r}")
            self.mount(f"{parts.scheme}://{parts.netloc}/", adapter)
        else:
            self.mount("https://", adapter)
            self.mount("http://", adapter)

    def url_for(self, url: str | bytes) -> str:
        """Return *url* made absolute against `base_url` (unchanged when it is absolute)."""
        text = url.decode() if isinstance(url, bytes) else url
        if self.base_url is None or (text[:1] != "/" and urlsplit(text).scheme):
            return text  # (a path starting with "/" has no scheme: no need to parse it)
        return f"{self.base_url}/{text.lstrip('/')}"

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request; a relative *url* is resolved against `base_url`."""
        return super().request(method, self.url_for(url), *args, **kwargs)
