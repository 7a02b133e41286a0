"""The profile's classifier: typed errors, raw responses and raw transport errors, per the table."""

from __future__ import annotations

import httpx
import pytest
import requests

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm._classify import translate_exception, transport_kind
from resilience.profiles.saas_litellm.emulator import Emulator

from .emulator_helpers import Unresponsive, unused_port

pytest_plugins = ["tests.emulator_fixtures"]

IDEMPOTENT = saas.classifier(idempotent=True)
PAID = saas.classifier(idempotent=False)
PERMANENT = "LLM call failed: 500: No provider credentials configured for openai."
TRANSIENT = "LLM call failed: 500: Failed to call provider API: Connection error."


def response(status: int, text: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, text=text, headers=headers, request=httpx.Request("POST", "http://h/p")
    )


def verdicts(outcome: object) -> tuple[tuple[bool, bool, str | None], tuple[bool, bool]]:
    """(retry, trip, kind) on an idempotent endpoint, and (retry, trip) on a paid one."""
    a, b = IDEMPOTENT.classify(outcome), PAID.classify(outcome)
    return (a.retry, a.trip, a.kind), (b.retry, b.trip)


@pytest.mark.parametrize(
    ("error", "idempotent", "paid"),
    [
        (saas.BadRequestError("x", status=400), (False, False, "client"), (False, False)),
        (saas.AuthenticationError("x", status=401), (False, False, "client"), (False, False)),
        (saas.InsufficientCreditsError("x", status=403), (False, False, "client"), (False, False)),
        (saas.PermissionDeniedError("x", status=403), (False, False, "client"), (False, False)),
        (saas.NotFoundError("x", status=404), (False, False, "client"), (False, False)),
        (saas.ValidationError("x", status=422), (False, False, "client"), (False, False)),
        (saas.RateLimitError("x", status=429), (True, True, "rate_limit"), (True, True)),
        (
            saas.ServerError("x", status=500, detail=PERMANENT),
            (False, False, "server"),
            (False, False),
        ),
        (
            saas.ServerError("x", status=500, detail=TRANSIENT),
            (False, True, "server"),
            (False, True),
        ),
        (saas.ServerError("x", status=500, detail=None), (True, True, "server"), (False, True)),
        (
            saas.ServerError("x", status=500, detail="Internal Server Error"),
            (True, True, "server"),
            (False, True),
        ),
        (saas.ServerError("x", status=503), (True, True, "server"), (True, True)),
        (saas.ServerError("x", status=502), (True, True, "server"), (False, True)),
        (saas.ServerError("x", status=504), (True, True, "server"), (False, True)),
        (saas.ServerError("x", status=501), (False, False, "server"), (False, False)),
        (
            saas.APIConnectionError("x", request_sent=False),
            (True, True, "network"),
            (True, True),
        ),
        (saas.APITimeoutError("x", request_sent=False), (True, True, "timeout"), (True, True)),
        (saas.APIConnectionError("x", request_sent=True), (True, True, "network"), (False, True)),
        (saas.APITimeoutError("x", request_sent=True), (True, True, "timeout"), (False, True)),
        (
            saas.StreamError("x", detail="500: Connection error."),
            (False, True, "stream"),
            (False, True),
        ),
        (saas.StreamError("x", detail=PERMANENT), (False, False, "stream"), (False, False)),
        (rs.CircuitOpenError("saas", 3.0), (False, False, None), (False, False)),
        (ValueError("job_id must be a UUID"), (False, False, None), (False, False)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_typed_errors(
    error: Exception, idempotent: tuple[bool, bool, str | None], paid: tuple[bool, bool]
) -> None:
    """Each row of the table, on the typed exceptions."""
    assert verdicts(error) == (idempotent, paid)


PROVIDER_FAILED = "LLM call failed: 500: Failed to call provider API: "

TRANSIENT_DETAILS = [
    PROVIDER_FAILED + "Error code: 429 - Rate limit reached for gpt-4o-mini",
    PROVIDER_FAILED + "Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}",
    PROVIDER_FAILED + "Provider rate limit exceeded, please slow down",
    PROVIDER_FAILED + "Connection error.",
    PROVIDER_FAILED + "Request timed out.",
    PROVIDER_FAILED + "Server error '503 Service Unavailable' for url 'https://api.openai.com'",
    PROVIDER_FAILED + "Server error '502 Bad Gateway' for url 'https://api.anthropic.com'",
]
"""The server-behaviour page's transient causes: rate limit, 429, Connection error,
timed out, Server error '5..'."""

PERMANENT_DETAILS = [
    "LLM call failed: 500: No provider credentials configured for openai. "
    "Please add credentials in the admin dashboard.",
    PROVIDER_FAILED + "Provider routing requires organization context",
    PROVIDER_FAILED + "Error code: 401 - authentication failed: invalid x-api-key",
    PROVIDER_FAILED + "Error code: 400 - {'error': {'message': 'max_tokens is too large'}}",
    PROVIDER_FAILED + "Error code: 404 - The model `gpt-5` does not exist",
    PROVIDER_FAILED + "No module named 'anthropic'",
]
"""The server-behaviour page's permanent causes, one row each."""


def _500(detail: str, form: str) -> object:
    """A 500 with *detail*: the typed ServerError, or the raw JSON response of a user's own call."""
    if form == "typed":
        return saas.ServerError("x", status=500, detail=detail)
    return httpx.Response(500, json={"detail": detail}, request=httpx.Request("POST", "http://h/p"))


@pytest.mark.parametrize("form", ["typed", "raw"])
@pytest.mark.parametrize("detail", TRANSIENT_DETAILS)
def test_transient_causes_in_a_500_trip_but_are_not_retried(detail: str, form: str) -> None:
    """Issue 17.3: 'LLM call failed' with a transient cause counts toward the breaker, unretried.

    The server already tried the provider up to 9 times; retrying would make it
    27. Checked on the typed ServerError and on the raw response of a user's own call.
    """
    assert verdicts(_500(detail, form)) == ((False, True, "server"), (False, True))


def test_retry_ambiguous_retries_a_plain_500_but_never_a_provider_failure() -> None:
    """Issue 17.3: retry_ambiguous=True retries a paid call's plain 500, never 'LLM call failed'."""
    assert saas.classifier(True).classify(_500(TRANSIENT, "typed")).retry is False
    plain = saas.ServerError("x", status=500, detail="Internal Server Error")
    assert saas.Options(retry_ambiguous=True).retry(False).on.classify(plain).retry is True
    assert saas.Options().retry(False).on.classify(plain).retry is False


@pytest.mark.parametrize("form", ["typed", "raw"])
@pytest.mark.parametrize("detail", PERMANENT_DETAILS)
def test_permanent_causes_in_a_500_are_neither_retried_nor_counted(detail: str, form: str) -> None:
    """A 500 whose detail names a permanent cause is not retried and never trips the breaker."""
    assert verdicts(_500(detail, form)) == ((False, False, "server"), (False, False))


def test_retry_after_is_read_from_rate_limit_error() -> None:
    """The verdict of a RateLimitError carries its retry_after, which Retry takes as a floor."""
    assert (
        IDEMPOTENT.classify(saas.RateLimitError("x", status=429, retry_after=4.0)).retry_after == 4
    )


@pytest.mark.parametrize(
    ("outcome", "idempotent", "paid"),
    [
        (response(200, "{}"), (False, False, None), (False, False)),
        (response(404, "Job not found"), (False, False, "client"), (False, False)),
        (response(429, Retry_After="3"), (True, True, "rate_limit"), (True, True)),
        (response(500, f'{{"detail": "{PERMANENT}"}}'), (False, False, "server"), (False, False)),
        (response(500, "Internal Server Error"), (True, True, "server"), (False, True)),
        (response(502, "<html>"), (True, True, "server"), (False, True)),
        (response(503, "<html>"), (True, True, "server"), (True, True)),
    ],
    ids=["200", "404", "429", "500-permanent", "500-plain", "502", "503"],
)
def test_raw_responses(
    outcome: httpx.Response, idempotent: tuple[bool, bool, str | None], paid: tuple[bool, bool]
) -> None:
    """Raw responses returned by a user's own call are classified by status and detail."""
    assert verdicts(outcome) == (idempotent, paid)


def test_raw_http_status_error_with_permanent_detail() -> None:
    """httpx HTTPStatusError with a permanent 500 is not retried (detail read from .response)."""
    failed = response(500, f'{{"detail": "{PERMANENT}"}}')
    with pytest.raises(httpx.HTTPStatusError) as caught:
        failed.raise_for_status()
    assert verdicts(caught.value) == ((False, False, "server"), (False, False))


def test_raw_requests_http_error() -> None:
    """requests' HTTPError for a 503 is retried (status read from .response)."""
    failed = requests.Response()
    failed.status_code = 503
    error = requests.HTTPError("503", response=failed)
    assert verdicts(error) == ((True, True, "server"), (True, True))


def _raise_requests(url: str, timeout: float = 5.0) -> Exception:
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as error:
        return error
    raise AssertionError("no error")


def _raise_httpx(url: str, timeout: float = 5.0) -> Exception:
    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        return error
    raise AssertionError("no error")


@pytest.fixture(params=["requests", "httpx"])
def fail(request: pytest.FixtureRequest) -> object:
    """Raises a real transport error with requests or with httpx."""
    return _raise_requests if request.param == "requests" else _raise_httpx


def test_raw_connection_refused(fail: object) -> None:
    """A refused connection (never sent) is retried on any endpoint."""
    error = fail(f"http://127.0.0.1:{unused_port()}/")  # type: ignore[operator]
    assert transport_kind(error) == ("network", False)
    assert verdicts(error) == ((True, True, "network"), (True, True))


def test_raw_connect_timeout(fail: object, unresponsive: Unresponsive) -> None:
    """A connect timeout (never sent) is retried on any endpoint."""
    error = fail(f"http://127.0.0.1:{unresponsive.port}/", 0.1)  # type: ignore[operator]
    assert transport_kind(error) == ("timeout", False)
    assert verdicts(error) == ((True, True, "network"), (True, True))


def test_raw_read_timeout(fail: object, emu: Emulator) -> None:
    """A read timeout (the request was sent) is retried on idempotent endpoints only."""
    emu.script("health", "slow")
    error = fail(f"{emu.url}/health", 0.1)  # type: ignore[operator]
    assert transport_kind(error) == ("timeout", True)
    assert verdicts(error) == ((True, True, "timeout"), (False, True))


def test_raw_dropped_connection(fail: object, emu: Emulator) -> None:
    """A connection dropped after sending is retried on idempotent endpoints only."""
    emu.script("health", "drop")
    error = fail(f"{emu.url}/health")  # type: ignore[operator]
    assert transport_kind(error) == ("network", True)
    assert verdicts(error) == ((True, True, "network"), (False, True))


def test_deadline_expiry_is_an_ambiguous_timeout() -> None:
    """A Timeout's expiry may have left the request running on the server: ambiguous."""
    error = rs.TimeoutExceededError(1.0)
    assert verdicts(error) == ((True, True, "timeout"), (False, True))
    translated = translate_exception(error, "POST", "/p")
    assert isinstance(translated, saas.APITimeoutError)
    assert translated.request_sent is True


def test_earlier_attempts_do_not_leak_into_the_phase() -> None:
    """A read timeout raised while a refused connection is handled was still sent (regression).

    Under Retry, a later attempt's error is raised while the first one is
    being handled, so its implicit __context__ is that first error; only
    causes and wrapped exceptions say how this request failed.
    """
    error: BaseException | None = None
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as later:
            error = later
    assert error is not None
    assert isinstance(error.__context__, ConnectionRefusedError)
    assert transport_kind(error) == ("timeout", True)
    assert PAID.classify(error).retry is False


def test_builtin_errors_are_transport_errors() -> None:
    """Builtin refusals are never sent; resets may have been."""
    assert transport_kind(ConnectionRefusedError()) == ("network", False)
    assert transport_kind(ConnectionResetError()) == ("network", True)
    assert transport_kind(ValueError("x")) is None
    assert transport_kind(saas.ServerError("x")) is None


def test_translated_errors_name_the_request_only() -> None:
    """Translated errors say which request and why, and chain nothing but the cause."""
    error = translate_exception(ConnectionRefusedError(111, "Connection refused"), "POST", "/p")
    assert isinstance(error, saas.APIConnectionError)
    assert (error.method, error.path, error.request_sent) == ("POST", "/p", False)
    assert str(error).endswith("(POST /p)")


@pytest.mark.parametrize(
    ("detail", "permanent"),
    [
        (PERMANENT, True),
        ("Provider routing requires ORGANIZATION context", True),
        ("500: Authentication failed for upstream", True),
        ("Failed to call provider API: Error code: 400 - bad", True),
        ("Error code: 404 - model not found", True),
        ("No module named 'anthropic'", True),
        (TRANSIENT, False),
        ("Error code: 429 - rate limit", False),
        ("Internal Server Error", False),
        (None, False),
    ],
)
def test_permanent_causes(detail: str | None, permanent: bool) -> None:
    """The permanent causes are matched case-insensitively; everything else is transient."""
    assert saas.is_permanent(detail) is permanent


def test_classifiers_are_shared_and_immutable() -> None:
    """classifier() returns one of two shared classifiers."""
    assert saas.classifier() is saas.classifier(True) is IDEMPOTENT
    assert saas.classifier(False) is PAID
