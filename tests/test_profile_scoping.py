"""Issue 17: scoped breakers, recovery, the paid-call bulkhead, deadlines, redirects."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock
from tests.docs_blocks import run_block

from .emulator_helpers import CHAT, Client, Unresponsive
from .forms import cancel_task, run_async
from .test_profile_sse import _fake_stream

pytest_plugins = ["tests.emulator_fixtures"]

JOB = "3f0a6a4e-5f7b-4f6e-9d1c-0a0b0c0d0e0f"
OTHER_MODEL = {**CHAT, "model": "gpt-4o"}


def scoped(kind: str, emu: Emulator, clock: FakeClock, **settings: Any) -> Client:
    """A client of *kind* with the default per-route breakers, on virtual time."""
    return Client(kind, emu.url, emu.virtual_key, clock=clock, **settings)


# --- item 1: a local fault never becomes an outage ----------------------------------------


def test_breakers_are_scoped_by_route_family_and_model_alias() -> None:
    """Issue 17.1: jobs routes share one breaker; each model alias, teams and credits their own."""
    clock = FakeClock()
    url = "https://api.example.com"

    def of(path: str, model: str | None = None) -> rs.CircuitBreaker:
        return saas.breaker_for(url + path, model=model, clock=clock)

    jobs = of("/api/jobs/create")
    assert of(f"/api/jobs/{JOB}") is jobs
    assert of(f"/api/jobs/{JOB}/complete") is jobs
    assert of(f"/api/jobs/{JOB}/costs") is jobs
    llm = of(f"/api/jobs/{JOB}/llm-call", "gpt-4o-mini")
    assert of("/api/jobs/create-and-call", "gpt-4o-mini") is llm
    assert of(f"/api/jobs/{JOB}/llm-call-stream", "gpt-4o-mini") is llm
    assert of(f"/api/jobs/{JOB}/llm-call", "gpt-4o") is not llm
    teams, credits = of("/api/teams/acme/jobs"), of("/api/credits/teams/acme/balance")
    assert len({id(b) for b in (jobs, llm, teams, credits, of("/health"))}) == 5
    assert of("/api/teams/acme/usage") is teams
    assert llm.name == "saas-litellm https://api.example.com llm model='gpt-4o-mini'"
    server = saas.breaker_for(url + "/api/jobs/create", scope="per-base-url", clock=clock)
    assert saas.breaker_for(url + "/health", scope="per-base-url", clock=clock) is server


def test_a_lower_case_status_filter_is_refused_before_sending(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 17.1: GET /api/teams/{id}/jobs?status=completed (a plain-text 500 every time) is
    refused client-side, however often, and sends nothing; jobs keep working.

    The upper-case filter is sent: an emulator without the team routes (row E18, not
    yet merged when this was written) answers it 404, one with them its list.
    """
    api = scoped(kind, emu, clock)
    try:
        for _ in range(saas.FAILURE_THRESHOLD * 2):
            with pytest.raises(ValueError, match="status filter must be upper case"):
                api.get("/api/teams/acme-corp/jobs", params={"status": "completed"})
        assert emu.stats().requests == 0
        try:
            status = api.get(
                "/api/teams/acme-corp/jobs", params={"status": "COMPLETED"}
            ).status_code
        except saas.NotFoundError as missing:  # an answer all the same: it was sent
            status = missing.status
        assert status in (200, 404)
        job_id = api.create_job()
        assert api.get(f"/api/jobs/{job_id}").json()["job_id"] == job_id
    finally:
        api.close()


