"""The profile's clients: URLs, timeouts and deadlines, the breaker per base URL, typed errors."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilience as rs
from resilience.profiles import saas_litellm as saas
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock, capture_events

from .emulator_helpers import CHAT, Client
from .forms import run_async
from .threads import join_all

pytest_plugins = ["tests.emulator_fixtures"]

UUID_JOB = "00000000-0000-4000-8000-000000000000"


def test_relative_and_absolute_urls(api: Client, emu: Emulator) -> None:
    """Paths are relative to the base URL; absolute URLs are sent as given."""
    job_id = api.create_job()
    assert api.get(f"/api/jobs/{job_id}").json()["job_id"] == job_id
    assert api.get(f"{emu.url}/api/jobs/{job_id}").json()["job_id"] == job_id


def test_base_url_with_a_path_prefix(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """A base URL ending in a prefix (/api) takes paths after it, matched in the map."""
    client = Client(kind, f"{emu.url}/api", emu.virtual_key, clock=clock, breaker=None)
    try:
        job_id = client.post("jobs/create", json={"team_id": "acme-corp", "job_type": "t"}).json()
        emu.script("llm-call", "drop")
        with pytest.raises(saas.APIConnectionError):  # llm-call: not retried
            client.post(f"/jobs/{job_id['job_id']}/llm-call", json=CHAT)
    finally:
        client.close()
    assert emu.stats().by_route["llm-call"] == 1


def test_bad_job_id_fails_before_sending(api: Client, emu: Emulator) -> None:
    """A job id that is not a UUID raises ValueError and sends nothing."""
    with pytest.raises(ValueError, match="job_id must be a UUID"):
        api.post("/api/jobs/12345/llm-call", json=CHAT)
    assert emu.stats().requests == 0


def test_outer_deadline_caps_the_socket_timeout(kind: str, emu: Emulator) -> None:
    """A Timeout around the call lowers the socket timeout: a slow answer becomes a timeout.

    Without the cap the answer would arrive (after 5 s, within the endpoint's
    10 s) and the call would succeed. The async client ends the call just
    before the enclosing deadline: APITimeoutError there too (issue 17.4).
    """
    client = Client(kind, emu.url, emu.virtual_key, breaker=None, clock=FakeClock())
    expected = saas.APITimeoutError
    try:
        job_id = client.create_job()
        emu.script("get", "slow", "slow", "slow")
        if kind == "async":
            assert client.loop is not None

            async def call() -> Any:
                async with rs.Timeout(0.3):
                    return await client.api.get(f"/api/jobs/{job_id}")

            with pytest.raises(expected):
                client.loop.run(call())
        else:
            with pytest.raises(expected), rs.Timeout(0.3):
                client.get(f"/api/jobs/{job_id}")
    finally:
        client.close()


class Recording(httpx.BaseTransport):
    """A real transport that remembers the timeouts each request was sent with."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.timeouts: list[dict[str, float | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.timeouts.append(dict(request.extensions["timeout"]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    ("path", "per_call", "outer", "expected"),
    [
        ("/api/jobs/{job}/llm-call", None, None, 60.0),
        ("/api/jobs/{job}/complete", None, None, 30.0),
        ("/api/jobs/{job}", None, None, 10.0),
        ("/api/jobs/{job}/llm-call", 5.0, None, 5.0),
        ("/api/jobs/{job}/llm-call", 500.0, None, 60.0),
        ("/api/jobs/{job}/llm-call", None, 2.0, 2.0),
    ],
    ids=["llm-call", "complete", "get", "per-call-lower", "per-call-higher", "deadline"],
)
def test_socket_timeout_is_the_lowest_limit(
    emu: Emulator, path: str, per_call: float | None, outer: float | None, expected: float
) -> None:
    """The socket gets min(endpoint timeout, per-call timeout, time left before the deadline)."""
    clock = FakeClock()
    recording = Recording()
    with saas.client(emu.url, emu.virtual_key, transport=recording, clock=clock) as client:
        job_id = client.post("/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"})
        url = path.format(job=job_id.json()["job_id"])
        method = "GET" if url.count("/") == 3 else "POST"
        extra: dict[str, Any] = {} if per_call is None else {"timeout": per_call}
        body = {"status": "completed"} if "complete" in url else CHAT
        json = None if method == "GET" else body
        if outer is None:
            client.request(method, url, json=json, **extra)
        else:
            with rs.Timeout(outer, clock=clock):
                client.request(method, url, json=json, **extra)
    assert recording.timeouts[-1] == dict.fromkeys(("connect", "read", "write", "pool"), expected)


