"""
Backoff and breaker settings, the breaker registry, and the pipeline factory.

The pipeline of one request is ``compose(retry, breaker, translate, timeout)``:

- ``retry``: 3 attempts, exponential backoff from 1 s (x2, cap 32 s, ±25 %),
  Retry-After as a floor, with the classifier for the endpoint's idempotency;
- ``breaker``: one per base URL by default, counting every attempt;
- ``translate``: turns raw transport errors (and a Timeout's expiry) into the
  profile's typed `APIConnectionError` / `APITimeoutError`, so that Retry, the
  breaker and the caller all see typed errors;
- ``timeout``: the endpoint's timeout, per attempt, pushed as the deadline
  that the integrations pass to the socket.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Final, Literal, TypeAlias, final
from urllib.parse import urlsplit

import attrs

import resilience as rs
from resilience.engine import fork_safe_lock

from ._classify import classifier, translate_exception
from ._endpoints import ENDPOINTS, Endpoint, EndpointMap

__all__ = [
    "ATTEMPTS",
    "BACKOFF",
    "FAILURE_THRESHOLD",
    "HALF_OPEN_MAX_CALLS",
    "MAX_RETRY_AFTER",
    "RESET_TIMEOUT",
    "BreakerOption",
    "Options",
    "breaker",
    "breaker_for",
    "options",
    "pipeline",
]

ATTEMPTS: Final = 3
"""Total tries of a request, the first included (the docs' "max_retries=3" also makes 3)."""

BACKOFF: Final = rs.backoff.exponential(initial=1.0, max=32.0, jitter=rs.backoff.proportional(0.25))
"""Exponential from 1 s, x2, capped at 32 s, ±25 % jitter: waits about 1 s, then 2 s."""

MAX_RETRY_AFTER: Final = 60.0
"""Seconds: a ``Retry-After`` longer than this makes Retry give up at once instead of sleeping."""

FAILURE_THRESHOLD: Final = 5
"""Consecutive failures (429, retryable 5xx, timeouts, connection errors) that open the breaker."""

RESET_TIMEOUT: Final = 60.0
"""Seconds the breaker stays open before it lets one probe through."""

HALF_OPEN_MAX_CALLS: Final = 1
"""Probes admitted while half-open, across all threads and tasks."""

BreakerOption: TypeAlias = "rs.CircuitBreaker | Literal['per-base-url'] | None"
"""A breaker to share, ``"per-base-url"`` (the registry's, see `breaker_for`), or `None`."""


def breaker(name: str = "saas-litellm", **overrides: Any) -> rs.CircuitBreaker:
    """
    Return a new `resilience.CircuitBreaker` with the profile's settings.

    5 consecutive failures open it for 60 s, then one probe decides; it
    counts 429, retryable 5xx, timeouts and connection errors, never a 4xx
    (``on=classifier()``).

    Args:
        name: Its label in events and `resilience.CircuitOpenError`.
            Default: ``"saas-litellm"``.
        **overrides: Any other `resilience.CircuitBreaker` argument
            (``reset_timeout=``, ``clock=``, ``hooks=``, ...).

    Returns:
        A new breaker: one circuit, to share between the sessions and clients
        of one server.
    """
    settings: dict[str, Any] = {
        "on": classifier(),
        "name": name,
        "failure_threshold": FAILURE_THRESHOLD,
        "reset_timeout": RESET_TIMEOUT,
        "half_open_max_calls": HALF_OPEN_MAX_CALLS,
    }
    settings.update(overrides)
    return rs.CircuitBreaker(**settings)


_REGISTRY: dict[tuple[str, object], rs.CircuitBreaker] = {}
_REGISTRY_LOCK = fork_safe_lock()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    # Without the user:password@ of a URL that carries credentials: the origin
    # names the breaker, which shows in events, logs and CircuitOpenError.
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme.lower()}://{host.lower()}"


def breaker_for(url: str, *, clock: rs.Clock | None = None) -> rs.CircuitBreaker:
    """
    Return the process-wide breaker of a server: one per base URL (scheme, host and port).

    Every session, client and pipeline of the profile that is given no
    breaker of its own shares it, so that a server that is down is detected
    once, whichever code calls it. Relative URLs share one breaker of their own.

    Args:
        url: Any URL of the server (only its origin counts), or a path.
        clock: The breaker's clock, for tests. Default: the system clock.
            Breakers with different clocks are different breakers.

    Returns:
        The shared `resilience.CircuitBreaker`, made with `breaker` on first use.
    """
    origin = _origin(url)
    key = (origin, clock)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            name = f"saas-litellm {origin}" if origin else "saas-litellm"
            extra: dict[str, Any] = {} if clock is None else {"clock": clock}
            found = _REGISTRY[key] = breaker(name, **extra)
        return found


