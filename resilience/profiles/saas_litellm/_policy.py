"""
Backoff and breaker settings, the breaker registry, and the pipeline factory.

The pipeline of one request is ``compose(retry, bulkhead, breaker, translate, timeout)``:

- ``retry``: 3 attempts, exponential backoff from 1 s (x2, cap 32 s, ±25 %),
  Retry-After as a floor, with the classifier for the endpoint's idempotency;
- ``bulkhead``: paid calls only, at most `PAID_CALLS` of them in flight per
  server in the process (the server holds a database connection for each);
- ``breaker``: by default one per route family of a server (jobs, teams,
  credits, other) and one per model alias for the LLM calls, counting every
  attempt: a local fault (one broken route, one broken model) never rejects
  calls to the rest;
- ``translate``: turns raw transport errors (and a Timeout's expiry) into the
  profile's typed `APIConnectionError` / `APITimeoutError`, so that Retry, the
  breaker and the caller all see typed errors;
- ``timeout``: the endpoint's timeout, per attempt, pushed as the deadline
  that the integrations pass to the socket.

Pipelines are built once per endpoint row, breaker and timeout, and cached on
the `Options`: a request only looks them up.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Final, Literal, TypeAlias, final
from urllib.parse import urlsplit

import attrs

import resilience as rs
from resilience.engine import fork_safe_lock

from ._classify import classifier, for_clients, translate_exception
from ._endpoints import ENDPOINTS, Endpoint, EndpointMap, family_of
from ._errors import APITimeoutError, redact

__all__ = [
    "ATTEMPTS",
    "BACKOFF",
    "FAILURE_THRESHOLD",
    "HALF_OPEN_MAX_CALLS",
    "MAX_RETRY_AFTER",
    "PAID_CALLS",
    "PAID_CALL_WAIT",
    "REPROBE_AFTER",
    "RESET_TIMEOUT",
    "BreakerOption",
    "Options",
    "breaker",
    "breaker_for",
    "options",
    "paid_calls",
    "paid_calls_for",
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

REPROBE_AFTER: Final = 5.0
"""
Seconds the breaker stays open after a failed probe, before the next probe (then `RESET_TIMEOUT`).

The server's first query after its database comes back always fails (a stale
connection pool): a single probe that meets it would keep the circuit open
for another full minute. A second probe soon after it closes the circuit within
one open period of the server's recovery; a server still down gets the next
one `RESET_TIMEOUT` later.
"""

HALF_OPEN_MAX_CALLS: Final = 1
"""Probes admitted while half-open, across all threads and tasks."""

PAID_CALLS: Final = 8
"""
Paid calls (LLM calls, create-and-call, the streams) in flight at once per server, per process.

The server holds a database connection for the whole of each one, from a pool
of 5 + 10: about 15 slow calls at once freeze it (every request then waits up
to 30 s and ends as a plain-text 500). 8 leaves room for its other requests
and for calls a client timed out on, which keep their connection until the
provider answers.
"""

BreakerOption: TypeAlias = "rs.CircuitBreaker | Literal['per-route', 'per-base-url'] | None"
"""A breaker to share, ``"per-route"`` or ``"per-base-url"`` (see `breaker_for`), or `None`."""

PaidCallsOption: TypeAlias = "rs.Bulkhead | int | None"
"""A bulkhead for the paid calls, a limit for the server's shared one, or `None` for none."""


@final
@attrs.frozen
class _ResetTimeout:
    """
    The breaker's open periods: `RESET_TIMEOUT`, and a short one after each failed probe.

    A `resilience.backoff.Backoff` over the openings since the circuit was
    last closed: odd openings (the first, and after a failed quick re-probe)
    last *period*, even ones (right after a failed probe) last *reprobe*.
    """

    period: float
    reprobe: float

    def __call__(self, attempt: int, previous: float, rng: random.Random, /) -> float:
        return self.period if attempt % 2 else self.reprobe

    def __repr__(self) -> str:
        return f"{self.period:g} s, then {self.reprobe:g} s after a failed probe"