def test_breaker_per_base_url_is_shared_and_opens(emu: Emulator) -> None:
    """Sessions and clients of one server share its breaker: 5 failures open it for all."""
    clock = FakeClock()
    one = Client("requests", emu.url, emu.virtual_key, clock=clock, attempts=1)
    two = Client("httpx", emu.url, emu.virtual_key, clock=clock, attempts=1)
    try:
        emu.script("health", *["unavailable"] * 5)
        for client in (one, two, one, two, one):
            with pytest.raises(saas.ServerError):
                client.get("/health")
        with capture_events() as events, pytest.raises(rs.CircuitOpenError):
            two.get("/health")
        assert emu.stats().by_route["health"] == 5  # the sixth was never sent
        assert any(isinstance(event, rs.CallRejected) for event in events)
        clock.advance(saas.RESET_TIMEOUT)
        assert one.get("/health").status_code == 200  # the probe closes it
    finally:
        one.close()
        two.close()
    assert saas.breaker_for(emu.url, clock=clock) is saas.breaker_for(emu.url + "/x", clock=clock)


@pytest.mark.parametrize("factory", ["breaker", "breaker_for"])
def test_breaker_admits_a_single_half_open_probe(emu: Emulator, factory: str) -> None:
    """After the open period, one probe runs; a concurrent second call is rejected unsent.

    Two real threads call the server through the profile's pipeline; the probe
    is held (on an Event, before it sends) while the second call arrives.
    """
    import requests

    clock = FakeClock()
    if factory == "breaker":
        breaker = saas.breaker(clock=clock)
    else:
        breaker = saas.breaker_for(emu.url, clock=clock)
    assert breaker.half_open_max_calls == saas.HALF_OPEN_MAX_CALLS == 1
    url = f"{emu.url}/health"
    pipeline = saas.pipeline("GET", url, clock=clock, breaker=breaker, attempts=1)

    def get() -> int:
        response = requests.get(url, timeout=rs.deadline.remaining())
        return int(saas.raise_for_response(response).status_code)

    emu.script("health", *["unavailable"] * saas.FAILURE_THRESHOLD)
    for _ in range(saas.FAILURE_THRESHOLD):
        with pytest.raises(saas.ServerError):
            pipeline.call(get)
    assert breaker.retry_after == saas.RESET_TIMEOUT  # open
    clock.advance(saas.RESET_TIMEOUT)
    assert state_of(breaker) is rs.CircuitState.HALF_OPEN

    entered, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def probe() -> int:
        entered.set()
        assert release.wait(timeout=10)
        return get()

    def run(name: str, fn: Any) -> None:
        try:
            results[name] = pipeline.call(fn)
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=run, args=("probe", probe))
    second = threading.Thread(target=run, args=("second", get))
    first.start()
    try:
        assert entered.wait(timeout=10)
        second.start()
        join_all([second])
    finally:
        release.set()
        join_all([first])
    assert isinstance(results["second"], rs.CircuitOpenError)
    assert results["probe"] == 200
    assert emu.stats().by_route["health"] == saas.FAILURE_THRESHOLD + 1  # the second never sent
    assert state_of(breaker) is rs.CircuitState.CLOSED


def state_of(breaker: rs.CircuitBreaker) -> rs.CircuitState:
    """The breaker's state, read afresh (no type narrowing carried over from earlier reads)."""
    return breaker.state


def test_backoff_is_capped_at_32_seconds_after_jitter() -> None:
    """The profile's backoff: ±25 % jitter around the curve, the 32 s cap applied after it.

    From the 6th retry on, the curve is at its 32 s cap: every delay lies in
    [24, 32] (never up to 40), and the jittered values above 32 are clamped to
    exactly 32. The retries of Options use this backoff.
    """
    assert saas.Options().retry(True).backoff is saas.BACKOFF
    assert saas.Options().retry(False).backoff is saas.BACKOFF
    rng = random.Random(1234)
    previous = 0.0
    delays = []
    for attempt in [*range(6, 400), 10_000, 10**9]:
        previous = saas.BACKOFF(attempt, previous, rng)
        delays.append(previous)
    assert all(32.0 * 0.75 <= delay <= 32.0 for delay in delays)
    assert max(delays) == 32.0
    assert min(delays) < 32.0 * 0.8  # jittered below the cap, not a constant 32
    early = [saas.BACKOFF(1, 0.0, rng) for _ in range(200)]
    assert all(0.75 <= delay <= 1.25 for delay in early)
    assert max(early) > 1.0  # below the cap, jitter also goes above the curve


