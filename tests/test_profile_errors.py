"""The profile's typed exceptions and `raise_for_response`, on real requests and httpx responses."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest
import requests

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator

from .forms import run_async

pytest_plugins = ["tests.emulator_fixtures"]

URL = "https://api.example.com/api/jobs/create"


def make(status: int, *, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    """A real httpx response, as a transport returns it, for a POST to URL."""
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", URL), **body)


def raw_get(client: str, url: str, **kwargs: Any) -> Any:
    """GET with a bare requests or httpx call (no profile)."""
    if client == "requests":
        return requests.get(url, timeout=5, **kwargs)
    return httpx.get(url, timeout=5, **kwargs)


@pytest.fixture(params=["requests", "httpx"])
def raw(request: pytest.FixtureRequest) -> str:
    """The bare client a test uses: requests or httpx."""
    return str(request.param)


# --- the tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (saas.BadRequestError, (saas.APIError,)),
        (saas.AuthenticationError, (saas.APIError,)),
        (saas.PermissionDeniedError, (saas.APIError,)),
        (saas.InsufficientCreditsError, (saas.PermissionDeniedError,)),
        (saas.NotFoundError, (saas.APIError,)),
        (saas.ValidationError, (saas.APIError,)),
        (saas.RateLimitError, (saas.APIError,)),
        (saas.ServerError, (saas.APIError,)),
        (saas.APIConnectionError, (saas.APIError,)),
        (saas.APITimeoutError, (saas.APIConnectionError, TimeoutError)),
        (saas.StreamError, (saas.APIError, rs.StreamInterruptedError)),
    ],
)
def test_exception_tree(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    """Each exception sits where the tree says, its module the public one."""
    for base in bases:
        assert issubclass(cls, base)
    assert cls.__module__ == "resilience.profiles.saas_litellm"


@pytest.mark.parametrize(
    "error",
    [
        saas.NotFoundError(
            "404 Not Found", status=404, detail="Job not found", method="GET", path="/x"
        ),
        saas.ValidationError(
            "422",
            status=422,
            errors=[saas.FieldError(("body", "model"), "Field required", "missing")],
        ),
        saas.RateLimitError("429", status=429, retry_after=2.5),
        saas.APIConnectionError("refused", request_sent=False, method="POST", path="/p"),
        saas.APITimeoutError("slow", request_sent=True, method="POST", path="/p"),
        saas.StreamError("broke", partial=[{"a": 1}], text="he", status=500, detail="500: x"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_exceptions_pickle_with_their_fields_and_notes(error: saas.APIError) -> None:
    """Every typed exception survives pickling: message, fields and PEP 678 notes."""
    error.add_note("resilience: gave up after 3 attempts")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
    assert copy.__notes__ == error.__notes__


def test_api_timeout_error_message_is_plain() -> None:
    """APITimeoutError is a builtin TimeoutError whose str() is its message, no errno."""
    error = saas.APITimeoutError("no answer in time", request_sent=True)
    assert str(error) == "no answer in time"
    assert error.errno is None


# --- raise_for_response ----------------------------------------------------------------


def test_success_returns_the_response() -> None:
    """Below 400, raise_for_response returns the response itself, for chaining."""
    response = make(200, json={"job_id": "x"})
    assert saas.raise_for_response(response) is response


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, saas.BadRequestError),
        (401, saas.AuthenticationError),
        (403, saas.PermissionDeniedError),
        (404, saas.NotFoundError),
        (405, saas.BadRequestError),
        (409, saas.BadRequestError),
        (422, saas.ValidationError),
        (429, saas.RateLimitError),
        (500, saas.ServerError),
        (501, saas.ServerError),
        (502, saas.ServerError),
        (503, saas.ServerError),
        (504, saas.ServerError),
    ],
)
def test_status_maps_to_class(status: int, cls: type[saas.APIError]) -> None:
    """Each failing status raises its class; other 4xx are BadRequestError."""
    with pytest.raises(cls) as caught:
        saas.raise_for_response(make(status, json={"detail": "nope"}))
    assert (caught.value.status, caught.value.detail) == (status, "nope")
    assert (caught.value.method, caught.value.path) == ("POST", "/api/jobs/create")


def test_403_mentioning_credits_is_insufficient_credits() -> None:
    """A 403 whose detail mentions credits is InsufficientCreditsError, whatever the case."""
    with pytest.raises(saas.InsufficientCreditsError):
        saas.raise_for_response(
            make(403, json={"detail": "Team suspended or insufficient CREDITS"})
        )


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b"Internal Server Error", "text/plain; charset=utf-8", "Internal Server Error"),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            "502 Bad Gateway",
        ),
        (b"<html><body><h1>Upstream sad</h1></body></html>", "text/html", "Upstream sad"),
        (b"<html><body>no title</body></html>", "text/html", "an HTML error page"),
        (b"", "text/plain", None),
        (b"{not json", "application/json", "{not json"),
        (
            b'{"error": {"message": "upstream overloaded"}}',
            "application/json",
            "upstream overloaded",
        ),
        (b'{"message": "plain message"}', "application/json", "plain message"),
        (b'{"detail": {"code": 7}}', "application/json", '{"code":7}'),
        (b'["a", "b"]', "application/json", "a; b"),
        (b"\xff\xfe not utf-8", "text/plain", "\ufffd\ufffd not utf-8"),
    ],
    ids=[
        "plain",
        "html-title",
        "html-h1",
        "html-bare",
        "empty",
        "broken-json",
        "openai-error",
        "message",
        "detail-object",
        "list",
        "bytes",
    ],
)
def test_bodies_of_any_kind_are_normal_input(
    body: bytes, content_type: str, detail: str | None
) -> None:
    """Plain text, HTML, empty, broken or odd JSON bodies give a detail, never a crash."""
    response = make(500, content=body, headers={"content-type": content_type})
    with pytest.raises(saas.ServerError) as caught:
        saas.raise_for_response(response)
    assert caught.value.detail == detail


def test_422_errors_are_parsed_without_input() -> None:
    """A 422 list becomes FieldError values: path, message and type; the echoed input is dropped."""
    detail = [
        {"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": {"k": 1}},
        {"type": "string_type", "loc": ["body", "messages", 0, "role"], "msg": "Bad", "input": 3},
        "odd entry",
    ]
    with pytest.raises(saas.ValidationError) as caught:
        saas.raise_for_response(make(422, json={"detail": detail}))
    errors = caught.value.errors
    assert errors[0] == saas.FieldError(("body", "model"), "Field required", "missing")
    assert errors[1].field == "messages.0.role"
    assert errors[2] == saas.FieldError((), "odd entry", "unknown")
    assert "model: Field required" in str(caught.value)
    assert "'k'" not in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_429_reads_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """RateLimitError.retry_after comes from Retry-After (seconds or date) or retry-after-ms."""
    with pytest.raises(saas.RateLimitError) as caught:
        saas.raise_for_response(make(429, headers=headers, json={"detail": "slow down"}))
    assert caught.value.retry_after == expected


def test_secrets_are_redacted_from_details() -> None:
    """A virtual key or bearer token echoed by a server never reaches the exception."""
    key = "sk-" + "a1" * 16
    body = {"detail": f"bad key {key} in 'Authorization: Bearer {key}' header"}
    with pytest.raises(saas.AuthenticationError) as caught:
        saas.raise_for_response(make(401, json=body))
    assert key not in str(caught.value)
    assert key not in (caught.value.detail or "")
    assert "sk-***" in str(caught.value)


@pytest.mark.parametrize(
    ("detail", "secret"),
    [
        ("rejected token_sk-" + "b2" * 16, "b2" * 16),
        ("echo: authorization: basic dXNlcjpodW50ZXIyMDI0", "dXNlcjpodW50ZXIyMDI0"),
        ("echo {'Proxy-Authorization': 'ApiKey 9f8e7d6c5b4a39281706'}", "9f8e7d6c5b4a39281706"),
    ],
    ids=["key-after-underscore", "basic-any-case", "other-scheme-in-a-repr"],
)
def test_every_form_of_credential_is_redacted_from_details(detail: str, secret: str) -> None:
    """Keys glued to other words and Authorization values of any scheme never reach the error."""
    with pytest.raises(saas.AuthenticationError) as caught:
        saas.raise_for_response(make(401, json={"detail": detail}))
    assert secret not in str(caught.value)
    assert secret not in (caught.value.detail or "")


def test_deeply_nested_json_body_is_normal_input() -> None:
    """A body nested beyond the JSON parser's depth is not a crash: a typed error."""
    with pytest.raises(saas.ServerError) as caught:
        saas.raise_for_response(
            make(500, content=b"[" * 100_000, headers={"content-type": "application/json"})
        )
    assert caught.value.status == 500


