"""The emulator agrees with the live server on every row of the findings page (issue #17).

Each test is named after its row (E1-E25) or finding, and says in its docstring
what the server does. Every test talks HTTP to an emulator on 127.0.0.1 through
a real client (requests, http.client or a bare socket).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from typing import Any

import pytest
import requests

from resilience.profiles.saas_litellm.emulator import Emulator

pytest_plugins = ["tests.emulator_fixtures"]

UUID = "00000000-0000-4000-8000-000000000000"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def call(emu: Emulator, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
    """One request on a new connection, with the key of acme-corp unless told."""
    headers = {"Authorization": f"Bearer {key or emu.virtual_key}"}
    headers.update(kwargs.pop("headers", {}))
    kwargs.setdefault("timeout", 10)
    return requests.request(method, emu.url + path, headers=headers, **kwargs)


def new_job(emu: Emulator, **fields: Any) -> str:
    body = {"team_id": "acme-corp", "job_type": "t", **fields}
    job_id: str = call(emu, "POST", "/api/jobs/create", json=body).json()["job_id"]
    return job_id


# --- finding 2: the first query after a database restart fails ----------------------------


def test_finding_2_first_query_after_a_database_restart_fails(emu: Emulator) -> None:
    """Database back: the first authenticated request is a plain-text 500, the next succeeds."""
    job_id = new_job(emu)
    emu.database_down = True
    assert call(emu, "GET", f"/api/jobs/{job_id}").status_code == 500
    emu.database_down = False
    first = call(emu, "GET", f"/api/jobs/{job_id}")
    assert (first.status_code, first.text) == (500, "Internal Server Error")
    assert first.headers["content-type"].startswith("text/plain")
    assert call(emu, "GET", f"/api/jobs/{job_id}").json()["status"] == "PENDING"


def test_finding_2_health_does_not_use_the_stale_pool(emu: Emulator) -> None:
    """/health asks no database: it neither fails nor consumes the stale connection."""
    emu.database_down = True
    emu.database_down = False
    assert requests.get(emu.url + "/health", timeout=10).status_code == 200
    assert call(emu, "GET", f"/api/jobs/{UUID}").status_code == 500
    assert call(emu, "GET", f"/api/jobs/{UUID}").status_code == 404


def test_finding_2_each_restart_fails_once_more(emu: Emulator) -> None:
    """Every restart leaves one stale pool: two outages, two first-query failures."""
    for _ in range(2):
        emu.database_down = True
        emu.database_down = False
        assert call(emu, "GET", f"/api/jobs/{UUID}").status_code == 500
        assert call(emu, "GET", f"/api/jobs/{UUID}").status_code == 404


# --- E1-E25: where the emulator used to differ from the server ----------------------------


def test_e01_auth_scheme_is_case_insensitive(emu: Emulator) -> None:
    """E1: `bearer <key>` is accepted, as any case of the scheme is."""
    body = {"team_id": "acme-corp", "job_type": "t"}
    for scheme in ("bearer", "BEARER", "Bearer"):
        headers = {"Authorization": f"{scheme} {emu.virtual_key}"}
        response = requests.post(
            emu.url + "/api/jobs/create", json=body, headers=headers, timeout=10
        )
        assert response.status_code == 200


def test_e02_a_header_of_three_words_is_a_format_error(emu: Emulator) -> None:
    """E2: `Bearer a b` is a 401 format error, not an invalid key."""
    headers = {"Authorization": f"Bearer {emu.virtual_key} extra"}
    response = requests.get(f"{emu.url}/api/jobs/{UUID}", headers=headers, timeout=10)
    assert (response.status_code, response.json()["detail"]) == (
        401,
        "Invalid Authorization header format. Expected: 'Authorization: Bearer sk-xxx...'",
    )


def test_e03_the_body_is_validated_before_the_job_is_looked_up(emu: Emulator) -> None:
    """E3: an unknown job id with an empty body on llm-call is a 422, not a 404."""
    response = call(emu, "POST", f"/api/jobs/{UUID}/llm-call", json={})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [
        ["body", "model"],
        ["body", "messages"],
    ]


def test_e04_stop_must_be_a_list(emu: Emulator) -> None:
    """E4: `stop: "x"` is a 422 list_type at ["body", "stop"], and no paid call."""
    job_id = new_job(emu)
    response = call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json={**CHAT, "stop": "x"})
    assert (response.status_code, response.json()["detail"]) == (
        422,
        [
            {
                "type": "list_type",
                "loc": ["body", "stop"],
                "msg": "Input should be a valid list",
                "input": "x",
            }
        ],
    )
    assert emu.stats().paid_calls == 0


def test_e05_a_list_body_has_pydantics_full_message(emu: Emulator) -> None:
    """E5: a JSON list as the body: 'Input should be a valid dictionary or object to
    extract fields from'."""
    response = call(emu, "POST", "/api/jobs/create", json=[1, 2])
    assert response.json()["detail"] == [
        {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": [1, 2],
        }
    ]