def test_retries_sleep_no_more_than_the_cap(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """Through a real client, 19 503s then a 200: every sleep obeys the capped, jittered curve.

    From the 6th retry on (14 sleeps), the ±25 % jitter would go past 32 s about
    half of the time if the cap did not apply after it.
    """
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None, attempts=20)
    try:
        emu.script("health", *["unavailable"] * 19, "ok")
        assert client.get("/health").status_code == 200
    finally:
        client.close()
    assert len(clock.sleeps) == 19
    for attempt, slept in enumerate(clock.sleeps, start=1):
        curve = min(2.0 ** (attempt - 1), 32.0)
        assert 0.75 * curve <= slept <= min(1.25 * curve, 32.0)


def test_client_errors_never_trip_the_breaker(api: Client, emu: Emulator) -> None:
    """4xx answers, however many, never open the breaker."""
    breaker = saas.breaker(clock=FakeClock())
    client = Client(api.kind, emu.url, "sk-" + "f" * 32, breaker=breaker, clock=FakeClock())
    try:
        for _ in range(saas.FAILURE_THRESHOLD * 2):
            with pytest.raises(saas.AuthenticationError):
                client.create_job()
    finally:
        client.close()
    assert breaker.state is rs.CircuitState.CLOSED


def test_retries_count_against_the_breaker(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """Every failed attempt counts: two requests of three 503s open the breaker."""
    breaker = saas.breaker(clock=clock)
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=breaker)
    try:
        emu.script("health", *["unavailable"] * 6)
        with pytest.raises(saas.ServerError):
            client.get("/health")
        with pytest.raises((saas.ServerError, rs.CircuitOpenError)):
            client.get("/health")
    finally:
        client.close()
    assert breaker.state is rs.CircuitState.OPEN
    assert emu.stats().by_route["health"] == 5


def test_no_reset_after_a_plain_text_500_on_a_paid_call(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """After the database comes back, a paid call's plain-text 500 is retried on a new connection.

    With retry_ambiguous=True (the 500 of a paid call is ambiguous). The server
    kills a connection after a plain-text 500; the emulator resets the next
    request sent on it. The profile never reuses it, so the retry reaches the
    server instead of failing as an ambiguous drop.
    """
    api = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None, retry_ambiguous=True)
    try:
        job_id = api.create_job()
        emu.database_down = True
        emu.database_down = False  # the next authenticated request fails once more
        api.post(f"/api/jobs/{job_id}/llm-call", json=CHAT)
    finally:
        api.close()
    stats = emu.stats()
    assert (stats.by_route["llm-call"], stats.paid_calls) == (2, 1)


def _own_call(emu: Emulator, clock: FakeClock) -> tuple[rs.Pipeline, Callable[[Any], Any]]:
    """pipeline() on the user's own requests calls (retry_ambiguous, 2 attempts), and the call."""
    job_id = emu_job(emu)
    url = f"{emu.url}/api/jobs/{job_id}/llm-call"
    headers = {"Authorization": f"Bearer {emu.virtual_key}"}
    pipeline = saas.pipeline(
        "POST", url, clock=clock, breaker=None, retry_ambiguous=True, attempts=2
    )

    def call(post: Any) -> Any:
        response = post(url, json=CHAT, headers=headers, timeout=rs.deadline.remaining())
        return saas.raise_for_response(response).json()

    return pipeline, call


def test_pipeline_on_own_calls_meets_the_connection_a_plain_500_kills(
    emu: Emulator, clock: FakeClock
) -> None:
    """pipeline() on a kept-alive session, as docs/profile-saas-litellm.md says: the retry
    sent at once after a plain-text 500 meets the connection the server closes (E20), a
    typed dropped connection, and nothing is paid.

    Which way it drops is a race, as on the real server: the retry is sent on the closing
    socket (the server never sees it), or urllib3 sees the socket closed, reconnects, and
    meets the scripted reset.
    """
    import requests

    pipeline, call = _own_call(emu, clock)
    with requests.Session() as session:
        emu.script("llm-call", "plain_500", "reset")
        with pytest.raises(saas.APIConnectionError) as caught:
            pipeline.call(call, session.post)
    assert caught.value.request_sent is True
    assert emu.stats().by_route["llm-call"] in (1, 2)
    assert emu.stats().paid_calls == 0