def breaker(name: str = "saas-litellm", **overrides: Any) -> rs.CircuitBreaker:
    """
    Return a new `resilience.CircuitBreaker` with the profile's settings.

    5 consecutive failures open it for 60 s, then one probe decides; a failed
    probe gets a second chance 5 s later (`REPROBE_AFTER`: the server's first
    query after its database returns always fails), then 60 s again. It
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
        "reset_timeout": _ResetTimeout(RESET_TIMEOUT, REPROBE_AFTER),
        "half_open_max_calls": HALF_OPEN_MAX_CALLS,
    }
    settings.update(overrides)
    return rs.CircuitBreaker(**settings)


_REGISTRY: dict[tuple[str, str, str | None, object], rs.CircuitBreaker] = {}
_REGISTRY_LOCK = fork_safe_lock()
_MAX_MODELS: Final = 256  # model aliases with a breaker of their own, per server and clock

_ORIGINS: dict[str, str] = {}


def _origin(url: str) -> str:
    sep = url.find("://")
    if sep == -1:
        return ""
    cut = url.find("/", sep + 3)
    prefix = url if cut == -1 else url[:cut]  # a "?" or "#" in it: urlsplit tells, below
    found = _ORIGINS.get(prefix)
    if found is None:
        parts = urlsplit(prefix)
        if not parts.scheme or not parts.netloc:
            return ""
        # Without the user:password@ of a URL that carries credentials: the origin
        # names the breaker, which shows in events, logs and CircuitOpenError.
        host = parts.netloc.rpartition("@")[2]
        found = f"{parts.scheme.lower()}://{host.lower()}"
        if len(_ORIGINS) < 1024:
            _ORIGINS[prefix] = found
    return found


# The body's first "model" key (the LLM calls put it at the top level): a JSON
# string, escapes allowed, at most 200 characters.
_MODEL: Final = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.){0,200})"')
_PLAIN_MODEL: Final = re.compile(rb'"model"\s*:\s*"([^"\\]{0,200})"')


def _model_of(body: object) -> str | None:
    """The model alias an LLM call's JSON body names, or `None`."""
    data: bytes | bytearray
    if type(body) is bytes:  # what requests and httpx send for ``json=``
        data = body
    elif not body:
        return None
    elif isinstance(body, str):
        data = body.encode("utf-8", "replace")
    elif isinstance(body, bytearray):
        data = body
    else:
        return None  # a generator or a file: nothing to read without consuming it
    at = data.find(b'"model"')
    if at == -1:
        return None
    # The usual spellings, ``"model":"alias"`` (httpx) and ``"model": "alias"``
    # (requests), without escapes: _PLAIN_MODEL's match, found without it.
    if data.startswith(b':"', at + 7):
        start = at + 9
    elif data.startswith(b': "', at + 7):
        start = at + 10
    else:
        return _model_at(data, at)
    end = data.find(b'"', start)
    if 0 <= end - start <= 200 and data.find(b"\\", start, end) == -1:
        return data[start:end].decode("utf-8", "replace")
    return _model_at(data, at)


def _model_at(body: bytes | bytearray, at: int) -> str | None:
    """The model alias of `_MODEL`'s first match at or after *at* (the first ``"model"``)."""
    # Without escapes, the same match as _MODEL's (which tries an alternation per byte).
    found = _PLAIN_MODEL.match(body, at) or _MODEL.search(body, at)
    if found is None:
        return None
    return found.group(1).decode("utf-8", "replace")


def _path(url: str) -> str:
    if url[:1] == "/" and url[:2] != "//" and "?" not in url and "#" not in url:
        return url
    return urlsplit(url).path


def _model_key(model: str | None) -> str | None:
    if model is None:
        return None
    return model[:200]


