"""The emulator does what the SaaS LiteLLM server really does, and injects faults on demand."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
import requests

from resilience.profiles.saas_litellm.emulator import FAULTS, ROUTES, Emulator

from .forms import eventually

pytest_plugins = ["tests.emulator_fixtures"]

UUID = "00000000-0000-4000-8000-000000000000"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Raw:
    """Bare requests calls to the emulator, a new connection each, with a team's key."""

    def __init__(self, emu: Emulator, key: str | None = None) -> None:
        self.emu = emu
        if key is None:
            key = emu.virtual_key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return requests.request(method, self.emu.url + path, headers=self.headers, **kwargs)

    def job(self) -> str:
        body = {"team_id": "acme-corp", "job_type": "t", "user_id": "u1"}
        job_id: str = self("POST", "/api/jobs/create", json=body).json()["job_id"]
        return job_id

    def close(self) -> None:
        pass


@pytest.fixture
def raw(emu: Emulator) -> Any:
    client = Raw(emu)
    yield client
    client.close()


def detail(response: requests.Response) -> Any:
    return response.json()["detail"]


def test_health(raw: Raw) -> None:
    """GET /health answers without a key."""
    assert requests.get(raw.emu.url + "/health", timeout=5).json() == {
        "status": "healthy",
        "service": "saas-llm-api",
    }


def test_job_lifecycle_and_upper_case_statuses(raw: Raw, emu: Emulator) -> None:
    """create → llm-call → complete; statuses come back upper case, the complete body is lower."""
    created = raw("POST", "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}).json()
    assert created["status"] == "PENDING"
    job_id = created["job_id"]
    call = raw("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).json()
    assert set(call) == {"call_id", "response", "metadata"}
    assert raw("GET", f"/api/jobs/{job_id}").json()["status"] == "IN_PROGRESS"
    done = raw("POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"}).json()
    assert done["status"] == "COMPLETED"
    assert done["costs"]["credit_applied"] is True
    assert done["calls"][0]["error"] is None
    again = raw("POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"}).json()
    assert again["costs"]["credit_applied"] is False  # charged once; see E11 for the third
    assert emu.stats().credits_charged == 1


def test_out_of_credits_never_blocks(emu: Emulator) -> None:
    """Credits never block a call: running out only makes credit_applied false."""
    broke = Raw(emu, emu.keys["broke-co"])
    try:
        job = broke("POST", "/api/jobs/create", json={"team_id": "broke-co", "job_type": "t"})
        job_id = job.json()["job_id"]
        assert broke("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).status_code == 200
        done = broke("POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    finally:
        broke.close()
    assert done.json()["costs"]["credit_applied"] is False


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "Missing Authorization header. Expected: 'Authorization: Bearer sk-xxx...'"),
        ("sk-" + "1" * 32, "Invalid API key"),
    ],
)
def test_401_details(emu: Emulator, key: str, expected: str) -> None:
    """The server's 401 details, word for word."""
    client = Raw(emu, key)
    try:
        response = client("POST", "/api/jobs/create", json={"team_id": "x", "job_type": "t"})
    finally:
        client.close()
    assert (response.status_code, detail(response)) == (401, expected)


def test_401_bad_format(emu: Emulator) -> None:
    """A header that is not 'Bearer <token>' is a 401 of its own."""
    response = requests.get(
        f"{emu.url}/api/jobs/{UUID}", headers={"Authorization": "Basic abc"}, timeout=5
    )
    assert detail(response).startswith("Invalid Authorization header format.")


@pytest.mark.parametrize("team", ["suspended-co", "paused-co"])
def test_403_team_status_on_every_endpoint(emu: Emulator, team: str) -> None:
    """A suspended or paused team gets 403 everywhere, complete included."""
    client = Raw(emu, emu.keys[team])
    try:
        response = client("POST", f"/api/jobs/{UUID}/complete", json={"status": "completed"})
    finally:
        client.close()
    word = team.split("-")[0]
    assert (response.status_code, detail(response)) == (
        403,
        f"Team access is {word}. Please contact support.",
    )