def test_pipeline_on_own_calls_retries_a_plain_500_on_a_new_connection(
    emu: Emulator, clock: FakeClock
) -> None:
    """pipeline() with a new connection per attempt: the retry after a plain-text 500
    reaches the server and is answered (retry_ambiguous)."""
    import requests

    pipeline, call = _own_call(emu, clock)
    emu.script("llm-call", "plain_500")
    assert pipeline.call(call, requests.post)["response"]["finish_reason"] == "stop"
    assert (emu.stats().by_route["llm-call"], emu.stats().paid_calls) == (2, 1)


@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_a_killed_connection_is_never_handed_to_another_thread(emu: Emulator, kind: str) -> None:
    """Threads share the client's pool while the server kills connections with plain-text
    500s: the connection is closed before it goes back to the pool, never after (when
    another thread may already be sending a paid call on it). Every error is typed."""
    api = Client(kind, emu.url, emu.virtual_key, clock=FakeClock(), breaker=None, attempts=1)
    job_id = api.create_job()
    emu.script("costs", *["plain_500"] * 10_000)
    outcomes: list[tuple[str, object]] = []

    def run(path: str, body: dict[str, Any] | None) -> None:
        for _ in range(60):
            try:
                api.post(path, json=body) if body else api.get(path)
                outcomes.append((path, "ok"))
            except saas.APIError as exc:
                outcomes.append((path, exc))
            except Exception as exc:  # an untyped error: the test fails below
                outcomes.append((path, exc))

    costs, paid = f"/api/jobs/{job_id}/costs", f"/api/jobs/{job_id}/llm-call"
    threads = [threading.Thread(target=run, args=(costs, None)) for _ in range(3)]
    threads += [threading.Thread(target=run, args=(paid, CHAT)) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        join_all(threads)
    finally:
        api.close()
    untyped = [
        o for _, o in outcomes if isinstance(o, Exception) and not isinstance(o, saas.APIError)
    ]
    assert untyped == []
    answered = sum(1 for path, o in outcomes if path == paid and o == "ok")
    assert emu.stats().paid_calls == answered  # no paid answer lost on a killed connection
    if kind == "requests":  # urllib3 never hands out a connection being closed
        assert answered == 180


def test_in_band_stream_errors_count_when_read_under_the_breaker(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """An error event after the 200 trips the breaker the docs show the stream read under."""
    breaker = saas.breaker(clock=clock)
    api = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None)
    try:
        job_id = api.create_job()
        emu.script("llm-call-stream", *["stream_error"] * saas.FAILURE_THRESHOLD)
        for _ in range(saas.FAILURE_THRESHOLD):
            with pytest.raises(saas.StreamError), breaker:
                api.events(f"/api/jobs/{job_id}/llm-call-stream", CHAT)
    finally:
        api.close()
    assert breaker.state is rs.CircuitState.OPEN


def _one_answer_per_connection(answers: list[bytes]) -> tuple[str, list[bytes], Any]:
    """A raw HTTP server on 127.0.0.1: each connection gets the next answer, then is closed."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    requests_seen: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            try:
                connection, _ = server.accept()
            except OSError:  # closed, or nobody came
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                requests_seen.append(data)
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def stop() -> None:
        server.close()
        join_all([thread])

    return f"http://127.0.0.1:{server.getsockname()[1]}", requests_seen, stop


def test_a_connection_dropped_mid_body_is_retried_on_an_idempotent_endpoint(
    kind: str, clock: FakeClock
) -> None:
    """A 200 whose body is cut short is a failure of that attempt, inside the pipeline:
    typed and retried on a GET (requests and httpx read bodies after the transport)."""
    cut = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"job_id":'
    )
    whole = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    url, seen, stop = _one_answer_per_connection([cut, whole])
    client = Client(kind, url, "sk-" + "a" * 32, clock=clock, breaker=None)
    try:
        assert client.get(f"/api/jobs/{UUID_JOB}").content == b"{}"
    finally:
        client.close()
        stop()
    assert len(seen) == 2
    assert len(clock.sleeps) == 1


def emu_job(emu: Emulator) -> str:
    """Create a job directly on the emulator's API."""
    import requests

    response = requests.post(
        f"{emu.url}/api/jobs/create",
        json={"team_id": "acme-corp", "job_type": "t"},
        headers={"Authorization": f"Bearer {emu.virtual_key}"},
        timeout=5,
    )
    return str(response.json()["job_id"])


def test_final_failure_carries_a_note_and_the_chain(api: Client, emu: Emulator) -> None:
    """The typed error of the last attempt says how many attempts were made."""
    emu.script("create", "unavailable", "unavailable", "unavailable")
    with pytest.raises(saas.ServerError) as caught:
        api.create_job()
    assert caught.value.status == 503
    assert any("gave up after 3 attempts" in note for note in caught.value.__notes__)


def test_events_name_each_request_by_its_path_each_time(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 19: events name a request by its own path, sent again too (its route is kept)."""
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None)
    targets: list[str | None] = []
    try:
        first, second = client.create_job(), client.create_job()
        for job_id in (first, first, second):
            emu.script("get", "unavailable")
            with capture_events() as events:
                assert client.get(f"/api/jobs/{job_id}").status_code == 200
            targets += [event.target for event in events if isinstance(event, rs.RetryScheduled)]
    finally:
        client.close()
    paths = [f"GET /api/jobs/{job_id}" for job_id in (first, first, second)]
    assert targets == paths


def test_routes_are_kept_for_urls_sent_again_and_bounded() -> None:
    """Issue 19: a client keeps the routes of URLs sent again (a bounded few), none of one-offs."""
    from resilience.profiles.saas_litellm import _clients

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    api = saas.client("https://api.example.com", "sk-test", transport=transport)
    routes = api._transport._routes  # type: ignore[attr-defined]
    try:
        for n in range(2 * _clients._ROUTES):  # new jobs, each sent to once
            api.get(f"/api/jobs/00000000-0000-4000-8000-{n:012d}")
        assert routes == {}
        for _ in range(3):  # a job polled
            api.get(f"/api/jobs/{UUID_JOB}")
        [(method, _)] = routes
        assert method == "GET"
        for n in range(3 * _clients._ROUTES):  # many jobs polled: never more than the bound
            for _ in range(2):
                api.get(f"/api/jobs/00000000-0000-4000-9000-{n:012d}")
            assert len(routes) <= _clients._ROUTES
    finally:
        api.close()


def test_new_jobs_share_their_models_breaker() -> None:
    """Issue 19: a new job's paid call, routed by its URL's shape, meets its model's breaker."""
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503 if b'"model":"a"' in request.content else 200, json={})

    clock = FakeClock()
    transport = httpx.MockTransport(answer)
    base = "https://shapes.example.com"
    api = saas.client(base, "sk-test", transport=transport, clock=clock, attempts=1)
    try:
        for n in range(5):  # five new jobs fail on model a: its breaker opens
            with pytest.raises(saas.ServerError):
                api.post(
                    f"/api/jobs/00000000-0000-4000-8000-{n:012d}/llm-call", json={"model": "a"}
                )
        with pytest.raises(rs.CircuitOpenError):
            api.post(f"/api/jobs/{UUID_JOB[:-1]}9/llm-call", json={"model": "a"})
        assert api.post(f"/api/jobs/{UUID_JOB}/llm-call", json={"model": "b"}).status_code == 200
    finally:
        api.close()
    assert len(sent) == 6  # the sixth call on model a was never sent


def test_a_session_routes_new_jobs_by_their_urls_shape(emu: Emulator) -> None:
    """Issue 19: a requests session learns a job URL's shape from the whole URL, once."""
    api = saas.session(emu.url, emu.virtual_key)
    adapter: Any = api.get_adapter(emu.url + "/")
    try:
        jobs = [
            api.post("/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}).json()
            for _ in range(3)
        ]
        for job in jobs:
            assert api.get(f"/api/jobs/{job['job_id']}").json()["job_id"] == job["job_id"]
            # With a query: found by the map, as any URL the shapes cannot tell.
            assert api.get(f"/api/jobs/{job['job_id']}?x=1").status_code == 200
    finally:
        api.close()
    [(shaped, known)] = adapter._shapes.items()
    assert shaped == ("GET", None, f"{emu.url}/api/jobs", "")
    assert known[0].template == "/api/jobs/{job_id}"
    assert known[-1] == len(emu.url)  # where the path starts


def test_threads_sharing_a_client_meet_their_own_models_breaker() -> None:
    """Issue 19: threads sending paid calls to new jobs share one client's routes, shapes and
    runners by model (raw keys included) and each call meets its own model's breaker."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if b'"model":"a"' in request.content else 200, json={})

    api = saas.client(
        "https://threads.example.com",
        "sk-test",
        transport=httpx.MockTransport(answer),
        clock=FakeClock(),
        attempts=1,
    )
    start = threading.Barrier(8)
    outcomes: list[tuple[str, str]] = []

    def work(worker: int) -> None:
        start.wait()
        for n in range(40):
            model = "ab"[n % 2]
            url = f"/api/jobs/00000000-0000-4000-8000-{worker:04d}{n:08d}/llm-call"
            try:
                api.post(url, json={"model": model})
            except Exception as exc:  # the outcome is what the test reads
                outcomes.append((model, type(exc).__name__))
            else:
                outcomes.append((model, "ok"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        join_all(threads)
    finally:
        api.close()
    assert {outcome for model, outcome in outcomes if model == "b"} == {"ok"}
    failures = {outcome for model, outcome in outcomes if model == "a"}
    assert failures == {"ServerError", "CircuitOpenError"}
    assert len(outcomes) == 8 * 40


def test_job_ids_in_other_forms_are_still_checked() -> None:
    """Issue 19: once a job's URL shape is known, other ids are still matched and checked."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    api = saas.client("https://api.example.com", "sk-test", transport=transport)
    try:
        assert api.get(f"/api/jobs/{UUID_JOB}").status_code == 200
        assert api.get(f"/api/jobs/{UUID_JOB.replace('-', '')}").status_code == 200
        assert api.get(f"/api/jobs/{UUID_JOB}/").status_code == 200
        with pytest.raises(ValueError, match="job_id must be a UUID"):
            api.get("/api/jobs/not-a-uuid")
    finally:
        api.close()


def test_a_map_with_a_uuid_literal_routes_by_whole_urls() -> None:
    """Issue 19: a map naming a job id literally keeps no routes by shape (its row could win)."""
    from resilience.profiles.saas_litellm import _clients

    literal = saas.Endpoint("GET", f"/api/jobs/{UUID_JOB}", 5.0, True)
    assert _clients._shapes_for(saas.ENDPOINTS) == {}
    assert _clients._shapes_for(saas.EndpointMap([literal, *saas.ENDPOINTS])) is None


def test_key_never_appears_in_errors_or_events(kind: str, emu: Emulator, clock: FakeClock) -> None:
    """Neither the key nor the request body ever reaches an exception or an event."""
    secret = "do not log this prompt"
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None, retry_ambiguous=True)
    try:
        job_id = client.create_job()
        emu.script("llm-call", "plain_500", "plain_500", "plain_500")
        with capture_events() as events, pytest.raises(saas.ServerError) as caught:
            client.post(
                f"/api/jobs/{job_id}/llm-call",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": secret}]},
            )
    finally:
        client.close()
    texts = [str(caught.value), repr(caught.value), *caught.value.__notes__]
    texts += [event.message() for event in events] + [repr(event) for event in events]
    for text in texts:
        assert emu.virtual_key not in text
        assert secret not in text


def test_bad_arguments_fail_at_construction() -> None:
    """Bad settings are refused when the client is made, naming the parameter."""
    with pytest.raises(ValueError, match="base_url"):
        saas.session("api.example.com", "sk-x")
    with pytest.raises(ValueError, match="virtual_key"):
        saas.session("https://api.example.com", "  ")
    with pytest.raises(ValueError, match="attempts"):
        saas.session("https://api.example.com", "sk-x", attempts=0)
    with pytest.raises(TypeError, match="breaker"):
        saas.client("https://api.example.com", "sk-x", breaker="yes")


def test_importing_resilience_imports_no_http_client() -> None:
    """import resilience (and the profile) never imports requests or httpx."""
    code = (
        "import sys, resilience, resilience.integrations, resilience.profiles.saas_litellm; "
        "print(sorted(m for m in ('requests', 'httpx', 'urllib3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_MODEL_BODIES = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda before, sep, name, after: before + b'"model"' + sep + b'"' + name + after,
        st.sampled_from([b"", b"{", b'{"messages": [], ', b'{"x": "\\"model\\"", ']),
        st.sampled_from([b":", b": ", b" : ", b":\n", b"=", b""]),
        st.binary(max_size=220).filter(lambda name: b'"' not in name)
        | st.sampled_from([b'gpt-4o"', b'a\\"b"', b'\\\\"', b'"'])
        | st.integers(198, 202).map(lambda n: b"x" * n + b'"'),
        st.sampled_from([b"", b"}", b', "model": "second"}']),
    ),
)