def breaker_for(
    url: str,
    *,
    model: str | None = None,
    scope: Literal["per-route", "per-base-url"] = "per-route",
    clock: rs.Clock | None = None,
) -> rs.CircuitBreaker:
    """
    Return the process-wide breaker of a request's route family on a server.

    Every session, client and pipeline of the profile that is given no
    breaker of its own shares these, so that a failure is detected once,
    whichever code calls. With ``scope="per-route"`` (the default) a server
    has one breaker per route family, so that a local fault never becomes an
    outage: the LLM calls (llm-call, create-and-call, the streams) have one
    per model alias, and the other routes one per family, ``jobs``
    (create, get, complete, metadata, costs), ``teams``, ``credits`` and
    ``other``. A broken model alias, or a route that keeps failing, opens its
    own breaker only: jobs can still be created, read and completed.
    ``scope="per-base-url"`` gives the single breaker of a server. Relative
    URLs share breakers of their own.

    Args:
        url: A URL of the server (its origin, and its path for the family),
            or a path.
        model: The model alias of an LLM call (its body's ``model``). Default:
            `None` (the family's breaker; for the LLM calls, the one of calls
            that name no model).
        scope: ``"per-route"`` or ``"per-base-url"``. Default: ``"per-route"``.
        clock: The breaker's clock, for tests. Default: the system clock.
            Breakers with different clocks are different breakers.

    Returns:
        The shared `resilience.CircuitBreaker`, made with `breaker` on first
        use, named ``"saas-litellm <origin> <family>"`` (and ``model=<alias>``).
        It counts the exceptions of the table (what the profile's clients and
        `raise_for_response` raise), not returned responses: in your own
        calls, raise for a failed answer.

    Raises:
        ValueError: On an unknown *scope*.
    """
    if scope == "per-route":
        family = _family(url)
    elif scope == "per-base-url":
        family, model = "*", None
    else:
        raise ValueError(f"scope must be 'per-route' or 'per-base-url', got {scope!r}")
    return _shared_breaker(
        _origin(url), family, _model_key(model) if family == "llm" else None, clock
    )


def _family(url: str) -> str:
    try:
        found = ENDPOINTS.match("POST", url)  # every paid endpoint is a POST
    except ValueError:  # a job id that is not a UUID: not a request the profile sends
        found = None
    if found is not None and found.paid:
        return "llm"
    return family_of(_NO_ROW, url)


_NO_ROW: Final = Endpoint("GET", "*", 1.0, True)


def _shared_breaker(
    origin: str, family: str, model: str | None, clock: rs.Clock | None
) -> rs.CircuitBreaker:
    key = (origin, family, model, clock)
    found = _REGISTRY.get(key)  # a dict read is atomic: the lock only guards creation
    if found is not None:
        return found
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            if model is not None:
                models = sum(
                    1 for k in _REGISTRY if k[0] == origin and k[2] is not None and k[3] is clock
                )
                if models >= _MAX_MODELS:  # aliases beyond this share the family's breaker
                    return _REGISTRY.get((origin, family, None, clock)) or _shared_locked(
                        origin, family, None, clock
                    )
            found = _shared_locked(origin, family, model, clock)
        return found


def _shared_locked(
    origin: str, family: str, model: str | None, clock: rs.Clock | None
) -> rs.CircuitBreaker:
    key = (origin, family, model, clock)
    found = _REGISTRY.get(key)
    if found is None:
        name = "saas-litellm" + (f" {origin}" if origin else "")
        if family != "*":
            name += f" {family}"
        if model is not None:
            name += f" model={redact(model, 80)!r}"
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        # Exceptions only: the clients raise for every failed answer, and so does
        # raise_for_response in one's own calls; a returned response is not judged.
        # The classifier of the family's Retry (both trip alike): one verdict can
        # serve both.
        on = for_clients(family != "llm")
        found = _REGISTRY[key] = breaker(name, on=on, **extra)
    return found


_BULKHEADS: dict[tuple[str, int, object], rs.Bulkhead] = {}


def paid_calls_for(
    url: str, limit: int = PAID_CALLS, *, clock: rs.Clock | None = None
) -> rs.Bulkhead:
    """
    Return the process-wide bulkhead of a server's paid calls.

    At most *limit* paid calls (llm-call, create-and-call, the streams) run
    at once, across every session, client and pipeline of the profile in the
    process; the others wait, first come first served, until a slot frees up
    or their deadline passes. See `PAID_CALLS` for why.

    Args:
        url: A URL of the server (only its origin counts).
        limit: Paid calls at once. Default: `PAID_CALLS` (8).
        clock: The bulkhead's clock, for tests. Default: the system clock.

    Returns:
        The shared `resilience.Bulkhead`, made on first use.
    """
    origin = _origin(url)
    key = (origin, limit, clock)
    found = _BULKHEADS.get(key)
    if found is not None:
        return found
    with _REGISTRY_LOCK:
        found = _BULKHEADS.get(key)
        if found is None:
            extra: dict[str, Any] = {} if clock is None else {"clock": clock}
            name = "saas-litellm paid calls" + (f" {origin}" if origin else "")
            found = _BULKHEADS[key] = paid_calls(limit, name=name, **extra)
        return found


