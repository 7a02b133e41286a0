"""resilience.integrations.requests: a pipeline per request of a requests Session."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

import resilience as rs
from resilience.integrations.requests import ResilientAdapter, Session
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock, capture_events

pytest_plugins = ["tests.emulator_fixtures"]


def retry(clock: FakeClock, **kwargs: Any) -> rs.Retry:
    kwargs.setdefault("attempts", 3)
    return rs.Retry(on=rs.transient, backoff=rs.backoff.constant(1.0), clock=clock, **kwargs)


def test_failed_responses_are_retried(emu: Emulator, clock: FakeClock) -> None:
    """A 503 that did not raise is a result the classifier refuses: the request is re-sent."""
    emu.script("health", "unavailable", "ok")
    with Session(retry(clock)) as session:
        response = session.get(f"{emu.url}/health")
    assert response.status_code == 200
    assert emu.stats().by_route["health"] == 2
    assert clock.sleeps == [1.0]


def test_exhausted_retries_return_the_last_response(emu: Emulator, clock: FakeClock) -> None:
    """When attempts run out on responses, the last one is returned, as requests would."""
    emu.script("health", "unavailable", "unavailable", "unavailable")
    with Session(retry(clock)) as session:
        response = session.get(f"{emu.url}/health")
    assert response.status_code == 503
    assert "Service Unavailable" in response.text
    assert emu.stats().by_route["health"] == 3


def test_retry_after_is_a_floor(emu: Emulator, clock: FakeClock) -> None:
    """A 429's Retry-After, read from the response, lengthens the backoff."""
    emu.script("health", "rate_limit", "ok")
    with Session(retry(clock)) as session:
        assert session.get(f"{emu.url}/health").status_code == 200
    assert clock.sleeps == [emu.retry_after]


def test_error_bodies_are_read_for_the_classifier(emu: Emulator, clock: FakeClock) -> None:
    """Rules can match an error body's text: it is read before the classifier sees it."""
    permanent = rs.Rule(status=500, message="No provider credentials", retry=False)
    policy = rs.Retry(on=permanent | rs.transient, clock=clock)
    emu.script("llm-call", "permanent_500")
    with Session(policy, base_url=emu.url) as session:
        session.headers["Authorization"] = f"Bearer {emu.virtual_key}"
        job = session.post("/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"})
        chat = {"model": "gpt-4o", "messages": []}
        response = session.post(f"/api/jobs/{job.json()['job_id']}/llm-call", json=chat)
    assert response.status_code == 500
    assert emu.stats().by_route["llm-call"] == 1


def test_factory_chooses_per_request(emu: Emulator, clock: FakeClock) -> None:
    """A factory gets (method, url) and may return None to send a request as is."""
    seen: list[tuple[str, str]] = []

    def factory(method: str, url: str) -> rs.Retry | None:
        seen.append((method, url))
        return None if url.endswith("?raw=1") else retry(clock)

    with Session(factory) as session:
        emu.script("health", "unavailable", "ok")
        assert session.get(f"{emu.url}/health").status_code == 200
        emu.script("health", "unavailable", "ok")
        assert session.get(f"{emu.url}/health?raw=1").status_code == 503
    assert seen == [("GET", f"{emu.url}/health"), ("GET", f"{emu.url}/health?raw=1")]


def test_socket_timeout_is_capped_by_the_deadline(emu: Emulator) -> None:
    """Inside a Timeout, a slow answer times out at the deadline, not at the caller's 10 s."""
    emu.script("health", "slow")
    with Session(rs.Timeout(10.0)) as session, pytest.raises(requests.Timeout), rs.Timeout(0.3):
        session.get(f"{emu.url}/health", timeout=10)


def test_adapter_timeout_caps_the_socket(emu: Emulator) -> None:
    """The adapter's own timeout= caps a caller that passed none."""
    emu.script("health", "slow")
    with (
        Session(None, timeout=lambda method, url: 0.2) as session,
        pytest.raises(requests.Timeout),
    ):
        session.get(f"{emu.url}/health")