@settings(max_examples=500, deadline=None)
@given(body=_MODEL_BODIES)
def test_the_model_read_from_a_body_is_the_patterns_first_match(body: bytes) -> None:
    """Issue 19: the quick read of a paid call's model gives what the body's pattern matches."""
    from resilience.profiles.saas_litellm import _policy

    found = _policy._MODEL.search(body)
    expected = None if found is None else found.group(1).decode("utf-8", "replace")
    assert _policy._model_of(body) == expected
    assert _policy._model_of(bytearray(body)) == expected
    assert _policy._model_of(body.decode("latin-1")) == (
        None
        if (again := _policy._MODEL.search(body.decode("latin-1").encode("utf-8", "replace")))
        is None
        else again.group(1).decode("utf-8", "replace")
    )


class _Pipelines:
    """Options' stand-in for `_paid`: one runner per model, made once, counted."""

    def __init__(self) -> None:
        self.made: dict[str | None, object] = {}

    def for_client(
        self, method: str, url: str, found: object, model: str | None, shape: object
    ) -> Any:
        made = self.made.setdefault(model, object())
        return type("P", (), {"runner": lambda self, shape: made})()


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(_MODEL_BODIES, min_size=1, max_size=12))
def test_a_paid_calls_runner_is_its_bodys_models(bodies: list[bytes]) -> None:
    """Issue 19: the runner `_paid` finds by a body's raw bytes is that of the model it names."""
    from resilience.profiles.saas_litellm import _clients, _policy

    opts = _Pipelines()
    route: Any = (None, "/p", None, None, {}, "https://api.example.com/p")
    for body in [*bodies, *bodies]:  # again: now found by the raw keys kept
        run = _clients._paid(route, opts, "POST", body, rs.Shape.SYNC)  # type: ignore[arg-type]
        assert run is opts.made[_policy._model_of(body)]
    assert len(opts.made) == len({_policy._model_of(body) for body in bodies})