def test_403_team_mismatch_and_foreign_job(raw: Raw, emu: Emulator) -> None:
    """A body team that is not the key's, and a job of another team, are 403s."""
    response = raw("POST", "/api/jobs/create", json={"team_id": "globex", "job_type": "t"})
    assert detail(response) == "API key does not belong to team 'globex'"
    job_id = raw.job()
    other = Raw(emu, emu.keys["globex"])
    try:
        response = other("GET", f"/api/jobs/{job_id}")
    finally:
        other.close()
    assert (response.status_code, detail(response)) == (403, "Job does not belong to your team")


def test_unknown_model_moves_the_job_then_403(raw: Raw, emu: Emulator) -> None:
    """A call naming an unknown model moves the job to IN_PROGRESS before answering 403."""
    job_id = raw.job()
    response = raw("POST", f"/api/jobs/{job_id}/llm-call", json={**CHAT, "model": "x"})
    assert detail(response) == "Team 'acme-corp' does not have access to model group 'x'"
    assert emu.job(job_id)["status"] == "IN_PROGRESS"


def test_routing_errors(raw: Raw) -> None:
    """Unknown route 404, wrong method 405, trailing slash on a POST 307 with an empty body."""
    assert (raw("GET", "/api/nothing").status_code, detail(raw("GET", "/api/x"))) == (
        404,
        "Not Found",
    )
    response = raw("DELETE", "/api/jobs/create-and-call")
    assert (response.status_code, detail(response)) == (405, "Method Not Allowed")
    response = raw("POST", "/api/jobs/create/", json={}, allow_redirects=False)
    assert (response.status_code, response.content) == (307, b"")
    assert response.headers["Location"] == f"{raw.emu.url}/api/jobs/create"


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs/create",
        "/api/jobs/create-and-call",
        "/api/jobs/create-and-call-stream",
        "/api/jobs/not-a-uuid",
        "/api/jobs/not-a-uuid/costs",
    ],
)
def test_non_uuid_job_id_is_a_plain_text_500(raw: Raw, path: str) -> None:
    """GET /api/jobs/create is "get job create": a plain-text 500, as for any non-UUID id."""
    response = raw("GET", path)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Internal Server Error"