def test_e06_health_names_the_service(emu: Emulator) -> None:
    """E6: GET /health is {"status":"healthy","service":"saas-llm-api"}, byte for byte."""
    response = requests.get(emu.url + "/health", timeout=10)
    assert response.content == b'{"status":"healthy","service":"saas-llm-api"}'


NAIVE_MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
WHOLE_SECONDS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_e07_timestamps_are_worded_per_route(emu: Emulator) -> None:
    """E7: create and complete answer naive ISO with microseconds, GET job whole seconds
    with Z, the costs breakdown naive."""
    created = call(
        emu, "POST", "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}
    ).json()
    job_id = created["job_id"]
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    done = call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    job = call(emu, "GET", f"/api/jobs/{job_id}").json()
    costs = call(emu, "GET", f"/api/jobs/{job_id}/costs").json()
    assert NAIVE_MICROSECONDS.match(created["created_at"])
    assert NAIVE_MICROSECONDS.match(done.json()["completed_at"])
    for name in ("created_at", "started_at", "completed_at"):
        assert WHOLE_SECONDS_Z.match(job[name]), name
    assert NAIVE_MICROSECONDS.match(costs["costs"]["breakdown"][0]["created_at"])


def test_e08_a_job_has_14_keys(emu: Emulator) -> None:
    """E8: GET /api/jobs/{id} answers the server's 14 keys."""
    job_id = new_job(emu, user_id="u1")
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    job = call(emu, "GET", f"/api/jobs/{job_id}").json()
    assert set(job) == {
        "job_id",
        "team_id",
        "user_id",
        "job_type",
        "status",
        "created_at",
        "started_at",
        "completed_at",
        "metadata",
        "error_message",
        "organization_id",
        "external_task_id",
        "credit_applied",
        "model_groups_used",
    }
    assert (job["user_id"], job["status"], job["credit_applied"]) == ("u1", "IN_PROGRESS", False)
    assert job["model_groups_used"] == ["gpt-4o-mini"]


def test_e09_costs_is_a_breakdown_per_call(emu: Emulator) -> None:
    """E9: GET .../costs is {job_id, team_id, job_type, status, costs: {total_cost_usd,
    breakdown: [...]}}, one entry per call."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json={**CHAT, "purpose": "p"})
    costs = call(emu, "GET", f"/api/jobs/{job_id}/costs").json()
    assert set(costs) == {"job_id", "team_id", "job_type", "status", "costs"}
    assert (costs["team_id"], costs["job_type"], costs["status"]) == (
        "acme-corp",
        "t",
        "IN_PROGRESS",
    )
    (entry,) = costs["costs"]["breakdown"]
    assert set(entry) == {
        "call_id",
        "model",
        "purpose",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "created_at",
    }
    assert (entry["model"], entry["purpose"]) == ("gpt-4o-mini", "p")
    assert costs["costs"]["total_cost_usd"] == entry["cost_usd"] > 0


def test_e10_metadata_answers_updated_at_and_call_metadata_merges(emu: Emulator) -> None:
    """E10: PATCH metadata answers updated_at; an llm-call's call_metadata is merged into
    the job's metadata."""
    job_id = new_job(emu, metadata={"a": 1})
    patched = call(emu, "PATCH", f"/api/jobs/{job_id}/metadata", json={"metadata": {"b": 2}})
    assert set(patched.json()) == {"job_id", "metadata", "updated_at"}
    assert NAIVE_MICROSECONDS.match(patched.json()["updated_at"])
    body = {**CHAT, "call_metadata": {"turn": 3}}
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=body)
    metadata = call(emu, "GET", f"/api/jobs/{job_id}").json()["metadata"]
    assert metadata == {"a": 1, "b": 2, "turn": 3}


def balance(emu: Emulator) -> int:
    path = f"/api/credits/teams/{emu.team_id}/balance"
    remaining: int = call(emu, "GET", path).json()["credits_remaining"]
    return remaining