def test_a_file_body_is_sent_whole_again_on_a_retry(emu: Emulator, clock: FakeClock) -> None:
    """A requests body read from a file is rewound before each retry (not sent empty)."""
    import io
    import json

    api = saas.session(emu.url, emu.virtual_key, clock=clock, breaker=None)
    body = io.BytesIO(json.dumps({"team_id": "acme-corp", "job_type": "t"}).encode())
    emu.script("create", "unavailable")
    try:
        response = api.post(
            "/api/jobs/create", data=body, headers={"Content-Type": "application/json"}
        )
    finally:
        api.close()
    assert response.json()["status"] == "PENDING"
    assert emu.stats().by_route["create"] == 2
    assert clock.sleeps  # the 503 was retried after a backoff


def test_httpx_responses_tell_their_elapsed_time(kind: str, api: Client, emu: Emulator) -> None:
    """The httpx clients' responses have `.elapsed`, as a plain client's (it raised before)."""
    job_id = api.create_job()
    response = api.get(f"/api/jobs/{job_id}")
    assert response.json()["job_id"] == job_id
    if kind == "requests":
        assert response.elapsed.total_seconds() >= 0
        return
    assert response.is_closed
    assert response.elapsed.total_seconds() >= 0


class _Gzipped(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a gzip-encoded JSON body."""

    def do_GET(self) -> None:
        body = gzip.compress(b'{"job_id": "gz", "status": "PENDING"}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("backend", ["sync", "async"])
def test_an_encoded_body_read_in_the_attempt_is_decoded_once(backend: str) -> None:
    """The body the attempt reads is handed to httpx still encoded: it decodes it, once."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gzipped)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    path = f"/api/jobs/{UUID_JOB}"
    try:
        if backend == "sync":
            with saas.client(url, "sk-test") as api:
                response = api.get(path)
                with api.stream("GET", path) as streamed:
                    chunks = list(streamed.iter_bytes())
        else:

            async def main() -> tuple[httpx.Response, list[bytes]]:
                async with saas.async_client(url, "sk-test") as api:
                    response = await api.get(path)
                    async with api.stream("GET", path) as streamed:
                        chunks = [chunk async for chunk in streamed.aiter_bytes()]
                return response, chunks

            response, chunks = asyncio.run(main())
    finally:
        server.shutdown()
        server.server_close()
        join_all([thread])
    assert response.json() == {"job_id": "gz", "status": "PENDING"}
    assert b"".join(chunks) == b'{"job_id": "gz", "status": "PENDING"}'
    assert response.elapsed.total_seconds() >= 0


def test_each_attempt_raises_the_typed_error_of_its_transport(
    kind: str, emu: Emulator, clock: FakeClock
) -> None:
    """Issue 19: a client's attempt translates its own transport's failure: Retry sees it typed."""
    client = Client(kind, emu.url, emu.virtual_key, clock=clock, breaker=None)
    try:
        job_id = client.create_job()
        emu.script("get", "drop")
        with capture_events() as events:
            assert client.get(f"/api/jobs/{job_id}").status_code == 200
    finally:
        client.close()
    [scheduled] = [event for event in events if isinstance(event, rs.RetryScheduled)]
    assert isinstance(scheduled.error, saas.APIConnectionError)
    assert scheduled.error.request_sent is True
    assert (scheduled.error.method, scheduled.error.path) == ("GET", f"/api/jobs/{job_id}")


def test_the_async_endpoint_timeout_reaches_the_caller_typed(emu: Emulator, backend: str) -> None:
    """Issue 19: the endpoint's Timeout expiring under async_client: APITimeoutError, sent, noted.

    Retry judges the expiry itself (an ambiguous timeout, retried on a GET);
    the caller gets the profile's error for it, with Retry's note.
    """

    async def main() -> tuple[saas.APITimeoutError, list[rs.Event]]:
        endpoints = saas.ENDPOINTS.scaled(0.03)  # a GET's 10 s: 0.3 s
        async with saas.async_client(
            emu.url,
            emu.virtual_key,
            breaker=None,
            attempts=2,
            endpoints=endpoints,
            clock=FakeClock(),
        ) as api:
            answer = await api.post(
                "/api/jobs/create", json={"team_id": "acme-corp", "job_type": "t"}
            )
            job_id = answer.json()["job_id"]
            emu.script("get", "slow", "slow")
            with capture_events() as events, pytest.raises(saas.APITimeoutError) as caught:
                await api.get(f"/api/jobs/{job_id}")
            return caught.value, events

    error, events = run_async(main, backend)
    assert error.request_sent is True
    assert error.method == "GET"
    assert error.path is not None
    assert error.path.startswith("/api/jobs/")
    assert any("gave up after 2 attempts" in note for note in error.__notes__)
    [scheduled] = [event for event in events if isinstance(event, rs.RetryScheduled)]
    # The Timeout's expiry, or httpx's read timeout set to the same time left: both a lost answer.
    assert isinstance(scheduled.error, rs.TimeoutExceededError | saas.APITimeoutError)
    assert emu.stats().by_route["get"] == 2


def test_an_attempt_with_no_time_left_sends_nothing(emu: Emulator) -> None:
    """Issue 19: the sync clients' attempts check the deadline (no Timeout around them)."""
    import requests

    from resilience.profiles.saas_litellm import _clients

    clock = FakeClock()
    url = f"{emu.url}/api/jobs/{UUID_JOB}"
    session = saas.session(emu.url, emu.virtual_key)
    adapter: Any = session.get_adapter(url)
    prepared = session.prepare_request(requests.Request("GET", url))
    errors: list[saas.APITimeoutError] = []
    with rs.Timeout(1.0, clock=clock):
        clock.advance(1.0)
        with pytest.raises(saas.APITimeoutError) as caught:
            adapter._send_once(prepared, False, None, True, None, {}, 10.0, "/api/jobs/x")
        errors.append(caught.value)
        with pytest.raises(saas.APITimeoutError) as caught:
            _clients._set_timeouts(httpx.Request("GET", url), None, 10.0, "/api/jobs/x")
        errors.append(caught.value)
    session.close()
    assert [(e.request_sent, e.path) for e in errors] == [(False, "/api/jobs/x")] * 2
    assert emu.stats().requests == 0
