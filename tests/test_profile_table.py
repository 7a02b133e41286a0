"""
The SaaS LiteLLM profile's retry table, row by row, through real requests and httpx clients.

Every test runs three times: the profile's requests `session`, its httpx
`client` and its httpx `async_client`, against the emulator on 127.0.0.1.
Retry sleeps on a fake clock; the only real waits are the short socket
timeouts that rows about timeouts need.
"""

from __future__ import annotations

import pytest

from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock

from .emulator_helpers import CHAT, Client, Unresponsive, unused_port
from .forms import eventually

pytest_plugins = ["tests.emulator_fixtures"]

UUID = "00000000-0000-4000-8000-000000000000"


def test_400_is_bad_request_not_retried(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """400 (from a proxy, HTML body): BadRequestError, no retry."""
    emu.script("create", "bad_request")
    with pytest.raises(saas.BadRequestError) as caught:
        api.create_job()
    assert caught.value.status == 400
    assert caught.value.detail == "400 Bad Request"
    assert emu.stats().by_route["create"] == 1
    assert clock.sleeps == []


def test_401_is_authentication_error_not_retried(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """401 (unknown key): AuthenticationError, no retry, and the key is nowhere in the message."""
    wrong = "sk-" + "0" * 32
    client = Client(kind, emu.url, wrong, clock=clock, breaker=None)
    try:
        with pytest.raises(saas.AuthenticationError) as caught:
            client.create_job()
    finally:
        client.close()
    assert caught.value.detail == "Invalid API key"
    assert wrong not in str(caught.value)
    assert emu.stats().by_route["create"] == 1


def test_403_credits_is_insufficient_credits(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """403 whose detail mentions credits: InsufficientCreditsError (a PermissionDeniedError)."""
    job_id = api.create_job()
    emu.script("llm-call", "insufficient_credits")
    with pytest.raises(saas.InsufficientCreditsError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert isinstance(caught.value, saas.PermissionDeniedError)
    assert emu.stats().by_route["llm-call"] == 1
    assert clock.sleeps == []


def test_403_suspended_is_permission_denied(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """403 (team suspended): PermissionDeniedError, no retry."""
    client = Client(kind, emu.url, emu.keys["suspended-co"], clock=clock, breaker=None)
    try:
        with pytest.raises(saas.PermissionDeniedError) as caught:
            client.create_job("suspended-co")
    finally:
        client.close()
    assert not isinstance(caught.value, saas.InsufficientCreditsError)
    assert caught.value.detail == "Team access is suspended. Please contact support."
    assert emu.stats().by_route["create"] == 1


@pytest.mark.parametrize(
    ("route", "extra"),
    [("create", {}), ("create-and-call", CHAT)],
    ids=["create", "create-and-call"],
)
def test_403_team_mismatch_is_permission_denied(
    api: Client, emu: Emulator, clock: FakeClock, route: str, extra: dict[str, object]
) -> None:
    """403 (body team_id is not the key's team): PermissionDeniedError, not
    InsufficientCreditsError, no retry; nothing is created."""
    body = {"team_id": "globex", "job_type": "t", **extra}
    with pytest.raises(saas.PermissionDeniedError) as caught:
        api.post(f"/api/jobs/{route}", json=body)
    assert not isinstance(caught.value, saas.InsufficientCreditsError)
    assert (caught.value.status, caught.value.detail) == (
        403,
        "API key does not belong to team 'globex'",
    )
    stats = emu.stats()
    assert (stats.requests, stats.by_route[route], stats.jobs) == (1, 1, 0)
    assert clock.sleeps == []


def test_403_model_access_is_permission_denied(api: Client, emu: Emulator) -> None:
    """403 (model not allowed): PermissionDeniedError, no retry."""
    job_id = api.create_job()
    with pytest.raises(saas.PermissionDeniedError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json={**CHAT, "model": "gpt-9"})
    assert caught.value.detail == "Team 'acme-corp' does not have access to model group 'gpt-9'"
    assert emu.stats().by_route["llm-call"] == 1


def test_404_is_not_found(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """404 (unknown job): NotFoundError, no retry."""
    with pytest.raises(saas.NotFoundError) as caught:
        api.get(f"/api/jobs/{UUID}")
    assert (caught.value.status, caught.value.detail) == (404, "Job not found")
    assert (caught.value.method, caught.value.path) == ("GET", f"/api/jobs/{UUID}")
    assert clock.sleeps == []


def test_422_is_validation_error_with_field_errors(api: Client, emu: Emulator) -> None:
    """422: ValidationError whose .errors hold field path, message and type, never the input."""
    job_id = api.create_job()
    secret = "my private prompt"
    with pytest.raises(saas.ValidationError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json={"messages": [{"content": secret}]})
    assert caught.value.errors == [saas.FieldError(("body", "model"), "Field required", "missing")]
    assert caught.value.errors[0].field == "model"
    assert secret not in str(caught.value)
    assert emu.stats().by_route["llm-call"] == 1


def test_429_is_retried_no_sooner_than_retry_after(
    api: Client, emu: Emulator, clock: FakeClock
) -> None:
    """429: retried, and the wait is at least the server's Retry-After (a floor)."""
    emu.script("create", "rate_limit", "ok")
    api.create_job()
    assert emu.stats().by_route["create"] == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= emu.retry_after


def test_429_exhausted_is_rate_limit_error(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """429 on every attempt: RateLimitError with .retry_after, and a note on the attempts."""
    emu.script("create", "rate_limit", "rate_limit", "rate_limit")
    with pytest.raises(saas.RateLimitError) as caught:
        api.create_job()
    assert caught.value.retry_after == emu.retry_after
    assert any("gave up after 3 attempts" in note for note in caught.value.__notes__)
    assert emu.stats().by_route["create"] == 3


def test_500_permanent_cause_is_not_retried(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """500 naming a permanent cause (no provider credentials): ServerError, no retry."""
    job_id = api.create_job()
    emu.script("llm-call", "permanent_500")
    with pytest.raises(saas.ServerError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert "No provider credentials configured" in (caught.value.detail or "")
    assert emu.stats().by_route["llm-call"] == 1
    assert clock.sleeps == []


def test_500_provider_failure_is_not_retried(api: Client, emu: Emulator, clock: FakeClock) -> None:
    """Issue 17.3: 'LLM call failed: 500: ...' is not retried: the server already tried 9 times."""
    job_id = api.create_job()
    emu.script("llm-call", "transient_500", "ok")
    with pytest.raises(saas.ServerError, match="LLM call failed"):
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert emu.stats().by_route["llm-call"] == 1
    assert clock.sleeps == []


def test_plain_text_500_on_a_paid_call_is_not_retried(
    api: Client, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 17.3: a paid call's plain-text 500 is ambiguous (the provider may have been paid)."""
    job_id = api.create_job()
    emu.script("llm-call", "plain_500", "ok")
    with pytest.raises(saas.ServerError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert caught.value.status == 500
    assert emu.stats().by_route["llm-call"] == 1
    assert clock.sleeps == []


def test_plain_text_500_is_retried_on_a_fresh_connection(api: Client, emu: Emulator) -> None:
    """A plain-text 500 is normal input: retried where idempotent, on a fresh connection."""
    job_id = api.create_job()
    emu.script("get", "plain_500", "ok")
    assert api.get(f"/api/jobs/{job_id}").json()["job_id"] == job_id
    assert emu.stats().by_route["get"] == 2


def test_503_is_retried(api: Client, emu: Emulator) -> None:
    """503 (HTML from a gateway): retried."""
    emu.script("create", "unavailable", "ok")
    api.create_job()
    assert emu.stats().by_route["create"] == 2


@pytest.mark.parametrize("fault", ["bad_gateway", "gateway_timeout"])
def test_502_504_are_retried_on_idempotent_endpoints(
    api: Client, emu: Emulator, fault: str
) -> None:
    """502/504 on GET /api/jobs/{job_id}: retried."""
    job_id = api.create_job()
    emu.script("get", fault, "ok")
    assert api.get(f"/api/jobs/{job_id}").json()["status"] == "PENDING"
    assert emu.stats().by_route["get"] == 2


@pytest.mark.parametrize(("fault", "status"), [("bad_gateway", 502), ("gateway_timeout", 504)])
def test_502_504_are_not_retried_on_llm_call(
    api: Client, emu: Emulator, clock: FakeClock, fault: str, status: int
) -> None:
    """502/504 on the paid LLM call: ServerError at once, the server's work is not repeated."""
    job_id = api.create_job()
    emu.script("llm-call", fault, "ok")
    with pytest.raises(saas.ServerError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert caught.value.status == status
    stats = emu.stats()
    assert (stats.by_route["llm-call"], stats.paid_calls) == (1, 1)
    assert clock.sleeps == []


def test_connect_error_is_retried_even_on_llm_call(kind: str, clock: FakeClock) -> None:
    """Connection refused (never sent): retried on any endpoint, then APIConnectionError."""
    client = Client(kind, f"http://127.0.0.1:{unused_port()}", "sk-x", clock=clock, breaker=None)
    try:
        with pytest.raises(saas.APIConnectionError) as caught:
            client.post(f"/api/jobs/{UUID}/llm-call", json=CHAT)
    finally:
        client.close()
    assert caught.value.request_sent is False
    assert not isinstance(caught.value, saas.APITimeoutError)
    assert len(clock.sleeps) == 2  # three attempts


def test_connect_timeout_is_retried_even_on_llm_call(
    kind: str, clock: FakeClock, unresponsive: Unresponsive
) -> None:
    """Connect timeout (never sent): retried on any endpoint, then APITimeoutError."""
    url = f"http://127.0.0.1:{unresponsive.port}"
    client = Client(kind, url, "sk-x", clock=clock, breaker=None)
    try:
        with pytest.raises(saas.APITimeoutError) as caught:
            client.post(f"/api/jobs/{UUID}/llm-call", json=CHAT, timeout=0.1)
    finally:
        client.close()
    assert caught.value.request_sent is False
    assert isinstance(caught.value, TimeoutError)
    assert len(clock.sleeps) == 2


def test_read_timeout_is_retried_on_idempotent_endpoints(api: Client, emu: Emulator) -> None:
    """A read timeout on GET /api/jobs/{job_id}: retried."""
    job_id = api.create_job()
    emu.script("get", "slow", "ok")
    # 1 s: the first answer (5 s) must time out, the second (at once) must not, even when
    # the emulator's thread waits its turn on a loaded machine.
    assert api.get(f"/api/jobs/{job_id}", timeout=1.0).status_code == 200
    assert emu.stats().by_route["get"] == 2


def test_read_timeout_is_not_retried_on_llm_call(
    api: Client, emu: Emulator, clock: FakeClock
) -> None:
    """A read timeout on the paid LLM call: APITimeoutError, not retried (the call was paid)."""
    job_id = api.create_job()
    emu.script("llm-call", "slow", "ok")
    with pytest.raises(saas.APITimeoutError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT, timeout=0.2)
    assert caught.value.request_sent is True
    eventually(lambda: emu.stats().paid_calls > 0)  # the server's thread goes on meanwhile
    stats = emu.stats()
    assert (stats.by_route["llm-call"], stats.paid_calls) == (1, 1)
    assert clock.sleeps == []


def test_drop_after_sending_is_retried_on_idempotent_endpoints(api: Client, emu: Emulator) -> None:
    """A connection dropped after sending, on POST /api/jobs/{job_id}/complete: retried."""
    job_id = api.create_job()
    emu.script("complete", "drop", "ok")
    answer = api.post(f"/api/jobs/{job_id}/complete", json={"status": "completed"}).json()
    assert answer["status"] == "COMPLETED"
    assert emu.stats().by_route["complete"] == 2


def test_drop_after_sending_is_not_retried_on_llm_call(
    api: Client, emu: Emulator, clock: FakeClock
) -> None:
    """A connection dropped after sending the LLM call: APIConnectionError, not retried."""
    job_id = api.create_job()
    emu.script("llm-call", "drop", "ok")
    with pytest.raises(saas.APIConnectionError) as caught:
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert caught.value.request_sent is True
    stats = emu.stats()
    assert (stats.by_route["llm-call"], stats.paid_calls) == (1, 1)


def test_retry_ambiguous_opts_in_to_duplicate_paid_calls(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """retry_ambiguous=True retries a dropped LLM call, accepting a second paid call."""
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None, retry_ambiguous=True)
    try:
        job_id = client.create_job()
        emu.script("llm-call", "drop", "ok")
        client.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    finally:
        client.close()
    stats = emu.stats()
    assert (stats.by_route["llm-call"], stats.paid_calls, stats.duplicate_paid_calls) == (2, 2, 1)