def test_e11_repeated_complete_charges_again(emu: Emulator) -> None:
    """E11: every complete("completed") re-runs: credit_applied true, false, true, and the
    third call charges a second credit."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    before = balance(emu)
    applied = [
        call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"}).json()[
            "costs"
        ]["credit_applied"]
        for _ in range(3)
    ]
    assert applied == [True, False, True]
    assert before - balance(emu) == 2
    assert emu.stats().credits_charged == 2


def test_e12_failed_after_completed_flips_and_refunds_nothing(emu: Emulator) -> None:
    """E12: complete("failed") after completed answers 200, the job is FAILED, the credit
    stays spent."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    spent = balance(emu)
    response = call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "failed"})
    assert (response.status_code, response.json()["status"]) == (200, "FAILED")
    assert call(emu, "GET", f"/api/jobs/{job_id}").json()["status"] == "FAILED"
    assert balance(emu) == spent


def test_e13_complete_with_zero_calls_charges(emu: Emulator) -> None:
    """E13: completing a job that made no call charges 1 credit."""
    job_id = new_job(emu)
    before = balance(emu)
    done = call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    assert done.json()["costs"]["total_calls"] == 0
    assert done.json()["costs"]["credit_applied"] is True
    assert before - balance(emu) == 1


def test_e14_error_message_is_the_jobs_own_field(emu: Emulator) -> None:
    """E14: complete's error_message is stored in the job's error_message, not its metadata."""
    job_id = new_job(emu)
    body = {"status": "failed", "error_message": "boom", "metadata": {"k": "v"}}
    call(emu, "POST", f"/api/jobs/{job_id}/complete", json=body)
    job = call(emu, "GET", f"/api/jobs/{job_id}").json()
    assert (job["error_message"], job["metadata"]) == ("boom", {"k": "v"})


@pytest.mark.parametrize(
    ("fault", "model", "status", "message"),
    [
        ("transient_500", "gpt-4o-mini", 500, "500: Failed to call provider API: OpenAI "),
        ("ok", "no-such-model", 403, "Team 'acme-corp' does not have access to model group"),
    ],
)
def test_e15_create_and_call_fails_its_job(
    emu: Emulator, fault: str, model: str, status: int, message: str
) -> None:
    """E15: create-and-call after a provider failure or naming an unknown model leaves its
    job FAILED with an error_message."""
    emu.script("create-and-call", fault)
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT, "model": model}
    response = call(emu, "POST", "/api/jobs/create-and-call", json=body)
    assert response.status_code == status
    (job,) = call(emu, "GET", f"/api/teams/{emu.team_id}/jobs").json()["jobs"]
    assert job["status"] == "FAILED"
    assert job["error_message"].startswith(message)
    assert job["completed_at"] is not None


def test_e16_a_provider_failure_takes_the_servers_retries() -> None:
    """E16: a provider failure answers after 3-9 s (the server's own retries), scaled by
    time_scale: a 1 s client timeout fires at scale 1; at 1/100 the 500 comes in time."""
    with Emulator() as slow, Emulator(time_scale=0.01) as fast:
        for server in (slow, fast):
            server.script("llm-call", "transient_500")
        job_id = new_job(slow)
        with pytest.raises(requests.Timeout):
            call(slow, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT, timeout=1.0)
        job_id = new_job(fast)
        assert call(fast, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).status_code == 500
    assert slow.failure_latency == (3.0, 9.0)


def test_e17_provider_failures_are_worded_as_the_openai_provider_words_them(
    emu: Emulator,
) -> None:
    """E17: 'LLM call failed: 500: Failed to call provider API: OpenAI error: Connection
    error.', '... OpenAI rate limit: Error code: 429 - {...}', '... OpenAI error: Error
    code: 500 - {...}'."""
    details = set()
    for n in range(20):
        job_id = new_job(emu, user_id=f"u{n}")
        emu.script("llm-call", "transient_500")
        details.add(call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT).json()["detail"])
    prefix = "LLM call failed: 500: Failed to call provider API: "
    assert all(detail.startswith(prefix + "OpenAI ") for detail in details)
    causes = {detail.removeprefix(prefix).split(" - ")[0] for detail in details}
    assert {
        "OpenAI error: Connection error.",
        "OpenAI rate limit: Error code: 429",
        "OpenAI error: Error code: 500",
    } <= causes