def test_long_details_are_shortened() -> None:
    """Details are cut to 300 characters on one line."""
    with pytest.raises(saas.ServerError) as caught:
        saas.raise_for_response(make(500, text="x\n" * 1000))
    assert caught.value.detail is not None
    assert len(caught.value.detail) == 300
    assert "\n" not in str(caught.value)


def test_unread_async_response_gives_no_detail(backend: str) -> None:
    """An unread async httpx response cannot be read from sync code: no detail, no crash."""

    async def stream() -> Any:
        yield b"Internal Server Error"

    async def main() -> saas.APIError:
        response = httpx.Response(500, content=stream(), request=httpx.Request("GET", URL))
        try:
            saas.raise_for_response(response)
        except saas.APIError as error:
            await response.aclose()
            return error
        raise AssertionError("did not raise")

    error = run_async(main, backend)
    assert (error.status, error.detail) == (500, None)


# --- on the wire, per client --------------------------------------------------------------


def test_plain_text_500_from_the_server(raw: str, emu: Emulator) -> None:
    """GET /api/jobs/create answers a plain-text 500: ServerError, detail read from the text."""
    response = raw_get(raw, f"{emu.url}/api/jobs/create", headers=_auth(emu))
    with pytest.raises(saas.ServerError) as caught:
        saas.raise_for_response(response)
    assert caught.value.detail == "Internal Server Error"
    assert caught.value.path == "/api/jobs/create"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Missing Authorization header. Expected: 'Authorization: Bearer sk-xxx...'"),
        (
            {"Authorization": "Token abc"},
            "Invalid Authorization header format. Expected: 'Authorization: Bearer sk-xxx...'",
        ),
        ({"Authorization": "Bearer sk-" + "b" * 32}, "Invalid API key"),
    ],
    ids=["missing", "format", "unknown"],
)
def test_401_details_from_the_server(
    raw: str, emu: Emulator, headers: dict[str, str], detail: str
) -> None:
    """The server's three 401 details reach AuthenticationError.detail (the key does not)."""
    response = raw_get(
        raw, f"{emu.url}/api/jobs/00000000-0000-4000-8000-000000000000", headers=headers
    )
    with pytest.raises(saas.AuthenticationError) as caught:
        saas.raise_for_response(response)
    assert caught.value.detail == detail
    assert "b" * 32 not in str(caught.value)


def test_html_503_from_a_gateway(raw: str, emu: Emulator) -> None:
    """A gateway's HTML 503 page gives ServerError with its title as the detail."""
    emu.script("health", "unavailable")
    with pytest.raises(saas.ServerError) as caught:
        saas.raise_for_response(raw_get(raw, f"{emu.url}/health"))
    assert caught.value.detail == "503 Service Unavailable"
    assert str(caught.value) == "503 Service Unavailable (GET /health)"


def test_streaming_failure_is_read(raw: str, emu: Emulator) -> None:
    """A failed streaming response is read by raise_for_response (requests and sync httpx)."""
    emu.script("health", "rate_limit")
    response: Any
    if raw == "requests":
        response = requests.get(f"{emu.url}/health", stream=True, timeout=5)
    else:
        client = httpx.Client()
        response = client.send(client.build_request("GET", f"{emu.url}/health"), stream=True)
    try:
        with pytest.raises(saas.RateLimitError) as caught:
            saas.raise_for_response(response)
    finally:
        response.close()
        if raw == "httpx":
            client.close()
    assert caught.value.detail == "Rate limit exceeded"
    assert caught.value.retry_after == emu.retry_after


def _auth(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.virtual_key}"}