# --- the translate policy -----------------------------------------------------------


def _typed(exc: Exception, method: str, path: str) -> Exception:
    typed = translate_exception(exc, method, path)
    if typed is None:
        return exc
    for note in getattr(exc, "__notes__", ()):
        typed.add_note(note)
    return typed


@final
@attrs.frozen
class _Translate:
    """A policy raising the profile's typed errors for raw transport errors of one request."""

    method: str
    path: str

    def describe(self) -> rs.Description:
        """Say what the policy does, for `resilience.Pipeline.explain`."""
        return rs.Description(
            title=f"translate ({self.method} {self.path}): raw transport errors become "
            "APIConnectionError / APITimeoutError",
            details=(
                "so that Retry, the breaker and the caller see the profile's typed errors "
                "(request_sent tells a connect failure from a lost answer)",
            ),
        )

    def bind(self, inner: Any, shape: rs.Shape, /) -> Any:
        method, path = self.method, self.path
        if shape is rs.Shape.SYNC:

            def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                try:
                    return inner(fn, args, kwargs)
                except Exception as exc:
                    typed = _typed(exc, method, path)
                    if typed is exc:
                        raise
                    raise typed from exc

            return run
        if shape is rs.Shape.ASYNC:

            async def arun(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                try:
                    return await inner(fn, args, kwargs)
                except Exception as exc:
                    typed = _typed(exc, method, path)
                    if typed is exc:
                        raise
                    raise typed from exc

            return arun
        if shape is rs.Shape.GEN:

            def grun(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Generator[Any, Any, Any]:
                try:
                    return (yield from inner(fn, args, kwargs))
                except Exception as exc:
                    typed = _typed(exc, method, path)
                    if typed is exc:
                        raise
                    raise typed from exc

            return grun

        async def agrun(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for item in inner(fn, args, kwargs):
                    yield item
            except Exception as exc:
                typed = _typed(exc, method, path)
                if typed is exc:
                    raise
                raise typed from exc

        return agrun


# --- options and the factory ----------------------------------------------------------


def _check_attempts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"attempts must be an int >= 1, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"attempts must be >= 1, got {value!r}")


def _check_breaker(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or value == "per-base-url" or isinstance(value, rs.CircuitBreaker):
        return
    raise TypeError(
        "breaker must be a resilience.CircuitBreaker, 'per-base-url' or None, "
        f"got {type(value).__name__}: {value!r}"
    )


def _check_endpoints(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, EndpointMap):
        raise TypeError(f"endpoints must be an EndpointMap, got {type(value).__name__}")


def _check_timeout(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be seconds (a number) or None, got {value!r}")
    if not value > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {value!r}")


@functools.lru_cache(maxsize=256)
def _timeout_policy(seconds: float, clock: Any) -> rs.Timeout:
    if clock is None:
        return rs.Timeout(seconds, name="saas-litellm")
    return rs.Timeout(seconds, name="saas-litellm", clock=clock)


@final
@attrs.frozen(kw_only=True)
class Options:
    """
    The profile's settings for one session, client or pipeline; immutable.

    Every profile function that builds pipelines takes these as keyword
    arguments (``session(url, key, attempts=5)``); build one with
    ``Options(attempts=5, ...)`` to pass to `explain`.

    Attributes:
        attempts: Total tries per request, the first included. Default: 3.
        backoff: Delay before each retry, a `resilience.backoff.Backoff`.
            Default: `BACKOFF`.
        max_retry_after: Seconds; a longer ``Retry-After`` makes Retry give
            up at once. Default: 60.0. `None`: no limit.
        retry_ambiguous: Retry ambiguous failures (read timeouts, connections
            dropped after sending, 502/504) on non-idempotent endpoints too,
            accepting duplicate paid calls. Default: `False`.
        breaker: A `resilience.CircuitBreaker` to use, ``"per-base-url"`` for
            the shared one of the request's server (`breaker_for`), or `None`
            for none. Default: ``"per-base-url"``.
        endpoints: The endpoint map. Default: `ENDPOINTS`.
        clock: The clock of Retry, Timeout and registry breakers, for tests.
            Default: `None` (the system clock).

    Raises:
        TypeError, ValueError: On bad values, at construction.
    """

    attempts: int = attrs.field(default=ATTEMPTS, validator=_check_attempts)
    backoff: rs.backoff.Backoff = attrs.field(default=BACKOFF)
    max_retry_after: float | None = attrs.field(default=MAX_RETRY_AFTER)
    retry_ambiguous: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    breaker: BreakerOption = attrs.field(default="per-base-url", validator=_check_breaker)
    endpoints: EndpointMap = attrs.field(default=ENDPOINTS, validator=_check_endpoints)
    clock: rs.Clock | None = attrs.field(default=None, eq=False)
    _retries: tuple[rs.Retry, rs.Retry] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        extra: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}
        retries = tuple(
            rs.Retry(
                on=classifier(idempotent),
                attempts=self.attempts,
                backoff=self.backoff,
                max_retry_after=self.max_retry_after,
                name="saas-litellm",
                **extra,
            )
            for idempotent in (False, True)
        )
        object.__setattr__(self, "_retries", retries)

    def retry(self, idempotent: bool) -> rs.Retry:
        """Return the Retry for an endpoint (ambiguous failures retried when *idempotent*)."""
        return self._retries[idempotent or self.retry_ambiguous]

    def breaker_of(self, url: str) -> rs.CircuitBreaker | None:
        """Return the breaker for a request to *url*, or `None`."""
        chosen = self.breaker
        if chosen == "per-base-url":
            return breaker_for(url, clock=self.clock)
        return chosen

    def endpoint(self, method: str, url: str) -> Endpoint:
        """Return the endpoint of a request in this options' map (see `endpoint`)."""
        return self.endpoints.match(method, url)

    def pipeline(self, method: str, url: str, *, timeout: float | None = None) -> rs.Pipeline:
        """Return the pipeline for one request; see `pipeline`."""
        _check_timeout(timeout)
        method = method.upper()
        found = self.endpoints.match(method, url)
        seconds = found.timeout if timeout is None else min(found.timeout, float(timeout))
        policies: list[Any] = [self.retry(found.idempotent)]
        chosen = self.breaker_of(url)
        if chosen is not None:
            policies.append(chosen)
        policies.append(_Translate(method, urlsplit(url).path or "/"))
        policies.append(_timeout_policy(seconds, self.clock))  # type: ignore[arg-type]
        return rs.compose(*policies)


@functools.lru_cache(maxsize=64)
def _cached_options(**settings: Any) -> Options:
    return Options(**settings)


def options(**settings: Any) -> Options:
    """
    Return the `Options` for these keyword settings (shared when they are equal).

    Raises:
        TypeError: On an unknown setting or a bad value.
    """
    try:
        return _cached_options(**settings)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return Options(**settings)


def pipeline(
    method: str, url: str, *, timeout: float | None = None, **settings: Any
) -> rs.Pipeline:
    """
    Return the composed pipeline for one request: ``compose(retry, breaker, translate, timeout)``.

    Use it on your own calls, as a decorator or with `resilience.Pipeline.call`;
    pass ``rs.deadline.remaining()`` as the socket timeout inside, and
    `raise_for_response` on the response::

        @saas.pipeline("POST", f"{API_URL}/api/jobs/create")
        def create_job(payload: dict) -> dict:
            response = requests.post(url, json=payload, headers=headers,
                                     timeout=rs.deadline.remaining())
            return saas.raise_for_response(response).json()

    Args:
        method: The request's method.
        url: Its URL (absolute, so that the breaker is the server's) or path.
        timeout: Seconds; lowers the endpoint's timeout, never raises it.
            Default: `None` (the endpoint's).
        **settings: `Options` settings (``attempts``, ``backoff``,
            ``max_retry_after``, ``retry_ambiguous``, ``breaker``,
            ``endpoints``, ``clock``).

    Returns:
        A `resilience.Pipeline`.

    Raises:
        ValueError: If the URL's ``{job_id}`` is not a UUID (nothing is sent).
    """
    return options(**settings).pipeline(method, url, timeout=timeout)
