"""resilience.integrations.httpx: a pipeline per request, sync and async transports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import resilience as rs
from resilience.integrations.httpx import AsyncResilientTransport, ResilientTransport
from resilience.profiles.saas_litellm.emulator import Emulator
from resilience.testing import FakeClock

from .forms import BACKENDS, run_async

pytest_plugins = ["tests.emulator_fixtures"]


def retry(clock: FakeClock) -> rs.Retry:
    return rs.Retry(on=rs.transient, backoff=rs.backoff.constant(1.0), clock=clock)


class Recording(httpx.BaseTransport):
    """A real transport that remembers each request's timeouts."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.timeouts: list[dict[str, float | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.timeouts.append(dict(request.extensions["timeout"]))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=["sync", *BACKENDS])
def get(request: pytest.FixtureRequest) -> Callable[..., httpx.Response]:
    """GET through a sync client, or an async one in each backend, with the transport's options."""

    def sync(url: str, policy: Any, **kwargs: Any) -> httpx.Response:
        transport = ResilientTransport(policy, **kwargs)
        with httpx.Client(transport=transport) as client:
            return client.get(url)

    def run(url: str, policy: Any, **kwargs: Any) -> httpx.Response:
        async def main() -> httpx.Response:
            transport = AsyncResilientTransport(policy, **kwargs)
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.get(url)

        return run_async(main, request.param)

    return sync if request.param == "sync" else run


def test_failed_responses_are_retried(
    get: Callable[..., httpx.Response], emu: Emulator, clock: FakeClock
) -> None:
    """A 503 result is refused by the classifier and the request re-sent."""
    emu.script("health", "unavailable", "ok")
    assert get(f"{emu.url}/health", retry(clock)).status_code == 200
    assert clock.sleeps == [1.0]


def test_exhausted_retries_return_the_last_response(
    get: Callable[..., httpx.Response], emu: Emulator, clock: FakeClock
) -> None:
    """When attempts run out on responses, the last one is returned, read."""
    emu.script("health", "unavailable", "unavailable", "unavailable")
    response = get(f"{emu.url}/health", retry(clock))
    assert response.status_code == 503
    assert "Service Unavailable" in response.text


def test_retry_after_is_a_floor(
    get: Callable[..., httpx.Response], emu: Emulator, clock: FakeClock
) -> None:
    """A 429's Retry-After lengthens the backoff."""
    emu.script("health", "rate_limit", "ok")
    assert get(f"{emu.url}/health", retry(clock)).status_code == 200
    assert clock.sleeps == [emu.retry_after]


def test_transport_errors_are_retried(
    get: Callable[..., httpx.Response], emu: Emulator, clock: FakeClock
) -> None:
    """A dropped connection raised by the transport is retried by rs.transient."""
    emu.script("health", "drop", "ok")
    assert get(f"{emu.url}/health", retry(clock)).status_code == 200
    assert emu.stats().by_route["health"] == 2


def test_check_may_be_async(emu: Emulator, clock: FakeClock, backend: str) -> None:
    """The async transport awaits a coroutine check."""

    class Unhappy(Exception):
        pass

    async def check(response: httpx.Response) -> None:
        await response.aread()
        if response.status_code >= 500:
            raise Unhappy(response.text)

    async def main() -> httpx.Response:
        policy = rs.Retry(on=Unhappy, clock=clock)
        transport = AsyncResilientTransport(policy, check=check)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(f"{emu.url}/health")

    emu.script("health", "unavailable", "ok")
    assert run_async(main, backend).status_code == 200


def test_timeouts_are_lowered_to_the_deadline(emu: Emulator) -> None:
    """Each of connect/read/write/pool gets min(its own, the transport's, the time left)."""
    clock = FakeClock()
    recording = Recording()
    transport = ResilientTransport(None, transport=recording, timeout=8.0)
    with httpx.Client(transport=transport, timeout=httpx.Timeout(5.0, read=20.0)) as client:
        client.get(f"{emu.url}/health")
        with rs.Timeout(3.0, clock=clock):
            client.get(f"{emu.url}/health")
    assert recording.timeouts == [
        {"connect": 5.0, "read": 8.0, "write": 5.0, "pool": 5.0},
        {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0},
    ]


def test_no_limit_leaves_timeouts_alone(emu: Emulator) -> None:
    """Outside any deadline and without a timeout of its own, the request's are untouched."""
    recording = Recording()
    with httpx.Client(transport=ResilientTransport(None, transport=recording)) as client:
        client.get(f"{emu.url}/health", timeout=4.0)
    assert recording.timeouts == [dict.fromkeys(("connect", "read", "write", "pool"), 4.0)]


@pytest.mark.parametrize("timeout", [0, -1.0, httpx.Timeout(5.0, read=0)])
def test_a_timeout_that_allows_no_time_is_refused_unsent(emu: Emulator, timeout: Any) -> None:
    """timeout=0 or negative is a caller's mistake: a ValueError, nothing sent, nothing
    retried or counted by a breaker (httpx alone would time out at once)."""
    breaker = rs.CircuitBreaker(on=rs.transient, failure_threshold=1, clock=FakeClock())
    transport = ResilientTransport(
        rs.compose(rs.Retry(on=rs.transient, clock=FakeClock()), breaker)
    )
    with httpx.Client(transport=transport) as client:
        with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
            client.get(f"{emu.url}/health", timeout=timeout)
        assert client.get(f"{emu.url}/health").status_code == 200
    assert emu.stats().requests == 1
    assert breaker.state is rs.CircuitState.CLOSED


def test_passed_deadline_sends_nothing(emu: Emulator) -> None:
    """Once the deadline has passed, nothing is sent: TimeoutExceededError."""
    clock = FakeClock()
    with httpx.Client(transport=ResilientTransport(None)) as client, rs.Timeout(1.0, clock=clock):
        clock.advance(1.0)
        with pytest.raises(rs.TimeoutExceededError):
            client.get(f"{emu.url}/health")
    assert emu.stats().requests == 0


def test_async_timeout_in_the_pipeline_cancels(emu: Emulator, backend: str) -> None:
    """An async Timeout in the pipeline cancels a slow request at its deadline."""

    async def main() -> None:
        transport = AsyncResilientTransport(rs.Timeout(0.2))
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(f"{emu.url}/health")

    emu.script("health", "slow")
    with pytest.raises((rs.TimeoutExceededError, httpx.TimeoutException)):
        run_async(main, backend)


def test_factory_chooses_per_request(emu: Emulator, clock: FakeClock) -> None:
    """A factory gets (method, url) of each request."""
    seen: list[tuple[str, str]] = []

    def factory(method: str, url: str) -> rs.Pipeline:
        seen.append((method, url))
        return rs.compose(retry(clock))

    with httpx.Client(transport=ResilientTransport(factory)) as client:
        client.get(f"{emu.url}/health")
    assert seen == [("GET", f"{emu.url}/health")]


def test_bad_arguments() -> None:
    """Bad policies, timeouts and checks are refused at construction."""
    with pytest.raises(TypeError, match="policy"):
        ResilientTransport("retry")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout"):
        AsyncResilientTransport(None, timeout="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="check"):
        ResilientTransport(None, check=3)  # type: ignore[arg-type]