def test_a_timeout_beyond_any_float_is_simply_capped(emu: Emulator) -> None:
    """timeout=10**400 (an int no float holds) is lowered to the cap, not an OverflowError."""
    with Session(None, timeout=5.0) as session:
        assert session.get(f"{emu.url}/health", timeout=10**400).status_code == 200


def test_passed_deadline_sends_nothing(emu: Emulator) -> None:
    """Once the deadline has passed, the request is not sent: TimeoutExceededError."""
    clock = FakeClock()
    with Session(None) as session, rs.Timeout(1.0, clock=clock):
        clock.advance(2.0)
        with pytest.raises(rs.TimeoutExceededError):
            session.get(f"{emu.url}/health")
    assert emu.stats().requests == 0


def test_check_runs_in_every_attempt(emu: Emulator, clock: FakeClock) -> None:
    """check= turns a response into a failure inside the attempt, so Retry sees it."""

    class Unhappy(Exception):
        pass

    def check(response: requests.Response) -> None:
        if response.status_code >= 500:
            raise Unhappy(response.status_code)

    emu.script("health", "unavailable", "ok")
    policy = rs.Retry(on=Unhappy, clock=clock)
    with Session(policy, check=check) as session:
        assert session.get(f"{emu.url}/health").status_code == 200
    emu.script("health", "unavailable", "unavailable", "unavailable")
    with Session(policy, check=check) as session, pytest.raises(Unhappy):
        session.get(f"{emu.url}/health")


def test_base_url_and_mounting(emu: Emulator, clock: FakeClock) -> None:
    """base_url resolves relative paths; the adapter is mounted on its origin only."""
    session = Session(retry(clock), base_url=f"{emu.url}/api/")
    try:
        assert session.url_for("jobs/create") == f"{emu.url}/api/jobs/create"
        assert session.url_for("https://other.example/x") == "https://other.example/x"
        assert isinstance(session.get_adapter(f"{emu.url}/health"), ResilientAdapter)
        assert not isinstance(session.get_adapter("https://other.example/"), ResilientAdapter)
    finally:
        session.close()


def test_adapter_mounts_on_a_plain_session(emu: Emulator, clock: FakeClock) -> None:
    """ResilientAdapter drops onto an existing requests.Session with one mount()."""
    emu.script("health", "unavailable", "ok")
    with requests.Session() as session:
        session.mount(emu.url + "/", ResilientAdapter(retry(clock), pool_maxsize=4))
        assert session.get(f"{emu.url}/health").status_code == 200


def test_file_bodies_are_rewound(emu: Emulator, clock: FakeClock, tmp_path: Any) -> None:
    """A file body read by a failed attempt is sent again from its start."""
    path = tmp_path / "body.json"
    path.write_text('{"team_id": "acme-corp", "job_type": "t"}')
    emu.script("create", "unavailable", "ok")
    headers = {"Authorization": f"Bearer {emu.virtual_key}", "Content-Type": "application/json"}
    with Session(retry(clock)) as session, path.open("rb") as body:
        response = session.post(f"{emu.url}/api/jobs/create", data=body, headers=headers)
    assert response.json()["status"] == "PENDING"


def test_bad_arguments() -> None:
    """Bad policies, timeouts and checks are refused at construction."""
    with pytest.raises(TypeError, match="policy"):
        ResilientAdapter(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        ResilientAdapter(None, timeout=-1)
    with pytest.raises(TypeError, match="check"):
        ResilientAdapter(None, check="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base_url"):
        Session(None, base_url="/relative")


def test_importing_resilience_does_not_import_requests() -> None:
    """requests is imported only with resilience.integrations.requests."""
    code = "import sys, resilience, resilience.integrations; print('requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_events_name_the_request(emu: Emulator, clock: FakeClock) -> None:
    """Events and notes name the request as "METHOD /path", never its query string."""
    emu.script("health", "unavailable", "ok")
    with Session(retry(clock)) as session, capture_events() as events:
        session.get(f"{emu.url}/health?token=secret")
    assert [event.target for event in events] == ["GET /health"]