def test_e18_a_lowercase_status_filter_is_a_plain_text_500(emu: Emulator) -> None:
    """E18: /api/teams/{id}/jobs?status=completed (lowercase) is a plain-text 500 every
    time; the upper-case filter works."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    new_job(emu)
    path = f"/api/teams/{emu.team_id}/jobs"
    for _ in range(2):
        response = call(emu, "GET", path, params={"status": "completed"})
        assert (response.status_code, response.text) == (500, "Internal Server Error")
    listed = call(emu, "GET", path, params={"status": "COMPLETED"}).json()
    assert (listed["total"], listed["jobs"][0]["job_id"]) == (1, job_id)
    assert call(emu, "GET", path).json()["total"] == 2


def test_e18_team_usage(emu: Emulator) -> None:
    """E18: /api/teams/{id}/usage?period=YYYY-MM sums the team's jobs; period is required."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    new_job(emu)
    period = call(emu, "GET", f"/api/jobs/{job_id}").json()["created_at"][:7]
    usage = call(emu, "GET", f"/api/teams/{emu.team_id}/usage", params={"period": period}).json()
    assert usage["summary"]["total_jobs"] == 2
    assert usage["summary"]["successful_jobs"] == 1
    assert usage["job_types"]["t"]["count"] == 2
    missing = call(emu, "GET", f"/api/teams/{emu.team_id}/usage")
    assert missing.json()["detail"][0]["loc"] == ["query", "period"]


def test_e18_credit_balance_transactions_and_check(emu: Emulator) -> None:
    """E18: /api/credits/teams/{id}/balance, /transactions and POST /check answer the
    team's credits."""
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    base = f"/api/credits/teams/{emu.team_id}"
    account = call(emu, "GET", f"{base}/balance").json()
    assert (account["credits_allocated"], account["credits_used"]) == (1000, 1)
    assert account["credits_remaining"] == 999
    (deduction,) = call(emu, "GET", f"{base}/transactions").json()["transactions"]
    assert (deduction["job_id"], deduction["transaction_type"]) == (job_id, "deduction")
    assert (deduction["credits_before"], deduction["credits_after"]) == (1000, 999)
    check = call(emu, "POST", f"{base}/check", params={"credits_needed": 5}).json()
    assert (check["has_credits"], check["credits_remaining"]) == (True, 999)
    short = call(emu, "POST", f"{base}/check", params={"credits_needed": 5000}).json()
    assert short["has_credits"] is False


def test_e18_another_teams_routes_are_403(emu: Emulator) -> None:
    """E18: a team route of another team is a 403 with the route's own detail."""
    response = call(emu, "GET", "/api/credits/teams/globex/balance")
    assert (response.status_code, response.json()["detail"]) == (
        403,
        "Cannot access credit balance for a different team",
    )
    assert call(emu, "GET", "/api/teams/globex/jobs").status_code == 403


def test_e19_a_trailing_slash_redirects_to_an_absolute_url(emu: Emulator) -> None:
    """E19: POST /api/jobs/create/ is a 307 with an absolute location and no content type."""
    response = call(emu, "POST", "/api/jobs/create/", json={}, allow_redirects=False)
    assert (response.status_code, response.content) == (307, b"")
    assert response.headers["location"] == f"{emu.url}/api/jobs/create"
    assert "content-type" not in response.headers