PAID_CALL_WAIT: Final = 60.0
"""Seconds a paid call may wait for a slot of the paid-call bulkhead (one LLM call's timeout)."""


def paid_calls(limit: int = PAID_CALLS, **overrides: Any) -> rs.Bulkhead:
    """
    Return a new paid-call `resilience.Bulkhead` with the profile's settings.

    *limit* calls at once; the others wait, first come first served, at most
    `PAID_CALL_WAIT` (60 s) and never past their deadline, then get
    `resilience.BulkheadFullError` (the profile's clients raise
    `APITimeoutError` when the deadline ended the wait).

    Args:
        limit: Paid calls at once. Default: `PAID_CALLS` (8).
        **overrides: Any other `resilience.Bulkhead` argument (``name=``,
            ``max_wait=``, ``clock=``, ...).

    Returns:
        A new bulkhead: share it between the clients of one server.
    """
    settings: dict[str, Any] = {
        "max_concurrent": limit,
        "max_queue": 100_000,
        "max_wait": PAID_CALL_WAIT,
        "name": "saas-litellm paid calls",
    }
    settings.update(overrides)
    return rs.Bulkhead(**settings)


# --- the translate policy -----------------------------------------------------------


def _where(fn: object, method: str, path: str) -> tuple[str, str]:
    """The request's method and path: a cached pipeline knows only its endpoint's template.

    The clients name each attempt ``"METHOD /path"`` (its target in events): the
    real path, job id included.
    """
    label = getattr(fn, "__name__", "")
    if label.startswith(method) and label[len(method) : len(method) + 2] == " /":
        return method, label[len(method) + 1 :]
    return method, path


def deadline_passed(method: str, path: str) -> APITimeoutError:
    """The error of a request not sent because its deadline had passed."""
    return APITimeoutError(
        f"timed out before the request was sent: the deadline had passed ({method} {path})",
        method=method,
        path=path,
        request_sent=False,
    )


def raise_typed(exc: Exception, method: str, path: str, fn: object = None) -> None:
    """
    Raise the typed error of *exc* if it is a raw transport error (chained, its notes kept).

    Returns otherwise: the caller, in its ``except`` block, re-raises *exc* with
    a bare ``raise``, its traceback untouched.
    """
    method, path = _where(fn, method, path)
    typed = translate_exception(exc, method, path)
    if typed is not None:
        for note in getattr(exc, "__notes__", ()):
            typed.add_note(note)
        raise typed from exc


