"""The emulator agrees with the live server on every row of the findings page (issue #17).

Each test is named after its row (E1-E25) or finding, and says in its docstring
what the server does. Every test talks HTTP to an emulator on 127.0.0.1 through
a real client (requests, http.client or a bare socket).
"""

from __future__ import annotations

from typing import Any

import requests

from resilience.profiles.saas_litellm.emulator import Emulator

pytest_plugins = ["tests.emulator_fixtures"]

UUID = "00000000-0000-4000-8000-000000000000"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def call(emu: Emulator, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
    """One request on a new connection, with the key of acme-corp unless told."""
    headers = {"Authorization": f"Bearer {key or emu.virtual_key}"}
    headers.update(kwargs.pop("headers", {}))
    return requests.request(method, emu.url + path, headers=headers, timeout=10, **kwargs)


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