def test_e20_the_server_closes_the_connection_after_a_plain_text_500(emu: Emulator) -> None:
    """E20: a request sent at once on the connection of a plain-text 500 fails; one sent a
    little later (200 ms on the server; 500 ms here, for loaded machines) goes out on a new
    connection: every one succeeds."""
    port = int(emu.url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {emu.virtual_key}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/api/jobs/not-a-uuid", headers=headers)
        assert connection.getresponse().read() == b"Internal Server Error"
        with pytest.raises(ConnectionError):
            connection.request("GET", "/health")
            connection.getresponse()
    finally:
        connection.close()
    with requests.Session() as session:
        session.headers.update(headers)
        for _ in range(5):
            assert session.get(emu.url + "/api/jobs/not-a-uuid", timeout=10).status_code == 500
            time.sleep(0.5)
            assert session.get(emu.url + "/health", timeout=10).status_code == 200


def stream_response(emu: Emulator, path: str, body: dict[str, Any]) -> requests.Response:
    response: requests.Response = call(emu, "POST", path, json=body, stream=True)
    return response


def test_e21_stream_headers(emu: Emulator) -> None:
    """E21: a stream answers cache-control no-cache, connection keep-alive,
    x-accel-buffering no, chunked."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    with stream_response(emu, "/api/jobs/create-and-call-stream", body) as response:
        headers = response.headers
        response.content  # noqa: B018
    assert headers["cache-control"] == "no-cache"
    assert headers["connection"] == "keep-alive"
    assert headers["x-accel-buffering"] == "no"
    assert headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "text/event-stream; charset=utf-8"


def test_e22_llm_call_stream_is_broken_as_on_the_server() -> None:
    """E22: llm-call-stream answers 200, then only the in-band TypeError event: no
    keepalive, no [DONE]; the job stays IN_PROGRESS."""
    with Emulator() as emu:
        job_id = new_job(emu)
        with stream_response(emu, f"/api/jobs/{job_id}/llm-call-stream", CHAT) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines(decode_unicode=True) if line]
        assert lines == [
            'data: {"error": "\'Response\' object does not support the asynchronous context '
            'manager protocol"}'
        ]
        assert call(emu, "GET", f"/api/jobs/{job_id}").json()["status"] == "IN_PROGRESS"


def test_e23_create_and_call_stream_sends_its_keepalive_then_everything_together() -> None:
    """E23: create-and-call-stream sends ': keepalive' at once, then every chunk together
    once the provider has finished."""
    with Emulator(llm_latency=(1.0, 1.0)) as emu:
        body = json.dumps({"team_id": "acme-corp", "job_type": "t", **CHAT}).encode()
        with socket.create_connection(("127.0.0.1", int(emu.url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(
                b"POST /api/jobs/create-and-call-stream HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {emu.virtual_key}\r\n".encode()
                + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            sock.settimeout(10)
            head = b""
            while b": keepalive" not in head:
                head += sock.recv(65536)
            assert b"data:" not in head
            sock.settimeout(0.3)  # the provider takes 1 s: nothing more comes before
            with pytest.raises(TimeoutError):
                sock.recv(65536)
            sock.settimeout(10)
            rest = sock.recv(65536)
    assert rest.count(b"data: ") >= 3
    assert b"data: [DONE]" in rest


def test_e24_stream_chunks_are_the_providers(emu: Emulator) -> None:
    """E24: the chunks are the provider's own, with id, created, model and compact JSON."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    with stream_response(emu, "/api/jobs/create-and-call-stream", body) as response:
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    first = lines[1].removeprefix("data: ")
    chunk = json.loads(first)
    assert isinstance(chunk["created"], int)
    assert chunk["id"].startswith("chatcmpl-")
    assert chunk["id"] != "chatcmpl-emulated"
    assert chunk["object"] == "chat.completion.chunk"
    assert ", " not in first.split('"content"')[0]


def test_e25_compact_json_from_uvicorn(emu: Emulator) -> None:
    """E25: answers are compact JSON with `server: uvicorn`."""
    response = call(emu, "POST", "/api/jobs/create", json={"team_id": "x", "job_type": "t"})
    assert response.headers["server"] == "uvicorn"
    assert response.content == b'{"detail":"API key does not belong to team \'x\'"}'
    assert call(emu, "GET", f"/api/jobs/{UUID}").content == b'{"detail":"Job not found"}'


# --- the findings' other notes ------------------------------------------------------------


def test_note_create_and_call_records_no_cost(emu: Emulator) -> None:
    """create-and-call records total_cost_usd 0.0 while llm-call records the real cost."""
    body = {"team_id": "acme-corp", "job_type": "t", **CHAT}
    single = call(emu, "POST", "/api/jobs/create-and-call", json=body).json()
    assert single["costs"]["total_cost_usd"] == 0.0
    costs = call(emu, "GET", f"/api/jobs/{single['job_id']}/costs").json()
    assert costs["costs"]["total_cost_usd"] == 0.0
    job_id = new_job(emu)
    call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json=CHAT)
    done = call(emu, "POST", f"/api/jobs/{job_id}/complete", json={"status": "completed"})
    assert done.json()["costs"]["total_cost_usd"] > 0


def test_note_unknown_model_moves_the_job_before_the_403(emu: Emulator) -> None:
    """A call naming an unknown model moves the job to IN_PROGRESS (started) before the 403."""
    job_id = new_job(emu)
    response = call(emu, "POST", f"/api/jobs/{job_id}/llm-call", json={**CHAT, "model": "x"})
    assert response.status_code == 403
    job = call(emu, "GET", f"/api/jobs/{job_id}").json()
    assert job["status"] == "IN_PROGRESS"
    assert job["started_at"] is not None
    assert job["model_groups_used"] == []