@final
@attrs.frozen
class _Translate:
    """
    A policy raising the profile's typed errors for raw transport errors of one request.

    In the pipelines of `pipeline`, around the user's own calls. The profile's
    clients have none: their attempts translate what their transport raises.
    """

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
        remaining = rs.deadline.remaining

        def check_deadline(fn: object) -> None:
            # An attempt about to start after the deadline is not sent: say so here,
            # rather than let the Timeout's "not started" read as a lost answer.
            left = remaining()
            if left is not None and left <= 0:
                raise deadline_passed(*_where(fn, method, path))

        if shape is rs.Shape.SYNC:

            def run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                check_deadline(fn)
                try:
                    return inner(fn, args, kwargs)
                except Exception as exc:
                    raise_typed(exc, method, path, fn)
                    raise

            return run
        if shape is rs.Shape.ASYNC:

            async def arun(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                check_deadline(fn)
                try:
                    return await inner(fn, args, kwargs)
                except Exception as exc:
                    raise_typed(exc, method, path, fn)
                    raise

            return arun
        if shape is rs.Shape.GEN:

            def grun(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Generator[Any, Any, Any]:
                try:
                    return (yield from inner(fn, args, kwargs))
                except Exception as exc:
                    raise_typed(exc, method, path, fn)
                    raise

            return grun

        async def agrun(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for item in inner(fn, args, kwargs):
                    yield item
            except Exception as exc:
                raise_typed(exc, method, path, fn)
                raise

        return agrun


# --- options and the factory ----------------------------------------------------------


def _check_attempts(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"attempts must be an int >= 1, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"attempts must be >= 1, got {value!r}")


def _check_breaker(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or value in ("per-route", "per-base-url"):
        return
    if isinstance(value, rs.CircuitBreaker):
        return
    raise TypeError(
        "breaker must be a resilience.CircuitBreaker, 'per-route', 'per-base-url' or None, "
        f"got {type(value).__name__}: {value!r}"
    )


def _check_paid_calls(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or isinstance(value, rs.Bulkhead):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            "paid_calls must be an int >= 1 (the server's shared bulkhead), a "
            f"resilience.Bulkhead or None, got {type(value).__name__}: {value!r}"
        )
    if value < 1:
        raise ValueError(f"paid_calls must be >= 1, got {value!r}")


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
            dropped after sending, a 500 other than ``LLM call failed``, a
            plain-text one included, 502/504) on non-idempotent endpoints too,
            accepting duplicate paid calls. ``LLM call failed: ...`` is never
            retried. Default: `False`.
        breaker: A `resilience.CircuitBreaker` to use for every request,
            ``"per-route"`` for the shared ones of the request's route family
            and model alias (`breaker_for`), ``"per-base-url"`` for the single
            shared one of its server, or `None` for none. Default:
            ``"per-route"``.
        paid_calls: The bulkhead of the paid calls (llm-call, create-and-call,
            the streams): a limit, for the server's shared bulkhead of that
            size (`paid_calls_for`), a `resilience.Bulkhead` of your own, or
            `None` for no limit. Default: `PAID_CALLS` (8).
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
    breaker: BreakerOption = attrs.field(default="per-route", validator=_check_breaker)
    paid_calls: PaidCallsOption = attrs.field(default=PAID_CALLS, validator=_check_paid_calls)
    endpoints: EndpointMap = attrs.field(default=ENDPOINTS, validator=_check_endpoints)
    clock: rs.Clock | None = attrs.field(default=None, eq=False)
    _retries: tuple[rs.Retry, rs.Retry] = attrs.field(init=False, repr=False, eq=False)
    _client_retries: tuple[rs.Retry, rs.Retry] = attrs.field(init=False, repr=False, eq=False)
    # (method, row, origin, model, seconds) -> pipeline; filled as requests come.
    _cache: dict[tuple[Any, ...], rs.Pipeline] = attrs.field(
        init=False, repr=False, eq=False, factory=dict
    )

    def __attrs_post_init__(self) -> None:
        extra: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}

        def retries(classify: Callable[[bool], rs.ErrorClassifier]) -> tuple[rs.Retry, rs.Retry]:
            unsafe, safe = (
                rs.Retry(
                    on=classify(idempotent),
                    attempts=self.attempts,
                    backoff=self.backoff,
                    max_retry_after=self.max_retry_after,
                    name="saas-litellm",
                    **extra,
                )
                for idempotent in (False, True)
            )
            return unsafe, safe

        object.__setattr__(self, "_retries", retries(classifier))
        object.__setattr__(self, "_client_retries", retries(for_clients))

    def retry(self, idempotent: bool) -> rs.Retry:
        """Return the Retry for an endpoint (ambiguous failures retried when *idempotent*)."""
        return self._retries[idempotent or self.retry_ambiguous]

    def breaker_of(
        self, url: str, *, model: str | None = None, found: Endpoint | None = None
    ) -> rs.CircuitBreaker | None:
        """Return the breaker for a request to *url* (an LLM call's *model* alias), or `None`."""
        chosen = self.breaker
        if chosen == "per-route":
            origin = _origin(url)
            if found is None:
                family = _family(url)
            else:
                family = "llm" if found.paid else family_of(found, url)
            alias = _model_key(model) if family == "llm" else None
            return _shared_breaker(origin, family, alias, self.clock)
        if chosen == "per-base-url":
            return _shared_breaker(_origin(url), "*", None, self.clock)
        return chosen

    def bulkhead_of(self, url: str) -> rs.Bulkhead | None:
        """Return the bulkhead of a paid call to *url*, or `None`."""
        chosen = self.paid_calls
        if chosen is None or isinstance(chosen, rs.Bulkhead):
            return chosen
        return paid_calls_for(url, chosen, clock=self.clock)

    def endpoint(self, method: str, url: str) -> Endpoint:
        """Return the endpoint of a request in this options' map (see `endpoint`)."""
        return self.endpoints.match(method, url)

    def pipeline(
        self,
        method: str,
        url: str,
        *,
        timeout: float | None = None,
        model: str | None = None,
    ) -> rs.Pipeline:
        """Return the pipeline for one request (cached per endpoint and breaker); see `pipeline`."""
        if timeout is not None:
            _check_timeout(timeout)
        method = method.upper()
        found = self.endpoints.match(method, url)
        seconds = found.timeout if timeout is None else min(found.timeout, float(timeout))
        return self._pipeline(method, url, found, model if found.paid else None, seconds)

    def for_client(
        self, method: str, url: str, found: Endpoint, model: str | None, shape: rs.Shape
    ) -> rs.Pipeline:
        """
        Return the pipeline of a request the clients send (its endpoint found already).

        Retry, the bulkhead and the breaker; the endpoint's Timeout for a
        coroutine (*shape* ASYNC), which cancels the attempt at its deadline. A
        sync client's attempt gives the socket the endpoint's timeout itself,
        capped by the deadline in force: all that a sync Timeout around it would
        do (see `resilience.Timeout`: cooperative). Neither has `_Translate`:
        their attempts raise the typed errors of their own transport's failures.
        """
        clients: Literal["sync", "async"] = "async" if shape is rs.Shape.ASYNC else "sync"
        template = found.template
        if template != "*":  # the usual case, looked up here (see _pipeline)
            key = (method, template, _origin(url), model, found.timeout, clients)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        return self._pipeline(method, url, found, model, found.timeout, clients=clients)

    def _pipeline(
        self,
        method: str,
        url: str,
        found: Endpoint,
        model: str | None,
        seconds: float,
        *,
        clients: Literal["sync", "async"] | None = None,
    ) -> rs.Pipeline:
        template = found.template
        # A row's family is its template's; a catch-all's, its path's (the path is then kept).
        where = template if template != "*" else (_path(url) or "/")
        key = (method, where, _origin(url), model, seconds, clients)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        idempotent = found.idempotent or self.retry_ambiguous
        policies: list[Any] = [(self._client_retries if clients else self._retries)[idempotent]]
        if found.paid:
            bulkhead = self.bulkhead_of(url)
            if bulkhead is not None:
                policies.append(bulkhead)
        chosen = self.breaker_of(url, model=model, found=found)
        if chosen is not None:
            policies.append(chosen)
        if clients is None:
            policies.append(_Translate(method, where))
        if clients != "sync":
            policies.append(_timeout_policy(seconds, self.clock))  # type: ignore[arg-type]
        built = rs.compose(*policies)
        if len(self._cache) < 4096:
            self._cache[key] = built
        return built


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
    method: str,
    url: str,
    *,
    timeout: float | None = None,
    model: str | None = None,
    **settings: Any,
) -> rs.Pipeline:
    """
    Return the pipeline for one request: ``compose(retry, bulkhead, breaker, translate, timeout)``.

    The bulkhead is for paid calls only. Pipelines are cached per endpoint,
    breaker and timeout (the same settings give the same object).

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
        model: For an LLM call, its model alias, which has a breaker of its
            own. Default: `None`.
        **settings: `Options` settings (``attempts``, ``backoff``,
            ``max_retry_after``, ``retry_ambiguous``, ``breaker``,
            ``paid_calls``, ``endpoints``, ``clock``).

    Returns:
        A `resilience.Pipeline`.

    Raises:
        ValueError: If the URL's ``{job_id}`` is not a UUID (nothing is sent).
    """
    return options(**settings).pipeline(method, url, timeout=timeout, model=model)