def test_connection_is_dead_after_a_plain_text_500(emu: Emulator) -> None:
    """A request sent on the same connection right after a plain-text 500 meets a reset."""
    port = int(emu.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Authorization": f"Bearer {emu.virtual_key}"}
    try:
        connection.request("GET", "/api/jobs/create", headers=headers)
        response = connection.getresponse()
        assert (response.status, response.read()) == (500, b"Internal Server Error")
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            connection.request("GET", "/health")
            connection.getresponse()
    finally:
        connection.close()


def test_database_outage(raw: Raw, emu: Emulator) -> None:
    """Database down: 500 even for an unknown key (a missing header is still a 401, read
    before the database); back: the first request fails once more."""
    emu.database_down = True
    stranger = Raw(emu, "sk-" + "2" * 32)
    try:
        assert stranger("GET", f"/api/jobs/{UUID}").status_code == 500
    finally:
        stranger.close()
    anonymous = requests.get(f"{emu.url}/api/jobs/{UUID}", timeout=5)
    assert (anonymous.status_code, detail(anonymous)) == (
        401,
        "Missing Authorization header. Expected: 'Authorization: Bearer sk-xxx...'",
    )
    emu.database_down = False
    assert raw("GET", f"/api/jobs/{UUID}").status_code == 500
    assert raw("GET", f"/api/jobs/{UUID}").status_code == 404


def test_422_shapes(raw: Raw) -> None:
    """Missing fields list loc/msg/type/input; malformed JSON is a 422 before authentication."""
    job_id = raw.job()
    errors = detail(raw("POST", f"/api/jobs/{job_id}/llm-call", json={"messages": []}))
    assert errors == [
        {
            "type": "missing",
            "loc": ["body", "model"],
            "msg": "Field required",
            "input": {"messages": []},
        }
    ]
    response = requests.post(f"{raw.emu.url}/api/jobs/create", data=b"{oops", timeout=5)
    assert response.status_code == 422
    assert detail(response)[0]["type"] == "json_invalid"


def test_timed_out_llm_call_is_still_paid(raw: Raw, emu: Emulator) -> None:
    """A client timeout does not stop the server: the call is stored as a paid call."""
    job_id = raw.job()
    emu.script("llm-call", "slow")
    with pytest.raises(requests.Timeout):
        raw("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT, timeout=0.2)
    eventually(lambda: bool(emu.job(job_id)["calls"]))  # the server's thread goes on meanwhile
    assert [call["paid"] for call in emu.job(job_id)["calls"]] == [True]


def test_timed_out_create_and_call_still_completes_and_charges(raw: Raw, emu: Emulator) -> None:
    """A client timeout does not stop the server: a timed-out create-and-call still
    creates its job, makes the paid call, completes the job and charges a credit."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    emu.script("create-and-call", "slow")
    with pytest.raises(requests.Timeout):
        raw("POST", "/api/jobs/create-and-call", json=body, timeout=0.2)
    eventually(lambda: emu.stats().credits_charged > 0)  # the server's thread goes on meanwhile
    stats = emu.stats()
    assert stats.by_route["create-and-call"] == 1
    assert (stats.jobs, stats.open_jobs) == (1, 0)
    assert (stats.paid_calls, stats.credits_charged) == (1, 1)


def test_provider_failure_detail(raw: Raw, emu: Emulator) -> None:
    """A provider failure is a JSON 500 'LLM call failed: 500: Failed to call provider API: ...'."""
    job_id = raw.job()
    emu.script("llm-call", "transient_500")
    response = raw("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert response.status_code == 500
    assert detail(response).startswith("LLM call failed: 500: Failed to call provider API: ")
    assert emu.job(job_id)["calls"][0]["paid"] is False


def test_create_and_call_completes_and_charges(raw: Raw, emu: Emulator) -> None:
    """create-and-call creates, calls and completes in one request, charging a credit."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    answer = raw("POST", "/api/jobs/create-and-call", json=body).json()
    assert answer["status"] == "COMPLETED"
    assert emu.stats().credits_charged == 1


def _llm_latencies(emu: Emulator, jobs: int) -> list[int]:
    """Make one job after another with one llm-call each; return each call's recorded latency."""
    client = Raw(emu)
    latencies: list[int] = []
    for _ in range(jobs):
        job_id = client.job()
        answer = client("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).json()
        (call,) = emu.job(job_id)["calls"]
        assert answer["metadata"]["latency_ms"] == call["latency_ms"]
        latencies.append(call["latency_ms"])
    return latencies


def test_first_llm_call_after_start_is_slower() -> None:
    """cold_start: only the first LLM call after start records the extra latency.

    Read from the latency the emulator stores with each call (and returns in
    the answer's metadata), never from a clock; the cold start is scaled down
    to a few milliseconds, so nothing waits for long.
    """
    with Emulator(cold_start=5.0, time_scale=0.001) as emu:
        first, *later = _llm_latencies(emu, 3)
    assert first >= 4  # 5 ms, truncated to whole milliseconds
    assert later == [0, 0]


def test_no_cold_start_by_default(emu: Emulator) -> None:
    """Without cold_start, the first LLM call records no extra latency."""
    assert _llm_latencies(emu, 2) == [0, 0]


def test_cold_start_again_after_a_restart() -> None:
    """The first LLM call after every start is slower, a restart included."""
    emu = Emulator(cold_start=5.0, time_scale=0.001)
    with emu:
        assert _llm_latencies(emu, 1)[0] >= 4
    with emu:
        assert _llm_latencies(emu, 1)[0] >= 4


def _sse_lines(raw: Raw, path: str, body: dict[str, Any]) -> list[str]:
    with raw("POST", path, json=body, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines(decode_unicode=True) if line]


def test_stream_wire_format(raw: Raw, emu: Emulator) -> None:
    """': keepalive' first on create-and-call-stream, data events, then [DONE]."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    lines = _sse_lines(raw, "/api/jobs/create-and-call-stream", body)
    assert lines[0] == ": keepalive"
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[1].removeprefix("data: "))
    assert first["choices"][0]["delta"]["content"]


def test_other_providers_stream_without_done(raw: Raw) -> None:
    """Non-OpenAI chunks have their own shape and the stream just ends."""
    job_id = raw.job()
    lines = _sse_lines(
        raw, f"/api/jobs/{job_id}/llm-call-stream", {**CHAT, "model": "claude-3-5-haiku"}
    )
    assert lines[-1] != "data: [DONE]"
    assert json.loads(lines[-1].removeprefix("data: "))["type"] == "content_block_delta"


def test_in_band_error_wire_format(raw: Raw, emu: Emulator) -> None:
    """A failure after the 200 is one 'data: {"error": "500: ..."}' event, then the end."""
    job_id = raw.job()
    emu.script("llm-call-stream", "stream_error")
    lines = _sse_lines(raw, f"/api/jobs/{job_id}/llm-call-stream", CHAT)
    assert json.loads(lines[-1].removeprefix("data: ")) == {
        "error": "500: Failed to call provider API: OpenAI error: Connection error."
    }


def test_gateway_faults(raw: Raw, emu: Emulator) -> None:
    """429 carries Retry-After; 502/503/504 are HTML pages; no request id anywhere."""
    emu.script("health", "rate_limit", "bad_gateway", "unavailable", "gateway_timeout")
    limited = raw("GET", "/health")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    for status in (502, 503, 504):
        response = raw("GET", "/health")
        assert response.status_code == status
        assert response.headers["content-type"] == "text/html"
        assert f"<title>{status} " in response.text
    assert not any("request-id" in name.lower() for name in limited.headers)


def test_time_scale_shrinks_retry_after() -> None:
    """Retry-After values are scaled with every other delay."""
    with Emulator(time_scale=0.05) as emu:
        emu.script("health", "rate_limit")
        response = requests.get(emu.url + "/health", timeout=5)
    assert response.headers["Retry-After"] == "0.1"


def _faults_seen(seed: int) -> list[int]:
    rates = {"rate_limit": 0.2, "unavailable": 0.2}
    statuses = []
    with Emulator(seed=seed, rates=rates) as emu:
        client = Raw(emu)
        try:
            for user in range(30):
                body = {"team_id": "acme-corp", "job_type": "t", "user_id": f"user-{user}"}
                statuses.append(client("POST", "/api/jobs/create", json=body).status_code)
        finally:
            client.close()
    return statuses


def test_seeded_rates_are_reproducible() -> None:
    """The same seed injects the same faults into the same steps; another seed, others."""
    first, again, other = _faults_seen(1), _faults_seen(1), _faults_seen(2)
    assert first == again
    assert first != other
    assert {429, 503, 200} <= set(first)


def test_bad_configuration_is_refused() -> None:
    """Unknown routes, faults and rates, or rates above 1, fail at once."""
    emulator = Emulator()
    with pytest.raises(ValueError, match="unknown route"):
        emulator.script("nowhere", "ok")
    with pytest.raises(ValueError, match="unknown fault"):
        emulator.script("get", "meteor")
    with pytest.raises(ValueError, match="unknown rate"):
        Emulator(rates={"get:meteor": 0.1})
    with pytest.raises(ValueError, match="more than 1"):
        Emulator(rates={"slow": 0.6, "drop": 0.6})
    assert set(ROUTES) >= {"create", "llm-call", "complete"}
    assert "ok" in FAULTS


def test_provider_requests_count_the_servers_own_retries(raw: Raw, emu: Emulator) -> None:
    """An answered call is one provider request; a provider failure nine (3 x 3); a
    missing credential none."""
    job_id = raw.job()
    emu.script("llm-call", "ok", "transient_500", "permanent_500")
    for _ in range(3):
        raw("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    assert emu.stats().provider_requests == 1 + 9


def test_a_provider_outage_lasts_for_the_workflow(raw: Raw, emu: Emulator) -> None:
    """provider_outage fails the route for the rest of the workflow, each time after the
    server's nine provider requests; another workflow is served."""
    job_id = raw.job()
    emu.script("llm-call", "provider_outage")
    details = [
        raw("POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).json()["detail"] for _ in range(3)
    ]
    assert all(d.startswith("LLM call failed: 500: Failed to call provider API: ") for d in details)
    other = raw("POST", "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"})
    answer = raw("POST", f"/api/jobs/{other.json()['job_id']}/llm-call", json=CHAT)
    assert answer.status_code == 200
    stats = emu.stats()
    assert (stats.faults["provider_outage"], stats.provider_requests) == (3, 3 * 9 + 1)