def test_a_lower_case_status_filter_is_refused_after_an_upper_case_one_was_sent(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 19: the route a client keeps is its whole URL's: another query is checked anew."""
    api = scoped(kind, emu, clock)
    try:
        for _ in range(2):
            try:
                api.get("/api/teams/acme-corp/jobs", params={"status": "COMPLETED"})
            except saas.NotFoundError:  # an emulator without the team routes: sent all the same
                pass
        sent = emu.stats().requests
        with pytest.raises(ValueError, match="status filter must be upper case"):
            api.get("/api/teams/acme-corp/jobs", params={"status": "completed"})
        assert emu.stats().requests == sent == 2
    finally:
        api.close()


def test_a_broken_model_alias_leaves_jobs_and_other_models_working(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 17.1: failing llm-calls on one alias open its breaker only: create, get, another
    model and JobGuard's complete-as-failed all still work."""
    api = scoped(kind, emu, clock)
    try:
        job_id = api.create_job()
        emu.script("llm-call", *["transient_500"] * saas.FAILURE_THRESHOLD)
        for _ in range(saas.FAILURE_THRESHOLD):
            with pytest.raises(saas.ServerError):
                api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
        sent = emu.stats().by_route["llm-call"]
        with pytest.raises(rs.CircuitOpenError) as refused:
            api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
        assert emu.stats().by_route["llm-call"] == sent  # refused unsent
        other = api.post(f"/api/jobs/{job_id}/llm-call", json=OTHER_MODEL).json()
        assert other["response"]["finish_reason"] == "stop"
        second = api.create_job()
        assert api.get(f"/api/jobs/{second}").json()["status"] == "PENDING"
        with pytest.raises(rs.CircuitOpenError):  # the block's error, after completing the job
            api.guard(second, fail_with=refused.value)
    finally:
        api.close()
    assert emu.job(second)["status"] == "FAILED"


def test_failures_of_one_family_leave_the_jobs_routes_working(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 17.1: a route outside the jobs family that keeps failing opens its own breaker."""
    api = scoped(kind, emu, clock, attempts=1)
    try:
        emu.script("health", *["unavailable"] * saas.FAILURE_THRESHOLD)
        for _ in range(saas.FAILURE_THRESHOLD):
            with pytest.raises(saas.ServerError):
                api.get("/health")
        with pytest.raises(rs.CircuitOpenError):
            api.get("/health")
        job_id = api.create_job()
        assert api.get(f"/api/jobs/{job_id}").json()["job_id"] == job_id
    finally:
        api.close()


# --- item 2: recovery within one open period ------------------------------------------------


def _healthy_after_database_back(
    kind: str, emu: Emulator, clock: FakeClock, **settings: Any
) -> float:
    """Poll GET job once a second; the database goes at 0 s and comes back at 45 s.

    Returns the seconds from the database's return to the first success.
    """
    api = scoped(kind, emu, clock, **settings)
    try:
        job_id = api.create_job()
        start = clock.now()
        emu.database_down = True
        back_at = None
        while clock.now() - start < 400:
            if back_at is None and clock.now() - start >= 45:
                emu.database_down = False  # its next query fails once more (a stale pool)
                back_at = clock.now()
            try:
                api.get(f"/api/jobs/{job_id}")
            except (saas.APIError, rs.CircuitOpenError):
                clock.advance(1.0)
                continue
            if back_at is not None:
                return clock.now() - back_at
            clock.advance(1.0)
    finally:
        api.close()
    raise AssertionError("never healthy again")


def test_recovery_within_one_open_period_after_a_database_restart(kind: str, emu: Emulator) -> None:
    """Issue 17.2: the server's first query after its database returns fails; a second probe
    5 s later closes the breaker: healthy within reset_timeout + a few seconds."""
    took = _healthy_after_database_back(kind, emu, FakeClock())
    assert took <= saas.RESET_TIMEOUT + saas.REPROBE_AFTER + 2.0


def test_a_single_probe_would_take_two_open_periods(emu: Emulator) -> None:
    """Issue 17.2, the control: a breaker with a fixed 60 s open period takes more than one."""
    clock = FakeClock()
    fixed = saas.breaker(reset_timeout=saas.RESET_TIMEOUT, clock=clock)
    took = _healthy_after_database_back("requests", emu, clock, breaker=fixed)
    assert took > saas.RESET_TIMEOUT + saas.REPROBE_AFTER + 2.0


def test_reset_timeout_alternates_after_failed_probes() -> None:
    """Issue 17.2: open 60 s, then 5 s after a failed probe, then 60 s again, and so on."""
    reset = saas.breaker().reset_timeout
    assert callable(reset)
    periods = [reset(n, 0.0, None) for n in range(1, 6)]  # type: ignore[arg-type]
    assert periods == [60.0, 5.0, 60.0, 5.0, 60.0]


# --- item 7: paid calls go through a bulkhead -------------------------------------------------


def test_paid_calls_go_through_the_bulkhead(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """Issue 17.7: the bulkhead's only slot taken, an llm-call is refused unsent; jobs are not."""
    bulkhead = rs.Bulkhead(max_concurrent=1, name="paid")
    api = scoped(kind, emu, clock, breaker=None, paid_calls=bulkhead)
    try:
        job_id = api.create_job()
        with bulkhead:
            with pytest.raises(rs.BulkheadFullError):
                api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
            assert api.get(f"/api/jobs/{job_id}").json()["job_id"] == job_id
        assert emu.stats().by_route.get("llm-call", 0) == 0
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    finally:
        api.close()
    assert emu.stats().paid_calls == 1


def test_the_default_bulkhead_is_the_servers_and_well_under_its_pool() -> None:
    """Issue 17.7: 8 paid calls at once per server by default (its pool holds 15), shared."""
    url = "https://api.example.com/api/jobs/create-and-call"
    text = saas.pipeline("POST", url, breaker=None).explain()
    assert "Bulkhead 'saas-litellm paid calls https://api.example.com': at most 8" in text
    assert saas.PAID_CALLS == 8 < 15
    assert saas.paid_calls_for(url) is saas.paid_calls_for("https://api.example.com/x")
    assert (
        "Bulkhead" not in saas.pipeline("POST", "https://api.example.com/api/jobs/create").explain()
    )
    assert "Bulkhead" not in saas.pipeline("POST", url, paid_calls=None).explain()
    with pytest.raises(ValueError, match="paid_calls"):
        saas.Options(paid_calls=0)


# --- item 4: one exception family for deadlines -----------------------------------------------


def test_a_deadline_already_passed_is_an_unsent_timeout(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 17.4: a call after its enclosing deadline: APITimeoutError(request_sent=False)."""
    api = scoped(kind, emu, clock, breaker=None)
    try:
        job_id = api.create_job()
        with rs.Timeout(5.0, clock=clock):
            clock.advance(6.0)
            with pytest.raises(saas.APITimeoutError) as caught:
                api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    finally:
        api.close()
    assert caught.value.request_sent is False
    assert caught.value.path == f"/api/jobs/{job_id}/llm-call"
    assert emu.stats().by_route.get("llm-call", 0) == 0


def test_async_timeout_around_async_client_raises_api_timeout_error(
    emu: Emulator, backend: str
) -> None:
    """Issue 17.4: `async with rs.Timeout(...)` around an async_client call to a slow llm-call
    raises saas.APITimeoutError(request_sent=True), not rs.TimeoutExceededError."""

    async def main() -> saas.APITimeoutError:
        async with saas.async_client(emu.url, emu.virtual_key, breaker=None) as api:
            answer = await api.post(
                "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}
            )
            job_id = answer.json()["job_id"]
            emu.script("llm-call", "slow")
            with pytest.raises(saas.APITimeoutError) as caught:
                async with rs.Timeout(0.3):
                    await api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
            return caught.value

    error = run_async(main, backend)
    assert error.request_sent is True
    assert error.method == "POST"
    assert error.path is not None
    assert error.path.endswith("/llm-call")


def test_async_timeout_while_waiting_for_a_slot_is_an_unsent_timeout(
    emu: Emulator, backend: str
) -> None:
    """Issue 17.4: a deadline that ends a paid call's wait for a bulkhead slot: APITimeoutError,
    request_sent=False, nothing sent."""
    bulkhead = rs.Bulkhead(max_concurrent=1, max_queue=4, name="paid")

    async def main() -> saas.APITimeoutError:
        async with saas.async_client(
            emu.url, emu.virtual_key, breaker=None, paid_calls=bulkhead
        ) as api:
            answer = await api.post(
                "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}
            )
            job_id = answer.json()["job_id"]
            async with bulkhead:
                with pytest.raises(saas.APITimeoutError) as caught:
                    async with rs.Timeout(0.2):
                        await api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
            return caught.value

    error = run_async(main, backend)
    assert error.request_sent is False
    assert emu.stats().by_route.get("llm-call", 0) == 0


# --- item 5: one redirect behaviour ------------------------------------------------------------


def test_a_trailing_slash_redirect_is_followed_by_every_client(api: Client, emu: Emulator) -> None:
    """Issue 17.5: POST /api/jobs/create/ (a 307) is followed by all three clients: one job."""
    answer = api.post("/api/jobs/create/", json={"team_id": "acme-corp", "job_type": "t"})
    assert answer.status_code == 200
    assert answer.json()["status"] == "PENDING"
    stats = emu.stats()
    assert (stats.by_route["create"], stats.jobs) == (1, 1)


def test_async_timeout_while_connecting_is_an_unsent_timeout(
    unresponsive: Unresponsive, backend: str
) -> None:
    """Issue 17.4: an enclosing async deadline that ends a connect raises APITimeoutError with
    request_sent=False (httpcore's trace: the request's headers never started)."""

    async def main() -> saas.APITimeoutError:
        url = f"http://127.0.0.1:{unresponsive.port}"
        async with saas.async_client(url, "sk-" + "a" * 32, breaker=None, attempts=1) as api:
            with pytest.raises(saas.APITimeoutError) as caught:
                async with rs.Timeout(0.3):
                    await api.post("/api/jobs/create", json={"team_id": "t", "job_type": "t"})
            return caught.value

    error = run_async(main, backend)
    assert error.request_sent is False


class LoopBlocker(httpx.AsyncBaseTransport):
    """A transport that blocks its event loop for *seconds*, then waits until cancelled."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.seconds)  # noqa: ASYNC251 - blocking the loop on purpose
        await anyio.sleep_forever()
        raise AssertionError("the request was not cancelled")


def test_a_run_late_past_both_deadlines_raises_api_timeout_error(backend: str) -> None:
    """Issue 17.4, #15: a run blocked past the client's margin and the enclosing deadline (both
    timers due at once) still raises APITimeoutError, not the Timeout's, in every backend."""

    async def main() -> None:
        async with saas.async_client(
            "http://127.0.0.1:9", "sk-" + "a" * 32, breaker=None, transport=LoopBlocker(0.3)
        ) as api:
            with pytest.raises(saas.APITimeoutError):
                async with rs.Timeout(0.1):
                    await api.get("/api/jobs/3f0a6a4e-5f7b-4f6e-9d1c-0a0b0c0d0e0f")

    run_async(main, backend)


def test_a_cancellation_inside_a_deadline_stays_a_cancellation(emu: Emulator, backend: str) -> None:
    """Issue 17.4: the async client turns only its deadline into APITimeoutError: a task
    cancelled while an enclosing deadline still runs ends with its cancellation."""
    sent_at: list[float] = []

    async def call() -> None:
        async with saas.async_client(emu.url, emu.virtual_key, breaker=None) as api:
            answer = await api.post(
                "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}
            )
            job_id = answer.json()["job_id"]
            emu.script("get", "slow")
            sent_at.append(time.monotonic())
            async with rs.Timeout(30.0):
                await api.get(f"/api/jobs/{job_id}")

    # Cancelled 0.2 s into the slow GET, well inside its deadline.
    cancel_task(call, lambda: bool(sent_at) and time.monotonic() - sent_at[0] >= 0.2, backend)


PROFILE_DOC = Path(__file__).resolve().parent.parent / "docs" / "profile-saas-litellm.md"


def _doc_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", PROFILE_DOC.read_text(), re.DOTALL)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"docs/profile-saas-litellm.md lost its {marker!r} example"
    return str(found[0])


def test_the_docs_breaker_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The per-route breakers example of docs/profile-saas-litellm.md runs as a reader pastes it."""
    block = _doc_block('jobs = saas.breaker_for(f"{api_url}/api/jobs/create")')
    run_block("profile-saas-litellm.md", block, {"__name__": "doc"})
    expected = "saas-litellm https://saas-litellm.example.com llm model='gpt-4o-mini'"
    assert capsys.readouterr().out.strip() == expected


def test_the_docs_stream_breaker_example_counts_an_in_band_error() -> None:
    """The docs' stream read under the model's breaker: an in-band error counts toward it."""
    block = _doc_block("with saas.breaker_for(url, model=")
    url = f"https://doc.example.com/api/jobs/{JOB}/llm-call-stream"
    chat = {**CHAT, "model": "doc-model"}
    body = json.dumps({"error": "500: Failed to call provider API: Connection error."})
    response = _fake_stream([b"data: " + body.encode() + b"\n\n"])
    namespace = {"saas": saas, "url": url, "chat": chat, "response": response}
    with pytest.raises(saas.StreamError):
        run_block("profile-saas-litellm.md", block, namespace)
    breaker = saas.breaker_for(url, model="doc-model")
    assert state_of(breaker) is rs.CircuitState.CLOSED
    for _ in range(saas.FAILURE_THRESHOLD - 1):
        with pytest.raises(saas.StreamError):
            exec(
                compile(block, "docs/profile-saas-litellm.md", "exec"),
                {**namespace, "response": _fake_stream([b"data: " + body.encode() + b"\n\n"])},
            )
    assert state_of(breaker) is rs.CircuitState.OPEN


def state_of(breaker: rs.CircuitBreaker) -> rs.CircuitState:
    """The breaker's state, read afresh (no narrowing carried over from an earlier read)."""
    return breaker.state
